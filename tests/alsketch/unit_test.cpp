// Unit tests that force each mechanism of AdaSketch-Newton to act: penalty adaptation, the
// Armijo backtracking, the (sharpened) accuracy condition, and bad input (a Jacobian that
// loses rank, functions that return NaN) ending with a status and a message.
#include <gtest/gtest.h>
#include <parasol/alsketch.hpp>
#include <parasol/error.hpp>

#include <cmath>

#include "hs_problems.hpp"

using namespace parasol::alsketch;
using parasol::Status;
using parasol::StepReport;

namespace {

// A user problem written against the public ReplicatedProblem interface.
class SmallProblem : public ReplicatedProblem {
 public:
  using Fn = std::function<double(const Eigen::VectorXd&)>;
  SmallProblem(std::string name, int n, int m) : ReplicatedProblem(MPI_COMM_WORLD, n, m), name_(name) {}
  std::string name() const override { return name_; }
  Eigen::VectorXd start_x() const override { return x0; }
  double f(const Eigen::VectorXd& x) override { return f_(x); }
  Eigen::VectorXd grad_f(const Eigen::VectorXd& x) override { return g_(x); }
  Eigen::VectorXd c(const Eigen::VectorXd& x) override { return c_(x); }
  Eigen::MatrixXd jac(const Eigen::VectorXd& x) override { return J_(x); }
  Eigen::MatrixXd hess_lagrangian(const Eigen::VectorXd& x, const Eigen::VectorXd& l) override {
    return H_(x, l);
  }
  Eigen::VectorXd x0;
  Fn f_;
  std::function<Eigen::VectorXd(const Eigen::VectorXd&)> g_, c_;
  std::function<Eigen::MatrixXd(const Eigen::VectorXd&)> J_;
  std::function<Eigen::MatrixXd(const Eigen::VectorXd&, const Eigen::VectorXd&)> H_;

 private:
  std::string name_;
};

// min log(cosh(x1)) + 0.01 (x2 - 1)^2  s.t.  x1 + x2 - 1 = 0; from x1 = 3 the full Newton step
// overshoots far beyond the minimizer, so the line search must backtrack.
std::unique_ptr<SmallProblem> logcosh_problem() {
  auto p = std::make_unique<SmallProblem>("logcosh", 2, 1);
  p->x0 = Eigen::Vector2d(3.0, -2.0);
  p->f_ = [](const Eigen::VectorXd& x) { return std::log(std::cosh(x[0])) + 0.01 * std::pow(x[1] - 1, 2); };
  p->g_ = [](const Eigen::VectorXd& x) { return Eigen::Vector2d(std::tanh(x[0]), 0.02 * (x[1] - 1)).eval(); };
  p->c_ = [](const Eigen::VectorXd& x) { return Eigen::VectorXd::Constant(1, x[0] + x[1] - 1); };
  p->J_ = [](const Eigen::VectorXd&) { return Eigen::MatrixXd::Ones(1, 2); };
  p->H_ = [](const Eigen::VectorXd& x, const Eigen::VectorXd&) {
    Eigen::MatrixXd H = Eigen::MatrixXd::Zero(2, 2);
    H(0, 0) = 1 / std::pow(std::cosh(x[0]), 2);
    H(1, 1) = 0.02;
    return H;
  };
  return p;
}

std::vector<StepReport> run_steps(Solver& solver, int max_it) {
  std::vector<StepReport> reports;
  for (int it = 1; it <= max_it; ++it) {
    reports.push_back(solver.step(it));
    if (reports.back().status != Status::Running) break;
  }
  return reports;
}

}  // namespace

TEST(AlsketchUnit, PenaltyAdaptationActsWhenDirectionIsNotDescent) {
  // A tiny eta1 makes the Newton direction fail the descent test
  // grad L_eta^T z <= -(eta2/2)|b|^2 on hs40 (|c| is large at the start, and the slope has
  // the term 2 c^T dlambda - eta1 |c|^2) until eta1 has grown and eta2 shrunk.
  auto problem = make_problem("hs40", MPI_COMM_WORLD, {});
  Options options;
  options.eta1 = 1e-4;
  Solver solver(*problem, options);
  auto reports = run_steps(solver, 100);
  ASSERT_EQ(reports.back().status, Status::Converged) << reports.back().message;
  EXPECT_GT(solver.summary().penalty_adaptations, 0);
  EXPECT_GT(solver.eta1(), options.eta1);
  EXPECT_LT(solver.eta2(), options.eta2);
  // eta1 never decreases and eta2 never increases (fields 3 and 4).
  for (std::size_t k = 1; k < reports.size(); ++k) {
    EXPECT_GE(reports[k].fields[3], reports[k - 1].fields[3]);
    EXPECT_LE(reports[k].fields[4], reports[k - 1].fields[4]);
  }
  // Each adaptation multiplies eta1 by nu^2 and divides eta2 by nu.
  const double k = static_cast<double>(solver.summary().penalty_adaptations);
  EXPECT_NEAR(solver.eta1(), options.eta1 * std::pow(options.nu, 2 * k), 1e-12 * solver.eta1());
  EXPECT_NEAR(solver.eta2(), options.eta2 / std::pow(options.nu, k), 1e-12 * options.eta2);
  EXPECT_NEAR(reports.back().objective, -0.25, 1e-8);
}

