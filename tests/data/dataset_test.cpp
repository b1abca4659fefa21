// The HDF5 loader and writer: balanced uneven partitions, dense and CSR files loaded
// row-distributed and compared with the global matrix the test knows, CRC32 equal to the
// checksum of the whole X computed here in one piece, and bad files rejected on every rank
// with the file name and the problem.
#include <gtest/gtest.h>
#include <parasol/data_tools.hpp>
#include <parasol/dataset.hpp>
#include <parasol/h5.hpp>
#include <parasol/partition.hpp>

#include <zlib.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "data_test_util.hpp"

using namespace parasol;
using parasol::datatest::fails_everywhere_with;
using parasol::datatest::rank;
using parasol::datatest::scratch_dir;

namespace {

// The global test matrix: entry (i, j) = i + j / 100 (distinct everywhere).
RowMatrix global_matrix(std::int64_t n, std::int64_t d) {
  RowMatrix X(n, d);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < d; ++j) X(i, j) = double(i) + double(j) / 100.0;
  return X;
}

std::uint32_t crc_bytes(const void* p, std::size_t n) {
  return static_cast<std::uint32_t>(crc32(crc32(0L, Z_NULL, 0), static_cast<const Bytef*>(p),
                                          static_cast<uInt>(n)));
}

// Writes a dense file from block rows of `X` (and `y` if given) with the raw h5 layer, so
// the loader is tested against files it did not write itself.
void write_dense(const std::string& path, const RowMatrix& X, const Eigen::VectorXd& y,
                 bool with_y = true) {
  const Partition p = Partition::block(X.rows(), MPI_COMM_WORLD);
  RowMatrix local = X.middleRows(p.begin, p.count());
  h5::File f(MPI_COMM_WORLD, path, h5::File::Mode::Create);
  h5::write_rows(f, "X", local.data(), p.count(), X.cols());
  if (with_y) {
    const Partition q = Partition::block(y.size(), MPI_COMM_WORLD);
    Eigen::VectorXd ly = y.segment(q.begin, q.count());
    h5::write_rows(f, "y", ly.data(), q.count(), 0);
  }
}

// A CSR file written replicated (rank 0) with the raw h5 layer.
void write_csr(const std::string& path, const std::vector<std::int64_t>& indptr,
               const std::vector<std::int64_t>& indices, const std::vector<double>& values,
               double n, double d) {
  h5::File f(MPI_COMM_WORLD, path, h5::File::Mode::Create);
  h5::write(f, "X_indptr", indptr, {indptr.size()});
  h5::write(f, "X_indices", indices, {indices.size()});
  h5::write(f, "X_data", values, {values.size()});
  h5::set_attr(f, "/", "X_shape", std::vector<double>{n, d});
}

}  // namespace

TEST(Partition, UnevenBlocksCoverEveryRowOnce) {
  for (std::int64_t n : {0, 1, 2, 7, 10, 11}) {
    for (int size = 1; size <= 4; ++size) {
      std::int64_t next = 0;
      for (int r = 0; r < size; ++r) {
        const Partition p = Partition::block(n, r, size);
        EXPECT_EQ(p.begin, next);
        EXPECT_GE(p.count(), n / size);
        EXPECT_LE(p.count(), n / size + 1);
        // The first n mod size ranks hold the extra rows.
        EXPECT_EQ(p.count(), n / size + (r < n % size ? 1 : 0));
        for (std::int64_t row = p.begin; row < p.end; ++row) EXPECT_EQ(Partition::owner(n, size, row), r);
        next = p.end;
      }
      EXPECT_EQ(next, n);
    }
  }
}

TEST(Load, DenseFileGivesThisRanksRowsAndTheWholeChecksum) {
  const std::string path = scratch_dir() + "/dense.h5";
  const std::int64_t n = 7, d = 3;  // uneven over 2 and 3 ranks
  const RowMatrix X = global_matrix(n, d);
  Eigen::VectorXd y = Eigen::VectorXd::LinSpaced(n, 0, n - 1);
  write_dense(path, X, y);
  Dataset ds = load_dataset(MPI_COMM_WORLD, path, {true, true});
  const Partition p = Partition::block(n, MPI_COMM_WORLD);
  EXPECT_EQ(ds.rows.begin, p.begin);
  EXPECT_EQ(ds.rows.end, p.end);
  EXPECT_EQ(ds.cols, d);
  EXPECT_FALSE(ds.sparse);
  EXPECT_EQ(ds.X, X.middleRows(p.begin, p.count()));
  EXPECT_EQ(ds.y, y.segment(p.begin, p.count()));
  EXPECT_TRUE(ds.has_labels());
  EXPECT_EQ(ds.crc32, crc_bytes(X.data(), X.size() * sizeof(double)));
}

