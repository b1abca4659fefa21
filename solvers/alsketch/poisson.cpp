// poisson: the Poisson control problem of Hong et al. on an N x N interior grid,
//   minimize 1/2 |w - w_true|^2 + 0.05 |z|^2
//   subject to (w_{i-1,j} + w_{i,j-1} + w_{i+1,j} + w_{i,j+1} - 4 w_{ij}) / h^2 + z_{ij} = 0,
// h = 2/(N+1), zero Dirichlet boundary, w_true(i,j) = sin(4 + a(i - (N+1)/2)) +
// cos(3 + a(j - (N+1)/2)), a = 0.1/sqrt(15) (1-based i, j). Start x = 1, lambda = 1.
// x = (w, z) lives on a 2-dof PETSc DMDA, c on a 1-dof DMDA with the same decomposition.
// Natural order (rank independent): x = (vec W, vec Z) column-major, c = vec C.
#include <parasol/error.hpp>

#include <petscdmda.h>
#include <petscksp.h>

#include <cmath>
#include <memory>
#include <string>

#include "hs_problems.hpp"
#include "poisson_fft.hpp"

namespace parasol::alsketch {
namespace {

class PoissonProblem : public Problem {
 public:
  PoissonProblem(MPI_Comm comm, int N, const std::string& schur_pc)
      : comm_(comm), N_(N), schur_fft_(schur_pc == "fft") {
    if (schur_pc != "fft" && schur_pc != "amg")
      throw Error("alsketch: -alsketch_poisson_schur_pc must be fft or amg, not '" + schur_pc + "'");
    PARASOL_PETSC(DMDACreate2d(comm, DM_BOUNDARY_NONE, DM_BOUNDARY_NONE, DMDA_STENCIL_STAR, N, N,
                               PETSC_DECIDE, PETSC_DECIDE, 2, 1, nullptr, nullptr, &dm_x_));
    PARASOL_PETSC(DMSetUp(dm_x_));
    PetscInt px, py;
    const PetscInt *lx, *ly;
    PARASOL_PETSC(DMDAGetInfo(dm_x_, nullptr, nullptr, nullptr, nullptr, &px, &py, nullptr,
                              nullptr, nullptr, nullptr, nullptr, nullptr, nullptr));
    PARASOL_PETSC(DMDAGetOwnershipRanges(dm_x_, &lx, &ly, nullptr));
    PARASOL_PETSC(DMDACreate2d(comm, DM_BOUNDARY_NONE, DM_BOUNDARY_NONE, DMDA_STENCIL_STAR, N, N,
                               px, py, 1, 1, lx, ly, &dm_c_));
    PARASOL_PETSC(DMSetUp(dm_c_));
    PARASOL_PETSC(DMDAGetCorners(dm_x_, &xs_, &ys_, nullptr, &xm_, &ym_, nullptr));
  }
  ~PoissonProblem() override {
    KSPDestroy(&schur_ksp_);
    VecDestroy(&schur_tmp_);
    DMDestroy(&dm_x_);
    DMDestroy(&dm_c_);
    MatDestroy(&J_);
  }
  std::string name() const override { return "poisson"; }
  MPI_Comm comm() const override { return comm_; }
  PetscInt local_variables() const override { return 2 * xm_ * ym_; }
  PetscInt local_constraints() const override { return xm_ * ym_; }

  std::vector<PetscInt> natural_variable_indices() const override {
    std::vector<PetscInt> idx;
    for (PetscInt j = ys_; j < ys_ + ym_; ++j)
      for (PetscInt i = xs_; i < xs_ + xm_; ++i)
        for (PetscInt field = 0; field < 2; ++field) idx.push_back(field * N_ * N_ + j * N_ + i);
    return idx;
  }
  std::vector<PetscInt> natural_constraint_indices() const override {
    std::vector<PetscInt> idx;
    for (PetscInt j = ys_; j < ys_ + ym_; ++j)
      for (PetscInt i = xs_; i < xs_ + xm_; ++i) idx.push_back(j * N_ + i);
    return idx;
  }

