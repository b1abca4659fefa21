// ADMM for the sampled convex ReLU program (Algorithm 1 of Bai, Gautam & Sojoudi) and the
// variants that share its machinery. docs/relu.md derives every update.
//
// Blocks j = 0..K-1 of the pattern variable u (K x d, replicated): for the constrained
// methods K = 2P, block j < P is v_j and block P + j is w_j (sign sigma_j = -1); for scp
// K = P (only v). Row-local matrices (n_local x K):
//   SD(k, j) = sigma_j 1[x_k^T h_pi(j) >= 0]   so  (F u)_k = sum_j SD(k, j) x_k^T u_j,
//   E (k, j) = 2 1[x_k^T h_pi(j) >= 0] - 1     so  (G u)_{k, j} = E(k, j) x_k^T u_j.
// Splitting u = v, G u = s (s >= 0) and, for losses other than squared, F u = q (prox of
// the loss on q), with penalties rho, rho g and rho f on the three splits, the u-update
// solves A u = b with the matrix
//   A = I + a F^T F + g (I_K kron X^T X),  a = 1/rho (squared) or f (split), g = 0 for scp.
// g and f default to 1 / (mean eigenvalue of X^T X, resp. F^T F), which puts the three
// constraint blocks on the same scale. A changes only when rho does (residual balancing;
// the split form with PCG never refactors anything larger than d x d).
#include <parasol/error.hpp>
#include <parasol/partition.hpp>
#include <parasol/random.hpp>
#include <parasol/relu.hpp>

#include "admm_common.hpp"
#include "blas.hpp"
#include "internal.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace parasol::relu {

using detail::flat;
using detail::group_norm_sum;
using detail::product;
using detail::sum_replicated;

namespace {

// All ranks' row blocks of a row-major matrix with `cols` columns, in global row order,
// written to `all` (room for every row). Counts are int: at most 2^31 - 1 entries in all.
void gather_rows_into(MPI_Comm comm, const RowMatrix& local, Eigen::Index cols, double* all) {
  RankPieces::of(comm, static_cast<int>(local.rows() * cols)).allgather(comm, local.data(), all);
}

RowMatrix gather_rows(MPI_Comm comm, const RowMatrix& local, Eigen::Index cols) {
  const RankPieces rows = RankPieces::of(comm, static_cast<int>(local.rows()));
  RowMatrix all(rows.total, cols);
  rows.times(static_cast<int>(cols)).allgather(comm, local.data(), all.data());
  return all;
}

}  // namespace

struct Solver::Impl {
  MPI_Comm comm;
  Options options;
  std::shared_ptr<Loss> loss;
  bool constrained = true;  // cone constraints G u >= 0 (admm, adversarial)
  bool split_loss = false;  // loss handled by the split F u = q
  bool rbcd = false;        // ADMM-RBCD: loss in the u-update, inexact block coordinate descent
  double rho = 1.0;         // current penalty (adapted by residual balancing)
  double g = 1.0, f = 1.0;  // relative penalties of the cone and loss splits
  double a = 1.0;           // coefficient of F^T F in A
  std::int64_t rho_changes = 0;
  std::int64_t admm_iterations = 0;

  RowMatrix X;               // local training rows, bias column included
  Eigen::VectorXd y;
  RowMatrix X_test;          // local test rows, bias column included
  Eigen::VectorXd y_test;
  bool has_test = false;
  // -validation_fraction: held-out training rows (bias column included), the best iterate
  // by their accuracy, and when it was reached (0: none yet).
  bool validate = false;
  RowMatrix X_val, val_on;  // val_on: their pattern bits (scp's gated model)
  Eigen::VectorXd y_val;
  RowMatrix best_V;
  double best_val_accuracy = -1.0;
  std::int64_t best_iteration = 0;
  std::int64_t n_global = 0, first_row = 0, d = 0, P = 0, K = 0;
  Patterns patterns;
  RowMatrix SD, E;           // n_local x K
  RowMatrix test_on;         // n_test_local x P: test pattern bits (scp's gated model)
  Eigen::MatrixXd XtX;       // d x d, global
  RowMatrix Fty;             // K x d, global: F^T y
  double Fty_norm = 1.0;

  RowMatrix U, V, Lam, coupling;  // K x d, replicated; coupling = G^T(s - nu) + F^T(q - mu)
  RowMatrix S, Nu;                // n_local x K
  Eigen::VectorXd q, mu;          // n_local (split loss only)

  std::string linear_solver;
  Eigen::LLT<Eigen::MatrixXd> dense_factor;  // of A, when dense
  Eigen::MatrixXd block_inverse;  // C^{-1} of the PCG block preconditioner (d x d; applied by GEMM)
  // Woodbury: B = I_K kron C0 with C0 = I + g X^T X, and the n x n matrix (replicated)
  // I/a + F B^{-1} F^T = I/a + (K/P) (Z Z^T) o (Delta Delta^T), Z = X L^{-T} (C0 = L L^T),
  // Cholesky-factored in place (its lower triangle holds the factor): one n x n matrix per
  // rank. a changes with rho for the squared loss: the matrix is then rebuilt.
  Eigen::LLT<Eigen::MatrixXd> base_factor;
  Eigen::MatrixXd woodbury_factor;
  bool base_ready = false;
  // RBCD: X^T X = Q diag(lambda) Q^T, so (s I + t X^T X)^{-1} costs two products with Q.
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> gram_eigen;
  std::int64_t pcg_iterations = 0;
  double setup_seconds = 0.0;
  double last_objective = 0.0, last_cone_violation = 0.0;
  double last_residual = 1.0;  // min(primal, dual) of the last iteration, for inexact PCG

  Impl(MPI_Comm comm_, const Options& options_, std::shared_ptr<Loss> loss_)
      : comm(comm_), options(options_), loss(std::move(loss_)) {}

