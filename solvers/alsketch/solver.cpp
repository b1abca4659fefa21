// AdaSketch-Newton: one outer iteration per step(). The outer loop works on the problem's
// distributed PETSc vectors and matrices; the quantities the accuracy condition needs
// (lambda_min(G G^T), lambda_min of the reduced Hessian, norms) and the sketching itself work
// on a copy of the KKT matrix gathered to every rank in natural order, for problems small
// enough (-alsketch_dense_limit); above it Lanczos estimates and the sketches act on the
// distributed KKT matrix (DistributedSketchSolver); `ksp` solves it with PETSc.
#include <parasol/alsketch.hpp>
#include <parasol/error.hpp>
#include <parasol/partition.hpp>
#include <parasol/h5.hpp>
#include <parasol/random.hpp>

#include <petscksp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <functional>
#include <numeric>
#include <tuple>
#include <sstream>

#include "schur_kkt.hpp"
#include "sketch.hpp"

namespace parasol::alsketch {
namespace {

// A distributed matrix copied to every rank, rows and columns in natural order.
Eigen::MatrixXd gather_matrix(Mat A, const std::vector<PetscInt>& row_natural_local,
                              const std::vector<PetscInt>& col_natural_all, PetscInt rows,
                              PetscInt cols) {
  MPI_Comm comm;
  PARASOL_PETSC(PetscObjectGetComm(reinterpret_cast<PetscObject>(A), &comm));
  PetscInt lo, hi;
  PARASOL_PETSC(MatGetOwnershipRange(A, &lo, &hi));
  std::vector<double> triplets;  // (row, col, value) as doubles: exact for indices < 2^53
  for (PetscInt i = lo; i < hi; ++i) {
    PetscInt ncols;
    const PetscInt* idx;
    const PetscScalar* val;
    PARASOL_PETSC(MatGetRow(A, i, &ncols, &idx, &val));
    for (PetscInt k = 0; k < ncols; ++k) {
      triplets.push_back(static_cast<double>(row_natural_local[i - lo]));
      triplets.push_back(static_cast<double>(col_natural_all[idx[k]]));
      triplets.push_back(val[k]);
    }
    PARASOL_PETSC(MatRestoreRow(A, i, &ncols, &idx, &val));
  }
  const std::vector<double> all = allgather_pieces(comm, triplets);
  Eigen::MatrixXd out = Eigen::MatrixXd::Zero(rows, cols);
  for (std::size_t k = 0; k + 2 < all.size(); k += 3)
    out(static_cast<Eigen::Index>(all[k]), static_cast<Eigen::Index>(all[k + 1])) += all[k + 2];
  return out;
}

void scatter_natural(const Eigen::VectorXd& full, Eigen::Index offset, Vec v,
                     const std::vector<PetscInt>& natural_local) {
  PetscScalar* a;
  PARASOL_PETSC(VecGetArray(v, &a));
  for (std::size_t k = 0; k < natural_local.size(); ++k) a[k] = full[offset + natural_local[k]];
  PARASOL_PETSC(VecRestoreArray(v, &a));
}

double norm2(Vec v) {
  PetscReal r;
  PARASOL_PETSC(VecNorm(v, NORM_2, &r));
  return r;
}
double dot(Vec a, Vec b) {
  PetscScalar r;
  PARASOL_PETSC(VecDot(a, b, &r));
  return r;
}
bool finite(double v) { return std::isfinite(v); }

std::string format(double v) {
  std::ostringstream s;
  s.precision(6);
  s << v;
  return s.str();
}

// Shell matrix wrapping Problem::hessian_product at a fixed (x, lambda).
struct HessianShell {
  Problem* problem;
  Vec x, lambda;
};
PetscErrorCode hessian_shell_mult(Mat A, Vec v, Vec Hv) {
  HessianShell* ctx;
  PetscCall(MatShellGetContext(A, &ctx));
  PetscCallCXX(ctx->problem->hessian_product(ctx->x, ctx->lambda, v, Hv));
  return 0;
}

detail::SketchConfig sketch_config(const Options& o, double mu = 0, double nu = 0) {
  detail::SketchConfig config;
  config.kind = o.sketch;
  config.seed = o.seed;
  config.rownorm_weights = o.kaczmarz_weights == "rownorm";
  config.block_size = o.block_size;
  config.mu = mu;
  config.nu = nu;
  return config;
}

// Parameters (mu, nu) of the accelerated sketch-and-project on the dense K (sketch.hpp), Z the
// projection of one step, mu = lambda_min(E[Z]), E[Z E[Z]^-1 Z] <= nu E[Z]:
//  - kaczmarz, uniform rows (Z_i = k_i k_i^T/|k_i|^2): E[Z] = K D^-2 K / N, D = diag |k_i|;
//    mu = sigma_min(D^-1 K)^2 / N, nu = N (every leverage score of a nonsingular D^-1 K is 1).
//  - kaczmarz, row-norm weights: E[Z] = K^2/|K|_F^2, mu = sigma_min^2/|K|_F^2,
//    nu = |K|_F^2 / min |k_i|^2.
//  - gaussian (Z = u u^T/|u|^2, u = K S): E[Z] >= K^2/|K|_F^2 approximately (the denominator
//    |K S|^2 barely depends on the component of S along a small singular direction), so
//    mu = sigma_min^2/|K|_F^2 and nu = N as for normalized rows; checked on the HS problems.
// block: not accelerated (0, 0). sigma_min = 0 (singular K): not accelerated.
std::pair<double, double> acceleration_parameters(const Eigen::MatrixXd& K, double sigma_min,
                                                  const Options& o) {
  const double N = static_cast<double>(K.rows());
  const Eigen::VectorXd row_norms2 = K.rowwise().squaredNorm();
  const double frobenius2 = row_norms2.sum();
  if (!(sigma_min > 0) || !(row_norms2.minCoeff() > 0)) return {0.0, 0.0};
  if (o.sketch == "kaczmarz" && o.kaczmarz_weights == "uniform") {
    const Eigen::MatrixXd A = row_norms2.cwiseSqrt().cwiseInverse().asDiagonal() * K;
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(A * A.transpose(), Eigen::EigenvaluesOnly);
    return {std::max(0.0, eig.eigenvalues().minCoeff()) / N, N};
  }
  if (o.sketch == "kaczmarz")
    return {sigma_min * sigma_min / frobenius2, frobenius2 / row_norms2.minCoeff()};
  if (o.sketch == "gaussian") return {sigma_min * sigma_min / frobenius2, N};
  return {0.0, 0.0};
}

// Writes a distributed vector as a 1-D dataset in natural order: scattered to contiguous
// blocks of the natural order, each rank writing its block (parallel HDF5). Memory: one more
// distributed vector, not a copy of the whole vector on every rank (gather_natural: ~3.5
// copies per rank, 30 MB over 2 ranks on poisson N = 512).
void write_natural(h5::File& file, const std::string& path, Vec v,
                   const std::vector<PetscInt>& natural_local) {
  MPI_Comm comm;
  PARASOL_PETSC(PetscObjectGetComm(reinterpret_cast<PetscObject>(v), &comm));
  PetscInt n_global, lo, hi;
  PARASOL_PETSC(VecGetSize(v, &n_global));
  PARASOL_PETSC(VecGetOwnershipRange(v, &lo, &hi));
  Vec natural;
  PARASOL_PETSC(VecCreateMPI(comm, PETSC_DECIDE, n_global, &natural));
  IS from, to;
  PARASOL_PETSC(ISCreateStride(comm, hi - lo, lo, 1, &from));
  PARASOL_PETSC(ISCreateGeneral(comm, hi - lo, natural_local.data(), PETSC_USE_POINTER, &to));
  VecScatter scatter;
  PARASOL_PETSC(VecScatterCreate(v, from, natural, to, &scatter));
  PARASOL_PETSC(VecScatterBegin(scatter, v, natural, INSERT_VALUES, SCATTER_FORWARD));
  PARASOL_PETSC(VecScatterEnd(scatter, v, natural, INSERT_VALUES, SCATTER_FORWARD));
  VecScatterDestroy(&scatter);
  ISDestroy(&from);
  ISDestroy(&to);
  PetscInt local;
  PARASOL_PETSC(VecGetLocalSize(natural, &local));
  const PetscScalar* a;
  PARASOL_PETSC(VecGetArrayRead(natural, &a));
  h5::write_rows(file, path, a, static_cast<std::uint64_t>(local), 0);
  PARASOL_PETSC(VecRestoreArrayRead(natural, &a));
  VecDestroy(&natural);
}

}  // namespace

// ------------------------------------------------------------------ registry / options
const std::vector<SketchInfo>& sketch_registry() {
  static const std::vector<SketchInfo> sketches = {
      {"gaussian", "Gaussian sketch-and-project, one random direction per step"},
      {"kaczmarz", "randomized Kaczmarz, one row per step (uniform or row-norm weighted)"},
      {"block", "block Gaussian sketch-and-project, -alsketch_block_size directions per step"},
      {"ksp", "PETSc KSP on the distributed KKT matrix (-alsketch_ksp_preset; -alsketch_ksp_type, -alsketch_pc_type ...)"},
  };
  return sketches;
}

bool Options::IsValid(std::string* why) const {
  auto fail = [&](const std::string& m) {
    if (why) *why = m;
    return false;
  };
  bool known = false;
  for (const auto& s : sketch_registry()) known = known || s.name == sketch;
  if (!known) return fail("-alsketch_sketch: unknown sketch '" + sketch + "'");
  if (kaczmarz_weights != "uniform" && kaczmarz_weights != "rownorm")
    return fail("-alsketch_kaczmarz_weights must be uniform or rownorm");
  if (block_size < 1) return fail("-alsketch_block_size must be >= 1");
  if (max_sketch_steps < 1) return fail("-alsketch_max_sketch_steps must be >= 1");
  if (!(tol > 0)) return fail("-tol must be > 0");
  if (!(eta1 > 0) || !(eta2 > 0)) return fail("-alsketch_eta1 and -alsketch_eta2 must be > 0");
  if (!(delta > 0) || !(delta_min > 0)) return fail("-alsketch_delta(_min) must be > 0");
  if (!(xi_B > 0)) return fail("-alsketch_xi_B must be > 0");
  if (!(beta > 0 && beta < 0.5)) return fail("-alsketch_beta must be in (0, 0.5)");
  if (!(nu > 1)) return fail("-alsketch_nu must be > 1");
  if (!(backtrack > 0 && backtrack < 1)) return fail("-alsketch_backtrack must be in (0, 1)");
  if (max_backtracks < 1) return fail("-alsketch_max_backtracks must be >= 1");
  if (!(psi_factor > 0)) return fail("-alsketch_psi_factor must be > 0");
  if (!(jacobian_eig_min >= 0)) return fail("-alsketch_jacobian_eig_min must be >= 0");
  if (dense_limit < 1) return fail("-alsketch_dense_limit must be >= 1");
  if (lanczos_steps < 2) return fail("-alsketch_lanczos_steps must be >= 2");
  if (ksp_preset != "auto" && ksp_preset != "mumps" && ksp_preset != "fieldsplit" &&
      ksp_preset != "schur" && ksp_preset != "minres")
    return fail("-alsketch_ksp_preset: unknown preset '" + ksp_preset +
                "' (auto, mumps, fieldsplit, schur, minres)");
  return true;
}

std::string Summary::BriefReport() const {
  std::ostringstream s;
  s << "alsketch: " << to_string(status) << " after " << iterations
    << " iterations, objective " << objective << ", KKT residual " << kkt_residual
    << ", sketch steps " << sketch_steps << ", penalty adaptations " << penalty_adaptations
    << ", backtracks " << backtracks;
  if (!message.empty()) s << " (" << message << ")";
  return s.str();
}

// ------------------------------------------------------------------ the solver
struct Solver::Impl {
  Problem& problem;
  MPI_Comm comm;
  PetscInt n = 0, m = 0;
  std::vector<PetscInt> x_natural, c_natural;          // natural index of each local entry
  std::vector<PetscInt> x_natural_all, c_natural_all;  // by PETSc global index
  Vec g = nullptr, c = nullptr, gradL = nullptr, dx = nullptr, dl = nullptr;
  Vec xt = nullptr, lt = nullptr, gt = nullptr, ct = nullptr, gradLt = nullptr;
  Mat J = nullptr, Jt = nullptr, H = nullptr;
  HessianShell shell{};
  bool hessian_assembled = true;
  KSP ksp = nullptr;
  bool point_valid = false;  // g, c, J, gradL, f hold the values at the current x, lambda
  bool hessian_valid = false;  // H holds the Hessian at the current x, lambda (prepare())
  Eigen::VectorXd previous_direction;  // the last dense sketch solution (warm start)
  double f = 0;

