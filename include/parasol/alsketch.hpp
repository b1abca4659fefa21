#pragma once
// AdaSketch-Newton (Hong, Na, Mahoney, Kolar, ICML 2023): an adaptive inexact Newton (SQP)
// method for   minimize f(x)  subject to  c(x) = 0,   x in R^n, c in R^m.
//
// Each iteration solves the Newton (KKT) system
//     [ B  G^T ] [dx     ]     [ grad f + G^T lambda ]
//     [ G  0   ] [dlambda] = - [ c                   ]        (G = Jacobian of c)
// inexactly with a randomized iterative sketching solver, stops the sketching by an adaptive
// accuracy condition, adapts the penalties (eta1 up, eta2 down) until the inexact direction
// is a descent direction of the exact augmented Lagrangian
//     L_eta(x, lambda) = f + lambda^T c + eta1/2 |c|^2 + eta2/2 |grad_x L|^2,
// and takes an Armijo backtracking step on L_eta. docs/alsketch.md has the details.
//
// Users plug in by implementing Problem (distributed PETSc Vec/Mat) or, for problems whose
// variables fit on every rank, ReplicatedProblem (Eigen, evaluated identically everywhere).
#include <Eigen/Dense>
#include <mpi.h>
#include <petscmat.h>
#include <petscpc.h>
#include <petscvec.h>
#include <parasol/solver.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace parasol::alsketch {

// The optimization problem, distributed over the ranks of comm(). Every function is
// collective. x and g have the layout given by local_variables(); c and lambda the layout
// given by local_constraints(). Functions may return non-finite values (the solver stops
// with a message); they should not throw on one rank only.
class Problem {
 public:
  virtual ~Problem() = default;
  virtual std::string name() const = 0;
  virtual MPI_Comm comm() const = 0;
  virtual PetscInt local_variables() const = 0;    // this rank's share of n
  virtual PetscInt local_constraints() const = 0;  // this rank's share of m

  // Standard starting point.
  virtual void initial_point(Vec x, Vec lambda) = 0;
  virtual double objective(Vec x) = 0;
  virtual void gradient(Vec x, Vec g) = 0;
  virtual void constraints(Vec x, Vec c) = 0;
  // The m x n Jacobian of c: rows laid out like c, columns like x. create_jacobian() returns a
  // new matrix (the caller destroys it) that jacobian() fills at x.
  virtual Mat create_jacobian() = 0;
  virtual void jacobian(Vec x, Mat J) = 0;
  // Hessian of the Lagrangian, sum of hess f + sum_i lambda_i hess c_i, n x n. Either
  // assembled (create_hessian returns a matrix, hessian fills it) or only as a product
  // (create_hessian returns nullptr and hessian_product is overridden).
  virtual Mat create_hessian() { return nullptr; }
  virtual void hessian(Vec x, Vec lambda, Mat H);
  virtual void hessian_product(Vec x, Vec lambda, Vec v, Vec Hv);

  // Rank-independent ("natural") global index of each local entry of x and of c, so that
  // random sketches and gathered copies do not depend on the rank count. Default: the
  // PETSc global index (right for any layout that does not permute with the rank count).
  virtual std::vector<PetscInt> natural_variable_indices() const;
  virtual std::vector<PetscInt> natural_constraint_indices() const;

  // Published optimal objective, when known (tests compare against it).
  virtual std::optional<double> known_objective() const { return std::nullopt; }

  // Optional, for the ksp sketch's fieldsplit and schur presets: a preconditioner for the Schur
  // complement block of the KKT matrix, -(G B^-1 G^T) in PETSc's sign (B = H unshifted), acting
  // on vectors laid out like c. When has_schur_preconditioner() is true,
  // schur_preconditioner(x, lambda, b_inverse, pc) is called once per KKT setup and must make
  // `pc` (collective) a symmetric positive definite approximation of (G B^-1 G^T)^-1 with the
  // sign flipped, i.e. approximately solve with the negative definite block; the generic
  // G diag(B)^-1 G^T + AMG is then not built. b_inverse: the diagonal of B^-1 (laid out like x)
  // when the solver has it (the schur preset, B diagonal), else null (then B = H).
  virtual bool has_schur_preconditioner() const { return false; }
  virtual void schur_preconditioner(Vec x, Vec lambda, Vec b_inverse, PC pc) {
    (void)x, (void)lambda, (void)b_inverse, (void)pc;
  }
};