  void initial_point(Vec x, Vec lambda) override {
    PARASOL_PETSC(VecSet(x, 1.0));
    PARASOL_PETSC(VecSet(lambda, 1.0));
  }
  double w_true(PetscInt i, PetscInt j) const {
    const double a = 0.1 / std::sqrt(15.0), mid = 0.5 * (N_ + 1);
    return std::sin(4 + a * (i + 1 - mid)) + std::cos(3 + a * (j + 1 - mid));
  }
  double objective(Vec x) override {
    const PetscScalar* v;
    PARASOL_PETSC(VecGetArrayRead(x, &v));
    double local = 0;
    PetscInt k = 0;
    for (PetscInt j = ys_; j < ys_ + ym_; ++j)
      for (PetscInt i = xs_; i < xs_ + xm_; ++i, k += 2) {
        const double dw = v[k] - w_true(i, j);
        local += 0.5 * dw * dw + 0.05 * v[k + 1] * v[k + 1];
      }
    PARASOL_PETSC(VecRestoreArrayRead(x, &v));
    double total = 0;
    MPI_Allreduce(&local, &total, 1, MPI_DOUBLE, MPI_SUM, comm_);
    return total;
  }
  void gradient(Vec x, Vec g) override {
    const PetscScalar* v;
    PetscScalar* out;
    PARASOL_PETSC(VecGetArrayRead(x, &v));
    PARASOL_PETSC(VecGetArray(g, &out));
    PetscInt k = 0;
    for (PetscInt j = ys_; j < ys_ + ym_; ++j)
      for (PetscInt i = xs_; i < xs_ + xm_; ++i, k += 2) {
        out[k] = v[k] - w_true(i, j);
        out[k + 1] = 0.1 * v[k + 1];
      }
    PARASOL_PETSC(VecRestoreArray(g, &out));
    PARASOL_PETSC(VecRestoreArrayRead(x, &v));
  }
  // The constraints are linear: c = J x.
  void constraints(Vec x, Vec c) override {
    ensure_jacobian();
    PARASOL_PETSC(MatMult(J_, x, c));
  }
  Mat create_jacobian() override {
    Mat J;
    PARASOL_PETSC(MatCreateAIJ(comm_, local_constraints(), local_variables(), N_ * N_,
                               2 * N_ * N_, 6, nullptr, 4, nullptr, &J));
    fill_jacobian(J);
    // c = J x uses the first Jacobian handed out (J is constant and nobody changes it: jacobian()
    // is a no-op), so that the problem holds no copy of its own (19 MB at N = 512).
    if (!J_) {
      J_ = J;
      PARASOL_PETSC(PetscObjectReference(reinterpret_cast<PetscObject>(J)));
    }
    return J;
  }
  void jacobian(Vec, Mat J) override {
    // Constant: filled when created; nothing to do unless the caller changed it.
    (void)J;
  }
  Mat create_hessian() override {
    Mat H;
    PARASOL_PETSC(MatCreateAIJ(comm_, local_variables(), local_variables(), 2 * N_ * N_,
                               2 * N_ * N_, 1, nullptr, 0, nullptr, &H));
    PetscInt lo, hi;
    PARASOL_PETSC(MatGetOwnershipRange(H, &lo, &hi));
    for (PetscInt r = lo; r < hi; ++r)
      PARASOL_PETSC(MatSetValue(H, r, r, (r - lo) % 2 == 0 ? 1.0 : 0.1, INSERT_VALUES));
    PARASOL_PETSC(MatAssemblyBegin(H, MAT_FINAL_ASSEMBLY));
    PARASOL_PETSC(MatAssemblyEnd(H, MAT_FINAL_ASSEMBLY));
    return H;
  }
  void hessian(Vec, Vec, Mat) override {}  // constant