  explicit Impl(Problem& p) : problem(p), comm(p.comm()) {}
  ~Impl() {
    for (Vec* v : {&g, &c, &gradL, &dx, &dl, &xt, &lt, &gt, &ct, &gradLt}) VecDestroy(v);
    destroy_kkt();
    for (Mat* A : {&J, &Jt, &H}) MatDestroy(A);
    KSPDestroy(&ksp);
    destroy_schur();
  }

  // f, grad f, c, J and grad_x L = grad f + J^T lambda at (x, lambda).
  double evaluate(Vec x, Vec lambda, Mat Jm, Vec gv, Vec cv, Vec gradLv, Summary& summary) {
    const double fx = problem.objective(x);
    ++summary.function_evaluations;
    problem.gradient(x, gv);
    problem.constraints(x, cv);
    // A rank that owns no entries may not have touched its (empty) part; PETSc would then
    // keep a cached norm on that rank only and skip the reduction there (a hang). Mark the
    // outputs changed on every rank.
    for (Vec v : {gv, cv}) {  // get/restore for writing advances the state on this rank
      PetscScalar* a;
      PARASOL_PETSC(VecGetArray(v, &a));
      PARASOL_PETSC(VecRestoreArray(v, &a));
    }
    problem.jacobian(x, Jm);
    PARASOL_PETSC(MatMultTransposeAdd(Jm, lambda, gv, gradLv));
    return fx;
  }

  static double merit(double fx, Vec lambda, Vec cv, Vec gradLv, double eta1, double eta2) {
    const double cn = norm2(cv), gn = norm2(gradLv);
    return fx + dot(lambda, cv) + 0.5 * eta1 * cn * cn + 0.5 * eta2 * gn * gn;
  }

  void evaluate_hessian(Vec x, Vec lambda) {
    if (hessian_assembled) {
      problem.hessian(x, lambda, H);
    } else {
      shell.x = x;
      shell.lambda = lambda;
      PARASOL_PETSC(MatAssemblyBegin(H, MAT_FINAL_ASSEMBLY));
      PARASOL_PETSC(MatAssemblyEnd(H, MAT_FINAL_ASSEMBLY));
    }
  }

  Eigen::MatrixXd dense_hessian() {
    if (hessian_assembled) return gather_matrix(H, x_natural, x_natural_all, n, n);
    // Product only: probe with unit vectors (small problems only).
    Eigen::MatrixXd out(n, n);
    Vec e, He;
    PARASOL_PETSC(VecDuplicate(g, &e));
    PARASOL_PETSC(VecDuplicate(g, &He));
    std::vector<PetscInt> petsc_of_natural(n);
    for (PetscInt k = 0; k < n; ++k) petsc_of_natural[x_natural_all[k]] = k;
    for (PetscInt j = 0; j < n; ++j) {
      PARASOL_PETSC(VecSet(e, 0));
      PARASOL_PETSC(VecSetValue(e, petsc_of_natural[j], 1.0, INSERT_VALUES));
      PARASOL_PETSC(VecAssemblyBegin(e));
      PARASOL_PETSC(VecAssemblyEnd(e));
      PARASOL_PETSC(MatMult(H, e, He));
      out.col(j) = gather_natural(He, x_natural);
    }
    VecDestroy(&e);
    VecDestroy(&He);
    return 0.5 * (out + out.transpose());
  }