  void setup(const RowMatrix& X_raw, const Eigen::VectorXd& y_local, const RowMatrix& X_test_raw,
             const Eigen::VectorXd& y_test_local);
  void factorize();
  // Collective (one reduction). `single`: the two products with X in single precision.
  RowMatrix apply_A(const RowMatrix& p, bool single = false);
  detail::RowMatrixF X_single;  // X in single precision (-pcg_single; made on first use)
  RowMatrix precondition(const RowMatrix& r) const;
  void solve_u(const RowMatrix& b);
  void solve_u_woodbury(const RowMatrix& b);
  double rbcd_u(const RowMatrix& c, std::int64_t iteration);  // returns ||u - u_old||
  RowMatrix gram_solve(double s, double t, const RowMatrix& r) const;  // rows r_j (sI + tX^TX)^{-1}
  std::string cheapest_solver() const;
  RowMatrix F_transpose_rows(const Eigen::VectorXd& r) const;  // local part of F^T r
  StepReport step(std::int64_t iteration);
  Eigen::VectorXd fv(const RowMatrix& XV) const { return SD.cwiseProduct(XV).rowwise().sum(); }
  Eigen::VectorXd network_output(const RowMatrix& XV, const RowMatrix& on) const;
  void recompute_coupling();
  double objective_at_v();
  ConvexModel model() const;
};

void Solver::Impl::setup(const RowMatrix& X_raw, const Eigen::VectorXd& y_local,
                         const RowMatrix& X_test_raw, const Eigen::VectorXd& y_test_local) {
  const double start = MPI_Wtime();
  std::string why;
  const bool valid = options.IsValid(&why);
  check_all(comm, valid, "relu: " + why);
  detail::limit_blas_threads(comm);
  if (!loss) loss = make_loss(options.loss);
  check_all(comm, options.method != "adversarial",
            "relu: -method adversarial is solved by relu::AdversarialSolver, not relu::Solver");
  constrained = options.method != "scp";
  rbcd = loss->name() == "bce" && options.bce_solver == "rbcd";
  split_loss = loss->name() != "squared" && !rbcd;
  rho = options.rho;

  const detail::DataLayout layout = detail::check_data(comm, *loss, X_raw, y_local, X_test_raw, y_test_local);
  n_global = layout.n_global;
  first_row = layout.first_row;
  has_test = layout.has_test;

  validate = options.validation_fraction > 0;
  if (validate) {
    // Hold out rows keyed by their global index (the same rows at any rank count); the kept
    // rows keep their global order, so checkpoints of row-distributed state stay in it.
    std::vector<Eigen::Index> kept, held;
    for (Eigen::Index k = 0; k < X_raw.rows(); ++k) {
      Random draw(options.seed, "relu.validation", static_cast<std::uint64_t>(first_row + k));
      (draw.uniform() < options.validation_fraction ? held : kept).push_back(k);
    }
    RowMatrix X_kept(static_cast<Eigen::Index>(kept.size()), X_raw.cols());
    RowMatrix X_held(static_cast<Eigen::Index>(held.size()), X_raw.cols());
    y.resize(X_kept.rows());
    y_val.resize(X_held.rows());
    for (std::size_t i = 0; i < kept.size(); ++i) {
      X_kept.row(static_cast<Eigen::Index>(i)) = X_raw.row(kept[i]);
      y(static_cast<Eigen::Index>(i)) = y_local(kept[i]);
    }
    for (std::size_t i = 0; i < held.size(); ++i) {
      X_held.row(static_cast<Eigen::Index>(i)) = X_raw.row(held[i]);
      y_val(static_cast<Eigen::Index>(i)) = y_local(held[i]);
    }
    std::int64_t counts[2] = {static_cast<std::int64_t>(kept.size()), static_cast<std::int64_t>(held.size())};
    first_row = detail::first_row_of(comm, counts[0]);
    MPI_Allreduce(MPI_IN_PLACE, counts, 2, MPI_INT64_T, MPI_SUM, comm);
    n_global = counts[0];
    check_all(comm, counts[0] > 0 && counts[1] > 0,
              "relu: -validation_fraction " + std::to_string(options.validation_fraction) + " leaves " +
                  std::to_string(counts[0]) + " training and " + std::to_string(counts[1]) +
                  " validation rows; both must be at least 1");
    X = with_bias(X_kept, options.bias);
    X_val = with_bias(X_held, options.bias);
  } else {
    X = with_bias(X_raw, options.bias);
    y = y_local;
  }
  d = X.cols();
  patterns = sample_patterns(comm, X, options.patterns, options.seed);
  P = patterns.count();
  K = constrained ? 2 * P : P;
  const Eigen::Index n = X.rows();
  SD.resize(n, K);
  SD.leftCols(P) = patterns.bits;
  if (constrained) {
    SD.rightCols(P) = -patterns.bits;
    E.resize(n, K);
    E.leftCols(P) = 2.0 * patterns.bits.array() - 1.0;
    E.rightCols(P) = E.leftCols(P);
  }
  if (has_test) {
    X_test = with_bias(X_test_raw, options.bias);
    y_test = y_test_local;
    if (!constrained) test_on = pattern_bits(X_test, patterns.gates);
  }
  if (validate && !constrained) val_on = pattern_bits(X_val, patterns.gates);

  // Global X^T X and F^T y in one reduction.
  {
    const Eigen::MatrixXd signed_labels = SD.array().colwise() * y.array();
    const RowMatrix Xty = product(signed_labels, true, X, false);  // K x d
    std::vector<double> buffer(d * d + K * d + 1);
    Eigen::Map<Eigen::MatrixXd>(buffer.data(), d, d) = product(X, true, X, false);  // symmetric
    Eigen::Map<RowMatrix>(buffer.data() + d * d, K, d) = Xty;
    // trace(F^T F) = sum_j sum_k 1[pattern of j on row k] ||x_k||^2
    buffer.back() = SD.cwiseAbs().rowwise().sum().dot(X.rowwise().squaredNorm());
    sum_replicated(comm, buffer.data(), static_cast<int>(buffer.size()));
    XtX = Eigen::Map<Eigen::MatrixXd>(buffer.data(), d, d);
    Fty = Eigen::Map<RowMatrix>(buffer.data() + d * d, K, d);
    Fty_norm = std::max(1.0, Fty.norm());
    const double trace_XtX = XtX.trace(), trace_FtF = buffer.back();
    // Default cone penalty rho g = trace(F^T F) / (K trace(X^T X)), the mean fraction of
    // rows a pattern activates (about 1/2): then g (I kron X^T X) and (1/rho) F^T F have the
    // same mean eigenvalue, which was the fastest setting in our experiments (docs/relu.md).
    const double fill = trace_XtX > 0 ? trace_FtF / (static_cast<double>(K) * trace_XtX) : 0.5;
    g = !constrained ? 0.0 : options.cone_weight > 0 ? options.cone_weight : fill / options.rho;
    f = options.loss_weight > 0 ? options.loss_weight : 1.0;
  }

  U = RowMatrix::Zero(K, d);
  V = U;
  Lam = U;
  coupling = U;
  if (constrained) {
    S = RowMatrix::Zero(n, K);
    Nu = S;
  }
  if (split_loss) {
    q = Eigen::VectorXd::Zero(n);
    mu = q;
  }
  factorize();
  setup_seconds = MPI_Wtime() - start;
}

