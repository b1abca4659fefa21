// Loading and writing parasol's HDF5 input layout (docs/input-format.md), row-distributed.
// Every check is agreed over ranks (check_all / collective) before the next collective, so
// a defect seen by one rank is an Error on every rank and nobody hangs.
#include <parasol/data_tools.hpp>
#include <parasol/dataset.hpp>
#include <parasol/error.hpp>
#include <parasol/h5.hpp>
#include <parasol/version.hpp>

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace parasol {
namespace {

std::string dims_text(const std::vector<std::uint64_t>& dims) {
  std::string s;
  for (std::size_t k = 0; k < dims.size(); ++k) s += (k ? " x " : "") + std::to_string(dims[k]);
  return dims.empty() ? "a scalar" : s;
}

std::uint32_t crc_of(const void* data, std::uint64_t bytes) {
  // zlib's crc32 takes a uInt length; feed large buffers in pieces.
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto* p = static_cast<const Bytef*>(data);
  while (bytes > 0) {
    uInt piece = static_cast<uInt>(std::min<std::uint64_t>(bytes, 1u << 30));
    crc = crc32(crc, p, piece);
    p += piece;
    bytes -= piece;
  }
  return static_cast<std::uint32_t>(crc);
}

// The first non-finite entry of a local row-major block as "row r, column c" (global row).
bool all_finite(const double* values, std::int64_t count, std::int64_t cols, std::int64_t first_row,
                std::string* where) {
  for (std::int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(values[i])) {
      if (cols > 0)
        *where = "row " + std::to_string(first_row + i / cols) + ", column " + std::to_string(i % cols);
      else
        *where = "entry " + std::to_string(first_row + i);
      return false;
    }
  }
  return true;
}

// Opens `path` for reading on every rank. h5::File already tells a missing file from one
// that is not HDF5; a file that passes the signature check but does not open is most often
// truncated (HDF5 compares the stored end of file with the real one).
h5::File open_input(MPI_Comm comm, const std::string& path) {
  std::optional<h5::File> file;
  collective(comm, [&] {
    try {
      file.emplace(comm, path, h5::File::Mode::Read);
    } catch (const Error& e) {
      std::string message = e.what();
      if (message.find("cannot open file") != std::string::npos)
        message += " (truncated or damaged HDF5 file?)";
      throw Error(message);
    }
  });
  return std::move(*file);
}

// Creates `path` (truncating), agreed over ranks.
h5::File create_output(MPI_Comm comm, const std::string& path) {
  std::optional<h5::File> file;
  collective(comm, [&] { file.emplace(comm, path, h5::File::Mode::Create); });
  return std::move(*file);
}

}  // namespace

RowMatrix Dataset::dense_local() const {
  if (!sparse) return X;
  RowMatrix dense = RowMatrix::Zero(rows.count(), cols);
  for (std::int64_t r = 0; r < rows.count(); ++r)
    for (std::int64_t k = X_csr.indptr[r]; k < X_csr.indptr[r + 1]; ++k)
      dense(r, X_csr.indices[k]) += X_csr.values[k];
  return dense;
}

