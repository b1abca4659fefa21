#pragma once
// Private: randomized iterative sketching solvers for a symmetric system K z = b.
//
// DenseSketchSolver works on a copy of K held identically by every rank (small problems);
// DistributedSketchSolver (distributed_sketch.cpp) works on the distributed PETSc KKT matrix.
// Both draw their sketches from keys that involve neither the rank nor the rank count (the
// step number and the natural index of a row), so the iterates do not depend on the rank count,
// and both continue from their current iterate when asked to run again (the penalty adaptation
// tightens the target without restarting).
//
// The residual r = K z - b is updated incrementally (Kaczmarz: O(n + m) per step with K^2
// precomputed on the dense path) and recomputed in full every `recompute_interval` steps and
// before the target is declared met, so round-off in the updates cannot accumulate.
#include <Eigen/Dense>
#include <petscmat.h>
#include <petscvec.h>

#include <cstdint>
#include <string>
#include <vector>

namespace parasol::alsketch::detail {

struct SketchConfig {
  std::string kind;  // gaussian | kaczmarz | block
  std::uint64_t seed = 2023;
  bool rownorm_weights = false;  // kaczmarz: rows drawn with probability |K_i|^2 / |K|_F^2
  int block_size = 8;            // block: columns of S
  // Dense path: Nesterov-accelerated sketch-and-project (Gower, Hanzely, Richtarik, Stich 2018;
  // for kaczmarz the accelerated randomized Kaczmarz of Liu and Wright 2016) with parameters
  // mu = lambda_min(E[Z]) and nu (E[Z E[Z]^-1 Z] <= nu E[Z]), Z the projection of one step.
  // Converges like (1 - sqrt(mu / nu))^k instead of (1 - mu)^k. mu <= 0: not accelerated.
  double mu = 0.0, nu = 0.0;
  std::int64_t recompute_interval = 0;  // 0: the dimension n + m (dense), 64 (distributed)
};

// The random draws of sketch step `step` of the solve keyed `key`: one Random per
// (step, natural index), so every rank draws the entries of S it owns independently.
std::uint64_t sketch_step_purpose(const SketchConfig& config, std::uint64_t key,
                                  std::int64_t step);

class DenseSketchSolver {
 public:
  // `key` identifies the outer iteration.
  DenseSketchSolver(const Eigen::MatrixXd& K, const Eigen::VectorXd& b, const SketchConfig& config,
                    std::uint64_t key);

  // Start from t z0 instead of 0, t = argmin |K (t z0) - b| (so |r| <= |b| still): near a
  // degenerate solution the Newton directions of successive iterations are nearly parallel
  // along the small singular directions of K that sketching resolves slowest.
  void warm_start(const Eigen::VectorXd& z0);

  // Sketch until |K z - b| <= target or `budget` more steps were taken. True when the
  // target was reached.
  bool run(double target, std::int64_t budget);

  const Eigen::VectorXd& z() const { return z_; }
  double residual_norm() const { return r_.norm(); }
  std::int64_t steps() const { return steps_; }

 private:
  void step();
  // The projection from a point with residual r: the step d_z = K S (S^T K^2 S)^+ S^T r and
  // its residual change d_r = K d_z. Kaczmarz: returns the row i and scale a (d_z = a K_i)
  // without forming d_z (i = -1 otherwise).
  Eigen::Index projection(const Eigen::VectorXd& r, double* a, Eigen::VectorXd* d_z,
                          Eigen::VectorXd* d_r);
  void recompute_residual();
  bool accelerated() const { return config_.mu > 0 && config_.nu > 0; }
  const Eigen::MatrixXd& K_;
  Eigen::MatrixXd K2_;  // K^2: the residual change of a step along direction d is K (K ... )
  Eigen::VectorXd b_, z_, r_, z_start_;
  Eigen::VectorXd v_, rv_, y_, ry_;  // acceleration: the auxiliary sequence v, the point y
  SketchConfig config_;
  std::uint64_t purpose_;
  Eigen::VectorXd row_norms2_, cumulative_;
  std::int64_t steps_ = 0, since_recompute_ = 0, recompute_interval_ = 1;
};

// Sketching on the distributed KKT matrix K (assembled AIJ for kaczmarz; any Mat with MatMult
// for gaussian/block) without gathering it. `natural` is the natural index of each local row
// (x entries 0..n-1, c entries n..n+m-1), so the draws do not depend on the layout.
//  - kaczmarz: every rank draws the same rows i_1..i_B of a batch of B steps; their owners
//    share the rows and r_i at the batch start (one MPI_Allgatherv); every rank then computes
//    the B step sizes sequentially, exactly as B single steps would (r_{i_k} before step k is
//    r_{i_k} at the start minus sum_{j<k} alpha_j K_{i_k}.K_{i_j}), and updates its part of z
//    (sparse) and of r = K z - b through its local column access of K (r -= alpha K K_i).
//  - gaussian/block: S has entries Random(seed, step, natural index); K S by MatMult, the small
//    s x s projection solved with Eigen; r = K z - b updated incrementally with one more MatMult.
class DistributedSketchSolver {
 public:
  DistributedSketchSolver(Mat K, Vec b, const std::vector<PetscInt>& natural,
                          const SketchConfig& config, std::uint64_t key);
  ~DistributedSketchSolver();
  DistributedSketchSolver(const DistributedSketchSolver&) = delete;
  DistributedSketchSolver& operator=(const DistributedSketchSolver&) = delete;

  bool run(double target, std::int64_t budget);  // collective
  Vec z() const { return z_; }
  double residual_norm() const;  // collective
  std::int64_t steps() const { return steps_; }

 private:
  // Shares the batch's rows and |r|^2; takes the steps unless |r| <= target already (then
  // returns true without a step).
  bool kaczmarz_batch(int steps, double target);
  void block_step(int s);
  void recompute_residual();
  MPI_Comm comm_;
  Mat K_;
  Vec b_, z_ = nullptr, r_ = nullptr;
  std::vector<Vec> S_, KS_;
  SketchConfig config_;
  std::uint64_t purpose_;
  PetscInt lo_ = 0, hi_ = 0, N_ = 0;
  std::vector<PetscInt> natural_local_;
  std::vector<PetscInt> petsc_of_natural_;  // kaczmarz: global PETSc row of natural row i
  std::vector<double> cumulative_;  // kaczmarz rownorm: cumulative |K_i|^2 in natural order
  // kaczmarz: local rows in CSR and the same entries by column (CSC over global columns).
  std::vector<PetscInt> row_ptr_, row_col_;
  std::vector<double> row_val_, row_norm2_;
  std::vector<PetscInt> row_length_;   // nonzeros of every row of K, by PETSc index
  std::vector<PetscInt> ranges_;       // ownership ranges of the rows
  std::vector<PetscInt> col_ptr_;        // size N + 1 (global columns)
  std::vector<PetscInt> col_row_;        // local row offsets
  std::vector<double> col_val_;
  std::int64_t steps_ = 0, since_recompute_ = 0, recompute_interval_ = 64;
};

}  // namespace parasol::alsketch::detail
