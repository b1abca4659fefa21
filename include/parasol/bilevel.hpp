#pragma once
// Bilevel optimization: min_x F(x, y*(x)) with y*(x) a minimizer of the lower level f(x, .)
// (possibly under constraints g(x, y) <= 0 or = 0 that couple x and y).
//
// Two problem interfaces, one per kind of method:
//  - Problem: one lower level, evaluated collectively over row-distributed data (each rank
//    sums over its rows, one allreduce). Used by lvhba, penalty and borep.
//  - BlockProblem: m lower levels ("blocks") sharing the upper variable x, each block owned
//    by one rank and evaluated locally. Used by bsvrb1 and bsvrb2. A Problem without
//    constraints can be used as a single collective block (as_block_problem).
// Methods are IterativeSolver implementations chosen by name from one registry
// (methods(), make_solver()); run them with parasol::run_solver.
#include <Eigen/Dense>
#include <mpi.h>
#include <parasol/dataset.hpp>
#include <parasol/solver.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace parasol::bilevel {

using Vector = Eigen::VectorXd;
using Matrix = Eigen::MatrixXd;

// A minibatch: global sample indices (sorted, may repeat), or the full data when `full`.
// Problems without samples ignore it.
struct Sample {
  bool full = true;
  std::vector<std::int64_t> rows;
  static Sample all() { return {}; }
};

// Draws `count` global indices in [0, population) for (seed, purpose, index): the same on
// every rank, so minibatches do not depend on the rank count. count >= population: full.
Sample draw_sample(std::uint64_t seed, const std::string& purpose, std::uint64_t index,
                   std::int64_t population, std::int64_t count);
// The same with the purpose's id (parasol::purpose_id) computed once by the caller.
Sample draw_sample(std::uint64_t seed, std::uint64_t purpose, std::uint64_t index,
                   std::int64_t population, std::int64_t count);

// ---------------------------------------------------------------------------------------
// One lower level. Every evaluation is collective over comm(): values and gradients with
// respect to y are summed over ranks; x may be distributed (upper_distributed()), in which
// case x, its gradients and Hessian products are this rank's slice.
// Objectives are means over samples (so a minibatch estimate is unbiased) plus
// deterministic terms.
class Problem {
 public:
  virtual ~Problem() = default;
  virtual std::string name() const = 0;
  virtual MPI_Comm comm() const = 0;
  virtual std::int64_t upper_dim() const = 0;  // local length of x
  virtual std::int64_t lower_dim() const = 0;  // length of y (replicated)
  virtual bool upper_distributed() const { return false; }
  // Global sample counts of the lower (training) and upper (validation) data; 0: none.
  virtual std::int64_t lower_samples() const { return 0; }
  virtual std::int64_t upper_samples() const { return 0; }
  virtual void initial_point(Vector* x, Vector* y) const = 0;

  // Upper objective F and lower objective f with optional gradients (nullptr: not needed).
  virtual double upper(const Vector& x, const Vector& y, Vector* grad_x, Vector* grad_y,
                       const Sample& sample = Sample::all()) const = 0;
  virtual double lower(const Vector& x, const Vector& y, Vector* grad_x, Vector* grad_y,
                       const Sample& sample = Sample::all()) const = 0;
  // Products of the lower Hessian blocks with v (length lower_dim()):
  // hyy_v = d2f/dy2 v, hxy_v = d2f/dxdy v (length upper_dim()). Either may be nullptr.
  virtual void lower_hvp(const Vector& x, const Vector& y, const Vector& v, Vector* hyy_v,
                         Vector* hxy_v, const Sample& sample = Sample::all()) const = 0;

