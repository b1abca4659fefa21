// The Problem interface's defaults and the ReplicatedProblem adapter: a small problem
// evaluated identically on every rank, its x, lambda and c spread over the ranks in PETSc's
// default layout, its Jacobian and Hessian stored as distributed AIJ matrices.
#include <parasol/alsketch.hpp>
#include <parasol/error.hpp>
#include <parasol/partition.hpp>

#include <petscmat.h>

#include <numeric>

namespace parasol::alsketch {

void Problem::hessian(Vec, Vec, Mat) {
  throw Error("alsketch: problem '" + name() + "' has no assembled Hessian");
}

void Problem::hessian_product(Vec x, Vec lambda, Vec v, Vec Hv) {
  Mat H = create_hessian();
  if (!H) throw Error("alsketch: problem '" + name() + "' provides no Hessian (product)");
  hessian(x, lambda, H);
  PARASOL_PETSC(MatMult(H, v, Hv));
  PARASOL_PETSC(MatDestroy(&H));
}

namespace {
std::vector<PetscInt> ownership_indices(MPI_Comm comm, PetscInt local) {
  PetscInt begin = 0;
  MPI_Exscan(&local, &begin, 1, MPIU_INT, MPI_SUM, comm);
  int rank;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) begin = 0;
  std::vector<PetscInt> idx(local);
  std::iota(idx.begin(), idx.end(), begin);
  return idx;
}
}  // namespace

std::vector<PetscInt> Problem::natural_variable_indices() const {
  return ownership_indices(comm(), local_variables());
}
std::vector<PetscInt> Problem::natural_constraint_indices() const {
  return ownership_indices(comm(), local_constraints());
}

Eigen::VectorXd gather_natural(Vec v, const std::vector<PetscInt>& natural_local) {
  MPI_Comm comm;
  PARASOL_PETSC(PetscObjectGetComm(reinterpret_cast<PetscObject>(v), &comm));
  PetscInt n_global, n_local;
  PARASOL_PETSC(VecGetSize(v, &n_global));
  PARASOL_PETSC(VecGetLocalSize(v, &n_local));
  const RankPieces pieces = RankPieces::of(comm, static_cast<int>(n_local));
  const PetscScalar* a;
  PARASOL_PETSC(VecGetArrayRead(v, &a));
  const std::vector<double> values = pieces.allgather(comm, a);
  PARASOL_PETSC(VecRestoreArrayRead(v, &a));
  const std::vector<PetscInt> index = pieces.allgather(comm, natural_local.data());
  Eigen::VectorXd out(n_global);
  for (PetscInt k = 0; k < n_global; ++k) out[index[k]] = values[k];
  return out;
}