  // The KSP of the `ksp` sketch. The preset (-alsketch_ksp_preset) chooses the method; every
  // PETSc option under the -alsketch_ prefix still overrides its pieces (KSPSetFromOptions runs
  // last, and the fieldsplit sub-solvers read theirs when the PC is set up).
  //   mumps:      preonly + MUMPS LU of the assembled KKT matrix (exact, memory-hungry);
  //   fieldsplit: MINRES with the block-diagonal preconditioner diag(B, -S), S = G B^-1 G^T
  //               approximated by G diag(B)^-1 G^T (selfp), B by Jacobi, S by one GAMG cycle;
  //   schur:      for a diagonal B: CG on the Schur complement S = G B^-1 G^T (matrix-free),
  //               dx from dl (schur_kkt.hpp); S preconditioned by the problem's Schur
  //               preconditioner, else by GAMG on the assembled G diag(B)^-1 G^T. Work
  //               vectors of size m: the memory-lean choice;
  //   minres:     MINRES without a preconditioner (the only choice for a Hessian given as
  //               products).
  // auto: mumps (minres without an assembled Hessian). On poisson the fieldsplit Schur
  // complement G B^-1 G^T is a fourth-order operator (L L^T + 10 I) on which one AMG cycle is a
  // weak preconditioner (MINRES needs ~1500 iterations at N = 64, docs/alsketch.md).
  std::string ksp_preset, options_prefix;
  double ksp_rtol = 1e-8;                   // the KSP's rtol after the options were read
  std::vector<std::string> inserted_options;  // defaults this preset put into the database
  void create_ksp(const Options& options) {
    PARASOL_PETSC(KSPCreate(comm, &ksp));
    PARASOL_PETSC(KSPSetOptionsPrefix(ksp, options.ksp_prefix.c_str()));
    options_prefix = options.ksp_prefix;
    PC pc;
    PARASOL_PETSC(KSPGetPC(ksp, &pc));
    ksp_preset = options.ksp_preset;
    if (ksp_preset == "auto")
      ksp_preset = hessian_assembled ? "mumps" : "minres";
    if (ksp_preset != "minres" && !hessian_assembled)
      throw Error("alsketch: -alsketch_ksp_preset " + ksp_preset +
                  " needs an assembled Hessian; the problem gives Hessian products only "
                  "(use -alsketch_ksp_preset minres)");
    if (ksp_preset == "mumps") {
      // Small KKT systems: LU. Large ones: LDL^T (symmetric indefinite), half the work and
      // memory; see prepare_kkt for its ordering and pivoting.
      PARASOL_PETSC(KSPSetType(ksp, KSPPREONLY));
      PARASOL_PETSC(PCSetType(pc, n + m <= options.dense_limit ? PCLU : PCCHOLESKY));
      PARASOL_PETSC(PCFactorSetMatSolverType(pc, MATSOLVERMUMPS));
    } else if (ksp_preset == "fieldsplit") {
      PARASOL_PETSC(KSPSetType(ksp, KSPMINRES));
      PARASOL_PETSC(PCSetType(pc, PCFIELDSPLIT));
      PARASOL_PETSC(PCFieldSplitSetType(pc, PC_COMPOSITE_SCHUR));
      // diag: the preconditioner diag(A00^-1, -S^-1) is symmetric positive definite, as MINRES
      // needs (PETSc flips the sign of S for this factorization).
      PARASOL_PETSC(PCFieldSplitSetSchurFactType(pc, PC_FIELDSPLIT_SCHUR_FACT_DIAG));
      PARASOL_PETSC(PCFieldSplitSetSchurPre(pc, PC_FIELDSPLIT_SCHUR_PRE_SELFP, nullptr));
      // The sub-solvers exist only once the PC is set up: their defaults go into the options
      // database (where the user's own values win) and are removed again if unused.
      const std::string p = "-" + options.ksp_prefix;
      for (auto [name, value] : {std::pair<const char*, const char*>{"fieldsplit_0_ksp_type", "preonly"},
                                 {"fieldsplit_0_pc_type", "jacobi"},
                                 {"fieldsplit_1_ksp_type", "preonly"},
                                 {"fieldsplit_1_pc_type", "gamg"}}) {
        PetscBool given = PETSC_FALSE;
        PARASOL_PETSC(PetscOptionsHasName(nullptr, nullptr, (p + name).c_str(), &given));
        if (given) continue;
        PARASOL_PETSC(PetscOptionsSetValue(nullptr, (p + name).c_str(), value));
        inserted_options.push_back(p + name);
      }
    } else if (ksp_preset == "schur") {
      // CG on S; its residual is the whole KKT system's, so the true (unpreconditioned) norm.
      PARASOL_PETSC(KSPSetType(ksp, KSPCG));
      PARASOL_PETSC(KSPSetNormType(ksp, KSP_NORM_UNPRECONDITIONED));
      PARASOL_PETSC(PCSetType(pc, PCGAMG));
    } else {
      PARASOL_PETSC(KSPSetType(ksp, KSPMINRES));
      PARASOL_PETSC(PCSetType(pc, PCNONE));
    }
    // Default tolerance: a Krylov method stops at 1e-8 (two or three Newton steps of a QP,
    // each cheaper than one to 1e-14); a direct solve is refined to 1e-12 (solves are cheap
    // next to the factorization).
    PARASOL_PETSC(KSPSetTolerances(ksp, ksp_preset == "mumps" ? 1e-12 : 1e-8, PETSC_DEFAULT,
                                   PETSC_DEFAULT, 100000));
    PARASOL_PETSC(KSPSetFromOptions(ksp));
    PetscReal rtol, abstol, dtol;
    PetscInt maxits;
    PARASOL_PETSC(KSPGetTolerances(ksp, &rtol, &abstol, &dtol, &maxits));
    ksp_rtol = rtol;
    if (!uses_fieldsplit()) {  // the user chose another PC: the sub-solver defaults are moot
      for (const auto& name : inserted_options)
        PARASOL_PETSC(PetscOptionsClearValue(nullptr, name.c_str()));
      inserted_options.clear();
    }
  }
  bool uses_fieldsplit() {
    PC pc;
    PCType type;
    PARASOL_PETSC(KSPGetPC(ksp, &pc));
    PARASOL_PETSC(PCGetType(pc, &type));
    return type && std::string(type) == PCFIELDSPLIT;
  }
  bool uses_direct_solver() {
    KSPType ktype;
    PC pc;
    PCType type;
    PARASOL_PETSC(KSPGetType(ksp, &ktype));
    PARASOL_PETSC(KSPGetPC(ksp, &pc));
    PARASOL_PETSC(PCGetType(pc, &type));
    return ktype && std::string(ktype) == KSPPREONLY && type &&
           (std::string(type) == PCLU || std::string(type) == PCCHOLESKY);
  }

  // Whether A holds the same values as when `stamp` was last taken: compares a 64-bit
  // fingerprint of the nonzero pattern and values (FNV-1a over every local entry with its global
  // row and column, summed over the ranks), an O(nnz) pass. PETSc's object state would be
  // cheaper but is not public API. A matrix without rows to read (a shell) always counts as
  // changed. Collective; the verdict is the same on every rank. Updates the stamp.
  struct MatStamp {
    std::uint64_t hash = 0;
  };
  std::uint64_t fingerprint(Mat A) {
    PetscBool has_rows = PETSC_FALSE;
    PARASOL_PETSC(MatHasOperation(A, MATOP_GET_ROW, &has_rows));
    int ok = has_rows ? 1 : 0, all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, comm);
    if (!all_ok) return 0;
    std::uint64_t h = 1469598103934665603ull;
    auto mix = [&h](const void* data, std::size_t bytes) {
      const unsigned char* p = static_cast<const unsigned char*>(data);
      for (std::size_t k = 0; k < bytes; ++k) h = (h ^ p[k]) * 1099511628211ull;
    };
    PetscInt lo, hi;
    PARASOL_PETSC(MatGetOwnershipRange(A, &lo, &hi));
    for (PetscInt i = lo; i < hi; ++i) {
      PetscInt ncols;
      const PetscInt* idx;
      const PetscScalar* val;
      PARASOL_PETSC(MatGetRow(A, i, &ncols, &idx, &val));
      mix(&i, sizeof i);
      mix(idx, ncols * sizeof(PetscInt));
      mix(val, ncols * sizeof(PetscScalar));
      PARASOL_PETSC(MatRestoreRow(A, i, &ncols, &idx, &val));
    }
    std::uint64_t total = 0;
    MPI_Allreduce(&h, &total, 1, MPI_UINT64_T, MPI_SUM, comm);
    return total == 0 ? 1 : total;
  }
  bool unchanged(MatStamp& stamp, Mat A) {
    const std::uint64_t now = fingerprint(A);
    const bool same = now != 0 && now == stamp.hash;
    stamp.hash = now;
    return same;
  }

  // The distributed KKT matrix [B J^T; J 0] (B = H + shift I) in the nest layout (each rank
  // owns its x rows then its c rows); b = -(gradL; c). A fieldsplit PC gets the nest matrix
  // itself (its blocks are the splits; no assembled copy); other PCs an AIJ copy, after which
  // the blocks are freed.
  Mat B = nullptr, JT = nullptr, Z = nullptr, Knest = nullptr, K = nullptr;
  Vec zv = nullptr, bv = nullptr;
  IS kkt_rows[2] = {nullptr, nullptr};
  void destroy_kkt() {
    VecDestroy(&zv);
    VecDestroy(&bv);
    MatDestroy(&K);
    destroy_blocks();
    for (IS* is : {&kkt_rows[0], &kkt_rows[1]}) ISDestroy(is);
  }
  void destroy_blocks() {
    MatDestroy(&Knest);
    MatDestroy(&JT);
    MatDestroy(&Z);
    MatDestroy(&B);
  }
  void copy_in(Vec whole, IS is, Vec from, double scale) {
    Vec part;
    PARASOL_PETSC(VecGetSubVector(whole, is, &part));
    PARASOL_PETSC(VecAXPBY(part, scale, 0.0, from));
    PARASOL_PETSC(VecRestoreSubVector(whole, is, &part));
  }
  void copy_out(Vec whole, IS is, Vec to) {
    Vec part;
    PARASOL_PETSC(VecGetSubVector(whole, is, &part));
    PARASOL_PETSC(VecCopy(part, to));
    PARASOL_PETSC(VecRestoreSubVector(whole, is, &part));
  }
  // B = H + shift I (H itself when the shift is 0: no copy; rebuilt whenever H changes).
  void build_B(double shift) {
    if (shift != 0 && !hessian_assembled)
      throw Error("alsketch: the ksp sketch needs an assembled Hessian when the reduced "
                  "Hessian must be shifted");
    if (shift != 0) {
      PARASOL_PETSC(MatDuplicate(H, MAT_COPY_VALUES, &B));
      PARASOL_PETSC(MatShift(B, shift));
    } else {
      B = H;
      PARASOL_PETSC(PetscObjectReference(reinterpret_cast<PetscObject>(H)));
    }
  }
  void build_kkt(double shift, bool nest) {
    destroy_kkt();
    build_B(shift);
    PARASOL_PETSC(MatTranspose(J, MAT_INITIAL_MATRIX, &JT));
    // An explicit (empty) (2,2) block: the Schur complement PC needs A11.
    PetscInt ml;
    PARASOL_PETSC(MatGetLocalSize(J, &ml, nullptr));
    PARASOL_PETSC(MatCreateAIJ(comm, ml, ml, m, m, 0, nullptr, 0, nullptr, &Z));
    PARASOL_PETSC(MatAssemblyBegin(Z, MAT_FINAL_ASSEMBLY));
    PARASOL_PETSC(MatAssemblyEnd(Z, MAT_FINAL_ASSEMBLY));
    Mat blocks[4] = {B, JT, J, Z};
    PARASOL_PETSC(MatCreateNest(comm, 2, nullptr, 2, nullptr, blocks, &Knest));
    // The prefix reaches a factorization of K: -alsketch_mat_mumps_icntl_14 etc.
    PARASOL_PETSC(MatSetOptionsPrefix(Knest, options_prefix.c_str()));
    IS rows[2];
    PARASOL_PETSC(MatNestGetISs(Knest, rows, nullptr));
    for (int i = 0; i < 2; ++i) PARASOL_PETSC(ISDuplicate(rows[i], &kkt_rows[i]));
    if (nest || !hessian_assembled) {
      K = Knest;
      PARASOL_PETSC(PetscObjectReference(reinterpret_cast<PetscObject>(Knest)));
    } else {
      PARASOL_PETSC(MatConvert(Knest, MATAIJ, MAT_INITIAL_MATRIX, &K));
      PARASOL_PETSC(MatSetOptionsPrefix(K, options_prefix.c_str()));
      // MatGetFactor names the factor (whose options MUMPS reads) after this prefix only.
      PARASOL_PETSC(MatSetOptionsPrefixFactor(K, options_prefix.c_str()));
      destroy_blocks();
    }
    PARASOL_PETSC(MatCreateVecs(K, &zv, &bv));
  }