  // Lower-level constraints g(x, y) (<= 0, or = 0 when constraint_equalities()).
  virtual std::int64_t num_constraints() const { return 0; }
  virtual bool constraint_equalities() const { return false; }
  // g (length p), jac_x (p x upper_dim), jac_y (p x lower_dim); any may be nullptr.
  virtual void constraints(const Vector& x, const Vector& y, Vector* g, Matrix* jac_x,
                           Matrix* jac_y) const;
  // Projections onto the simple sets X, Y and onto C = {(x, y) in X x Y : g(x, y) <= 0}.
  virtual void project_upper(Vector* x) const;
  virtual void project_lower(Vector* y) const;
  virtual void project_feasible(Vector* x, Vector* y) const;

  // Inner product of two upper vectors (summed over ranks when x is distributed).
  double upper_dot(const Vector& a, const Vector& b) const;

  // Extra history columns (e.g. val_accuracy, test_accuracy) and their values (collective).
  virtual std::vector<std::string> metric_names() const { return {}; }
  virtual std::vector<double> metrics(const Vector& x, const Vector& y) const;
  // A known optimum (tests, the x_error history column). False when unknown.
  virtual bool known_solution(Vector* x, Vector* y) const;
};

// ---------------------------------------------------------------------------------------
// m lower levels g_i(x, y_i) and upper terms f_i(x, y_i); F(x) = (1/m) sum_i f_i(x, y_i*(x)).
// x is replicated. Block evaluations are local to the rank that owns the block
// (Partition::block(m, comm)) unless collective_blocks(), in which case every rank takes
// part in every block's evaluation (the block's data is row-distributed).
class BlockProblem {
 public:
  virtual ~BlockProblem() = default;
  virtual std::string name() const = 0;
  virtual MPI_Comm comm() const = 0;
  virtual std::int64_t num_blocks() const = 0;
  virtual std::int64_t upper_dim() const = 0;
  virtual std::int64_t block_dim() const = 0;
  virtual bool collective_blocks() const { return false; }
  virtual std::int64_t lower_samples() const { return 0; }
  virtual std::int64_t upper_samples() const { return 0; }
  virtual void initial_point(Vector* x, Vector* y_block) const = 0;

  virtual double upper_block(std::int64_t i, const Vector& x, const Vector& y, Vector* grad_x,
                             Vector* grad_y, const Sample& sample = Sample::all()) const = 0;
  virtual double lower_block(std::int64_t i, const Vector& x, const Vector& y, Vector* grad_x,
                             Vector* grad_y, const Sample& sample = Sample::all()) const = 0;
  virtual void lower_block_hvp(std::int64_t i, const Vector& x, const Vector& y,
                               const Vector& v, Vector* hyy_v, Vector* hxy_v,
                               const Sample& sample = Sample::all()) const = 0;
  // Dense d2g_i/dy2 (bsvrb1); default: columns from lower_block_hvp.
  virtual Matrix lower_block_hessian(std::int64_t i, const Vector& x, const Vector& y,
                                     const Sample& sample = Sample::all()) const;
  // At most how many coupling rows a block has on minibatches of `lower_count` lower and
  // `upper_count` upper samples (the population for the full data): BSVRB sizes each
  // block's slot in its exchange with it. Default upper_dim(), i.e. no bound.
  virtual std::int64_t max_coupling_rows(std::int64_t lower_count,
                                         std::int64_t upper_count) const;
  // The entries of x where block i's grad_x of upper_block (at `upper`) and hxy_v of
  // lower_block_hvp (at `lower`) can be nonzero, sorted and unique; false (the default) when
  // they may be anywhere. They must also be the only entries of x that block i's
  // evaluations on these samples read: BSVRB then keeps x current only there (O(B) work and
  // traffic per block instead of O(dim x)).
  virtual bool coupling_rows(std::int64_t i, const Sample& lower, const Sample& upper,
                             std::vector<std::int64_t>* rows) const;
  // upper_block and lower_block_hvp with grad_x and hxy_v only on `rows` (the coupling rows
  // of these samples, or all rows when coupling_rows says false), so that BSVRB's per-block
  // work needs no vector of length dim x. Defaults: the full calls, then those rows.
  virtual double upper_block_rows(std::int64_t i, const Vector& x, const Vector& y,
                                  const std::vector<std::int64_t>& rows, Vector* grad_x_rows,
                                  Vector* grad_y, const Sample& sample) const;
  virtual void lower_block_hvp_rows(std::int64_t i, const Vector& x, const Vector& y,
                                    const Vector& v, const std::vector<std::int64_t>& rows,
                                    Vector* hyy_v, Vector* hxy_v_rows,
                                    const Sample& sample) const;
  // Sums over blocks first, first + 1, ... (one y each) of the full-data upper and lower
  // objectives at x (local; the caller sums over ranks). Default: upper_block and
  // lower_block block by block; problems whose blocks share data can batch them.
  virtual void sum_objectives(const Vector& x, std::int64_t first, const std::vector<Vector>& ys,
                              double* upper, double* lower) const;