TEST(Load, MoreRanksThanRowsLeavesSomeRanksEmpty) {
  const std::string path = scratch_dir() + "/tiny.h5";
  const RowMatrix X = global_matrix(1, 2);
  write_dense(path, X, Eigen::VectorXd::Ones(1));
  Dataset ds = load_dataset(MPI_COMM_WORLD, path);
  EXPECT_EQ(ds.X.rows(), rank() == 0 ? 1 : 0);
  EXPECT_EQ(ds.crc32, crc_bytes(X.data(), X.size() * sizeof(double)));
}

TEST(Load, CsrFileLoadsSparseOrDensified) {
  const std::string path = scratch_dir() + "/csr.h5";
  // 5 x 4 with an empty row.
  const std::vector<std::int64_t> indptr = {0, 2, 2, 3, 6, 7};
  const std::vector<std::int64_t> indices = {0, 3, 1, 0, 2, 3, 2};
  const std::vector<double> values = {1, 2, 3, 4, 5, 6, 7};
  write_csr(path, indptr, indices, values, 5, 4);
  RowMatrix dense = RowMatrix::Zero(5, 4);
  for (int r = 0; r < 5; ++r)
    for (auto k = indptr[r]; k < indptr[r + 1]; ++k) dense(r, indices[k]) = values[k];
  const Partition p = Partition::block(5, MPI_COMM_WORLD);

  Dataset densified = load_dataset(MPI_COMM_WORLD, path);
  EXPECT_EQ(densified.X, dense.middleRows(p.begin, p.count()));
  EXPECT_EQ(densified.y.size(), 0);

  Dataset sparse = load_dataset(MPI_COMM_WORLD, path, {false, false});
  ASSERT_TRUE(sparse.sparse);
  EXPECT_EQ(sparse.X_csr.indptr.front(), 0);
  EXPECT_EQ(sparse.X_csr.indptr.size(), std::size_t(p.count() + 1));
  EXPECT_EQ(sparse.dense_local(), dense.middleRows(p.begin, p.count()));
  // Checksum of indptr || indices || data as stored.
  std::uint32_t c = crc_bytes(indptr.data(), indptr.size() * 8);
  c = crc32_combine(c, crc_bytes(indices.data(), indices.size() * 8), indices.size() * 8);
  c = crc32_combine(c, crc_bytes(values.data(), values.size() * 8), values.size() * 8);
  EXPECT_EQ(sparse.crc32, c);
  EXPECT_EQ(densified.crc32, c);
}

TEST(Save, WrittenFileReloadsWithChecksumAndNoPartialFile) {
  const std::string dir = scratch_dir();
  const std::string path = dir + "/saved.h5";
  const RowMatrix X = global_matrix(8, 5);
  const Eigen::VectorXd y = Eigen::VectorXd::LinSpaced(8, 1, 8);
  // Write from a partition unlike the loader's: rank 0 holds the first 5 rows.
  const int r = rank(), size = datatest::size();
  std::int64_t begin = r == 0 ? 0 : 5 + (r - 1) * 3 / std::max(1, size - 1);
  std::int64_t end = r == 0 ? (size == 1 ? 8 : 5) : 5 + r * 3 / std::max(1, size - 1);
  save_dataset(MPI_COMM_WORLD, path, X.middleRows(begin, end - begin), y.segment(begin, end - begin),
               "test data");
  EXPECT_TRUE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
  Dataset ds = load_dataset(MPI_COMM_WORLD, path, {true, true});
  const Partition p = Partition::block(8, MPI_COMM_WORLD);
  EXPECT_EQ(ds.X, X.middleRows(p.begin, p.count()));
  EXPECT_EQ(ds.y, y.segment(p.begin, p.count()));
  EXPECT_EQ(ds.crc32, crc_bytes(X.data(), X.size() * sizeof(double)));
  h5::File f(MPI_COMM_WORLD, path, h5::File::Mode::Read);
  EXPECT_EQ(h5::attr_string(f, "/", "description"), "test data");
  EXPECT_EQ(static_cast<std::uint32_t>(h5::attr_int(f, "/", "X_crc32")), ds.crc32);
}

