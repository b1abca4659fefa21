#include "sketch.hpp"

#include <parasol/error.hpp>
#include <parasol/random.hpp>

#include <algorithm>

namespace parasol::alsketch::detail {

DenseSketchSolver::DenseSketchSolver(const Eigen::MatrixXd& K, const Eigen::VectorXd& b,
                                     const std::string& kind, std::uint64_t seed,
                                     std::uint64_t key, bool rownorm_weights, int block_size)
    : K_(K), b_(b), z_(Eigen::VectorXd::Zero(b.size())), r_(-b), kind_(kind), seed_(seed),
      purpose_(purpose_id("alsketch.sketch." + kind) ^ mix64(key)), rownorm_(rownorm_weights),
      block_size_(std::max(1, block_size)) {
  if (kind != "gaussian" && kind != "kaczmarz" && kind != "block")
    throw Error("alsketch: unknown sketch '" + kind + "'");
  row_norms2_ = K.rowwise().squaredNorm();
  cumulative_.resize(row_norms2_.size());
  double total = 0;
  for (Eigen::Index i = 0; i < row_norms2_.size(); ++i) cumulative_[i] = (total += row_norms2_[i]);
}

bool DenseSketchSolver::run(double target, std::int64_t budget) {
  for (std::int64_t taken = 0; taken < budget; ++taken) {
    if (r_.norm() <= target) return true;
    step();
  }
  return r_.norm() <= target;
}

void DenseSketchSolver::step() {
  const Eigen::Index N = b_.size();
  Random random(seed_, purpose_, static_cast<std::uint64_t>(steps_));
  ++steps_;
  if (kind_ == "gaussian") {
    // Sketch-and-project with S ~ N(0, I): project z onto {z : S^T K z = S^T b}.
    Eigen::VectorXd S(N);
    for (Eigen::Index i = 0; i < N; ++i) S[i] = random.normal();
    const Eigen::VectorXd KS = K_ * S;  // K symmetric: (S^T K)^T
    const double denom = KS.squaredNorm();
    if (denom > 0) z_ -= (S.dot(r_) / denom) * KS;
  } else if (kind_ == "kaczmarz") {
    // Project onto the hyperplane of one row i (uniform, or weighted by |K_i|^2).
    Eigen::Index i;
    if (rownorm_ && cumulative_[N - 1] > 0) {
      const double u = random.uniform() * cumulative_[N - 1];
      i = std::upper_bound(cumulative_.data(), cumulative_.data() + N, u) - cumulative_.data();
      i = std::min(i, N - 1);
    } else {
      i = static_cast<Eigen::Index>(random.below(static_cast<std::uint64_t>(N)));
    }
    if (row_norms2_[i] > 0) z_ -= (r_[i] / row_norms2_[i]) * K_.col(i);
  } else {  // block: S is N x s Gaussian; z <- z - KS ((KS)^T KS)^+ S^T r
    const int s = static_cast<int>(std::min<Eigen::Index>(block_size_, N));
    Eigen::MatrixXd S(N, s);
    for (int j = 0; j < s; ++j)
      for (Eigen::Index i = 0; i < N; ++i) S(i, j) = random.normal();
    const Eigen::MatrixXd W = K_ * S;
    const Eigen::VectorXd y =
        (W.transpose() * W).completeOrthogonalDecomposition().solve(S.transpose() * r_);
    z_ -= W * y;
  }
  r_ = K_ * z_ - b_;
}

}  // namespace parasol::alsketch::detail
