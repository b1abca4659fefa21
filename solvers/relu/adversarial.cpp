// Convex adversarial training (-method adversarial): ADMM for the robust program of
// parasol/relu_adversarial.hpp. docs/relu.md ("Adversarial training") has the derivation.
//
// Blocks j = 0..K-1 (K = 2P) of u (K x d, replicated) as in admm.cpp: block j < P is v_j,
// block P + j is w_j. Row-local matrices (n_local x K): SD(k, j) = sigma_j d_kj (so
// z_k = sum_j SD(k, j) u_j, the row of SD U) and E(k, j) = 2 d_kj - 1.
// First ADMM block: (U, tau), tau one scalar per block. Second block and its constraints
// (scaled duals; penalties rho times the weight given):
//   U = V                 (1)  V: group soft-threshold (beta ||v_j||_2)
//   U = R, tau = T        (h)  (R_j, T_j) in the l1 cone ||R_j||_1 <= T_j (raw features only)
//   G U - eps 1 tau^T = S (g)  S >= 0, (G U)_kj = E_kj x_k^T u_j: robust cone constraints
//   SD U = Z              (f)  Z_k: prox of the worst-case hinge of row k (row-local)
// Together: E_kj x_k^T u_j >= eps tau_j >= eps ||u_j||_1. The (U, tau) update minimizes a
// quadratic whose matrix does not depend on rho:
//   [ A_UU        -g eps c_j ]   A_UU = (1 + h) I + f (M kron I_d) + g (I_K kron X^T X),
//   [ -g eps c_j^T  h + g eps^2 n ]   M = SD^T SD (K x K), c_j = X^T E_{:,j}.
// A_UU is a Kronecker sum, solved exactly through the eigenvectors of M and X^T X; tau is
// eliminated, which adds a rank-one term per block (Woodbury with a K x K capacitance).
#include <parasol/error.hpp>
#include <parasol/h5.hpp>
#include <parasol/relu_adversarial.hpp>

#include "admm_common.hpp"
#include "internal.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

