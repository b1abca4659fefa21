#pragma once
// Probabilistic sparse coding learned with Expectation Truncation (ET), data-parallel over
// MPI: the models of ProSper (BSC, MCA, MMCA, TSC, DSC, GSC) re-derived from the math.
//
// Every model has discrete latents s_h taking values from a small set (first value 0) and
// an observation model p(y | s, Theta). Per data point the E-step is truncated to a state
// set K_n: the zero state, every singleton (every latent, every non-zero value), and every
// state over the point's H' candidate latents with 2..gamma non-zeros. Posteriors live in
// the log domain. Data rows are distributed over ranks, parameters are replicated, and the
// sufficient statistics of one EM iteration travel in one MPI_Allreduce.
//
// Plug-in point (the "Problem"): a Model supplies selection, per-state log-likelihoods,
// sufficient statistics and the M-step; the ETSolver supplies everything else (state sets,
// annealing, data truncation, the reduction, checkpoints). Models are chosen by name from
// one registry (model_names(), make_model()).
#include <Eigen/Dense>
#include <mpi.h>
#include <parasol/dataset.hpp>
#include <parasol/solver.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace parasol::sparsecode {

// A piecewise-linear schedule over iterations, as "pos:value,pos:value,...", or a constant
// "value". A position with a decimal point is a fraction of max_it ("0.8"), otherwise an
// iteration number ("120"); negative positions count from the end. Before the first point
// the first value holds, after the last point the last value holds.
class Schedule {
 public:
  Schedule(double constant = 0.0);  // NOLINT: a constant converts implicitly
  // Throws Error naming `option` on a malformed text.
  static Schedule parse(const std::string& text, const std::string& option);
  double at(std::int64_t iteration, std::int64_t max_it) const;
  // The last iteration at which the value still changes (0 for a constant).
  std::int64_t settled_after(std::int64_t max_it) const;
  const std::string& text() const { return text_; }

 private:
  struct Point {
    double position;
    bool fraction;
    double value;
  };
  double iteration_of(const Point& p, std::int64_t max_it) const;
  std::vector<Point> points_;
  std::string text_;
};

struct Options {
  std::string model = "bsc";  // one of model_names()
  int H = 10;                 // latent units
  int Hprime = 8;             // candidates per data point (H' <= H)
  int gamma = 5;              // most active units in a candidate state (gamma <= H')
  std::vector<double> values = {0.0, 1.0, 2.0};  // dsc: latent value set (contains 0)
  std::string noise = "scalar";                  // gsc: "scalar" or "diagonal"
  Schedule temperature = 1.0;  // T; beta = 1/T
  bool anneal_prior = false;   // temper prior and likelihood (true) or likelihood only
  Schedule ncut_factor = 0.0;  // data truncation: keep N (1 - (1 - A(pi)) ncut) points
  Schedule W_noise = 0.0;      // parameter-noise annealing: standard deviations
  Schedule pi_noise = 0.0;
  Schedule sigma_noise = 0.0;
  std::int64_t max_it = 100;   // fractional schedule positions refer to this
  std::uint64_t seed = 1;
  double tol = 0.0;            // stop when |dL| <= tol |L| once the schedules have settled
  std::int64_t snapshot_every = 0;  // keep W every k iterations for /snapshots (0: none)

  bool IsValid(std::string* why) const;
};

// The learned parameters; replicated on every rank.
struct Parameters {
  Eigen::MatrixXd W;      // H x D generative fields (row h = field of latent h)
  Eigen::VectorXd pi;     // bsc/tsc/mca/mmca: 1 entry (P(s_h != 0)); dsc: one per value;
                          // gsc: one per latent
  Eigen::VectorXd sigma;  // noise standard deviation: 1 entry, or D (gsc diagonal)
  Eigen::VectorXd mu;     // gsc: slab means (H)
  Eigen::VectorXd psi;    // gsc: slab standard deviations (H)
};

// The truncated state set shared by every data point of a run: state 0 is all zeros,
// states 1..(V-1)H the singletons (value index v >= 1 on latent h at 1 + (v-1) H + h),
// then the "combos": states over the H' candidates with 2..gamma non-zeros, laid out as a
// (combos x H') matrix that a point maps onto its own candidate latents.
class StateSet {
 public:
  StateSet(int H, int Hprime, int gamma, std::vector<double> values);
  // Number of states for these sizes, without building them (for validation).
  static double count(int H, int Hprime, int gamma, int value_count);

  int H() const { return H_; }
  int Hprime() const { return Hprime_; }
  int gamma() const { return gamma_; }
  const std::vector<double>& values() const { return values_; }
  int value_count() const { return static_cast<int>(values_.size()); }
  int size() const { return 1 + singleton_count() + combo_count(); }
  int singleton_count() const { return (value_count() - 1) * H_; }
  int combo_begin() const { return 1 + singleton_count(); }
  int combo_count() const { return static_cast<int>(combo_values_.rows()); }
  // Singleton state index <-> (latent, value index).
  int singleton_state(int h, int v) const { return 1 + (v - 1) * H_ + h; }
  int singleton_latent(int k) const { return (k - 1) % H_; }
  int singleton_value(int k) const { return 1 + (k - 1) / H_; }

