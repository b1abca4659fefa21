// Non-linear superposition with binary latents, y = Wbar(s) + N(0, sigma^2 I):
//  - mca  (maximal causes):          Wbar_d = max_h s_h W_hd, W >= 0;
//  - mmca (maximum magnitude causes): Wbar_d = the s_h W_hd of largest magnitude.
// Both E-steps use ProSper's soft-max surrogate with exponent rho = 1 / (1 - 1/T_rho),
// T_rho = max(T, T_min): Wbar_d = (sum_h s_h W_hd^rho)^(1/rho) (signed powers for mmca),
// evaluated for all candidate states of a point with one GEMM (states x W^rho). The M-step
// is the fixed point W_hd = sum <A_hd y_d> / sum <A_hd> with A_hd = s_h (W_hd / Wbar_d)^(rho-1)
// (mmca: A_hd = s_h exp(-(rho - 1) max(0, log|Wbar_d| - log|W_hd|)), plus inertia).
#include "models.hpp"

#include <parasol/error.hpp>

#include <algorithm>
#include <cmath>

namespace parasol::sparsecode {

namespace {
constexpr double kWeightFloor = 1e-4;  // |W| is kept above this (ProSper's W_tol)
constexpr double kPiFloor = 1e-5;

class MaxModel : public GaussianNoiseModel {
 public:
  explicit MaxModel(std::string kind) : kind_(std::move(kind)), magnitude_(kind_ == "mmca") {}

  std::string name() const override { return kind_; }
  std::vector<double> latent_values() const override { return {0.0, 1.0}; }

  Parameters initialize(const DataMoments& m, int H, std::uint64_t seed) const override {
    Parameters p;
    p.W = initial_fields(m, H, seed);
    floor_weights(&p.W);
    p.pi = Eigen::VectorXd::Constant(1, 1.0 / H);
    p.sigma = Eigen::VectorXd::Constant(1, m.mean_std);
    return p;
  }

  void check(const Parameters& p, int H, std::int64_t D) const override {
    Model::check(p, H, D);
    if (p.pi.size() != 1 || p.sigma.size() != 1)
      throw Error("sparsecode: " + kind_ + " expects a scalar pi and sigma");
  }

  Eigen::VectorXd log_value_prior(const Parameters& p) const override {
    Eigen::VectorXd lp(2);
    lp << std::log1p(-p.pi(0)), std::log(p.pi(0));
    return lp;
  }
  double active_probability(const Parameters& p) const override { return p.pi(0); }

  void prepare(const Parameters& p, const StateSet& states, double temperature) override {
    prepare_gaussian(p, states);
    cache_.clear();
    const double T_rho = std::max(temperature, magnitude_ ? 1.2 : 1.05);
    rho_ = 1.0 / (1.0 - 1.0 / T_rho);
    if (magnitude_) rho_ = std::clamp(rho_, 1.0, 35.0);
    // Powers of W / max|W| stay within the double range for rho up to 35.
    scale_ = std::max(W_.cwiseAbs().maxCoeff(), kWeightFloor);
    const Eigen::ArrayXXd Wn = W_.array() / scale_;
    // Powers through exp/log: Eigen vectorizes those, not pow.
    const Eigen::ArrayXXd log_abs = Wn.abs().log();
    powered_ = ((rho_ * log_abs).exp() * Wn.sign()).matrix();
    damping_ = ((rho_ - 1.0) * log_abs).exp().matrix();  // (|W| / scale)^(rho - 1)
  }

  void select_and_loglik(const double* y_ptr, int* candidates, double* loglik,
                         bool keep) const override {
    const StateSet& S = *states_;
    const Eigen::Map<const Eigen::VectorXd> y(y_ptr, D_);
    const Eigen::VectorXd Wy = W_ * y;
    const double yy = y.squaredNorm();
    const double scale = -0.5 / variance_;
    loglik[0] = log_norm_ + scale * yy;
    // A singleton's mean is its field exactly, in both models.
    for (int h = 0; h < H_; ++h)
      loglik[S.singleton_state(h, 1)] = log_norm_ + scale * (yy - 2.0 * Wy(h) + field_norms_(h));
    std::vector<double> score(H_);
    if (magnitude_) {
      for (int h = 0; h < H_; ++h) score[h] = -(yy - 2.0 * Wy(h) + field_norms_(h));
    } else {
      // Fields that exceed the data where the data are dark explain it badly.
      for (int h = 0; h < H_; ++h)
        score[h] = -(W_.row(h).transpose() - y).cwiseMax(0.0).sum();
    }
    if (!keep) select_top(score, S.Hprime(), candidates);
    if (S.combo_count() == 0) return;
    Eigen::MatrixXd mean = terms(candidates).mean;
    mean.rowwise() -= y.transpose();
    Eigen::Map<Eigen::VectorXd>(loglik + S.combo_begin(), S.combo_count()) =
        (log_norm_ + scale * mean.rowwise().squaredNorm().array()).matrix();
  }

