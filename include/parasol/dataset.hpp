#pragma once
// Input data sets in parasol's HDF5 layout (docs/input-format.md), loaded row-distributed:
// each rank reads only its block of rows (Partition::block). Readers reject truncated or
// malformed files, inconsistent shapes and non-finite values with a message that names the
// file, on every rank (collectively), without hanging.
//
// Layout: dense /X (N x D float64, row-major), optional /y (N float64); sparse data as CSR:
// /X_indptr (N+1 int64), /X_indices (nnz int64), /X_data (nnz float64), attribute
// /X_shape = [N, D] on the root. Optional /y_true (labels before corruption).
#include <Eigen/Dense>
#include <mpi.h>
#include <parasol/partition.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace parasol {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// This rank's rows of a sparse matrix, with row pointers local (indptr[0] == 0) and global
// column indices.
struct CsrRows {
  std::vector<std::int64_t> indptr;
  std::vector<std::int64_t> indices;
  std::vector<double> values;
};

struct Dataset {
  std::string path;
  Partition rows;              // which global rows this rank holds
  std::int64_t cols = 0;       // D
  bool sparse = false;
  RowMatrix X;                 // local rows (dense storage; empty when sparse)
  CsrRows X_csr;               // local rows (sparse storage; empty when dense)
  Eigen::VectorXd y;           // local labels/targets (size 0 when the file has none)
  std::uint32_t crc32 = 0;     // checksum of the whole X (combined over ranks)

  bool has_labels() const { return y.size() == rows.count(); }
  // Dense copy of the local rows whatever the storage.
  RowMatrix dense_local() const;
};

struct LoadOptions {
  bool require_labels = false;
  bool densify = true;  // sparse files are converted to dense local rows
};

// Collective over `comm`.
Dataset load_dataset(MPI_Comm comm, const std::string& path, const LoadOptions& options = {});

// Collective: writes a dense dataset from row-distributed pieces (X local rows, y local or
// empty) to `path` atomically (path.partial then rename).
void save_dataset(MPI_Comm comm, const std::string& path, const RowMatrix& X_local,
                  const Eigen::VectorXd& y_local, const std::string& description);

}  // namespace parasol