// The dense path assembles A: F^T F has the block structure [H -H; -H H] for the
// constrained methods (w blocks carry sign -1), H = sum_k f_k f_k^T with
// f_k = (1[x_k^T h_i >= 0] x_k)_i of length P d.
void Solver::Impl::factorize() {
  a = split_loss ? f : 1.0 / rho;
  const std::int64_t size = K * d;
  if (linear_solver.empty()) {  // first call; a refactorization keeps the method chosen here
    linear_solver = rbcd ? "rbcd" : options.linear_solver;
    if (linear_solver == "auto") linear_solver = cheapest_solver();
  }
  if (linear_solver == "rbcd") {
    // No u-matrix: RBCD only needs X^T X's eigenvectors, for every rho (computed once).
    if (gram_eigen.eigenvalues().size() == 0) gram_eigen.compute(XtX);
    return;
  }
  if (linear_solver == "woodbury") {
    // MPI counts are int: the n x n matrix must have fewer than 2^31 entries.
    check_all(comm, n_global <= 46340,
              "relu: -linear_solver woodbury needs n <= 46340 (an n x n factor on every rank); n = " +
                  std::to_string(n_global) + ": use pcg");
    if (!base_ready) {
      Eigen::MatrixXd C0 = g * XtX;
      C0.diagonal().array() += 1.0;
      base_factor.compute(C0);
      check_all(comm, base_factor.info() == Eigen::Success,
                "relu: Cholesky factorization of I + g X^T X failed");
      base_ready = true;
    }
    // z_k = L^{-1} x_k, so z_k^T z_l = x_k^T C0^{-1} x_l. Each rank computes its own rows of
    // (K/P) (Z Z^T) o (Delta Delta^T) against all rows (the pattern overlaps in column
    // chunks, to keep one n_local x n temporary), then all ranks gather the matrix. It is
    // rebuilt rather than kept for refactorizations: n^2 (d + P) flops, less than the
    // Cholesky's n^3 / 3, and half the memory.
    woodbury_factor.resize(0, 0);
    {
      const RowMatrix Z = base_factor.matrixL().solve(X.transpose()).transpose();
      const RowMatrix bits = patterns.bits;
      const RowMatrix Z_all = gather_rows(comm, Z, d);
      const RowMatrix bits_all = gather_rows(comm, bits, P);
      RowMatrix mine = static_cast<double>(K / P) * product(Z, false, Z_all, true);
      const Eigen::Index chunk = 1024;
      for (Eigen::Index c0 = 0; c0 < n_global; c0 += chunk) {
        const Eigen::Index width = std::min<Eigen::Index>(chunk, n_global - c0);
        mine.middleCols(c0, width).array() *= (bits * bits_all.middleRows(c0, width).transpose()).array();
      }
      // Rank r's rows land as columns of the column-major matrix: the transpose, which is
      // the same symmetric matrix.
      woodbury_factor.resize(n_global, n_global);
      gather_rows_into(comm, mine, n_global, woodbury_factor.data());
    }
    woodbury_factor.diagonal().array() += 1.0 / a;
    Eigen::LLT<Eigen::Ref<Eigen::MatrixXd>> in_place(woodbury_factor);
    check_all(comm, in_place.info() == Eigen::Success,
              "relu: Cholesky factorization of the Woodbury n x n matrix failed");
    return;
  }
  if (linear_solver == "dense") {
    const std::int64_t Pd = P * d;
    Eigen::MatrixXd H = Eigen::MatrixXd::Zero(Pd, Pd);
    const Eigen::Index chunk = 256;
    for (Eigen::Index k0 = 0; k0 < X.rows(); k0 += chunk) {
      const Eigen::Index rows = std::min<Eigen::Index>(chunk, X.rows() - k0);
      Eigen::MatrixXd f(rows, Pd);
      for (std::int64_t i = 0; i < P; ++i)
        f.middleCols(i * d, d) =
            patterns.bits.col(i).segment(k0, rows).asDiagonal() * X.middleRows(k0, rows);
      H.selfadjointView<Eigen::Lower>().rankUpdate(f.transpose());
    }
    H.triangularView<Eigen::StrictlyUpper>() = H.transpose();
    sum_replicated(comm, H.data(), static_cast<int>(H.size()));
    Eigen::MatrixXd A = Eigen::MatrixXd::Identity(size, size);
    for (std::int64_t bi = 0; bi < K / P; ++bi)
      for (std::int64_t bj = 0; bj < K / P; ++bj)
        A.block(bi * Pd, bj * Pd, Pd, Pd) += (bi == bj ? a : -a) * H;
    if (g != 0.0)
      for (std::int64_t j = 0; j < K; ++j) A.block(j * d, j * d, d, d) += g * XtX;
    dense_factor.compute(A);
    check_all(comm, dense_factor.info() == Eigen::Success,
              "relu: Cholesky factorization of the u-system failed");
  } else {
    // Block preconditioner I_K kron C with C = I + (g + a theta) X^T X, where theta is the
    // mean fraction of rows a pattern activates: the diagonal block I + g X^T X +
    // a X^T D_i X with X^T D_i X replaced by its average share of X^T X.
    double ones[2] = {patterns.bits.sum(), static_cast<double>(patterns.bits.size())};
    sum_replicated(comm, ones, 2);
    const double theta = ones[1] > 0 ? ones[0] / ones[1] : 0.5;
    Eigen::MatrixXd C = (g + a * theta) * XtX;
    C.diagonal().array() += 1.0;
    const Eigen::LLT<Eigen::MatrixXd> block_factor(C);
    check_all(comm, block_factor.info() == Eigen::Success,
              "relu: Cholesky factorization of the PCG preconditioner failed");
    block_inverse = block_factor.solve(Eigen::MatrixXd::Identity(d, d));
  }
}