Dataset load_dataset(MPI_Comm comm, const std::string& path, const LoadOptions& options) {
  h5::File file = open_input(comm, path);
  Dataset ds;
  ds.path = path;

  const bool dense = file.exists("X");
  const bool csr = file.exists("X_indptr") || file.exists("X_indices") || file.exists("X_data");
  check_all(comm, dense || csr,
            path + ": no /X (dense N x D) and no CSR datasets /X_indptr, /X_indices, /X_data");
  check_all(comm, !(dense && csr), path + ": has both a dense /X and CSR datasets; keep one");

  std::int64_t N = 0, D = 0;
  if (dense) {
    std::vector<std::uint64_t> dims;
    collective(comm, [&] { dims = h5::shape(file, "X"); });
    check_all(comm, dims.size() == 2,
              path + ": /X must be 2-D (N x D), it is " + dims_text(dims));
    N = static_cast<std::int64_t>(dims[0]);
    D = static_cast<std::int64_t>(dims[1]);
  } else {
    for (const char* name : {"X_indptr", "X_indices", "X_data"})
      check_all(comm, file.exists(name), path + ": CSR dataset /" + std::string(name) + " is missing");
    check_all(comm, h5::has_attr(file, "/", "X_shape"),
              path + ": CSR data needs the root attribute X_shape = [N, D]");
    std::vector<double> shape;
    collective(comm, [&] { shape = h5::attr_doubles(file, "/", "X_shape"); });
    check_all(comm, shape.size() == 2 && shape[0] >= 0 && shape[1] >= 0 &&
                        shape[0] == std::floor(shape[0]) && shape[1] == std::floor(shape[1]),
              path + ": attribute X_shape must be two non-negative integers [N, D]");
    N = static_cast<std::int64_t>(shape[0]);
    D = static_cast<std::int64_t>(shape[1]);
  }
  check_all(comm, N > 0 && D > 0,
            path + ": X is empty (" + std::to_string(N) + " x " + std::to_string(D) + ")");
  ds.rows = Partition::block(N, comm);
  ds.cols = D;
  const std::int64_t n = ds.rows.count();

  std::uint32_t crc = 0;
  if (dense) {
    std::vector<double> local;
    collective(comm, [&] { local = h5::read_rows(file, "X", ds.rows.begin, n); });
    std::string bad;
    bool ok = static_cast<std::int64_t>(local.size()) == n * D;
    check_all(comm, ok, path + ": /X returned the wrong number of values (damaged file?)");
    ok = all_finite(local.data(), n * D, D, ds.rows.begin, &bad);
    check_all(comm, ok, path + ": non-finite value in /X at " + bad);
    ds.X = Eigen::Map<RowMatrix>(local.data(), n, D);
    crc = data::combine_crc32(comm, crc_of(local.data(), local.size() * sizeof(double)),
                              local.size() * sizeof(double));
  } else {
    std::vector<std::uint64_t> ip, ix, dt;
    collective(comm, [&] {
      ip = h5::shape(file, "X_indptr");
      ix = h5::shape(file, "X_indices");
      dt = h5::shape(file, "X_data");
    });
    check_all(comm, ip.size() == 1 && ip[0] == std::uint64_t(N + 1),
              path + ": /X_indptr must have N+1 = " + std::to_string(N + 1) + " entries, it is " +
                  dims_text(ip));
    check_all(comm, ix.size() == 1 && dt.size() == 1 && ix[0] == dt[0],
              path + ": /X_indices (" + dims_text(ix) + ") and /X_data (" + dims_text(dt) +
                  ") must be 1-D of equal length");
    const std::int64_t nnz = static_cast<std::int64_t>(ix[0]);
    // Row pointers of rows begin..end (one more than the local rows).
    std::vector<std::int64_t> indptr;
    collective(comm, [&] { indptr = h5::read_rows_int64(file, "X_indptr", ds.rows.begin, n + 1); });
    bool ok = static_cast<std::int64_t>(indptr.size()) == n + 1;
    std::string bad;
    if (ok && ds.rows.begin == 0 && indptr[0] != 0) {
      ok = false;
      bad = "X_indptr[0] = " + std::to_string(indptr[0]) + ", must be 0";
    }
    if (ok && ds.rows.end == N && indptr[n] != nnz) {
      ok = false;
      bad = "X_indptr[N] = " + std::to_string(indptr[n]) + ", must equal the number of entries " +
            std::to_string(nnz);
    }
    for (std::int64_t r = 0; ok && r < n; ++r) {
      if (indptr[r + 1] < indptr[r] || indptr[r] < 0 || indptr[r + 1] > nnz) {
        ok = false;
        bad = "X_indptr is not monotone within [0, nnz] at row " + std::to_string(ds.rows.begin + r);
      }
    }
    check_all(comm, ok, path + ": " + (bad.empty() ? "cannot read /X_indptr" : bad));
    const std::int64_t first = indptr[0], count = indptr[n] - indptr[0];
    std::vector<std::int64_t> indices;
    std::vector<double> values;
    collective(comm, [&] {
      indices = h5::read_rows_int64(file, "X_indices", first, count);
      values = h5::read_rows(file, "X_data", first, count);
    });
    ok = static_cast<std::int64_t>(indices.size()) == count &&
         static_cast<std::int64_t>(values.size()) == count;
    check_all(comm, ok, path + ": short read of /X_indices or /X_data (damaged file?)");
    for (std::int64_t k = 0; ok && k < count; ++k) {
      if (indices[k] < 0 || indices[k] >= D) {
        ok = false;
        bad = "column index " + std::to_string(indices[k]) + " at /X_indices[" +
              std::to_string(first + k) + "] is out of range [0, " + std::to_string(D) + ")";
      }
    }
    check_all(comm, ok, path + ": " + bad);
    ok = all_finite(values.data(), count, 0, first, &bad);
    check_all(comm, ok, path + ": non-finite value in /X_data at " + bad);

    // Checksum of indptr || indices || data as stored (little-endian int64/float64).
    const std::int64_t own_indptr = ds.rows.end == N ? n + 1 : n;  // last rank adds indptr[N]
    std::uint32_t c1 = data::combine_crc32(comm, crc_of(indptr.data(), own_indptr * 8), own_indptr * 8);
    std::uint32_t c2 = data::combine_crc32(comm, crc_of(indices.data(), count * 8), count * 8);
    std::uint32_t c3 = data::combine_crc32(comm, crc_of(values.data(), count * 8), count * 8);
    crc = static_cast<std::uint32_t>(crc32_combine(crc32_combine(c1, c2, nnz * 8), c3, nnz * 8));

    for (auto& p : indptr) p -= first;
    ds.X_csr.indptr = std::move(indptr);
    ds.X_csr.indices = std::move(indices);
    ds.X_csr.values = std::move(values);
    ds.sparse = true;
    if (options.densify) {
      ds.X = ds.dense_local();
      ds.X_csr = CsrRows{};
      ds.sparse = false;
    }
  }
  ds.crc32 = crc;
  if (h5::has_attr(file, "/", "X_crc32")) {
    std::int64_t stored = 0;
    collective(comm, [&] { stored = h5::attr_int(file, "/", "X_crc32"); });
    check_all(comm, static_cast<std::uint32_t>(stored) == crc,
              path + ": checksum mismatch: X_crc32 attribute " + std::to_string(stored) +
                  ", data gives " + std::to_string(crc) + " (file modified or damaged)");
  }

  if (file.exists("y")) {
    std::vector<std::uint64_t> dims;
    collective(comm, [&] { dims = h5::shape(file, "y"); });
    check_all(comm, dims.size() == 1 && dims[0] == std::uint64_t(N),
              path + ": /y must be 1-D with N = " + std::to_string(N) + " entries, it is " +
                  dims_text(dims));
    std::vector<double> local;
    collective(comm, [&] { local = h5::read_rows(file, "y", ds.rows.begin, n); });
    std::string bad;
    bool ok = all_finite(local.data(), static_cast<std::int64_t>(local.size()), 0, ds.rows.begin, &bad);
    check_all(comm, ok, path + ": non-finite label in /y at " + bad);
    ds.y = Eigen::Map<Eigen::VectorXd>(local.data(), n);
  } else {
    check_all(comm, !options.require_labels, path + ": labels /y are required but missing");
  }
  return ds;
}

