// Unit tests of the truncated-EM machinery: state sets, truncation mass, log-sum-exp,
// schedules and the distributed data-truncation threshold.
#include <gtest/gtest.h>
#include <parasol/error.hpp>
#include <parasol/random.hpp>

#include <algorithm>
#include <cmath>
#include <set>

#include "test_util.hpp"

namespace sc = parasol::sparsecode;

TEST(SparsecodeStates, CountsMatchTheFormula) {
  // ProSper's example: H' = 8, gamma = 5, H = 10 gives 1 + 10 + 210 states.
  EXPECT_EQ(sc::StateSet(10, 8, 5, {0, 1}).size(), 221);
  EXPECT_EQ(sc::StateSet::count(10, 8, 5, 2), 221);
  // Ternary: 1 + 2H singletons + sum_k C(H',k) 2^k.
  EXPECT_EQ(sc::StateSet(10, 7, 3, {0, 1, -1}).size(), 1 + 20 + 21 * 4 + 35 * 8);
  EXPECT_EQ(sc::StateSet(10, 1, 1, {0, 1}).size(), 11);
}

TEST(SparsecodeStates, FullSetEnumeratesEveryStateOnce) {
  for (const std::vector<double>& values : {std::vector<double>{0, 1}, {0, 1, -1}, {0, 2, 5}}) {
    const int H = 5;
    const sc::StateSet S(H, H, H, values);
    ASSERT_EQ(S.size(), static_cast<int>(std::pow(values.size(), H)));
    std::vector<int> cand = {0, 1, 2, 3, 4};
    std::set<std::vector<double>> seen;
    for (int k = 0; k < S.size(); ++k) {
      std::vector<double> s(H);
      S.expand(k, cand.data(), s.data());
      const int active = static_cast<int>(std::count_if(s.begin(), s.end(), [](double x) { return x != 0; }));
      EXPECT_EQ(active, S.active_count(k));
      EXPECT_TRUE(seen.insert(s).second) << "state " << k << " repeated";
    }
  }
}

TEST(SparsecodeStates, CandidateStatesRespectGammaAndCandidates) {
  const sc::StateSet S(9, 4, 3, {0, 1});
  const std::vector<int> cand = {1, 4, 6, 8};
  for (int k = S.combo_begin(); k < S.size(); ++k) {
    std::vector<double> s(9);
    S.expand(k, cand.data(), s.data());
    int active = 0;
    for (int h = 0; h < 9; ++h)
      if (s[h] != 0) {
        ++active;
        EXPECT_TRUE(std::find(cand.begin(), cand.end(), h) != cand.end());
      }
    EXPECT_GE(active, 2);
    EXPECT_LE(active, 3);
  }
}

TEST(SparsecodeStates, LogPriorSumsOverLatents) {
  const sc::StateSet S(6, 4, 3, {0, 1, -1});
  Eigen::VectorXd lp(3);
  lp << std::log(0.7), std::log(0.2), std::log(0.1);
  const Eigen::VectorXd prior = S.log_prior(lp);
  const std::vector<int> cand = {0, 2, 3, 5};
  for (int k = 0; k < S.size(); ++k) {
    std::vector<double> s(6);
    S.expand(k, cand.data(), s.data());
    double expect = 0;
    for (double x : s) expect += x == 0 ? lp(0) : (x == 1 ? lp(1) : lp(2));
    EXPECT_NEAR(prior(k), expect, 1e-12);
  }
}

TEST(SparsecodeTruncation, MassMatchesEnumeration) {
  const int H = 7;
  for (double p : {0.05, 0.3, 0.8})
    for (int gamma : {1, 3, 7}) {
      double A = 0, B = 0;
      for (int mask = 0; mask < (1 << H); ++mask) {
        const int k = __builtin_popcount(mask);
        if (k > gamma) continue;
        const double prob = std::pow(p, k) * std::pow(1 - p, H - k);
        A += prob;
        B += k * prob;
      }
      const sc::TruncationMass m = sc::truncation_mass(H, gamma, p);
      EXPECT_NEAR(m.A, A, 1e-12);
      EXPECT_NEAR(m.B, B, 1e-12);
    }
}