// The automatic choice (docs/relu.md, "The linear system"), with N = K d the size of A,
// n the global row count, m the PCG steps per solve:
//   dense:    setup n (P d)^2 (F^T F) + N^3 / 3 (Cholesky); 2 N^2 per solve; 8 N^2 bytes.
//   woodbury: setup n^2 (d + P) (F B^{-1} F^T) + n^3 / 3; 2 n^2 + 4 n d P + 4 K d^2 per solve;
//             8 n^2 bytes on every rank (factored in place; 8 n^2 / ranks more while built).
//   pcg:      setup d^3 / 3; m (4 n d P + 2 K d^2) per solve (plus m reductions); no n^2 or
//             N^2 memory.
// A direct method is eligible when its factored size (N, resp. n) is at most -dense_limit
// (3000: 72 MB per matrix); among the eligible ones the smaller setup plus 100 solves wins
// (runs take hundreds to thousands of iterations); with none eligible, PCG.
std::string Solver::Impl::cheapest_solver() const {
  const double N = static_cast<double>(K * d), n = static_cast<double>(n_global);
  const double dd = static_cast<double>(d), PP = static_cast<double>(P), KK = static_cast<double>(K);
  const double limit = static_cast<double>(options.dense_limit);
  const double solves = 100.0;
  const double dense = n * (PP * dd) * (PP * dd) + N * N * N / 3.0 + solves * 2.0 * N * N;
  const double woodbury = n * n * (dd + PP) + n * n * n / 3.0 + solves * (2.0 * n * n + 4.0 * n * dd * PP + 4.0 * KK * dd * dd);
  const bool dense_ok = N <= limit, woodbury_ok = n <= limit;
  if (dense_ok && woodbury_ok) return dense <= woodbury ? "dense" : "woodbury";
  if (dense_ok) return "dense";
  if (woodbury_ok) return "woodbury";
  return "pcg";
}

RowMatrix Solver::Impl::F_transpose_rows(const Eigen::VectorXd& r) const {
  return (X.transpose() * SD.cwiseProduct(r.replicate(1, K))).transpose();
}

// F^T F p through the P patterns rather than the K blocks: the w blocks repeat the v blocks'
// patterns with sign -1, so F p = sum_i D_i X (p_v,i - p_w,i) and F^T r = [T; -T] with
// T_i = X^T D_i r. Half the work and half the reduction of the blockwise form.
RowMatrix Solver::Impl::apply_A(const RowMatrix& p, bool single) {
  const Eigen::MatrixXd& bits = patterns.bits;
  const RowMatrix difference = constrained ? RowMatrix(p.topRows(P) - p.bottomRows(P)) : p;
  RowMatrix T;  // rows X^T D_i F p
  if (single) {
    if (X_single.rows() != X.rows()) X_single = X.cast<float>();
    const detail::RowMatrixF difference_single = difference.cast<float>();
    const Eigen::VectorXd Fp =
        bits.cwiseProduct(product(X_single, false, difference_single, true).cast<double>()).rowwise().sum();
    const detail::RowMatrixF weighted = (bits.array().colwise() * Fp.array()).cast<float>();
    T = product(weighted, true, X_single, false).cast<double>();
  } else {
    const Eigen::VectorXd Fp = bits.cwiseProduct(product(X, false, difference, true)).rowwise().sum();
    const Eigen::MatrixXd weighted = bits.array().colwise() * Fp.array();
    T = product(weighted, true, X, false);
  }
  sum_replicated(comm, T.data(), static_cast<int>(T.size()));
  RowMatrix FtFp(K, d);
  FtFp.topRows(P) = T;
  if (constrained) FtFp.bottomRows(P) = -T;
  RowMatrix result = p + a * FtFp;
  if (g != 0.0) result += g * product(p, false, XtX, false);
  return result;
}

RowMatrix Solver::Impl::precondition(const RowMatrix& r) const {
  return product(r, false, block_inverse, false);  // C symmetric: rows r_j C^{-1}
}

// A^{-1} b = B^{-1} b - B^{-1} F^T (I / a + F B^{-1} F^T)^{-1} F B^{-1} b  (Woodbury with
// A = B + a F^T F). F B^{-1} b is row-local; the n-vector is gathered on every rank, solved
// with the replicated n x n factor, and F^T of the local slice is summed: one gather of n
// numbers and one reduction of P d numbers per solve.
void Solver::Impl::solve_u_woodbury(const RowMatrix& b) {
  const Eigen::MatrixXd& bits = patterns.bits;
  const RowMatrix Y0 = base_factor.solve(b.transpose()).transpose();  // B^{-1} b
  const RowMatrix difference = constrained ? RowMatrix(Y0.topRows(P) - Y0.bottomRows(P)) : Y0;
  const RowMatrix r = bits.cwiseProduct(X * difference.transpose()).rowwise().sum();
  const RowMatrix r_all = gather_rows(comm, r, 1);
  Eigen::VectorXd t_all = Eigen::Map<const Eigen::VectorXd>(r_all.data(), n_global);
  woodbury_factor.triangularView<Eigen::Lower>().solveInPlace(t_all);
  woodbury_factor.triangularView<Eigen::Lower>().adjoint().solveInPlace(t_all);
  const Eigen::VectorXd t = t_all.segment(first_row, X.rows());
  RowMatrix T = (X.transpose() * bits.cwiseProduct(t.replicate(1, P))).transpose();  // P x d
  sum_replicated(comm, T.data(), static_cast<int>(T.size()));
  const RowMatrix correction = base_factor.solve(T.transpose()).transpose();  // C0^{-1} T_i
  U = Y0;
  U.topRows(P) -= correction;
  if (constrained) U.bottomRows(P) += correction;  // the w blocks' F columns carry sign -1
}

