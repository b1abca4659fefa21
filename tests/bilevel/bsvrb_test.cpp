// BSVRB: reaches the closed-form optimum of multi-block quadratics (blocks spread over the
// ranks), gives bit-for-bit the same iterates at any rank count as on one rank (block and
// sample draws from the shared seed), and its hypergradient estimate on the multi-block
// logistic task matches finite differences of Phi(x) = (1/m) sum_i f_i(x, y_i*(x)); a
// checkpoint restores a run exactly.
#include <parasol/h5.hpp>
#include <parasol/partition.hpp>
#include <parasol/random.hpp>

#include "test_util.hpp"

namespace parasol::bilevel {
namespace {

std::vector<QuadraticData> quadratic_blocks(std::int64_t m) {
  std::vector<QuadraticData> blocks;
  for (std::int64_t i = 0; i < m; ++i) blocks.push_back(random_quadratic(100 + i, 4, 5));
  return blocks;
}

Options bsvrb_settings(const std::string& method) {
  Options o;
  o.method = method;
  o.bsvrb_lr_x = 0.3;
  o.bsvrb_tau = 0.3;
  o.bsvrb_tau_v = 0.3;
  o.bsvrb_beta = 0.5;
  o.bsvrb_alpha = 1.0;
  o.bsvrb_gamma = 0.0;
  o.bsvrb_vbound = 1e6;
  return o;
}

class BsvrbMethods : public ::testing::TestWithParam<std::string> {};

TEST_P(BsvrbMethods, MultiBlockQuadraticReachesOptimum) {
  const std::int64_t m = 5;
  Options options = bsvrb_settings(GetParam());
  options.bsvrb_blocks = m;  // every block each iteration: a deterministic method
  std::shared_ptr<BlockProblem> problem = make_quadratic_blocks(MPI_COMM_WORLD, quadratic_blocks(m));
  Vector x_star;
  ASSERT_TRUE(problem->known_solution(&x_star));
  auto solver = make_block_solver(options, problem);
  test::run_steps(*solver, 600);
  EXPECT_LT(test::relative_error(solver->x(), x_star), 1e-4) << solver->x().transpose();
}

// A small synthetic logistic data set (labels +-1), identical on every rank.
void synthetic(std::int64_t n, std::int64_t d, std::uint64_t seed, RowMatrix* X, Vector* y) {
  Random random(seed, "test.multiblock", 0);
  Vector w(d);
  for (auto& v : w) v = random.normal();
  X->resize(n, d);
  y->resize(n);
  for (std::int64_t j = 0; j < n; ++j) {
    for (std::int64_t k = 0; k < d; ++k) (*X)(j, k) = random.normal();
    (*y)[j] = X->row(j).dot(w) + 0.5 * random.normal() > 0 ? 1.0 : -1.0;
  }
}

std::shared_ptr<BlockProblem> logistic_blocks(MPI_Comm comm, std::int64_t m) {
  RowMatrix X_train, X_val;
  Vector y_train, y_val;
  synthetic(60, 4, 1, &X_train, &y_train);
  synthetic(30, 4, 2, &X_val, &y_val);
  return make_multiblock_problem(comm, X_train, y_train, X_val, y_val, m, 1e-2);
}

// 3 of the blocks per iteration, 8 samples each, steps large enough that x moves in 40
// iterations.
Options moving_settings(const std::string& method, std::uint64_t seed) {
  Options options = bsvrb_settings(method);
  options.bsvrb_blocks = 3;
  options.batch = 8;
  options.bsvrb_lr_x = 0.5;
  options.bsvrb_alpha = 0.9;
  options.bsvrb_gamma = 1.0;
  options.bsvrb_beta = 0.9;
  options.seed = seed;
  return options;
}

TEST_P(BsvrbMethods, SameIteratesAtAnyRankCount) {
  const std::int64_t m = 7;
  const Options options = moving_settings(GetParam(), 17);
  auto distributed = make_block_solver(options, logistic_blocks(MPI_COMM_WORLD, m));
  auto single = make_block_solver(options, logistic_blocks(MPI_COMM_SELF, m));
  for (std::int64_t t = 1; t <= 40; ++t) {
    distributed->step(t);
    single->step(t);
  }
  // x is replicated; y holds this rank's blocks.
  EXPECT_EQ((distributed->x() - single->x()).cwiseAbs().maxCoeff(), 0.0);
  EXPECT_GT((single->x()).cwiseAbs().maxCoeff(), 0.0);  // it moved
  Partition owned = Partition::block(m, MPI_COMM_WORLD);
  const std::int64_t d = 5;
  Vector mine = single->y().segment(owned.begin * d, owned.count() * d);
  EXPECT_EQ((distributed->y() - mine).cwiseAbs().maxCoeff(), 0.0);
}

// A checkpoint (the lazily updated x and z in their stored form, the block states) restores
// the run exactly: 25 + 15 iterations end bit-for-bit where 40 end, x, y and the stationarity.
TEST_P(BsvrbMethods, CheckpointRestoresTheRunExactly) {
  const std::int64_t m = 7;
  const Options options = moving_settings(GetParam(), 23);
  auto uninterrupted = make_block_solver(options, logistic_blocks(MPI_COMM_WORLD, m));
  auto first = make_block_solver(options, logistic_blocks(MPI_COMM_WORLD, m));
  for (std::int64_t t = 1; t <= 25; ++t) {
    uninterrupted->step(t);
    first->step(t);
  }
  const std::string path = test::scratch_dir() + "/state.h5";
  {
    h5::File file(MPI_COMM_WORLD, path, h5::File::Mode::Create);
    first->save_state(file, "state");
  }
  auto resumed = make_block_solver(options, logistic_blocks(MPI_COMM_WORLD, m));
  {
    h5::File file(MPI_COMM_WORLD, path, h5::File::Mode::Read);
    resumed->load_state(file, "state");
  }
  StepReport a, b;
  for (std::int64_t t = 26; t <= 40; ++t) {
    a = uninterrupted->step(t);
    b = resumed->step(t);
  }
  EXPECT_EQ((uninterrupted->x() - resumed->x()).cwiseAbs().maxCoeff(), 0.0);
  EXPECT_EQ((uninterrupted->y() - resumed->y()).cwiseAbs().maxCoeff(), 0.0);
  EXPECT_EQ(a.fields[1], b.fields[1]);  // stationarity ||z||
}

TEST_P(BsvrbMethods, LogisticHypergradientMatchesFiniteDifferences) {
  const std::int64_t m = 3;
  auto problem = logistic_blocks(MPI_COMM_SELF, m);
  const std::int64_t d = problem->block_dim();
  Random random(3, "test.x", 0);
  Vector x(problem->upper_dim());
  for (auto& v : x) v = 0.5 * random.normal();
  // Phi by Newton solves of each block's strongly convex lower level.
  auto phi = [&](const Vector& at) {
    double total = 0;
    for (std::int64_t i = 0; i < m; ++i) {
      Vector y = Vector::Zero(d), g;
      for (int it = 0; it < 30; ++it) {
        problem->lower_block(i, at, y, nullptr, &g);
        y -= problem->lower_block_hessian(i, at, y).ldlt().solve(g);
      }
      total += problem->upper_block(i, at, y, nullptr, nullptr);
    }
    return total / double(m);
  };
  Vector reference = test::finite_difference(phi, x, 1e-4);
  Options options = bsvrb_settings(GetParam());
  options.bsvrb_blocks = m;
  options.bsvrb_tau = 1.0;
  options.bsvrb_tau_v = 1.0;
  options.bsvrb_hmin = 1e-6;
  auto solver = make_block_solver(options, problem);
  Vector estimate = solver->hypergradient_at(x, 3000);
  EXPECT_LT(test::relative_error(estimate, reference), 1e-5)
      << "\nestimate  " << estimate.head(6).transpose() << "\nreference "
      << reference.head(6).transpose();
}

// The multiblock task's shortcuts agree with its block-by-block evaluations: the batched
// full objectives (one matrix product over the blocks), the coupling rows (the only
// entries of x where grad_x f_i and d2g_i/dxdy v can be nonzero for a minibatch) and the
// evaluations restricted to them.
TEST(Multiblock, BatchedObjectivesAndCouplingRowsMatchBlockEvaluations) {
  const std::int64_t m = 4;
  auto problem = logistic_blocks(MPI_COMM_SELF, m);
  const std::int64_t d = problem->block_dim(), n = problem->upper_dim();
  Random random(5, "test.y", 0);
  Vector x(n);
  for (auto& v : x) v = random.normal();
  std::vector<Vector> ys(m - 1, Vector(d));
  for (auto& y : ys)
    for (auto& v : y) v = random.normal();
  double upper = 0, lower = 0, upper_ref = 0, lower_ref = 0;
  problem->sum_objectives(x, 1, ys, &upper, &lower);
  for (std::int64_t k = 0; k < m - 1; ++k) {
    upper_ref += problem->upper_block(1 + k, x, ys[k], nullptr, nullptr);
    lower_ref += problem->lower_block(1 + k, x, ys[k], nullptr, nullptr);
  }
  EXPECT_NEAR(upper, upper_ref, 1e-12 * std::abs(upper_ref));
  EXPECT_NEAR(lower, lower_ref, 1e-12 * std::abs(lower_ref));

  Sample lower_sample = draw_sample(7, "test.lower", 0, n, 8);
  Sample upper_sample = draw_sample(7, "test.upper", 0, 30, 8);
  std::vector<std::int64_t> rows;
  ASSERT_TRUE(problem->coupling_rows(2, lower_sample, upper_sample, &rows));
  Vector gx, hxy, v = Vector::Ones(d);
  problem->upper_block(2, x, ys[0], &gx, nullptr, upper_sample);
  problem->lower_block_hvp(2, x, ys[0], v, nullptr, &hxy, lower_sample);
  Vector outside = gx - hxy;
  for (std::int64_t r : rows) outside[r] = 0.0;
  EXPECT_EQ(outside.cwiseAbs().maxCoeff(), 0.0);
  EXPECT_GT(hxy.cwiseAbs().maxCoeff(), 0.0);
  EXPECT_TRUE(std::is_sorted(rows.begin(), rows.end()));
  EXPECT_FALSE(problem->coupling_rows(2, Sample::all(), upper_sample, &rows));

  // The row-restricted evaluations BSVRB uses: the same values as the full ones on the
  // coupling rows (against the base class's full-then-pick), and the same hyy, grad_y.
  ASSERT_TRUE(problem->coupling_rows(2, lower_sample, upper_sample, &rows));
  Vector gx_rows, gx_ref, gy, gy_ref, hxy_rows, hxy_ref, hyy, hyy_ref;
  const double value = problem->upper_block_rows(2, x, ys[0], rows, &gx_rows, &gy, upper_sample);
  const double value_ref =
      problem->BlockProblem::upper_block_rows(2, x, ys[0], rows, &gx_ref, &gy_ref, upper_sample);
  EXPECT_EQ(value, value_ref);
  EXPECT_EQ(gx_rows, gx_ref);
  EXPECT_EQ(gy, gy_ref);
  problem->lower_block_hvp_rows(2, x, ys[0], v, rows, &hyy, &hxy_rows, lower_sample);
  problem->BlockProblem::lower_block_hvp_rows(2, x, ys[0], v, rows, &hyy_ref, &hxy_ref,
                                              lower_sample);
  EXPECT_EQ(hxy_rows, hxy_ref);
  EXPECT_EQ(hyy, hyy_ref);
  EXPECT_EQ(hxy_rows.size(), Eigen::Index(rows.size()));
  EXPECT_GT(hxy_rows.cwiseAbs().maxCoeff(), 0.0);
}

// A history row's evaluation with the data rows split over the ranks (each rank passing its
// own blocks) gives the objectives summed over all blocks and the validation accuracy of the
// block-by-block evaluations on one rank.
TEST(Multiblock, DistributedEvaluationMatchesBlockEvaluations) {
  const std::int64_t m = 5;
  auto distributed = logistic_blocks(MPI_COMM_WORLD, m);
  auto single = logistic_blocks(MPI_COMM_SELF, m);
  const std::int64_t d = single->block_dim(), n = single->upper_dim();
  Random random(6, "test.y", 0);
  Vector x(n);
  for (auto& v : x) v = random.normal();
  std::vector<Vector> ys(m, Vector(d));
  for (auto& y : ys)
    for (auto& v : y) v = random.normal();
  double upper_ref = 0, lower_ref = 0;
  for (std::int64_t i = 0; i < m; ++i) {
    upper_ref += single->upper_block(i, x, ys[i], nullptr, nullptr);
    lower_ref += single->lower_block(i, x, ys[i], nullptr, nullptr);
  }
  const std::vector<double> metrics_ref = single->metrics(x, ys);
  const Partition owned = Partition::block(m, MPI_COMM_WORLD);
  const std::vector<Vector> mine(ys.begin() + owned.begin, ys.begin() + owned.end);
  double upper = 0, lower = 0;
  std::vector<double> metrics;
  distributed->evaluate(x, owned.begin, mine, &upper, &lower, &metrics);
  EXPECT_NEAR(upper, upper_ref, 1e-12 * std::abs(upper_ref));
  EXPECT_NEAR(lower, lower_ref, 1e-12 * std::abs(lower_ref));
  ASSERT_EQ(metrics.size(), 1u);
  EXPECT_EQ(metrics[0], metrics_ref[0]);
  EXPECT_GT(metrics[0], 0.0);
  EXPECT_LT(metrics[0], 1.0);
}

INSTANTIATE_TEST_SUITE_P(Bilevel, BsvrbMethods, ::testing::Values("bsvrb1", "bsvrb2"));

}  // namespace
}  // namespace parasol::bilevel