  // Layout: numerator (H x D) | denominator (H x D) | sum <|y - Wbar|^2> | sum <|s|>.
  std::int64_t statistics_size() const override { return 2 * std::int64_t(H_) * D_ + 2; }

  void accumulate(const double* y_ptr, const int* candidates, const double* q_ptr,
                  const double* loglik, double* stats) const override {
    const StateSet& S = *states_;
    const int K = S.size();
    const Eigen::Map<const Eigen::VectorXd> y(y_ptr, D_);
    const Eigen::Map<const Eigen::VectorXd> q(q_ptr, K);
    Eigen::Map<Eigen::MatrixXd> num(stats, H_, D_);
    Eigen::Map<Eigen::MatrixXd> den(stats + H_ * D_, H_, D_);
    const Eigen::Map<const Eigen::VectorXd> ll(loglik, K);
    stats[2 * H_ * D_] += -2.0 * variance_ * (q.dot(ll) - log_norm_);
    stats[2 * H_ * D_ + 1] += H_ - S.value_counts().col(0).dot(q);

    for (int h = 0; h < H_; ++h) {
      const double w = q(S.singleton_state(h, 1));
      num.row(h) += w * y.transpose();
      den.row(h).array() += w;
    }
    if (S.combo_count() == 0) return;
    const auto qc = q.segment(S.combo_begin(), S.combo_count());
    const CandidateTerms& cached = terms(candidates);
    const int Hp = S.Hprime();
    Eigen::MatrixXd weight(Hp, D_);  // sum over states of q_k A_{k,j,d}
    if (!magnitude_) {
      // A = s_j (W_jd / Wbar_kd)^(rho-1) factors into W_jd^(rho-1) * Wbar_kd^(1-rho), so
      // the state sum is one GEMM: (q o S)^T (Wbar / scale)^(1-rho).
      weight.noalias() = (qc.asDiagonal() * S.combo_values()).transpose() * cached.inv_mean_pow;
      for (int j = 0; j < Hp; ++j) weight.row(j).array() *= damping_.row(candidates[j]).array();
    } else {
      // A does not depend on y: the cached per-state weights reduce to one GEMV.
      const Eigen::VectorXd summed = cached.weights.transpose() * qc;  // (H' D), j-major
      weight = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic,
                                              Eigen::RowMajor>>(summed.data(), Hp, D_);
    }
    for (int j = 0; j < Hp; ++j) {
      num.row(candidates[j]).array() += weight.row(j).array() * y.transpose().array();
      den.row(candidates[j]) += weight.row(j);
    }
  }

  Parameters m_step(const double* stats, double n_used, const Parameters& old) const override {
    const Eigen::Map<const Eigen::MatrixXd> num(stats, H_, D_);
    const Eigen::Map<const Eigen::MatrixXd> den(stats + H_ * D_, H_, D_);
    const double residual = stats[2 * H_ * D_];
    const double mean_active = stats[2 * H_ * D_ + 1] / n_used;
    Parameters p = old;
    for (int h = 0; h < H_; ++h)
      for (int d = 0; d < D_; ++d) {
        if (!(den(h, d) > 1e-12)) continue;  // unit never used here: keep the old weight
        const double w = num(h, d) / den(h, d);
        if (magnitude_) {
          // Inertia: weights supported by little posterior mass move slowly.
          const double lambda = std::max(1.0 - std::exp(-den(h, d) / 2.5), 0.2);
          p.W(h, d) = lambda * w + (1.0 - lambda) * old.W(h, d);
        } else {
          p.W(h, d) = w;
        }
      }
    floor_weights(&p.W);
    p.sigma(0) = std::sqrt(std::max(residual, 0.0) / (D_ * n_used));
    const TruncationMass t = truncation_mass(H_, states_->gamma(), old.pi(0));
    p.pi(0) = std::clamp(old.pi(0) * t.A / t.B * mean_active, kPiFloor, 1.0 - kPiFloor);
    return p;
  }

