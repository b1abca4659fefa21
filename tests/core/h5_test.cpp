#include <gtest/gtest.h>
#include <parasol/error.hpp>
#include <parasol/h5.hpp>
#include <parasol/partition.hpp>

#include <fstream>

#include "parasol_test.hpp"

namespace h5 = parasol::h5;
using parasol::Error;
using parasol::Partition;

TEST(H5, ReplicatedArraysAndAttributesRoundTrip) {
  const std::string path = parasol::test::scratch_dir() + "/a.h5";
  {
    h5::File f(MPI_COMM_WORLD, path, h5::File::Mode::Create);
    h5::write(f, "/group/matrix", std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3});
    h5::write(f, "/ints", std::vector<std::int64_t>{7, -8}, {2});
    h5::set_attr(f, "/", "name", std::string("parasol"));
    h5::set_attr(f, "/group", "tol", 1e-8);
    h5::set_attr(f, "/group", "count", std::int64_t{42});
    h5::set_attr(f, "/group", "list", std::vector<double>{0.5, 1.5});
  }
  h5::File f(MPI_COMM_WORLD, path, h5::File::Mode::Read);
  std::vector<std::uint64_t> dims;
  EXPECT_EQ(h5::read_doubles(f, "/group/matrix", &dims), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(dims, (std::vector<std::uint64_t>{2, 3}));
  EXPECT_EQ(h5::read_int64s(f, "/ints"), (std::vector<std::int64_t>{7, -8}));
  EXPECT_EQ(h5::attr_string(f, "/", "name"), "parasol");
  EXPECT_EQ(h5::attr_double(f, "/group", "tol"), 1e-8);
  EXPECT_EQ(h5::attr_int(f, "/group", "count"), 42);
  EXPECT_EQ(h5::attr_doubles(f, "/group", "list"), (std::vector<double>{0.5, 1.5}));
  EXPECT_FALSE(h5::has_attr(f, "/group", "missing"));
}

TEST(H5, RowDistributedWriteReadsBackInGlobalOrder) {
  const std::string path = parasol::test::scratch_dir() + "/rows.h5";
  const std::int64_t n = 7, cols = 3;  // uneven over 2 and 3 ranks
  const Partition p = Partition::block(n, MPI_COMM_WORLD);
  std::vector<double> local;
  for (std::int64_t i = p.begin; i < p.end; ++i)
    for (std::int64_t j = 0; j < cols; ++j) local.push_back(10.0 * i + j);
  {
    h5::File f(MPI_COMM_WORLD, path, h5::File::Mode::Create);
    h5::write_rows(f, "/X", local.data(), p.count(), cols);
  }
  h5::File f(MPI_COMM_WORLD, path, h5::File::Mode::Read);
  EXPECT_EQ(h5::shape(f, "/X"), (std::vector<std::uint64_t>{7, 3}));
  const auto all = h5::read_doubles(f, "/X");
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < cols; ++j) EXPECT_EQ(all[i * cols + j], 10.0 * i + j);
  EXPECT_EQ(h5::read_rows(f, "/X", p.begin, p.count()), local);
  EXPECT_THROW(h5::read_rows(f, "/X", 5, 3), Error);
}

TEST(H5, SeriesGrowByAppends) {
  const std::string path = parasol::test::scratch_dir() + "/series.h5";
  h5::File f(MPI_COMM_WORLD, path, h5::File::Mode::Create);
  h5::create_series(f, "/history/objective");
  for (int i = 0; i < 300; i += 3)
    h5::append_series(f, "/history/objective", {0.5 * i, 0.5 * (i + 1), 0.5 * (i + 2)});
  const auto values = h5::read_doubles(f, "/history/objective");
  ASSERT_EQ(values.size(), 300u);
  EXPECT_EQ(values[299], 149.5);
}

TEST(H5, MissingAndMalformedFilesGiveNamedErrorsOnEveryRank) {
  const std::string dir = parasol::test::scratch_dir();
  const std::string text = dir + "/not.h5";
  if (parasol::test::rank() == 0) std::ofstream(text) << "this is not HDF5\n";
  MPI_Barrier(MPI_COMM_WORLD);
  for (const std::string& path : {text, dir + "/absent.h5"}) {
    try {
      parasol::collective(MPI_COMM_WORLD,
                          [&] { h5::File f(MPI_COMM_WORLD, path, h5::File::Mode::Read); });
      FAIL() << path << " opened";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
}

TEST(Errors, CheckAllMakesOneRanksFailureEveryonesError) {
  const int last = parasol::test::size() - 1;
  try {
    parasol::check_all(MPI_COMM_WORLD, parasol::test::rank() != last,
                       "rank " + std::to_string(parasol::test::rank()) + " failed");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "rank " + std::to_string(last) + " failed");
  }
}
