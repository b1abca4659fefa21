// The LV-HBA coupled-constraint toy: lvhba reaches x* = -0.3, y1* = 0.7 (y2 is not unique in
// the lower level but is at the upper optimum, -0.4); the other methods refuse the coupled
// constraint with a message.
#include <parasol/error.hpp>

#include "test_util.hpp"

namespace parasol::bilevel {
namespace {

TEST(Toy, LvHbaReachesKnownOptimum) {
  auto problem = make_toy_problem(MPI_COMM_WORLD, 100);
  Options options;
  options.method = "lvhba";
  // The penalty c_k = 0.02 (k + 1) reaches 1e4 at the end: the O(1/c) bias of the value-
  // function penalty is then below the tolerance.
  options.lvhba_alpha = 0.1;
  options.lvhba_eta = 0.1;
  options.lvhba_beta = 0.1;
  options.lvhba_gamma1 = 1.0;
  options.lvhba_gamma2 = 1.0;
  options.lvhba_c0 = 0.02;
  options.lvhba_p = 1.0;
  auto solver = make_solver(options, problem);
  test::run_steps(*solver, 500000);
  Vector x_star, y_star;
  ASSERT_TRUE(problem->known_solution(&x_star, &y_star));
  EXPECT_LT(test::relative_error(solver->x(), x_star), 1e-4) << solver->x().head(3).transpose();
  EXPECT_LT(test::relative_error(solver->y(), y_star), 1e-4);
}

TEST(Toy, OtherMethodsRefuseCoupledConstraints) {
  for (std::string method : {"penalty", "borep", "bsvrb2"}) {
    Options options;
    options.method = method;
    EXPECT_THROW(make_solver(options, make_toy_problem(MPI_COMM_WORLD, 10)), Error) << method;
  }
}

}  // namespace
}  // namespace parasol::bilevel
