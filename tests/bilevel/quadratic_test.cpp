// Random quadratic bilevel instances with a closed-form optimum: every method reaches x*,
// every method's hypergradient estimate matches finite differences of Phi(x) = F(x, z*(x)),
// and malformed input files are rejected with a clear message.
#include <parasol/error.hpp>
#include <parasol/random.hpp>

#include "test_util.hpp"

namespace parasol::bilevel {
namespace {

constexpr std::int64_t kUpper = 5, kLower = 8;

// Settings under which each method converges on the random instances (deterministic).
Options settings(const std::string& method) {
  Options o;
  o.method = method;
  o.lvhba_alpha = 0.3;  // c_k = 0.08 (k + 1): O(1/c) bias below 1e-4 by the end
  o.lvhba_eta = 0.12;
  o.lvhba_beta = 0.3;
  o.lvhba_gamma1 = 1.0;
  o.lvhba_c0 = 0.08;
  o.lvhba_p = 1.0;
  o.penalty_sigma = 1e-6;
  o.penalty_lr_x = 0.3;
  o.penalty_lr_y = 0.3;
  o.penalty_lr_z = 0.3;
  o.penalty_inner = 300;
  o.penalty_inner_tol = 1e-12;
  o.borep_lr_x = 0.1;
  o.borep_lr_y = 0.3;
  o.borep_nu = 0.3;
  o.borep_beta = 0.5;
  o.borep_decay = 0.995;
  o.borep_interval = 1;
  o.borep_lower_steps = 5;
  o.bsvrb_lr_x = 0.3;
  o.bsvrb_tau = 0.3;
  o.bsvrb_tau_v = 0.3;
  o.bsvrb_beta = 0.5;
  o.bsvrb_alpha = 1.0;
  o.bsvrb_gamma = 0.0;
  o.bsvrb_vbound = 1e6;
  return o;
}

std::int64_t iterations(const std::string& method) {
  if (method == "lvhba") return 200000;
  if (method == "penalty") return 300;
  if (method == "borep") return 4000;
  return 600;
}

class QuadraticMethods : public ::testing::TestWithParam<std::string> {};

TEST_P(QuadraticMethods, ReachesClosedFormOptimum) {
  for (std::uint64_t seed : {11u, 12u}) {
    QuadraticData data = random_quadratic(seed, kUpper, kLower);
    Vector x_star, z_star;
    ASSERT_TRUE(data.solution(&x_star, &z_star));
    auto solver = make_solver(settings(GetParam()), make_quadratic_problem(MPI_COMM_WORLD, data));
    test::run_steps(*solver, iterations(GetParam()));
    EXPECT_LT(test::relative_error(solver->x(), x_star), 1e-4)
        << GetParam() << " seed " << seed << " x = " << solver->x().transpose()
        << "\nx* = " << x_star.transpose();
  }
}

TEST_P(QuadraticMethods, HypergradientMatchesFiniteDifferences) {
  QuadraticData data = random_quadratic(21, kUpper, kLower);
  auto problem = make_quadratic_problem(MPI_COMM_WORLD, data);
  Random random(5, "test.point", 0);
  Vector x(kUpper);
  for (auto& v : x) v = random.normal();
  // Phi(x) = F(x, z*(x)) with z* from a dense solve, independent of the library.
  auto phi = [&](const Vector& at) {
    Vector z = -data.A.llt().solve(data.C.transpose() * at + data.a);
    return problem->upper(at, z, nullptr, nullptr);
  };
  Vector reference = test::finite_difference(phi, x);
  Options options = settings(GetParam());
  options.lvhba_c0 = 1e6;  // LV-HBA's estimate c d_x is exact only as c grows
  options.lvhba_p = 0.0;
  options.lvhba_eta = 0.5;
  options.lvhba_alpha = 0.3;
  auto solver = make_solver(options, problem);
  Vector estimate = solver->hypergradient_at(x, 3000);
  EXPECT_LT(test::relative_error(estimate, reference), 1e-5)
      << GetParam() << "\nestimate  " << estimate.transpose() << "\nreference "
      << reference.transpose();
}

INSTANTIATE_TEST_SUITE_P(Bilevel, QuadraticMethods,
                         ::testing::Values("lvhba", "penalty", "borep", "bsvrb1", "bsvrb2"));

TEST(Quadratic, ClosedFormHypergradient) {
  QuadraticData data = random_quadratic(3, kUpper, kLower);
  auto problem = make_quadratic_problem(MPI_COMM_WORLD, data);
  Vector x = Vector::LinSpaced(kUpper, -1.0, 2.0);
  auto phi = [&](const Vector& at) {
    Vector z = -data.A.llt().solve(data.C.transpose() * at + data.a);
    return problem->upper(at, z, nullptr, nullptr);
  };
  Vector reference = test::finite_difference(phi, x);
  EXPECT_LT(test::relative_error(data.hypergradient(x), reference), 1e-7);
  // The library's implicit (CG) hypergradient at the exact lower solution.
  Vector z = solve_lower(*problem, x, Vector::Zero(kLower), 1e-12);
  EXPECT_LT(test::relative_error(implicit_hypergradient(*problem, x, z), reference), 1e-7);
  // And the optimum is stationary.
  Vector x_star, z_star;
  ASSERT_TRUE(data.solution(&x_star, &z_star));
  EXPECT_LT(data.hypergradient(x_star).norm(), 1e-10);
}

TEST(Quadratic, FileRoundTrip) {
  std::string path = test::scratch_dir() + "/q.h5";
  QuadraticData data = random_quadratic(4, 3, 4);
  write_quadratic(MPI_COMM_WORLD, path, data);
  QuadraticData back = read_quadratic(MPI_COMM_WORLD, path);
  EXPECT_EQ((back.A - data.A).norm(), 0.0);
  EXPECT_EQ((back.C - data.C).norm(), 0.0);
  EXPECT_EQ((back.K - data.K).norm(), 0.0);
  EXPECT_EQ((back.h - data.h).norm(), 0.0);
}

// Expects read_quadratic to throw an Error whose message contains `needle`, on every rank.
void expect_rejected(const std::string& path, const std::string& needle) {
  try {
    read_quadratic(MPI_COMM_WORLD, path);
    ADD_FAILURE() << "accepted " << path;
  } catch (const Error& e) {
    std::string message = e.what();
    EXPECT_NE(message.find(needle), std::string::npos) << message;
    EXPECT_NE(message.find(path), std::string::npos) << message;
  }
}

TEST(Quadratic, RejectsBadInput) {
  std::string dir = test::scratch_dir();
  QuadraticData not_pd = random_quadratic(4, 3, 4);
  not_pd.A(2, 2) = -5.0;
  write_quadratic(MPI_COMM_WORLD, dir + "/not_pd.h5", not_pd);
  expect_rejected(dir + "/not_pd.h5", "not positive definite");

  QuadraticData mismatch = random_quadratic(4, 3, 4);
  mismatch.C = Matrix::Ones(3, 5);
  write_quadratic(MPI_COMM_WORLD, dir + "/mismatch.h5", mismatch);
  expect_rejected(dir + "/mismatch.h5", "matrix C is 3x5, expected 3x4");

  QuadraticData short_vector = random_quadratic(4, 3, 4);
  short_vector.f = Vector::Ones(2);
  write_quadratic(MPI_COMM_WORLD, dir + "/short.h5", short_vector);
  expect_rejected(dir + "/short.h5", "vector f has length 2, expected 4");

  QuadraticData asymmetric = random_quadratic(4, 3, 4);
  asymmetric.A(0, 1) += 1.0;
  write_quadratic(MPI_COMM_WORLD, dir + "/asym.h5", asymmetric);
  expect_rejected(dir + "/asym.h5", "not symmetric");
}

}  // namespace
}  // namespace parasol::bilevel
