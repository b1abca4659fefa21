// The bars test of ProSper: 5x5 images, H = 10 bars of amplitude 10, noise sigma = 2,
// pi = 0.2, N = 1000. A run recovers the bars when greedy matching of learned to true
// fields leaves every matched pair with a mean absolute error below 10% of the amplitude.
// The seeds come from SPARSECODE_BARS_SEEDS="first:count" (default "1:1"): the normal suite
// runs one seed per model at 1 rank and at 2 or 3 ranks (same data, same result up to
// round-off);
// the `long` sweep runs seeds 1..10 at 1 rank and requires at least 9 recoveries.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "test_util.hpp"

namespace sc = parasol::sparsecode;
namespace t = parasol::sparsecode::test;

namespace {

struct Case {
  std::string model;
  int Hprime, gamma;
  std::int64_t max_it;
  std::string temperature;
  bool anneal_prior = false;
  std::string W_noise = "0";
};

// In the normal suite every model runs at 1 rank; the 2- and 3-rank runs share the models
// (alternately) to keep the suite short. Results are rank-count independent (solver_test).
bool runs_at_this_rank_count(const std::string& model) {
  const std::vector<std::string> order = {"bsc", "mca", "tsc", "dsc", "gsc", "mmca"};
  const auto index = std::find(order.begin(), order.end(), model) - order.begin();
  return t::size() == 1 || index % 2 == (t::size() == 2 ? 0 : 1);
}

void run_bars(const Case& c) {
  const MPI_Comm comm = MPI_COMM_WORLD;
  int first = 1, seeds = 1;
  if (const char* env = std::getenv("SPARSECODE_BARS_SEEDS"))
    ASSERT_EQ(std::sscanf(env, "%d:%d", &first, &seeds), 2) << "SPARSECODE_BARS_SEEDS=" << env;
  else if (!runs_at_this_rank_count(c.model))
    GTEST_SKIP() << c.model << " runs at 1 rank and at " << (t::size() == 2 ? 3 : 2) << " ranks";
  const int allowed_failures = seeds / 10;  // 9 of 10 must recover; a short run: all
  int failures = 0;
  for (int seed = first; seed < first + seeds; ++seed) {
    const auto start = std::chrono::steady_clock::now();
    sc::BarsSpec spec;
    spec.model = c.model;
    spec.signed_bars = c.model == "tsc" || c.model == "mmca";
    const Eigen::MatrixXd W = sc::bars_fields(spec, seed);
    sc::Options o;
    o.model = c.model;
    o.H = 10;
    o.Hprime = c.Hprime;
    o.gamma = c.gamma;
    o.values = spec.values;
    o.max_it = c.max_it;
    o.seed = seed;
    o.temperature = sc::Schedule::parse(c.temperature, "anneal_T");
    o.anneal_prior = c.anneal_prior;
    o.W_noise = sc::Schedule::parse(c.W_noise, "anneal_W_noise");
    o.ncut_factor = sc::Schedule::parse("0:0,0.67:1", "anneal_ncut");
    sc::ETSolver solver(comm, o, t::local_bars(comm, spec, W, 1000, seed));
    for (std::int64_t it = 1; it <= o.max_it; ++it) solver.step(it);
    const double error = sc::bars_match_error(sc::effective_fields(solver.parameters()), W, c.model == "tsc");
    const bool ok = error < 0.1 * spec.amplitude;
    failures += ok ? 0 : 1;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (t::rank() == 0)
      std::printf("  %s seed %d: largest matched MAE %.3f (%s), sigma %.3f, pi %.3f, %.2f s\n",
                  c.model.c_str(), seed, error, ok ? "recovered" : "FAILED",
                  solver.parameters().sigma.mean(), solver.model().active_probability(solver.parameters()),
                  seconds);
  }
  EXPECT_LE(failures, allowed_failures) << c.model << ": " << failures << " of " << seeds
                                        << " seeds did not recover the bars";
}

}  // namespace

// Annealing as in ProSper's shipped schedules, shortened: T from 4 (bsc, mca, dsc, gsc) or 2
// (tsc) down to 1; mca tempers the prior as well, as ProSper's MCA does, and needs
// parameter-noise annealing on W to leave the optimum where one bar is spread thinly over
// all fields (a third to half of the seeds end there without it, or with 100 iterations).
TEST(SparsecodeBars, BinarySparseCoding) { run_bars({"bsc", 8, 5, 80, "0:4,0.7:1"}); }
TEST(SparsecodeBars, MaximalCausesAnalysis) {
  run_bars({"mca", 8, 5, 150, "0:4,0.8:1", true, "0:2,0.7:0"});
}
TEST(SparsecodeBars, MaximumMagnitudeCausesAnalysis) {
  run_bars({"mmca", 7, 5, 150, "0:4,0.8:1", true, "0:2,0.7:0"});  // bars of random sign
}
TEST(SparsecodeBars, TernarySparseCoding) { run_bars({"tsc", 6, 3, 80, "0:2,0.6:1"}); }
TEST(SparsecodeBars, DiscreteSparseCoding) { run_bars({"dsc", 6, 3, 80, "0:4,0.7:1"}); }
TEST(SparsecodeBars, SpikeAndSlabSparseCoding) { run_bars({"gsc", 7, 4, 80, "0:4,0.7:1"}); }