RowMatrix Solver::Impl::gram_solve(double s, double t, const RowMatrix& r) const {
  const Eigen::MatrixXd& Q = gram_eigen.eigenvectors();
  const Eigen::VectorXd scale =
      (s + t * gram_eigen.eigenvalues().cwiseMax(0.0).array()).inverse().matrix();
  return ((r * Q) * scale.asDiagonal()) * Q.transpose();
}

// ADMM-RBCD (brief 2.4): the u-update keeps the loss, minimizing (scaled by 1/rho)
//   (1/rho) L(F u) + 1/2 ||u - c||^2-like terms = (1/rho) L(F u) + 1/2 u^T (I_K kron C0) u - <u, c>,
// C0 = I + g X^T X, c = v - lambda + g G^T(s - nu), inexactly by randomized block coordinate
// descent over the patterns. With a_i = u_i - z_i and b_i = u_i + z_i (v and w blocks of
// pattern i) the objective separates: b_i enters only the quadratic, b_i = C0^{-1}(c_u + c_z)
// exactly; a_i enters the loss through yhat = sum_i D_i X a_i. Each block step minimizes
// the majorizer of the loss L(yhat + D_i X delta) <= L + t^T delta + (Lc/2) delta^T X^T X delta
// (t = X^T (d_i o L'(yhat)), Lc >= L'': 1 for bce), i.e. solves
//   (C0 + (kappa Lc / rho) X^T X) delta = c_a - C0 a_i - (kappa / rho) t,  kappa = K / P,
// with X^T X's eigenvectors (any rho), so every step decreases the u-objective with no line
// search (the brief's Armijo backtracking would cost a reduction per trial). Per block step:
// one reduction of d numbers (t); yhat is updated row-locally. The sweep order is a random
// permutation from Random(seed, "relu.rbcd", sweep counter): the same on every rank count.
double Solver::Impl::rbcd_u(const RowMatrix& c, std::int64_t iteration) {
  const double curvature = 1.0;  // bce: d^2/dp^2 [log(1 + e^{2p}) - 2 y p] = 4 s (1 - s) <= 1
  const double kappa = static_cast<double>(K / P);
  const Eigen::MatrixXd& bits = patterns.bits;
  const RowMatrix U_old = U;
  RowMatrix A_part = constrained ? RowMatrix(U.topRows(P) - U.bottomRows(P)) : U;
  const RowMatrix c_a = constrained ? RowMatrix(c.topRows(P) - c.bottomRows(P)) : c;
  Eigen::VectorXd yhat = bits.cwiseProduct(X * A_part.transpose()).rowwise().sum();
  Eigen::VectorXd weights(X.rows());
  std::vector<std::int64_t> order(static_cast<std::size_t>(P));
  for (std::int64_t sweep = 0; sweep < options.rbcd_sweeps; ++sweep) {
    const auto counter = static_cast<std::uint64_t>((iteration - 1) * options.rbcd_sweeps + sweep);
    Random draw(options.seed, "relu.rbcd", counter);
    for (std::int64_t i = 0; i < P; ++i) order[static_cast<std::size_t>(i)] = i;
    for (std::int64_t i = P - 1; i > 0; --i)  // Fisher-Yates
      std::swap(order[static_cast<std::size_t>(i)],
                order[static_cast<std::size_t>(draw.below(static_cast<std::uint64_t>(i + 1)))]);
    for (const std::int64_t i : order) {
      for (Eigen::Index k = 0; k < X.rows(); ++k)
        weights(k) = bits(k, i) != 0.0 ? loss->derivative(yhat(k), y(k)) : 0.0;
      Eigen::VectorXd t = X.transpose() * weights;
      sum_replicated(comm, t.data(), static_cast<int>(t.size()));
      const RowMatrix a_i = A_part.row(i);
      RowMatrix rhs = c_a.row(i) - a_i - g * (a_i * XtX) - (kappa / rho) * t.transpose();
      const RowMatrix delta = gram_solve(1.0, g + kappa * curvature / rho, rhs);
      A_part.row(i) += delta;
      yhat += bits.col(i).cwiseProduct(X * delta.transpose());
    }
  }
  if (constrained) {
    const RowMatrix sums = gram_solve(1.0, g, c.topRows(P) + c.bottomRows(P));
    U.topRows(P) = 0.5 * (sums + A_part);
    U.bottomRows(P) = 0.5 * (sums - A_part);
  } else {
    U = A_part;
  }
  return (U - U_old).norm();
}

void Solver::Impl::solve_u(const RowMatrix& b) {
  if (linear_solver == "woodbury") {
    solve_u_woodbury(b);
    return;
  }
  if (linear_solver == "dense") {
    Eigen::Map<const Eigen::VectorXd> rhs(b.data(), b.size());
    const Eigen::VectorXd x = dense_factor.solve(rhs);
    U = Eigen::Map<const RowMatrix>(x.data(), K, d);
    return;
  }
  // PCG warm-started from the previous u; replicated vectors, so the dot products are
  // local and identical on every rank; one reduction per product with A.
  const double b_norm = b.norm();
  if (b_norm == 0.0) {
    U.setZero();
    return;
  }
  // Inexact ADMM: solve to a relative residual below the current ADMM residuals (no
  // tighter than -pcg_rtol); the warm start makes late solves short. -pcg_single: the
  // products with X in single precision (relative error ~1e-7 times the condition of the
  // sums) while the requested relative residual is at least 1e-4; tighter solves use double.
  const double relative_target = std::max(options.pcg_rtol, options.pcg_inexact * last_residual);
  const bool single = options.pcg_single && relative_target >= 1e-4;
  RowMatrix r = b - apply_A(U, single);
  RowMatrix z = precondition(r);
  RowMatrix p = z;
  double rz = (r.array() * z.array()).sum();
  const double target = relative_target * b_norm;
  for (std::int64_t it = 0; it < options.pcg_max_it; ++it) {
    if (r.norm() <= target) break;
    const RowMatrix Ap = apply_A(p, single);
    const double alpha = rz / (p.array() * Ap.array()).sum();
    U += alpha * p;
    r -= alpha * Ap;
    z = precondition(r);
    const double rz_next = (r.array() * z.array()).sum();
    p = z + (rz_next / rz) * p;
    rz = rz_next;
    ++pcg_iterations;
  }
}

