#include "schur_kkt.hpp"

#include <parasol/error.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>

namespace parasol::alsketch::detail {

bool diagonal_positive(Mat B, std::string* why) {
  MPI_Comm comm;
  PARASOL_PETSC(PetscObjectGetComm(reinterpret_cast<PetscObject>(B), &comm));
  PetscInt lo, hi;
  PARASOL_PETSC(MatGetOwnershipRange(B, &lo, &hi));
  // The first offending row on this rank (PETSC_MAX_INT if none) and what was wrong.
  PetscInt bad_row = PETSC_MAX_INT;
  double bad_value = 0;
  bool off_diagonal = false;
  for (PetscInt i = lo; i < hi && bad_row == PETSC_MAX_INT; ++i) {
    PetscInt ncols;
    const PetscInt* idx;
    const PetscScalar* val;
    PARASOL_PETSC(MatGetRow(B, i, &ncols, &idx, &val));
    double diag = 0;
    for (PetscInt k = 0; k < ncols; ++k) {
      if (idx[k] == i) {
        diag = val[k];
      } else if (val[k] != 0.0) {
        bad_row = i, bad_value = val[k], off_diagonal = true;
        break;
      }
    }
    if (bad_row == PETSC_MAX_INT && !(diag > 0)) bad_row = i, bad_value = diag;
    PARASOL_PETSC(MatRestoreRow(B, i, &ncols, &idx, &val));
  }
  PetscInt first = PETSC_MAX_INT;
  MPI_Allreduce(&bad_row, &first, 1, MPIU_INT, MPI_MIN, comm);
  if (first == PETSC_MAX_INT) return true;
  // The owner of the first offending row tells the others what it found.
  int rank, owner = 0, mine;
  MPI_Comm_rank(comm, &rank);
  mine = bad_row == first ? rank : 0;
  MPI_Allreduce(&mine, &owner, 1, MPI_INT, MPI_MAX, comm);
  double info[2] = {bad_value, off_diagonal ? 1.0 : 0.0};
  MPI_Bcast(info, 2, MPI_DOUBLE, owner, comm);
  if (why) {
    std::ostringstream s;
    s << "row " << first << (info[1] != 0 ? " has an off-diagonal entry " : " has diagonal ")
      << info[0];
    *why = s.str();
  }
  return false;
}

SchurKkt::SchurKkt(Mat G, Mat B) : G_(G) {
  PARASOL_PETSC(PetscObjectReference(reinterpret_cast<PetscObject>(G)));
  PARASOL_PETSC(MatCreateVecs(G, &work_n_, &rhs_s_));
  PARASOL_PETSC(VecDuplicate(work_n_, &inv_diag_));
  PARASOL_PETSC(MatGetDiagonal(B, inv_diag_));
  PARASOL_PETSC(VecReciprocal(inv_diag_));
  MPI_Comm comm;
  PARASOL_PETSC(PetscObjectGetComm(reinterpret_cast<PetscObject>(G), &comm));
  PetscInt ml, m;
  PARASOL_PETSC(MatGetLocalSize(G, &ml, nullptr));
  PARASOL_PETSC(MatGetSize(G, &m, nullptr));
  PARASOL_PETSC(MatCreateShell(comm, ml, ml, m, m, this, &S_));
  PARASOL_PETSC(MatShellSetOperation(S_, MATOP_MULT, reinterpret_cast<void (*)(void)>(mult)));
  PARASOL_PETSC(MatSetOption(S_, MAT_SPD, PETSC_TRUE));
}

SchurKkt::~SchurKkt() {
  MatDestroy(&S_);
  MatDestroy(&G_);
  for (Vec* v : {&inv_diag_, &work_n_, &rhs_s_}) VecDestroy(v);
}

PetscErrorCode SchurKkt::mult(Mat S, Vec v, Vec out) {
  SchurKkt* self;
  PetscCall(MatShellGetContext(S, &self));
  PetscCall(MatMultTranspose(self->G_, v, self->work_n_));
  PetscCall(VecPointwiseMult(self->work_n_, self->work_n_, self->inv_diag_));
  PetscCall(MatMult(self->G_, self->work_n_, out));
  return 0;
}

Mat SchurKkt::assemble_schur() const {
  Mat GD, S;
  PARASOL_PETSC(MatDuplicate(G_, MAT_COPY_VALUES, &GD));
  PARASOL_PETSC(MatDiagonalScale(GD, nullptr, inv_diag_));
  PARASOL_PETSC(MatMatTransposeMult(GD, G_, MAT_INITIAL_MATRIX, PETSC_DEFAULT, &S));
  PARASOL_PETSC(MatDestroy(&GD));
  return S;
}

double SchurKkt::solve(KSP ksp, Vec gradL, Vec c, double rtol, bool from_current, Vec dx,
                       Vec dl) {
  PetscReal g_norm, c_norm;
  PARASOL_PETSC(VecNorm(gradL, NORM_2, &g_norm));
  PARASOL_PETSC(VecNorm(c, NORM_2, &c_norm));
  const double b_norm = std::hypot(g_norm, c_norm);
  // s = G B^-1 r_x - r_c with (r_x; r_c) = -(gradL; c):  s = c - G B^-1 gradL
  PARASOL_PETSC(VecPointwiseMult(work_n_, gradL, inv_diag_));
  PARASOL_PETSC(MatMult(G_, work_n_, rhs_s_));
  PARASOL_PETSC(VecAYPX(rhs_s_, -1.0, c));
  PetscReal s_norm;
  PARASOL_PETSC(VecNorm(rhs_s_, NORM_2, &s_norm));
  // The whole system's residual is the S system's: its tolerance relative to |s| (the KSP's
  // default test is relative to the right-hand side also when it starts from dl).
  const double s_rtol =
      s_norm > 0 ? std::min(0.5, std::max(rtol * b_norm / s_norm, 1e-15)) : 0.5;
  PARASOL_PETSC(KSPSetTolerances(ksp, s_rtol, 0.0, PETSC_DEFAULT, PETSC_DEFAULT));
  PARASOL_PETSC(KSPSetInitialGuessNonzero(ksp, from_current ? PETSC_TRUE : PETSC_FALSE));
  PARASOL_PETSC(KSPSolve(ksp, rhs_s_, dl));
  PARASOL_PETSC(KSPSetInitialGuessNonzero(ksp, PETSC_FALSE));
  // dx = B^-1 (r_x - G^T dl) = -B^-1 (gradL + G^T dl)
  PARASOL_PETSC(MatMultTransposeAdd(G_, dl, gradL, work_n_));
  PARASOL_PETSC(VecPointwiseMult(dx, work_n_, inv_diag_));
  PARASOL_PETSC(VecScale(dx, -1.0));
  // |K z - b|: (B dx + G^T dl + gradL; G dx + c), B dx = dx / B^-1
  PARASOL_PETSC(VecPointwiseDivide(work_n_, dx, inv_diag_));
  PARASOL_PETSC(MatMultTransposeAdd(G_, dl, work_n_, work_n_));
  PARASOL_PETSC(VecAXPY(work_n_, 1.0, gradL));
  PARASOL_PETSC(MatMultAdd(G_, dx, c, rhs_s_));
  PetscReal rx_norm, rc_norm;
  PARASOL_PETSC(VecNorm(work_n_, NORM_2, &rx_norm));
  PARASOL_PETSC(VecNorm(rhs_s_, NORM_2, &rc_norm));
  return std::hypot(rx_norm, rc_norm);
}

}  // namespace parasol::alsketch::detail