  const Eigen::MatrixXd& combo_values() const { return combo_values_; }    // combos x H'
  const Eigen::MatrixXd& combo_active() const { return combo_active_; }    // 0/1, combos x H'
  // Count of each value index per state over all H latents (column 0: zeros), K x V.
  const Eigen::MatrixXd& value_counts() const { return value_counts_; }
  int active_count(int k) const;

  // Log prior of every state, given the log prior of each value of one latent (size V).
  Eigen::VectorXd log_prior(const Eigen::VectorXd& log_value_prior) const;
  // State k of a point with candidates `candidates` (H') written over all H latents.
  void expand(int k, const int* candidates, double* s) const;

 private:
  int H_, Hprime_, gamma_;
  std::vector<double> values_;
  Eigen::MatrixXd combo_values_;
  Eigen::MatrixXd combo_active_;
  Eigen::MatrixXd value_counts_;
};

// Numerically safe log(sum(exp(x))).
double log_sum_exp(const double* x, int n);

// Prior mass of the states with at most gamma of H units active when each is active with
// probability p (A), and the expected active count restricted to them (B).
struct TruncationMass {
  double A = 1.0;
  double B = 0.0;
};
TruncationMass truncation_mass(int H, int gamma, double p);

// Collective. Marks the values among the `keep` largest over all ranks, found by a
// distributed radix selection over the values' order-preserving 64-bit keys (one
// MPI_Allreduce of a 256-bin histogram per round; never gathers the values). Values tied
// with the cut are all kept, so slightly more than `keep` may be marked.
std::vector<char> keep_largest(MPI_Comm comm, const double* values, std::int64_t n_local,
                               std::int64_t keep);

// Column means and the mean over columns of the standard deviations (collective).
struct DataMoments {
  std::int64_t N = 0;
  Eigen::VectorXd mean;
  double mean_std = 1.0;
};
DataMoments data_moments(MPI_Comm comm, const RowMatrix& Y_local);

// The fields in data units: W_h mu_h for gsc (W and the slab mean share a scale), else W.
Eigen::MatrixXd effective_fields(const Parameters& p);

// The plug-in model interface. One instance per rank; prepare() is called with the
// current parameters before each E-step, so per-point calls can use cached terms.
class Model {
 public:
  virtual ~Model() = default;
  virtual std::string name() const = 0;
  // The latent value set (first value 0).
  virtual std::vector<double> latent_values() const = 0;
  // Initial parameters, identical on every rank (draws keyed by seed and latent index).
  virtual Parameters initialize(const DataMoments& moments, int H, std::uint64_t seed) const = 0;
  // Throws Error if `p` is inconsistent with H and D (a restarted state).
  virtual void check(const Parameters& p, int H, std::int64_t D) const;
  // Log prior of one latent for each value (size V), shared by all latents.
  virtual Eigen::VectorXd log_value_prior(const Parameters& p) const = 0;
  // Models whose prior differs between latents (gsc: pi_h) return true and give each
  // point's state log priors (size K) through point_log_prior() instead.
  virtual bool prior_depends_on_candidates() const { return false; }
  virtual void point_log_prior(const int* /*candidates*/, double* /*log_prior*/) const {}
  // Probability that a latent is non-zero (for truncation mass and the history field pi).
  virtual double active_probability(const Parameters& p) const = 0;
  // Noise level reported in the history (scalar summary).
  virtual double noise_level(const Parameters& p) const { return p.sigma.mean(); }

  virtual void prepare(const Parameters& p, const StateSet& states, double temperature) = 0;
  // For data point y: its H' candidates and the log-likelihood log p(y | s) of each state.
  // With `keep` true the candidates are given (in `candidates`) instead of selected.
  virtual void select_and_loglik(const double* y, int* candidates, double* loglik,
                                 bool keep = false) const = 0;
  virtual std::int64_t statistics_size() const = 0;
  // Adds a kept point's contribution under posterior weights q (sum 1) to `stats`.
  virtual void accumulate(const double* y, const int* candidates, const double* q,
                          const double* loglik, double* stats) const = 0;
  // New parameters from the statistics summed over all ranks and kept points.
  virtual Parameters m_step(const double* stats, double n_used, const Parameters& old) const = 0;
  // Parameter-noise annealing: adds the given noise scales (draws from `rng` keys) and
  // clips to valid ranges.
  virtual void add_noise(Parameters* p, double W_noise, double pi_noise, double sigma_noise,
                         std::uint64_t seed, std::int64_t iteration) const;
  // Extra arrays for /solution besides W, pi, sigma (name, values, dims).
  virtual void write_extra(h5::File& file, const Parameters& p) const;

 protected:
  const StateSet* states_ = nullptr;
};

std::vector<std::string> model_names();
// Throws Error listing the valid names for an unknown name.
std::unique_ptr<Model> make_model(const Options& options);