  // K and the KSP set up for it (factorization, multigrid hierarchy); kept while J, H and the
  // shift stay the same (linear constraints and a constant Hessian: built once per run).
  MatStamp kkt_J, kkt_H;
  double kkt_shift = 0;
  bool kkt_ready = false;
  std::int64_t kkt_setups = 0;
  void prepare_kkt(double shift, const Options& options, Vec x, Vec lambda) {
    const bool same_H = unchanged(kkt_H, H), same_J = unchanged(kkt_J, J);
    if (!(kkt_ready && shift == kkt_shift && same_H && same_J)) {
      // A fresh KSP for a new matrix: a fresh factorization or hierarchy, splits set anew.
      KSPDestroy(&ksp);
      create_ksp(options);
      kkt_shift = shift;
      kkt_ready = true;
      ++kkt_setups;
      if (ksp_preset == "schur") {
        // No KKT matrix, no vectors of n + m: S, its preconditioner and the solve work with G,
        // B^-1 and vectors of size n or m (SchurKkt), the right-hand side is read from gradL, c.
        destroy_kkt();
        build_B(shift);
        prepare_schur(shift, options, x, lambda);
        return;
      }
      build_kkt(shift, uses_fieldsplit());
      PC pc;
      PARASOL_PETSC(KSPGetPC(ksp, &pc));
      PARASOL_PETSC(KSPSetOperators(ksp, K, K));
      // The problem's own Schur complement preconditioner replaces selfp + AMG (not after a
      // shift of B: it approximates G H^-1 G^T).
      const bool problem_schur = uses_fieldsplit() && shift == 0 && options.problem_schur &&
                                 problem.has_schur_preconditioner();
      if (uses_fieldsplit()) {
        PARASOL_PETSC(PCFieldSplitSetIS(pc, "0", kkt_rows[0]));
        PARASOL_PETSC(PCFieldSplitSetIS(pc, "1", kkt_rows[1]));
        if (problem_schur)  // no G diag(B)^-1 G^T: the (empty) (2,2) block stands in for it
          PARASOL_PETSC(PCFieldSplitSetSchurPre(pc, PC_FIELDSPLIT_SCHUR_PRE_USER, Z));
      }
      PCType pc_type;
      MatSolverType solver_type = nullptr;
      PARASOL_PETSC(PCGetType(pc, &pc_type));
      if (pc_type && (std::string(pc_type) == PCLU || std::string(pc_type) == PCCHOLESKY)) {
        PARASOL_PETSC(PCFactorGetMatSolverType(pc, &solver_type));
        auto given = [&](const char* name) {
          PetscBool has = PETSC_FALSE;
          PARASOL_PETSC(PetscOptionsHasName(nullptr, options.ksp_prefix.c_str(), name, &has));
          return has == PETSC_TRUE;
        };
        if (solver_type && std::string(solver_type) == MATSOLVERMUMPS) {
          Mat F;
          PARASOL_PETSC(PCFactorSetUpMatSolverType(pc));
          PARASOL_PETSC(PCFactorGetMatrix(pc, &F));
          // Defaults the user's -alsketch_mat_mumps_* options override. The zero (2,2) block
          // delays pivots: MUMPS' default workspace estimate is too small for saddle-point
          // matrices (INFOG(1) = -9), so give it room (ICNTL(14), %).
          if (!given("-mat_mumps_icntl_14")) PARASOL_PETSC(MatMumpsSetIcntl(F, 14, 200));
          if (std::string(pc_type) == PCCHOLESKY) {
            // LDL^T of the KKT matrix: AMD ordering (ICNTL(7) = 0; on poisson N = 256 its
            // analysis took 2 s against 7 s for METIS and the fill was smaller) and a small
            // pivot threshold (CNTL(1) = 1e-6, IPOPT's choice; MUMPS' 0.01 delays so many
            // pivots of the zero block that the factorization fails), refined by the solve.
            if (!given("-mat_mumps_icntl_7")) PARASOL_PETSC(MatMumpsSetIcntl(F, 7, 0));
            if (!given("-mat_mumps_cntl_1")) PARASOL_PETSC(MatMumpsSetCntl(F, 1, 1e-6));
          }
        }
      }
      PARASOL_PETSC(KSPSetUp(ksp));
      if (problem_schur) {
        KSP* sub = nullptr;
        PetscInt nsplits = 0;
        PARASOL_PETSC(PCFieldSplitGetSubKSP(pc, &nsplits, &sub));
        PC schur_pc;
        PARASOL_PETSC(KSPGetPC(sub[nsplits - 1], &schur_pc));
        PetscFree(sub);
        problem.schur_preconditioner(x, lambda, nullptr, schur_pc);  // B = H
      }
      // Sub-solvers (fieldsplit blocks, multigrid levels) are set up at the first application
      // of the preconditioner: apply it once so that all of them exist, with their options
      // read, when prepare() returns (the result in zv is overwritten by the solve). Not for a
      // factorization: set up (and its options read) by KSPSetUp; one solve costs 2 s at N = 512.
      if (!uses_direct_solver()) {
        PARASOL_PETSC(VecSet(bv, 1.0));
        PARASOL_PETSC(PCApply(pc, bv, zv));
      }
    }
    if (ksp_preset != "schur") fill_rhs();
  }

  // The schur preset's operator S = G B^-1 G^T and its preconditioner. B must be diagonal and
  // positive (poisson's H = diag(1, 0.1)): checked on the assembled B, else a clear error.
  std::unique_ptr<detail::SchurKkt> schur_kkt;
  Mat schur_pmat = nullptr;  // assembled G diag(B)^-1 G^T for a generic PC (else null)
  PC problem_schur_pc = nullptr;  // the problem's preconditioner of -S (negated when applied)
  void destroy_schur() {
    schur_kkt.reset();
    MatDestroy(&schur_pmat);
    PCDestroy(&problem_schur_pc);
  }
  static PetscErrorCode apply_negated(PC pc, Vec r, Vec y) {
    void* ctx;
    PetscCall(PCShellGetContext(pc, &ctx));
    PetscCall(PCApply(static_cast<Impl*>(ctx)->problem_schur_pc, r, y));
    PetscCall(VecScale(y, -1.0));
    return 0;
  }
  void prepare_schur(double shift, const Options& options, Vec x, Vec lambda) {
    destroy_schur();
    std::string why;
    if (!hessian_assembled || !detail::diagonal_positive(B, &why))
      throw Error("alsketch: -alsketch_ksp_preset schur needs a diagonal positive definite "
                  "B = H + shift I (the Schur complement G B^-1 G^T is formed with B^-1); " +
                  (hessian_assembled ? "here B " + why : std::string("the Hessian is not assembled")) +
                  " (use -alsketch_ksp_preset mumps or fieldsplit)");
    schur_kkt = std::make_unique<detail::SchurKkt>(J, B);
    PC pc;
    PARASOL_PETSC(KSPGetPC(ksp, &pc));
    // The problem's preconditioner approximates G H^-1 G^T: not after a shift of B.
    const bool problem_schur =
        shift == 0 && options.problem_schur && problem.has_schur_preconditioner();
    if (problem_schur) {
      PARASOL_PETSC(KSPSetOperators(ksp, schur_kkt->schur(), schur_kkt->schur()));
      PARASOL_PETSC(PCCreate(comm, &problem_schur_pc));
      PARASOL_PETSC(PCSetOperators(problem_schur_pc, schur_kkt->schur(), schur_kkt->schur()));
      problem.schur_preconditioner(x, lambda, schur_kkt->inverse_diagonal(), problem_schur_pc);
      PARASOL_PETSC(PCSetUp(problem_schur_pc));
      PARASOL_PETSC(PCSetType(pc, PCSHELL));
      PARASOL_PETSC(PCShellSetContext(pc, this));
      PARASOL_PETSC(PCShellSetApply(pc, apply_negated));
      PARASOL_PETSC(PCShellSetName(pc, "the problem's Schur complement preconditioner"));
    } else {
      schur_pmat = schur_kkt->assemble_schur();
      PARASOL_PETSC(KSPSetOperators(ksp, schur_kkt->schur(), schur_pmat));
    }
    PARASOL_PETSC(KSPSetUp(ksp));
  }
  // b = -(grad_x L, c), the right-hand side of the KKT system.
  void fill_rhs() {
    copy_in(bv, kkt_rows[0], gradL, -1.0);
    copy_in(bv, kkt_rows[1], c, -1.0);
  }

