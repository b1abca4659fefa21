// The ET solver as a whole: independence of the rank count, checkpoint/restart, and the
// rejection of bad input.
#include <gtest/gtest.h>
#include <parasol/error.hpp>
#include <parasol/h5.hpp>

#include <cmath>
#include <limits>

#include "test_util.hpp"

namespace sc = parasol::sparsecode;
namespace t = parasol::sparsecode::test;

namespace {
sc::Options bars_options(std::int64_t max_it) {
  sc::Options o;
  o.model = "bsc";
  o.H = 10;
  o.Hprime = 6;
  o.gamma = 4;
  o.max_it = max_it;
  o.seed = 3;
  o.temperature = sc::Schedule::parse("0:3,0.6:1", "anneal_T");
  o.ncut_factor = sc::Schedule::parse("0:0,0.5:1", "anneal_ncut");
  o.W_noise = sc::Schedule::parse("0:0.1,0.5:0", "anneal_W_noise");
  return o;
}

double run_on(MPI_Comm comm, const sc::Options& o, std::int64_t N) {
  sc::BarsSpec spec;
  const Eigen::MatrixXd W = sc::bars_fields(spec, o.seed);
  sc::ETSolver solver(comm, o, t::local_bars(comm, spec, W, N, o.seed));
  double objective = 0;
  for (std::int64_t it = 1; it <= o.max_it; ++it) objective = solver.step(it).objective;
  return objective;
}
}  // namespace

// Runs the same problem on sub-communicators of 1..size ranks (all within this job) and
// compares the final truncated log-likelihoods.
TEST(SparsecodeSolver, SameSeedSameLikelihoodOnAnyRankCount) {
  const sc::Options o = bars_options(25);
  std::vector<double> results;
  for (int ranks = 1; ranks <= t::size(); ++ranks) {
    MPI_Comm sub;
    MPI_Comm_split(MPI_COMM_WORLD, t::rank() < ranks ? 0 : MPI_UNDEFINED, t::rank(), &sub);
    double value = 0;
    if (sub != MPI_COMM_NULL) {
      value = run_on(sub, o, 600);
      MPI_Comm_free(&sub);
    }
    MPI_Bcast(&value, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    results.push_back(value);
  }
  for (double v : results) {
    EXPECT_TRUE(std::isfinite(v));
    EXPECT_NEAR(v, results.front(), 1e-8 * std::abs(results.front()));
  }
}

TEST(SparsecodeSolver, RestartContinuesExactly) {
  const std::string dir = t::scratch_dir();
  const MPI_Comm comm = MPI_COMM_WORLD;
  const sc::Options o = bars_options(12);
  sc::BarsSpec spec;
  const Eigen::MatrixXd W = sc::bars_fields(spec, o.seed);
  const parasol::RowMatrix Y = t::local_bars(comm, spec, W, 300, o.seed);

  parasol::CommonOptions straight;
  straight.max_it = 12;
  straight.tol = 1e-12;
  sc::ETSolver a(comm, o, Y);
  parasol::run_solver(a, straight, nullptr);

  parasol::CommonOptions first = straight;
  first.max_it = 6;
  first.checkpoint = dir + "/ckpt.h5";
  sc::ETSolver b(comm, o, Y);
  parasol::run_solver(b, first, nullptr);
  parasol::CommonOptions second = straight;
  second.restart = first.checkpoint;
  sc::ETSolver c(comm, o, Y);
  const parasol::RunSummary summary = parasol::run_solver(c, second, nullptr);
  EXPECT_EQ(summary.iterations, 12);
  EXPECT_LT((a.parameters().W - c.parameters().W).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_NEAR(a.parameters().sigma(0), c.parameters().sigma(0), 1e-12);
  EXPECT_NEAR(a.parameters().pi(0), c.parameters().pi(0), 1e-12);
}

TEST(SparsecodeBadInput, NanInTheDataIsRejectedOnEveryRank) {
  const MPI_Comm comm = MPI_COMM_WORLD;
  sc::BarsSpec spec;
  const Eigen::MatrixXd W = sc::bars_fields(spec, 1);
  parasol::RowMatrix Y = t::local_bars(comm, spec, W, 30, 1);
  if (t::rank() == t::size() - 1 && Y.rows() > 0) Y(0, 3) = std::numeric_limits<double>::quiet_NaN();
  try {
    sc::ETSolver solver(comm, sc::Options{}, Y);
    FAIL() << "NaN accepted";
  } catch (const parasol::Error& e) {
    EXPECT_NE(std::string(e.what()).find("NaN"), std::string::npos) << e.what();
  }
}

TEST(SparsecodeBadInput, TruncationSizesAreValidated) {
  std::string why;
  sc::Options o;
  o.H = 10;
  o.Hprime = 12;
  EXPECT_FALSE(o.IsValid(&why));
  EXPECT_NE(why.find("-Hprime"), std::string::npos) << why;
  o.Hprime = 6;
  o.gamma = 7;
  EXPECT_FALSE(o.IsValid(&why));
  EXPECT_NE(why.find("-gamma"), std::string::npos) << why;
  o.gamma = 3;
  EXPECT_TRUE(o.IsValid(&why)) << why;
  o.model = "dsc";
  o.values = {1, 2};
  EXPECT_FALSE(o.IsValid(&why));
  EXPECT_NE(why.find("contain 0"), std::string::npos) << why;
  o.model = "nosuch";
  EXPECT_FALSE(o.IsValid(&why));
  EXPECT_NE(why.find("bsc"), std::string::npos) << why;
  sc::BarsSpec spec;
  const Eigen::MatrixXd W = sc::bars_fields(spec, 1);
  EXPECT_THROW(sc::ETSolver(MPI_COMM_WORLD, o, t::local_bars(MPI_COMM_WORLD, spec, W, 20, 1)),
               parasol::Error);
}

TEST(SparsecodeBadInput, RestartWithOtherDataDimensionIsRejected) {
  const std::string dir = t::scratch_dir();
  const MPI_Comm comm = MPI_COMM_WORLD;
  sc::BarsSpec five;  // D = 25
  const Eigen::MatrixXd W5 = sc::bars_fields(five, 1);
  sc::ETSolver big(comm, sc::Options{}, t::local_bars(comm, five, W5, 40, 1));
  {
    parasol::h5::File file(comm, dir + "/state.h5", parasol::h5::File::Mode::Create);
    big.save_state(file, "state");
  }
  sc::BarsSpec four;  // D = 16, H = 8
  four.R = 4;
  sc::Options o;
  o.H = 10;  // same H, other D
  const Eigen::MatrixXd W4 = sc::bars_fields(four, 1);
  sc::ETSolver small(comm, o, t::local_bars(comm, four, W4, 40, 1));
  parasol::h5::File file(comm, dir + "/state.h5", parasol::h5::File::Mode::Read);
  try {
    small.load_state(file, "state");
    FAIL() << "W of another D accepted";
  } catch (const parasol::Error& e) {
    EXPECT_NE(std::string(e.what()).find("D = 25"), std::string::npos) << e.what();
  }
}
