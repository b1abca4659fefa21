// Shared by admm.cpp and adversarial.cpp; see admm_common.hpp.
#include "admm_common.hpp"

#include "internal.hpp"

#include <parasol/error.hpp>

#include <algorithm>
#include <vector>

namespace parasol::relu::detail {

DataLayout check_data(MPI_Comm comm, const Loss& loss, const RowMatrix& X_raw, const Eigen::VectorXd& y_local,
                      const RowMatrix& X_test_raw, const Eigen::VectorXd& y_test_local) {
  DataLayout layout;
  // Shapes agree over ranks: every rank has the same column count.
  std::int64_t cols[2] = {X_raw.cols(), -X_raw.cols()};
  MPI_Allreduce(MPI_IN_PLACE, cols, 2, MPI_INT64_T, MPI_MAX, comm);
  check_all(comm, cols[0] == -cols[1], "relu: ranks disagree on the number of features");
  check_all(comm, X_raw.cols() >= 1, "relu: the training data has no features");
  check_all(comm, y_local.size() == X_raw.rows(),
            "relu: the training data needs one label per row (/y missing or of the wrong length)");
  check_all(comm, X_raw.allFinite() && y_local.allFinite(), "relu: the training data has non-finite values");
  check_labels(comm, loss, y_local, "relu: training data");
  std::int64_t local = X_raw.rows();
  MPI_Allreduce(&local, &layout.n_global, 1, MPI_INT64_T, MPI_SUM, comm);
  check_all(comm, layout.n_global >= 1, "relu: the training data has no rows");
  layout.first_row = first_row_of(comm, local);

  std::int64_t test_rows = X_test_raw.rows(), test_global = 0;
  MPI_Allreduce(&test_rows, &test_global, 1, MPI_INT64_T, MPI_SUM, comm);
  layout.has_test = test_global > 0;
  if (layout.has_test) {
    check_all(comm, X_test_raw.rows() == 0 || X_test_raw.cols() == X_raw.cols(),
              "relu: the test set has " + std::to_string(X_test_raw.cols()) +
                  " features but the training set has " + std::to_string(X_raw.cols()));
    check_all(comm, y_test_local.size() == X_test_raw.rows(), "relu: the test set needs one label per row");
    check_all(comm, X_test_raw.allFinite() && y_test_local.allFinite(),
              "relu: the test set has non-finite values");
    check_labels(comm, loss, y_test_local, "relu: test set");
  }
  return layout;
}

void group_soft_threshold(const RowMatrix& shifted, double beta, double rho, RowMatrix& V) {
  for (Eigen::Index j = 0; j < shifted.rows(); ++j) {
    const double norm = shifted.row(j).norm();
    const double keep = norm > 0 ? std::max(0.0, 1.0 - beta / (rho * norm)) : 0.0;
    V.row(j) = keep * shifted.row(j);
  }
}

double group_stationarity(const RowMatrix& V, const RowMatrix& Lam, double beta, double rho) {
  double worst = 0.0;
  for (Eigen::Index j = 0; j < V.rows(); ++j) {
    const double norm = V.row(j).norm();
    const double violation = norm > 0 ? (beta * V.row(j) / norm - rho * Lam.row(j)).norm()
                                      : std::max(0.0, rho * Lam.row(j).norm() - beta);
    worst = std::max(worst, violation);
  }
  return worst;
}

double group_norm_sum(const RowMatrix& V) {
  double sum = 0.0;
  for (Eigen::Index j = 0; j < V.rows(); ++j) sum += V.row(j).norm();
  return sum;
}

double balancing_factor(double r_primal, double r_dual) {
  double factor = 1.0;
  if (r_primal > 10.0 * r_dual) factor = 2.0;
  if (r_dual > 10.0 * r_primal) factor = 0.5;
  return factor;
}

void write_consensus_state(h5::File& file, const std::string& group, const RowMatrix& U, const RowMatrix& V,
                           const RowMatrix& Lam, const Patterns& patterns) {
  const auto K = static_cast<std::uint64_t>(U.rows()), d = static_cast<std::uint64_t>(U.cols());
  h5::write(file, group + "/U", flat(U), {K, d});
  h5::write(file, group + "/V", flat(V), {K, d});
  h5::write(file, group + "/lambda", flat(Lam), {K, d});
  h5::write(file, group + "/gates", flat(patterns.gates), {static_cast<std::uint64_t>(patterns.count()), d});
}

RowMatrix read_replicated(const h5::File& file, const std::string& path, Eigen::Index rows, Eigen::Index cols) {
  std::vector<std::uint64_t> dims;
  const auto values = h5::read_doubles(file, path, &dims);
  if (dims.size() != 2 || static_cast<Eigen::Index>(dims[0]) != rows || static_cast<Eigen::Index>(dims[1]) != cols)
    throw Error(file.path() + ": " + path + " has the wrong shape");
  return Eigen::Map<const RowMatrix>(values.data(), rows, cols);
}

void read_consensus_state(const h5::File& file, const std::string& group, const Patterns& patterns,
                          Eigen::Index K, Eigen::Index d, RowMatrix& U, RowMatrix& V, RowMatrix& Lam) {
  std::vector<std::uint64_t> dims;
  const auto gates = h5::read_doubles(file, group + "/gates", &dims);
  const Eigen::Index P = patterns.count();  // gates are P x d
  if (dims.size() != 2 || static_cast<Eigen::Index>(dims[0]) != P || static_cast<Eigen::Index>(dims[1]) != d ||
      !(Eigen::Map<const RowMatrix>(gates.data(), P, d).array() == patterns.gates.array()).all())
    throw Error(file.path() + ": the checkpoint's gates differ from this run's (other -seed, -P, -bias or data?)");
  U = read_replicated(file, group + "/U", K, d);
  V = read_replicated(file, group + "/V", K, d);
  Lam = read_replicated(file, group + "/lambda", K, d);
}

RowMatrix read_local_rows(const h5::File& file, const std::string& path, std::int64_t first,
                          Eigen::Index rows, Eigen::Index cols) {
  const auto values =
      h5::read_rows(file, path, static_cast<std::uint64_t>(first), static_cast<std::uint64_t>(rows));
  return Eigen::Map<const RowMatrix>(values.data(), rows, cols);
}

void write_solution(h5::File& file, const ConvexModel& model, const Patterns& patterns, const Options& options,
                    const SolutionInfo& info) {
  const Network net = model.recover();
  const auto P = static_cast<std::uint64_t>(patterns.count());
  const auto d = static_cast<std::uint64_t>(model.gates.cols());
  const auto neurons = static_cast<std::uint64_t>(net.W1.rows());
  h5::write(file, "/solution/gates", flat(model.gates), {P, d});
  h5::write(file, "/solution/v", flat(model.V), {P, d});
  h5::write(file, "/solution/w", flat(model.W), {P, d});
  // A network without neurons (every group zero, e.g. a large beta) has no W1/w2 datasets
  // (HDF5 cannot hold empty ones here); the attribute `neurons` says 0.
  h5::set_attr(file, "/solution", "neurons", static_cast<std::int64_t>(neurons));
  if (neurons > 0) {
    h5::write(file, "/solution/W1", flat(net.W1), {neurons, d});
    h5::write(file, "/solution/w2", std::vector<double>(net.w2.data(), net.w2.data() + net.w2.size()),
              {neurons});
    if (net.gated) h5::write(file, "/solution/neuron_gates", flat(net.gate_of_neuron), {neurons, d});
  }
  h5::set_attr(file, "/solution", "loss", info.loss);
  h5::set_attr(file, "/solution", "method", info.method);
  h5::set_attr(file, "/solution", "model", std::string(net.gated ? "gated_relu" : "relu"));
  h5::set_attr(file, "/solution", "bias", static_cast<std::int64_t>(options.bias ? 1 : 0));
  h5::set_attr(file, "/solution", "features",
               static_cast<std::int64_t>(model.gates.cols()) - (options.bias ? 1 : 0));
  h5::set_attr(file, "/solution", "patterns_requested", patterns.requested);
  h5::set_attr(file, "/solution", "patterns", static_cast<std::int64_t>(P));
  h5::set_attr(file, "/solution", "beta", options.beta);
  h5::set_attr(file, "/solution", "rho", info.rho);
  h5::set_attr(file, "/solution", "linear_solver", info.linear_solver);
  h5::set_attr(file, "/solution", "objective", info.objective);
  h5::set_attr(file, "/solution", "admm_iterations", info.admm_iterations);
}

}  // namespace parasol::relu::detail