// A problem whose variables and constraints are small enough to keep on every rank. The
// functions receive the full x (identical on every rank) and return full results, identical
// on every rank; they may use MPI collectives on comm() (e.g. to sum over distributed data
// rows). The adapter spreads x, lambda and c over the ranks in PETSc's default layout.
class ReplicatedProblem : public Problem {
 public:
  ReplicatedProblem(MPI_Comm comm, int n, int m);
  ~ReplicatedProblem() override;

  virtual Eigen::VectorXd start_x() const = 0;
  virtual Eigen::VectorXd start_lambda() const { return Eigen::VectorXd::Zero(m_); }
  virtual double f(const Eigen::VectorXd& x) = 0;
  virtual Eigen::VectorXd grad_f(const Eigen::VectorXd& x) = 0;
  virtual Eigen::VectorXd c(const Eigen::VectorXd& x) = 0;
  virtual Eigen::MatrixXd jac(const Eigen::VectorXd& x) = 0;  // m x n
  virtual Eigen::MatrixXd hess_lagrangian(const Eigen::VectorXd& x,
                                          const Eigen::VectorXd& lambda) = 0;  // n x n

  int n() const { return n_; }
  int m() const { return m_; }
  MPI_Comm comm() const override { return comm_; }
  PetscInt local_variables() const override { return n_local_; }
  PetscInt local_constraints() const override { return m_local_; }
  void initial_point(Vec x, Vec lambda) override;
  double objective(Vec x) override;
  void gradient(Vec x, Vec g) override;
  void constraints(Vec x, Vec c) override;
  Mat create_jacobian() override;
  void jacobian(Vec x, Mat J) override;
  Mat create_hessian() override;
  void hessian(Vec x, Vec lambda, Mat H) override;

 private:
  MPI_Comm comm_;
  int n_, m_;
  PetscInt n_local_, m_local_;
};

// Every vector and matrix gathered to all ranks in natural order (small problems only).
Eigen::VectorXd gather_natural(Vec v, const std::vector<PetscInt>& natural_local);

// ---------------------------------------------------------------- built-in problems
struct ProblemParams {
  std::string data;       // logreg: HDF5 data set (/X, /y with labels +-1 or 0/1)
  std::int64_t N = 32;    // poisson: interior grid size; genhs28: n
  std::int64_t seed = 1;  // logreg: the random constraint matrix
  // poisson: its Schur complement preconditioner, fft (exact, by the discrete sine transform)
  // or amg (two BoomerAMG cycles on -Delta_h + sqrt(10) I).
  std::string poisson_schur_pc = "fft";
};
struct ProblemInfo {
  std::string name;
  std::string description;
  bool needs_data = false;
};
// The registry that -problem and -help list.
const std::vector<ProblemInfo>& problem_registry();
std::unique_ptr<Problem> make_problem(const std::string& name, MPI_Comm comm,
                                      const ProblemParams& params);

// ---------------------------------------------------------------- the solver
struct SketchInfo {
  std::string name;
  std::string description;
};
// The registry that -alsketch_sketch and -help list: gaussian, kaczmarz, block, ksp.
const std::vector<SketchInfo>& sketch_registry();

