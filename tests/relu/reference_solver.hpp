#pragma once
// An independent dense solver for the sampled convex ReLU program, written differently from
// the ADMM under test: a primal log-barrier interior-point method with Newton steps on the
// whole problem (all rows on one process), in the epigraph form
//   min  tau [ L(F u) + beta sum_j t_j ] - sum_j log(t_j^2 - ||u_j||^2)
//                                        - sum_{j,k} log( e_kj x_k^T u_j )   (constrained)
// for tau -> infinity. The duality gap of the central point is at most m / tau, with m
// the barrier's degree, so the objective it returns is within `gap` of the optimum.
#include <Eigen/Dense>
#include <parasol/relu.hpp>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace parasol::relu::test {

struct ReferenceResult {
  double objective = 0.0;
  RowMatrix U;  // K x d
  int newton_steps = 0;
};

// X: n x d (bias column included), bits: n x P, constrained: K = 2P with cone constraints
// (the "admm" program), else K = P without them ("scp"). `gates` (P x d) give a strictly
// feasible start. Smooth losses only (squared, bce).
inline ReferenceResult solve_reference(const Eigen::MatrixXd& X, const Eigen::VectorXd& y,
                                       const Eigen::MatrixXd& bits, const RowMatrix& gates,
                                       bool constrained, const Loss& loss, double beta,
                                       double relative_gap = 1e-8) {
  const Eigen::Index n = X.rows(), d = X.cols(), P = bits.cols();
  const Eigen::Index K = constrained ? 2 * P : P;
  const Eigen::Index nu = K * d, nz = nu + K;
  Eigen::MatrixXd F(n, nu);
  Eigen::MatrixXd E(n, K);
  for (Eigen::Index j = 0; j < K; ++j) {
    const Eigen::Index i = j % P;
    const double sign = j < P ? 1.0 : -1.0;
    F.middleCols(j * d, d) = (sign * bits.col(i)).asDiagonal() * X;
    E.col(j) = 2.0 * bits.col(i).array() - 1.0;
  }
  // z = [u_0 .. u_{K-1}, t_0 .. t_{K-1}]
  Eigen::VectorXd z = Eigen::VectorXd::Zero(nz);
  for (Eigen::Index j = 0; j < K; ++j) {
    if (constrained) z.segment(j * d, d) = 0.01 * gates.row(j % P).transpose() / gates.row(j % P).norm();
    z(nu + j) = z.segment(j * d, d).norm() + 1.0;
  }
  const double degree = 2.0 * K + (constrained ? double(n * K) : 0.0);

  auto feasible = [&](const Eigen::VectorXd& w) {
    for (Eigen::Index j = 0; j < K; ++j) {
      const double t = w(nu + j);
      if (!(t > 0) || t * t - w.segment(j * d, d).squaredNorm() <= 0) return false;
      if (constrained) {
        const Eigen::VectorXd g = E.col(j).cwiseProduct(X * w.segment(j * d, d));
        if (!(g.array() > 0).all()) return false;
      }
    }
    return true;
  };
  auto f0 = [&](const Eigen::VectorXd& w) {
    const Eigen::VectorXd p = F * w.head(nu);
    double value = 0.0;
    for (Eigen::Index k = 0; k < n; ++k) value += loss.value(p(k), y(k));
    return value + beta * w.tail(K).sum();
  };
  auto barrier_value = [&](const Eigen::VectorXd& w, double tau) {
    double value = tau * f0(w);
    for (Eigen::Index j = 0; j < K; ++j) {
      const double t = w(nu + j);
      value -= std::log(t * t - w.segment(j * d, d).squaredNorm());
      if (constrained) {
        const Eigen::VectorXd g = E.col(j).cwiseProduct(X * w.segment(j * d, d));
        value -= g.array().log().sum();
      }
    }
    return value;
  };
  // Second derivative of the loss by central differences of the derivative is avoided:
  // squared has 1, bce has 4 s (1 - s) with s = sigmoid(2p); computed from derivative().
  auto second = [&](double p, double label) {
    const double h = 1e-5 * (1.0 + std::abs(p));
    return (loss.derivative(p + h, label) - loss.derivative(p - h, label)) / (2 * h);
  };

  ReferenceResult result;
  // Start where the first central point's gap bound m / tau is about the objective itself.
  double tau = degree / std::max(1.0, std::abs(f0(z)));
  for (int outer = 0; outer < 60; ++outer) {
    for (int inner = 0; inner < 200; ++inner) {
      const Eigen::VectorXd p = F * z.head(nu);
      Eigen::VectorXd lp(n), lpp(n);
      for (Eigen::Index k = 0; k < n; ++k) {
        lp(k) = loss.derivative(p(k), y(k));
        lpp(k) = loss.name() == "squared" ? 1.0 : second(p(k), y(k));
      }
      Eigen::VectorXd grad = Eigen::VectorXd::Zero(nz);
      Eigen::MatrixXd H = Eigen::MatrixXd::Zero(nz, nz);
      grad.head(nu) = tau * F.transpose() * lp;
      grad.tail(K).setConstant(tau * beta);
      H.topLeftCorner(nu, nu) = tau * F.transpose() * lpp.asDiagonal() * F;
      for (Eigen::Index j = 0; j < K; ++j) {
        const Eigen::VectorXd u = z.segment(j * d, d);
        const double t = z(nu + j);
        const double s = t * t - u.squaredNorm();
        grad.segment(j * d, d) += 2.0 * u / s;
        grad(nu + j) += -2.0 * t / s;
        H.block(j * d, j * d, d, d) += (2.0 / s) * Eigen::MatrixXd::Identity(d, d) + (4.0 / (s * s)) * u * u.transpose();
        H.block(j * d, nu + j, d, 1) += (-4.0 * t / (s * s)) * u;
        H.block(nu + j, j * d, 1, d) += (-4.0 * t / (s * s)) * u.transpose();
        H(nu + j, nu + j) += -2.0 / s + 4.0 * t * t / (s * s);
        if (constrained) {
          const Eigen::VectorXd g = E.col(j).cwiseProduct(X * u);
          const Eigen::VectorXd inv = g.cwiseInverse();
          grad.segment(j * d, d) -= X.transpose() * E.col(j).cwiseProduct(inv);
          H.block(j * d, j * d, d, d) += X.transpose() * inv.cwiseAbs2().asDiagonal() * X;
        }
      }
      const Eigen::LDLT<Eigen::MatrixXd> factor(H);
      const Eigen::VectorXd step = -factor.solve(grad);
      const double decrement = -grad.dot(step);
      ++result.newton_steps;
      if (decrement / 2 <= 1e-9) break;
      double length = 1.0;
      while (!feasible(z + length * step) && length > 1e-20) length *= 0.5;
      const double current = barrier_value(z, tau);
      while (barrier_value(z + length * step, tau) > current - 0.25 * length * decrement &&
             length > 1e-20)
        length *= 0.5;
      if (length <= 1e-20) break;
      z += length * step;
    }
    const double value = f0(z);
    if (degree / tau <= relative_gap * std::max(1.0, std::abs(value))) break;
    tau *= 40.0;
  }
  result.U = Eigen::Map<const RowMatrix>(z.data(), K, d);
  // The objective at u itself (t_j >= ||u_j|| only approaches equality).
  const Eigen::VectorXd p = F * z.head(nu);
  double value = 0.0;
  for (Eigen::Index k = 0; k < n; ++k) value += loss.value(p(k), y(k));
  for (Eigen::Index j = 0; j < K; ++j) value += beta * z.segment(j * d, d).norm();
  result.objective = value;
  return result;
}

}  // namespace parasol::relu::test
