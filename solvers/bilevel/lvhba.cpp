// LV-HBA (Yao, Yu, Zeng, Zhang, ICLR 2024): single loop on the proximal Lagrangian value
// function reformulation, first order (no Hessians). Per iteration k with c_k = c0 (k+1)^p:
//   auxiliary:  theta+ = P_Y(theta - eta d_theta), then lambda+ = P_L(lambda - eta d_lambda)
//     d_theta  = grad_y f(x,theta) + J_y g(x,theta)' lambda + (theta - y)/gamma1
//     d_lambda = -g(x,theta+) + (lambda - z)/gamma2
//   main:       (x,y)+ = P_C((x,y) - alpha (d_x, d_y)),  z+ = P_Z(z - beta d_z)
//     d_x = grad_x F/c_k + grad_x f(x,y) - grad_x f(x,theta+) - J_x g(x,theta+)' lambda+
//     d_y = grad_y F/c_k + grad_y f(x,y) - (y - theta+)/gamma1
//     d_z = -(lambda+ - z)/gamma2
// L and Z are [0,u]^p for inequality constraints and [-u,u]^p for equalities.
#include <parasol/error.hpp>

#include <cmath>

#include "common.hpp"

namespace parasol::bilevel {
namespace {

class LvHba : public detail::ProblemSolver {
 public:
  LvHba(const Options& options, std::shared_ptr<Problem> problem)
      : ProblemSolver(options, std::move(problem)) {
    const std::int64_t p = problem_->num_constraints();
    theta_ = y_;
    lambda_ = Vector::Constant(p, 1.0);
    z_ = Vector::Constant(p, 1.0);
    clamp(&lambda_);
    clamp(&z_);
  }
  std::string method() const override { return "lvhba"; }

  StepReport step(std::int64_t iteration) override {
    double c = options_.lvhba_c0 * std::pow(double(iteration), options_.lvhba_p);
    Vector dx, dy;
    iterate(c, iteration, true, &dx, &dy);
    return report(last_move_, iteration);
  }

  Vector hypergradient_at(const Vector& x, std::int64_t inner) override {
    if (problem_->num_constraints() > 0)
      throw Error("lvhba: a hypergradient estimate needs an unconstrained lower level");
    x_ = x;
    double c = options_.lvhba_c0;
    Vector dx, dy;
    for (std::int64_t k = 0; k < inner; ++k) iterate(c, k + 1, false, &dx, &dy);
    iterate(c, inner + 1, false, &dx, &dy);
    return c * dx;  // c d_x -> dPhi/dx as c grows, once y, theta, lambda, z are stationary
  }

  void save_state(h5::File& file, const std::string& group) const override {
    save_xy(file, group);
    detail::save_vector(file, group + "/theta", theta_, false);
    detail::save_vector(file, group + "/lambda", lambda_, false);
    detail::save_vector(file, group + "/z", z_, false);
  }
  void load_state(const h5::File& file, const std::string& group) override {
    load_xy(file, group);
    theta_ = detail::load_vector(file, group + "/theta", theta_.size(), false);
    lambda_ = detail::load_vector(file, group + "/lambda", lambda_.size(), false);
    z_ = detail::load_vector(file, group + "/z", z_.size(), false);
  }

 private:
  void clamp(Vector* v) const {
    double u = options_.lvhba_clamp;
    double lo = problem_->constraint_equalities() ? -u : 0.0;
    *v = v->cwiseMax(lo).cwiseMin(u);
  }

  // One LV-HBA iteration; with move_x false, x stays (used for the hypergradient estimate).
  void iterate(double c, std::int64_t iteration, bool move_x, Vector* dx, Vector* dy) {
    const double eta = options_.lvhba_eta, alpha = options_.lvhba_alpha;
    const double gamma1 = options_.lvhba_gamma1, gamma2 = options_.lvhba_gamma2;
    const bool constrained = problem_->num_constraints() > 0;
    Sample lower_sample = lower_batch("lvhba.lower", iteration);
    Sample upper_sample = upper_batch("lvhba.upper", iteration);

    // Auxiliary step on (theta, lambda): theta first, then lambda against g(x, theta+)
    // (alternating; a simultaneous step spirals out on the bilinear lambda' g coupling).
    Vector g, gx_theta, gy_theta;
    Matrix jac_x, jac_y;
    problem_->lower(x_, theta_, nullptr, &gy_theta, lower_sample);
    Vector d_theta = gy_theta + (theta_ - y_) / gamma1;
    if (constrained) {
      problem_->constraints(x_, theta_, nullptr, nullptr, &jac_y);
      d_theta += jac_y.transpose() * lambda_;
    }
    theta_ -= eta * d_theta;
    problem_->project_lower(&theta_);
    if (constrained) {
      problem_->constraints(x_, theta_, &g, nullptr, nullptr);
      Vector d_lambda = -g + (lambda_ - z_) / gamma2;
      lambda_ -= eta * d_lambda;
      clamp(&lambda_);
    }

    // Main step on (x, y, z).
    Vector Fx, Fy, fx, fy;
    problem_->upper(x_, y_, &Fx, &Fy, upper_sample);
    problem_->lower(x_, y_, &fx, &fy, lower_sample);
    problem_->lower(x_, theta_, &gx_theta, nullptr, lower_sample);
    *dx = Fx / c + fx - gx_theta;
    if (constrained) {
      problem_->constraints(x_, theta_, nullptr, &jac_x, nullptr);
      *dx -= jac_x.transpose() * lambda_;
    }
    *dy = Fy / c + fy - (y_ - theta_) / gamma1;
    const double alpha_x = options_.lvhba_alpha_x > 0 ? options_.lvhba_alpha_x : alpha;
    Vector x_new = move_x ? Vector(x_ - alpha_x * *dx) : x_;
    Vector y_new = y_ - alpha * *dy;
    if (move_x) {
      problem_->project_feasible(&x_new, &y_new);
    } else {
      problem_->project_lower(&y_new);
    }
    if (constrained) {
      Vector d_z = -(lambda_ - z_) / gamma2;
      z_ -= options_.lvhba_beta * d_z;
      clamp(&z_);
    }
    Vector moved_x = x_new - x_, moved_y = y_new - y_;
    last_move_ = std::sqrt(problem_->upper_dot(moved_x, moved_x) + moved_y.squaredNorm()) / alpha;
    x_ = x_new;
    y_ = y_new;
  }

  Vector theta_, lambda_, z_;
  double last_move_ = 0.0;
};

}  // namespace

std::unique_ptr<Solver> make_lvhba(const Options& options, std::shared_ptr<Problem> problem) {
  return std::make_unique<LvHba>(options, std::move(problem));
}

}  // namespace parasol::bilevel