  // Solves K z = b with the KSP to |K z - b| <= rtol |b|; z goes to (dx, dl) and stays in zv.
  // To continue from the current z (after a penalty adaptation asked for more accuracy), it
  // solves for the correction K d = b - K z and adds it: iterative refinement for a direct
  // solver, a restart from z for a Krylov method. Returns |K z - b|. The schur preset works on
  // (dx, dl) directly (no zv, bv) and continues by restarting CG from the current dl.
  double ksp_solve(double rtol, bool continue_from_z) {
    if (schur_kkt) {  // K (dx; dl) = -(gradL; c) directly: no KKT vectors
      const double rn =
          schur_kkt->solve(ksp, gradL, c, std::max(rtol, 1e-15), continue_from_z, dx, dl);
      check_ksp_result();
      return rn;
    }
    Vec r;
    PARASOL_PETSC(VecDuplicate(bv, &r));
    const double b_norm = norm2(bv);
    if (!continue_from_z) {
      PARASOL_PETSC(KSPSetTolerances(ksp, std::max(rtol, 1e-15), 0.0, PETSC_DEFAULT, PETSC_DEFAULT));
      PARASOL_PETSC(KSPSolve(ksp, bv, zv));
    } else {
      Vec d;
      PARASOL_PETSC(VecDuplicate(bv, &d));
      PARASOL_PETSC(MatMult(K, zv, r));
      PARASOL_PETSC(VecAYPX(r, -1.0, bv));  // r = b - K z
      const double r_norm = norm2(r);
      const double d_rtol = std::min(0.5, std::max(rtol * b_norm / r_norm, 1e-15));
      PARASOL_PETSC(KSPSetTolerances(ksp, d_rtol, 0.0, PETSC_DEFAULT, PETSC_DEFAULT));
      PARASOL_PETSC(KSPSolve(ksp, r, d));
      PARASOL_PETSC(VecAXPY(zv, 1.0, d));
      VecDestroy(&d);
    }
    try {
      check_ksp_result();
    } catch (...) {
      VecDestroy(&r);
      throw;
    }
    copy_out(zv, kkt_rows[0], dx);
    copy_out(zv, kkt_rows[1], dl);
    PARASOL_PETSC(MatMult(K, zv, r));
    PARASOL_PETSC(VecAXPY(r, -1.0, bv));
    const double rn = norm2(r);
    VecDestroy(&r);
    return rn;
  }
  std::int64_t krylov_iterations = 0;
  // Counts the last solve's iterations; throws when the KSP failed (other than by its limit).
  void check_ksp_result() {
    KSPConvergedReason reason;
    PARASOL_PETSC(KSPGetConvergedReason(ksp, &reason));
    PetscInt its;
    PARASOL_PETSC(KSPGetIterationNumber(ksp, &its));
    krylov_iterations += its;
    if (reason < 0 && reason != KSP_DIVERGED_ITS)
      throw Error("alsketch: KKT solve with KSP failed: " +
                  std::string(KSPConvergedReasons[reason]));
  }

  // Extreme eigenvalues of a symmetric operator by `steps` Lanczos steps, from a start vector
  // keyed by natural index (rank independent). Plain three-term recurrence: three vectors of
  // memory and two reductions per step (full reorthogonalization kept `steps` vectors and made
  // 4k reductions in step k, most of the estimate's cost on poisson N = 512); loss of
  // orthogonality only repeats converged Ritz values, the extreme ones still converge first.
  // Ritz values are inner estimates: lambda_min is over- and lambda_max under-estimated.
  std::pair<double, double> lanczos(const std::function<void(Vec, Vec)>& apply, Vec start,
                                    int steps) {
    PetscInt dim;
    PARASOL_PETSC(VecGetSize(start, &dim));
    steps = static_cast<int>(std::min<PetscInt>(steps, dim));
    Vec v, v_prev, w;
    PARASOL_PETSC(VecDuplicate(start, &v));
    PARASOL_PETSC(VecDuplicate(start, &v_prev));
    PARASOL_PETSC(VecDuplicate(start, &w));
    PARASOL_PETSC(VecCopy(start, v));
    PARASOL_PETSC(VecScale(v, 1.0 / norm2(v)));
    PARASOL_PETSC(VecSet(v_prev, 0.0));
    std::vector<double> alpha, beta;
    int k = 0;
    for (; k < steps; ++k) {
      apply(v, w);
      alpha.push_back(dot(w, v));
      // w -= alpha v + beta v_prev
      PARASOL_PETSC(VecAXPBYPCZ(w, -alpha.back(), beta.empty() ? 0.0 : -beta.back(), 1.0, v,
                                v_prev));
      const double b = norm2(w);
      const double scale = std::abs(alpha.back()) + (beta.empty() ? 0.0 : beta.back());
      if (k + 1 == steps || !(b > 1e-12 * std::max(scale, 1e-300))) {
        ++k;
        break;
      }
      beta.push_back(b);
      std::swap(v, v_prev);
      PARASOL_PETSC(VecAXPBY(v, 1.0 / b, 0.0, w));
    }
    for (Vec* x : {&v, &v_prev, &w}) VecDestroy(x);
    Eigen::MatrixXd T = Eigen::MatrixXd::Zero(k, k);
    for (int i = 0; i < k; ++i) {
      T(i, i) = alpha[i];
      if (i + 1 < k) T(i, i + 1) = T(i + 1, i) = beta[i];
    }
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(T, Eigen::EigenvaluesOnly);
    return {eig.eigenvalues().minCoeff(), eig.eigenvalues().maxCoeff()};
  }

  // Gershgorin bounds on the spectrum of a symmetric assembled matrix: every eigenvalue lies in
  // [min_i a_ii - r_i, max_i a_ii + r_i], r_i = sum_{j != i} |a_ij|. Rigorous and one pass
  // over the entries; exact for a diagonal matrix.
  std::pair<double, double> gershgorin(Mat A) {
    PetscInt lo, hi;
    PARASOL_PETSC(MatGetOwnershipRange(A, &lo, &hi));
    double bounds[2] = {std::numeric_limits<double>::infinity(),
                        std::numeric_limits<double>::infinity()};  // {min lower, -max upper}
    for (PetscInt i = lo; i < hi; ++i) {
      PetscInt ncols;
      const PetscInt* idx;
      const PetscScalar* val;
      PARASOL_PETSC(MatGetRow(A, i, &ncols, &idx, &val));
      double diag = 0, radius = 0;
      for (PetscInt k = 0; k < ncols; ++k) {
        if (idx[k] == i)
          diag += val[k];
        else
          radius += std::abs(val[k]);
      }
      PARASOL_PETSC(MatRestoreRow(A, i, &ncols, &idx, &val));
      bounds[0] = std::min(bounds[0], diag - radius);
      bounds[1] = std::min(bounds[1], -(diag + radius));
    }
    double all[2];
    MPI_Allreduce(bounds, all, 2, MPI_DOUBLE, MPI_MIN, comm);
    return {all[0], -all[1]};
  }

  // Spectral estimates of the large (ksp) path, kept while their matrix is unchanged.
  MatStamp spectrum_H, spectrum_J;
  double cached_h_min = 0, cached_h_max = 0, cached_xi_G = 1, cached_G_norm = 0;