struct Options {
  std::string sketch = "gaussian";
  std::string kaczmarz_weights = "uniform";  // uniform | rownorm
  int block_size = 8;                       // block sketch: columns of S
  std::int64_t max_sketch_steps = 100000;   // per outer iteration
  // Nesterov-accelerated sketch-and-project on the dense path (n + m <= dense_limit), with the
  // parameters from the exact spectrum of K (gaussian and kaczmarz).
  bool accelerate = false;
  // Start each iteration's sketch from the previous direction, scaled to minimize |K z - b|.
  bool warm_start = false;
  double tol = 1e-8;                        // KKT residual for convergence
  std::uint64_t seed = 2023;
  double eta1 = 1.0;         // initial penalty on |c|^2
  double eta2 = 0.1;         // initial penalty on |grad_x L|^2
  double delta = 0.1;        // initial accuracy parameter
  double delta_min = 1e-6;   // lower bound on delta
  double xi_B = 0.1;         // Hessian shift and its curvature bound
  double beta = 0.1;         // Armijo constant (< 0.5)
  double nu = 1.5;           // penalty growth factor
  double backtrack = 0.5;    // step reduction per rejected trial
  int max_backtracks = 60;
  double psi_factor = 20.0;             // psi = psi_factor max(|B|^2,1)/(min(xi_G,1) min(xi_B,1))
  double jacobian_eig_min = 1e-2;       // fail when lambda_min(G G^T) is below
  double reduced_hessian_min = 1e-6;    // shift B when lambda_min(Z^T H Z) is below
  double eta1_max = 1e8, eta2_min = 1e-8;  // accept the direction anyway beyond these
  std::int64_t dense_limit = 1000;  // exact dense spectra and sketching up to n + m; above,
                                    // Lanczos estimates and distributed sketching
  int lanczos_steps = 20;            // beyond: Lanczos estimates with this many steps
  bool sharpen = false;  // theta_k = min(1, KKT residual): superlinear local convergence
  // The ksp sketch's method: auto | mumps | fieldsplit | minres (docs/alsketch.md).
  std::string ksp_preset = "auto";
  bool problem_schur = true;  // fieldsplit: the problem's Schur preconditioner when it has one
  // PETSc prefix of the ksp sketch: -alsketch_ksp_type, -alsketch_ksp_rtol, -alsketch_pc_type ...
  std::string ksp_prefix = "alsketch_";

  bool IsValid(std::string* why) const;
};

// Read the alsketch options block (-alsketch_*). Does not read the common options.
Options read_options(MPI_Comm comm, const Options& defaults = {});

struct Summary {
  std::int64_t iterations = 0;
  Status status = Status::Running;
  std::string message;
  double objective = 0.0;
  double kkt_residual = 0.0;
  double constraint_violation = 0.0;
  std::int64_t sketch_steps = 0;        // total over all iterations
  std::int64_t penalty_adaptations = 0;
  std::int64_t backtracks = 0;           // rejected line-search trials
  std::int64_t hessian_modifications = 0;
  std::int64_t function_evaluations = 0;  // objective evaluations
  std::int64_t krylov_iterations = 0;     // ksp: iterations of the KSP, all solves
  std::int64_t kkt_setups = 0;            // ksp: KKT matrices built and set up (factorizations)
  std::string BriefReport() const;
};

// What one iteration's sketch solve ended with (for tests and diagnostics).
struct SketchSolveInfo {
  std::int64_t steps = 0;
  double residual = 0.0;    // |K z - b|
  double rhs_norm = 0.0;    // |b|
  double target = 0.0;      // accuracy condition: residual <= target
  bool accuracy_met = false;
};

class Solver : public IterativeSolver {
 public:
  Solver(Problem& problem, const Options& options);
  ~Solver() override;
  Solver(const Solver&) = delete;
  Solver& operator=(const Solver&) = delete;

  std::string family() const override { return "alsketch"; }
  std::string method() const override { return options_.sketch; }
  std::vector<std::string> history_fields() const override;
  StepReport step(std::int64_t iteration) override;
  // Sets up what the first step needs that reads options: for the ksp sketch the KSP on the
  // KKT matrix at the current point (its factorization or preconditioner, reused by the first
  // step when nothing changed), so that every -alsketch_ sub-solver option has been read when
  // the caller checks for unknown options. Optional: step() does it anyway.
  void prepare();
  // Bytes of the problem's own data: J and H (values, column indices, row offsets) and the
  // vectors x, grad f, lambda, c. The yardstick for the solver's memory.
  double problem_data_bytes() const;
  void save_state(h5::File& file, const std::string& group) const override;
  void load_state(const h5::File& file, const std::string& group) override;
  void write_solution(h5::File& file) const override;

  Vec x() const { return x_; }
  Vec lambda() const { return lambda_; }
  const Summary& summary() const { return summary_; }
  const SketchSolveInfo& last_sketch() const { return last_sketch_; }
  double eta1() const { return eta1_; }
  double eta2() const { return eta2_; }

 private:
  struct Impl;
  Problem& problem_;
  Options options_;
  Vec x_ = nullptr, lambda_ = nullptr;
  double eta1_, eta2_, delta_;
  Summary summary_;
  SketchSolveInfo last_sketch_;
  std::unique_ptr<Impl> impl_;
};

// Library entry point: runs the solver until the KKT residual reaches options.tol or
// max_iterations, without output files.
Summary Solve(Problem& problem, const Options& options, std::int64_t max_iterations = 1000);

}  // namespace parasol::alsketch
