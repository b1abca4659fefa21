#include "sketch.hpp"

#include <parasol/error.hpp>
#include <parasol/random.hpp>

#include <algorithm>
#include <cmath>

namespace parasol::alsketch::detail {

std::uint64_t sketch_step_purpose(const SketchConfig& config, std::uint64_t key,
                                  std::int64_t step) {
  return mix64(purpose_id("alsketch.sketch." + config.kind) ^ mix64(key)) ^
         mix64(static_cast<std::uint64_t>(step) + 0x5851f42d4c957f2dull);
}

DenseSketchSolver::DenseSketchSolver(const Eigen::MatrixXd& K, const Eigen::VectorXd& b,
                                     const SketchConfig& config, std::uint64_t key)
    : K_(K), K2_(K * K), b_(b), z_(Eigen::VectorXd::Zero(b.size())), r_(-b), config_(config),
      purpose_(key) {
  if (config.kind != "gaussian" && config.kind != "kaczmarz" && config.kind != "block")
    throw Error("alsketch: unknown sketch '" + config.kind + "'");
  config_.block_size = std::max(1, config.block_size);
  recompute_interval_ = config.recompute_interval > 0 ? config.recompute_interval
                                                      : std::max<Eigen::Index>(b.size(), 16);
  row_norms2_ = K.rowwise().squaredNorm();
  cumulative_.resize(row_norms2_.size());
  double total = 0;
  for (Eigen::Index i = 0; i < row_norms2_.size(); ++i) cumulative_[i] = (total += row_norms2_[i]);
  z_start_ = z_;
  if (accelerated()) {
    v_ = z_;
    rv_ = r_;
    y_.resize(b.size());
    ry_.resize(b.size());
  }
}

void DenseSketchSolver::warm_start(const Eigen::VectorXd& z0) {
  if (z0.size() != b_.size() || !z0.allFinite()) return;
  const Eigen::VectorXd Kz0 = K_ * z0;
  const double denom = Kz0.squaredNorm();
  if (!(denom > 0)) return;
  z_ = (Kz0.dot(b_) / denom) * z0;
  z_start_ = z_;
  if (accelerated()) v_ = z_;
  recompute_residual();
}

void DenseSketchSolver::recompute_residual() {
  r_.noalias() = K_ * z_;
  r_ -= b_;
  if (accelerated()) {
    rv_.noalias() = K_ * v_;
    rv_ -= b_;
  }
  since_recompute_ = 0;
}

bool DenseSketchSolver::run(double target, std::int64_t budget) {
  const double target2 = target * target;
  for (std::int64_t taken = 0;; ++taken) {
    if (r_.squaredNorm() <= target2) {
      // Confirm with a fresh residual: the incremental one may have drifted.
      if (since_recompute_ > 0) recompute_residual();
      if (r_.squaredNorm() <= target2) return true;
    }
    if (taken >= budget) break;
    step();
    if (++since_recompute_ >= recompute_interval_) recompute_residual();
    if (accelerated() && !(r_.squaredNorm() <= 1e6 * b_.squaredNorm())) {
      // The acceleration parameters are wrong for this K (mu too large or nu too small:
      // for gaussian they are an estimate): the iteration diverges. Continue without
      // acceleration from the start point (0 or the warm start).
      config_.mu = config_.nu = 0;
      z_ = z_start_;
      recompute_residual();
    }
  }
  recompute_residual();
  return r_.norm() <= target;
}

Eigen::Index DenseSketchSolver::projection(const Eigen::VectorXd& r, double* a,
                                           Eigen::VectorXd* d_z, Eigen::VectorXd* d_r) {
  const Eigen::Index N = b_.size();
  const std::uint64_t purpose = sketch_step_purpose(config_, purpose_, steps_);
  ++steps_;
  *a = 0;
  if (config_.kind == "kaczmarz") {
    // Project onto the hyperplane of one row i (uniform, or weighted by |K_i|^2).
    Random random(config_.seed, purpose, 0);
    Eigen::Index i;
    if (config_.rownorm_weights && cumulative_[N - 1] > 0) {
      const double u = random.uniform() * cumulative_[N - 1];
      i = std::upper_bound(cumulative_.data(), cumulative_.data() + N, u) - cumulative_.data();
      i = std::min(i, N - 1);
    } else {
      i = static_cast<Eigen::Index>(random.below(static_cast<std::uint64_t>(N)));
    }
    if (row_norms2_[i] > 0) *a = r[i] / row_norms2_[i];
    return i;
  }
  if (config_.kind == "gaussian") {
    // Sketch-and-project with S ~ N(0, I): project onto {z : S^T K z = S^T b}.
    // Entry i is normal number i % 2 of Random(seed, purpose, i / 2) (Box-Muller pairs).
    Eigen::VectorXd S(N);
    for (Eigen::Index i = 0; i < N; i += 2) {
      Random random(config_.seed, purpose, static_cast<std::uint64_t>(i / 2));
      S[i] = random.normal();
      if (i + 1 < N) S[i + 1] = random.normal();
    }
    d_z->noalias() = K_ * S;  // K symmetric: (S^T K)^T
    const double denom = d_z->squaredNorm();
    const double alpha = denom > 0 ? S.dot(r) / denom : 0.0;
    *d_z *= alpha;
    d_r->noalias() = K2_ * S;
    *d_r *= alpha;
    return -1;
  }
  // block: S is N x s Gaussian; d_z = KS ((KS)^T KS)^+ S^T r
  const int s = static_cast<int>(std::min<Eigen::Index>(config_.block_size, N));
  Eigen::MatrixXd S(N, s);
  for (Eigen::Index i = 0; i < N; ++i) {
    Random random(config_.seed, purpose, static_cast<std::uint64_t>(i));
    for (int j = 0; j < s; ++j) S(i, j) = random.normal();
  }
  const Eigen::MatrixXd W = K_ * S;
  const Eigen::VectorXd y =
      (W.transpose() * W).completeOrthogonalDecomposition().solve(S.transpose() * r);
  d_z->noalias() = W * y;
  d_r->noalias() = K2_ * (S * y);
  return -1;
}

void DenseSketchSolver::step() {
  double a;
  Eigen::VectorXd d_z, d_r;
  if (!accelerated()) {
    const Eigen::Index i = projection(r_, &a, &d_z, &d_r);
    if (i >= 0) {  // kaczmarz: O(n + m)
      z_.noalias() -= a * K_.col(i);
      r_.noalias() -= a * K2_.col(i);
    } else {
      z_ -= d_z;
      r_ -= d_r;
    }
    return;
  }
  // Accelerated sketch-and-project (Gower et al. 2018, Algorithm "ASP"):
  //   y = alpha v + (1 - alpha) z,  g = projection step at y,  z+ = y - g,
  //   v+ = beta v + (1 - beta) y - gamma g,
  // beta = 1 - sqrt(mu/nu), gamma = 1/sqrt(mu nu), alpha = 1/(1 + gamma nu). Residuals follow
  // the same linear recurrences (r = K z - b is affine in z).
  const double beta = 1 - std::sqrt(config_.mu / config_.nu);
  const double gamma = 1 / std::sqrt(config_.mu * config_.nu);
  const double alpha = 1 / (1 + gamma * config_.nu);
  y_ = alpha * v_ + (1 - alpha) * z_;
  ry_ = alpha * rv_ + (1 - alpha) * r_;
  const Eigen::Index i = projection(ry_, &a, &d_z, &d_r);
  v_ = beta * v_ + (1 - beta) * y_;
  rv_ = beta * rv_ + (1 - beta) * ry_;
  if (i >= 0) {
    z_.noalias() = y_ - a * K_.col(i);
    r_.noalias() = ry_ - a * K2_.col(i);
    v_.noalias() -= (gamma * a) * K_.col(i);
    rv_.noalias() -= (gamma * a) * K2_.col(i);
  } else {
    z_ = y_ - d_z;
    r_ = ry_ - d_r;
    v_ -= gamma * d_z;
    rv_ -= gamma * d_r;
  }
}

}  // namespace parasol::alsketch::detail