  // The natural KKT index (x: 0..n-1, c: n..n+m-1) of each local row of K.
  std::vector<PetscInt> kkt_natural() {
    PetscInt lo, hi;
    PARASOL_PETSC(MatGetOwnershipRange(K, &lo, &hi));
    std::vector<PetscInt> out(hi - lo, 0);
    for (int block = 0; block < 2; ++block) {
      const std::vector<PetscInt>& natural = block == 0 ? x_natural : c_natural;
      const PetscInt offset = block == 0 ? 0 : n;
      PetscInt count;
      const PetscInt* idx;
      PARASOL_PETSC(ISGetLocalSize(kkt_rows[block], &count));
      check_all(comm, count == static_cast<PetscInt>(natural.size()),
                "alsketch: KKT row layout does not match the problem's local sizes");
      PARASOL_PETSC(ISGetIndices(kkt_rows[block], &idx));
      for (PetscInt k = 0; k < count; ++k) out[idx[k] - lo] = offset + natural[k];
      PARASOL_PETSC(ISRestoreIndices(kkt_rows[block], &idx));
    }
    return out;
  }

  void random_fill(Vec v, const std::vector<PetscInt>& natural, std::uint64_t seed,
                   std::uint64_t offset) {
    PetscScalar* a;
    PARASOL_PETSC(VecGetArray(v, &a));
    for (std::size_t k = 0; k < natural.size(); ++k)
      a[k] = Random(seed, "alsketch.lanczos", offset + static_cast<std::uint64_t>(natural[k]))
                 .normal();
    PARASOL_PETSC(VecRestoreArray(v, &a));
  }

  // grad L_eta^T z from PETSc vectors: pieces H gradL, J^T c, J gradL computed once per
  // iteration. They live in the line search's trial vectors, which are free until the line
  // search (it overwrites them; the slope is a number by then): no extra vectors of n.
  Vec p_Hg = nullptr, p_Jtc = nullptr, p_JgL = nullptr;
  void slope_pieces() {
    p_Hg = xt, p_Jtc = gradLt, p_JgL = ct;
    PARASOL_PETSC(MatMult(H, gradL, p_Hg));
    PARASOL_PETSC(MatMultTranspose(J, c, p_Jtc));
    PARASOL_PETSC(MatMult(J, gradL, p_JgL));
  }
  double petsc_slope(double eta1, double eta2) {
    PetscScalar dxs[3], dls[2];
    Vec xs[3] = {gradL, p_Jtc, p_Hg}, ls[2] = {c, p_JgL};
    PARASOL_PETSC(VecMDot(dx, 3, xs, dxs));
    PARASOL_PETSC(VecMDot(dl, 2, ls, dls));
    return dxs[0] + eta1 * dxs[1] + eta2 * dxs[2] + dls[0] + eta2 * dls[1];
  }
};

Solver::Solver(Problem& problem, const Options& options)
    : problem_(problem), options_(options), eta1_(options.eta1), eta2_(options.eta2),
      delta_(options.delta), impl_(std::make_unique<Impl>(problem)) {
  std::string why;
  if (!options.IsValid(&why)) throw Error("alsketch: " + why);
  Impl& s = *impl_;
  MPI_Comm comm = problem.comm();
  const PetscInt nl = problem.local_variables(), ml = problem.local_constraints();
  PARASOL_PETSC(VecCreateMPI(comm, nl, PETSC_DETERMINE, &x_));
  PARASOL_PETSC(VecCreateMPI(comm, ml, PETSC_DETERMINE, &lambda_));
  PARASOL_PETSC(VecGetSize(x_, &s.n));
  PARASOL_PETSC(VecGetSize(lambda_, &s.m));
  for (Vec* v : {&s.g, &s.gradL, &s.dx, &s.xt, &s.gt, &s.gradLt}) PARASOL_PETSC(VecDuplicate(x_, v));
  for (Vec* v : {&s.c, &s.dl, &s.lt, &s.ct}) PARASOL_PETSC(VecDuplicate(lambda_, v));
  s.x_natural = problem.natural_variable_indices();
  s.c_natural = problem.natural_constraint_indices();
  check_all(comm,
            static_cast<PetscInt>(s.x_natural.size()) == nl &&
                static_cast<PetscInt>(s.c_natural.size()) == ml,
            "alsketch: problem '" + problem.name() +
                "': natural index lists do not match the local sizes");
  s.x_natural_all = allgather_pieces(comm, s.x_natural);
  s.c_natural_all = allgather_pieces(comm, s.c_natural);
  s.J = problem.create_jacobian();
  s.Jt = problem.create_jacobian();
  s.H = problem.create_hessian();
  if (!s.H) {
    s.hessian_assembled = false;
    s.shell.problem = &problem;
    PARASOL_PETSC(MatCreateShell(comm, nl, nl, s.n, s.n, &s.shell, &s.H));
    PARASOL_PETSC(MatShellSetOperation(s.H, MATOP_MULT,
                                       reinterpret_cast<void (*)(void)>(hessian_shell_mult)));
  }
  if (options.sketch == "kaczmarz" && !s.hessian_assembled && s.n + s.m > options.dense_limit)
    throw Error("alsketch: problem '" + problem.name() + "' has n + m = " +
                std::to_string(s.n + s.m) + " > -alsketch_dense_limit " +
                std::to_string(options.dense_limit) +
                " and no assembled Hessian; distributed kaczmarz needs the rows of K (use "
                "gaussian, block or ksp)");
  if (options.sketch == "ksp") s.create_ksp(options);
  problem.initial_point(x_, lambda_);
}

void Solver::prepare() {
  Impl& s = *impl_;
  if (options_.sketch != "ksp") return;
  if (!s.point_valid) s.f = s.evaluate(x_, lambda_, s.J, s.g, s.c, s.gradL, summary_);
  s.point_valid = true;
  s.evaluate_hessian(x_, lambda_);
  s.hessian_valid = true;
  // Unshifted: the first step keeps this setup unless it decides to shift B.
  s.prepare_kkt(0.0, options_, x_, lambda_);
}

double Solver::problem_data_bytes() const {
  const Impl& s = *impl_;
  double bytes = 0;
  for (Mat A : {s.J, s.hessian_assembled ? s.H : nullptr}) {
    if (!A) continue;
    MatInfo info;
    PARASOL_PETSC(MatGetInfo(A, MAT_GLOBAL_SUM, &info));
    PetscInt rows;
    PARASOL_PETSC(MatGetSize(A, &rows, nullptr));
    bytes += info.nz_used * (sizeof(PetscScalar) + sizeof(PetscInt)) + (rows + 1.0) * sizeof(PetscInt);
  }
  // x and grad f (n each), lambda and c (m each).
  return bytes + 2.0 * (s.n + s.m) * sizeof(PetscScalar);
}

Solver::~Solver() {
  impl_.reset();
  VecDestroy(&x_);
  VecDestroy(&lambda_);
}

std::vector<std::string> Solver::history_fields() const {
  return {"kkt_residual", "constraint_violation", "step_length", "eta1", "eta2",
          "sketch_iterations"};
}