  void add_noise(Parameters* p, double W_noise, double pi_noise, double sigma_noise,
                 std::uint64_t seed, std::int64_t iteration) const override {
    Model::add_noise(p, W_noise, pi_noise, sigma_noise, seed, iteration);
    floor_weights(&p->W);
    p->pi(0) = std::clamp(p->pi(0), kPiFloor, 1.0 - kPiFloor);
  }

 private:
  // What the candidate states of a point need, computed once per candidate set and
  // iteration: points that share their candidates (common when H' is close to H) share the
  // costly powers.
  struct CandidateTerms {
    Eigen::MatrixXd mean;          // soft-max means, combos x D
    Eigen::MatrixXd inv_mean_pow;  // mca: (mean / scale)^(1 - rho)
    Eigen::MatrixXd weights;       // mmca: A of every combo, combos x (H' D), j-major
  };
  const CandidateTerms& terms(const int* candidates) const {
    return cache_.get(candidates, states_->Hprime(), [&] { return compute_terms(candidates); },
                      [](const CandidateTerms& t) {
                        return 2.0 * t.mean.size() + static_cast<double>(t.weights.size());
                      });
  }
  CandidateTerms compute_terms(const int* candidates) const {
    CandidateTerms t;
    t.mean = combo_means(candidates);
    if (magnitude_) {
      // A_{c,j,d} = exp(-(rho - 1) max(0, log|Wbar_cd| - log|W_jd|)) for active j, else 0.
      const StateSet& S = *states_;
      const Eigen::ArrayXXd log_abs_mean = t.mean.array().abs().log();
      t.weights.setZero(S.combo_count(), Eigen::Index(S.Hprime()) * D_);
      for (int j = 0; j < S.Hprime(); ++j) {
        const Eigen::ArrayXd log_abs_w = W_.row(candidates[j]).transpose().array().abs().log();
        for (int c = 0; c < S.combo_count(); ++c) {
          if (S.combo_active()(c, j) == 0.0) continue;
          t.weights.row(c).segment(Eigen::Index(j) * D_, D_) =
              (-(rho_ - 1.0) * (log_abs_mean.row(c).transpose() - log_abs_w).max(0.0)).exp().transpose();
        }
      }
    } else {
      t.inv_mean_pow = ((1.0 - rho_) * (t.mean.array() / scale_).log()).exp().matrix();
    }
    return t;
  }

  // Soft-max means of every candidate state: combos x D.
  Eigen::MatrixXd combo_means(const int* candidates) const {
    const StateSet& S = *states_;
    Eigen::MatrixXd Pc(S.Hprime(), D_);
    for (int j = 0; j < S.Hprime(); ++j) Pc.row(j) = powered_.row(candidates[j]);
    const Eigen::ArrayXXd t = (S.combo_values() * Pc).array();
    const Eigen::ArrayXXd root = (t.abs().log() / rho_).exp();  // |t|^(1/rho), 0 at t = 0
    if (magnitude_) return (scale_ * t.sign() * root).matrix();
    return (scale_ * root).matrix();  // t > 0: every active weight is positive
  }

  void floor_weights(Eigen::MatrixXd* W) const {
    if (!magnitude_) {
      *W = W->cwiseMax(kWeightFloor);
      return;
    }
    for (Eigen::Index i = 0; i < W->size(); ++i) {
      double& w = W->data()[i];
      if (std::abs(w) < kWeightFloor) w = w < 0 ? -kWeightFloor : kWeightFloor;
    }
  }

  std::string kind_;
  bool magnitude_;
  Eigen::MatrixXd powered_, damping_;
  double rho_ = 1.0, scale_ = 1.0;
  mutable CandidateCache<CandidateTerms> cache_;
};
}  // namespace

std::unique_ptr<Model> make_max_model(const std::string& kind) {
  return std::make_unique<MaxModel>(kind);
}

}  // namespace parasol::sparsecode