// Result of one E-step over the local points (exposed for tests and inference).
struct EStep {
  Eigen::Matrix<int, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> candidates;  // n x H'
  RowMatrix loglik;           // n x K: log p(y_n | s_k)
  Eigen::VectorXd log_prior;  // K (shared prior)
  RowMatrix point_log_prior;  // n x K when the prior depends on the candidates, else empty
  Eigen::VectorXd log_joint;  // n: log sum_k p(s_k, y_n) (untempered)
};

struct Summary {
  std::int64_t iterations = 0;
  double log_likelihood = 0.0;  // last objective
  std::int64_t N_use = 0;
};

// Expectation-truncation EM as an IterativeSolver: step() is one EM iteration.
// History fields: pi, sigma, temperature, N_use. Objective: truncated log-likelihood per
// used data point, (1/N_use) sum_n log sum_{s in K_n} p(s, y_n).
class ETSolver : public IterativeSolver {
 public:
  // Y_local: this rank's rows. Collective (data moments, validation, initialization).
  ETSolver(MPI_Comm comm, const Options& options, RowMatrix Y_local);

  std::string family() const override { return "sparsecode"; }
  std::string method() const override { return options_.model; }
  std::vector<std::string> history_fields() const override {
    return {"pi", "sigma", "temperature", "N_use"};
  }
  StepReport step(std::int64_t iteration) override;
  void save_state(h5::File& file, const std::string& group) const override;
  void load_state(const h5::File& file, const std::string& group) override;
  void write_solution(h5::File& file) const override;

  const Parameters& parameters() const { return params_; }
  void set_parameters(const Parameters& p);
  const StateSet& states() const { return states_; }
  Model& model() { return *model_; }
  const Summary& summary() const { return summary_; }
  std::int64_t global_rows() const { return N_; }

  // E-step at temperature 1 over arbitrary local rows (no data truncation).
  EStep e_step(const RowMatrix& Y_local) const;

 private:
  MPI_Comm comm_;
  Options options_;
  RowMatrix Y_;
  std::int64_t N_ = 0;
  std::int64_t D_ = 0;
  std::unique_ptr<Model> model_;
  StateSet states_;
  Parameters params_;
  Summary summary_;
  double previous_objective_ = 0.0;
  // Each local point's candidates of the last iteration. Once the schedules have settled a
  // point keeps them when they explain it better than the new selection, so the truncated
  // log-likelihood cannot drop through a change of candidates.
  Eigen::Matrix<int, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> previous_candidates_;
  bool have_candidates_ = false;
  std::vector<double> snapshot_iterations_;  // -snapshot_every: iterations and W (H x D each)
  std::vector<double> snapshot_W_;
  std::int64_t row_offset_ = 0;  // global index of the first local row
};

// Inference on new data with fixed parameters: per point the top_k states of the
// (untempered) truncated posterior, their probabilities and the marginals p(s_h != 0).
struct Inference {
  RowMatrix states;         // n x (top_k * H): state j of a point at columns [j H, (j+1) H)
  RowMatrix probabilities;  // n x top_k
  RowMatrix marginals;      // n x H
  Eigen::VectorXd log_joint;  // n
};
Inference infer(const ETSolver& solver, const RowMatrix& Y_local, int top_k);
// Collective: writes an Inference as row-distributed arrays under `group`.
void write_inference(h5::File& file, const std::string& group, const Inference& inference,
                     int H, int top_k);

// The bars test data (ProSper's barstest): R x R images, H = 2R bars (R horizontal, R
// vertical) of height `amplitude` (random signs when `signed_bars`), latents from the
// model's prior, Gaussian noise sigma. Rows [row_begin, row_end) of N, each drawn from
// Random(seed, "sparsecode.bars", row) so the data does not depend on the rank count.
struct BarsSpec {
  int R = 5;
  double amplitude = 10.0;
  double sigma = 2.0;
  double pi = 0.2;                         // per-bar activation probability
  std::string model = "bsc";               // "bsc", "tsc", "dsc", "mca", "mmca", "gsc"
  std::vector<double> values = {0, 1, 2};  // dsc value set
  std::vector<double> value_prior = {0.8, 0.15, 0.05};  // dsc prior
  bool signed_bars = false;                // random bar signs (tsc, mmca)
  double slab_mean = 1.0;                  // gsc: z_h ~ N(slab_mean, slab_std^2)
  double slab_std = 1.0;
};
Eigen::MatrixXd bars_fields(const BarsSpec& spec, std::uint64_t seed);  // H x D
RowMatrix bars_data(const BarsSpec& spec, const Eigen::MatrixXd& W, std::int64_t row_begin,
                    std::int64_t row_end, std::uint64_t seed);
// Greedy matching of learned to true fields on per-pixel mean absolute error; returns the
// largest MAE over the matched pairs (learned rows may outnumber true rows). With
// `up_to_sign` a field matches its negative too (tsc: s and -s are equally likely).
double bars_match_error(const Eigen::MatrixXd& learned, const Eigen::MatrixXd& truth,
                        bool up_to_sign = false);

}  // namespace parasol::sparsecode