StepReport Solver::step(std::int64_t iteration) {
  Impl& s = *impl_;
  const Options& o = options_;
  StepReport report;
  auto end = [&](Status status, const std::string& message, double step_length,
                 std::int64_t sketch_steps) {
    report.status = status;
    report.message = message;
    report.objective = summary_.objective;
    report.fields = {summary_.kkt_residual, summary_.constraint_violation, step_length, eta1_,
                     eta2_, static_cast<double>(sketch_steps)};
    summary_.status = status;
    summary_.message = message;
    summary_.iterations = iteration;
    summary_.krylov_iterations = s.krylov_iterations;
    summary_.kkt_setups = s.kkt_setups;
    return report;
  };

  // 1. The current point.
  if (!s.point_valid) s.f = s.evaluate(x_, lambda_, s.J, s.g, s.c, s.gradL, summary_);
  s.point_valid = false;
  const double gn = norm2(s.gradL), cn = norm2(s.c);
  const double kkt = std::hypot(gn, cn);
  summary_.objective = s.f;
  summary_.kkt_residual = kkt;
  summary_.constraint_violation = cn;
  if (!finite(s.f) || !finite(kkt))
    return end(Status::Failed,
               "the problem returned non-finite values at iteration " +
                   std::to_string(iteration) + " (objective " + format(s.f) +
                   ", KKT residual " + format(kkt) + ")",
               0, 0);
  if (kkt <= o.tol) return end(Status::Converged, "KKT residual <= tol", 0, 0);

  // 2. What the accuracy condition needs: lambda_min(G G^T), |G|, the spectrum of H, the
  // smallest eigenvalue of the reduced Hessian Z^T H Z, |K|. Small problems: exact, from a
  // dense copy in natural order on every rank. Large ones: Lanczos estimates on
  // the distributed operators, and the reduced Hessian bounded below by lambda_min(H).
  if (!s.hessian_valid) s.evaluate_hessian(x_, lambda_);
  s.hessian_valid = false;
  const Eigen::Index n = s.n, m = s.m;
  const bool dense = n + m <= o.dense_limit;
  const bool use_ksp = o.sketch == "ksp";
  Eigen::MatrixXd Hd, Gd;
  double xi_G = 1.0, G_norm = 0.0, h_min = 0, h_max = 0;
  double reduced_min = std::numeric_limits<double>::infinity();
  if (dense) {
    Hd = s.dense_hessian();
    Gd = gather_matrix(s.J, s.c_natural, s.x_natural_all, s.m, s.n);
    if (!Hd.allFinite() || !Gd.allFinite())
      return end(Status::Failed,
                 "the problem returned a non-finite Jacobian or Hessian at iteration " +
                     std::to_string(iteration),
                 0, 0);
    if (m > 0) {
      Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(Gd * Gd.transpose(),
                                                         Eigen::EigenvaluesOnly);
      xi_G = eig.eigenvalues().minCoeff();
      G_norm = std::sqrt(std::max(0.0, eig.eigenvalues().maxCoeff()));
    }
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> heig(Hd, Eigen::EigenvaluesOnly);
    h_min = heig.eigenvalues().minCoeff(), h_max = heig.eigenvalues().maxCoeff();
    if (m < n) {
      if (m == 0) {
        reduced_min = h_min;
      } else {
        Eigen::HouseholderQR<Eigen::MatrixXd> qr(Gd.transpose());
        const Eigen::MatrixXd Q = qr.householderQ();
        const Eigen::MatrixXd Z = Q.rightCols(n - m);
        Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> reig(Z.transpose() * Hd * Z,
                                                            Eigen::EigenvaluesOnly);
        reduced_min = reig.eigenvalues().minCoeff();
      }
    }
  } else {
    // Large problems (ksp only), kept while H (resp. J) is unchanged: linear constraints and a
    // constant Hessian are estimated once per run. The spectrum of H decides the shift of B
    // (it changes the step): Gershgorin bounds first (rigorous, one pass), Lanczos only when
    // they cannot exclude a shift. lambda_min(G G^T) and |G| (rank guard, psi) by Lanczos.
    // Work vectors: the line search's trial vectors, free until the line search (no new
    // vectors of n + n + m per iteration; 5 MB per rank at poisson N = 512).
    Vec start_x = s.xt, start_c = s.lt, tmp = s.gt;
    if (!s.unchanged(s.spectrum_H, s.H)) {
      bool done = false;
      if (s.hessian_assembled) {
        std::tie(s.cached_h_min, s.cached_h_max) = s.gershgorin(s.H);
        done = s.cached_h_min >= o.reduced_hessian_min || !finite(s.cached_h_min);
      }
      if (!done) {
        s.random_fill(start_x, s.x_natural, o.seed, 0);
        std::tie(s.cached_h_min, s.cached_h_max) = s.lanczos(
            [&](Vec v, Vec w) { PARASOL_PETSC(MatMult(s.H, v, w)); }, start_x, o.lanczos_steps);
      }
    }
    h_min = s.cached_h_min, h_max = s.cached_h_max;
    if (m > 0) {
      if (!s.unchanged(s.spectrum_J, s.J)) {
        s.random_fill(start_c, s.c_natural, o.seed, static_cast<std::uint64_t>(n));
        double ggt_max;
        std::tie(s.cached_xi_G, ggt_max) = s.lanczos(
            [&](Vec v, Vec w) {
              PARASOL_PETSC(MatMultTranspose(s.J, v, tmp));
              PARASOL_PETSC(MatMult(s.J, tmp, w));
            },
            start_c, o.lanczos_steps);
        s.cached_G_norm = std::sqrt(std::max(0.0, ggt_max));
      }
      xi_G = s.cached_xi_G, G_norm = s.cached_G_norm;
    }
    if (m < n) reduced_min = h_min >= o.reduced_hessian_min ? h_min : -1.0;
    if (!finite(h_min) || !finite(h_max) || !finite(xi_G) || !finite(G_norm))
      return end(Status::Failed,
                 "the problem returned a non-finite Jacobian or Hessian at iteration " +
                     std::to_string(iteration),
                 0, 0);
  }
  if (m > 0 && !(xi_G >= o.jacobian_eig_min))
    return end(Status::Failed,
               "the constraint Jacobian loses rank at iteration " + std::to_string(iteration) +
                   ": lambda_min(G G^T) = " + format(xi_G) + " < " + format(o.jacobian_eig_min) +
                   " (-alsketch_jacobian_eig_min)",
               0, 0);
  const double H_norm = std::max(std::abs(h_min), std::abs(h_max));
  double shift = 0;
  if (reduced_min < o.reduced_hessian_min) {
    shift = o.xi_B + H_norm;
    ++summary_.hessian_modifications;
  }
  const double B_norm = std::max(std::abs(h_min + shift), std::abs(h_max + shift));
  const double psi = o.psi_factor * std::max(B_norm * B_norm, 1.0) /
                     (std::min(xi_G, 1.0) * std::min(o.xi_B, 1.0));
  const double upsilon = std::max({G_norm, H_norm, 1.0});
  auto delta_trial = [&](double e1, double e2) {
    return (0.5 - o.beta) * e2 / ((1 + e1 + e2) * upsilon * upsilon * psi * psi);
  };
  delta_ = std::max(std::min(delta_, delta_trial(eta1_, eta2_)), o.delta_min);

  Eigen::MatrixXd Kd;
  double accel_mu = 0, accel_nu = 0;
  Eigen::VectorXd b, c_d, a_gradL, a_Gtc, a_HgradL, a_GgradL;
  double K_norm = 0, b_norm = kkt;
  if (use_ksp)
    s.prepare_kkt(shift, o, x_, lambda_);
  else if (!dense) {
    s.build_kkt(shift, false);  // the distributed sketches act on the assembled K
    s.fill_rhs();
  }
  if (dense) {
    Kd = Eigen::MatrixXd::Zero(n + m, n + m);
    Kd.topLeftCorner(n, n) = Hd + shift * Eigen::MatrixXd::Identity(n, n);
    Kd.topRightCorner(n, m) = Gd.transpose();
    Kd.bottomLeftCorner(m, n) = Gd;
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> keig(Kd, Eigen::EigenvaluesOnly);
    K_norm = keig.eigenvalues().cwiseAbs().maxCoeff();
    if (o.accelerate && !use_ksp)
      std::tie(accel_mu, accel_nu) =
          acceleration_parameters(Kd, keig.eigenvalues().cwiseAbs().minCoeff(), o);
    a_gradL = gather_natural(s.gradL, s.x_natural);
    c_d = gather_natural(s.c, s.c_natural);
    b.resize(n + m);
    b << -a_gradL, -c_d;
    b_norm = b.norm();
    // Pieces of grad L_eta^T z = dx.(gradL + eta1 G^T c + eta2 H gradL)
    //                           + dl.(c + eta2 G gradL), with H the Lagrangian's Hessian (not B).
    a_Gtc = Gd.transpose() * c_d;
    a_HgradL = Hd * a_gradL;
    a_GgradL = Gd * a_gradL;
  } else {
    // |K| <= |B| + |G| (spectral norms of the blocks): an upper bound, so the accuracy target
    // below is, if anything, stricter. It only sets the KSP tolerance (see the solve).
    K_norm = B_norm + G_norm;
  }
  if (use_ksp || !dense) s.slope_pieces();
  const double theta = o.sharpen ? std::min(1.0, kkt) : 1.0;
  auto target = [&]() { return theta * delta_ * b_norm / (K_norm * psi); };
  auto dense_slope = [&](const Eigen::VectorXd& z) {
    const auto zx = z.head(n);
    const auto zl = z.tail(m);
    return zx.dot(a_gradL) + eta1_ * zx.dot(a_Gtc) + eta2_ * zx.dot(a_HgradL) + zl.dot(c_d) +
           eta2_ * zl.dot(a_GgradL);
  };

  // 3. Inexact Newton direction, penalties adapted until it is a descent direction; the
  // sketch (or the Krylov method) continues from its current iterate after each adaptation.
  std::int64_t sketch_steps = 0;
  Eigen::VectorXd z;
  std::unique_ptr<detail::DenseSketchSolver> sketcher;
  std::unique_ptr<detail::DistributedSketchSolver> distributed;
  if (!use_ksp && !dense)
    distributed = std::make_unique<detail::DistributedSketchSolver>(
        s.K, s.bv, s.kkt_natural(), sketch_config(o), static_cast<std::uint64_t>(iteration));
  else if (!use_ksp)
    sketcher = std::make_unique<detail::DenseSketchSolver>(
        Kd, b, sketch_config(o, accel_mu, accel_nu), static_cast<std::uint64_t>(iteration));
  if (sketcher && o.warm_start) sketcher->warm_start(s.previous_direction);
  bool solved_once = false;
  double ksp_rtol = use_ksp ? s.ksp_rtol : 0;
  double slope = 0, residual = 0;
  for (;;) {
    if (use_ksp) {
      // The KSP solves to its own tolerance (-alsketch_ksp_rtol, default 1e-8) unless the
      // accuracy condition is looser. The condition is sufficient, not necessary, for descent:
      // its psi (a bound on |K^-1|) would need lambda_min(G G^T) and of the reduced Hessian
      // to an accuracy Lanczos cannot give on ill-conditioned K (poisson: cond ~1e11), and
      // taken literally it asks for |r| <= 1e-14 |b| there. A tight Krylov (or direct) solve
      // is close to the exact Newton step, which is a descent direction for the adapted
      // penalties; the descent test below is exact, and each penalty adaptation tightens the
      // tolerance 100-fold and continues from the current z. Refine at most 3 times.
      auto wanted = [&]() { return std::max(target(), ksp_rtol * b_norm); };
      if (!solved_once) {
        residual = s.ksp_solve(wanted() / b_norm, false);
        ++sketch_steps;
      }
      for (int refine = 0; refine < 3 && residual > wanted(); ++refine, ++sketch_steps)
        residual = s.ksp_solve(wanted() / b_norm, true);
      slope = s.petsc_slope(eta1_, eta2_);
    } else if (distributed) {
      const std::int64_t budget = o.max_sketch_steps - distributed->steps();
      if (budget > 0) distributed->run(target(), budget);
      sketch_steps = distributed->steps();
      residual = distributed->residual_norm();
      s.copy_out(distributed->z(), s.kkt_rows[0], s.dx);
      s.copy_out(distributed->z(), s.kkt_rows[1], s.dl);
      slope = s.petsc_slope(eta1_, eta2_);
    } else {
      const std::int64_t budget = o.max_sketch_steps - sketcher->steps();
      if (budget > 0) sketcher->run(target(), budget);
      z = sketcher->z();
      sketch_steps = sketcher->steps();
      residual = sketcher->residual_norm();
      if (!z.allFinite())
        return end(Status::Failed, "the KKT solve produced non-finite values", 0, sketch_steps);
      slope = dense_slope(z);
    }
    solved_once = true;
    if (!finite(slope))
      return end(Status::Failed, "the KKT solve produced non-finite values", 0, sketch_steps);
    if (slope <= -0.5 * eta2_ * b_norm * b_norm) break;
    if (eta1_ > o.eta1_max || eta2_ < o.eta2_min) break;  // safeguard: accept as it is
    eta1_ *= o.nu * o.nu;
    eta2_ /= o.nu;
    ksp_rtol = std::max(1e-2 * ksp_rtol, 1e-15);
    delta_ = std::max(std::min(delta_ / std::pow(o.nu, 4), delta_trial(eta1_, eta2_)), o.delta_min);
    ++summary_.penalty_adaptations;
  }
  summary_.sketch_steps += sketch_steps;
  last_sketch_.steps = sketch_steps;
  last_sketch_.residual = residual;
  last_sketch_.rhs_norm = b_norm;
  last_sketch_.target = target();
  last_sketch_.accuracy_met = residual <= last_sketch_.target;
  if (sketcher) {
    s.previous_direction = z;
    scatter_natural(z, 0, s.dx, s.x_natural);
    scatter_natural(z, n, s.dl, s.c_natural);
  }

  // 4. Armijo backtracking on the exact augmented Lagrangian.
  const double merit0 = Impl::merit(s.f, lambda_, s.c, s.gradL, eta1_, eta2_);
  double alpha = 1.0;
  bool accepted = false;
  double ft = 0;
  for (int trial = 0; trial <= o.max_backtracks; ++trial) {
    PARASOL_PETSC(VecWAXPY(s.xt, alpha, s.dx, x_));
    PARASOL_PETSC(VecWAXPY(s.lt, alpha, s.dl, lambda_));
    ft = s.evaluate(s.xt, s.lt, s.Jt, s.gt, s.ct, s.gradLt, summary_);
    const double merit_t = Impl::merit(ft, s.lt, s.ct, s.gradLt, eta1_, eta2_);
    if (finite(merit_t) && merit_t <= merit0 + alpha * o.beta * slope) {
      accepted = true;
      break;
    }
    alpha *= o.backtrack;
    ++summary_.backtracks;
  }
  if (!accepted)
    return end(Status::Failed,
               "line search: no sufficient decrease of the augmented Lagrangian after " +
                   std::to_string(o.max_backtracks) + " backtracks (slope " + format(slope) + ")",
               0, sketch_steps);
  PARASOL_PETSC(VecCopy(s.xt, x_));
  PARASOL_PETSC(VecCopy(s.lt, lambda_));
  std::swap(s.g, s.gt);
  std::swap(s.c, s.ct);
  std::swap(s.gradL, s.gradLt);
  std::swap(s.J, s.Jt);
  s.f = ft;
  s.point_valid = true;
  const double new_cn = norm2(s.c);
  summary_.objective = ft;
  summary_.kkt_residual = std::hypot(norm2(s.gradL), new_cn);
  summary_.constraint_violation = new_cn;
  if (!finite(summary_.kkt_residual) || !finite(ft))
    return end(Status::Diverged, "non-finite values after the step", alpha, sketch_steps);
  if (summary_.kkt_residual <= o.tol)
    return end(Status::Converged, "KKT residual <= tol", alpha, sketch_steps);
  return end(Status::Running, "", alpha, sketch_steps);
}

