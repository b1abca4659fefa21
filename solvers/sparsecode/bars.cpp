// The bars test (ProSper's barstest): generating fields and data, and the greedy matching
// of learned to true fields used as the recovery criterion.
#include <parasol/error.hpp>
#include <parasol/random.hpp>
#include <parasol/sparsecode.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

namespace parasol::sparsecode {

Eigen::MatrixXd bars_fields(const BarsSpec& spec, std::uint64_t seed) {
  const int R = spec.R, H = 2 * R, D = R * R;
  Eigen::MatrixXd W = Eigen::MatrixXd::Zero(H, D);
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < R; ++c) {
      W(r, r * R + c) = spec.amplitude;      // horizontal bar r
      W(R + c, r * R + c) = spec.amplitude;  // vertical bar c
    }
  if (spec.signed_bars)
    for (int h = 0; h < H; ++h)
      if (Random(seed, "sparsecode.bars.sign", h).uniform() < 0.5) W.row(h) *= -1.0;
  return W;
}

RowMatrix bars_data(const BarsSpec& spec, const Eigen::MatrixXd& W, std::int64_t row_begin,
                    std::int64_t row_end, std::uint64_t seed) {
  const Eigen::Index H = W.rows(), D = W.cols();
  RowMatrix Y(row_end - row_begin, D);
  Eigen::VectorXd s(H), y(D);
  for (std::int64_t n = row_begin; n < row_end; ++n) {
    Random rng(seed, "sparsecode.bars", static_cast<std::uint64_t>(n));
    for (Eigen::Index h = 0; h < H; ++h) {
      const double u = rng.uniform();
      if (spec.model == "tsc") {
        s(h) = u < spec.pi / 2 ? 1.0 : (u < spec.pi ? -1.0 : 0.0);
      } else if (spec.model == "dsc") {
        double acc = 0.0;
        s(h) = spec.values.back();
        for (std::size_t v = 0; v < spec.values.size(); ++v) {
          acc += spec.value_prior[v];
          if (u < acc) {
            s(h) = spec.values[v];
            break;
          }
        }
      } else {
        s(h) = u < spec.pi ? 1.0 : 0.0;
      }
    }
    if (spec.model == "gsc")
      for (Eigen::Index h = 0; h < H; ++h)
        if (s(h) != 0.0) s(h) *= spec.slab_mean + spec.slab_std * rng.normal();
    if (spec.model == "mca" || spec.model == "mmca") {
      // The cause of largest magnitude wins each pixel (for W >= 0 this is the max).
      y.setZero();
      for (Eigen::Index d = 0; d < D; ++d)
        for (Eigen::Index h = 0; h < H; ++h)
          if (s(h) != 0.0 && std::abs(s(h) * W(h, d)) > std::abs(y(d))) y(d) = s(h) * W(h, d);
    } else {
      y = W.transpose() * s;
    }
    for (Eigen::Index d = 0; d < D; ++d) y(d) += spec.sigma * rng.normal();
    Y.row(n - row_begin) = y.transpose();
  }
  return Y;
}

Eigen::MatrixXd effective_fields(const Parameters& p) {
  if (p.mu.size() == p.W.rows()) return p.mu.asDiagonal() * p.W;
  return p.W;
}

double bars_match_error(const Eigen::MatrixXd& learned, const Eigen::MatrixXd& truth,
                        bool up_to_sign) {
  if (learned.cols() != truth.cols() || learned.rows() < truth.rows())
    throw Error("bars_match_error: need at least as many learned as true fields of equal size");
  const Eigen::Index T = truth.rows(), L = learned.rows();
  Eigen::MatrixXd mae(T, L);
  for (Eigen::Index i = 0; i < T; ++i)
    for (Eigen::Index j = 0; j < L; ++j)
      mae(i, j) = std::min((truth.row(i) - learned.row(j)).cwiseAbs().mean(),
                           up_to_sign ? (truth.row(i) + learned.row(j)).cwiseAbs().mean()
                                      : std::numeric_limits<double>::infinity());
  // Greedy: repeatedly match the closest remaining pair.
  std::vector<char> truth_used(T, 0), learned_used(L, 0);
  double worst = 0.0;
  for (Eigen::Index round = 0; round < T; ++round) {
    double best = std::numeric_limits<double>::infinity();
    Eigen::Index bi = -1, bj = -1;
    for (Eigen::Index i = 0; i < T; ++i)
      for (Eigen::Index j = 0; j < L; ++j)
        if (!truth_used[i] && !learned_used[j] && mae(i, j) < best) {
          best = mae(i, j);
          bi = i;
          bj = j;
        }
    truth_used[bi] = learned_used[bj] = 1;
    worst = std::max(worst, best);
  }
  return worst;
}

}  // namespace parasol::sparsecode
