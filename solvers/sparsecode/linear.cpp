// Linear-Gaussian sparse coding with discrete latents: y = W^T s + N(0, sigma^2 I), with
//  - bsc: s_h in {0, 1},      p(s_h = 1) = pi;
//  - tsc: s_h in {0, 1, -1},  p(s_h = +-1) = pi / 2;
//  - dsc: s_h in a user set,  p(s_h = phi_v) = pi_v (learned categorical prior).
// The per-point E-step evaluates all singletons from W y (O(H D)) and the candidate states
// with one GEMM: (combos x H') state matrix times the candidates' fields (H' x D).
#include "models.hpp"

#include <parasol/error.hpp>
#include <parasol/random.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace parasol::sparsecode {

namespace {
constexpr double kPiFloor = 1e-5;

class LinearModel : public GaussianNoiseModel {
 public:
  LinearModel(std::string kind, std::vector<double> values)
      : kind_(std::move(kind)), values_(std::move(values)) {}

  std::string name() const override { return kind_; }
  std::vector<double> latent_values() const override { return values_; }

  Parameters initialize(const DataMoments& m, int H, std::uint64_t seed) const override {
    Parameters p;
    p.W = initial_fields(m, H, seed);
    p.sigma = Eigen::VectorXd::Constant(1, m.mean_std);
    if (kind_ == "dsc") {
      const int V = static_cast<int>(values_.size());
      p.pi = Eigen::VectorXd::Constant(V, (1.0 / H) / (V - 1));
      p.pi(0) = 1.0 - 1.0 / H;
    } else {
      p.pi = Eigen::VectorXd::Constant(1, 1.0 / H);
    }
    return p;
  }

  void check(const Parameters& p, int H, std::int64_t D) const override {
    Model::check(p, H, D);
    const Eigen::Index want = kind_ == "dsc" ? static_cast<Eigen::Index>(values_.size()) : 1;
    if (p.pi.size() != want || p.sigma.size() != 1)
      throw Error("sparsecode: " + kind_ + " expects pi of size " + std::to_string(want) +
                  " and a scalar sigma");
  }

  Eigen::VectorXd log_value_prior(const Parameters& p) const override {
    Eigen::VectorXd lp(values_.size());
    if (kind_ == "dsc") return p.pi.array().log().matrix();
    const double pi = p.pi(0);
    lp(0) = std::log1p(-pi);
    for (Eigen::Index v = 1; v < lp.size(); ++v) lp(v) = std::log(pi / (lp.size() - 1));
    return lp;
  }

  double active_probability(const Parameters& p) const override {
    return kind_ == "dsc" ? 1.0 - p.pi(0) : p.pi(0);
  }

  void prepare(const Parameters& p, const StateSet& states, double /*temperature*/) override {
    prepare_gaussian(p, states);
  }

  void select_and_loglik(const double* y_ptr, int* candidates, double* loglik,
                         bool keep) const override {
    const StateSet& S = *states_;
    const Eigen::Map<const Eigen::VectorXd> y(y_ptr, D_);
    const Eigen::VectorXd Wy = W_ * y;
    const double yy = y.squaredNorm();
    const double scale = -0.5 / variance_;
    loglik[0] = log_norm_ + scale * yy;
    // Singletons, and each latent's best singleton log-joint as its selection score.
    std::vector<double> score(H_, -std::numeric_limits<double>::infinity());
    for (int v = 1; v < S.value_count(); ++v) {
      const double phi = S.values()[v];
      for (int h = 0; h < H_; ++h) {
        const int k = S.singleton_state(h, v);
        const double r2 = yy - 2.0 * phi * Wy(h) + phi * phi * field_norms_(h);
        loglik[k] = log_norm_ + scale * r2;
        score[h] = std::max(score[h], loglik[k] + log_prior_(k));
      }
    }
    if (!keep) select_top(score, S.Hprime(), candidates);
    if (S.combo_count() == 0) return;
    // All candidate states at once: predicted means (combos x D) = states x fields.
    Eigen::MatrixXd Wc(S.Hprime(), D_);
    for (int j = 0; j < S.Hprime(); ++j) Wc.row(j) = W_.row(candidates[j]);
    Eigen::MatrixXd mean = S.combo_values() * Wc;
    mean.rowwise() -= y.transpose();
    Eigen::Map<Eigen::VectorXd>(loglik + S.combo_begin(), S.combo_count()) =
        (log_norm_ + scale * mean.rowwise().squaredNorm().array()).matrix();
  }

  // Layout: Wq (H x H) | Wp (H x D) | sum |y|^2 | value counts (V).
  std::int64_t statistics_size() const override {
    return std::int64_t(H_) * H_ + std::int64_t(H_) * D_ + 1 + states_->value_count();
  }

