// BSVRB's lazy STORM/x update (solvers/bilevel/lazy_storm.hpp) against the step-by-step
// update of every row, z <- keep (z - G_old) + G_new, x_prev <- x, x <- x - lr z, which the
// solver ran before: on rows touched in every iteration exactly (same arithmetic), on rows
// left alone for many iterations (closed-form decay) to roundoff; the running ||z|| against
// the exact norm; the stored form restores bit-for-bit.
#include <parasol/random.hpp>

#include "../../solvers/bilevel/lazy_storm.hpp"
#include "test_util.hpp"

namespace parasol::bilevel {
namespace {

struct Dense {
  Vector x, x_prev, z;
  void step(std::int64_t t, double beta, double lr, const Vector& g_new, const Vector& g_old) {
    const double keep = t == 1 ? 0.0 : 1.0 - beta;
    for (Eigen::Index r = 0; r < x.size(); ++r) {
      z[r] = t == 1 ? g_new[r] : keep * (z[r] - g_old[r]) + g_new[r];
      x_prev[r] = x[r];
      x[r] -= lr * z[r];
    }
  }
};

// Random G on a random subset of `touched_per_step` rows (all rows when it is n).
void draw_g(std::int64_t t, std::int64_t n, std::int64_t touched_per_step,
            std::vector<Eigen::Index>* touched, Vector* g_new, Vector* g_old) {
  Random random(5, "test.lazy_storm", std::uint64_t(t));
  g_new->setZero(n);
  g_old->setZero(n);
  touched->clear();
  std::vector<char> seen(std::size_t(n), 0);
  for (std::int64_t k = 0; k < touched_per_step; ++k) {
    const Eigen::Index r =
        touched_per_step == n ? Eigen::Index(k) : Eigen::Index(random.below(std::uint64_t(n)));
    if (seen[std::size_t(r)]) continue;
    seen[std::size_t(r)] = 1;
    touched->push_back(r);
    (*g_new)[r] = random.normal();
    (*g_old)[r] = (*g_new)[r] + 0.1 * random.normal();
  }
}

void compare(double beta, std::int64_t touched_per_step, bool exact) {
  const std::int64_t n = 40, steps = 400;
  const double lr = 0.05;
  Vector x0(n);
  Random random(9, "test.lazy_storm.x0", 0);
  for (auto& v : x0) v = random.normal();
  Dense dense{x0, x0, Vector::Zero(n)};
  detail::LazyStorm lazy(beta, lr);
  lazy.reset(x0);
  std::vector<Eigen::Index> touched;
  Vector g_new, g_old;
  double worst_x = 0, worst_norm = 0;
  for (std::int64_t t = 1; t <= steps; ++t) {
    draw_g(t, n, touched_per_step, &touched, &g_new, &g_old);
    dense.step(t, beta, lr, g_new, g_old);
    lazy.step(t, touched, g_new, g_old);
    lazy.prepare(t + 1);
    for (Eigen::Index r = 0; r < n; ++r) {
      const double now = lazy.x_at(r, t), before = lazy.x_at(r, t - 1);
      if (exact) {
        ASSERT_EQ(now, dense.x[r]) << "row " << r << " iteration " << t;
        ASSERT_EQ(before, dense.x_prev[r]) << "row " << r << " iteration " << t;
        ASSERT_EQ(lazy.z_at(r, t), dense.z[r]);
      }
      worst_x = std::max({worst_x, std::abs(now - dense.x[r]), std::abs(before - dense.x_prev[r])});
    }
    worst_norm = std::max(worst_norm, std::abs(lazy.z_norm() - dense.z.norm()) / dense.z.norm());
  }
  EXPECT_LT(worst_x, 1e-13 * dense.x.cwiseAbs().maxCoeff());
  EXPECT_LT(worst_norm, 1e-12);
  EXPECT_GT((dense.x - x0).cwiseAbs().minCoeff(), 0.0);  // every row moved
  Vector x, z;
  lazy.materialize(&x, &z);
  EXPECT_LT((x - dense.x).cwiseAbs().maxCoeff(), 1e-13 * dense.x.cwiseAbs().maxCoeff());
  EXPECT_LT((z - dense.z).cwiseAbs().maxCoeff(), 1e-13 * dense.z.cwiseAbs().maxCoeff());
  lazy.resync_norm();
  EXPECT_LT(std::abs(lazy.z_norm() - dense.z.norm()), 1e-14 * dense.z.norm());

  // The stored form restores bit-for-bit: both continue identically.
  detail::LazyStorm restored(beta, lr);
  restored.restore(lazy.x_stored(), lazy.x_before_stored(), lazy.z_stored(), lazy.stamps(),
                   lazy.scalars());
  for (std::int64_t t = steps + 1; t <= steps + 50; ++t) {
    draw_g(t, n, touched_per_step, &touched, &g_new, &g_old);
    lazy.step(t, touched, g_new, g_old);
    restored.step(t, touched, g_new, g_old);
  }
  Vector a, b;
  lazy.materialize(&a);
  restored.materialize(&b);
  EXPECT_EQ((a - b).cwiseAbs().maxCoeff(), 0.0);
  EXPECT_EQ(lazy.z_norm(), restored.z_norm());
}

TEST(LazyStorm, EveryRowTouchedIsTheStepByStepUpdateExactly) { compare(0.9, 40, true); }
TEST(LazyStorm, SparseTouchesMatchTheStepByStepUpdate) { compare(0.9, 3, false); }
TEST(LazyStorm, SparseTouchesWithSlowDecay) { compare(0.01, 3, false); }
TEST(LazyStorm, SparseTouchesWithoutDecay) { compare(0.0, 3, false); }

}  // namespace
}  // namespace parasol::bilevel
