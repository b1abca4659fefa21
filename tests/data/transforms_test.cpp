// parasol-data's transforms on row-distributed tables. Each result is checked against an
// independent computation on the whole table, and against the same transform run by this
// rank alone (MPI_COMM_SELF): the result must not depend on the number of ranks.
#include <gtest/gtest.h>
#include <parasol/data_tools.hpp>
#include <parasol/partition.hpp>

#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include "data_test_util.hpp"

using namespace parasol;
using namespace parasol::data;
using parasol::datatest::scratch_dir;

namespace {

// A table of n rows: X(i, :) = [i, 2i, i^2 mod 7], y = i mod 10, held in block rows of comm.
Rows make_table(MPI_Comm comm, std::int64_t n) {
  Rows t;
  t.rows = Partition::block(n, comm);
  t.cols = 3;
  t.X.resize(t.rows.count(), 3);
  Eigen::VectorXd y(t.rows.count());
  for (std::int64_t r = 0; r < t.rows.count(); ++r) {
    const std::int64_t i = t.rows.begin + r;
    t.X.row(r) << double(i), 2.0 * double(i), double((i * i) % 7);
    y[r] = double(i % 10);
  }
  t.fields["y"] = y;
  t.extras["W_true"] = Replicated{{1, 2, 3, 4}, {2, 2}};
  return t;
}

// The whole table on every rank (gathered in global row order).
RowMatrix gather(const RowMatrix& local, std::int64_t cols) {
  int size = datatest::size();
  int mine = static_cast<int>(local.size());
  std::vector<int> counts(size), displs(size);
  MPI_Allgather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD);
  std::partial_sum(counts.begin(), counts.end() - 1, displs.begin() + 1);
  const int total = std::accumulate(counts.begin(), counts.end(), 0);
  RowMatrix all(total / cols, cols);
  MPI_Allgatherv(local.data(), mine, MPI_DOUBLE, all.data(), counts.data(), displs.data(),
                 MPI_DOUBLE, MPI_COMM_WORLD);
  return all;
}
Eigen::VectorXd gather(const Eigen::VectorXd& local) {
  RowMatrix m = Eigen::Map<const RowMatrix>(local.data(), local.size(), 1);
  RowMatrix all = gather(m, 1);
  return Eigen::Map<Eigen::VectorXd>(all.data(), all.rows());
}

// This rank's block of what MPI_COMM_SELF computed for the whole table.
RowMatrix my_block(const RowMatrix& whole, const Partition& p) {
  return whole.middleRows(p.begin, p.count());
}

}  // namespace

TEST(Redistribute, ReversesRowsAcrossRanks) {
  Rows t = make_table(MPI_COMM_WORLD, 11);
  std::vector<std::int64_t> dest;
  for (std::int64_t r = 0; r < t.rows.count(); ++r) dest.push_back(10 - (t.rows.begin + r));
  RowMatrix out = redistribute_rows(MPI_COMM_WORLD, t.X, dest, 11);
  const Partition p = Partition::block(11, MPI_COMM_WORLD);
  ASSERT_EQ(out.rows(), p.count());
  for (std::int64_t r = 0; r < p.count(); ++r) EXPECT_EQ(out(r, 0), double(10 - (p.begin + r)));
}

TEST(Split, SizesAndPermutationIndependentOfRanks) {
  EXPECT_EQ(split_sizes(10, {0.6, 0.2, 0.2}), (std::vector<std::int64_t>{6, 2, 2}));
  EXPECT_EQ(split_sizes(7, {0.5, 0.5}), (std::vector<std::int64_t>{4, 3}));
  EXPECT_THROW(split_sizes(10, {0.6, 0.6}), Error);
  EXPECT_THROW(split_sizes(10, {1.2, -0.2}), Error);

  const std::int64_t n = 53;
  Rows t = make_table(MPI_COMM_WORLD, n);
  std::vector<Rows> parts = split(MPI_COMM_WORLD, t, {0.6, 0.2, 0.2}, 9);
  ASSERT_EQ(parts.size(), 3u);
  const std::vector<std::int64_t> sizes = split_sizes(n, {0.6, 0.2, 0.2});
  const std::vector<std::int64_t> perm = permutation(n, 9, "data.split");
  // Every part is the next run of the seeded permutation, rows intact with their labels.
  std::set<std::int64_t> seen;
  std::int64_t start = 0;
  for (std::size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(parts[k].rows.global, sizes[k]);
    EXPECT_EQ(parts[k].extras.at("W_true").values, (std::vector<double>{1, 2, 3, 4}));
    RowMatrix X = gather(parts[k].X, 3);
    Eigen::VectorXd y = gather(parts[k].fields.at("y"));
    ASSERT_EQ(X.rows(), sizes[k]);
    for (std::int64_t j = 0; j < sizes[k]; ++j) {
      const std::int64_t source = perm[start + j];
      EXPECT_EQ(X(j, 0), double(source));
      EXPECT_EQ(X(j, 1), 2.0 * double(source));
      EXPECT_EQ(y[j], double(source % 10));
      seen.insert(static_cast<std::int64_t>(X(j, 0)));
    }
    start += sizes[k];
  }
  EXPECT_EQ(seen.size(), std::size_t(n));  // a partition of the rows: none lost, none twice
  // The permutation is a permutation.
  std::vector<std::int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (std::int64_t i = 0; i < n; ++i) EXPECT_EQ(sorted[i], i);
}

