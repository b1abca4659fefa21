#pragma once
// Dense products through BLAS for the relu solvers' hot loops. Eigen's own GEMM is compiled
// for the baseline x86-64 instruction set here (the build sets no -march), while OpenBLAS
// picks AVX2 / AVX-512 kernels at run time: the n x d by d x K products that dominate an
// ADMM iteration run about 3x faster (docs/relu.md, "Speed"). Not a public interface.
#include <parasol/relu.hpp>

#include <mpi.h>

namespace parasol::relu::detail {

using RowMatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// A dense matrix as BLAS sees it: data, shape, leading dimension, storage order.
template <class Scalar>
struct MatrixView {
  const Scalar* data;
  Eigen::Index rows, cols, ld;
  bool row_major;
};

template <class M>
MatrixView<typename M::Scalar> view(const M& m) {
  return {m.data(), m.rows(), m.cols(), m.outerStride(), static_cast<bool>(M::IsRowMajor)};
}

// op(A) op(B) with op the transpose when the flag is set (cblas_dgemm, cblas_sgemm); A, B
// dense with unit inner stride (plain matrices, row blocks of row-major ones).
RowMatrix gemm(MatrixView<double> A, bool transpose_a, MatrixView<double> B, bool transpose_b);
RowMatrixF gemm(MatrixView<float> A, bool transpose_a, MatrixView<float> B, bool transpose_b);

template <class MA, class MB>
auto product(const MA& A, bool transpose_a, const MB& B, bool transpose_b) {
  return gemm(view(A), transpose_a, view(B), transpose_b);
}

// Collective: unless OPENBLAS_NUM_THREADS is set, lets BLAS use (cores / ranks on this
// node) threads per rank, at least 1, so that ranks times threads never oversubscribe.
void limit_blas_threads(MPI_Comm comm);

}  // namespace parasol::relu::detail
