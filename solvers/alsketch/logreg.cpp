// logreg: the constrained logistic regression of Hong et al.:
//   minimize (1/N) sum_i log(1 + exp(-y_i z_i^T x))
//   subject to A x = b (A: 10 x d, b: 10, entries i.i.d. N(0,1)) and |x|^2 = 1,
// starting from x = 1, lambda = 1. The data rows are distributed over the ranks (each rank
// sums over its own rows; one allreduce per evaluation); x (d entries) is replicated.
#include <parasol/dataset.hpp>
#include <parasol/error.hpp>
#include <parasol/random.hpp>

#include <cmath>

#include "hs_problems.hpp"

namespace parasol::alsketch {
namespace {

constexpr int kLinearConstraints = 10;

class LogregProblem : public ReplicatedProblem {
 public:
  LogregProblem(MPI_Comm comm, Dataset data, std::uint64_t seed)
      : ReplicatedProblem(comm, static_cast<int>(data.cols), kLinearConstraints + 1),
        X_(data.dense_local()), y_(data.y), rows_(data.rows.global) {
    collective(comm, [&] {
      for (Eigen::Index i = 0; i < y_.size(); ++i) {
        if (y_[i] == 0) y_[i] = -1;  // 0/1 labels become -1/+1
        if (y_[i] != 1 && y_[i] != -1)
          throw Error("alsketch logreg: " + data.path + ": label y[" +
                      std::to_string(data.rows.begin + i) + "] = " + std::to_string(y_[i]) +
                      " is not one of -1, 0, +1");
      }
    });
    const int d = n();
    A_.resize(kLinearConstraints, d);
    b_.resize(kLinearConstraints);
    for (int r = 0; r < kLinearConstraints; ++r) {
      Random random(seed, "alsketch.logreg.constraints", static_cast<std::uint64_t>(r));
      for (int j = 0; j < d; ++j) A_(r, j) = random.normal();
      b_[r] = random.normal();
    }
  }
  std::string name() const override { return "logreg"; }
  Eigen::VectorXd start_x() const override { return Eigen::VectorXd::Ones(n()); }
  Eigen::VectorXd start_lambda() const override { return Eigen::VectorXd::Ones(m()); }

  double f(const Eigen::VectorXd& x) override {
    const Eigen::ArrayXd u = y_.array() * (X_ * x).array();
    // log(1 + exp(-u)) without overflow
    double local = ((-u.abs()).exp().log1p() + (-u).max(0.0)).sum();
    return sum(local) / static_cast<double>(rows_);
  }
  Eigen::VectorXd grad_f(const Eigen::VectorXd& x) override {
    const Eigen::ArrayXd u = y_.array() * (X_ * x).array();
    const Eigen::VectorXd w = -(y_.array() / (1.0 + u.exp())).matrix();  // -y sigma(-u)
    Eigen::VectorXd g = X_.transpose() * w;
    MPI_Allreduce(MPI_IN_PLACE, g.data(), static_cast<int>(g.size()), MPI_DOUBLE, MPI_SUM, comm());
    return g / static_cast<double>(rows_);
  }
  Eigen::VectorXd c(const Eigen::VectorXd& x) override {
    Eigen::VectorXd out(m());
    out.head(kLinearConstraints) = A_ * x - b_;
    out[kLinearConstraints] = x.squaredNorm() - 1;
    return out;
  }
  Eigen::MatrixXd jac(const Eigen::VectorXd& x) override {
    Eigen::MatrixXd J(m(), n());
    J.topRows(kLinearConstraints) = A_;
    J.row(kLinearConstraints) = 2 * x.transpose();
    return J;
  }
  Eigen::MatrixXd hess_lagrangian(const Eigen::VectorXd& x,
                                  const Eigen::VectorXd& lambda) override {
    const Eigen::ArrayXd u = y_.array() * (X_ * x).array();
    const Eigen::ArrayXd s = 1.0 / (1.0 + (-u).exp());  // sigma(u)
    const Eigen::VectorXd weight = (s * (1.0 - s)).matrix();
    Eigen::MatrixXd H = X_.transpose() * weight.asDiagonal() * X_;
    MPI_Allreduce(MPI_IN_PLACE, H.data(), static_cast<int>(H.size()), MPI_DOUBLE, MPI_SUM, comm());
    H /= static_cast<double>(rows_);
    H.diagonal().array() += 2 * lambda[kLinearConstraints];
    return H;
  }

 private:
  double sum(double local) const {
    double total = 0;
    MPI_Allreduce(&local, &total, 1, MPI_DOUBLE, MPI_SUM, comm());
    return total;
  }
  RowMatrix X_;
  Eigen::VectorXd y_;
  std::int64_t rows_;
  Eigen::MatrixXd A_;
  Eigen::VectorXd b_;
};

}  // namespace

std::unique_ptr<Problem> make_logreg_problem(MPI_Comm comm, const std::string& path,
                                             std::uint64_t seed) {
  LoadOptions load;
  load.require_labels = true;
  Dataset data = load_dataset(comm, path, load);
  check_all(comm, data.rows.global > 0 && data.cols > 0,
            "alsketch logreg: " + path + " has no data rows");
  return std::make_unique<LogregProblem>(comm, std::move(data), seed);
}

}  // namespace parasol::alsketch
