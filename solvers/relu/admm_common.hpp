#pragma once
// Pieces that Solver (admm.cpp) and AdversarialSolver (adversarial.cpp) share: the input
// checks, the group-lasso v-update and its residual, residual balancing's decision, and the
// checkpoint and /solution layout. Not a public interface.
#include <parasol/h5.hpp>
#include <parasol/relu.hpp>

#include <mpi.h>

#include <cstdint>
#include <string>

namespace parasol::relu::detail {

struct DataLayout {
  std::int64_t n_global = 0;   // training rows over all ranks
  std::int64_t first_row = 0;  // global index of this rank's first training row
  bool has_test = false;       // some rank has test rows
};

// Collective: checks the training and test data (shapes agree over ranks, one label per row,
// finite values, labels that fit `loss`); throws Error on every rank naming what is wrong.
DataLayout check_data(MPI_Comm comm, const Loss& loss, const RowMatrix& X_raw, const Eigen::VectorXd& y_local,
                      const RowMatrix& X_test_raw, const Eigen::VectorXd& y_test_local);

// v-update of the group lasso: row j of V is max(0, 1 - beta / (rho ||s_j||)) s_j for s = shifted.
void group_soft_threshold(const RowMatrix& shifted, double beta, double rho, RowMatrix& V);

// Largest violation over the rows j of the v-stationarity of beta ||v_j|| against rho lambda_j
// (beta v_j / ||v_j|| = rho lambda_j, or ||rho lambda_j|| <= beta at v_j = 0); unscaled.
double group_stationarity(const RowMatrix& V, const RowMatrix& Lam, double beta, double rho);

// sum_j ||v_j||, the group-lasso penalty without beta.
double group_norm_sum(const RowMatrix& V);

// Residual balancing (Boyd et al. 2011, 3.4.1): 2 when the primal residual is ten times the
// dual one, 0.5 in the converse case, else 1.
double balancing_factor(double r_primal, double r_dual);

// Runs `step(++iterations)` up to `count` times, stopping at the first report that is not
// Running: one history row per `count` ADMM iterations (options.record_every).
template <class StepFn>
StepReport repeat_steps(std::int64_t count, std::int64_t& iterations, StepFn step) {
  StepReport report;
  for (std::int64_t i = 0; i < count; ++i) {
    report = step(++iterations);
    if (report.status != Status::Running) break;
  }
  return report;
}

// Checkpoint pieces. Both ADMMs save U, V, lambda (K x d, replicated) and the gates.
void write_consensus_state(h5::File& file, const std::string& group, const RowMatrix& U, const RowMatrix& V,
                           const RowMatrix& Lam, const Patterns& patterns);
// Inside collective(): throws Error when the checkpoint's gates are not this run's `patterns`
// or a matrix has another shape than K x d; else reads U, V and lambda.
void read_consensus_state(const h5::File& file, const std::string& group, const Patterns& patterns,
                          Eigen::Index K, Eigen::Index d, RowMatrix& U, RowMatrix& V, RowMatrix& Lam);
// Inside collective(): the replicated matrix at `path`, which must be rows x cols (else Error).
RowMatrix read_replicated(const h5::File& file, const std::string& path, Eigen::Index rows, Eigen::Index cols);
// Reads this rank's rows [first, first + rows) of the row-distributed `group/name` (cols columns).
RowMatrix read_local_rows(const h5::File& file, const std::string& path, std::int64_t first,
                          Eigen::Index rows, Eigen::Index cols);

// What both solvers write to /solution besides their own attributes.
struct SolutionInfo {
  std::string loss, method, linear_solver;
  double rho = 0.0, objective = 0.0;
  std::int64_t admm_iterations = 0;
};
// Writes /solution: gates, v, w, the recovered network (W1, w2, neuron_gates when gated;
// none of them when it has no neuron) and the attributes read_network and the driver read.
void write_solution(h5::File& file, const ConvexModel& model, const Patterns& patterns, const Options& options,
                    const SolutionInfo& info);

}  // namespace parasol::relu::detail
