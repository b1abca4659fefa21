// The convex reformulation's pieces that do not depend on the solver: losses, pattern
// sampling with rank-independent deduplication, the convex model and the recovered network.
#include <parasol/error.hpp>
#include <parasol/random.hpp>
#include <parasol/relu.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <sstream>
#include <utility>

namespace parasol::relu {

namespace {

class SquaredLoss final : public Loss {
 public:
  std::string name() const override { return "squared"; }
  double value(double p, double y) const override { return 0.5 * (p - y) * (p - y); }
  double derivative(double p, double y) const override { return p - y; }
  double prox(double c, double y, double rho) const override { return (y + rho * c) / (1.0 + rho); }
  bool label_ok(double y) const override { return y == 1.0 || y == -1.0; }
  std::string label_rule() const override { return "+1 or -1"; }
};

// log(1 + e^{2p}) - 2 y p with y in {0, 1}: the logistic loss of the logit 2p.
class CrossEntropyLoss final : public Loss {
 public:
  std::string name() const override { return "bce"; }
  static double softplus(double t) { return t > 0 ? t + std::log1p(std::exp(-t)) : std::log1p(std::exp(t)); }
  static double sigmoid(double t) {
    if (t >= 0) return 1.0 / (1.0 + std::exp(-t));
    const double e = std::exp(t);
    return e / (1.0 + e);
  }
  double value(double p, double y) const override { return softplus(2.0 * p) - 2.0 * y * p; }
  double derivative(double p, double y) const override { return 2.0 * (sigmoid(2.0 * p) - y); }
  // Newton on the strictly convex scalar problem, safeguarded by a bracket: the minimizer
  // lies between c - 2/rho and c + 2/rho because |derivative| < 2.
  double prox(double c, double y, double rho) const override {
    double lo = c - 2.0 / rho, hi = c + 2.0 / rho, q = c;
    for (int it = 0; it < 100; ++it) {
      const double s = sigmoid(2.0 * q);
      const double g = 2.0 * (s - y) + rho * (q - c);
      if (g > 0) hi = q; else lo = q;
      const double h = 4.0 * s * (1.0 - s) + rho;
      double next = q - g / h;
      if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
      if (std::abs(next - q) <= 1e-15 * (1.0 + std::abs(q))) return next;
      q = next;
    }
    return q;
  }
  bool label_ok(double y) const override { return y == 0.0 || y == 1.0; }
  std::string label_rule() const override { return "0 or 1 (bce)"; }
};

class HingeLoss final : public Loss {
 public:
  std::string name() const override { return "hinge"; }
  double value(double p, double y) const override { return std::max(0.0, 1.0 - y * p); }
  double derivative(double p, double y) const override { return y * p < 1.0 ? -y : 0.0; }
  // With t = y c: t >= 1 keeps c; t <= 1 - 1/rho moves by y/rho; otherwise lands on y q = 1.
  double prox(double c, double y, double rho) const override {
    const double t = y * c;
    if (t >= 1.0) return c;
    if (t <= 1.0 - 1.0 / rho) return c + y / rho;
    return y;
  }
  bool label_ok(double y) const override { return y == 1.0 || y == -1.0; }
  std::string label_rule() const override { return "+1 or -1"; }
};

}  // namespace

std::unique_ptr<Loss> make_loss(const std::string& name) {
  if (name == "squared") return std::make_unique<SquaredLoss>();
  if (name == "bce") return std::make_unique<CrossEntropyLoss>();
  if (name == "hinge") return std::make_unique<HingeLoss>();
  throw Error("relu: unknown loss '" + name + "' (valid: squared, bce, hinge)");
}

std::vector<std::string> loss_names() { return {"squared", "bce", "hinge"}; }
// "adversarial" is solved by AdversarialSolver (adversarial.cpp), the others by Solver.
std::vector<std::string> method_names() { return {"admm", "scp", "adversarial"}; }
std::vector<std::string> linear_solver_names() { return {"auto", "dense", "woodbury", "pcg"}; }
std::vector<std::string> bce_solver_names() { return {"split", "rbcd"}; }

bool Options::IsValid(std::string* why) const {
  auto fail = [&](const std::string& message) {
    if (why) *why = message;
    return false;
  };
  auto in = [](const std::string& value, const std::vector<std::string>& list) {
    return std::find(list.begin(), list.end(), value) != list.end();
  };
  if (!in(method, method_names())) return fail("-method " + method + ": must be admm, scp or adversarial");
  if (!in(loss, loss_names())) return fail("-loss " + loss + ": must be squared, bce or hinge");
  if (!in(linear_solver, linear_solver_names()))
    return fail("-linear_solver " + linear_solver + ": must be auto, dense, woodbury or pcg");
  if (!in(bce_solver, bce_solver_names())) return fail("-bce_solver " + bce_solver + ": must be split or rbcd");
  if (bce_solver == "rbcd" && loss != "bce")
    return fail("-bce_solver rbcd needs -loss bce (the squared loss is solved exactly, hinge is not smooth)");
  if (rbcd_sweeps < 1) return fail("-rbcd_sweeps must be >= 1");
  if (patterns < 1) return fail("-P " + std::to_string(patterns) + ": the number of patterns must be at least 1");
  if (!(beta >= 0) || !std::isfinite(beta)) return fail("-beta must be finite and >= 0");
  if (!(rho > 0) || !std::isfinite(rho)) return fail("-rho must be finite and > 0");
  if (!(gamma > 0 && gamma < 2)) return fail("-gamma (dual step) must be in (0, 2)");
  if (!(epsilon >= 0) || !std::isfinite(epsilon)) return fail("-epsilon must be finite and >= 0");
  if (method == "adversarial") {
    if (!(epsilon > 0))
      return fail("-method adversarial needs -epsilon > 0 (the l_inf radius of the perturbations)");
    if (loss != "hinge")
      return fail("-method adversarial trains the worst-case hinge loss: use -loss hinge (got -loss " + loss + ")");
  } else if (epsilon != 0.0) {
    return fail("-epsilon is only used by -method adversarial (got -method " + method + ")");
  }
  if (!(tol > 0)) return fail("-tol must be > 0");
  if (!(pcg_rtol > 0 && pcg_rtol < 1)) return fail("-pcg_rtol must be in (0, 1)");
  if (!(pcg_inexact > 0 && pcg_inexact < 1)) return fail("-pcg_inexact must be in (0, 1)");
  if (!(validation_fraction >= 0 && validation_fraction < 1))
    return fail("-validation_fraction must be in [0, 1)");
  if (validation_patience < 1) return fail("-validation_patience must be >= 1");
  if (validation_fraction > 0 && method == "adversarial")
    return fail("-validation_fraction is not implemented for -method adversarial");
  if (record_every < 1) return fail("-record_every must be >= 1");
  if (pcg_max_it < 1) return fail("-pcg_max_it must be >= 1");
  if (!(cone_weight >= 0) || !(loss_weight >= 0)) return fail("-cone_weight and -loss_weight must be >= 0");
  if (max_rho_changes < 0) return fail("-max_rho_changes must be >= 0");
  if (dense_limit < 0) return fail("-dense_limit must be >= 0");
  return true;
}

RowMatrix with_bias(const RowMatrix& X, bool bias) {
  if (!bias) return X;
  RowMatrix out(X.rows(), X.cols() + 1);
  out.leftCols(X.cols()) = X;
  out.col(X.cols()).setOnes();
  return out;
}

Eigen::MatrixXd pattern_bits(const RowMatrix& X, const RowMatrix& gates) {
  Eigen::MatrixXd bits = X * gates.transpose();
  // D_i uses >= 0 (the ReLU derivative convention of the reformulation).
  return bits.unaryExpr([](double t) { return t >= 0.0 ? 1.0 : 0.0; });
}

Patterns sample_patterns(MPI_Comm comm, const RowMatrix& X_local, std::int64_t requested,
                         std::uint64_t seed) {
  check_all(comm, requested >= 1,
            "relu: the number of patterns P must be at least 1 (got " + std::to_string(requested) + ")");
  const std::int64_t d = X_local.cols();
  // Every rank draws every gate from the same key, so the gates are replicated exactly.
  RowMatrix gates(requested, d);
  for (std::int64_t i = 0; i < requested; ++i) {
    Random random(seed, "relu.gates", static_cast<std::uint64_t>(i));
    for (std::int64_t c = 0; c < d; ++c) gates(i, c) = random.normal();
  }
  Eigen::MatrixXd bits = pattern_bits(X_local, gates);

  // Two independent 64-bit hashes and the count of ones per pattern, each a wrapping sum
  // over the global rows where the bit is set, so the result is the same for any
  // partition of the rows.
  std::int64_t local_rows = X_local.rows(), first_row = 0;
  MPI_Exscan(&local_rows, &first_row, 1, MPI_INT64_T, MPI_SUM, comm);
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) first_row = 0;
  std::vector<std::uint64_t> summary(3 * requested, 0);
  for (std::int64_t k = 0; k < local_rows; ++k) {
    const auto row = static_cast<std::uint64_t>(first_row + k);
    const std::uint64_t h1 = mix64(row ^ 0x5851f42d4c957f2dull), h2 = mix64(row * 0x2545f4914f6cdd1dull + 7);
    for (std::int64_t i = 0; i < requested; ++i) {
      if (bits(k, i) != 0.0) {
        summary[3 * i] += h1;
        summary[3 * i + 1] += h2;
        summary[3 * i + 2] += 1;
      }
    }
  }
  MPI_Allreduce(MPI_IN_PLACE, summary.data(), static_cast<int>(summary.size()), MPI_UINT64_T,
                MPI_SUM, comm);

