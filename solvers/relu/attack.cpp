// l_inf attacks for robust accuracy: the exact worst case of the convex model (patterns
// fixed at the clean point) and PGD on the recovered network. docs/relu.md.
#include <parasol/error.hpp>
#include <parasol/h5.hpp>
#include <parasol/random.hpp>
#include <parasol/relu_adversarial.hpp>

#include "internal.hpp"

#include <algorithm>
#include <cmath>

namespace parasol::relu {

namespace {

double label_sign(double label) { return label > 0 ? 1.0 : -1.0; }

void finish(MPI_Comm comm, const Eigen::VectorXd& y, AttackResult& result) {
  result.clean_accuracy = accuracy(comm, result.clean_output, y);
  result.robust_accuracy = accuracy(comm, result.adversarial_output, y);
}

void check_inputs(MPI_Comm comm, Eigen::Index features, const RowMatrix& X, const Eigen::VectorXd& y,
                  double epsilon) {
  check_all(comm, std::isfinite(epsilon) && epsilon >= 0,
            "relu attack: -epsilon must be finite and >= 0");
  check_all(comm, X.rows() == 0 || X.cols() == features,
            "relu attack: the data has " + std::to_string(X.cols()) + " features but the model expects " +
                std::to_string(features));
  check_all(comm, y.size() == X.rows(), "relu attack: the data needs one label per row");
}

}  // namespace

AttackResult worst_case_attack(MPI_Comm comm, const ConvexModel& model, const RowMatrix& X_local,
                               const Eigen::VectorXd& y_local, double epsilon) {
  const Eigen::Index raw = model.gates.cols() - (model.bias ? 1 : 0);
  check_inputs(comm, raw, X_local, y_local, epsilon);
  const RowMatrix X = with_bias(X_local, model.bias);
  const Eigen::MatrixXd on = pattern_bits(X, model.gates);
  const RowMatrix Z = on * (model.V - model.W);  // z_k = sum_i d_i(x_k) (v_i - w_i)
  AttackResult result;
  result.clean_output = X.cwiseProduct(Z).rowwise().sum();
  result.perturbation.resize(X_local.rows(), raw);
  for (Eigen::Index k = 0; k < X_local.rows(); ++k)
    for (Eigen::Index a = 0; a < raw; ++a) {
      const double z = Z(k, a);
      result.perturbation(k, a) = z == 0 ? 0.0 : -epsilon * label_sign(y_local(k)) * (z > 0 ? 1.0 : -1.0);
    }
  // The model with the clean patterns at x + delta (linear in delta): clean output plus
  // delta^T z = margin - eps ||z||_1 in the label's direction.
  result.adversarial_output =
      result.clean_output + result.perturbation.cwiseProduct(Z.leftCols(raw)).rowwise().sum();
  finish(comm, y_local, result);
  return result;
}

AttackResult pgd_attack(MPI_Comm comm, const Network& network, const RowMatrix& X_local,
                        const Eigen::VectorXd& y_local, const PgdOptions& options) {
  const Eigen::Index raw = network.W1.cols() - (network.bias ? 1 : 0);
  check_inputs(comm, raw, X_local, y_local, options.epsilon);
  check_all(comm, options.steps >= 1 && options.restarts >= 1,
            "relu attack: -pgd_steps and -pgd_restarts must be >= 1");
  const double eps = options.epsilon;
  const double step = options.step_size > 0 ? options.step_size : 2.5 * eps / static_cast<double>(options.steps);
  const std::int64_t first = detail::first_row_of(comm, X_local.rows());
  const Eigen::Index n = X_local.rows();
  const Eigen::VectorXd sign = y_local.unaryExpr([](double t) { return label_sign(t); });
  // Gradient of f with respect to the raw features at every row of Xp.
  const RowMatrix W1_raw = network.W1.leftCols(raw);
  auto gradient = [&](const RowMatrix& Xp) {
    if (network.W1.rows() == 0) return RowMatrix(RowMatrix::Zero(Xp.rows(), raw));
    const RowMatrix Xb = with_bias(Xp, network.bias);
    const Eigen::MatrixXd active =
        network.gated ? pattern_bits(Xb, network.gate_of_neuron)
                      : Eigen::MatrixXd((Xb * network.W1.transpose()).unaryExpr([](double t) { return t > 0 ? 1.0 : 0.0; }));
    return RowMatrix(active * network.w2.asDiagonal() * W1_raw);
  };

  AttackResult result;
  result.clean_output = network.predict(X_local);
  result.adversarial_output = result.clean_output;
  result.perturbation = RowMatrix::Zero(n, raw);
  Eigen::VectorXd best_margin = sign.cwiseProduct(result.clean_output);
  for (std::int64_t restart = 0; restart < options.restarts; ++restart) {
    RowMatrix delta = RowMatrix::Zero(n, raw);
    if (restart > 0) {
      for (Eigen::Index k = 0; k < n; ++k) {
        Random random(options.seed, "relu.pgd",
                      static_cast<std::uint64_t>((first + k) * options.restarts + restart));
        for (Eigen::Index a = 0; a < raw; ++a) delta(k, a) = eps * (2.0 * random.uniform() - 1.0);
      }
    }
    for (std::int64_t it = 0; it <= options.steps; ++it) {
      const RowMatrix Xp = X_local + delta;
      const Eigen::VectorXd output = network.predict(Xp);
      for (Eigen::Index k = 0; k < n; ++k) {
        const double margin = sign(k) * output(k);
        if (margin < best_margin(k)) {
          best_margin(k) = margin;
          result.adversarial_output(k) = output(k);
          result.perturbation.row(k) = delta.row(k);
        }
      }
      if (it == options.steps) break;
      // Descend on the margin y f: delta -= step y sign(grad f), then project on the ball.
      const RowMatrix grad = gradient(Xp);
      for (Eigen::Index k = 0; k < n; ++k)
        for (Eigen::Index a = 0; a < raw; ++a) {
          const double gka = grad(k, a);
          const double direction = gka > 0 ? 1.0 : gka < 0 ? -1.0 : 0.0;
          delta(k, a) = std::clamp(delta(k, a) - step * sign(k) * direction, -eps, eps);
        }
    }
  }
  finish(comm, y_local, result);
  return result;
}

ConvexModel read_convex_model(const h5::File& file) {
  ConvexModel model;
  model.bias = h5::attr_int(file, "/solution", "bias") != 0;
  model.gated = h5::attr_string(file, "/solution", "model") == "gated_relu";
  std::vector<std::uint64_t> dims;
  auto read = [&](const std::string& name) {
    const auto values = h5::read_doubles(file, "/solution/" + name, &dims);
    if (dims.size() != 2) throw Error(file.path() + ": /solution/" + name + " is not a matrix");
    return RowMatrix(Eigen::Map<const RowMatrix>(values.data(), static_cast<Eigen::Index>(dims[0]),
                                                 static_cast<Eigen::Index>(dims[1])));
  };
  model.gates = read("gates");
  model.V = read("v");
  model.W = read("w");
  if (model.V.rows() != model.gates.rows() || model.W.rows() != model.gates.rows() ||
      model.V.cols() != model.gates.cols() || model.W.cols() != model.gates.cols())
    throw Error(file.path() + ": /solution/v, w and gates differ in shape");
  return model;
}

}  // namespace parasol::relu
