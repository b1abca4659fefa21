// Train / validation / test splits for the learning problems, built with the data library
// (include/parasol/data_tools.hpp): balanced row blocks, seeded shuffles and label
// corruption keyed by global row, so the data do not depend on the rank count.
#include <parasol/data_tools.hpp>
#include <parasol/error.hpp>

#include <numeric>

#include "common.hpp"

namespace parasol::bilevel {
namespace {

Eigen::VectorXd field(const data::Rows& rows, const std::string& name) {
  auto it = rows.fields.find(name);
  return it == rows.fields.end() ? Eigen::VectorXd() : it->second;
}

// Rank 0's whole table spread over ranks in balanced blocks, order kept.
data::Rows balanced(MPI_Comm comm, data::Table table) {
  data::Rows rows = data::rows_from_table(comm, std::move(table));
  std::vector<std::int64_t> dest(rows.rows.count());
  std::iota(dest.begin(), dest.end(), rows.rows.begin);
  return data::move_rows(comm, rows, dest, rows.rows.global);
}

data::Table read_idx_pair(MPI_Comm comm, const std::string& images, const std::string& labels) {
  data::Table table;
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  collective(comm, [&] {
    if (rank == 0) {
      table = data::read_idx_table(images, labels);
      data::scale_to_unit(table);
    }
  });
  return table;
}

}  // namespace

SplitData load_fashion_mnist_split(MPI_Comm comm, const std::string& dir, std::uint64_t seed,
                                   double noise, bool standardize) {
  data::Rows all = balanced(comm, read_idx_pair(comm, dir + "/train-images-idx3-ubyte.gz",
                                                dir + "/train-labels-idx1-ubyte.gz"));
  check_all(comm, all.rows.global >= 55000,
            "hypercleaning: " + dir + " holds " + std::to_string(all.rows.global) +
                " training images, need 55,000 (50,000 train + 5,000 validation)");
  const double n = double(all.rows.global);
  std::vector<data::Rows> parts =
      data::split(comm, all, {50000 / n, 5000 / n, 1.0 - 55000 / n}, seed);
  data::Rows train = data::corrupt_labels(comm, parts[0], noise, seed, 10);
  data::Rows test = balanced(comm, read_idx_pair(comm, dir + "/t10k-images-idx3-ubyte.gz",
                                                 dir + "/t10k-labels-idx1-ubyte.gz"));
  if (standardize) {
    // Zero mean, unit variance per pixel with the training statistics (also applied to
    // validation and test): the lower level is far better conditioned than on raw pixels.
    train = data::standardize(comm, train);
    const auto& m = train.extras.at("mean").values;
    const auto& s = train.extras.at("std").values;
    Eigen::VectorXd mean = Eigen::Map<const Eigen::VectorXd>(m.data(), Eigen::Index(m.size()));
    Eigen::VectorXd std = Eigen::Map<const Eigen::VectorXd>(s.data(), Eigen::Index(s.size()));
    parts[1] = data::standardize(comm, parts[1], &mean, &std);
    test = data::standardize(comm, test, &mean, &std);
  }
  SplitData out;
  out.X_train = std::move(train.X);
  out.y_train = field(train, "y");
  out.y_train_clean = field(train, "y_true");
  out.train_begin = train.rows.begin;
  out.train_global = train.rows.global;
  out.X_val = std::move(parts[1].X);
  out.y_val = field(parts[1], "y");
  out.val_begin = parts[1].rows.begin;
  out.val_global = parts[1].rows.global;
  out.X_test = std::move(test.X);
  out.y_test = field(test, "y");
  out.test_begin = test.rows.begin;
  out.test_global = test.rows.global;
  return out;
}

SplitData load_split(MPI_Comm comm, const std::string& path, double val_fraction,
                     double test_fraction) {
  check_all(comm, val_fraction > 0 && test_fraction >= 0 && val_fraction + test_fraction < 1,
            "bilevel: need 0 < val_fraction, 0 <= test_fraction, val + test < 1");
  data::Rows rows = data::load_rows(comm, path);
  check_all(comm, rows.has("y"), "bilevel: " + path + " has no labels /y");
  // Contiguous parts in file order: train first, then validation, then test.
  std::vector<std::int64_t> sizes =
      data::split_sizes(rows.rows.global, {1.0 - val_fraction - test_fraction, val_fraction, test_fraction});
  std::int64_t bounds[4] = {0, sizes[0], sizes[0] + sizes[1], rows.rows.global};
  check_all(comm, sizes[0] > 0 && sizes[1] > 0,
            "bilevel: " + path + " is too small to split into training and validation rows");
  Eigen::VectorXd labels = field(rows, "y"), clean = field(rows, "y_true");
  SplitData out;
  RowMatrix* X[3] = {&out.X_train, &out.X_val, &out.X_test};
  Eigen::VectorXd* y[3] = {&out.y_train, &out.y_val, &out.y_test};
  std::int64_t* begin[3] = {&out.train_begin, &out.val_begin, &out.test_begin};
  std::int64_t* global[3] = {&out.train_global, &out.val_global, &out.test_global};
  for (int part = 0; part < 3; ++part) {
    std::int64_t lo = std::max(bounds[part], rows.rows.begin);
    std::int64_t hi = std::min(bounds[part + 1], rows.rows.end);
    std::int64_t count = std::max<std::int64_t>(hi - lo, 0);
    std::int64_t local = lo - rows.rows.begin;
    *X[part] = count > 0 ? RowMatrix(rows.X.middleRows(local, count)) : RowMatrix(0, rows.cols);
    *y[part] = count > 0 ? Eigen::VectorXd(labels.segment(local, count)) : Eigen::VectorXd(0);
    *begin[part] = count > 0 ? lo - bounds[part] : 0;
    *global[part] = bounds[part + 1] - bounds[part];
    if (part == 0 && clean.size() == labels.size())
      out.y_train_clean = count > 0 ? Eigen::VectorXd(clean.segment(local, count)) : Eigen::VectorXd(0);
  }
  return out;
}

}  // namespace parasol::bilevel
