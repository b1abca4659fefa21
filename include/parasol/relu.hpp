#pragma once
// Global training of two-layer ReLU networks through their convex reformulation (Pilanci &
// Ergen 2020), solved by ADMM as in Bai, Gautam & Sojoudi (docs/relu.md has the math).
//
// With P sampled activation patterns D_i = diag(1[X h_i >= 0]) the convex program is
//
//   min  L( sum_i D_i X (v_i - w_i), y ) + beta * sum_i ( ||v_i||_2 + ||w_i||_2 )
//   s.t. (2 D_i - I) X v_i >= 0,  (2 D_i - I) X w_i >= 0,
//
// where L is a sum over samples (no 1/n): squared 1/2 (yhat - y)^2 with labels +-1,
// bce log(1 + e^{2 yhat}) - 2 y yhat with labels 0/1, hinge (1 - y yhat)_+ with labels +-1.
// The network recovered from (v_i, w_i) has one neuron per non-zero group:
// u = v_i / sqrt(||v_i||), alpha = +sqrt(||v_i||) (and -sqrt(||w_i||) for w_i).
//
// Data rows are distributed over the ranks of the communicator (X, y, pattern bits, slacks
// and their duals stay row-local); pattern-indexed variables are replicated on every rank.
// Results do not depend on the number of ranks beyond reduction round-off.
#include <Eigen/Dense>
#include <mpi.h>
#include <parasol/solver.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace parasol::relu {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// A per-sample loss: the place where users plug in. ADMM needs its proximal operator
// (the loss-splitting variant) or, for the squared loss, nothing beyond the closed form.
class Loss {
 public:
  virtual ~Loss() = default;
  virtual std::string name() const = 0;
  virtual double value(double prediction, double label) const = 0;
  // d value / d prediction (a subgradient where not differentiable).
  virtual double derivative(double prediction, double label) const = 0;
  // argmin_q value(q, label) + rho/2 (q - center)^2.
  virtual double prox(double center, double label, double rho) const = 0;
  virtual bool label_ok(double label) const = 0;
  virtual std::string label_rule() const = 0;  // "+1 or -1", for error messages
};

// "squared", "bce" or "hinge"; throws Error for anything else.
std::unique_ptr<Loss> make_loss(const std::string& name);
std::vector<std::string> loss_names();

// The methods, chosen by name (-method): "admm" (Algorithm 1; loss splitting for bce and
// hinge), "scp" (the unconstrained sampled convex program, a gated-ReLU model) and
// "adversarial" (robust training against l_inf perturbations; AdversarialSolver in
// parasol/relu_adversarial.hpp).
std::vector<std::string> method_names();
std::vector<std::string> linear_solver_names();  // "auto", "dense", "woodbury", "pcg"
std::vector<std::string> bce_solver_names();     // "split", "rbcd"

struct Options {
  std::string method = "admm";
  std::string loss = "squared";
  std::int64_t patterns = 64;       // P requested; duplicates removed, so the effective P <= this
  double beta = 1e-4;               // group-lasso weight
  bool bias = false;                // append a ones column to X
  double rho = 1.0;                 // ADMM penalty (initial value when adaptive)
  bool adaptive_rho = true;         // residual balancing every 10 iterations
  std::int64_t max_rho_changes = 50;
  double cone_weight = 0.0;         // penalty of G u = s relative to rho; 0: automatic (docs)
  double loss_weight = 0.0;         // penalty of F u = q relative to rho; 0: 1
  double gamma = 1.0;               // dual step (scaled form); 1 is standard ADMM
  double epsilon = 0.0;             // l_inf radius: > 0 for (and only for) method "adversarial"
  std::string linear_solver = "auto";
  // "auto" uses a direct solve when its system is at most this large: dense Cholesky of the
  // K d x K d u-system, or Woodbury with an n x n factor (the cheaper one in flops; docs).
  std::int64_t dense_limit = 3000;
  // Cross-entropy: "split" (loss split F u = q, exact u-update) or "rbcd" (ADMM-RBCD: the
  // loss stays in the u-update, solved inexactly by randomized block coordinate descent).
  std::string bce_solver = "split";
  std::int64_t rbcd_sweeps = 1;     // RBCD sweeps (P block steps each) per ADMM iteration
  double pcg_rtol = 1e-12;          // PCG relative residual floor (else pcg_inexact x ADMM residual)
  // Inexact ADMM: each PCG solve stops at relative residual max(pcg_rtol, pcg_inexact x the
  // smaller ADMM residual of the previous iteration); the errors then shrink with the residuals.
  double pcg_inexact = 1e-3;
  std::int64_t pcg_max_it = 1000;
  // PCG's products with X in single precision while the requested relative residual is at
  // least 1e-4 (early, inexact solves); double precision otherwise.
  bool pcg_single = false;
  double tol = 1e-6;                // all four ADMM residuals (relative) below this: converged
  std::int64_t record_every = 1;    // ADMM iterations per step() (per history row)
  // Early stopping on held-out training rows (admm and scp): each training row is held out
  // with this probability (Random(seed, "relu.validation", global row): the same rows at any
  // rank count); 0 turns it off. The run stops once the validation accuracy of the network
  // has not improved for validation_patience iterations and keeps the best iterate.
  double validation_fraction = 0.0;
  std::int64_t validation_patience = 3;
  std::uint64_t seed = 1;

