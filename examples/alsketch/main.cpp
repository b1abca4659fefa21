// Plugging a user problem into the AdaSketch-Newton solver of parasol.
//
//   minimize   1/2 |x - a|^2                 (a_i = i / n)
//   subject to sum_i x_i - 1 = 0,  |x|^2 - 1 = 0
//
// x is a PETSc vector spread over the ranks; the two constraints live on rank 0. The program
// implements parasol::alsketch::Problem (f, grad f, c, the Jacobian as a PETSc matrix, the
// Hessian of the Lagrangian as a PETSc matrix) and solves it with the solver chosen by
// -alsketch_sketch (default gaussian); it exits 0 when the KKT residual reached 1e-9.
//   mpiexec -n 2 alsketch_example -n 1000 [-alsketch_sketch ksp|gaussian|kaczmarz|block]
#include <parasol/alsketch.hpp>
#include <parasol/error.hpp>
#include <parasol/session.hpp>

#include <cstdio>
#include <string>

namespace al = parasol::alsketch;

class SphereSimplex : public al::Problem {
 public:
  SphereSimplex(MPI_Comm comm, PetscInt n) : comm_(comm), n_(n) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    m_local_ = rank == 0 ? 2 : 0;
    PetscInt lo = 0, hi = 0;
    Vec tmp;
    PARASOL_PETSC(VecCreateMPI(comm, PETSC_DECIDE, n, &tmp));
    PARASOL_PETSC(VecGetLocalSize(tmp, &n_local_));
    PARASOL_PETSC(VecGetOwnershipRange(tmp, &lo, &hi));
    PARASOL_PETSC(VecDestroy(&tmp));
    lo_ = lo;
  }
  std::string name() const override { return "sphere-simplex"; }
  MPI_Comm comm() const override { return comm_; }
  PetscInt local_variables() const override { return n_local_; }
  PetscInt local_constraints() const override { return m_local_; }

  // x_i = 1 + a_i (x = 1 would make the two Jacobian rows parallel: the solver would stop
  // with "the constraint Jacobian loses rank").
  void initial_point(Vec x, Vec lambda) override {
    PetscScalar* v;
    PARASOL_PETSC(VecGetArray(x, &v));
    for (PetscInt k = 0; k < n_local_; ++k) v[k] = 1 + a(lo_ + k);
    PARASOL_PETSC(VecRestoreArray(x, &v));
    PARASOL_PETSC(VecSet(lambda, 0.0));
  }
  double a(PetscInt i) const { return static_cast<double>(i) / n_; }
  double objective(Vec x) override {
    const PetscScalar* v;
    PARASOL_PETSC(VecGetArrayRead(x, &v));
    double local = 0;
    for (PetscInt k = 0; k < n_local_; ++k) local += 0.5 * (v[k] - a(lo_ + k)) * (v[k] - a(lo_ + k));
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
    for (PetscInt k = 0; k < n_local_; ++k) out[k] = v[k] - a(lo_ + k);
    PARASOL_PETSC(VecRestoreArray(g, &out));
    PARASOL_PETSC(VecRestoreArrayRead(x, &v));
  }
  void constraints(Vec x, Vec c) override {
    PetscScalar sum, norm2;
    PARASOL_PETSC(VecSum(x, &sum));
    PARASOL_PETSC(VecDot(x, x, &norm2));
    // Every rank gets and restores the array (rank 1.. own no entries): PETSc tracks the
    // vector's state per rank, and cached norms must be invalidated everywhere.
    PetscScalar* out;
    PARASOL_PETSC(VecGetArray(c, &out));
    if (m_local_ == 2) {
      out[0] = sum - 1;
      out[1] = norm2 - 1;
    }
    PARASOL_PETSC(VecRestoreArray(c, &out));
  }
  Mat create_jacobian() override {
    Mat J;  // 2 x n, both rows on rank 0 (dense rows)
    PARASOL_PETSC(MatCreateAIJ(comm_, m_local_, n_local_, 2, n_, n_local_, nullptr,
                               n_ - n_local_, nullptr, &J));
    return J;
  }
  void jacobian(Vec x, Mat J) override {
    // Row 0: all ones. Row 1: 2 x. Each rank sets the columns it owns.
    const PetscScalar* v;
    PARASOL_PETSC(VecGetArrayRead(x, &v));
    for (PetscInt k = 0; k < n_local_; ++k) {
      const PetscInt col = lo_ + k;
      PARASOL_PETSC(MatSetValue(J, 0, col, 1.0, INSERT_VALUES));
      PARASOL_PETSC(MatSetValue(J, 1, col, 2 * v[k], INSERT_VALUES));
    }
    PARASOL_PETSC(VecRestoreArrayRead(x, &v));
    PARASOL_PETSC(MatAssemblyBegin(J, MAT_FINAL_ASSEMBLY));
    PARASOL_PETSC(MatAssemblyEnd(J, MAT_FINAL_ASSEMBLY));
  }
  Mat create_hessian() override {
    Mat H;  // (1 + 2 lambda_2) I
    PARASOL_PETSC(MatCreateAIJ(comm_, n_local_, n_local_, n_, n_, 1, nullptr, 0, nullptr, &H));
    return H;
  }
  void hessian(Vec, Vec lambda, Mat H) override {
    // lambda_2 lives on rank 0: broadcast it.
    double l2 = 0;
    if (m_local_ == 2) {
      const PetscScalar* l;
      PARASOL_PETSC(VecGetArrayRead(lambda, &l));
      l2 = l[1];
      PARASOL_PETSC(VecRestoreArrayRead(lambda, &l));
    }
    MPI_Bcast(&l2, 1, MPI_DOUBLE, 0, comm_);
    for (PetscInt k = 0; k < n_local_; ++k)
      PARASOL_PETSC(MatSetValue(H, lo_ + k, lo_ + k, 1 + 2 * l2, INSERT_VALUES));
    PARASOL_PETSC(MatAssemblyBegin(H, MAT_FINAL_ASSEMBLY));
    PARASOL_PETSC(MatAssemblyEnd(H, MAT_FINAL_ASSEMBLY));
  }

 private:
  MPI_Comm comm_;
  PetscInt n_, n_local_ = 0, m_local_ = 0, lo_ = 0;
};

int main(int argc, char** argv) {
  parasol::Session session(&argc, &argv, "alsketch_example: a user problem for AdaSketch-Newton\n");
  int code = 0;
  try {
    PetscInt n = 200;
    PARASOL_PETSC(PetscOptionsGetInt(nullptr, nullptr, "-n", &n, nullptr));
    SphereSimplex problem(session.comm(), n);
    al::Options defaults;
    defaults.sketch = "ksp";  // the sketches suit small n: try -alsketch_sketch kaczmarz -n 20
    al::Options options = al::read_options(session.comm(), defaults);  // -alsketch_* options
    options.tol = 1e-9;
    al::Summary summary = al::Solve(problem, options, 200);
    if (session.rank() == 0) std::printf("%s\n", summary.BriefReport().c_str());
    code = summary.status == parasol::Status::Converged && summary.kkt_residual <= 1e-9 ? 0 : 1;
  } catch (const parasol::Error& e) {
    if (session.rank() == 0) std::fprintf(stderr, "alsketch_example: error: %s\n", e.what());
    code = 1;
  }
  return code;
}
