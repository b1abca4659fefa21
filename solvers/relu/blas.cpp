#include "blas.hpp"

#include <parasol/error.hpp>

#include <cblas.h>

#include <algorithm>
#include <cstdlib>
#include <thread>
#include <utility>

namespace parasol::relu::detail {

RowMatrix gemm(MatrixView A, bool transpose_a, MatrixView B, bool transpose_b) {
  // A column-major matrix is the row-major storage of its transpose.
  auto as_row_major = [](MatrixView& v, bool& transpose) {
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
  RowMatrix out(m, n);
  if (m == 0 || n == 0) return out;
  if (k == 0) {
    out.setZero();
    return out;
  }
  cblas_dgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), 1.0, A.data,
              static_cast<int>(std::max<Eigen::Index>(1, A.ld)), B.data,
              static_cast<int>(std::max<Eigen::Index>(1, B.ld)), 0.0, out.data(), static_cast<int>(n));
  return out;
}

void limit_blas_threads(MPI_Comm comm) {
  MPI_Comm node;
  MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int local_ranks = 1;
  MPI_Comm_size(node, &local_ranks);
  MPI_Comm_free(&node);
  if (std::getenv("OPENBLAS_NUM_THREADS") != nullptr) return;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  openblas_set_num_threads(std::max(1, cores / std::max(1, local_ranks)));
}

}  // namespace parasol::relu::detail