TEST(Save, FailedSaveLeavesNoFileAndKeepsAnExistingOne) {
  const std::string dir = scratch_dir();
  const std::string path = dir + "/out.h5";
  const Partition p = Partition::block(4, MPI_COMM_WORLD);
  const RowMatrix X = global_matrix(4, 2).middleRows(p.begin, p.count());
  // y with the wrong length on rank 0 only: an error on every rank, no file.
  Eigen::VectorXd bad_y = Eigen::VectorXd::Zero(p.count() + (rank() == 0 ? 1 : 0));
  EXPECT_TRUE(fails_everywhere_with(
      [&] { save_dataset(MPI_COMM_WORLD, path, X, bad_y, "bad"); }, {path, "y has"}));
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
  // A good file, then a failing overwrite: the good file stays.
  save_dataset(MPI_COMM_WORLD, path, X, Eigen::VectorXd::Zero(p.count()), "good");
  EXPECT_TRUE(fails_everywhere_with(
      [&] { save_dataset(MPI_COMM_WORLD, path, X, bad_y, "bad"); }, {path}));
  Dataset ds = load_dataset(MPI_COMM_WORLD, path);
  EXPECT_EQ(ds.X, X);
}

TEST(Load, BadFilesFailOnEveryRankNamingFileAndProblem) {
  const std::string dir = scratch_dir();
  const RowMatrix X = global_matrix(7, 3);
  const Eigen::VectorXd y = Eigen::VectorXd::Zero(7);

  // NaN in the last row: only the last rank sees it.
  RowMatrix with_nan = X;
  with_nan(6, 2) = std::numeric_limits<double>::quiet_NaN();
  write_dense(dir + "/nan.h5", with_nan, y);
  EXPECT_TRUE(fails_everywhere_with([&] { load_dataset(MPI_COMM_WORLD, dir + "/nan.h5"); },
                                    {dir + "/nan.h5", "non-finite value in /X at row 6, column 2"}));
  RowMatrix with_inf = X;
  with_inf(0, 0) = std::numeric_limits<double>::infinity();
  write_dense(dir + "/inf.h5", with_inf, y);
  EXPECT_TRUE(fails_everywhere_with([&] { load_dataset(MPI_COMM_WORLD, dir + "/inf.h5"); },
                                    {dir + "/inf.h5", "row 0, column 0"}));

  write_dense(dir + "/short_y.h5", X, Eigen::VectorXd::Zero(6));
  EXPECT_TRUE(fails_everywhere_with([&] { load_dataset(MPI_COMM_WORLD, dir + "/short_y.h5"); },
                                    {dir + "/short_y.h5", "/y must be 1-D with N = 7"}));

  write_dense(dir + "/no_y.h5", X, y, false);
  EXPECT_TRUE(fails_everywhere_with(
      [&] { load_dataset(MPI_COMM_WORLD, dir + "/no_y.h5", {true, true}); },
      {dir + "/no_y.h5", "labels /y are required"}));

  {
    h5::File f(MPI_COMM_WORLD, dir + "/no_x.h5", h5::File::Mode::Create);
    h5::write(f, "Z", std::vector<double>{1, 2}, {2});
  }
  EXPECT_TRUE(fails_everywhere_with([&] { load_dataset(MPI_COMM_WORLD, dir + "/no_x.h5"); },
                                    {dir + "/no_x.h5", "no /X"}));
  {
    h5::File f(MPI_COMM_WORLD, dir + "/x1d.h5", h5::File::Mode::Create);
    h5::write(f, "X", std::vector<double>{1, 2, 3}, {3});
  }
  EXPECT_TRUE(fails_everywhere_with([&] { load_dataset(MPI_COMM_WORLD, dir + "/x1d.h5"); },
                                    {dir + "/x1d.h5", "/X must be 2-D"}));

  // CSR: a column index out of range in the last row, a non-monotone indptr, a bad X_shape.
  write_csr(dir + "/csr_range.h5", {0, 1, 2, 3}, {0, 1, 4}, {1, 1, 1}, 3, 4);
  EXPECT_TRUE(fails_everywhere_with([&] { load_dataset(MPI_COMM_WORLD, dir + "/csr_range.h5"); },
                                    {dir + "/csr_range.h5", "column index 4", "out of range"}));
  write_csr(dir + "/csr_order.h5", {0, 2, 1, 3}, {0, 1, 2}, {1, 1, 1}, 3, 4);
  EXPECT_TRUE(fails_everywhere_with([&] { load_dataset(MPI_COMM_WORLD, dir + "/csr_order.h5"); },
                                    {dir + "/csr_order.h5", "not monotone"}));
  write_csr(dir + "/csr_shape.h5", {0, 1, 2}, {0, 1}, {1, 1}, 3, 4);
  EXPECT_TRUE(fails_everywhere_with([&] { load_dataset(MPI_COMM_WORLD, dir + "/csr_shape.h5"); },
                                    {dir + "/csr_shape.h5", "N+1 = 4 entries"}));
  write_csr(dir + "/csr_nan.h5", {0, 1, 2}, {0, 1}, {1, std::nan("")}, 2, 4);
  EXPECT_TRUE(fails_everywhere_with([&] { load_dataset(MPI_COMM_WORLD, dir + "/csr_nan.h5"); },
                                    {dir + "/csr_nan.h5", "non-finite value in /X_data"}));

  // Not HDF5 at all, missing, truncated.
  datatest::write_file(dir + "/text.h5", "this is not an HDF5 file\n");
  EXPECT_TRUE(fails_everywhere_with([&] { load_dataset(MPI_COMM_WORLD, dir + "/text.h5"); },
                                    {dir + "/text.h5", "not an HDF5 file"}));
  EXPECT_TRUE(fails_everywhere_with([&] { load_dataset(MPI_COMM_WORLD, dir + "/missing.h5"); },
                                    {dir + "/missing.h5", "cannot open"}));
  save_dataset(MPI_COMM_WORLD, dir + "/cut.h5",
               global_matrix(200, 50).middleRows(Partition::block(200, MPI_COMM_WORLD).begin,
                                                 Partition::block(200, MPI_COMM_WORLD).count()),
               Eigen::VectorXd(), "to be cut");
  datatest::truncate_file(dir + "/cut.h5", std::filesystem::file_size(dir + "/cut.h5") / 2);
  EXPECT_TRUE(fails_everywhere_with([&] { load_dataset(MPI_COMM_WORLD, dir + "/cut.h5"); },
                                    {dir + "/cut.h5"}));

  // A stored checksum that does not match the data.
  save_dataset(MPI_COMM_WORLD, dir + "/crc.h5",
               X.middleRows(Partition::block(7, MPI_COMM_WORLD).begin,
                            Partition::block(7, MPI_COMM_WORLD).count()),
               Eigen::VectorXd(), "checksummed");
  {
    h5::File f(MPI_COMM_WORLD, dir + "/crc.h5", h5::File::Mode::ReadWrite);
    h5::set_attr(f, "/", "X_crc32", std::int64_t{12345});
  }
  EXPECT_TRUE(fails_everywhere_with([&] { load_dataset(MPI_COMM_WORLD, dir + "/crc.h5"); },
                                    {dir + "/crc.h5", "checksum mismatch"}));
}

