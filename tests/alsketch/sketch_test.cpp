// The sketch solvers on their own (sketch.hpp): the distributed solvers take the same steps as
// the dense ones (same draws by natural index; the batched Kaczmarz computes its step sizes as
// single steps would), the accelerated sketch-and-project needs fewer steps, the warm start.
#include <gtest/gtest.h>
#include <parasol/error.hpp>

#include <cmath>

#include "sketch.hpp"

using namespace parasol::alsketch::detail;

namespace {

// A symmetric saddle-point matrix [[B, G^T], [G, 0]] with a sparse, badly scaled B (size 3k).
Eigen::MatrixXd saddle(int k) {
  const int n = 2 * k, N = 3 * k;
  Eigen::MatrixXd K = Eigen::MatrixXd::Zero(N, N);
  for (int i = 0; i < n; ++i) K(i, i) = 1.0 + 0.5 * std::sin(i) + (i % 5 == 0 ? 4.0 : 0.0);
  for (int i = 0; i + 1 < n; ++i) K(i, i + 1) = K(i + 1, i) = 0.3;
  for (int j = 0; j < k; ++j) {  // G: row j touches x_{2j}, x_{2j+1} and x_{2j+2}
    for (int t = 0; t < 3 && 2 * j + t < n; ++t) {
      const double v = 1.0 + 0.25 * t - 0.1 * j;
      K(n + j, 2 * j + t) = K(2 * j + t, n + j) = v;
    }
  }
  return K;
}

Eigen::VectorXd rhs(int N) {
  Eigen::VectorXd b(N);
  for (int i = 0; i < N; ++i) b[i] = std::cos(1.0 + 0.7 * i);
  return b;
}

// K as a distributed AIJ matrix (PETSc's default layout: natural index = global index).
Mat distributed(const Eigen::MatrixXd& K) {
  const PetscInt N = K.rows();
  Mat A;
  PARASOL_PETSC(MatCreateAIJ(MPI_COMM_WORLD, PETSC_DECIDE, PETSC_DECIDE, N, N, N, nullptr, N,
                             nullptr, &A));
  PetscInt lo, hi;
  PARASOL_PETSC(MatGetOwnershipRange(A, &lo, &hi));
  for (PetscInt i = lo; i < hi; ++i)
    for (PetscInt j = 0; j < N; ++j)
      if (K(i, j) != 0) PARASOL_PETSC(MatSetValue(A, i, j, K(i, j), INSERT_VALUES));
  PARASOL_PETSC(MatAssemblyBegin(A, MAT_FINAL_ASSEMBLY));
  PARASOL_PETSC(MatAssemblyEnd(A, MAT_FINAL_ASSEMBLY));
  return A;
}

Eigen::VectorXd gather(Vec v) {
  PetscInt N;
  PARASOL_PETSC(VecGetSize(v, &N));
  VecScatter scatter;
  Vec all;
  PARASOL_PETSC(VecScatterCreateToAll(v, &scatter, &all));
  PARASOL_PETSC(VecScatterBegin(scatter, v, all, INSERT_VALUES, SCATTER_FORWARD));
  PARASOL_PETSC(VecScatterEnd(scatter, v, all, INSERT_VALUES, SCATTER_FORWARD));
  const PetscScalar* a;
  PARASOL_PETSC(VecGetArrayRead(all, &a));
  Eigen::VectorXd out = Eigen::Map<const Eigen::VectorXd>(a, N);
  PARASOL_PETSC(VecRestoreArrayRead(all, &a));
  VecScatterDestroy(&scatter);
  VecDestroy(&all);
  return out;
}

}  // namespace