namespace parasol::relu {

using detail::flat;
using detail::group_norm_sum;
using detail::sum_replicated;

namespace {
// sign(t) (0 at 0) times max(|t| - threshold, 0).
double soft(double t, double threshold) {
  const double m = std::abs(t) - threshold;
  return m > 0 ? std::copysign(m, t) : 0.0;
}
}  // namespace

double robust_hinge(const Eigen::Ref<const Eigen::VectorXd>& x, const Eigen::Ref<const Eigen::VectorXd>& z,
                    double label, double epsilon, Eigen::Index perturbed) {
  return std::max(0.0, 1.0 - label * x.dot(z) + epsilon * z.head(perturbed).lpNorm<1>());
}

// h(z) = max(0, phi(z)), phi(z) = 1 - y x^T z + eps ||z_head||_1. The prox is c when
// phi(c) <= 0; otherwise z(theta) = argmin theta phi + sigma/2 ||z - c||^2
// = soft(c + theta y x / sigma, theta eps / sigma) (soft only on the head), with theta = 1
// when phi(z(1)) >= 0 and else the root of the nonincreasing psi(theta) = phi(z(theta)) in
// (0, 1). Every entry of z(theta) is piecewise linear in theta, with kinks where
// |c_a + theta b_a| = theta t, so psi is piecewise linear: a binary search over the sorted
// kinks brackets the root on one linear piece, where interpolation is exact.
Eigen::VectorXd robust_hinge_prox(const Eigen::Ref<const Eigen::VectorXd>& x,
                                  const Eigen::Ref<const Eigen::VectorXd>& c, double label,
                                  double epsilon, Eigen::Index perturbed, double sigma) {
  auto phi = [&](const Eigen::VectorXd& z) {
    return 1.0 - label * x.dot(z) + epsilon * z.head(perturbed).lpNorm<1>();
  };
  const double t = epsilon / sigma;
  auto at = [&](double theta) {
    Eigen::VectorXd z = c + (theta * label / sigma) * x;
    for (Eigen::Index a = 0; a < perturbed; ++a) z(a) = soft(z(a), theta * t);
    return z;
  };
  if (phi(c) <= 0.0) return c;
  Eigen::VectorXd z = at(1.0);
  const double psi1 = phi(z);
  if (psi1 >= 0.0) return z;
  std::vector<double> kinks{0.0, 1.0};
  for (Eigen::Index a = 0; a < perturbed; ++a) {
    const double b = label * x(a) / sigma;
    for (const double denominator : {t - b, -(t + b)}) {
      if (denominator == 0.0) continue;
      const double theta = c(a) / denominator;
      if (theta > 0.0 && theta < 1.0) kinks.push_back(theta);
    }
  }
  std::sort(kinks.begin(), kinks.end());
  std::size_t lo = 0, hi = kinks.size() - 1;  // psi(kinks[lo]) > 0 > psi(kinks[hi])
  double psi_lo = phi(c), psi_hi = psi1;
  while (hi - lo > 1) {
    const std::size_t mid = (lo + hi) / 2;
    const double value = phi(at(kinks[mid]));
    if (value > 0.0) {
      lo = mid;
      psi_lo = value;
    } else {
      hi = mid;
      psi_hi = value;
    }
  }
  const double theta = kinks[lo] + psi_lo * (kinks[hi] - kinks[lo]) / (psi_lo - psi_hi);
  return at(theta);
}

// KKT of min 1/2||r' - r||^2 + 1/2 (t' - t)^2 s.t. ||r'||_1 <= t': r' = soft(r, mu),
// t' = t + mu with ||soft(r, mu)||_1 = t + mu (mu >= 0), or the apex (0, 0) when
// ||r||_inf <= -t. The root is found on the sorted magnitudes.
void project_l1_cone(Eigen::Ref<Eigen::VectorXd> r, double& t) {
  const double norm1 = r.lpNorm<1>();
  if (norm1 <= t) return;
  const double norm_inf = r.size() ? r.cwiseAbs().maxCoeff() : 0.0;
  if (norm_inf <= -t) {
    r.setZero();
    t = 0.0;
    return;
  }
  std::vector<double> magnitude(r.size());
  for (Eigen::Index a = 0; a < r.size(); ++a) magnitude[a] = std::abs(r(a));
  std::sort(magnitude.begin(), magnitude.end(), std::greater<double>());
  // With the m largest magnitudes active: sum_{a<m} (|r|_a - mu) = t + mu.
  double mu = 0.0, top = 0.0;
  for (std::size_t m = 1; m <= magnitude.size(); ++m) {
    top += magnitude[m - 1];
    const double candidate = (top - t) / static_cast<double>(m + 1);
    const double next = m < magnitude.size() ? magnitude[m] : 0.0;
    if (candidate >= next && candidate < magnitude[m - 1]) {
      mu = candidate;
      break;
    }
    mu = candidate;
  }
  mu = std::max(mu, 0.0);
  for (Eigen::Index a = 0; a < r.size(); ++a) r(a) = soft(r(a), mu);
  t += mu;
}

namespace {
// With a bias column, the pattern D = I (gate e_bias: every point active) is always
// feasible for the robust cone constraints (a large enough bias satisfies x^T v >= eps
// ||v_raw||_1), and its block is an affine classifier. A random gate whose hyperplane passes
// within l_inf distance eps of a training point gives an infeasible pattern (its block is
// forced to zero), which is most of them on unclustered data; without D = I the robust
// program could then be left with no model at all. Added (as the last pattern, gate index
// -1) unless a sampled pattern is already all ones.
void add_linear_pattern(MPI_Comm comm, const RowMatrix& X, Patterns& patterns) {
  const Eigen::Index P = patterns.count(), d = X.cols();
  std::vector<double> ones(P + 1);
  for (Eigen::Index i = 0; i < P; ++i) ones[i] = patterns.bits.col(i).sum();
  ones[P] = static_cast<double>(X.rows());
  sum_replicated(comm, ones.data(), static_cast<int>(ones.size()));
  for (Eigen::Index i = 0; i < P; ++i)
    if (ones[i] == ones[P]) return;
  patterns.gates.conservativeResize(P + 1, d);
  patterns.gates.row(P).setZero();
  patterns.gates(P, d - 1) = 1.0;
  patterns.gate_index.push_back(-1);
  patterns.bits.conservativeResize(X.rows(), P + 1);
  patterns.bits.col(P).setOnes();
}
}  // namespace

struct AdversarialSolver::Impl {
  MPI_Comm comm;
  Options options;
  double eps = 0.0;
  double rho = 1.0;
  double g = 1.0, f = 1.0;
  const double h = 1.0;  // penalty of the l1-epigraph copy relative to rho
  std::int64_t rho_changes = 0, admm_iterations = 0;
  std::int64_t next_balance = 30, balance_wait = 10;  // residual balancing schedule

