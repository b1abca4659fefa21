#pragma once
// BSVRB's STORM estimate z and upper iterate x, updated row by row only where G moves them.
//
// On the multiblock task the averaged G_new, G_old are nonzero only on the O(I B) training
// rows the sampled blocks drew (BlockProblem::coupling_rows). On every other row the
// iteration
//   z <- keep (z - G_old) + G_new,  x <- x - lr z          (keep = 1 - beta)
// is z <- keep z, x <- x - lr z, whose effect over D iterations has a closed form:
//   z(s + D) = keep^D z(s),  x(s + D) = x(s) - lr z(s) (keep + keep^2 + ... + keep^D).
// So each row keeps its values at the last iteration that touched it (its stamp), and an
// iteration costs O(touched rows) instead of the O(n) pass every rank had to repeat because
// x is replicated. Every rank does the same arithmetic on the same rows (the touched rows
// and G follow from the shared seed and the gathered values), so x stays bit-for-bit
// independent of the rank count. A row touched in every iteration gets exactly the
// step-by-step arithmetic (D = 0: factors keep^0 = 1 and an empty sum 0), so dense problems
// are unchanged; a row left alone for D > 0 iterations differs from the step-by-step
// values by roundoff only (tested against the dense update).
#include <parasol/bilevel.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace parasol::bilevel::detail {

class LazyStorm {
 public:
  LazyStorm() = default;
  LazyStorm(double beta, double lr) : keep_(1.0 - beta), lr_(lr) {}

  // x everywhere (also "before iteration 0"), z = 0, no iteration applied yet.
  void reset(const Vector& x) {
    x_ = x_before_ = x;
    z_ = Vector::Zero(x.size());
    stamp_.assign(std::size_t(x.size()), 0);
    now_ = 0;
    znorm2_ = 0.0;
    finite_ = x.allFinite();
  }

  std::int64_t size() const { return x_.size(); }
  std::int64_t now() const { return now_; }  // the last iteration applied

  // Makes the closed-form factors available for gaps up to `iteration` (call before x_at).
  void prepare(std::int64_t iteration) {
    if (power_.empty()) {
      power_ = {1.0};
      sum_ = {0.0};
    }
    while (!converged_ && std::int64_t(power_.size()) <= iteration) {
      power_.push_back(power_.back() * keep_);
      sum_.push_back(sum_.back() + power_.back());
      // keep^D underflowed and the sum stopped moving: every longer gap has these factors.
      converged_ = power_.back() == 0.0 && sum_.back() == sum_[sum_.size() - 2];
    }
  }

  // x_r after iteration `it`, for stamp_r - 1 <= it <= the prepared range.
  double x_at(Eigen::Index r, std::int64_t it) const {
    const std::int64_t s = stamp_[std::size_t(r)];
    if (it < s) return x_before_[r];  // it == s - 1: kept when row r was last touched
    return x_[r] - lr_ * (z_[r] * sum_[gap(it - s)]);
  }
  double z_at(Eigen::Index r, std::int64_t it) const {
    return z_[r] * power_[gap(it - stamp_[std::size_t(r)])];
  }

  // Iteration t = now() + 1 on the unique rows `touched`: z <- keep (z - g_old) + g_new
  // (t = 1: z = g_new), x <- x - lr z. Every other row only decays, implicitly.
  void step(std::int64_t t, const std::vector<Eigen::Index>& touched, const Vector& g_new,
            const Vector& g_old) {
    prepare(t);
    const double keep = t == 1 ? 0.0 : keep_;
    // ||z||^2 kept up to date: every row decays by keep^2, the touched rows are replaced.
    znorm2_ *= keep * keep;
    for (Eigen::Index r : touched) {
      const std::int64_t age = t - 1 - stamp_[std::size_t(r)];
      const double z_then = z_[r] * power_[gap(age)];
      const double x_then = x_[r] - lr_ * (z_[r] * sum_[gap(age)]);
      const double z_new = t == 1 ? g_new[r] : keep * (z_then - g_old[r]) + g_new[r];
      const double decayed = keep * z_then;
      znorm2_ += z_new * z_new - decayed * decayed;
      x_before_[r] = x_then;
      x_[r] = x_then - lr_ * z_new;
      z_[r] = z_new;
      stamp_[std::size_t(r)] = t;
      finite_ = finite_ && std::isfinite(x_[r]) && std::isfinite(z_new);
    }
    znorm2_ = std::max(znorm2_, 0.0);  // (cancellation in the running sum)
    now_ = t;
  }

  // Current x and z (after iteration now()), O(n).
  void materialize(Vector* x, Vector* z = nullptr) const {
    x->resize(x_.size());
    for (Eigen::Index r = 0; r < x_.size(); ++r) (*x)[r] = x_at(r, now_);
    if (z) {
      z->resize(z_.size());
      for (Eigen::Index r = 0; r < z_.size(); ++r) (*z)[r] = z_at(r, now_);
    }
  }
  // ||z|| from the running sum (O(1)); resync_norm() recomputes it exactly (O(n)).
  double z_norm() const { return std::sqrt(znorm2_); }
  void resync_norm() {
    double sum = 0.0;
    for (Eigen::Index r = 0; r < z_.size(); ++r) {
      const double z = z_at(r, now_);
      sum += z * z;
    }
    znorm2_ = sum;
  }
  // False once a touched row became non-finite (untouched rows only decay).
  bool finite() const { return finite_; }

  // The stored form (checkpoints): values at the stamps, the stamps, [now, ||z||^2].
  const Vector& x_stored() const { return x_; }
  const Vector& x_before_stored() const { return x_before_; }
  const Vector& z_stored() const { return z_; }
  Vector stamps() const {
    Vector out(x_.size());
    for (Eigen::Index r = 0; r < out.size(); ++r) out[r] = double(stamp_[std::size_t(r)]);
    return out;
  }
  std::vector<double> scalars() const { return {double(now_), znorm2_}; }
  void restore(Vector x, Vector x_before, Vector z, const Vector& stamps,
               const std::vector<double>& scalars) {
    x_ = std::move(x);
    x_before_ = std::move(x_before);
    z_ = std::move(z);
    stamp_.resize(std::size_t(stamps.size()));
    for (Eigen::Index r = 0; r < stamps.size(); ++r)
      stamp_[std::size_t(r)] = std::int64_t(stamps[r]);
    now_ = std::int64_t(scalars.at(0));
    znorm2_ = scalars.at(1);
    finite_ = x_.allFinite() && z_.allFinite();
    prepare(now_);
  }

 private:
  std::size_t gap(std::int64_t d) const {
    return std::min(std::size_t(d), power_.size() - 1);  // past convergence: the last factors
  }

  double keep_ = 0.1, lr_ = 1e-3;
  Vector x_, x_before_, z_;          // row r after iteration stamp_[r], x before it
  std::vector<std::int64_t> stamp_;  // the last iteration that touched each row
  std::int64_t now_ = 0;
  double znorm2_ = 0.0;
  bool finite_ = true;
  // power_[D] = keep^D, sum_[D] = keep + ... + keep^D, built in the same order everywhere.
  std::vector<double> power_, sum_;
  bool converged_ = false;
};

}  // namespace parasol::bilevel::detail