TEST(AlsketchSketch, DistributedTakesTheDenseSteps) {
  const Eigen::MatrixXd K = saddle(12);
  const Eigen::VectorXd b = rhs(K.rows());
  Mat A = distributed(K);
  Vec bv;
  PARASOL_PETSC(MatCreateVecs(A, nullptr, &bv));
  PetscInt lo, hi;
  PARASOL_PETSC(VecGetOwnershipRange(bv, &lo, &hi));
  std::vector<PetscInt> natural;
  for (PetscInt i = lo; i < hi; ++i) {
    natural.push_back(i);
    PARASOL_PETSC(VecSetValue(bv, i, b[i], INSERT_VALUES));
  }
  PARASOL_PETSC(VecAssemblyBegin(bv));
  PARASOL_PETSC(VecAssemblyEnd(bv));
  for (const char* kind : {"kaczmarz", "gaussian", "block"}) {
    for (bool rownorm : {false, true}) {
      if (rownorm && std::string(kind) != "kaczmarz") continue;
      SketchConfig config;
      config.kind = kind;
      config.seed = 11;
      config.rownorm_weights = rownorm;
      config.block_size = 4;
      const std::int64_t steps = std::string(kind) == "kaczmarz" ? 640 : 40;  // batches of 64
      DenseSketchSolver dense(K, b, config, 3);
      DistributedSketchSolver dist(A, bv, natural, config, 3);
      dense.run(0.0, steps);
      dist.run(0.0, steps);
      EXPECT_EQ(dense.steps(), steps);
      EXPECT_EQ(dist.steps(), steps);
      const Eigen::VectorXd z = gather(dist.z());
      EXPECT_LE((z - dense.z()).norm(), 1e-10 * dense.z().norm()) << kind << " " << rownorm;
      EXPECT_NEAR(dist.residual_norm(), (K * dense.z() - b).norm(), 1e-10 * b.norm()) << kind;
      // and they make progress
      EXPECT_LT((K * dense.z() - b).norm(), 0.9 * b.norm()) << kind;
    }
  }
  VecDestroy(&bv);
  MatDestroy(&A);
}

TEST(AlsketchSketch, AccelerationNeedsFewerSteps) {
  const Eigen::MatrixXd K = saddle(8);
  const Eigen::VectorXd b = rhs(K.rows());
  const double N = static_cast<double>(K.rows());
  // Uniform Kaczmarz: mu = sigma_min(D^-1 K)^2 / N, nu = N (as the solver sets them).
  const Eigen::MatrixXd A = K.rowwise().norm().cwiseInverse().asDiagonal() * K;
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(A * A.transpose(), Eigen::EigenvaluesOnly);
  SketchConfig plain;
  plain.kind = "kaczmarz";
  SketchConfig accelerated = plain;
  accelerated.mu = eig.eigenvalues().minCoeff() / N;
  accelerated.nu = N;
  const double target = 1e-10 * b.norm();
  DenseSketchSolver slow(K, b, plain, 1), fast(K, b, accelerated, 1);
  ASSERT_TRUE(slow.run(target, 10000000));
  ASSERT_TRUE(fast.run(target, 10000000));
  EXPECT_LE((K * fast.z() - b).norm(), target);
  EXPECT_LT(3 * fast.steps(), slow.steps()) << fast.steps() << " vs " << slow.steps();
  // Parameters that are far off (mu much too large) make the accelerated iteration diverge:
  // the solver notices and continues without acceleration, still converging.
  SketchConfig wrong = plain;
  wrong.mu = 0.9;
  wrong.nu = 1.0;
  DenseSketchSolver fallback(K, b, wrong, 1);
  EXPECT_TRUE(fallback.run(target, 10000000));
  EXPECT_LE((K * fallback.z() - b).norm(), target);
}

TEST(AlsketchSketch, WarmStart) {
  const Eigen::MatrixXd K = saddle(8);
  const Eigen::VectorXd b = rhs(K.rows());
  const Eigen::VectorXd exact = K.fullPivLu().solve(b);
  SketchConfig config;
  config.kind = "gaussian";
  // From a multiple of the solution: the scaled start is the solution, no step needed.
  DenseSketchSolver warm(K, b, config, 1);
  warm.warm_start(-3.0 * exact);
  EXPECT_TRUE(warm.run(1e-9 * b.norm(), 0));
  EXPECT_EQ(warm.steps(), 0);
  // From an unrelated direction the start residual is never larger than |b|.
  DenseSketchSolver other(K, b, config, 1);
  other.warm_start(Eigen::VectorXd::Ones(K.rows()));
  EXPECT_LE(other.residual_norm(), b.norm() * (1 + 1e-12));
}
