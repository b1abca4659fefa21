// BO-REP (Hao, Gong, Liu, ICLR 2024): normalized momentum on the upper variable,
//   g_t = grad_x F(x,y) - d2f/dxdy v,   m_t = beta m_{t-1} + (1 - beta) g_t,
//   x_{t+1} = P_X(x_t - eta_t m_t / |m_t|),  eta_t = lr_x decay^(t-1) (lr_y likewise with
//   its own borep_lr_y_decay; both 1 by default),
// v tracking the linear system d2f/dy2 v = grad_y F by one Hessian-vector step per
// iteration, v <- v - nu (d2f/dy2 v - grad_y F); the lower variable refined once at x_0
// (borep_init_steps gradient steps) and then updated only every `borep_interval`
// iterations by `borep_lower_steps` gradient steps (frozen in between).
#include <parasol/error.hpp>

#include <cmath>

#include "common.hpp"

namespace parasol::bilevel {
namespace {

class BoRep : public detail::ProblemSolver {
 public:
  BoRep(const Options& options, std::shared_ptr<Problem> problem)
      : ProblemSolver(options, std::move(problem)) {
    if (problem_->num_constraints() > 0)
      throw Error("borep: problem " + problem_->name() +
                  " has lower-level constraints; BO-REP needs an unconstrained strongly convex "
                  "lower level (use -method lvhba)");
    v_ = Vector::Zero(y_.size());
    momentum_ = Vector::Zero(x_.size());
  }
  std::string method() const override { return "borep"; }

  StepReport step(std::int64_t iteration) override {
    if (!refined_) {
      lower_steps(0, options_.borep_init_steps, 0);
      refined_ = true;
    }
    if ((iteration - 1) % options_.borep_interval == 0)
      lower_steps(iteration, options_.borep_lower_steps, 1,
                  std::pow(options_.borep_lr_y_decay, double(iteration - 1)));
    Vector g = hypergradient(iteration);
    double stationarity = std::sqrt(problem_->upper_dot(g, g));
    const double beta = options_.borep_beta;
    momentum_ = beta * momentum_ + (1.0 - beta) * g;
    double norm = std::sqrt(problem_->upper_dot(momentum_, momentum_));
    double lr = options_.borep_lr_x * std::pow(options_.borep_decay, double(iteration - 1));
    x_ -= lr / (norm + 1e-10) * momentum_;
    problem_->project_upper(&x_);
    return report(stationarity, iteration);
  }

  Vector hypergradient_at(const Vector& x, std::int64_t inner) override {
    x_ = x;
    lower_steps(0, inner, 2);
    for (std::int64_t k = 0; k < inner; ++k) hypergradient(0, false);
    return hypergradient(0, false);
  }

  void save_state(h5::File& file, const std::string& group) const override {
    save_xy(file, group);
    detail::save_vector(file, group + "/v", v_, false);
    detail::save_vector(file, group + "/momentum", momentum_, problem_->upper_distributed());
    detail::save_scalars(file, group + "/refined", {refined_ ? 1.0 : 0.0});
  }
  void load_state(const h5::File& file, const std::string& group) override {
    load_xy(file, group);
    v_ = detail::load_vector(file, group + "/v", v_.size(), false);
    momentum_ = detail::load_vector(file, group + "/momentum", momentum_.size(),
                                    problem_->upper_distributed());
    refined_ = detail::load_scalars(file, group + "/refined", 1)[0] != 0.0;
  }

 private:
  void lower_steps(std::int64_t iteration, std::int64_t count, std::uint64_t stream,
                   double scale = 1.0) {
    for (std::int64_t k = 0; k < count; ++k) {
      Sample sample = lower_batch("borep.lower" + std::to_string(stream),
                                  std::uint64_t(iteration) * std::uint64_t(count) + k);
      Vector fy;
      problem_->lower(x_, y_, nullptr, &fy, sample);
      y_ -= scale * options_.borep_lr_y * fy;
      problem_->project_lower(&y_);
    }
  }

  // One step of the linear-system variable v, then the hypergradient estimate.
  Vector hypergradient(std::int64_t iteration, bool stochastic = true) {
    Sample lower = stochastic ? lower_batch("borep.hvp", iteration) : Sample::all();
    Sample upper = stochastic ? upper_batch("borep.upper", iteration) : Sample::all();
    Vector Fx, Fy, hyy_v, hxy_v;
    problem_->upper(x_, y_, &Fx, &Fy, upper);
    problem_->lower_hvp(x_, y_, v_, &hyy_v, nullptr, lower);
    v_ -= options_.borep_nu * (hyy_v - Fy);
    problem_->lower_hvp(x_, y_, v_, nullptr, &hxy_v, lower);
    return Fx - hxy_v;
  }

  Vector v_, momentum_;
  bool refined_ = false;
};

}  // namespace

std::unique_ptr<Solver> make_borep(const Options& options, std::shared_ptr<Problem> problem) {
  return std::make_unique<BoRep>(options, std::move(problem));
}

}  // namespace parasol::bilevel