TEST(AlsketchUnit, ArmijoBacktracksAnOvershootingStep) {
  auto problem = logcosh_problem();
  for (const char* sketch : {"gaussian", "ksp"}) {
    Options options;
    options.sketch = sketch;
    Solver solver(*problem, options);
    auto reports = run_steps(solver, 100);
    ASSERT_EQ(reports.back().status, Status::Converged) << sketch << ": " << reports.back().message;
    EXPECT_GT(solver.summary().backtracks, 0) << sketch;
    // The first step is cut back (halvings of 1), later steps near the solution are full.
    const double first = reports.front().fields[2];
    EXPECT_LT(first, 1.0) << sketch;
    EXPECT_DOUBLE_EQ(std::exp2(std::round(std::log2(first))), first);
    EXPECT_DOUBLE_EQ(reports.back().fields[2], 1.0);
    EXPECT_NEAR(reports.back().objective, 0.0, 1e-10);
  }
}

TEST(AlsketchUnit, AccuracyConditionStopsTheSketch) {
  auto problem = make_problem("hs42", MPI_COMM_WORLD, {});
  Options options;
  Solver solver(*problem, options);
  solver.step(1);
  const SketchSolveInfo& info = solver.last_sketch();
  // Sketching ran (the zero start does not satisfy the condition), and stopped as soon as
  // |K z - b| <= theta delta |b| / (|K| psi) held, well within the budget.
  EXPECT_GT(info.steps, 1);
  EXPECT_LT(info.steps, options.max_sketch_steps);
  EXPECT_TRUE(info.accuracy_met);
  EXPECT_LE(info.residual, info.target);
  EXPECT_LT(info.target, info.rhs_norm);
  // With fewer steps allowed than the condition needs, it is not met.
  Options short_budget = options;
  short_budget.max_sketch_steps = 2;
  Solver limited(*problem, short_budget);
  limited.step(1);
  EXPECT_FALSE(limited.last_sketch().accuracy_met);
  EXPECT_GT(limited.last_sketch().residual, limited.last_sketch().target);
}

TEST(AlsketchUnit, SharpenedConditionTightensNearTheSolution) {
  auto problem = make_problem("hs40", MPI_COMM_WORLD, {});
  Options plain, sharp;
  sharp.sharpen = true;
  Solver a(*problem, plain), b(*problem, sharp);
  // Iteration 1 starts where the KKT residual is < 1 for hs40, so theta = |b| < 1 already.
  bool tightened = false;
  for (int it = 1; it <= 3; ++it) {
    auto ra = a.step(it);
    auto rb = b.step(it);
    const double ratio_a = a.last_sketch().target / a.last_sketch().rhs_norm;
    const double ratio_b = b.last_sketch().target / b.last_sketch().rhs_norm;
    if (b.last_sketch().rhs_norm < 1) {
      EXPECT_LT(ratio_b, ratio_a);
      EXPECT_NEAR(ratio_b / ratio_a, b.last_sketch().rhs_norm, 1e-6 * b.last_sketch().rhs_norm);
      tightened = true;
      break;  // afterwards the two runs are at different points
    }
    if (ra.status != Status::Running || rb.status != Status::Running) break;
  }
  EXPECT_TRUE(tightened);
  auto s = Solve(*problem, sharp, 100);
  EXPECT_EQ(s.status, Status::Converged);
  EXPECT_NEAR(s.objective, -0.25, 1e-8);
}

