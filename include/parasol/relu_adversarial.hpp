#pragma once
// Convex adversarial training of two-layer ReLU networks against l_inf perturbations
// (-method adversarial), and the attacks that measure robust accuracy. docs/relu.md
// ("Adversarial training") derives every step.
//
// With the patterns D_i of the clean points held fixed, the robust counterpart of the hinge
// program is
//
//   min  sum_k ( 1 - y_k x_k^T z_k + eps ||z_k||_1 )_+ + beta sum_i ( ||v_i||_2 + ||w_i||_2 )
//   s.t. (2 d_ik - 1) x_k^T v_i >= eps ||v_i||_1,  (2 d_ik - 1) x_k^T w_i >= eps ||w_i||_1,
//   where z_k = sum_i d_ik (v_i - w_i),
//
// i.e. the worst case over ||delta_k||_inf <= eps of the hinge loss (the robust cone
// constraints keep every pattern of x_k + delta_k equal to that of x_k, so the worst case of
// the convex model is also the worst case of the recovered network).
#include <parasol/relu.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace parasol::relu {

// ADMM for the robust program (same splitting family as Solver: consensus u = v with the
// group soft-threshold, cone slacks, loss split; plus an l1-epigraph copy). Options as for
// Solver with method "adversarial", loss "hinge" and epsilon > 0.
class AdversarialSolver : public IterativeSolver {
 public:
  // Collective. Arguments as for Solver (raw features, labels +-1, optional test set).
  AdversarialSolver(MPI_Comm comm, const Options& options, const RowMatrix& X_local,
                    const Eigen::VectorXd& y_local, const RowMatrix& X_test = RowMatrix(),
                    const Eigen::VectorXd& y_test = Eigen::VectorXd());
  ~AdversarialSolver() override;

  std::string family() const override { return "relu"; }
  std::string method() const override { return "adversarial"; }
  std::vector<std::string> history_fields() const override;
  StepReport step(std::int64_t iteration) override;
  void save_state(h5::File& file, const std::string& group) const override;
  void load_state(const h5::File& file, const std::string& group) override;
  void write_solution(h5::File& file) const override;

  ConvexModel model() const;
  const Patterns& patterns() const;
  Summary summary() const;
  // Robust objective at the group-sparse iterate (v, w) (collective).
  double objective() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Worst-case hinge loss of one sample: (1 - y x^T z + eps ||z_head||_1)_+, where z_head is
// the first `perturbed` entries of z (the raw features; a bias entry last is not perturbed).
double robust_hinge(const Eigen::Ref<const Eigen::VectorXd>& x, const Eigen::Ref<const Eigen::VectorXd>& z,
                    double label, double epsilon, Eigen::Index perturbed);
// argmin_z robust_hinge(x, z, y, eps, perturbed) + sigma/2 ||z - c||^2 (closed form up to a
// bisection on the multiplier of the hinge's kink, to round-off).
Eigen::VectorXd robust_hinge_prox(const Eigen::Ref<const Eigen::VectorXd>& x,
                                  const Eigen::Ref<const Eigen::VectorXd>& c, double label,
                                  double epsilon, Eigen::Index perturbed, double sigma);
// Euclidean projection of (r, t) onto the l1-norm cone { (r, t) : ||r||_1 <= t }.
void project_l1_cone(Eigen::Ref<Eigen::VectorXd> r, double& t);

// ---- Attacks (l_inf ball of radius epsilon around each point; no box clipping) ----

struct AttackResult {
  Eigen::VectorXd clean_output;        // model output at x (local rows)
  Eigen::VectorXd adversarial_output;  // model output at x + delta
  RowMatrix perturbation;              // delta (local rows x raw features), ||delta||_inf <= eps
  double clean_accuracy = 0.0;         // over all ranks' rows
  double robust_accuracy = 0.0;        // fraction still correct at x + delta
};

// The exact worst case of the convex model with each point's patterns fixed at the clean
// point: output(x + delta) = sum_i d_i(x) (x + delta)^T (v_i - w_i), minimized over the ball
// by delta = -eps sign(y) sign(z), z = sum_i d_i(x) (v_i - w_i), giving
// margin - eps ||z||_1 (bias entries are not perturbed). Collective (accuracies).
AttackResult worst_case_attack(MPI_Comm comm, const ConvexModel& model, const RowMatrix& X_local,
                               const Eigen::VectorXd& y_local, double epsilon);

struct PgdOptions {
  double epsilon = 0.0;
  std::int64_t steps = 40;
  std::int64_t restarts = 4;   // restart 0 starts at delta = 0, the others uniformly in the ball
  double step_size = 0.0;      // 0: 2.5 eps / steps
  std::uint64_t seed = 1;      // Random(seed, "relu.pgd", global row * restarts + restart)
};
// Projected sign-gradient descent on y f(x + delta) for the network f (relu or gated); keeps
// the lowest margin seen over all restarts and iterates (the clean point included, so it
// never reports a higher accuracy than clean). Collective (global row numbering, accuracies).
AttackResult pgd_attack(MPI_Comm comm, const Network& network, const RowMatrix& X_local,
                        const Eigen::VectorXd& y_local, const PgdOptions& options);

// Reads /solution's convex model (gates, v, w) from a run file (collective).
ConvexModel read_convex_model(const h5::File& file);

}  // namespace parasol::relu