  std::map<std::pair<std::uint64_t, std::uint64_t>, std::int64_t> seen;
  std::vector<std::int64_t> keep;
  for (std::int64_t i = 0; i < requested; ++i) {
    if (summary[3 * i + 2] == 0) continue;  // D_i = 0 contributes nothing
    if (seen.emplace(std::make_pair(summary[3 * i], summary[3 * i + 1]), i).second) keep.push_back(i);
  }
  Patterns patterns;
  patterns.requested = requested;
  patterns.gate_index = keep;
  patterns.gates.resize(static_cast<Eigen::Index>(keep.size()), d);
  patterns.bits.resize(local_rows, static_cast<Eigen::Index>(keep.size()));
  for (std::size_t j = 0; j < keep.size(); ++j) {
    patterns.gates.row(j) = gates.row(keep[j]);
    patterns.bits.col(j) = bits.col(keep[j]);
  }
  check_all(comm, !keep.empty(),
            "relu: every sampled activation pattern is empty (is X all zero?)");
  return patterns;
}

Eigen::VectorXd Network::predict(const RowMatrix& features) const {
  const RowMatrix X = with_bias(features, bias);
  if (W1.rows() == 0) return Eigen::VectorXd::Zero(X.rows());
  if (X.cols() != W1.cols())
    throw Error("relu: the data has " + std::to_string(features.cols()) +
                " features but the network expects " + std::to_string(W1.cols() - (bias ? 1 : 0)));
  Eigen::MatrixXd pre = X * W1.transpose();
  if (gated) {
    const Eigen::MatrixXd on = pattern_bits(X, gate_of_neuron);
    return on.cwiseProduct(pre) * w2;
  }
  return pre.cwiseMax(0.0) * w2;
}