  virtual std::vector<std::string> metric_names() const { return {}; }
  // Collective; `y_local` holds the blocks this rank owns, in order.
  virtual std::vector<double> metrics(const Vector& x, const std::vector<Vector>& y_local) const;
  // A history row's full-data evaluation (collective): the upper and lower objectives summed
  // over all blocks, and metrics(). Each rank passes its own blocks (first, ys: consecutive,
  // in rank order; all of them when collective_blocks()). Default: sum_objectives over each
  // rank's blocks, summed over ranks, then metrics(); problems whose blocks share data can
  // split the data over the ranks instead.
  virtual void evaluate(const Vector& x, std::int64_t first, const std::vector<Vector>& ys,
                        double* upper, double* lower, std::vector<double>* metrics) const;
  virtual bool known_solution(Vector* x) const;
};

// A Problem without constraints seen as one collective block (bsvrb on any such problem).
std::unique_ptr<BlockProblem> as_block_problem(std::shared_ptr<const Problem> problem);

// ---------------------------------------------------------------------------------------
// Problems.

// The LV-HBA coupled-constraint toy: F = 1/2|x - y2|^2 + 1/2|y1 - 1|^2,
// f = 1/2|y1|^2 - x'y1 + 1'y2 s.t. 1'x + 1'y1 + 1'y2 = 0; x* = -0.3, y1* = 0.7, y2* = -0.4.
std::shared_ptr<Problem> make_toy_problem(MPI_Comm comm, std::int64_t n = 100,
                                          double start = 10.0);

// The general quadratic bilevel problem (lower g, upper f as in docs/bilevel.md):
// lower  = 1/2 z'Az + 1/2 x'Bx + x'Cz + a'z + b'x
// upper  = 1/2 z'Fz + 1/2 x'Hx + x'Kz + f'z + h'x
struct QuadraticData {
  Matrix A, B, C, F, H, K;
  Vector a, b, f, h;
  std::int64_t upper_dim() const { return B.rows(); }
  std::int64_t lower_dim() const { return A.rows(); }
  // Dimensions agree, A symmetric positive definite (Cholesky); false with a reason.
  bool IsValid(std::string* why) const;
  // Closed-form optimum: z*(x) = -A^{-1}(C'x + a), x* from the reduced quadratic; false
  // (with why) when the reduced Hessian is not positive definite.
  bool solution(Vector* x, Vector* z, std::string* why = nullptr) const;
  // Exact hypergradient of Phi(x) = upper(x, z*(x)).
  Vector hypergradient(const Vector& x) const;
};
// A random well-posed instance (reduced problem strongly convex), the same on every rank.
QuadraticData random_quadratic(std::uint64_t seed, std::int64_t upper_dim,
                               std::int64_t lower_dim);
