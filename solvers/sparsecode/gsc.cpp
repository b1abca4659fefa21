// Spike-and-slab (Gaussian) sparse coding:
//   s_h ~ Bernoulli(pi_h),  z_h ~ N(mu_h, psi_h^2),  y = W^T (s o z) + N(0, Sigma),
// Sigma = sigma^2 I ("scalar") or diag(sigma_d^2) ("diagonal"). Given a binary state s with
// active set A, z_A integrates out in closed form:
//   p(y | s) = N(y; W_A^T mu_A, C),  C = Sigma + W_A^T Psi_A W_A,
// evaluated through Lambda = W_A Sigma^-1 W_A^T + Psi_A^-1 (|A| x |A|, Woodbury):
//   log|C| = log|Sigma| + log|Psi_A| + log|Lambda|,
//   e^T C^-1 e = e^T Sigma^-1 e - b^T Lambda^-1 b,  e = y - W_A^T mu_A,  b = W_A Sigma^-1 e,
// and the slab posterior is N(kappa = mu_A + Lambda^-1 b, Lambda^-1). Lambda depends only on
// the state and the candidates, not on y: its inverse and log-determinant are computed once
// per candidate set and iteration and shared by the points with that set. The per-point
// work is one GEMV (W Sigma^-1 y) plus |A|^2 operations per state.
// The slab covariance is diagonal (psi_h^2); ProSper's full Psi update is not carried over.
#include "models.hpp"

#include <parasol/error.hpp>

#include <algorithm>
#include <cmath>

namespace parasol::sparsecode {

namespace {
constexpr double kPiFloor = 5e-5;
constexpr double kVarianceFloor = 1e-8;

class GscModel : public Model {
 public:
  explicit GscModel(std::string noise) : diagonal_(noise == "diagonal") {}

  std::string name() const override { return "gsc"; }
  std::vector<double> latent_values() const override { return {0.0, 1.0}; }

  Parameters initialize(const DataMoments& m, int H, std::uint64_t seed) const override {
    Parameters p;
    p.W = initial_fields(m, H, seed);
    p.pi = Eigen::VectorXd::Constant(H, 1.0 / H);
    p.mu = Eigen::VectorXd::Ones(H);
    p.psi = Eigen::VectorXd::Ones(H);
    p.sigma = Eigen::VectorXd::Constant(diagonal_ ? m.mean.size() : 1, m.mean_std);
    return p;
  }

  void check(const Parameters& p, int H, std::int64_t D) const override {
    Model::check(p, H, D);
    if (p.pi.size() != H || p.mu.size() != H || p.psi.size() != H ||
        p.sigma.size() != (diagonal_ ? D : 1))
      throw Error("sparsecode: gsc expects pi, mu and psi of size H and sigma of size " +
                  std::string(diagonal_ ? "D (-noise diagonal)" : "1 (-noise scalar)"));
  }

  Eigen::VectorXd log_value_prior(const Parameters&) const override {
    return Eigen::VectorXd::Zero(2);  // the per-latent prior comes from point_log_prior()
  }
  bool prior_depends_on_candidates() const override { return true; }
  void point_log_prior(const int* candidates, double* lp) const override {
    const StateSet& S = *states_;
    lp[0] = base_prior_;
    for (int h = 0; h < H_; ++h) lp[S.singleton_state(h, 1)] = base_prior_ + log_odds_(h);
    if (S.combo_count() == 0) return;
    Eigen::VectorXd odds(S.Hprime());
    for (int j = 0; j < S.Hprime(); ++j) odds(j) = log_odds_(candidates[j]);
    Eigen::Map<Eigen::VectorXd>(lp + S.combo_begin(), S.combo_count()) =
        (S.combo_active() * odds).array() + base_prior_;
  }
  double active_probability(const Parameters& p) const override { return p.pi.mean(); }
  double noise_level(const Parameters& p) const override {
    return std::sqrt(p.sigma.array().square().mean());
  }

  void prepare(const Parameters& p, const StateSet& states, double) override {
    states_ = &states;
    W_ = p.W;
    H_ = static_cast<int>(W_.rows());
    D_ = static_cast<int>(W_.cols());
    const Eigen::ArrayXd var = p.sigma.array().square();
    precision_ = diagonal_ ? Eigen::VectorXd((1.0 / var).matrix())
                           : Eigen::VectorXd::Constant(D_, 1.0 / var(0));
    log_det_sigma_ = diagonal_ ? var.log().sum() : D_ * std::log(var(0));
    mu_ = p.mu;
    slab_var_ = p.psi.array().square().max(kVarianceFloor).matrix();
    gram_diag_ = (W_.array().square().matrix() * precision_);
    log_odds_ = (p.pi.array() / (1.0 - p.pi.array())).log().matrix();
    base_prior_ = (1.0 - p.pi.array()).log().sum();
    if (active_.empty()) {
      for (int c = 0; c < states.combo_count(); ++c) {
        std::vector<int> a;
        for (int j = 0; j < states.Hprime(); ++j)
          if (states.combo_active()(c, j) != 0.0) a.push_back(j);
        active_.push_back(a);
      }
    }
    cache_.clear();
  }

