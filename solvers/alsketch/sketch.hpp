#pragma once
// Private: randomized iterative sketching solvers for a symmetric system K z = b, on a copy
// of K held identically by every rank (the sketches are drawn from keys that do not involve
// the rank, so every rank takes the same steps and the result does not depend on the rank
// count). Each solver continues from its current iterate when asked to run again (the
// penalty adaptation tightens the target without restarting).
#include <Eigen/Dense>

#include <cstdint>
#include <string>

namespace parasol::alsketch::detail {

class DenseSketchSolver {
 public:
  // kind: gaussian | kaczmarz | block. `key` identifies the outer iteration: the random
  // sketches of step s are drawn from Random(seed, purpose(kind) ^ mix(key), s).
  DenseSketchSolver(const Eigen::MatrixXd& K, const Eigen::VectorXd& b, const std::string& kind,
                    std::uint64_t seed, std::uint64_t key, bool rownorm_weights = false,
                    int block_size = 8);

  // Sketch until |K z - b| <= target or `budget` more steps were taken. True when the
  // target was reached.
  bool run(double target, std::int64_t budget);

  const Eigen::VectorXd& z() const { return z_; }
  double residual_norm() const { return r_.norm(); }
  std::int64_t steps() const { return steps_; }

 private:
  void step();
  const Eigen::MatrixXd& K_;
  Eigen::VectorXd b_, z_, r_;  // r = K z - b, recomputed in full after every step
  std::string kind_;
  std::uint64_t seed_, purpose_;
  bool rownorm_;
  int block_size_;
  Eigen::VectorXd row_norms2_, cumulative_;
  std::int64_t steps_ = 0;
};

}  // namespace parasol::alsketch::detail