Eigen::VectorXd Solver::Impl::network_output(const RowMatrix& XV, const RowMatrix& on) const {
  if (!constrained) return on.cwiseProduct(XV).rowwise().sum();  // the gated model
  // sum_i (x^T v_i)_+ - (x^T w_i)_+ : the recovered ReLU network.
  const RowMatrix positive = XV.cwiseMax(0.0);
  return positive.leftCols(P).rowwise().sum() - positive.rightCols(P).rowwise().sum();
}

void Solver::Impl::recompute_coupling() {
  RowMatrix R = RowMatrix::Zero(X.rows(), K);
  if (constrained) R += g * E.cwiseProduct(S - Nu);
  if (split_loss) R += f * SD.cwiseProduct((q - mu).replicate(1, K));
  coupling = product(R, true, X, false);
  sum_replicated(comm, coupling.data(), static_cast<int>(coupling.size()));
}

StepReport Solver::Impl::step(std::int64_t iteration) {
  const double gamma = options.gamma, beta = options.beta;
  // 1. u-update.
  RowMatrix b = V - Lam + coupling;
  double u_change = 0.0;  // RBCD's inexact u-update: its change also has to vanish
  if (rbcd) {
    u_change = rbcd_u(b, iteration);
  } else {
    if (!split_loss) b += a * Fty;
    solve_u(b);
  }

  const RowMatrix XU = product(X, false, U, true);
  const Eigen::VectorXd Fu = fv(XU);
  RowMatrix Gu;
  if (constrained) Gu = E.cwiseProduct(XU);

  // 2. v-update: group soft-threshold of u + lambda with threshold beta / rho.
  const RowMatrix V_old = V;
  const RowMatrix shifted = U + Lam;
  detail::group_soft_threshold(shifted, beta, rho, V);
  Lam += gamma * (U - V);

  // 3. slack updates (row-local) and their duals.
  double local[10] = {0};  // see the unpacking below
  RowMatrix S_old;
  if (constrained) {
    S_old = S;
    S = (Gu + Nu).cwiseMax(0.0);
    Nu += gamma * (Gu - S);
    local[0] += (Gu - S).squaredNorm();
    local[1] += Gu.squaredNorm();
    local[2] += S.squaredNorm();
  }
  Eigen::VectorXd q_old;
  if (split_loss) {
    q_old = q;
    for (Eigen::Index k = 0; k < q.size(); ++k) q(k) = loss->prox(Fu(k) + mu(k), y(k), rho * f);
    mu += gamma * (Fu - q);
    local[0] += (Fu - q).squaredNorm();
    local[1] += Fu.squaredNorm();
    local[2] += q.squaredNorm();
  }

  // 4. Evaluation at the group-sparse iterate v.
  const RowMatrix XV = product(X, false, V, true);
  const Eigen::VectorXd prediction = fv(XV);
  for (Eigen::Index k = 0; k < y.size(); ++k) local[3] += loss->value(prediction(k), y(k));
  const Eigen::VectorXd net = network_output(XV, patterns.bits);
  for (Eigen::Index k = 0; k < y.size(); ++k) local[4] += ((net(k) > 0) == (y(k) > 0)) ? 1.0 : 0.0;
  if (constrained) local[5] = (-E.cwiseProduct(XV)).cwiseMax(0.0).squaredNorm();
  if (has_test) {
    const Eigen::VectorXd test_net = network_output(product(X_test, false, V, true), test_on);
    for (Eigen::Index k = 0; k < y_test.size(); ++k)
      local[6] += ((test_net(k) > 0) == (y_test(k) > 0)) ? 1.0 : 0.0;
    local[7] = static_cast<double>(y_test.size());
  }
  if (validate) {
    const Eigen::VectorXd val_net = network_output(product(X_val, false, V, true), val_on);
    for (Eigen::Index k = 0; k < y_val.size(); ++k)
      local[8] += ((val_net(k) > 0) == (y_val(k) > 0)) ? 1.0 : 0.0;
    local[9] = static_cast<double>(y_val.size());
  }

  // 5. Next coupling term and the dual residual's G^T(s - s_old) + F^T(q - q_old), with the
  // scalars above: one reduction.
  RowMatrix R(X.rows(), 2 * K);
  R.setZero();
  if (constrained) {
    R.leftCols(K) += g * E.cwiseProduct(S - Nu);
    R.rightCols(K) += g * E.cwiseProduct(S - S_old);
  }
  if (split_loss) {
    R.leftCols(K) += f * SD.cwiseProduct((q - mu).replicate(1, K));
    R.rightCols(K) += f * SD.cwiseProduct((q - q_old).replicate(1, K));
  }
  const Eigen::Index block = K * d;
  std::vector<double> buffer(2 * block + 10);
  Eigen::Map<RowMatrix>(buffer.data(), 2 * K, d) = product(R, true, X, false);
  std::copy(local, local + 10, buffer.begin() + 2 * block);
  sum_replicated(comm, buffer.data(), static_cast<int>(buffer.size()));
  coupling = Eigen::Map<RowMatrix>(buffer.data(), K, d);
  const RowMatrix slack_change = Eigen::Map<RowMatrix>(buffer.data() + block, K, d);
  const double* global = buffer.data() + 2 * block;

  // Residuals (docs/relu.md): primal u - v and G u - s (and F u - q), dual
  // rho[(v - v_old) + G^T(s - s_old) + F^T(q - q_old)] (the u-stationarity residual) and the
  // v-stationarity residual of beta ||v_j|| against rho lambda_j.
  const double r_consensus = (U - V).norm() / std::max(1.0, std::max(U.norm(), V.norm()));
  // ADMM-RBCD: the u-update is inexact, so u-stationarity needs u to settle too.
  const double r_inexact = u_change / std::max(1.0, U.norm());
  const double r_slack =
      std::sqrt(global[0]) / std::max(1.0, std::sqrt(std::max(global[1], global[2])));
  const double r_dual = rho * ((V - V_old) + slack_change).norm() / Fty_norm;
  const double r_group = detail::group_stationarity(V, Lam, beta, rho) / Fty_norm;

  last_objective = global[3] + beta * group_norm_sum(V);
  last_cone_violation = std::sqrt(global[5]);

  StepReport report;
  report.objective = last_objective;
  report.fields = {std::max(r_consensus, r_slack), std::max({r_dual, r_group, r_inexact}),
                   global[4] / static_cast<double>(n_global)};
  if (has_test) report.fields.push_back(global[6] / global[7]);
  if (validate) report.fields.push_back(global[8] / global[9]);
  report.fields.push_back(static_cast<double>(pcg_iterations));
  // Residual balancing (Boyd et al. 2011, 3.4.1): a primal residual ten times the dual one
  // doubles rho, and conversely. Scaled duals are divided by the
  // factor; A is refactored for the squared loss (only d x d for PCG); the split form's A
// does not depend on rho.
  const double r_primal = std::max(r_consensus, r_slack);
  const double r_dual_all = std::max({r_dual, r_group, r_inexact});
  last_residual = std::min(r_primal, r_dual_all);
  // Every iteration during the first 20 (to find the scale of rho fast), then every 10.
  const bool balance_now = iteration <= 20 || iteration % 10 == 0;
  if (options.adaptive_rho && balance_now && rho_changes < options.max_rho_changes) {
    const double factor = detail::balancing_factor(r_primal, r_dual_all);
    if (factor != 1.0) {
      rho *= factor;
      ++rho_changes;
      Lam /= factor;
      if (constrained) Nu /= factor;
      if (split_loss) mu /= factor;
      recompute_coupling();
      if (!split_loss) factorize();  // the split form's A does not involve rho
    }
  }

  // Early stopping: an empty network (every group still zero, as in the first iterations)
  // is no candidate, and patience counts from the first non-empty one.
  bool stop_early = false;
  if (validate && V.cwiseAbs().maxCoeff() > 0) {
    const double val_accuracy = global[8] / global[9];
    if (val_accuracy > best_val_accuracy) {
      best_val_accuracy = val_accuracy;
      best_iteration = iteration;
      best_V = V;
    } else if (iteration - best_iteration >= options.validation_patience) {
      stop_early = true;
    }
  }

  const double tol = options.tol;
  if (stop_early) {
    report.status = Status::Converged;
    report.message = "validation accuracy did not improve for " + std::to_string(options.validation_patience) +
                     " iterations; kept iteration " + std::to_string(best_iteration) + " (validation accuracy " +
                     std::to_string(best_val_accuracy) + ")";
  } else if (r_consensus <= tol && r_slack <= tol && r_dual <= tol && r_group <= tol && r_inexact <= tol) {
    report.status = Status::Converged;
    report.message = "all four ADMM residuals below -tol";
  } else if (!std::isfinite(last_objective)) {
    report.status = Status::Diverged;
    report.message = "objective is not finite";
  }
  return report;
}