// Reads datasets A B C a b F H K f h from an HDF5 file and validates them (collective; a
// clear Error names the file and what is wrong).
QuadraticData read_quadratic(MPI_Comm comm, const std::string& path);
void write_quadratic(MPI_Comm comm, const std::string& path, const QuadraticData& data);
std::shared_ptr<Problem> make_quadratic_problem(MPI_Comm comm, QuadraticData data);
// m independent quadratic blocks sharing x: F(x) = (1/m) sum_i upper_i; blocks owned by ranks.
std::unique_ptr<BlockProblem> make_quadratic_blocks(MPI_Comm comm,
                                                    std::vector<QuadraticData> blocks);

// Row-distributed labelled data split for the learning problems.
struct SplitData {
  RowMatrix X_train, X_val, X_test;     // local rows
  Eigen::VectorXd y_train, y_val, y_test;
  std::int64_t train_begin = 0, train_global = 0;  // global row numbering of the train part
  std::int64_t val_begin = 0, val_global = 0;
  std::int64_t test_begin = 0, test_global = 0;
  Eigen::VectorXd y_train_clean;        // labels before corruption (empty if unknown)
};

// Per-feature L2 hyperparameters: lower = mean loss(train; y) + 1/2 sum_j e^{x_j} y_j^2,
// upper = mean loss(val; y). Loss logistic (labels +-1) or squared (ridge: the
// hypergradient has a closed form).
enum class L2Loss { Logistic, Squared };
std::shared_ptr<Problem> make_l2reg_problem(MPI_Comm comm, SplitData data, L2Loss loss,
                                            double x0 = 0.0);

// Data hyper-cleaning: lower = (1/n) sum_j sigmoid(x_j) CE(W; a_j, c_j) + mu/2 |W|^2 with a
// linear softmax classifier W (classes x (features + 1)); upper = mean CE on validation.
// One weight x_j per training sample, distributed with the rows.
std::shared_ptr<Problem> make_hypercleaning_problem(MPI_Comm comm, SplitData data,
                                                    std::int64_t classes, double mu = 1e-3);
// The default data: Fashion-MNIST from `dir` (idx files), 50,000 train with a `noise`
// share of labels replaced at random (seeded), 5,000 validation, 10,000 test; pixels scaled
// to [0, 1] and, with `standardize`, to zero mean and unit variance (training statistics).
SplitData load_fashion_mnist_split(MPI_Comm comm, const std::string& dir, std::uint64_t seed,
                                   double noise = 0.5, bool standardize = true);
// Splits a dataset file (/X, /y) into train / val / test by fractions of the rows.
SplitData load_split(MPI_Comm comm, const std::string& path, double val_fraction,
                     double test_fraction);

// BSVRB's task: m logistic-regression blocks with temperatures sigma_i in [1.16, 10.95],
// lower_i = (1/n) sum_j sigmoid(x_j) log(1 + exp(-b_j y'[1;a_j]/sigma_i)) + lambda/2 |y|^2,
// upper_i = mean validation logistic loss at temperature sigma_i; data replicated.
std::unique_ptr<BlockProblem> make_multiblock_problem(MPI_Comm comm, const RowMatrix& X_train,
                                                      const Vector& y_train,
                                                      const RowMatrix& X_val,
                                                      const Vector& y_val, std::int64_t m = 100,
                                                      double lambda = 1e-5);

// ---------------------------------------------------------------------------------------
// Options of every method (each method reads the ones it uses).
struct Options {
  std::string method = "lvhba";
  std::uint64_t seed = 1;
  std::int64_t batch = 0;          // samples per stochastic evaluation; 0: full data
  std::int64_t eval_every = 1;     // full objective/metrics every this many iterations
  double tol = 0.0;                // converged when the stationarity measure is below (0: off)

  // lvhba (Yao et al.): steps alpha (x, y), beta (z), eta (theta, lambda), proximal gammas,
  // penalty c_k = c0 (k + 1)^p, multiplier clamp u.
  double lvhba_alpha = 0.01, lvhba_beta = 0.02, lvhba_eta = 0.01;
  double lvhba_gamma1 = 10.0, lvhba_gamma2 = 10.0;
  double lvhba_c0 = 0.025, lvhba_p = 0.3, lvhba_clamp = 1000.0;
  double lvhba_alpha_x = 0.0;      // step on x when it should differ from alpha (0: alpha)