TEST(AlsketchUnit, RankDeficientJacobianFailsWithMessage) {
  // Two copies of the same constraint: G G^T is singular at every point.
  auto p = std::make_unique<SmallProblem>("duplicate", 2, 2);
  p->x0 = Eigen::Vector2d(0.3, 0.2);
  p->f_ = [](const Eigen::VectorXd& x) { return x.squaredNorm(); };
  p->g_ = [](const Eigen::VectorXd& x) { return (2 * x).eval(); };
  p->c_ = [](const Eigen::VectorXd& x) {
    return Eigen::Vector2d(x[0] + x[1] - 1, 2 * x[0] + 2 * x[1] - 2).eval();
  };
  p->J_ = [](const Eigen::VectorXd&) {
    Eigen::MatrixXd J(2, 2);
    J << 1, 1, 2, 2;
    return J;
  };
  p->H_ = [](const Eigen::VectorXd&, const Eigen::VectorXd&) {
    return (2 * Eigen::MatrixXd::Identity(2, 2)).eval();
  };
  for (const char* sketch : {"gaussian", "ksp"}) {
    Options options;
    options.sketch = sketch;
    Summary s = Solve(*p, options, 50);
    EXPECT_EQ(s.status, Status::Failed) << sketch;
    EXPECT_NE(s.message.find("loses rank"), std::string::npos) << s.message;
  }
}

TEST(AlsketchUnit, NanFromTheProblemFailsWithMessage) {
  auto p = logcosh_problem();
  p->f_ = [](const Eigen::VectorXd& x) { return std::log(x[0] - 5); };  // NaN at the start
  Summary s = Solve(*p, Options{}, 50);
  EXPECT_EQ(s.status, Status::Failed);
  EXPECT_NE(s.message.find("non-finite"), std::string::npos) << s.message;

  // NaN only along the way: the trial points with NaN are rejected by the line search.
  auto q = logcosh_problem();
  q->f_ = [](const Eigen::VectorXd& x) {
    return x[0] < -1 ? std::nan("") : std::log(std::cosh(x[0])) + 0.01 * std::pow(x[1] - 1, 2);
  };
  Summary t = Solve(*q, Options{}, 100);
  EXPECT_EQ(t.status, Status::Converged) << t.message;

  // NaN in the Jacobian.
  auto r = logcosh_problem();
  r->J_ = [](const Eigen::VectorXd&) { return Eigen::MatrixXd::Constant(1, 2, std::nan("")); };
  Summary u = Solve(*r, Options{}, 50);
  EXPECT_EQ(u.status, Status::Failed);
  EXPECT_NE(u.message.find("non-finite"), std::string::npos) << u.message;
}

TEST(AlsketchUnit, InvalidOptionsAreRejected) {
  Options o;
  std::string why;
  o.sketch = "fourier";
  EXPECT_FALSE(o.IsValid(&why));
  EXPECT_NE(why.find("-alsketch_sketch"), std::string::npos);
  o = Options{};
  o.beta = 0.7;
  EXPECT_FALSE(o.IsValid(&why));
  auto problem = make_problem("hs6", MPI_COMM_WORLD, {});
  o = Options{};
  o.nu = 0.5;
  EXPECT_THROW(Solver(*problem, o), parasol::Error);
  EXPECT_THROW(make_problem("hs999", MPI_COMM_WORLD, {}), parasol::Error);
}

TEST(AlsketchUnit, ResultsDoNotDependOnTheRankCount) {
  // The sketches are keyed by (seed, iteration, step), never by rank: the iterates at any
  // rank count equal a replicated serial computation up to reduction round-off. Compare
  // against the same run on a single-rank communicator.
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm self;
  MPI_Comm_split(MPI_COMM_WORLD, rank, 0, &self);
  auto world = make_problem("hs39", MPI_COMM_WORLD, {});
  auto alone = make_problem("hs39", self, {});
  Options options;
  Solver a(*world, options), b(*alone, options);
  auto ra = run_steps(a, 50);
  auto rb = run_steps(b, 50);
  ASSERT_EQ(ra.size(), rb.size());
  for (std::size_t k = 0; k < ra.size(); ++k) {
    EXPECT_NEAR(ra[k].objective, rb[k].objective, 1e-10 * (1 + std::abs(rb[k].objective)));
    EXPECT_EQ(ra[k].fields[5], rb[k].fields[5]);  // identical sketch step counts
  }
  Eigen::VectorXd xa = gather_natural(a.x(), world->natural_variable_indices());
  Eigen::VectorXd xb = gather_natural(b.x(), alone->natural_variable_indices());
  EXPECT_LE((xa - xb).norm(), 1e-10);
  MPI_Comm_free(&self);
}