void save_dataset(MPI_Comm comm, const std::string& path, const RowMatrix& X_local,
                  const Eigen::VectorXd& y_local, const std::string& description) {
  long long cols = X_local.cols(), max_cols = 0, min_cols = 0;
  long long rows = X_local.rows();
  // Ranks with no rows may hold a 0 x 0 matrix; the columns come from those that have rows.
  long long c = rows > 0 ? cols : -1;
  MPI_Allreduce(&c, &max_cols, 1, MPI_LONG_LONG, MPI_MAX, comm);
  c = rows > 0 ? cols : std::numeric_limits<long long>::max();
  MPI_Allreduce(&c, &min_cols, 1, MPI_LONG_LONG, MPI_MIN, comm);
  check_all(comm, max_cols > 0 && max_cols == min_cols,
            path + ": cannot save: ranks disagree on the number of columns or X is empty");
  long long labelled = y_local.size() > 0 ? 1 : 0, any_labels = 0;
  MPI_Allreduce(&labelled, &any_labels, 1, MPI_LONG_LONG, MPI_MAX, comm);
  if (any_labels) {
    check_all(comm, y_local.size() == X_local.rows(),
              path + ": cannot save: y has " + std::to_string(y_local.size()) + " local entries for " +
                  std::to_string(X_local.rows()) + " rows");
  }
  data::DatasetWriter writer(comm, path, description);
  writer.write_X(X_local, max_cols);
  if (any_labels) writer.write_column("y", y_local);
  writer.commit();
}