  // penalty (Kwon et al.): sigma, steps, inner steps (double loop) or single loop.
  std::string penalty_variant = "double";  // double | single
  double penalty_sigma = 1e-3;
  double penalty_lr_x = 0.01, penalty_lr_y = 0.1, penalty_lr_z = 0.1;
  std::int64_t penalty_inner = 20;
  double penalty_inner_tol = 0.0;  // double loop: stop inner steps below this gradient norm
  double penalty_momentum = 0.0;   // single loop: momentum on the x direction

  // borep (Hao et al.): normalized momentum.
  double borep_lr_x = 0.05, borep_lr_y = 0.05, borep_beta = 0.9, borep_nu = 0.01;
  std::int64_t borep_interval = 2, borep_lower_steps = 10, borep_init_steps = 100;
  double borep_decay = 1.0;        // lr_x multiplied by this every iteration
  double borep_lr_y_decay = 1.0;   // lr_y multiplied by this every iteration

  // bsvrb (Hu et al.): I blocks per iteration, MSVR alpha/gamma, STORM beta.
  std::int64_t bsvrb_blocks = 10;
  double bsvrb_lr_x = 1e-3, bsvrb_beta = 0.9, bsvrb_alpha = 0.9, bsvrb_gamma = 1.0;
  double bsvrb_tau = -1.0;         // lower step; -1: 0.5 (v1) or 1 (v2)
  double bsvrb_tau_v = 1.0;
  double bsvrb_hmin = 1e-2;        // v1: smallest eigenvalue kept in the Hessian estimate
  double bsvrb_vbound = 10.0;      // v2: radius of the ball v is projected onto
  bool bsvrb_profile = false;      // print each rank's time per phase of the iteration at the end

  bool IsValid(std::string* why) const;
};

// Every bilevel method is an IterativeSolver that also exposes its iterate and its
// estimate of the hypergradient dPhi/dx.
class Solver : public IterativeSolver {
 public:
  std::string family() const override { return "bilevel"; }
  virtual const Vector& x() const = 0;
  // Lower variable (for block problems: this rank's blocks stacked).
  virtual Vector y() const = 0;
  // Freezes x, runs `inner` inner updates (the method's lower-level / auxiliary sequences),
  // and returns the method's hypergradient estimate at x (collective). Moves the state.
  virtual Vector hypergradient_at(const Vector& x, std::int64_t inner) = 0;
};

struct MethodInfo {
  std::string name;
  std::string description;
  bool block_method;  // needs a BlockProblem
};
const std::vector<MethodInfo>& methods();
std::vector<std::string> method_names();
std::vector<std::string> problem_names();  // toy quadratic l2reg hypercleaning multiblock

// Builds the method named options.method (Error if unknown or not applicable).
std::unique_ptr<Solver> make_solver(const Options& options, std::shared_ptr<Problem> problem);
std::unique_ptr<Solver> make_block_solver(const Options& options,
                                          std::shared_ptr<BlockProblem> problem);

// Helpers shared by methods and tests (collective).
// Minimizes the lower level in y from y0 by gradient steps with Armijo backtracking (or
// conjugate gradients on the Hessian for quadratic-like problems) to gradient norm `tol`.
Vector solve_lower(const Problem& problem, const Vector& x, Vector y0, double tol,
                   std::int64_t max_it = 10000);
// dPhi/dx = dF/dx - d2f/dxdy [d2f/dy2]^{-1} dF/dy at (x, y), by conjugate gradients.
Vector implicit_hypergradient(const Problem& problem, const Vector& x, const Vector& y,
                              double tol = 1e-12);

}  // namespace parasol::bilevel