// ------------------------------------------------------------------ ReplicatedProblem
namespace {
Eigen::VectorXd gather_all(Vec v) {
  PetscInt lo, hi;
  PARASOL_PETSC(VecGetOwnershipRange(v, &lo, &hi));
  std::vector<PetscInt> idx(hi - lo);
  std::iota(idx.begin(), idx.end(), lo);
  return gather_natural(v, idx);
}

void set_local(Vec v, const Eigen::VectorXd& full) {
  PetscInt lo, hi;
  PARASOL_PETSC(VecGetOwnershipRange(v, &lo, &hi));
  PetscScalar* a;
  PARASOL_PETSC(VecGetArray(v, &a));
  for (PetscInt i = lo; i < hi; ++i) a[i - lo] = full[i];
  PARASOL_PETSC(VecRestoreArray(v, &a));
}

Mat create_dense_aij(MPI_Comm comm, PetscInt rows_local, PetscInt cols_local, PetscInt rows,
                     PetscInt cols) {
  Mat A;
  PARASOL_PETSC(MatCreate(comm, &A));
  PARASOL_PETSC(MatSetSizes(A, rows_local, cols_local, rows, cols));
  PARASOL_PETSC(MatSetType(A, MATAIJ));
  PARASOL_PETSC(MatSeqAIJSetPreallocation(A, cols, nullptr));
  PARASOL_PETSC(MatMPIAIJSetPreallocation(A, cols_local, nullptr, cols - cols_local, nullptr));
  PARASOL_PETSC(MatSetOption(A, MAT_NEW_NONZERO_ALLOCATION_ERR, PETSC_FALSE));
  return A;
}

// Every entry of the local rows, zeros included, so the nonzero pattern never changes.
void set_local_rows(Mat A, const Eigen::MatrixXd& full) {
  PetscInt lo, hi;
  PARASOL_PETSC(MatGetOwnershipRange(A, &lo, &hi));
  std::vector<PetscInt> cols(full.cols());
  std::iota(cols.begin(), cols.end(), 0);
  std::vector<double> row(full.cols());
  for (PetscInt i = lo; i < hi; ++i) {
    for (Eigen::Index j = 0; j < full.cols(); ++j) row[j] = full(i, j);
    PARASOL_PETSC(MatSetValues(A, 1, &i, static_cast<PetscInt>(cols.size()), cols.data(),
                               row.data(), INSERT_VALUES));
  }
  PARASOL_PETSC(MatAssemblyBegin(A, MAT_FINAL_ASSEMBLY));
  PARASOL_PETSC(MatAssemblyEnd(A, MAT_FINAL_ASSEMBLY));
}

void check_shape(const std::string& name, const char* what, Eigen::Index rows,
                 Eigen::Index cols, Eigen::Index want_rows, Eigen::Index want_cols) {
  if (rows != want_rows || cols != want_cols)
    throw Error("alsketch: problem '" + name + "': " + what + " is " + std::to_string(rows) +
                " x " + std::to_string(cols) + ", expected " + std::to_string(want_rows) +
                " x " + std::to_string(want_cols));
}
}  // namespace

ReplicatedProblem::ReplicatedProblem(MPI_Comm comm, int n, int m) : comm_(comm), n_(n), m_(m) {
  if (n < 1 || m < 0) throw Error("alsketch: a problem needs n >= 1 and m >= 0");
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  // PETSc's default split: the first (n mod size) ranks own one more.
  n_local_ = n / size + (rank < n % size ? 1 : 0);
  m_local_ = m / size + (rank < m % size ? 1 : 0);
}

ReplicatedProblem::~ReplicatedProblem() = default;

void ReplicatedProblem::initial_point(Vec x, Vec lambda) {
  Eigen::VectorXd x0 = start_x(), l0 = start_lambda();
  check_shape(name(), "start_x", x0.size(), 1, n_, 1);
  check_shape(name(), "start_lambda", l0.size(), 1, m_, 1);
  set_local(x, x0);
  set_local(lambda, l0);
}

double ReplicatedProblem::objective(Vec x) { return f(gather_all(x)); }

void ReplicatedProblem::gradient(Vec x, Vec g) {
  Eigen::VectorXd full = grad_f(gather_all(x));
  check_shape(name(), "grad_f", full.size(), 1, n_, 1);
  set_local(g, full);
}

void ReplicatedProblem::constraints(Vec x, Vec c) {
  Eigen::VectorXd full = this->c(gather_all(x));
  check_shape(name(), "c", full.size(), 1, m_, 1);
  set_local(c, full);
}

Mat ReplicatedProblem::create_jacobian() {
  return create_dense_aij(comm_, m_local_, n_local_, m_, n_);
}

void ReplicatedProblem::jacobian(Vec x, Mat J) {
  Eigen::MatrixXd full = jac(gather_all(x));
  check_shape(name(), "jac", full.rows(), full.cols(), m_, n_);
  set_local_rows(J, full);
}

Mat ReplicatedProblem::create_hessian() {
  return create_dense_aij(comm_, n_local_, n_local_, n_, n_);
}

void ReplicatedProblem::hessian(Vec x, Vec lambda, Mat H) {
  Eigen::MatrixXd full = hess_lagrangian(gather_all(x), gather_all(lambda));
  check_shape(name(), "hess_lagrangian", full.rows(), full.cols(), n_, n_);
  set_local_rows(H, full);
}

}  // namespace parasol::alsketch