TEST(Subset, TwoClassesBecomePlusMinusOneInInputOrder) {
  const std::int64_t n = 47;
  Rows t = make_table(MPI_COMM_WORLD, n);
  SubsetOptions o;
  o.classes = {6, 0};
  Rows s = subset(MPI_COMM_WORLD, t, o);
  RowMatrix X = gather(s.X, 3);
  Eigen::VectorXd y = gather(s.fields.at("y"));
  std::vector<std::int64_t> expected;
  for (std::int64_t i = 0; i < n; ++i)
    if (i % 10 == 6 || i % 10 == 0) expected.push_back(i);
  ASSERT_EQ(X.rows(), std::int64_t(expected.size()));
  for (std::size_t j = 0; j < expected.size(); ++j) {
    EXPECT_EQ(X(j, 0), double(expected[j]));
    EXPECT_EQ(y[j], expected[j] % 10 == 6 ? 1.0 : -1.0);  // first listed class is +1
  }
  // -max keeps the first rows; index labels number the classes in the order given.
  o.max_rows = 3;
  o.labels = LabelMode::Index;
  Rows head = subset(MPI_COMM_WORLD, t, o);
  EXPECT_EQ(head.rows.global, 3);
  Eigen::VectorXd hy = gather(head.fields.at("y"));
  EXPECT_EQ(hy, Eigen::Vector3d(1, 0, 1));  // rows 0, 6, 10
  // Original labels for a multiclass subset; no classes: plain head selection.
  SubsetOptions multi;
  multi.classes = {1, 2, 3};
  Rows m = subset(MPI_COMM_WORLD, t, multi);
  Eigen::VectorXd my = gather(m.fields.at("y"));
  EXPECT_EQ(my.size(), 15);
  EXPECT_TRUE((my.array() >= 1).all() && (my.array() <= 3).all());
  SubsetOptions first;
  first.max_rows = 5;
  EXPECT_EQ(gather(subset(MPI_COMM_WORLD, t, first).X, 3).col(0),
            Eigen::VectorXd::LinSpaced(5, 0, 4));
  SubsetOptions absent;
  absent.classes = {42, 43};
  EXPECT_THROW(subset(MPI_COMM_WORLD, t, absent), Error);
}

