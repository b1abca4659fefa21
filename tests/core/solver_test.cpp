#include <gtest/gtest.h>
#include <parasol/error.hpp>
#include <parasol/partition.hpp>
#include <parasol/random.hpp>
#include <parasol/session.hpp>
#include <parasol/solver.hpp>

#include <cmath>
#include <filesystem>

#include "parasol_test.hpp"

namespace h5 = parasol::h5;
using parasol::Partition;
using parasol::Status;

namespace {

// Gradient descent on f(x) = 1/2 sum_i (x_i - a_i)^2 with x distributed by rows: enough
// state (distributed and replicated) to exercise checkpoints, small enough to reason about.
class Descent : public parasol::IterativeSolver {
 public:
  explicit Descent(std::int64_t n, double tol, bool poison = false)
      : rows_(Partition::block(n, MPI_COMM_WORLD)), tol_(tol), poison_(poison) {
    for (std::int64_t i = rows_.begin; i < rows_.end; ++i) {
      parasol::Random r(1, "descent.target", i);
      target_.push_back(r.normal());
      x_.push_back(0.0);
    }
  }
  std::string family() const override { return "test"; }
  std::string method() const override { return "descent"; }
  std::vector<std::string> history_fields() const override { return {"gradient_norm", "rate"}; }

  parasol::StepReport step(std::int64_t iteration) override {
    double local[2] = {0, 0};
    for (std::size_t i = 0; i < x_.size(); ++i) {
      x_[i] -= rate_ * (x_[i] - target_[i]);
      local[0] += 0.5 * std::pow(x_[i] - target_[i], 2);
      local[1] += std::pow(x_[i] - target_[i], 2);
    }
    double global[2];
    MPI_Allreduce(local, global, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    rate_ *= 0.99;  // replicated state that a checkpoint must carry
    parasol::StepReport report;
    report.objective = poison_ && iteration == 3 ? NAN : global[0];
    report.fields = {std::sqrt(global[1]), rate_};
    if (std::sqrt(global[1]) < tol_) report.status = Status::Converged;
    return report;
  }
  void save_state(h5::File& file, const std::string& group) const override {
    h5::write_rows(file, group + "/x", x_.data(), x_.size(), 0);
    h5::write(file, group + "/rate", std::vector<double>{rate_}, {});
  }
  void load_state(const h5::File& file, const std::string& group) override {
    x_ = h5::read_rows(file, group + "/x", rows_.begin, rows_.count());
    rate_ = h5::read_doubles(file, group + "/rate")[0];
  }
  void write_solution(h5::File& file) const override {
    h5::write_rows(file, "/solution/x", x_.data(), x_.size(), 0);
  }
  const std::vector<double>& x() const { return x_; }

 private:
  Partition rows_;
  double tol_;
  bool poison_;
  double rate_ = 0.3;
  std::vector<double> target_, x_;
};

parasol::CommonOptions options(const std::string& dir, std::int64_t max_it) {
  parasol::CommonOptions o;
  o.output = dir + "/run.h5";
  o.max_it = max_it;
  o.tol = 1e-12;
  return o;
}

}  // namespace

TEST(RunSolver, StopsAtMaxIterationsOrConvergence) {
  const std::string dir = parasol::test::scratch_dir();
  Descent a(10, 1e-12);
  EXPECT_EQ(parasol::run_solver(a, options(dir, 5), nullptr).status, Status::MaxIterations);
  Descent b(10, 1e-3);
  const auto summary = parasol::run_solver(b, options(dir, 1000), nullptr);
  EXPECT_EQ(summary.status, Status::Converged);
  EXPECT_LT(summary.iterations, 1000);
}

TEST(RunSolver, RestartFromCheckpointMatchesUninterruptedRunBitwise) {
  const std::string dir = parasol::test::scratch_dir();
  Descent full(11, 1e-12);
  parasol::run_solver(full, options(dir, 20), nullptr);

  auto first = options(dir, 8);
  first.checkpoint = dir + "/ckpt.h5";
  first.checkpoint_every = 4;
  Descent part(11, 1e-12);
  parasol::run_solver(part, first, nullptr);

  auto second = options(dir, 20);
  second.restart = dir + "/ckpt.h5";
  second.output = dir + "/restarted.h5";
  Descent resumed(11, 1e-12);
  parasol::RunFile run(MPI_COMM_WORLD, second.output, "test", "descent", 1, resumed.history_fields());
  const auto summary = parasol::run_solver(resumed, second, &run);
  resumed.write_solution(run.file());
  run.finalize(summary.status, summary.iterations, summary.wall_time);
  EXPECT_EQ(summary.iterations, 20);
  EXPECT_EQ(resumed.x(), full.x());  // bitwise: the same operations in the same order

  h5::File f(MPI_COMM_WORLD, second.output, h5::File::Mode::Read);
  const auto iterations = h5::read_doubles(f, "/history/iteration");
  ASSERT_EQ(iterations.size(), 20u);  // history before the restart is carried over
  for (int i = 0; i < 20; ++i) EXPECT_EQ(iterations[i], i + 1);
}

TEST(RunSolver, SignalWritesCheckpointAndInterrupts) {
  const std::string dir = parasol::test::scratch_dir();
  auto o = options(dir, 50);
  o.checkpoint = dir + "/ckpt.h5";
  Descent solver(9, 1e-12);
  parasol::set_signal_received(parasol::test::rank() == 0);  // one rank sees it
  const auto summary = parasol::run_solver(solver, o, nullptr);
  parasol::set_signal_received(false);
  EXPECT_EQ(summary.status, Status::Interrupted);
  EXPECT_EQ(summary.iterations, 1);
  h5::File f(MPI_COMM_WORLD, o.checkpoint, h5::File::Mode::Read);
  EXPECT_EQ(h5::attr_int(f, "/", "iteration"), 1);
}

TEST(RunSolver, NonFiniteObjectiveEndsAsDiverged) {
  const std::string dir = parasol::test::scratch_dir();
  Descent solver(5, 1e-12, /*poison=*/true);
  const auto summary = parasol::run_solver(solver, options(dir, 10), nullptr);
  EXPECT_EQ(summary.status, Status::Diverged);
  EXPECT_EQ(summary.iterations, 3);
  EXPECT_NE(summary.message.find("not finite"), std::string::npos);
}

TEST(RunSolver, RestartFromWrongFamilyIsRejected) {
  const std::string dir = parasol::test::scratch_dir();
  auto o = options(dir, 2);
  o.checkpoint = dir + "/ckpt.h5";
  Descent solver(5, 1e-12);
  parasol::run_solver(solver, o, nullptr);
  if (parasol::test::rank() == 0) {
    // Make the file claim another family.
  }
  class Other : public Descent {
   public:
    Other() : Descent(5, 1e-12) {}
    std::string family() const override { return "other"; }
  } other;
  auto r = options(dir, 4);
  r.restart = o.checkpoint;
  EXPECT_THROW(parasol::run_solver(other, r, nullptr), parasol::Error);
}
