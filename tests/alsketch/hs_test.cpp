// Every built-in HS/CUTEst problem with a published optimum, from its standard start, with
// the gaussian, kaczmarz and ksp solvers: KKT residual <= 1e-8 and the objective within 1e-6
// (relative to max(1, |f*|)) of the published value.
#include <gtest/gtest.h>
#include <parasol/alsketch.hpp>

#include <cmath>

#include "hs_problems.hpp"

using namespace parasol::alsketch;

namespace {
struct Case {
  std::string problem, sketch;
};
std::string case_name(const testing::TestParamInfo<Case>& info) {
  return info.param.problem + "_" + info.param.sketch;
}
std::vector<Case> cases() {
  std::vector<Case> out;
  for (const auto& p : hs_problem_names())
    for (const char* s : {"gaussian", "kaczmarz", "ksp"}) out.push_back({p, s});
  return out;
}
class HsProblems : public testing::TestWithParam<Case> {};
}  // namespace

TEST_P(HsProblems, ReachesPublishedOptimum) {
  const Case& c = GetParam();
  ProblemParams params;
  params.N = 10;  // genhs28 at n = 10, where f* is known
  auto problem = make_problem(c.problem, MPI_COMM_WORLD, params);
  ASSERT_TRUE(problem->known_objective().has_value());
  Options options;
  options.sketch = c.sketch;
  options.tol = 1e-8;
  Summary summary = Solve(*problem, options, 300);
  const double f_star = *problem->known_objective();
  EXPECT_EQ(summary.status, parasol::Status::Converged) << summary.BriefReport();
  EXPECT_LE(summary.kkt_residual, 1e-8);
  EXPECT_LE(std::abs(summary.objective - f_star), 1e-6 * std::max(1.0, std::abs(f_star)))
      << summary.BriefReport();
  if (c.sketch == "gaussian") {
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) std::printf("  %s\n", summary.BriefReport().c_str());
  }
}

INSTANTIATE_TEST_SUITE_P(Alsketch, HsProblems, testing::ValuesIn(cases()), case_name);