// ------------------------------------------------------------------ state and output
void Solver::save_state(h5::File& file, const std::string& group) const {
  const Impl& s = *impl_;
  write_natural(file, group + "/x", x_, s.x_natural);
  write_natural(file, group + "/lambda", lambda_, s.c_natural);
  h5::write(file, group + "/parameters",
            std::vector<double>{eta1_, eta2_, delta_, static_cast<double>(summary_.sketch_steps),
                                static_cast<double>(summary_.penalty_adaptations),
                                static_cast<double>(summary_.backtracks),
                                static_cast<double>(summary_.function_evaluations),
                                static_cast<double>(summary_.hessian_modifications)},
            {8});
  if (s.previous_direction.size() > 0)  // the warm start of the next sketch
    h5::write(file, group + "/direction",
              std::vector<double>(s.previous_direction.data(),
                                  s.previous_direction.data() + s.previous_direction.size()),
              {static_cast<std::uint64_t>(s.previous_direction.size())});
}

void Solver::load_state(const h5::File& file, const std::string& group) {
  Impl& s = *impl_;
  std::vector<double> x = h5::read_doubles(file, group + "/x");
  std::vector<double> l = h5::read_doubles(file, group + "/lambda");
  std::vector<double> p = h5::read_doubles(file, group + "/parameters");
  check_all(s.comm,
            static_cast<PetscInt>(x.size()) == s.n && static_cast<PetscInt>(l.size()) == s.m &&
                p.size() == 8,
            "alsketch: checkpoint " + file.path() + " does not match problem '" +
                problem_.name() + "' (sizes of x, lambda or parameters)");
  scatter_natural(Eigen::Map<Eigen::VectorXd>(x.data(), s.n), 0, x_, s.x_natural);
  scatter_natural(Eigen::Map<Eigen::VectorXd>(l.data(), s.m), 0, lambda_, s.c_natural);
  eta1_ = p[0], eta2_ = p[1], delta_ = p[2];
  summary_.sketch_steps = static_cast<std::int64_t>(p[3]);
  summary_.penalty_adaptations = static_cast<std::int64_t>(p[4]);
  summary_.backtracks = static_cast<std::int64_t>(p[5]);
  summary_.function_evaluations = static_cast<std::int64_t>(p[6]);
  summary_.hessian_modifications = static_cast<std::int64_t>(p[7]);
  s.point_valid = false;
  s.hessian_valid = false;
  s.previous_direction.resize(0);
  if (file.exists(group + "/direction")) {
    std::vector<double> d = h5::read_doubles(file, group + "/direction");
    check_all(s.comm, static_cast<PetscInt>(d.size()) == s.n + s.m,
              "alsketch: checkpoint " + file.path() + ": direction has the wrong size");
    s.previous_direction = Eigen::Map<Eigen::VectorXd>(d.data(), s.n + s.m);
  }
}

void Solver::write_solution(h5::File& file) const {
  const Impl& s = *impl_;
  write_natural(file, "solution/x", x_, s.x_natural);
  write_natural(file, "solution/lambda", lambda_, s.c_natural);
  h5::set_attr(file, "solution", "problem", problem_.name());
  h5::set_attr(file, "solution", "objective", summary_.objective);
  h5::set_attr(file, "solution", "kkt_residual", summary_.kkt_residual);
  h5::set_attr(file, "solution", "function_evaluations",
               static_cast<std::int64_t>(summary_.function_evaluations));
  h5::set_attr(file, "solution", "sketch_steps", static_cast<std::int64_t>(summary_.sketch_steps));
  h5::set_attr(file, "solution", "penalty_adaptations",
               static_cast<std::int64_t>(summary_.penalty_adaptations));
  h5::set_attr(file, "solution", "backtracks", static_cast<std::int64_t>(summary_.backtracks));
  if (options_.sketch == "ksp") {
    h5::set_attr(file, "solution", "krylov_iterations",
                 static_cast<std::int64_t>(summary_.krylov_iterations));
    h5::set_attr(file, "solution", "kkt_setups", static_cast<std::int64_t>(summary_.kkt_setups));
  }
}

Summary Solve(Problem& problem, const Options& options, std::int64_t max_iterations) {
  Solver solver(problem, options);
  CommonOptions common;
  common.max_it = max_iterations;
  common.tol = options.tol;
  RunSummary run = run_solver(solver, common, nullptr);
  Summary summary = solver.summary();
  summary.status = run.status;
  summary.iterations = run.iterations;
  if (!run.message.empty()) summary.message = run.message;
  return summary;
}

}  // namespace parasol::alsketch