Eigen::VectorXd ConvexModel::predict(const RowMatrix& features) const {
  const RowMatrix X = with_bias(features, bias);
  if (X.cols() != gates.cols())
    throw Error("relu: the data has " + std::to_string(features.cols()) +
                " features but the model expects " + std::to_string(gates.cols() - (bias ? 1 : 0)));
  const Eigen::MatrixXd on = pattern_bits(X, gates);
  const Eigen::MatrixXd pre = X * (V - W).transpose();
  return on.cwiseProduct(pre).rowwise().sum();
}

Network ConvexModel::recover() const {
  Network net;
  net.gated = gated;
  net.bias = bias;
  const Eigen::Index d = gates.cols();
  std::vector<std::pair<Eigen::Index, double>> neurons;  // (pattern, sign)
  for (Eigen::Index i = 0; i < V.rows(); ++i) {
    if (V.row(i).norm() > 0) neurons.emplace_back(i, +1.0);
  }
  for (Eigen::Index i = 0; i < W.rows(); ++i) {
    if (W.row(i).norm() > 0) neurons.emplace_back(i, -1.0);
  }
  net.W1.resize(static_cast<Eigen::Index>(neurons.size()), d);
  net.w2.resize(static_cast<Eigen::Index>(neurons.size()));
  if (gated) net.gate_of_neuron.resize(static_cast<Eigen::Index>(neurons.size()), d);
  for (std::size_t j = 0; j < neurons.size(); ++j) {
    const auto [i, sign] = neurons[j];
    const Eigen::RowVectorXd group = sign > 0 ? V.row(i) : W.row(i);
    const double scale = std::sqrt(group.norm());
    // u = group / sqrt(||group||), alpha = sign sqrt(||group||): alpha (x^T u)_+ = sign (x^T group)_+.
    net.W1.row(j) = group / scale;
    net.w2(j) = sign * scale;
    if (gated) net.gate_of_neuron.row(j) = gates.row(i);
  }
  return net;
}

double accuracy(MPI_Comm comm, const Eigen::VectorXd& prediction, const Eigen::VectorXd& labels) {
  double counts[2] = {0.0, static_cast<double>(labels.size())};
  for (Eigen::Index k = 0; k < labels.size(); ++k) {
    if ((prediction(k) > 0) == (labels(k) > 0)) counts[0] += 1.0;
  }
  MPI_Allreduce(MPI_IN_PLACE, counts, 2, MPI_DOUBLE, MPI_SUM, comm);
  return counts[1] > 0 ? counts[0] / counts[1] : std::numeric_limits<double>::quiet_NaN();
}

void check_labels(MPI_Comm comm, const Loss& loss, const Eigen::VectorXd& labels,
                  const std::string& what) {
  std::int64_t local_rows = labels.size(), first_row = 0;
  MPI_Exscan(&local_rows, &first_row, 1, MPI_INT64_T, MPI_SUM, comm);
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) first_row = 0;
  std::string message;
  for (Eigen::Index k = 0; k < labels.size(); ++k) {
    if (!loss.label_ok(labels(k))) {
      std::ostringstream out;
      out << what << ": label " << labels(k) << " in row " << first_row + k << " is not valid for the "
          << loss.name() << " loss (labels must be " << loss.label_rule() << ")";
      message = out.str();
      break;
    }
  }
  check_all(comm, message.empty(), message);
}

}  // namespace parasol::relu