  RowMatrix X, X_test;
  Eigen::VectorXd y, y_test;
  bool has_test = false;
  std::int64_t n_global = 0, first_row = 0, d = 0, d_raw = 0, P = 0, K = 0;
  Patterns patterns;
  RowMatrix SD, E, test_bits;
  Eigen::MatrixXd XtX;
  RowMatrix C;  // K x d: c_j = X^T E_{:, j}
  double dual_scale = 1.0;
  double setup_seconds = 0.0;

  // The (U, tau) solve.
  Eigen::MatrixXd eig_M_vectors, eig_X_vectors;
  RowMatrix denominator;                  // K x d: 1 + h + f lambda_j(M) + g lambda_a(X^T X)
  double alpha = 1.0, kappa = 0.0;        // tau's diagonal; kappa = (g eps)^2 / alpha
  std::vector<RowMatrix> woodbury;        // A_UU^{-1} (e_j kron c_j), one K x d per block
  Eigen::LLT<Eigen::MatrixXd> capacitance;

  RowMatrix U, V, Lam, R, LamR;  // K x d
  Eigen::VectorXd tau, T, LamT;  // K
  RowMatrix S, Nu;               // n_local x K
  RowMatrix Z, Mz;               // n_local x d
  RowMatrix coupling_U;          // g G^T(S - Nu) + f SD^T(Z - Mz)
  Eigen::VectorXd coupling_tau;  // -g eps colsum(S - Nu)
  double last_objective = 0.0, last_cone_violation = 0.0;

  Impl(MPI_Comm comm_, const Options& options_) : comm(comm_), options(options_) {}

