// ADMM for the convex ReLU program against an independent interior-point solve of the same
// sampled program, at any rank count; recovered network vs convex model; bad input.
#include <gtest/gtest.h>
#include <parasol/error.hpp>
#include <parasol/partition.hpp>
#include <parasol/random.hpp>
#include <parasol/relu.hpp>

#include "reference_solver.hpp"
#include "teacher_data.hpp"

#include <cmath>
#include <cstdio>
#include <vector>

namespace parasol::relu {
namespace {

MPI_Comm world() { return MPI_COMM_WORLD; }

// Synthetic data keyed by global row: a planted 3-neuron ReLU teacher, 10% of the labels
// flipped so the fit is not exact.
using Data = test::TeacherData;
Data make_data(std::int64_t n, std::int64_t d, std::uint64_t seed) {
  return test::make_teacher_data(world(), n, d, seed, "test.relu.teacher", "test.relu.rows", 0.1);
}

Eigen::VectorXd to01(const Eigen::VectorXd& y) { return (y.array() + 1.0) / 2.0; }

// All rows of a row-distributed matrix on every rank, in global order.
Eigen::MatrixXd gather_rows(const Eigen::MatrixXd& local) {
  int size = 1;
  MPI_Comm_size(world(), &size);
  const int cols = static_cast<int>(local.cols());
  const int mine = static_cast<int>(local.rows());
  std::vector<int> rows(size), counts(size), offsets(size, 0);
  MPI_Allgather(&mine, 1, MPI_INT, rows.data(), 1, MPI_INT, world());
  int total = 0;
  for (int r = 0; r < size; ++r) {
    counts[r] = rows[r] * cols;
    offsets[r] = total * cols;
    total += rows[r];
  }
  RowMatrix send = local;
  RowMatrix all(total, cols);
  MPI_Allgatherv(send.data(), mine * cols, MPI_DOUBLE, all.data(), counts.data(), offsets.data(),
                 MPI_DOUBLE, world());
  return all;
}

struct RunResult {
  double objective = 0.0;
  double reference = 0.0;
  std::int64_t iterations = 0;
  bool converged = false;
};

RunResult run_and_compare(const Options& options, const Data& data, const Eigen::VectorXd& y,
                          std::int64_t max_it, Solver** keep = nullptr) {
  auto* solver = new Solver(world(), options, data.X, y);
  RunResult out;
  for (std::int64_t it = 1; it <= max_it; ++it) {
    const StepReport report = solver->step(it);
    out.iterations = it;
    if (report.status == Status::Converged) {
      out.converged = true;
      break;
    }
  }
  out.objective = solver->objective();
  const Eigen::MatrixXd X = gather_rows(with_bias(data.X, options.bias));
  const Eigen::MatrixXd bits = gather_rows(solver->patterns().bits);
  const Eigen::VectorXd y_all = gather_rows(y);
  // The reference runs on rank 0 only (the others would repeat the same dense work).
  int rank = 0;
  MPI_Comm_rank(world(), &rank);
  if (rank == 0) {
    const auto loss = make_loss(options.loss);
    const auto reference = test::solve_reference(X, y_all, bits, solver->patterns().gates,
                                                 options.method != "scp", *loss, options.beta);
    out.reference = reference.objective;
    std::printf("ADMM %.10g after %lld iterations; interior point %.10g after %d Newton steps\n",
                out.objective, static_cast<long long>(out.iterations), out.reference,
                reference.newton_steps);
  }
  MPI_Bcast(&out.reference, 1, MPI_DOUBLE, 0, world());
  if (keep) *keep = solver; else delete solver;
  return out;
}


// Cross-entropy with the loss split off (-bce_solver split: exact u-update) and ADMM-RBCD
// (-bce_solver rbcd: the loss stays in the u-update, solved inexactly by randomized block
// coordinate descent): both reach the interior-point reference's optimum.
class ReluCrossEntropy : public ::testing::TestWithParam<const char*> {};

TEST_P(ReluCrossEntropy, MatchesInteriorPoint) {
  const Data data = make_data(200, 10, 12);
  Options options;
  options.loss = "bce";
  options.bce_solver = GetParam();
  options.patterns = 16;
  options.beta = 0.5;
  options.rho = 1.0;
  options.tol = 1e-6;
  const RunResult r = run_and_compare(options, data, to01(data.y), 20000);
  EXPECT_TRUE(r.converged) << "after " << r.iterations << " iterations";
  EXPECT_NEAR(r.objective, r.reference, 1e-4 * std::abs(r.reference))
      << GetParam() << ": ADMM " << r.objective << " reference " << r.reference;
}

INSTANTIATE_TEST_SUITE_P(ReluAdmm, ReluCrossEntropy, ::testing::Values("split", "rbcd"));

// RBCD draws its block order from Random(seed, "relu.rbcd", sweep), never from the rank:
// the distributed run and a one-rank run on all rows take the same steps (equal up to the
// round-off of the reductions).
TEST(ReluAdmm, RbcdIteratesDoNotDependOnTheRankCount) {
  const Data data = make_data(120, 6, 18);
  Options options;
  options.loss = "bce";
  options.bce_solver = "rbcd";
  options.rbcd_sweeps = 2;
  options.patterns = 8;
  options.beta = 0.5;
  const Eigen::VectorXd y = to01(data.y);
  Solver distributed(world(), options, data.X, y);
  Solver alone(MPI_COMM_SELF, options, gather_rows(data.X), gather_rows(y));
  for (std::int64_t it = 1; it <= 60; ++it) {
    distributed.step(it);
    alone.step(it);
  }
  const RowMatrix difference = distributed.model().V - alone.model().V;
  EXPECT_LE(difference.norm(), 1e-9 * std::max(1.0, alone.model().V.norm()));
  EXPECT_GT(alone.model().V.norm(), 0.0);
  EXPECT_EQ(distributed.summary().linear_solver, "rbcd");
}

// -validation_fraction: the held-out rows are keyed by global row (Random(seed,
// "relu.validation", row)), so a distributed run and a one-rank run on all rows hold out the
// same rows, report the same validation accuracies, stop at the same iteration and keep the
// same iterate; that iterate is the best one on the held-out rows (recomputed here from the
// recovered network), and its rows are not trained on (their count is the reported share).
TEST(ReluAdmm, ValidationEarlyStoppingKeepsTheBestIterateAtAnyRankCount) {
  const Data data = make_data(300, 8, 21);
  Options options;
  options.loss = "hinge";
  options.patterns = 8;
  options.beta = 0.5;
  options.bias = true;
  options.validation_fraction = 0.3;
  options.validation_patience = 5;
  Solver distributed(world(), options, data.X, data.y);
  const Eigen::MatrixXd X_all = gather_rows(data.X);
  const Eigen::VectorXd y_all = gather_rows(data.y);
  Solver alone(MPI_COMM_SELF, options, X_all, y_all);
  const auto fields = alone.history_fields();
  ASSERT_EQ(fields.size(), 5u);
  EXPECT_EQ(fields[3], "val_accuracy");
  double best = -1.0;
  std::int64_t stopped = 0;
  for (std::int64_t it = 1; it <= 2000 && stopped == 0; ++it) {
    const StepReport a = distributed.step(it), b = alone.step(it);
    ASSERT_EQ(a.status, b.status) << "iteration " << it;
    EXPECT_EQ(a.fields[3], b.fields[3]) << "validation accuracy, iteration " << it;
    if (alone.model().V.norm() > 0) best = std::max(best, b.fields[3]);
    if (b.status != Status::Running) {
      EXPECT_NE(b.message.find("validation accuracy did not improve"), std::string::npos) << b.message;
      stopped = it;
    }
  }
  ASSERT_GT(stopped, 0) << "no early stop in 2000 iterations";
  std::printf("early stop at iteration %lld, best validation accuracy %.4f\n", static_cast<long long>(stopped), best);
  const RowMatrix difference = distributed.model().V - alone.model().V;
  EXPECT_LE(difference.norm(), 1e-8 * std::max(1.0, alone.model().V.norm()));
  // The kept network's accuracy on the held-out rows is the best one recorded.
  std::vector<Eigen::Index> held;
  for (Eigen::Index k = 0; k < X_all.rows(); ++k)
    if (Random(options.seed, "relu.validation", static_cast<std::uint64_t>(k)).uniform() < options.validation_fraction)
      held.push_back(k);
  ASSERT_GT(held.size(), 50u);
  ASSERT_LT(held.size(), 130u);
  RowMatrix X_held(static_cast<Eigen::Index>(held.size()), X_all.cols());
  Eigen::VectorXd y_held(X_held.rows());
  for (std::size_t i = 0; i < held.size(); ++i) {
    X_held.row(static_cast<Eigen::Index>(i)) = X_all.row(held[i]);
    y_held(static_cast<Eigen::Index>(i)) = y_all(held[i]);
  }
  const Eigen::VectorXd output = alone.model().recover().predict(X_held);
  double correct = 0;
  for (Eigen::Index k = 0; k < y_held.size(); ++k) correct += (output(k) > 0) == (y_held(k) > 0) ? 1.0 : 0.0;
  EXPECT_DOUBLE_EQ(correct / static_cast<double>(y_held.size()), best);
  // Trained on the kept rows only: the loss part of the objective is a sum over them, so a
  // model that is zero everywhere has objective = number of kept rows (hinge at 0 is 1).
  Solver untrained(world(), options, data.X, data.y);
  EXPECT_DOUBLE_EQ(untrained.objective(), static_cast<double>(X_all.rows() - static_cast<Eigen::Index>(held.size())));
  // Nothing held out (or nothing kept) is rejected on every rank.
  Options none = options;
  none.validation_fraction = 1e-9;
  EXPECT_THROW(Solver(world(), none, data.X, data.y), Error);
  none.validation_fraction = 1.0;
  EXPECT_THROW(Solver(world(), none, data.X, data.y), Error);
}

// A right-hand side keyed by entry index: the same on every rank and at any rank count.
RowMatrix random_rhs(Eigen::Index rows, Eigen::Index cols, std::uint64_t seed) {
  RowMatrix rhs(rows, cols);
  for (Eigen::Index k = 0; k < rhs.size(); ++k)
    rhs.data()[k] = Random(seed, "test.relu.rhs", static_cast<std::uint64_t>(k)).normal();
  return rhs;
}

// The three u-solvers solve the same system A u = b: dense Cholesky of the assembled A,
// Woodbury (d x d and replicated n x n factors) and matrix-free PCG. Squared loss (A involves
// 1/rho), the split cross-entropy (A involves the loss weight), scp (K = P, no cone term).
TEST(ReluLinearSolvers, DenseWoodburyAndPcgSolveTheSameSystem) {
  const Data data = make_data(200, 10, 17);
  struct Case {
    std::string method, loss;
    bool bias;
    double rho;
  };
  for (const Case& c : {Case{"admm", "squared", true, 1.0}, Case{"admm", "squared", false, 0.05},
                        Case{"admm", "bce", true, 1.0}, Case{"scp", "squared", true, 3.0}}) {
    SCOPED_TRACE(c.method + " " + c.loss + " rho " + std::to_string(c.rho));
    Options options;
    options.method = c.method;
    options.loss = c.loss;
    options.bias = c.bias;
    options.rho = c.rho;
    options.patterns = 16;
    options.pcg_rtol = 1e-13;
    options.pcg_max_it = 5000;
    const Eigen::VectorXd y = c.loss == "bce" ? to01(data.y) : data.y;
    std::vector<RowMatrix> solutions;
    for (const std::string name : {"dense", "woodbury", "pcg"}) {
      options.linear_solver = name;
      Solver solver(world(), options, data.X, y);
      EXPECT_EQ(solver.summary().linear_solver, name);
      const Eigen::Index K = (c.method == "scp" ? 1 : 2) * solver.patterns().count();
      const RowMatrix rhs = random_rhs(K, solver.patterns().gates.cols(), 5);
      solutions.push_back(solver.solve_u_system(rhs));
    }
    const double scale = solutions[0].norm();
    EXPECT_LE((solutions[1] - solutions[0]).norm(), 1e-10 * scale) << "woodbury vs dense";
    EXPECT_LE((solutions[2] - solutions[0]).norm(), 1e-8 * scale) << "pcg vs dense";
  }
}

// The same ADMM optimum with the dense and PCG u-solvers (squared loss, bias), against the
// reference; the Woodbury run is SquaredLossMatchesInteriorPointAndNetworkMatchesModel.
TEST(ReluLinearSolvers, SameAdmmOptimum) {
  const Data data = make_data(200, 10, 14);
  std::vector<double> objectives;
  // The third run: PCG with its products in single precision while the solves are loose
  // (-pcg_single, -pcg_inexact 1e-2): the same optimum, since tight solves use double.
  for (const std::string name : {"dense", "pcg", "pcg_single"}) {
    Options options;
    options.patterns = 16;
    options.beta = 0.5;
    options.tol = 1e-6;
    options.bias = true;
    options.linear_solver = name == "dense" ? "dense" : "pcg";
    options.pcg_single = name == "pcg_single";
    if (options.pcg_single) options.pcg_inexact = 1e-2;
    const RunResult r = run_and_compare(options, data, data.y, 20000);
    EXPECT_TRUE(r.converged) << name << " after " << r.iterations << " iterations";
    EXPECT_NEAR(r.objective, r.reference, 1e-4 * std::abs(r.reference)) << name;
    objectives.push_back(r.objective);
  }
  EXPECT_NEAR(objectives[1], objectives[0], 1e-6 * std::abs(objectives[0]));
  EXPECT_NEAR(objectives[2], objectives[0], 1e-6 * std::abs(objectives[0]));
}

TEST(ReluAdmm, ScpMatchesInteriorPoint) {
  const Data data = make_data(200, 10, 13);
  Options options;
  options.method = "scp";
  options.patterns = 16;
  options.beta = 0.5;
  options.tol = 1e-6;
  const RunResult r = run_and_compare(options, data, data.y, 20000);
  EXPECT_TRUE(r.converged) << "after " << r.iterations << " iterations";
  EXPECT_NEAR(r.objective, r.reference, 1e-4 * std::abs(r.reference));
}

// Squared loss, with a bias column; then the network recovered from (v, w) against the
// convex model on every training point.
TEST(ReluAdmm, SquaredLossMatchesInteriorPointAndNetworkMatchesModel) {
  const Data data = make_data(200, 10, 14);
  Options options;
  options.patterns = 16;
  options.beta = 0.5;
  options.tol = 1e-6;
  options.bias = true;
  options.linear_solver = "woodbury";  // what auto picks here; dense and PCG: SameAdmmOptimum
  Solver* solver = nullptr;
  const RunResult r = run_and_compare(options, data, data.y, 20000, &solver);
  EXPECT_TRUE(r.converged) << "after " << r.iterations << " iterations";
  EXPECT_NEAR(r.objective, r.reference, 1e-4 * std::abs(r.reference))
      << "ADMM " << r.objective << " reference " << r.reference;
  EXPECT_EQ(solver->summary().linear_solver, "woodbury");
  const Eigen::VectorXd convex = solver->train_predictions();
  const Network net = solver->model().recover();
  const Eigen::VectorXd network = net.predict(data.X);
  const Eigen::VectorXd gated = solver->model().predict(data.X);
  EXPECT_GT(net.W1.rows(), 0);
  const double scale = std::max(1.0, convex.cwiseAbs().maxCoeff());
  EXPECT_LE((network - convex).cwiseAbs().maxCoeff(), 1e-5 * scale);
  EXPECT_LE((gated - convex).cwiseAbs().maxCoeff(), 1e-12 * scale);
  int mismatched = 0;
  for (Eigen::Index k = 0; k < convex.size(); ++k) mismatched += (network(k) > 0) != (convex(k) > 0);
  EXPECT_EQ(mismatched, 0);
  delete solver;
}

TEST(ReluPatterns, SameAtAnyRankCount) {
  const Data data = make_data(30, 2, 15);
  // Two features, 30 rows: at most 60 distinct patterns among 200 gates.
  const Patterns distributed = sample_patterns(world(), data.X, 200, 9);
  const Eigen::MatrixXd X_all = gather_rows(data.X);
  const Patterns alone = sample_patterns(MPI_COMM_SELF, X_all, 200, 9);
  EXPECT_LT(alone.count(), 200);
  EXPECT_EQ(distributed.gate_index, alone.gate_index);
  EXPECT_EQ(gather_rows(distributed.bits), alone.bits);
  // Every kept pattern is distinct.
  for (Eigen::Index i = 0; i < alone.count(); ++i)
    for (Eigen::Index j = 0; j < i; ++j) EXPECT_NE(alone.bits.col(i), alone.bits.col(j));
}

TEST(ReluInput, RejectsBadLabelsDimensionsAndP) {
  const Data data = make_data(40, 5, 16);
  Options options;
  options.patterns = 4;
  Eigen::VectorXd y01 = to01(data.y);
  EXPECT_THROW(Solver(world(), options, data.X, y01), Error);  // squared needs +-1
  options.loss = "bce";
  EXPECT_THROW(Solver(world(), options, data.X, data.y), Error);  // bce needs 0/1
  EXPECT_NO_THROW(Solver(world(), options, data.X, y01));
  options.loss = "squared";
  const RowMatrix wide = RowMatrix::Ones(data.X.rows(), 6);
  try {
    Solver(world(), options, data.X, data.y, wide, data.y);
    ADD_FAILURE() << "a test set of another dimension was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("features"), std::string::npos) << e.what();
  }
  options.patterns = 0;
  try {
    Solver(world(), options, data.X, data.y);
    ADD_FAILURE() << "P = 0 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("-P"), std::string::npos) << e.what();
  }
}

TEST(ReluLoss, ProxIsTheMinimizer) {
  for (const std::string name : {"squared", "bce", "hinge"}) {
    const auto loss = make_loss(name);
    for (double label : {-1.0, 0.0, 1.0}) {
      if (!loss->label_ok(label)) continue;
      for (double c : {-2.5, -0.3, 0.0, 0.7, 3.0}) {
        for (double rho : {0.1, 1.0, 10.0}) {
          const double q = loss->prox(c, label, rho);
          auto f = [&](double x) { return loss->value(x, label) + 0.5 * rho * (x - c) * (x - c); };
          for (double h : {1e-3, -1e-3, 0.1, -0.1}) EXPECT_LE(f(q), f(q + h) + 1e-12) << name;
        }
      }
    }
  }
}

}  // namespace
}  // namespace parasol::relu