double Solver::Impl::objective_at_v() {
  const Eigen::VectorXd prediction = fv(X * V.transpose());
  double value = 0.0;
  for (Eigen::Index k = 0; k < y.size(); ++k) value += loss->value(prediction(k), y(k));
  sum_replicated(comm, &value, 1);
  return value + options.beta * group_norm_sum(V);
}

ConvexModel Solver::Impl::model() const {
  // With early stopping the model is the best iterate on the validation rows.
  const RowMatrix& chosen = validate && best_iteration > 0 ? best_V : V;
  ConvexModel m;
  m.gates = patterns.gates;
  m.V = chosen.topRows(P);
  m.W = constrained ? RowMatrix(chosen.bottomRows(P)) : RowMatrix::Zero(P, d);
  m.gated = !constrained;
  m.bias = options.bias;
  return m;
}

Solver::Solver(MPI_Comm comm, const Options& options, const RowMatrix& X_local,
               const Eigen::VectorXd& y_local, const RowMatrix& X_test,
               const Eigen::VectorXd& y_test, std::shared_ptr<Loss> loss)
    : impl_(std::make_unique<Impl>(comm, options, std::move(loss))) {
  impl_->setup(X_local, y_local, X_test, y_test);
}

Solver::~Solver() = default;

std::string Solver::method() const { return impl_->options.method; }

std::vector<std::string> Solver::history_fields() const {
  std::vector<std::string> fields{"primal_residual", "dual_residual", "train_accuracy"};
  if (impl_->has_test) fields.push_back("test_accuracy");
  if (impl_->validate) fields.push_back("val_accuracy");  // network accuracy on the held-out rows
  fields.push_back("pcg_iterations");  // PCG steps so far (0 for the other u-solvers)
  return fields;
}

// One iteration of the shared loop runs options.record_every ADMM iterations (each checks
// the stopping test), so that thousands of cheap iterations do not each cost a history row.
StepReport Solver::step(std::int64_t) {
  return detail::repeat_steps(impl_->options.record_every, impl_->admm_iterations,
                              [this](std::int64_t iteration) { return impl_->step(iteration); });
}