  void setup(const RowMatrix& X_raw, const Eigen::VectorXd& y_local, const RowMatrix& X_test_raw,
             const Eigen::VectorXd& y_test_local);
  RowMatrix solve_uu(const RowMatrix& B) const;
  void solve_u_tau(const RowMatrix& B, const Eigen::VectorXd& b_tau);
  void recompute_coupling();
  StepReport step(std::int64_t iteration);
  Eigen::VectorXd network_output(const RowMatrix& XV) const {
    const RowMatrix positive = XV.cwiseMax(0.0);
    return positive.leftCols(P).rowwise().sum() - positive.rightCols(P).rowwise().sum();
  }
  double objective_at_v() const;
  ConvexModel model() const;
};

void AdversarialSolver::Impl::setup(const RowMatrix& X_raw, const Eigen::VectorXd& y_local,
                                    const RowMatrix& X_test_raw, const Eigen::VectorXd& y_test_local) {
  const double start = MPI_Wtime();
  std::string why;
  const bool valid = options.IsValid(&why);
  check_all(comm, valid, "relu: " + why);
  check_all(comm, options.method == "adversarial",
            "relu: AdversarialSolver needs -method adversarial (got " + options.method + ")");
  eps = options.epsilon;
  rho = options.rho;
  const auto loss = make_loss("hinge");

  const detail::DataLayout layout = detail::check_data(comm, *loss, X_raw, y_local, X_test_raw, y_test_local);
  n_global = layout.n_global;
  first_row = layout.first_row;
  has_test = layout.has_test;
  if (has_test) {
    X_test = with_bias(X_test_raw, options.bias);
    y_test = y_test_local;
  }

  X = with_bias(X_raw, options.bias);
  y = y_local;
  d = X.cols();
  d_raw = X_raw.cols();
  patterns = sample_patterns(comm, X, options.patterns, options.seed);
  if (options.bias) add_linear_pattern(comm, X, patterns);
  P = patterns.count();
  K = 2 * P;
  const Eigen::Index n = X.rows();
  SD.resize(n, K);
  SD << patterns.bits, -patterns.bits;
  E.resize(n, K);
  E.leftCols(P) = 2.0 * patterns.bits.array() - 1.0;
  E.rightCols(P) = E.leftCols(P);

  // X^T X, M = SD^T SD, C = (X^T E)^T and F^T y = SD^T (y o X) in one reduction.
  {
    std::vector<double> buffer(d * d + K * K + 2 * K * d);
    double* at = buffer.data();
    Eigen::Map<Eigen::MatrixXd>(at, d, d) = X.transpose() * X;
    at += d * d;
    Eigen::Map<Eigen::MatrixXd>(at, K, K) = SD.transpose() * SD;
    at += K * K;
    Eigen::Map<RowMatrix>(at, K, d) = (X.transpose() * E).transpose();
    at += K * d;
    Eigen::Map<RowMatrix>(at, K, d) = SD.transpose() * (y.asDiagonal() * X);
    sum_replicated(comm, buffer.data(), static_cast<int>(buffer.size()));
    at = buffer.data();
    XtX = Eigen::Map<Eigen::MatrixXd>(at, d, d);
    at += d * d;
    const Eigen::MatrixXd M = Eigen::Map<Eigen::MatrixXd>(at, K, K);
    at += K * K;
    C = Eigen::Map<RowMatrix>(at, K, d);
    at += K * d;
    dual_scale = std::max(1.0, Eigen::Map<RowMatrix>(at, K, d).norm());

    // Default weights (docs/relu.md): g X^T X with mean eigenvalue 1; f = 1 (as for admm).
    const double trace_X = XtX.trace();
    g = options.cone_weight > 0 ? options.cone_weight : trace_X > 0 ? static_cast<double>(d) / trace_X : 1.0;
    f = options.loss_weight > 0 ? options.loss_weight : 1.0;

    // Identical inputs on every rank (replicated sums), so identical eigenvectors.
    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig_M(M), eig_X(XtX);
    check_all(comm, eig_M.info() == Eigen::Success && eig_X.info() == Eigen::Success,
              "relu: eigendecomposition for the adversarial u-update failed");
    eig_M_vectors = eig_M.eigenvectors();
    eig_X_vectors = eig_X.eigenvectors();
    denominator.resize(K, d);
    for (std::int64_t j = 0; j < K; ++j)
      for (std::int64_t a = 0; a < d; ++a)
        denominator(j, a) = 1.0 + h + f * std::max(0.0, eig_M.eigenvalues()(j)) +
                            g * std::max(0.0, eig_X.eigenvalues()(a));
  }
  alpha = h + g * eps * eps * static_cast<double>(n_global);
  kappa = (g * eps) * (g * eps) / alpha;
  woodbury.resize(K);
  Eigen::MatrixXd cap = Eigen::MatrixXd::Identity(K, K);
  for (std::int64_t l = 0; l < K; ++l) {
    RowMatrix column = RowMatrix::Zero(K, d);
    column.row(l) = C.row(l);
    woodbury[l] = solve_uu(column);
    for (std::int64_t j = 0; j < K; ++j) cap(j, l) -= kappa * C.row(j).dot(woodbury[l].row(j));
  }
  cap = 0.5 * (cap + cap.transpose()).eval();
  capacitance.compute(cap);
  check_all(comm, capacitance.info() == Eigen::Success,
            "relu: the adversarial u-update's capacitance matrix is not positive definite");

  U = RowMatrix::Zero(K, d);
  V = U;
  Lam = U;
  R = U;
  LamR = U;
  coupling_U = U;
  tau = Eigen::VectorXd::Zero(K);
  T = tau;
  LamT = tau;
  coupling_tau = tau;
  S = RowMatrix::Zero(n, K);
  Nu = S;
  Z = RowMatrix::Zero(n, d);
  Mz = Z;
  setup_seconds = MPI_Wtime() - start;
}

// A_UU^{-1} B: in the eigenbases (M = Q L Q^T, X^T X = W S W^T) A_UU is diagonal.
RowMatrix AdversarialSolver::Impl::solve_uu(const RowMatrix& B) const {
  const RowMatrix rotated = (eig_M_vectors.transpose() * B * eig_X_vectors).cwiseQuotient(denominator);
  return eig_M_vectors * rotated * eig_X_vectors.transpose();
}

// tau_j = (b_tau_j + g eps c_j^T u_j) / alpha, and (A_UU - kappa sum_j (e_j c_j)(e_j c_j)^T) U
// = B + (g eps / alpha) (b_tau_j c_j)_j, solved by Woodbury.
void AdversarialSolver::Impl::solve_u_tau(const RowMatrix& B, const Eigen::VectorXd& b_tau) {
  const RowMatrix rhs = B + (g * eps / alpha) * (b_tau.asDiagonal() * C);
  const RowMatrix Y = solve_uu(rhs);
  const Eigen::VectorXd r = C.cwiseProduct(Y).rowwise().sum();
  const Eigen::VectorXd coefficients = capacitance.solve(r);
  U = Y;
  for (std::int64_t l = 0; l < K; ++l) U += (kappa * coefficients(l)) * woodbury[l];
  tau = (b_tau + (g * eps) * C.cwiseProduct(U).rowwise().sum()) / alpha;
}

void AdversarialSolver::Impl::recompute_coupling() {
  const RowMatrix slack = S - Nu;
  std::vector<double> buffer(K * d + K);
  Eigen::Map<RowMatrix>(buffer.data(), K, d) =
      g * (X.transpose() * E.cwiseProduct(slack)).transpose() + f * (SD.transpose() * (Z - Mz));
  Eigen::Map<Eigen::VectorXd>(buffer.data() + K * d, K) = -g * eps * slack.colwise().sum().transpose();
  sum_replicated(comm, buffer.data(), static_cast<int>(buffer.size()));
  coupling_U = Eigen::Map<RowMatrix>(buffer.data(), K, d);
  coupling_tau = Eigen::Map<Eigen::VectorXd>(buffer.data() + K * d, K);
}

StepReport AdversarialSolver::Impl::step(std::int64_t iteration) {
  const double gamma = options.gamma, beta = options.beta;
  // 1. (U, tau)-update.
  solve_u_tau(V - Lam + h * (R - LamR) + coupling_U, h * (T - LamT) + coupling_tau);
  const RowMatrix XU = X * U.transpose();
  const RowMatrix cone = E.cwiseProduct(XU) - eps * Eigen::VectorXd::Ones(X.rows()) * tau.transpose();
  const RowMatrix SDU = SD * U;

  // 2. Second block, each piece separable, and the dual steps.
  const RowMatrix V_old = V, R_old = R, S_old = S, Z_old = Z;
  const Eigen::VectorXd T_old = T;
  const RowMatrix shifted = U + Lam;
  detail::group_soft_threshold(shifted, beta, rho, V);
  Lam += gamma * (U - V);
  R = U + LamR;
  T = tau + LamT;
  for (std::int64_t j = 0; j < K; ++j) {
    Eigen::VectorXd r = R.row(j).head(d_raw).transpose();
    project_l1_cone(r, T(j));
    R.row(j).head(d_raw) = r.transpose();
  }
  LamR += gamma * (U - R);
  LamT += gamma * (tau - T);
  S = (cone + Nu).cwiseMax(0.0);
  Nu += gamma * (cone - S);
  for (Eigen::Index k = 0; k < X.rows(); ++k) {
    const Eigen::VectorXd center = (SDU.row(k) + Mz.row(k)).transpose();
    Z.row(k) = robust_hinge_prox(X.row(k).transpose(), center, y(k), eps, d_raw, rho * f).transpose();
  }
  Mz += gamma * (SDU - Z);

  // 3. Evaluation at the group-sparse iterate V.
  double local[9] = {0};
  local[0] = (cone - S).squaredNorm() + (SDU - Z).squaredNorm();
  local[1] = cone.squaredNorm() + SDU.squaredNorm();
  local[2] = S.squaredNorm() + Z.squaredNorm();
  const RowMatrix XV = X * V.transpose();
  const RowMatrix ZV = SD * V;
  const Eigen::VectorXd net = network_output(XV);
  Eigen::VectorXd l1(K);
  for (std::int64_t j = 0; j < K; ++j) l1(j) = V.row(j).head(d_raw).lpNorm<1>();
  for (Eigen::Index k = 0; k < X.rows(); ++k) {
    local[3] += robust_hinge(X.row(k).transpose(), ZV.row(k).transpose(), y(k), eps, d_raw);
    local[4] += ((net(k) > 0) == (y(k) > 0)) ? 1.0 : 0.0;
    // Correct under the worst case of the convex model (patterns fixed at the clean point).
    const double worst = y(k) * X.row(k).dot(ZV.row(k)) - eps * ZV.row(k).head(d_raw).lpNorm<1>();
    local[8] += worst > 0 ? 1.0 : 0.0;
  }
  local[5] = ((eps * Eigen::VectorXd::Ones(X.rows()) * l1.transpose()) - E.cwiseProduct(XV)).cwiseMax(0.0).squaredNorm();
  if (has_test) {
    const Eigen::VectorXd test_net = network_output(X_test * V.transpose());
    for (Eigen::Index k = 0; k < y_test.size(); ++k)
      local[6] += ((test_net(k) > 0) == (y_test(k) > 0)) ? 1.0 : 0.0;
    local[7] = static_cast<double>(y_test.size());
  }

  // 4. One reduction: the next coupling, the second block's change mapped back (for the
  // dual residual), and the scalars.
  const Eigen::Index block = K * d;
  std::vector<double> buffer(2 * block + 2 * K + 9);
  {
    const RowMatrix slack = S - Nu, slack_change = S - S_old;
    double* at = buffer.data();
    Eigen::Map<RowMatrix>(at, K, d) =
        g * (X.transpose() * E.cwiseProduct(slack)).transpose() + f * (SD.transpose() * (Z - Mz));
    at += block;
    Eigen::Map<RowMatrix>(at, K, d) =
        g * (X.transpose() * E.cwiseProduct(slack_change)).transpose() + f * (SD.transpose() * (Z - Z_old));
    at += block;
    Eigen::Map<Eigen::VectorXd>(at, K) = -g * eps * slack.colwise().sum().transpose();
    at += K;
    Eigen::Map<Eigen::VectorXd>(at, K) = -g * eps * slack_change.colwise().sum().transpose();
    at += K;
    std::copy(local, local + 9, at);
  }
  sum_replicated(comm, buffer.data(), static_cast<int>(buffer.size()));
  coupling_U = Eigen::Map<RowMatrix>(buffer.data(), K, d);
  const RowMatrix change_U = Eigen::Map<RowMatrix>(buffer.data() + block, K, d);
  coupling_tau = Eigen::Map<Eigen::VectorXd>(buffer.data() + 2 * block, K);
  const Eigen::VectorXd change_tau = Eigen::Map<Eigen::VectorXd>(buffer.data() + 2 * block + K, K);
  const double* global = buffer.data() + 2 * block + 2 * K;

  // Residuals (relative): consensus (u = v, u = r, tau = t), slacks (cone and loss splits),
  // u-stationarity rho A^T B (second block's change), v-stationarity of the group lasso.
  const double r_consensus =
      std::sqrt((U - V).squaredNorm() + (U - R).squaredNorm() + (tau - T).squaredNorm()) /
      std::max(1.0, std::max(U.norm(), V.norm()));
  const double r_slack = std::sqrt(global[0]) / std::max(1.0, std::sqrt(std::max(global[1], global[2])));
  const double r_dual =
      rho * std::sqrt(((V - V_old) + h * (R - R_old) + change_U).squaredNorm() +
                      (h * (T - T_old) + change_tau).squaredNorm()) / dual_scale;
  const double r_group = detail::group_stationarity(V, Lam, beta, rho) / dual_scale;

  last_objective = global[3] + beta * group_norm_sum(V);
  last_cone_violation = std::sqrt(global[5]);

  StepReport report;
  report.objective = last_objective;
  const double r_primal = std::max(r_consensus, r_slack), r_dual_all = std::max(r_dual, r_group);
  report.fields = {r_primal, r_dual_all, global[4] / static_cast<double>(n_global),
                   global[8] / static_cast<double>(n_global)};
  if (has_test) report.fields.push_back(global[6] / global[7]);

  // Residual balancing as in admm.cpp (every iteration during the first 20), but after that
  // the wait between changes doubles with every change: with a fixed period of 10, rho kept
  // alternating between two values and convergence to 1e-6 took 4x longer (docs/relu.md).
  // A does not involve rho (every penalty is relative to it): only the scaled duals change.
  // Nor is rho changed once both residuals are within 10x of -tol (the last changes only
  // restarted the tail of the convergence).
  const bool balance_now = (iteration <= 20 || iteration >= next_balance) &&
                           std::max(r_primal, r_dual_all) > 10.0 * options.tol;
  if (options.adaptive_rho && balance_now && rho_changes < options.max_rho_changes) {
    const double factor = detail::balancing_factor(r_primal, r_dual_all);
    if (iteration > 20) next_balance = iteration + balance_wait;
    if (factor != 1.0) {
      if (iteration > 20) balance_wait *= 2;
      rho *= factor;
      ++rho_changes;
      Lam /= factor;
      LamR /= factor;
      LamT /= factor;
      Nu /= factor;
      Mz /= factor;
      recompute_coupling();
    }
  }

  const double tol = options.tol;
  if (r_consensus <= tol && r_slack <= tol && r_dual <= tol && r_group <= tol) {
    report.status = Status::Converged;
    report.message = "all four ADMM residuals below -tol";
  } else if (!std::isfinite(last_objective)) {
    report.status = Status::Diverged;
    report.message = "objective is not finite";
  }
  return report;
}

double AdversarialSolver::Impl::objective_at_v() const {
  const RowMatrix ZV = SD * V;
  double value = 0.0;
  for (Eigen::Index k = 0; k < X.rows(); ++k)
    value += robust_hinge(X.row(k).transpose(), ZV.row(k).transpose(), y(k), eps, d_raw);
  sum_replicated(comm, &value, 1);
  return value + options.beta * group_norm_sum(V);
}

ConvexModel AdversarialSolver::Impl::model() const {
  ConvexModel m;
  m.gates = patterns.gates;
  m.V = V.topRows(P);
  m.W = V.bottomRows(P);
  m.gated = false;
  m.bias = options.bias;
  return m;
}

AdversarialSolver::AdversarialSolver(MPI_Comm comm, const Options& options, const RowMatrix& X_local,
                                     const Eigen::VectorXd& y_local, const RowMatrix& X_test,
                                     const Eigen::VectorXd& y_test)
    : impl_(std::make_unique<Impl>(comm, options)) {
  impl_->setup(X_local, y_local, X_test, y_test);
}

AdversarialSolver::~AdversarialSolver() = default;

std::vector<std::string> AdversarialSolver::history_fields() const {
  std::vector<std::string> fields{"primal_residual", "dual_residual", "train_accuracy", "robust_train_accuracy"};
  if (impl_->has_test) fields.push_back("test_accuracy");
  return fields;
}

StepReport AdversarialSolver::step(std::int64_t) {
  return detail::repeat_steps(impl_->options.record_every, impl_->admm_iterations,
                              [this](std::int64_t iteration) { return impl_->step(iteration); });
}

void AdversarialSolver::save_state(h5::File& file, const std::string& group) const {
  const Impl& s = *impl_;
  const auto K = static_cast<std::uint64_t>(s.K), d = static_cast<std::uint64_t>(s.d);
  detail::write_consensus_state(file, group, s.U, s.V, s.Lam, s.patterns);
  h5::write(file, group + "/R", flat(s.R), {K, d});
  h5::write(file, group + "/lambda_r", flat(s.LamR), {K, d});
  RowMatrix scalars(3, s.K);
  scalars << s.tau.transpose(), s.T.transpose(), s.LamT.transpose();
  h5::write(file, group + "/tau_t_lambda_t", flat(scalars), {3, K});
  const auto rows = static_cast<std::uint64_t>(s.X.rows());
  h5::write_rows(file, group + "/s", s.S.data(), rows, K);
  h5::write_rows(file, group + "/nu", s.Nu.data(), rows, K);
  h5::write_rows(file, group + "/z", s.Z.data(), rows, d);
  h5::write_rows(file, group + "/mu_z", s.Mz.data(), rows, d);
  h5::set_attr(file, group, "rho", s.rho);
  h5::set_attr(file, group, "epsilon", s.eps);
  h5::set_attr(file, group, "rho_changes", s.rho_changes);
  h5::set_attr(file, group, "admm_iterations", s.admm_iterations);
  h5::set_attr(file, group, "next_balance", s.next_balance);
  h5::set_attr(file, group, "balance_wait", s.balance_wait);
}

void AdversarialSolver::load_state(const h5::File& file, const std::string& group) {
  Impl& s = *impl_;
  collective(s.comm, [&] {
    detail::read_consensus_state(file, group, s.patterns, s.K, s.d, s.U, s.V, s.Lam);
    if (!h5::has_attr(file, group, "epsilon") || h5::attr_double(file, group, "epsilon") != s.eps)
      throw Error(file.path() + ": the checkpoint is not an adversarial run with this -epsilon");
    s.R = detail::read_replicated(file, group + "/R", s.K, s.d);
    s.LamR = detail::read_replicated(file, group + "/lambda_r", s.K, s.d);
    const RowMatrix scalars = detail::read_replicated(file, group + "/tau_t_lambda_t", 3, s.K);
    s.tau = scalars.row(0).transpose();
    s.T = scalars.row(1).transpose();
    s.LamT = scalars.row(2).transpose();
    s.rho = h5::attr_double(file, group, "rho");
    s.rho_changes = h5::attr_int(file, group, "rho_changes");
    s.admm_iterations = h5::attr_int(file, group, "admm_iterations");
    s.next_balance = h5::attr_int(file, group, "next_balance");
    s.balance_wait = h5::attr_int(file, group, "balance_wait");
  });
  const Eigen::Index rows = s.X.rows();
  s.S = detail::read_local_rows(file, group + "/s", s.first_row, rows, s.K);
  s.Nu = detail::read_local_rows(file, group + "/nu", s.first_row, rows, s.K);
  s.Z = detail::read_local_rows(file, group + "/z", s.first_row, rows, s.d);
  s.Mz = detail::read_local_rows(file, group + "/mu_z", s.first_row, rows, s.d);
  s.recompute_coupling();
}

// The same /solution layout as Solver::write_solution (detail::write_solution; read_network
// reads both), plus `epsilon` and `robust_cone_violation`.
void AdversarialSolver::write_solution(h5::File& file) const {
  const Impl& s = *impl_;
  detail::write_solution(file, s.model(), s.patterns, s.options,
                         {"hinge", "adversarial", "kronecker", s.rho, s.last_objective, s.admm_iterations});
  h5::set_attr(file, "/solution", "epsilon", s.eps);
  h5::set_attr(file, "/solution", "robust_cone_violation", s.last_cone_violation);
}

ConvexModel AdversarialSolver::model() const { return impl_->model(); }
const Patterns& AdversarialSolver::patterns() const { return impl_->patterns; }
double AdversarialSolver::objective() const { return impl_->objective_at_v(); }

Summary AdversarialSolver::summary() const {
  Summary out;
  out.patterns_requested = impl_->patterns.requested;
  out.patterns = impl_->P;
  out.linear_solver = "kronecker";
  out.setup_seconds = impl_->setup_seconds;
  out.objective = impl_->last_objective;
  out.cone_violation = impl_->last_cone_violation;
  out.admm_iterations = impl_->admm_iterations;
  return out;
}

}  // namespace parasol::relu