TEST(Save, SparseTableRoundTripsAsCsr) {
  const std::string dir = scratch_dir();
  datatest::write_file(dir + "/a.svm", "1 1:0.5 4:2\n-1\n1 2:3 3:-1 4:1\n-1 1:7\n");
  data::LibsvmOptions o;
  o.sparse = true;
  data::Table t;
  if (rank() == 0) t = data::read_libsvm(dir + "/a.svm", o);  // the others pass an empty table
  data::save_table(MPI_COMM_WORLD, dir + "/a.h5", t, "csr");
  Dataset sparse = load_dataset(MPI_COMM_WORLD, dir + "/a.h5", {true, false});
  ASSERT_TRUE(sparse.sparse);
  data::LibsvmOptions dense_options;
  const RowMatrix dense = data::read_libsvm(dir + "/a.svm", dense_options).X;
  const Partition p = Partition::block(4, MPI_COMM_WORLD);
  EXPECT_EQ(sparse.dense_local(), dense.middleRows(p.begin, p.count()));
  EXPECT_EQ(sparse.y, Eigen::Vector4d(1, -1, 1, -1).segment(p.begin, p.count()));
  // The stored checksum was computed over ranks when writing and matches on loading.
  h5::File f(MPI_COMM_WORLD, dir + "/a.h5", h5::File::Mode::Read);
  EXPECT_EQ(static_cast<std::uint32_t>(h5::attr_int(f, "/", "X_crc32")), sparse.crc32);
}
