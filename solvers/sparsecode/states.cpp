// The truncated-EM machinery shared by every model: the state set, log-sum-exp, the prior
// mass of the truncated state space, the distributed data-truncation threshold and the
// data moments used for initialization.
#include <parasol/error.hpp>
#include <parasol/sparsecode.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace parasol::sparsecode {

namespace {
double binomial(int n, int k) {
  if (k < 0 || k > n) return 0.0;
  return std::round(std::exp(std::lgamma(n + 1.0) - std::lgamma(k + 1.0) - std::lgamma(n - k + 1.0)));
}

// Calls visit(subset) for every subset of {0..n-1} of size k, in lexicographic order.
template <class Visit>
void for_each_subset(int n, int k, Visit&& visit) {
  std::vector<int> subset(k);
  for (int i = 0; i < k; ++i) subset[i] = i;
  while (true) {
    visit(subset);
    int i = k - 1;
    while (i >= 0 && subset[i] == n - k + i) --i;
    if (i < 0) return;
    ++subset[i];
    for (int j = i + 1; j < k; ++j) subset[j] = subset[j - 1] + 1;
  }
}
}  // namespace

double StateSet::count(int H, int Hprime, int gamma, int value_count) {
  double combos = 0.0;
  for (int k = 2; k <= gamma; ++k) combos += binomial(Hprime, k) * std::pow(value_count - 1, k);
  return 1.0 + (value_count - 1.0) * H + combos;
}

StateSet::StateSet(int H, int Hprime, int gamma, std::vector<double> values)
    : H_(H), Hprime_(Hprime), gamma_(gamma), values_(std::move(values)) {
  if (values_.empty() || values_[0] != 0.0)
    throw Error("sparsecode: the latent value set must start with 0");
  if (H < 1 || Hprime < 1 || Hprime > H || gamma < 1 || gamma > Hprime)
    throw Error("sparsecode: need 1 <= gamma <= Hprime <= H");
  const int V = value_count();
  const int nonzero = V - 1;
  const auto combos = static_cast<std::int64_t>(count(H, Hprime, gamma, V)) - 1 - nonzero * H;
  combo_values_.setZero(combos, Hprime);
  combo_active_.setZero(combos, Hprime);
  Eigen::MatrixXi combo_index = Eigen::MatrixXi::Zero(combos, Hprime);
  std::int64_t row = 0;
  for (int k = 2; k <= gamma; ++k) {
    for_each_subset(Hprime, k, [&](const std::vector<int>& subset) {
      // Every assignment of non-zero value indices (1..V-1) to the k chosen candidates.
      std::vector<int> digit(k, 1);
      while (true) {
        for (int i = 0; i < k; ++i) {
          combo_index(row, subset[i]) = digit[i];
          combo_values_(row, subset[i]) = values_[digit[i]];
          combo_active_(row, subset[i]) = 1.0;
        }
        ++row;
        int i = k - 1;
        while (i >= 0 && digit[i] == nonzero) digit[i--] = 1;
        if (i < 0) break;
        ++digit[i];
      }
    });
  }
  value_counts_.setZero(size(), V);
  value_counts_(0, 0) = H;
  for (int k = 1; k < combo_begin(); ++k) {
    value_counts_(k, 0) = H - 1;
    value_counts_(k, singleton_value(k)) = 1;
  }
  for (std::int64_t c = 0; c < combos; ++c) {
    const int k = combo_begin() + static_cast<int>(c);
    int active = 0;
    for (int j = 0; j < Hprime; ++j)
      if (combo_index(c, j) > 0) {
        value_counts_(k, combo_index(c, j)) += 1;
        ++active;
      }
    value_counts_(k, 0) = H - active;
  }
}

int StateSet::active_count(int k) const {
  return H_ - static_cast<int>(value_counts_(k, 0));
}

Eigen::VectorXd StateSet::log_prior(const Eigen::VectorXd& log_value_prior) const {
  return value_counts_ * log_value_prior;
}

void StateSet::expand(int k, const int* candidates, double* s) const {
  std::fill(s, s + H_, 0.0);
  if (k == 0) return;
  if (k < combo_begin()) {
    s[singleton_latent(k)] = values_[singleton_value(k)];
    return;
  }
  const int c = k - combo_begin();
  for (int j = 0; j < Hprime_; ++j) s[candidates[j]] = combo_values_(c, j);
}

double log_sum_exp(const double* x, int n) {
  double top = -std::numeric_limits<double>::infinity();
  for (int i = 0; i < n; ++i) top = std::max(top, x[i]);
  if (!std::isfinite(top)) return top;
  double sum = 0.0;
  for (int i = 0; i < n; ++i) sum += std::exp(x[i] - top);
  return top + std::log(sum);
}

