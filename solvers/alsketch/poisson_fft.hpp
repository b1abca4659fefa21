// Exact solves with a(L^2) + b I for L the 5-point Laplacian Delta_h with zero Dirichlet
// boundary on an N x N interior grid: the 2-D discrete sine transform (DST-I in both directions)
// diagonalizes L, with eigenvalues
//   mu_kl = -(4/h^2) (sin^2(pi (k+1) / (2(N+1))) + sin^2(pi (l+1) / (2(N+1)))),  k, l = 0..N-1,
// so (a L^2 + b I)^-1 = DST (a mu^2 + b)^-1 DST / (2(N+1))^2 (FFTW's RODFT00 is unnormalized:
// applied twice it multiplies by 2(N+1) per direction). poisson's Schur complement
// S = G B^-1 G^T with G = [L, I] and B = diag(b_w I, b_z I) is exactly L^2 / b_w + I / b_z.
//
// Distributed with FFTW's MPI real-to-real transforms on row slabs (natural order j N + i);
// the forward transform leaves its output transposed and the backward one takes it so, which
// saves two of the four global transposes. The vectors the caller passes have any layout; a
// VecScatter maps them to the slabs by the natural index of each local entry. Memory: one slab
// of N^2/P doubles (in-place transforms) plus FFTW's transpose buffer.
#pragma once

#include <petscvec.h>

#include <vector>

namespace parasol::alsketch::detail {

class DirichletSineSolver {
 public:
  // `layout`: a vector with the caller's layout (N^2 entries); `natural`: the natural index
  // (j N + i) of each of its local entries; h: the grid spacing.
  DirichletSineSolver(Vec layout, const std::vector<PetscInt>& natural, PetscInt N, double h);
  ~DirichletSineSolver();
  DirichletSineSolver(const DirichletSineSolver&) = delete;
  DirichletSineSolver& operator=(const DirichletSineSolver&) = delete;

  // y = scale * (a L^2 + b I)^-1 r  (a >= 0, b > 0); r and y may be the same vector.
  void solve(double a, double b, double scale, Vec r, Vec y);

 private:
  PetscInt N_;
  double h_;
  double* slab_ = nullptr;       // FFTW's local array (row slab, then transposed slab)
  ptrdiff_t rows_ = 0;           // local rows of the slab
  ptrdiff_t rows_t_ = 0, row_t_start_ = 0;  // local rows of the transposed slab
  void* forward_ = nullptr;      // fftw_plan (kept out of this header)
  void* backward_ = nullptr;
  Vec slab_vec_ = nullptr;       // slab_ as a PETSc vector (global index = natural index)
  VecScatter to_slab_ = nullptr;
  std::vector<double> mu_;       // eigenvalues of the 1-D second difference / h^2
};

}  // namespace parasol::alsketch::detail