TEST(SparsecodeLogSumExp, StableForLargeAndInfiniteValues) {
  const double big[] = {1000.0, 1000.0};
  EXPECT_NEAR(sc::log_sum_exp(big, 2), 1000.0 + std::log(2.0), 1e-12);
  const double small[] = {-1000.0, -1001.0};
  EXPECT_NEAR(sc::log_sum_exp(small, 2), -1000.0 + std::log1p(std::exp(-1.0)), 1e-12);
  const double none[] = {-INFINITY, -INFINITY};
  EXPECT_EQ(sc::log_sum_exp(none, 2), -INFINITY);
}

TEST(SparsecodeSchedule, PiecewiseLinear) {
  const auto s = sc::Schedule::parse("0:5,0.8:1", "anneal_T");
  EXPECT_DOUBLE_EQ(s.at(0, 100), 5.0);
  EXPECT_DOUBLE_EQ(s.at(40, 100), 3.0);
  EXPECT_DOUBLE_EQ(s.at(80, 100), 1.0);
  EXPECT_DOUBLE_EQ(s.at(100, 100), 1.0);
  EXPECT_EQ(s.settled_after(100), 80);
  const auto c = sc::Schedule::parse("2.5", "x");
  EXPECT_DOUBLE_EQ(c.at(7, 10), 2.5);
  EXPECT_EQ(c.settled_after(10), 0);
  const auto tail = sc::Schedule::parse("0:0,-10:1", "x");  // ramp ends 10 before the end
  EXPECT_DOUBLE_EQ(tail.at(45, 100), 0.5);
  EXPECT_THROW(sc::Schedule::parse("0:5,x", "anneal_T"), parasol::Error);
  EXPECT_THROW(sc::Schedule::parse("1.5:2", "anneal_T"), parasol::Error);
  EXPECT_THROW(sc::Schedule::parse("", "anneal_T"), parasol::Error);
}

// The distributed selection must mark exactly the `keep` largest values (plus ties at the
// cut), judged against a sort of all values that every rank can regenerate by index.
TEST(SparsecodeKeepLargest, MatchesAGlobalSort) {
  const MPI_Comm comm = MPI_COMM_WORLD;
  const std::int64_t N = 1001;
  const parasol::Partition rows = parasol::Partition::block(N, comm);
  for (bool ties : {false, true}) {
    std::vector<double> all(N);
    for (std::int64_t i = 0; i < N; ++i) {
      const double u = parasol::Random(7, "test.keep", i).normal() * 100.0;
      all[i] = ties ? std::floor(u / 20.0) : u;
    }
    std::vector<double> sorted = all;
    std::sort(sorted.begin(), sorted.end(), std::greater<double>());
    for (std::int64_t keep : {std::int64_t(0), std::int64_t(1), std::int64_t(17),
                              std::int64_t(500), std::int64_t(1000), N, N + 5}) {
      const auto kept = sc::keep_largest(comm, all.data() + rows.begin, rows.count(), keep);
      std::int64_t local = std::count(kept.begin(), kept.end(), 1), total = 0;
      MPI_Allreduce(&local, &total, 1, MPI_INT64_T, MPI_SUM, comm);
      std::int64_t expect = std::min(std::max<std::int64_t>(keep, 0), N);
      if (expect > 0 && expect < N) {
        const double cut = sorted[expect - 1];
        expect = std::count_if(all.begin(), all.end(), [&](double v) { return v >= cut; });
        for (std::int64_t i = 0; i < rows.count(); ++i)
          EXPECT_EQ(kept[i] != 0, all[rows.begin + i] >= cut) << "ties " << ties << " keep " << keep;
      }
      EXPECT_EQ(total, expect) << "ties " << ties << " keep " << keep;
      if (!ties && keep > 0 && keep <= N) EXPECT_EQ(total, keep);
    }
  }
}