  // The Schur complement of the KKT matrix: with J = [L, I] (L = 5-point Delta_h on w, identity
  // on z) and B = diag(b_w I, b_z I) (B = H = diag(1, 0.1) unless a shift was added),
  // S = J B^-1 J^T = L^2 / b_w + I / b_z.
  //  fft (default): S^-1 exactly, by the 2-D discrete sine transform that diagonalizes L
  //    (poisson_fft.hpp); 1 / b_w and 1 / b_z are the means of B^-1's diagonal over the w and
  //    z entries (exact for B constant per block, a preconditioner otherwise). Memory: N^2/P
  //    doubles per rank.
  //  amg: S is fourth order, and AMG on it is weak. A = -L + sqrt(10) I (an M-matrix, second
  //    order) satisfies A^2 >= S >= A^2 / 2 for B = H (since -L >= 0 and
  //    2 sqrt(10)(-L) <= L^2 + 10 I), so S^-1 is approximated within a factor 2 by two solves
  //    with A, each one AMG cycle (-alsketch_poisson_schur_pc_type, default hypre; symmetric, so
  //    the product is SPD as MINRES needs). BoomerAMG's hierarchy is ~46 MB per rank at N = 512.
  // Sign: PETSc's block is -S.
  bool has_schur_preconditioner() const override { return true; }
  void schur_preconditioner(Vec, Vec, Vec b_inverse, PC pc) override {
    if (schur_fft_) {
      fft_inverse_w_ = 1.0, fft_inverse_z_ = 10.0;  // H^-1 = diag(1, 10)
      if (b_inverse) {  // block means of B^-1 (w at even, z at odd local entries)
        const PetscScalar* v;
        PetscInt len;
        PARASOL_PETSC(VecGetLocalSize(b_inverse, &len));
        PARASOL_PETSC(VecGetArrayRead(b_inverse, &v));
        double sums[2] = {0, 0}, total[2];
        for (PetscInt k = 0; k < len; ++k) sums[k % 2] += v[k];
        PARASOL_PETSC(VecRestoreArrayRead(b_inverse, &v));
        MPI_Allreduce(sums, total, 2, MPI_DOUBLE, MPI_SUM, comm_);
        const double points = static_cast<double>(N_) * N_;
        fft_inverse_w_ = total[0] / points, fft_inverse_z_ = total[1] / points;
      }
      if (!fft_) {
        Vec layout;
        PARASOL_PETSC(DMGetGlobalVector(dm_c_, &layout));
        fft_ = std::make_unique<detail::DirichletSineSolver>(
            layout, natural_constraint_indices(), N_, 2.0 / (N_ + 1));
        PARASOL_PETSC(DMRestoreGlobalVector(dm_c_, &layout));
      }
      PARASOL_PETSC(PCSetType(pc, PCSHELL));
      PARASOL_PETSC(PCShellSetContext(pc, this));
      PARASOL_PETSC(PCShellSetApply(pc, apply_schur_fft));
      PARASOL_PETSC(PCShellSetName(pc, "poisson: -(L B_w^-1 L + B_z^-1)^-1 by FFTW's 2-D DST"));
      return;
    }
    if (!schur_ksp_) {
      Mat A;
      PARASOL_PETSC(DMCreateMatrix(dm_c_, &A));
      const double h = 2.0 / (N_ + 1), inv_h2 = 1.0 / (h * h);
      for (PetscInt j = ys_; j < ys_ + ym_; ++j)
        for (PetscInt i = xs_; i < xs_ + xm_; ++i) {
          MatStencil row{0, j, i, 0}, cols[5];
          double vals[5];
          int k = 0;
          cols[k] = row, vals[k++] = 4 * inv_h2 + std::sqrt(10.0);
          if (i > 0) cols[k] = {0, j, i - 1, 0}, vals[k++] = -inv_h2;
          if (i + 1 < N_) cols[k] = {0, j, i + 1, 0}, vals[k++] = -inv_h2;
          if (j > 0) cols[k] = {0, j - 1, i, 0}, vals[k++] = -inv_h2;
          if (j + 1 < N_) cols[k] = {0, j + 1, i, 0}, vals[k++] = -inv_h2;
          PARASOL_PETSC(MatSetValuesStencil(A, 1, &row, k, cols, vals, INSERT_VALUES));
        }
      PARASOL_PETSC(MatAssemblyBegin(A, MAT_FINAL_ASSEMBLY));
      PARASOL_PETSC(MatAssemblyEnd(A, MAT_FINAL_ASSEMBLY));
      PARASOL_PETSC(MatSetOption(A, MAT_SPD, PETSC_TRUE));
      PARASOL_PETSC(KSPCreate(comm_, &schur_ksp_));
      PARASOL_PETSC(KSPSetOptionsPrefix(schur_ksp_, "alsketch_poisson_schur_"));
      PARASOL_PETSC(KSPSetOperators(schur_ksp_, A, A));
      PARASOL_PETSC(MatDestroy(&A));  // the KSP keeps a reference
      PARASOL_PETSC(KSPSetType(schur_ksp_, KSPPREONLY));
      PC amg;
      PARASOL_PETSC(KSPGetPC(schur_ksp_, &amg));
      PARASOL_PETSC(PCSetType(amg, PCHYPRE));  // BoomerAMG: 54 MINRES iterations at N = 128, GAMG 937
      PARASOL_PETSC(KSPSetFromOptions(schur_ksp_));
      PARASOL_PETSC(KSPSetUp(schur_ksp_));
      PARASOL_PETSC(DMCreateGlobalVector(dm_c_, &schur_tmp_));
    }
    PARASOL_PETSC(PCSetType(pc, PCSHELL));
    PARASOL_PETSC(PCShellSetContext(pc, this));
    PARASOL_PETSC(PCShellSetApply(pc, apply_schur));
    PARASOL_PETSC(PCShellSetName(pc, "poisson: -(A A)^-1, A = -Delta_h + sqrt(10) I, one AMG cycle each"));
  }

