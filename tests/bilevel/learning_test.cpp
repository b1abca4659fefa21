// The learning problems on small synthetic data spread over the ranks: the ridge l2reg
// hypergradient against its closed form, and the derivatives of the logistic l2reg and
// hyper-cleaning problems (including the distributed per-sample weights) through finite
// differences of Phi(x) = F(x, y*(x)).
#include <parasol/partition.hpp>
#include <parasol/random.hpp>

#include "test_util.hpp"

namespace parasol::bilevel {
namespace {

// Global rows generated identically everywhere; each rank keeps its block.
struct Rows {
  RowMatrix X;
  Vector y;
};
Rows make_rows(std::int64_t n, std::int64_t d, std::uint64_t seed, int kind) {
  Random truth(99, "test.truth", 0);  // the same model for train, validation and test
  Vector w(d);
  for (auto& v : w) v = truth.normal();
  Random random(seed, "test.rows", 0);
  Rows r{RowMatrix(n, d), Vector(n)};
  for (std::int64_t j = 0; j < n; ++j) {
    for (std::int64_t k = 0; k < d; ++k) r.X(j, k) = random.normal();
    double t = r.X.row(j).dot(w) + 0.3 * random.normal();
    if (kind == 0) r.y[j] = t;                          // regression
    if (kind == 1) r.y[j] = t > 0 ? 1.0 : -1.0;         // binary
    if (kind == 2) r.y[j] = t < -0.5 ? 0 : (t < 0.5 ? 1 : 2);  // 3 classes
  }
  return r;
}

SplitData split(const Rows& train, const Rows& val, const Rows& test) {
  SplitData s;
  auto slice = [](const Rows& all, RowMatrix* X, Vector* y, std::int64_t* begin,
                  std::int64_t* global) {
    Partition p = Partition::block(all.X.rows(), MPI_COMM_WORLD);
    *X = all.X.middleRows(p.begin, p.count());
    *y = all.y.segment(p.begin, p.count());
    *begin = p.begin;
    *global = all.X.rows();
  };
  slice(train, &s.X_train, &s.y_train, &s.train_begin, &s.train_global);
  slice(val, &s.X_val, &s.y_val, &s.val_begin, &s.val_global);
  slice(test, &s.X_test, &s.y_test, &s.test_begin, &s.test_global);
  return s;
}

TEST(L2Reg, RidgeHypergradientMatchesClosedForm) {
  const std::int64_t d = 5;
  Rows train = make_rows(40, d, 1, 0), val = make_rows(20, d, 2, 0), test = make_rows(10, d, 3, 0);
  auto problem = make_l2reg_problem(MPI_COMM_WORLD, split(train, val, test), L2Loss::Squared);
  Vector x = Vector::LinSpaced(d, -1.0, 1.0);
  // Closed form on the whole data: w = (X'X/n + D)^{-1} X'y/n, D = diag(e^x);
  // dUL/dx_j = -e^{x_j} w_j [(X'X/n + D)^{-1} X_v'(X_v w - y_v)/n_v]_j.
  const double n = 40, nv = 20;
  Matrix M = train.X.transpose() * train.X / n;
  M.diagonal() += x.array().exp().matrix();
  Eigen::LLT<Matrix> chol(M);
  Vector w = chol.solve(train.X.transpose() * train.y / n);
  Vector r = chol.solve(val.X.transpose() * (val.X * w - val.y) / nv);
  Vector closed = -(x.array().exp() * w.array() * r.array()).matrix();

  Vector y = solve_lower(*problem, x, Vector::Zero(d), 1e-13);
  EXPECT_LT(test::relative_error(y, w), 1e-10);
  EXPECT_LT(test::relative_error(implicit_hypergradient(*problem, x, y), closed), 1e-9);
  // The methods' estimates with their inner sequences converged.
  for (std::string method : {"borep", "penalty", "bsvrb1", "bsvrb2"}) {
    Options options;
    options.method = method;
    options.borep_lr_y = options.borep_nu = 0.3;
    options.penalty_sigma = 1e-7;
    options.penalty_lr_y = options.penalty_lr_z = 0.3;
    options.bsvrb_tau = options.bsvrb_tau_v = 0.3;
    options.bsvrb_alpha = 1.0;
    options.bsvrb_gamma = 0.0;
    options.bsvrb_vbound = 1e6;
    options.bsvrb_hmin = 1e-6;
    auto solver = make_solver(options, problem);
    Vector estimate = solver->hypergradient_at(x, 3000);
    EXPECT_LT(test::relative_error(estimate, closed), 1e-5) << method << "\n" << estimate.transpose()
                                                            << "\n" << closed.transpose();
  }
}

TEST(L2Reg, LogisticHypergradientMatchesFiniteDifferences) {
  const std::int64_t d = 4;
  Rows train = make_rows(50, d, 4, 1), val = make_rows(20, d, 5, 1), test = make_rows(10, d, 6, 1);
  auto problem = make_l2reg_problem(MPI_COMM_WORLD, split(train, val, test), L2Loss::Logistic);
  Vector x = Vector::LinSpaced(d, -2.0, 0.0);
  auto phi = [&](const Vector& at) {
    Vector y = solve_lower(*problem, at, Vector::Zero(d), 1e-13);
    return problem->upper(at, y, nullptr, nullptr);
  };
  Vector reference = test::finite_difference(phi, x, 1e-4);
  Vector y = solve_lower(*problem, x, Vector::Zero(d), 1e-13);
  EXPECT_LT(test::relative_error(implicit_hypergradient(*problem, x, y), reference), 1e-6);
  auto metrics = problem->metrics(x, y);
  ASSERT_EQ(metrics.size(), 2u);
  EXPECT_GT(metrics[0], 0.6);  // the linear model separates the synthetic classes
}

TEST(HyperCleaning, DistributedWeightsHypergradientMatchesFiniteDifferences) {
  const std::int64_t d = 3, n = 24;
  Rows train = make_rows(n, d, 7, 2), val = make_rows(15, d, 8, 2), test = make_rows(10, d, 9, 2);
  SplitData data = split(train, val, test);
  const std::int64_t begin = data.train_begin;
  auto problem = make_hypercleaning_problem(MPI_COMM_WORLD, data, 3, 0.05);
  ASSERT_TRUE(problem->upper_distributed());
  Vector x_global = Vector::LinSpaced(n, -1.0, 1.0);
  Vector x = x_global.segment(begin, problem->upper_dim());
  const std::int64_t ny = problem->lower_dim();
  auto phi_local = [&](const Vector& local) {
    Vector y = solve_lower(*problem, local, Vector::Zero(ny), 1e-13);
    return problem->upper(local, y, nullptr, nullptr);
  };
  // Finite differences over global coordinates: the owner perturbs its entry.
  Vector reference(n);
  const double h = 1e-4;
  for (std::int64_t j = 0; j < n; ++j) {
    Vector plus = x, minus = x;
    bool mine = j >= begin && j < begin + x.size();
    if (mine) {
      plus[j - begin] += h;
      minus[j - begin] -= h;
    }
    reference[j] = (phi_local(plus) - phi_local(minus)) / (2 * h);
  }
  Vector y = solve_lower(*problem, x, Vector::Zero(ny), 1e-13);
  Vector local = implicit_hypergradient(*problem, x, y);
  Vector gathered = Vector::Zero(n);
  gathered.segment(begin, local.size()) = local;
  MPI_Allreduce(MPI_IN_PLACE, gathered.data(), int(n), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_LT(test::relative_error(gathered, reference), 1e-6)
      << gathered.head(5).transpose() << "\n" << reference.head(5).transpose();
}

}  // namespace
}  // namespace parasol::bilevel