  void select_and_loglik(const double* y_ptr, int* candidates, double* loglik,
                         bool keep) const override {
    const StateSet& S = *states_;
    const Eigen::Map<const Eigen::VectorXd> y(y_ptr, D_);
    const Eigen::VectorXd wy = precision_.cwiseProduct(y);
    const Eigen::VectorXd g = W_ * wy;  // W Sigma^-1 y, all latents
    const double ySy = y.dot(wy);
    const double constant = -0.5 * (D_ * kLog2Pi + log_det_sigma_);
    loglik[0] = constant - 0.5 * ySy;
    std::vector<double> score(H_);
    for (int h = 0; h < H_; ++h) {
      const double lambda = gram_diag_(h) + 1.0 / slab_var_(h);
      const double b = g(h) - gram_diag_(h) * mu_(h);
      const double eSe = ySy - 2.0 * mu_(h) * g(h) + mu_(h) * mu_(h) * gram_diag_(h);
      const double value = constant - 0.5 * (std::log(slab_var_(h)) + std::log(lambda) +
                                             eSe - b * b / lambda);
      loglik[S.singleton_state(h, 1)] = value;
      score[h] = value + log_odds_(h);
    }
    if (!keep) select_top(score, S.Hprime(), candidates);
    if (S.combo_count() == 0) return;
    const CandidateTerms& t = terms(candidates);
    double b[64], m[64], c[64];
    for (int k = 0; k < S.combo_count(); ++k) {
      const std::vector<int>& A = active_[k];
      const int n = static_cast<int>(A.size());
      const double* inv = t.inverse.data() + t.offset[k];
      double eSe = ySy;
      for (int i = 0; i < n; ++i) {
        m[i] = mu_(candidates[A[i]]);
        c[i] = g(candidates[A[i]]);
      }
      for (int i = 0; i < n; ++i) {
        double Gm = 0.0;
        for (int j = 0; j < n; ++j) Gm += t.gram(A[i], A[j]) * m[j];
        b[i] = c[i] - Gm;
        eSe += -2.0 * m[i] * c[i] + m[i] * Gm;
      }
      double bLb = 0.0;
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j) bLb += b[i] * inv[i * n + j] * b[j];
      loglik[S.combo_begin() + k] = constant - 0.5 * (t.log_det[k] + eSe - bLb);
    }
  }

  // Layout: <x x^T> (H x H) | <x> y^T (H x D) | <s> (H) | <x> (H) | y o y (D), x = s o z.
  std::int64_t statistics_size() const override {
    return std::int64_t(H_) * H_ + std::int64_t(H_) * D_ + 2 * H_ + D_;
  }

  void accumulate(const double* y_ptr, const int* candidates, const double* q,
                  const double*, double* stats) const override {
    const StateSet& S = *states_;
    const Eigen::Map<const Eigen::VectorXd> y(y_ptr, D_);
    Eigen::Map<Eigen::MatrixXd> M(stats, H_, H_);
    Eigen::Map<Eigen::MatrixXd> P(stats + H_ * H_, H_, D_);
    double* s_sum = stats + H_ * H_ + H_ * D_;
    double* x_sum = s_sum + H_;
    Eigen::Map<Eigen::VectorXd> yy(x_sum + H_, D_);
    yy += y.cwiseAbs2();
    const Eigen::VectorXd wy = precision_.cwiseProduct(y);
    const Eigen::VectorXd g = W_ * wy;
    Eigen::VectorXd x_mean = Eigen::VectorXd::Zero(H_);
    for (int h = 0; h < H_; ++h) {
      const double w = q[S.singleton_state(h, 1)];
      if (w == 0.0) continue;
      const double lambda = gram_diag_(h) + 1.0 / slab_var_(h);
      const double kappa = mu_(h) + (g(h) - gram_diag_(h) * mu_(h)) / lambda;
      x_mean(h) += w * kappa;
      M(h, h) += w * (kappa * kappa + 1.0 / lambda);
      s_sum[h] += w;
    }
    if (S.combo_count() > 0) {
      const CandidateTerms& t = terms(candidates);
      double b[64], m[64], kappa[64];
      for (int k = 0; k < S.combo_count(); ++k) {
        const double w = q[S.combo_begin() + k];
        if (w < 1e-14) continue;
        const std::vector<int>& A = active_[k];
        const int n = static_cast<int>(A.size());
        const double* inv = t.inverse.data() + t.offset[k];
        for (int i = 0; i < n; ++i) m[i] = mu_(candidates[A[i]]);
        for (int i = 0; i < n; ++i) {
          double Gm = 0.0;
          for (int j = 0; j < n; ++j) Gm += t.gram(A[i], A[j]) * m[j];
          b[i] = g(candidates[A[i]]) - Gm;
        }
        for (int i = 0; i < n; ++i) {
          kappa[i] = m[i];
          for (int j = 0; j < n; ++j) kappa[i] += inv[i * n + j] * b[j];
        }
        for (int i = 0; i < n; ++i) {
          const int hi = candidates[A[i]];
          x_mean(hi) += w * kappa[i];
          s_sum[hi] += w;
          for (int j = 0; j < n; ++j)
            M(hi, candidates[A[j]]) += w * (kappa[i] * kappa[j] + inv[i * n + j]);
        }
      }
    }
    for (int h = 0; h < H_; ++h) x_sum[h] += x_mean(h);
    P.noalias() += x_mean * y.transpose();
  }

