#include "blas.hpp"

#include <parasol/error.hpp>

#include <cblas.h>
#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <thread>
#include <utility>

namespace parasol::relu::detail {

namespace {

template <class Scalar, class Result, class Call>
Result gemm_any(MatrixView<Scalar> A, bool transpose_a, MatrixView<Scalar> B, bool transpose_b, Call call) {
  // A column-major matrix is the row-major storage of its transpose.
  auto as_row_major = [](MatrixView<Scalar>& v, bool& transpose) {
    if (v.row_major) return;
    std::swap(v.rows, v.cols);
    transpose = !transpose;
    v.row_major = true;
  };
  as_row_major(A, transpose_a);
  as_row_major(B, transpose_b);
  const Eigen::Index m = transpose_a ? A.cols : A.rows, k = transpose_a ? A.rows : A.cols;
  const Eigen::Index n = transpose_b ? B.rows : B.cols, k_b = transpose_b ? B.cols : B.rows;
  if (k != k_b) throw Error("relu: internal error: gemm with inner dimensions " + std::to_string(k) + " and " +
                            std::to_string(k_b));
  Result out(m, n);
  if (m == 0 || n == 0) return out;
  if (k == 0) {
    out.setZero();
    return out;
  }
  call(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans,
       static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), Scalar(1), A.data,
       static_cast<int>(std::max<Eigen::Index>(1, A.ld)), B.data, static_cast<int>(std::max<Eigen::Index>(1, B.ld)),
       Scalar(0), out.data(), static_cast<int>(n));
  return out;
}

}  // namespace

RowMatrix gemm(MatrixView<double> A, bool transpose_a, MatrixView<double> B, bool transpose_b) {
  return gemm_any<double, RowMatrix>(A, transpose_a, B, transpose_b, cblas_dgemm);
}

RowMatrixF gemm(MatrixView<float> A, bool transpose_a, MatrixView<float> B, bool transpose_b) {
  return gemm_any<float, RowMatrixF>(A, transpose_a, B, transpose_b, cblas_sgemm);
}

void limit_blas_threads(MPI_Comm comm) {
  MPI_Comm node;
  MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int local_ranks = 1;
  MPI_Comm_size(node, &local_ranks);
  MPI_Comm_free(&node);
  if (std::getenv("OPENBLAS_NUM_THREADS") != nullptr) return;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // A rank bound to fewer cores (mpiexec --bind-to, a SLURM cpuset) gets no more threads than
  // it has cores: threads sharing one core only slow each other down.
  int usable = cores;
  cpu_set_t mask;
  if (sched_getaffinity(0, sizeof(mask), &mask) == 0) usable = std::max(1, CPU_COUNT(&mask));
  openblas_set_num_threads(std::max(1, std::min(usable, cores / std::max(1, local_ranks))));
}

}  // namespace parasol::relu::detail
