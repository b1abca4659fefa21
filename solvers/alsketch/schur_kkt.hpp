// The `schur` ksp preset: solves the KKT system [B G^T; G 0] (dx; dl) = (r_x; r_c) for a
// diagonal positive B by eliminating dx. With S = G B^-1 G^T (SPD when G has full row rank):
//   S dl = G B^-1 r_x - r_c,   dx = B^-1 (r_x - G^T dl).
// S is applied matrix-free (G^T, a diagonal scaling, G); the KSP (CG by default) works on
// vectors of size m only. With dx computed exactly from dl, the residual of the whole KKT system
// is (0; -(residual of the S system)), so solving S to |res| <= tol gives |K z - b| <= tol.
// No KKT matrix and no vector of n + m: besides the KSP's vectors of m, this holds B^-1 and one
// work vector of n, and one vector of m.
#pragma once

#include <petscksp.h>

#include <string>

namespace parasol::alsketch::detail {

// Whether B is diagonal with positive diagonal; on every rank the same verdict. On false,
// *why says what was found (first offending global row and its value).
bool diagonal_positive(Mat B, std::string* why);

class SchurKkt {
 public:
  // G: the m x n Jacobian; B: diagonal, positive (checked by the caller). The KSP `ksp` gets
  // S as its operator; `pmat` (S itself when null) is its preconditioning matrix.
  SchurKkt(Mat G, Mat B);
  ~SchurKkt();
  SchurKkt(const SchurKkt&) = delete;
  SchurKkt& operator=(const SchurKkt&) = delete;

  Mat schur() const { return S_; }
  Vec inverse_diagonal() const { return inv_diag_; }  // B^-1 as a vector (size n)
  // S assembled, G diag(B)^-1 G^T (for a generic preconditioner such as GAMG); caller owns it.
  Mat assemble_schur() const;
  // Solves the Newton system K (dx; dl) = b = -(gradL; c) with `ksp` on S to
  // |K z - b| <= rtol |b|; with from_current, CG starts from the dl given (continuing an earlier
  // solve after the tolerance was tightened), else from 0. Returns |K z - b|, computed from the
  // blocks (B dx + G^T dl + gradL; G dx + c). The caller reads the KSP's reason and iterations.
  double solve(KSP ksp, Vec gradL, Vec c, double rtol, bool from_current, Vec dx, Vec dl);

 private:
  static PetscErrorCode mult(Mat S, Vec v, Vec out);
  Mat G_ = nullptr, S_ = nullptr;
  Vec inv_diag_ = nullptr;  // B^-1 as a vector (size n)
  Vec work_n_ = nullptr;    // G^T v scaled (size n)
  Vec rhs_s_ = nullptr;     // right-hand side of the S system (size m)
};

}  // namespace parasol::alsketch::detail