void Solver::save_state(h5::File& file, const std::string& group) const {
  const Impl& s = *impl_;
  detail::write_consensus_state(file, group, s.U, s.V, s.Lam, s.patterns);
  const auto K = static_cast<std::uint64_t>(s.K);
  const auto rows = static_cast<std::uint64_t>(s.X.rows());
  if (s.constrained) {
    h5::write_rows(file, group + "/s", s.S.data(), rows, K);
    h5::write_rows(file, group + "/nu", s.Nu.data(), rows, K);
  }
  if (s.split_loss) {
    h5::write_rows(file, group + "/q", s.q.data(), rows, 0);
    h5::write_rows(file, group + "/mu", s.mu.data(), rows, 0);
  }
  h5::set_attr(file, group, "pcg_iterations", s.pcg_iterations);
  h5::set_attr(file, group, "rho", s.rho);
  h5::set_attr(file, group, "rho_changes", s.rho_changes);
  h5::set_attr(file, group, "admm_iterations", s.admm_iterations);
  if (s.validate) {
    h5::set_attr(file, group, "best_iteration", s.best_iteration);
    h5::set_attr(file, group, "best_val_accuracy", s.best_val_accuracy);
    if (s.best_iteration > 0) h5::write(file, group + "/best_v", flat(s.best_V), {K, static_cast<std::uint64_t>(s.d)});
  }
}

void Solver::load_state(const h5::File& file, const std::string& group) {
  Impl& s = *impl_;
  collective(s.comm, [&] {
    detail::read_consensus_state(file, group, s.patterns, s.K, s.d, s.U, s.V, s.Lam);
    s.pcg_iterations = h5::attr_int(file, group, "pcg_iterations");
    s.rho_changes = h5::attr_int(file, group, "rho_changes");
    s.admm_iterations = h5::attr_int(file, group, "admm_iterations");
    if (s.validate) {
      s.best_iteration = h5::attr_int(file, group, "best_iteration");
      s.best_val_accuracy = h5::attr_double(file, group, "best_val_accuracy");
      if (s.best_iteration > 0) s.best_V = detail::read_replicated(file, group + "/best_v", s.K, s.d);
    }
  });
  const double saved_rho = h5::attr_double(file, group, "rho");
  if (saved_rho != s.rho) {
    s.rho = saved_rho;
    s.factorize();
  }
  const Eigen::Index rows = s.X.rows();
  if (s.constrained) {
    s.S = detail::read_local_rows(file, group + "/s", s.first_row, rows, s.K);
    s.Nu = detail::read_local_rows(file, group + "/nu", s.first_row, rows, s.K);
  }
  if (s.split_loss) {
    s.q = detail::read_local_rows(file, group + "/q", s.first_row, rows, 1);
    s.mu = detail::read_local_rows(file, group + "/mu", s.first_row, rows, 1);
  }
  s.recompute_coupling();
}

void Solver::write_solution(h5::File& file) const {
  const Impl& s = *impl_;
  detail::write_solution(file, s.model(), s.patterns, s.options,
                         {s.loss->name(), s.options.method, s.linear_solver, s.rho, s.last_objective,
                          s.admm_iterations});
  h5::set_attr(file, "/solution", "cone_violation", s.last_cone_violation);
  if (s.validate) {
    h5::set_attr(file, "/solution", "validation_iteration", s.best_iteration);
    h5::set_attr(file, "/solution", "val_accuracy", s.best_val_accuracy);
  }
}

ConvexModel Solver::model() const { return impl_->model(); }
const Patterns& Solver::patterns() const { return impl_->patterns; }
Eigen::VectorXd Solver::train_predictions() const { return impl_->fv(impl_->X * impl_->V.transpose()); }
double Solver::objective() const { return impl_->objective_at_v(); }

RowMatrix Solver::solve_u_system(const RowMatrix& rhs) {
  Impl& s = *impl_;
  check_all(s.comm, s.linear_solver != "rbcd", "relu: ADMM-RBCD has no u-system to solve");
  check_all(s.comm, rhs.rows() == s.K && rhs.cols() == s.d, "relu: solve_u_system: rhs must be K x d");
  const RowMatrix saved_U = s.U;
  const double saved_residual = s.last_residual;
  s.U.setZero();
  s.last_residual = 0.0;  // PCG to -pcg_rtol
  s.solve_u(rhs);
  RowMatrix solution = s.U;
  s.U = saved_U;
  s.last_residual = saved_residual;
  return solution;
}

Summary Solver::summary() const {
  Summary out;
  out.patterns_requested = impl_->patterns.requested;
  out.patterns = impl_->P;
  out.linear_solver = impl_->linear_solver;
  out.pcg_iterations = impl_->pcg_iterations;
  out.setup_seconds = impl_->setup_seconds;
  out.objective = impl_->last_objective;
  out.cone_violation = impl_->last_cone_violation;
  out.admm_iterations = impl_->admm_iterations;
  return out;
}

Network read_network(const h5::File& file) {
  Network net;
  net.bias = h5::attr_int(file, "/solution", "bias") != 0;
  net.gated = h5::attr_string(file, "/solution", "model") == "gated_relu";
  if (h5::attr_int(file, "/solution", "neurons") == 0) {
    const std::int64_t d = h5::attr_int(file, "/solution", "features") + (net.bias ? 1 : 0);
    net.W1.resize(0, d);
    net.w2.resize(0);
    net.gate_of_neuron.resize(0, d);
    return net;
  }
  std::vector<std::uint64_t> dims;
  const auto W1 = h5::read_doubles(file, "/solution/W1", &dims);
  if (dims.size() != 2) throw Error(file.path() + ": /solution/W1 is not a matrix");
  net.W1 = Eigen::Map<const RowMatrix>(W1.data(), static_cast<Eigen::Index>(dims[0]),
                                       static_cast<Eigen::Index>(dims[1]));
  const auto w2 = h5::read_doubles(file, "/solution/w2", &dims);
  if (dims.size() != 1 || static_cast<Eigen::Index>(dims[0]) != net.W1.rows())
    throw Error(file.path() + ": /solution/w2 does not match /solution/W1");
  net.w2 = Eigen::Map<const Eigen::VectorXd>(w2.data(), net.W1.rows());
  if (net.gated) {
    const auto gates = h5::read_doubles(file, "/solution/neuron_gates", &dims);
    net.gate_of_neuron = Eigen::Map<const RowMatrix>(gates.data(), net.W1.rows(), net.W1.cols());
  }
  return net;
}

}  // namespace parasol::relu