  Parameters m_step(const double* stats, double n_used, const Parameters& old) const override {
    const Eigen::Map<const Eigen::MatrixXd> M(stats, H_, H_);
    const Eigen::Map<const Eigen::MatrixXd> P(stats + H_ * H_, H_, D_);
    const double* s_sum = stats + H_ * H_ + H_ * D_;
    const double* x_sum = s_sum + H_;
    const Eigen::Map<const Eigen::VectorXd> yy(x_sum + H_, D_);
    Parameters p = old;
    p.W = M.completeOrthogonalDecomposition().solve(P);
    for (int h = 0; h < H_; ++h) {
      p.pi(h) = std::clamp(s_sum[h] / n_used, kPiFloor, 1.0 - kPiFloor);
      if (s_sum[h] < 1e-10) continue;  // never active: keep its slab
      p.mu(h) = x_sum[h] / s_sum[h];
      p.psi(h) = std::sqrt(std::max(M(h, h) / s_sum[h] - p.mu(h) * p.mu(h), kVarianceFloor));
    }
    // E|y - W^T x|^2 per dimension with the new W.
    const Eigen::VectorXd residual =
        (yy.array() - 2.0 * (p.W.array() * P.array()).colwise().sum().transpose() +
         (p.W.array() * (M * p.W).array()).colwise().sum().transpose())
            .matrix() / n_used;
    if (diagonal_)
      p.sigma = residual.cwiseMax(kVarianceFloor).cwiseSqrt();
    else
      p.sigma(0) = std::sqrt(std::max(residual.mean(), kVarianceFloor));
    return p;
  }

  void add_noise(Parameters* p, double W_noise, double pi_noise, double sigma_noise,
                 std::uint64_t seed, std::int64_t iteration) const override {
    Model::add_noise(p, W_noise, pi_noise, sigma_noise, seed, iteration);
    p->pi = p->pi.cwiseMax(kPiFloor).cwiseMin(1.0 - kPiFloor);
  }

 private:
  struct CandidateTerms {
    Eigen::MatrixXd gram;           // W_c Sigma^-1 W_c^T, H' x H'
    std::vector<double> inverse;    // Lambda^-1 of every combo, row-major, packed
    std::vector<std::size_t> offset;
    std::vector<double> log_det;    // log|Psi_A| + log|Lambda| of every combo
  };

  const CandidateTerms& terms(const int* candidates) const {
    return cache_.get(candidates, states_->Hprime(), [&] { return compute_terms(candidates); },
                      [](const CandidateTerms& t) {
                        return static_cast<double>(t.inverse.size() + t.gram.size());
                      });
  }
  CandidateTerms compute_terms(const int* candidates) const {
    const StateSet& S = *states_;
    CandidateTerms t;
    Eigen::MatrixXd Wc(S.Hprime(), D_);
    for (int j = 0; j < S.Hprime(); ++j) Wc.row(j) = W_.row(candidates[j]);
    t.gram = Wc * precision_.asDiagonal() * Wc.transpose();
    for (int k = 0; k < S.combo_count(); ++k) {
      const std::vector<int>& A = active_[k];
      const int n = static_cast<int>(A.size());
      Eigen::MatrixXd lambda(n, n);
      double log_det = 0.0;  // log|C| - log|Sigma| (that part is in the point's constant)
      for (int i = 0; i < n; ++i) {
        for (int j = 0; j < n; ++j) lambda(i, j) = t.gram(A[i], A[j]);
        lambda(i, i) += 1.0 / slab_var_(candidates[A[i]]);
        log_det += std::log(slab_var_(candidates[A[i]]));
      }
      const Eigen::LLT<Eigen::MatrixXd> llt(lambda);  // SPD: Psi^-1 > 0 on the diagonal
      const Eigen::MatrixXd L = llt.matrixL();
      log_det += 2.0 * L.diagonal().array().log().sum();
      const Eigen::MatrixXd inv = llt.solve(Eigen::MatrixXd::Identity(n, n));
      t.offset.push_back(t.inverse.size());
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j) t.inverse.push_back(inv(i, j));
      t.log_det.push_back(log_det);
    }
    return t;
  }

  bool diagonal_;
  Eigen::MatrixXd W_;
  int H_ = 0, D_ = 0;
  Eigen::VectorXd precision_, mu_, slab_var_, gram_diag_, log_odds_;
  double log_det_sigma_ = 0.0, base_prior_ = 0.0;
  std::vector<std::vector<int>> active_;  // active candidate positions of every combo
  mutable CandidateCache<CandidateTerms> cache_;
};
}  // namespace

std::unique_ptr<Model> make_gsc_model(const std::string& noise) {
  return std::make_unique<GscModel>(noise);
}

}  // namespace parasol::sparsecode