  void accumulate(const double* y_ptr, const int* candidates, const double* q_ptr,
                  const double* /*loglik*/, double* stats) const override {
    const StateSet& S = *states_;
    const int K = S.size();
    const Eigen::Map<const Eigen::VectorXd> y(y_ptr, D_);
    const Eigen::Map<const Eigen::VectorXd> q(q_ptr, K);
    Eigen::Map<Eigen::MatrixXd> Wq(stats, H_, H_);
    Eigen::Map<Eigen::MatrixXd> Wp(stats + H_ * H_, H_, D_);
    double& energy = stats[H_ * H_ + H_ * D_];
    Eigen::Map<Eigen::VectorXd> counts(stats + H_ * H_ + H_ * D_ + 1, S.value_count());

    energy += y.squaredNorm();
    counts.noalias() += S.value_counts().transpose() * q;

    Eigen::VectorXd s_mean = Eigen::VectorXd::Zero(H_);
    for (int k = 1; k < S.combo_begin(); ++k) {
      const int h = S.singleton_latent(k);
      const double phi = S.values()[S.singleton_value(k)];
      s_mean(h) += q(k) * phi;
      Wq(h, h) += q(k) * phi * phi;
    }
    if (S.combo_count() > 0) {
      const auto qc = q.segment(S.combo_begin(), S.combo_count());
      const Eigen::VectorXd m = S.combo_values().transpose() * qc;
      const Eigen::MatrixXd M =
          S.combo_values().transpose() * qc.asDiagonal() * S.combo_values();
      for (int i = 0; i < S.Hprime(); ++i) {
        s_mean(candidates[i]) += m(i);
        for (int j = 0; j < S.Hprime(); ++j) Wq(candidates[i], candidates[j]) += M(i, j);
      }
    }
    Wp.noalias() += s_mean * y.transpose();
  }

  Parameters m_step(const double* stats, double n_used, const Parameters& old) const override {
    const StateSet& S = *states_;
    const Eigen::Map<const Eigen::MatrixXd> Wq(stats, H_, H_);
    const Eigen::Map<const Eigen::MatrixXd> Wp(stats + H_ * H_, H_, D_);
    const double energy = stats[H_ * H_ + H_ * D_];
    const Eigen::Map<const Eigen::VectorXd> counts(stats + H_ * H_ + H_ * D_ + 1,
                                                   S.value_count());
    Parameters p = old;
    // W^T = <s s^T>^-1 <s> y^T; the pseudo-inverse keeps never-used units at zero.
    p.W = Wq.completeOrthogonalDecomposition().solve(Wp);
    // sigma^2 = sum <|y - W s|^2> / (D N) at the new W (ProSper uses the old W, which is
    // not the maximizer): |y|^2 - 2 <s>^T W y + tr(W W^T <s s^T>) summed over points.
    const double residual =
        energy - 2.0 * (p.W.array() * Wp.array()).sum() + (p.W.array() * (Wq * p.W).array()).sum();
    p.sigma(0) = std::sqrt(std::max(residual, 1e-300) / (D_ * n_used));
    if (kind_ == "dsc") {
      // Categorical prior from the expected value counts (no truncation correction).
      p.pi = counts / counts.sum();
      p.pi = p.pi.cwiseMax(1e-6);
      p.pi /= p.pi.sum();
    } else {
      // pi correction for the gamma-truncation: pi <- pi A / B * <|s|>.
      const double mean_active = (counts.sum() - counts(0)) / n_used;
      const TruncationMass t = truncation_mass(H_, S.gamma(), old.pi(0));
      p.pi(0) = std::clamp(old.pi(0) * t.A / t.B * mean_active, kPiFloor, 1.0 - kPiFloor);
    }
    return p;
  }

  void add_noise(Parameters* p, double W_noise, double pi_noise, double sigma_noise,
                 std::uint64_t seed, std::int64_t iteration) const override {
    Model::add_noise(p, W_noise, pi_noise, sigma_noise, seed, iteration);
    if (kind_ == "dsc") {
      p->pi = p->pi.cwiseMax(1e-6);
      p->pi /= p->pi.sum();
    } else {
      p->pi(0) = std::clamp(p->pi(0), kPiFloor, 1.0 - kPiFloor);
    }
  }

 private:
  std::string kind_;
  std::vector<double> values_;
};
}  // namespace

std::unique_ptr<Model> make_linear_model(const std::string& kind, const std::vector<double>& values) {
  if (kind == "bsc") return std::make_unique<LinearModel>(kind, std::vector<double>{0.0, 1.0});
  if (kind == "tsc") return std::make_unique<LinearModel>(kind, std::vector<double>{0.0, 1.0, -1.0});
  return std::make_unique<LinearModel>(kind, values);
}

}  // namespace parasol::sparsecode
