// Penalty method of Kwon, Kwon, Wright and Nowak (ICLR 2024). With h_sigma = sigma F + f,
//   psi_sigma(x) = min_y {F + (f - f*)/sigma},
//   grad psi_sigma(x) = grad_x F(x, y) + (grad_x f(x, y) - grad_x f(x, z)) / sigma
// where y minimizes h_sigma(x, .) and z minimizes f(x, .) over Y: two lower sequences with
// projected gradient steps. Variant "double": `penalty_inner` inner steps on y and z per
// outer step (stopping early below penalty_inner_tol), full data. y() and /solution/y are
// the penalized sequence y (within O(sigma) of the lower solution). Variant "single": one
// y and one z step per iteration on minibatches, momentum on the x direction.
#include <parasol/error.hpp>

#include <cmath>

#include "common.hpp"

namespace parasol::bilevel {
namespace {

class Penalty : public detail::ProblemSolver {
 public:
  Penalty(const Options& options, std::shared_ptr<Problem> problem)
      : ProblemSolver(options, std::move(problem)) {
    if (problem_->num_constraints() > 0)
      throw Error("penalty: problem " + problem_->name() +
                  " has lower-level constraints coupling x and y; the penalty method needs a "
                  "lower-level set Y independent of x (use -method lvhba)");
    z_ = y_;
    momentum_ = Vector::Zero(x_.size());
    single_ = options_.penalty_variant == "single";
  }
  std::string method() const override { return "penalty"; }

  StepReport step(std::int64_t iteration) override {
    inner_steps(iteration, single_ ? 1 : options_.penalty_inner, single_);
    Vector direction = gradient(iteration, single_);
    double stationarity = std::sqrt(problem_->upper_dot(direction, direction));
    if (single_ && options_.penalty_momentum > 0) {
      momentum_ = options_.penalty_momentum * momentum_ + direction;
      direction = momentum_;
    }
    x_ -= options_.penalty_lr_x * direction;
    problem_->project_upper(&x_);
    return report(stationarity, iteration);
  }

  Vector hypergradient_at(const Vector& x, std::int64_t inner) override {
    x_ = x;
    inner_steps(0, inner, false);
    return gradient(0, false);
  }

  void save_state(h5::File& file, const std::string& group) const override {
    save_xy(file, group);
    detail::save_vector(file, group + "/z", z_, false);
    detail::save_vector(file, group + "/momentum", momentum_, problem_->upper_distributed());
  }
  void load_state(const h5::File& file, const std::string& group) override {
    load_xy(file, group);
    z_ = detail::load_vector(file, group + "/z", z_.size(), false);
    momentum_ = detail::load_vector(file, group + "/momentum", momentum_.size(),
                                    problem_->upper_distributed());
  }

 private:
  void inner_steps(std::int64_t iteration, std::int64_t count, bool stochastic) {
    const double sigma = options_.penalty_sigma;
    for (std::int64_t k = 0; k < count; ++k) {
      std::uint64_t index = std::uint64_t(iteration) * std::uint64_t(count) + k;
      Sample lower = stochastic ? lower_batch("penalty.inner_lower", index) : Sample::all();
      Sample upper = stochastic ? upper_batch("penalty.inner_upper", index) : Sample::all();
      Vector Fy, fy, fz;
      problem_->upper(x_, y_, nullptr, &Fy, upper);
      problem_->lower(x_, y_, nullptr, &fy, lower);
      problem_->lower(x_, z_, nullptr, &fz, lower);
      Vector grad_y = sigma * Fy + fy;
      y_ -= options_.penalty_lr_y * grad_y;
      z_ -= options_.penalty_lr_z * fz;
      problem_->project_lower(&y_);
      problem_->project_lower(&z_);
      if (!stochastic && options_.penalty_inner_tol > 0 &&
          std::max(grad_y.norm(), fz.norm()) < options_.penalty_inner_tol)
        break;
    }
  }

  Vector gradient(std::int64_t iteration, bool stochastic) const {
    Sample lower = stochastic ? lower_batch("penalty.outer_lower", iteration) : Sample::all();
    Sample upper = stochastic ? upper_batch("penalty.outer_upper", iteration) : Sample::all();
    Vector Fx, fx_y, fx_z;
    problem_->upper(x_, y_, &Fx, nullptr, upper);
    problem_->lower(x_, y_, &fx_y, nullptr, lower);
    problem_->lower(x_, z_, &fx_z, nullptr, lower);
    return Fx + (fx_y - fx_z) / options_.penalty_sigma;
  }

  Vector z_, momentum_;
  bool single_ = false;
};

}  // namespace

std::unique_ptr<Solver> make_penalty(const Options& options, std::shared_ptr<Problem> problem) {
  return std::make_unique<Penalty>(options, std::move(problem));
}

}  // namespace parasol::bilevel