TEST(Corrupt, RateWithinToleranceTrueLabelsKeptRankIndependent) {
  const std::int64_t n = 4000;
  const double rate = 0.3;
  Rows t = make_table(MPI_COMM_WORLD, n);
  std::int64_t changed = -1;
  Rows c = corrupt_labels(MPI_COMM_WORLD, t, rate, 5, 10, &changed);
  ASSERT_TRUE(c.has("y_true"));
  EXPECT_EQ(c.fields.at("y_true"), t.fields.at("y"));
  const Eigen::VectorXd y = c.fields.at("y"), truth = c.fields.at("y_true");
  long long local_changed = 0;
  for (Eigen::Index r = 0; r < y.size(); ++r) {
    EXPECT_TRUE(y[r] >= 0 && y[r] <= 9 && y[r] == std::floor(y[r]));
    if (y[r] != truth[r]) ++local_changed;
  }
  long long total = 0;
  MPI_Allreduce(&local_changed, &total, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_EQ(total, changed);  // a replaced label always differs from the true one
  const double sd = std::sqrt(rate * (1 - rate) / n);
  EXPECT_NEAR(double(changed) / n, rate, 4 * sd);

  // The same rows on one rank alone give the same labels.
  Rows whole = make_table(MPI_COMM_SELF, n);
  Rows alone = corrupt_labels(MPI_COMM_SELF, whole, rate, 5, 10);
  EXPECT_EQ(alone.fields.at("y").segment(t.rows.begin, t.rows.count()), y);

  // Corrupting again keeps the first true labels; +-1 labels are flipped.
  Rows twice = corrupt_labels(MPI_COMM_WORLD, c, 0.5, 6, 10);
  EXPECT_EQ(twice.fields.at("y_true"), truth);
  Rows pm = t;
  pm.fields["y"] = (t.fields.at("y").array() < 5).select(Eigen::VectorXd::Ones(t.rows.count()),
                                                        -Eigen::VectorXd::Ones(t.rows.count()));
  Rows flipped = corrupt_labels(MPI_COMM_WORLD, pm, 1.0, 1, 2);
  EXPECT_EQ(flipped.fields.at("y"), -pm.fields.at("y"));
  // Labels outside 0..K-1 are an error on every rank.
  EXPECT_THROW(corrupt_labels(MPI_COMM_WORLD, t, 0.1, 1, 5), Error);
}

TEST(Standardize, ZeroMeanUnitVarianceConstantFeatureZero) {
  const std::int64_t n = 31;
  Rows t = make_table(MPI_COMM_WORLD, n);
  // Column 1 becomes constant.
  t.X.col(1).setConstant(3.5);
  Rows s = standardize(MPI_COMM_WORLD, t);
  RowMatrix X = gather(s.X, 3);
  RowMatrix original = gather(t.X, 3);
  for (int j : {0, 2}) {
    EXPECT_NEAR(X.col(j).mean(), 0.0, 1e-13);
    EXPECT_NEAR(X.col(j).squaredNorm() / n, 1.0, 1e-12);
    // Independent: (x - mean) / population std of the original column.
    const double mean = original.col(j).mean();
    const double sd = std::sqrt((original.col(j).array() - mean).square().sum() / n);
    EXPECT_NEAR(s.extras.at("mean").values[j], mean, 1e-12);
    EXPECT_NEAR(s.extras.at("std").values[j], sd, 1e-12);
    EXPECT_NEAR(X(4, j), (original(4, j) - mean) / sd, 1e-12);
  }
  EXPECT_TRUE((X.col(1).array() == 0).all());
  EXPECT_EQ(s.extras.at("std").values[1], 0.0);
  // Statistics given explicitly (a training set's) are applied as they are.
  Eigen::VectorXd mean = Eigen::Vector3d(1, 0, 0), sd = Eigen::Vector3d(2, 0, 1);
  Rows applied = standardize(MPI_COMM_WORLD, t, &mean, &sd);
  if (t.rows.count() > 0) {
    EXPECT_EQ(applied.X(0, 0), (t.X(0, 0) - 1) / 2);
    EXPECT_EQ(applied.X(0, 1), 0.0);
  }
}

TEST(Bars, ShapesGroundTruthAndRankIndependence) {
  BarsOptions o;
  o.H = 10;
  o.N = 400;
  o.sigma = 0.0;  // noise-free: every pixel is amplitude * (row bar on + column bar on)
  o.seed = 3;
  Rows b = make_bars(MPI_COMM_WORLD, o);
  EXPECT_EQ(b.rows.global, 400);
  EXPECT_EQ(b.cols, 25);
  const auto& W = b.extras.at("W_true");
  EXPECT_EQ(W.dims, (std::vector<std::uint64_t>{10, 25}));
  RowMatrix Wm = Eigen::Map<const RowMatrix>(W.values.data(), 10, 25);
  for (int h = 0; h < 10; ++h) {
    EXPECT_EQ((Wm.row(h).array() == 10.0).count(), 5);  // one bar: 5 pixels at the amplitude
    EXPECT_EQ((Wm.row(h).array() == 0.0).count(), 20);
  }
  EXPECT_EQ(Wm.topRows(5).colwise().sum(), Eigen::RowVectorXd::Constant(25, 10.0));
  EXPECT_EQ(Wm.bottomRows(5).colwise().sum(), Eigen::RowVectorXd::Constant(25, 10.0));
  RowMatrix X = gather(b.X, 25);
  // Noise-free pixels are amplitude times the number of active bars through them (0, 1, 2).
  long long active = 0;
  for (Eigen::Index i = 0; i < X.rows(); ++i) {
    Eigen::Matrix<double, 5, 5, Eigen::RowMajor> img = Eigen::Map<const Eigen::Matrix<double, 5, 5, Eigen::RowMajor>>(X.row(i).data());
    for (int a = 0; a < 5; ++a)
      for (int c = 0; c < 5; ++c) EXPECT_TRUE(img(a, c) == 0 || img(a, c) == 10 || img(a, c) == 20);
    active += static_cast<long long>((img.array() / 10.0).sum());
  }
  // Each active bar contributes 5 pixels: mean number of active bars near H * pi = 2.
  const double per_image = double(active) / 5.0 / 400.0;
  EXPECT_NEAR(per_image, 2.0, 0.3);
  Rows alone = make_bars(MPI_COMM_SELF, o);
  EXPECT_EQ(my_block(alone.X, b.rows), b.X);

  BarsOptions noisy = o;
  noisy.sigma = 2.0;
  noisy.random_signs = true;
  noisy.N = 2000;
  Rows n = make_bars(MPI_COMM_WORLD, noisy);
  RowMatrix Wn = Eigen::Map<const RowMatrix>(n.extras.at("W_true").values.data(), 10, 25);
  EXPECT_TRUE((Wn.array().abs() == 10 || Wn.array() == 0).all());
  // Residual noise: X - E[X] has variance about sigma^2 + bar variance; check the mean instead.
  RowMatrix Xn = gather(n.X, 25);
  Eigen::RowVectorXd expected_mean = 0.2 * Wn.colwise().sum();
  EXPECT_LT((Xn.colwise().mean() - expected_mean).cwiseAbs().maxCoeff(), 1.0);
}

TEST(Patches, CutFromTheRightPlaceAndCentered) {
  // 6 images of 5 x 5: pixel value = 1000 * image + pixel index.
  Rows images;
  images.rows = Partition::block(6, MPI_COMM_WORLD);
  images.cols = 25;
  images.X.resize(images.rows.count(), 25);
  for (std::int64_t r = 0; r < images.rows.count(); ++r)
    for (int d = 0; d < 25; ++d) images.X(r, d) = 1000.0 * double(images.rows.begin + r) + d;
  PatchOptions o;
  o.size = 3;
  o.count = 50;
  o.seed = 2;
  Rows p = cut_patches(MPI_COMM_WORLD, images, o);
  EXPECT_EQ(p.rows.global, 50);
  EXPECT_EQ(p.cols, 9);
  RowMatrix P = gather(p.X, 9);
  for (Eigen::Index j = 0; j < P.rows(); ++j) {
    const std::int64_t image = static_cast<std::int64_t>(P(j, 0)) / 1000;
    const std::int64_t first = static_cast<std::int64_t>(P(j, 0)) % 1000;
    const std::int64_t top = first / 5, left = first % 5;
    EXPECT_LE(top, 2);
    EXPECT_LE(left, 2);
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b)
        EXPECT_EQ(P(j, a * 3 + b), 1000.0 * image + (top + a) * 5 + left + b);
  }
  // Same patches on one rank; centered patches have zero mean.
  Rows all_images = images;
  all_images.rows = Partition::block(6, MPI_COMM_SELF);
  all_images.X = gather(images.X, 25);
  EXPECT_EQ(my_block(cut_patches(MPI_COMM_SELF, all_images, o).X, p.rows), p.X);
  o.center = true;
  Rows c = cut_patches(MPI_COMM_WORLD, images, o);
  for (Eigen::Index j = 0; j < c.X.rows(); ++j) EXPECT_NEAR(c.X.row(j).mean(), 0.0, 1e-12);
  images.cols = 24;
  images.X.conservativeResize(images.X.rows(), 24);
  EXPECT_THROW(cut_patches(MPI_COMM_WORLD, images, o), Error);
}

TEST(RowsFiles, SaveAndLoadKeepFieldsAndExtras) {
  const std::string path = scratch_dir() + "/rows.h5";
  Rows t = corrupt_labels(MPI_COMM_WORLD, make_table(MPI_COMM_WORLD, 13), 0.5, 1, 10);
  save_rows(MPI_COMM_WORLD, path, t, "rows");
  Rows back = load_rows(MPI_COMM_WORLD, path);
  EXPECT_EQ(back.X, t.X);
  EXPECT_EQ(back.fields.at("y"), t.fields.at("y"));
  EXPECT_EQ(back.fields.at("y_true"), t.fields.at("y_true"));
  EXPECT_EQ(back.extras.at("W_true").values, t.extras.at("W_true").values);
  EXPECT_EQ(back.extras.at("W_true").dims, t.extras.at("W_true").dims);
}