 private:
  void ensure_jacobian() {
    if (!J_) J_ = create_jacobian();
  }
  void fill_jacobian(Mat J) {
    ISLocalToGlobalMapping map_x, map_c;
    PARASOL_PETSC(DMGetLocalToGlobalMapping(dm_x_, &map_x));
    PARASOL_PETSC(DMGetLocalToGlobalMapping(dm_c_, &map_c));
    PARASOL_PETSC(MatSetLocalToGlobalMapping(J, map_c, map_x));
    PetscInt gxs, gys, gxm, gym;
    PARASOL_PETSC(DMDAGetGhostCorners(dm_x_, &gxs, &gys, nullptr, &gxm, &gym, nullptr));
    const double h = 2.0 / (N_ + 1), inv_h2 = 1.0 / (h * h);
    auto local_x = [&](PetscInt i, PetscInt j, PetscInt field) {
      return ((j - gys) * gxm + (i - gxs)) * 2 + field;
    };
    for (PetscInt j = ys_; j < ys_ + ym_; ++j)
      for (PetscInt i = xs_; i < xs_ + xm_; ++i) {
        const PetscInt row = (j - gys) * gxm + (i - gxs);  // same ghosting for dm_c
        PetscInt cols[6];
        double vals[6];
        int k = 0;
        cols[k] = local_x(i, j, 0), vals[k++] = -4 * inv_h2;
        cols[k] = local_x(i, j, 1), vals[k++] = 1.0;
        if (i > 0) cols[k] = local_x(i - 1, j, 0), vals[k++] = inv_h2;
        if (i + 1 < N_) cols[k] = local_x(i + 1, j, 0), vals[k++] = inv_h2;
        if (j > 0) cols[k] = local_x(i, j - 1, 0), vals[k++] = inv_h2;
        if (j + 1 < N_) cols[k] = local_x(i, j + 1, 0), vals[k++] = inv_h2;
        PARASOL_PETSC(MatSetValuesLocal(J, 1, &row, k, cols, vals, INSERT_VALUES));
      }
    PARASOL_PETSC(MatAssemblyBegin(J, MAT_FINAL_ASSEMBLY));
    PARASOL_PETSC(MatAssemblyEnd(J, MAT_FINAL_ASSEMBLY));
  }

  MPI_Comm comm_;
  PetscInt N_;
  DM dm_x_ = nullptr, dm_c_ = nullptr;
  PetscInt xs_ = 0, ys_ = 0, xm_ = 0, ym_ = 0;
  Mat J_ = nullptr;
  KSP schur_ksp_ = nullptr;
  Vec schur_tmp_ = nullptr;
  bool schur_fft_ = true;
  std::unique_ptr<detail::DirichletSineSolver> fft_;
  double fft_inverse_w_ = 1.0, fft_inverse_z_ = 10.0;  // block means of B^-1

  static PetscErrorCode apply_schur_fft(PC pc, Vec r, Vec y) {
    void* ctx;
    PetscCall(PCShellGetContext(pc, &ctx));
    auto* self = static_cast<PoissonProblem*>(ctx);
    try {
      self->fft_->solve(self->fft_inverse_w_, self->fft_inverse_z_, -1.0, r, y);
    } catch (const std::exception& e) {
      SETERRQ(PETSC_COMM_SELF, PETSC_ERR_LIB, "%s", e.what());
    }
    return 0;
  }

  static PetscErrorCode apply_schur(PC pc, Vec r, Vec y) {
    void* ctx;
    PetscCall(PCShellGetContext(pc, &ctx));
    auto* self = static_cast<PoissonProblem*>(ctx);
    PetscCall(KSPSolve(self->schur_ksp_, r, self->schur_tmp_));
    PetscCall(KSPSolve(self->schur_ksp_, self->schur_tmp_, y));
    PetscCall(VecScale(y, -1.0));
    return 0;
  }
};

}  // namespace

std::unique_ptr<Problem> make_poisson_problem(MPI_Comm comm, int N, const std::string& schur_pc) {
  return std::make_unique<PoissonProblem>(comm, N, schur_pc);
}

}  // namespace parasol::alsketch