  bool IsValid(std::string* why) const;
};

// X with a trailing ones column when `bias` is true (a copy otherwise).
RowMatrix with_bias(const RowMatrix& X, bool bias);

// Sampled activation patterns. Gates are h_i ~ N(0, I) from Random(seed, "relu.gates", i);
// patterns equal on every global row (compared by hashes summed over ranks) are kept once
// (the first gate index wins) and all-zero patterns are dropped.
struct Patterns {
  std::int64_t requested = 0;
  RowMatrix gates;                         // P x d, replicated
  std::vector<std::int64_t> gate_index;    // the draw index of each kept gate
  Eigen::MatrixXd bits;                    // local rows x P, entries 0 or 1
  std::int64_t count() const { return gates.rows(); }
};
// Collective. X_local already includes the bias column if any.
Patterns sample_patterns(MPI_Comm comm, const RowMatrix& X_local, std::int64_t requested,
                         std::uint64_t seed);
// 1[X h_i >= 0] for every row of X and every gate (local, no communication).
Eigen::MatrixXd pattern_bits(const RowMatrix& X, const RowMatrix& gates);

// The recovered network f(x) = sum_j alpha_j (x^T u_j)_+  (x includes the bias entry), or,
// when `gated`, the gated model f(x) = sum_j 1[x^T g_j >= 0] alpha_j x^T u_j (from scp).
struct Network {
  RowMatrix W1;             // neurons x d
  Eigen::VectorXd w2;       // neurons
  RowMatrix gate_of_neuron; // neurons x d, only for gated models
  bool gated = false;
  bool bias = false;
  // Raw features (no bias column); returns f(x) per row.
  Eigen::VectorXd predict(const RowMatrix& features) const;
};

// The convex model: replicated pattern variables.
struct ConvexModel {
  RowMatrix gates;  // P x d
  RowMatrix V, W;   // P x d each (W is zero for scp)
  bool gated = false;
  bool bias = false;
  // sum_i D_i(x) x^T (v_i - w_i) with D_i(x) = 1[x^T h_i >= 0]; raw features.
  Eigen::VectorXd predict(const RowMatrix& features) const;
  Network recover() const;
};

// Labels in {+-1} or {0,1} map to a class by label > 0; a prediction is positive when > 0.
// Collective: fraction of correct signs over all ranks' rows (NaN when there are no rows).
double accuracy(MPI_Comm comm, const Eigen::VectorXd& prediction, const Eigen::VectorXd& labels);

// Collective: throws Error naming `what` when a label does not fit the loss.
void check_labels(MPI_Comm comm, const Loss& loss, const Eigen::VectorXd& labels,
                  const std::string& what);

struct Summary {
  std::int64_t patterns_requested = 0;
  std::int64_t patterns = 0;       // after deduplication
  std::string linear_solver;       // the one actually used ("rbcd" for ADMM-RBCD)
  std::int64_t pcg_iterations = 0; // total over the run
  double setup_seconds = 0.0;      // sampling + factorization
  double objective = 0.0;          // at the group-sparse iterate (v, w)
  double cone_violation = 0.0;     // || ((I - 2D_i) X v_i)_+ || over all blocks
  std::int64_t admm_iterations = 0;
};

// The ADMM solver (every method), as an IterativeSolver driven by run_solver().
class Solver : public IterativeSolver {
 public:
  // Collective. `X_local`, `y_local`: this rank's training rows (raw features, no bias
  // column). `X_test`/`y_test` may be empty (no test accuracy). Validates options, labels,
  // shapes (throws Error on every rank). `loss` overrides options.loss when given.
  Solver(MPI_Comm comm, const Options& options, const RowMatrix& X_local,
         const Eigen::VectorXd& y_local, const RowMatrix& X_test = RowMatrix(),
         const Eigen::VectorXd& y_test = Eigen::VectorXd(), std::shared_ptr<Loss> loss = nullptr);
  ~Solver() override;

  std::string family() const override { return "relu"; }
  std::string method() const override;
  std::vector<std::string> history_fields() const override;
  StepReport step(std::int64_t iteration) override;
  void save_state(h5::File& file, const std::string& group) const override;
  void load_state(const h5::File& file, const std::string& group) override;
  void write_solution(h5::File& file) const override;

  ConvexModel model() const;
  const Patterns& patterns() const;
  Summary summary() const;
  // Convex-model predictions sum_i D_i X (v_i - w_i) on this rank's training rows.
  Eigen::VectorXd train_predictions() const;
  // Objective of the convex program at (v, w) (collective).
  double objective() const;
  // Collective: A^{-1} rhs (K x d, replicated) for the current u-system matrix A with the
  // linear solver in use (PCG solved to -pcg_rtol from zero); for tests of the u-update.
  RowMatrix solve_u_system(const RowMatrix& rhs);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads /solution of a run file into a network (collective over the file's communicator).
Network read_network(const h5::File& file);

}  // namespace parasol::relu