namespace data {

std::uint32_t combine_crc32(MPI_Comm comm, std::uint32_t local_crc, std::uint64_t local_bytes) {
  int size;
  MPI_Comm_size(comm, &size);
  unsigned long long mine[2] = {local_crc, local_bytes};
  std::vector<unsigned long long> all(2 * static_cast<std::size_t>(size));
  MPI_Allgather(mine, 2, MPI_UNSIGNED_LONG_LONG, all.data(), 2, MPI_UNSIGNED_LONG_LONG, comm);
  uLong crc = crc32(0L, Z_NULL, 0);
  for (int r = 0; r < size; ++r)
    crc = crc32_combine(crc, static_cast<uLong>(all[2 * r]), static_cast<z_off_t>(all[2 * r + 1]));
  return static_cast<std::uint32_t>(crc);
}

DatasetWriter::DatasetWriter(MPI_Comm comm, const std::string& path, const std::string& description)
    : comm_(comm), path_(path), partial_(path + ".partial"), file_(create_output(comm, partial_)) {
  try {
    h5::set_attr(file_, "/", "description", description);
    h5::set_attr(file_, "/", "parasol_version", std::string(parasol::version()));
  } catch (...) {
    // The destructor does not run for a half-built object: clean up here.
    file_.close();
    int rank = 0;
    MPI_Comm_rank(comm_, &rank);
    if (rank == 0) std::remove(partial_.c_str());
    throw;
  }
}

DatasetWriter::~DatasetWriter() {
  if (committed_) return;
  // An error on the way: leave nothing behind. Closing may fail on a broken file; ignore.
  try {
    file_.close();
  } catch (...) {
  }
  int rank = 0;
  MPI_Comm_rank(comm_, &rank);
  if (rank == 0) std::remove(partial_.c_str());
}

void DatasetWriter::write_X(const RowMatrix& X_local, std::int64_t cols) {
  const std::uint64_t n = static_cast<std::uint64_t>(X_local.rows());
  check_all(comm_, n == 0 || X_local.cols() == cols,
            path_ + ": cannot save: local rows have " + std::to_string(X_local.cols()) +
                " columns, expected " + std::to_string(cols));
  RowMatrix empty(0, cols);
  const RowMatrix& local = n > 0 ? X_local : empty;
  h5::write_rows(file_, "X", local.data(), n, static_cast<std::uint64_t>(cols));
  const std::uint64_t bytes = n * cols * sizeof(double);
  std::uint32_t crc = combine_crc32(comm_, crc_of(local.data(), bytes), bytes);
  h5::set_attr(file_, "/", "X_crc32", static_cast<std::int64_t>(crc));
}

void DatasetWriter::write_X_csr(const CsrRows& local, std::int64_t cols) {
  long long n = local.indptr.empty() ? 0 : static_cast<long long>(local.indptr.size()) - 1;
  long long nnz_local = static_cast<long long>(local.indices.size()), nnz_before = 0, N = 0, nnz = 0;
  MPI_Exscan(&nnz_local, &nnz_before, 1, MPI_LONG_LONG, MPI_SUM, comm_);
  int rank, size;
  MPI_Comm_rank(comm_, &rank);
  MPI_Comm_size(comm_, &size);
  if (rank == 0) nnz_before = 0;  // MPI_Exscan leaves rank 0's result undefined
  MPI_Allreduce(&n, &N, 1, MPI_LONG_LONG, MPI_SUM, comm_);
  MPI_Allreduce(&nnz_local, &nnz, 1, MPI_LONG_LONG, MPI_SUM, comm_);
  // Global row pointers: each rank writes those of its rows, the last rank also indptr[N].
  std::vector<std::int64_t> indptr;
  for (long long r = 0; r < n; ++r) indptr.push_back(local.indptr[r] + nnz_before);
  if (rank == size - 1) indptr.push_back(nnz);
  h5::write_rows(file_, "X_indptr", indptr.data(), indptr.size(), 0);
  h5::write_rows(file_, "X_indices", local.indices.data(), local.indices.size(), 0);
  h5::write_rows(file_, "X_data", local.values.data(), local.values.size(), 0);
  h5::set_attr(file_, "/", "X_shape", std::vector<double>{double(N), double(cols)});
  std::uint32_t c1 = combine_crc32(comm_, crc_of(indptr.data(), indptr.size() * 8), indptr.size() * 8);
  std::uint32_t c2 = combine_crc32(comm_, crc_of(local.indices.data(), nnz_local * 8), nnz_local * 8);
  std::uint32_t c3 = combine_crc32(comm_, crc_of(local.values.data(), nnz_local * 8), nnz_local * 8);
  uLong crc = crc32_combine(crc32_combine(c1, c2, nnz * 8), c3, nnz * 8);
  h5::set_attr(file_, "/", "X_crc32", static_cast<std::int64_t>(crc));
}

void DatasetWriter::write_column(const std::string& name, const Eigen::VectorXd& local) {
  h5::write_rows(file_, name, local.data(), static_cast<std::uint64_t>(local.size()), 0);
}

void DatasetWriter::write_replicated(const std::string& name, const std::vector<double>& values,
                                     const std::vector<std::uint64_t>& dims) {
  h5::write(file_, name, values, dims);
}

void DatasetWriter::commit() {
  file_.close();
  int rank;
  MPI_Comm_rank(comm_, &rank);
  bool ok = true;
  std::string why;
  if (rank == 0 && std::rename(partial_.c_str(), path_.c_str()) != 0) {
    ok = false;
    why = std::strerror(errno);
    std::remove(partial_.c_str());
  }
  committed_ = true;  // whatever happened, the partial file is dealt with
  check_all(comm_, ok, path_ + ": cannot rename " + partial_ + " into place: " + why);
}

}  // namespace data
}  // namespace parasol
