#include "poisson_fft.hpp"

#include <fftw3-mpi.h>
#include <parasol/error.hpp>

#include <algorithm>
#include <cmath>

namespace parasol::alsketch::detail {

DirichletSineSolver::DirichletSineSolver(Vec layout, const std::vector<PetscInt>& natural,
                                         PetscInt N, double h)
    : N_(N), h_(h) {
  MPI_Comm comm;
  PARASOL_PETSC(PetscObjectGetComm(reinterpret_cast<PetscObject>(layout), &comm));
  static bool fftw_mpi_ready = false;  // fftw_mpi_init once per process
  if (!fftw_mpi_ready) fftw_mpi_init(), fftw_mpi_ready = true;
  ptrdiff_t row_start = 0;
  // Real-to-real transforms: the sizes are counts of doubles.
  const ptrdiff_t alloc = fftw_mpi_local_size_2d_transposed(N, N, comm, &rows_, &row_start,
                                                            &rows_t_, &row_t_start_);
  slab_ = fftw_alloc_real(std::max<ptrdiff_t>(alloc, 1));
  check_all(comm, slab_ != nullptr, "alsketch poisson fft: cannot allocate the FFTW slab");
  // Planned before any data is in the slab (FFTW_ESTIMATE does not touch the arrays).
  forward_ = fftw_mpi_plan_r2r_2d(N, N, slab_, slab_, comm, FFTW_RODFT00, FFTW_RODFT00,
                                  FFTW_ESTIMATE | FFTW_MPI_TRANSPOSED_OUT);
  backward_ = fftw_mpi_plan_r2r_2d(N, N, slab_, slab_, comm, FFTW_RODFT00, FFTW_RODFT00,
                                   FFTW_ESTIMATE | FFTW_MPI_TRANSPOSED_IN);
  check_all(comm, forward_ && backward_, "alsketch poisson fft: FFTW could not plan the DST");
  // The slab as a PETSc vector: rank r holds rows row_start.., i.e. natural indices
  // row_start N .. (row_start + rows) N - 1, in rank order.
  PARASOL_PETSC(VecCreateMPIWithArray(comm, 1, rows_ * N, N * N, slab_, &slab_vec_));
  PetscInt lo, hi;
  PARASOL_PETSC(VecGetOwnershipRange(layout, &lo, &hi));
  check_all(comm, static_cast<PetscInt>(natural.size()) == hi - lo,
            "alsketch poisson fft: natural index list does not match the vector layout");
  IS from, to;
  PARASOL_PETSC(ISCreateStride(comm, hi - lo, lo, 1, &from));
  PARASOL_PETSC(ISCreateGeneral(comm, hi - lo, natural.data(), PETSC_COPY_VALUES, &to));
  PARASOL_PETSC(VecScatterCreate(layout, from, slab_vec_, to, &to_slab_));
  ISDestroy(&from);
  ISDestroy(&to);
  const double pi = std::acos(-1.0);
  mu_.resize(N);
  for (PetscInt k = 0; k < N; ++k) {
    const double s = std::sin(pi * (k + 1) / (2.0 * (N + 1)));
    mu_[k] = -4.0 * s * s / (h * h);
  }
}

DirichletSineSolver::~DirichletSineSolver() {
  VecScatterDestroy(&to_slab_);
  VecDestroy(&slab_vec_);
  if (forward_) fftw_destroy_plan(static_cast<fftw_plan>(forward_));
  if (backward_) fftw_destroy_plan(static_cast<fftw_plan>(backward_));
  fftw_free(slab_);
}

void DirichletSineSolver::solve(double a, double b, double scale, Vec r, Vec y) {
  PARASOL_PETSC(VecScatterBegin(to_slab_, r, slab_vec_, INSERT_VALUES, SCATTER_FORWARD));
  PARASOL_PETSC(VecScatterEnd(to_slab_, r, slab_vec_, INSERT_VALUES, SCATTER_FORWARD));
  // The vector wraps slab_: make sure PETSc has no pending view of it before FFTW writes.
  PetscScalar* data;
  PARASOL_PETSC(VecGetArray(slab_vec_, &data));
  fftw_execute(static_cast<fftw_plan>(forward_));
  // Transposed slab: local row t is frequency row_t_start + t of the second direction; the
  // eigenvalue is symmetric in the two frequencies, so only the indices matter.
  const double norm = 4.0 * (N_ + 1.0) * (N_ + 1.0);
  for (ptrdiff_t t = 0; t < rows_t_; ++t) {
    const double mu_l = mu_[row_t_start_ + t];
    double* row = slab_ + t * N_;
    for (PetscInt k = 0; k < N_; ++k) {
      const double mu = mu_l + mu_[k];
      row[k] *= scale / ((a * mu * mu + b) * norm);
    }
  }
  fftw_execute(static_cast<fftw_plan>(backward_));
  PARASOL_PETSC(VecRestoreArray(slab_vec_, &data));
  PARASOL_PETSC(VecScatterBegin(to_slab_, slab_vec_, y, INSERT_VALUES, SCATTER_REVERSE));
  PARASOL_PETSC(VecScatterEnd(to_slab_, slab_vec_, y, INSERT_VALUES, SCATTER_REVERSE));
}

}  // namespace parasol::alsketch::detail