TruncationMass truncation_mass(int H, int gamma, double p) {
  TruncationMass m;
  m.A = 0.0;
  p = std::clamp(p, 1e-300, 1.0 - 1e-16);
  for (int k = 0; k <= std::min(gamma, H); ++k) {
    const double log_term = std::lgamma(H + 1.0) - std::lgamma(k + 1.0) - std::lgamma(H - k + 1.0) +
                            k * std::log(p) + (H - k) * std::log1p(-p);
    const double term = std::exp(log_term);
    m.A += term;
    m.B += k * term;
  }
  return m;
}

namespace {
// Order-preserving map of a double (not NaN) to an unsigned key: a < b <=> key(a) < key(b).
std::uint64_t order_key(double value) {
  std::uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const std::uint64_t sign = 1ull << 63;
  return (bits & sign) ? ~bits : (bits | sign);
}
}  // namespace

std::vector<char> keep_largest(MPI_Comm comm, const double* values, std::int64_t n_local,
                               std::int64_t keep) {
  std::int64_t n_global = 0;
  MPI_Allreduce(&n_local, &n_global, 1, MPI_INT64_T, MPI_SUM, comm);
  if (keep >= n_global) return std::vector<char>(n_local, 1);
  if (keep <= 0) return std::vector<char>(n_local, 0);
  std::vector<std::uint64_t> keys(n_local);
  for (std::int64_t i = 0; i < n_local; ++i) keys[i] = order_key(values[i]);

  // Invariant: the cut key t (the largest with count(key >= t) >= keep) lies in [lo, hi].
  // Each round splits [lo, hi] into 256 buckets of width `step` and counts, over all
  // ranks, the keys above hi and in each bucket.
  std::uint64_t lo = 0, hi = std::numeric_limits<std::uint64_t>::max();
  constexpr int buckets = 256;
  std::vector<std::int64_t> counts(buckets + 1), total(buckets + 1);
  while (lo < hi) {
    const std::uint64_t step = (hi - lo) / buckets + 1;
    std::fill(counts.begin(), counts.end(), 0);
    for (std::uint64_t key : keys) {
      if (key > hi)
        ++counts[buckets];
      else if (key >= lo)
        ++counts[(key - lo) / step];
    }
    MPI_Allreduce(counts.data(), total.data(), buckets + 1, MPI_INT64_T, MPI_SUM, comm);
    // Walk down from the top: find the bucket where the running count reaches `keep`.
    std::int64_t above = total[buckets];
    int b = buckets - 1;
    for (; b > 0; --b) {
      if (above + total[b] >= keep) break;
      above += total[b];
    }
    const std::uint64_t bucket_lo = lo + static_cast<std::uint64_t>(b) * step;
    const std::uint64_t bucket_hi = (hi - bucket_lo < step) ? hi : bucket_lo + step - 1;
    if (above + total[b] == keep || step == 1) {
      lo = bucket_lo;  // the whole bucket is kept: the cut is its lower edge
      hi = lo;
    } else {
      lo = bucket_lo;
      hi = bucket_hi;
    }
  }
  std::vector<char> kept(n_local);
  for (std::int64_t i = 0; i < n_local; ++i) kept[i] = keys[i] >= lo ? 1 : 0;
  return kept;
}

DataMoments data_moments(MPI_Comm comm, const RowMatrix& Y_local) {
  const std::int64_t D = Y_local.cols();
  std::vector<double> local(2 * D + 1, 0.0), global(2 * D + 1);
  Eigen::Map<Eigen::VectorXd>(local.data(), D) = Y_local.colwise().sum().transpose();
  Eigen::Map<Eigen::VectorXd>(local.data() + D, D) =
      Y_local.array().square().colwise().sum().transpose();
  local[2 * D] = static_cast<double>(Y_local.rows());
  MPI_Allreduce(local.data(), global.data(), 2 * D + 1, MPI_DOUBLE, MPI_SUM, comm);
  DataMoments m;
  m.N = static_cast<std::int64_t>(global[2 * D]);
  const double n = std::max(1.0, global[2 * D]);
  m.mean = Eigen::Map<Eigen::VectorXd>(global.data(), D) / n;
  const Eigen::ArrayXd var =
      (Eigen::Map<Eigen::VectorXd>(global.data() + D, D).array() / n - m.mean.array().square())
          .max(0.0);
  m.mean_std = D > 0 ? var.sqrt().mean() : 1.0;
  if (!(m.mean_std > 0.0)) m.mean_std = 1.0;
  return m;
}

}  // namespace parasol::sparsecode
