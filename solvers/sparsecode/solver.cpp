// The expectation-truncation EM loop shared by every model (ETSolver), annealing schedules,
// option validation, the model registry and inference on new data.
#include "models.hpp"

#include <parasol/error.hpp>
#include <parasol/random.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

namespace parasol::sparsecode {

// ----- schedules -----------------------------------------------------------------------

Schedule::Schedule(double constant) : points_{{0.0, false, constant}} {
  std::ostringstream out;
  out << constant;
  text_ = out.str();
}

Schedule Schedule::parse(const std::string& text, const std::string& option) {
  Schedule s;
  s.points_.clear();
  s.text_ = text;
  const std::string usage = " (expected a number or pos:value,pos:value,... where pos is an "
                            "iteration, or a fraction of -max_it when it has a decimal point)";
  auto number = [&](const std::string& item) {
    std::size_t used = 0;
    double x = 0.0;
    try {
      x = std::stod(item, &used);
    } catch (const std::exception&) {
      used = std::string::npos;
    }
    if (used != item.size() || !std::isfinite(x))
      throw Error("-" + option + ": cannot read '" + item + "' in '" + text + "'" + usage);
    return x;
  };
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, ',')) {
    const auto colon = item.find(':');
    if (colon == std::string::npos) {
      if (!s.points_.empty() || text.find(',') != std::string::npos)
        throw Error("-" + option + ": '" + item + "' lacks a position" + usage);
      s.points_.push_back({0.0, false, number(item)});
      continue;
    }
    const std::string pos = item.substr(0, colon);
    const bool fraction = pos.find('.') != std::string::npos;
    const double position = number(pos);
    if (fraction && std::abs(position) > 1.0)
      throw Error("-" + option + ": fractional position " + pos + " is outside [-1, 1]");
    if (!fraction && position != std::floor(position))
      throw Error("-" + option + ": position " + pos + " is not an iteration number");
    s.points_.push_back({position, fraction, number(item.substr(colon + 1))});
  }
  if (s.points_.empty()) throw Error("-" + option + ": empty schedule" + usage);
  return s;
}

double Schedule::iteration_of(const Point& p, std::int64_t max_it) const {
  const double it = p.fraction ? p.position * max_it : p.position;
  return it < 0 ? max_it + it : it;
}

double Schedule::at(std::int64_t iteration, std::int64_t max_it) const {
  std::vector<std::pair<double, double>> pts;
  for (const Point& p : points_) pts.emplace_back(iteration_of(p, max_it), p.value);
  std::stable_sort(pts.begin(), pts.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  const double x = static_cast<double>(iteration);
  if (x <= pts.front().first) return pts.front().second;
  for (std::size_t i = 1; i < pts.size(); ++i) {
    if (x <= pts[i].first) {
      const double span = pts[i].first - pts[i - 1].first;
      const double t = span > 0 ? (x - pts[i - 1].first) / span : 1.0;
      return pts[i - 1].second + t * (pts[i].second - pts[i - 1].second);
    }
  }
  return pts.back().second;
}

std::int64_t Schedule::settled_after(std::int64_t max_it) const {
  if (points_.size() < 2) return 0;
  double last = 0.0;
  for (const Point& p : points_) last = std::max(last, iteration_of(p, max_it));
  return static_cast<std::int64_t>(std::ceil(last));
}

// ----- options and registry ------------------------------------------------------------

std::vector<std::string> model_names() { return {"bsc", "mca", "mmca", "tsc", "dsc", "gsc"}; }

bool Options::IsValid(std::string* why) const {
  auto fail = [&](const std::string& message) {
    if (why) *why = message;
    return false;
  };
  const auto names = model_names();
  if (std::find(names.begin(), names.end(), model) == names.end()) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    return fail("-model " + model + " is unknown (valid: " + list + ")");
  }
  if (H < 1) return fail("-H must be at least 1 (got " + std::to_string(H) + ")");
  if (Hprime < 1 || Hprime > H)
    return fail("-Hprime (H') = " + std::to_string(Hprime) + " must lie in [1, H = " +
                std::to_string(H) + "]");
  if (gamma < 1 || gamma > Hprime)
    return fail("-gamma = " + std::to_string(gamma) + " must lie in [1, Hprime = " +
                std::to_string(Hprime) + "]");
  int value_count = 2;
  if (model == "tsc") value_count = 3;
  if (model == "dsc") {
    value_count = static_cast<int>(values.size());
    if (std::count(values.begin(), values.end(), 0.0) != 1)
      return fail("-values must contain 0 exactly once");
    std::vector<double> sorted = values;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end() || value_count < 2)
      return fail("-values must hold at least two distinct values");
    for (double v : values)
      if (!std::isfinite(v)) return fail("-values must be finite");
  }
  const double states = StateSet::count(H, Hprime, gamma, value_count);
  if (states > 2e6)
    return fail("the truncated state set would have " + std::to_string(states) +
                " states per data point; lower -Hprime or -gamma");
  if (model == "gsc" && gamma > 64) return fail("-gamma is limited to 64 for gsc");
  if (noise != "scalar" && noise != "diagonal")
    return fail("-noise must be scalar or diagonal (got " + noise + ")");
  if (max_it < 1) return fail("-max_it must be at least 1");
  if (snapshot_every < 0) return fail("-snapshot_every must not be negative");
  for (std::int64_t it : {std::int64_t(1), max_it}) {
    if (!(temperature.at(it, max_it) > 0.0))
      return fail("-anneal_T must stay positive (it reaches " +
                  std::to_string(temperature.at(it, max_it)) + ")");
    const double ncut = ncut_factor.at(it, max_it);
    if (ncut < 0.0 || ncut > 1.0) return fail("-anneal_ncut must stay within [0, 1]");
  }
  for (const Schedule* s : {&W_noise, &pi_noise, &sigma_noise})
    for (std::int64_t it : {std::int64_t(1), max_it})
      if (s->at(it, max_it) < 0.0) return fail("noise schedules must not be negative");
  if (!(tol >= 0.0)) return fail("-tol must not be negative");
  return true;
}

std::unique_ptr<Model> make_model(const Options& options) {
  std::string why;
  if (!options.IsValid(&why)) throw Error("sparsecode: " + why);
  if (options.model == "bsc" || options.model == "tsc") return make_linear_model(options.model, {});
  if (options.model == "dsc") {
    // The zero value goes first: state set and prior index it as value 0.
    std::vector<double> values{0.0};
    for (double v : options.values)
      if (v != 0.0) values.push_back(v);
    return make_linear_model("dsc", values);
  }
  if (options.model == "gsc") return make_gsc_model(options.noise);
  return make_max_model(options.model);
}

// ----- model defaults and helpers ------------------------------------------------------

void Model::check(const Parameters& p, int H, std::int64_t D) const {
  if (p.W.rows() != H || p.W.cols() != D)
    throw Error("sparsecode: W is " + std::to_string(p.W.rows()) + " x " +
                std::to_string(p.W.cols()) + " but the run has H = " + std::to_string(H) +
                " latents and D = " + std::to_string(D) + " data dimensions");
  if (!p.W.allFinite() || !p.pi.allFinite() || !p.sigma.allFinite())
    throw Error("sparsecode: parameters are not finite");
}

void Model::add_noise(Parameters* p, double W_noise, double pi_noise, double sigma_noise,
                      std::uint64_t seed, std::int64_t iteration) const {
  // One stream per iteration, the same on every rank: no broadcast needed.
  Random rng(seed, "sparsecode.noise", static_cast<std::uint64_t>(iteration));
  if (W_noise > 0)
    for (Eigen::Index j = 0; j < p->W.cols(); ++j)
      for (Eigen::Index i = 0; i < p->W.rows(); ++i) p->W(i, j) += W_noise * rng.normal();
  if (pi_noise > 0)
    for (Eigen::Index i = 0; i < p->pi.size(); ++i) p->pi(i) += pi_noise * rng.normal();
  if (sigma_noise > 0)
    for (Eigen::Index i = 0; i < p->sigma.size(); ++i)
      p->sigma(i) = std::max(1e-3 * std::abs(p->sigma(i)) + 1e-12,
                             p->sigma(i) + sigma_noise * rng.normal());
}

void Model::write_extra(h5::File&, const Parameters&) const {}

void select_top(const std::vector<double>& score, int count, int* selected) {
  std::vector<int> order(score.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + count, order.end(), [&](int a, int b) {
    return score[a] > score[b] || (score[a] == score[b] && a < b);
  });
  std::sort(order.begin(), order.begin() + count);
  std::copy(order.begin(), order.begin() + count, selected);
}

void GaussianNoiseModel::prepare_gaussian(const Parameters& p, const StateSet& states) {
  states_ = &states;
  W_ = p.W;
  H_ = static_cast<int>(W_.rows());
  D_ = static_cast<int>(W_.cols());
  variance_ = p.sigma(0) * p.sigma(0);
  log_norm_ = -0.5 * D_ * (kLog2Pi + std::log(variance_));
  field_norms_ = W_.rowwise().squaredNorm();
  log_prior_ = states.log_prior(log_value_prior(p));
}

Eigen::MatrixXd initial_fields(const DataMoments& m, int H, std::uint64_t seed) {
  Eigen::MatrixXd W(H, m.mean.size());
  for (int h = 0; h < H; ++h) {
    Random rng(seed, "sparsecode.init.W", static_cast<std::uint64_t>(h));
    for (Eigen::Index d = 0; d < W.cols(); ++d)
      W(h, d) = m.mean(d) + 0.25 * m.mean_std * rng.normal();
  }
  return W;
}

// ----- the solver ----------------------------------------------------------------------

namespace {
Options validated(const Options& options) {
  std::string why;
  if (!options.IsValid(&why)) throw Error("sparsecode: " + why);
  return options;
}

std::vector<double> to_vector(const Eigen::VectorXd& v) { return {v.data(), v.data() + v.size()}; }
}  // namespace

ETSolver::ETSolver(MPI_Comm comm, const Options& options, RowMatrix Y_local)
    : comm_(comm),
      options_(validated(options)),
      Y_(std::move(Y_local)),
      model_(make_model(options_)),
      states_(options_.H, options_.Hprime, options_.gamma, model_->latent_values()) {
  check_all(comm_, Y_.allFinite(),
            "sparsecode: the data contain NaN or infinite values (rows " +
                std::to_string(Y_.rows()) + " on this rank)");
  std::int64_t n_local = Y_.rows(), d_local = Y_.cols(), d_max = 0, d_min = 0;
  MPI_Allreduce(&n_local, &N_, 1, MPI_INT64_T, MPI_SUM, comm_);
  MPI_Allreduce(&d_local, &d_max, 1, MPI_INT64_T, MPI_MAX, comm_);
  // Ranks without rows report the common width so they do not trip the check.
  if (n_local == 0) d_local = d_max;
  MPI_Allreduce(&d_local, &d_min, 1, MPI_INT64_T, MPI_MIN, comm_);
  if (N_ < 1 || d_max < 1) throw Error("sparsecode: the data are empty");
  if (d_min != d_max) throw Error("sparsecode: ranks disagree on the data dimension");
  D_ = d_max;
  if (n_local == 0) Y_.resize(0, D_);
  std::int64_t rows_local = Y_.rows();
  MPI_Exscan(&rows_local, &row_offset_, 1, MPI_INT64_T, MPI_SUM, comm_);
  int rank = 0;
  MPI_Comm_rank(comm_, &rank);
  if (rank == 0) row_offset_ = 0;  // MPI_Exscan leaves rank 0's result undefined
  params_ = model_->initialize(data_moments(comm_, Y_), options_.H, options_.seed);
  model_->prepare(params_, states_, 1.0);
}

void ETSolver::set_parameters(const Parameters& p) {
  model_->check(p, options_.H, D_);
  params_ = p;
}

EStep ETSolver::e_step(const RowMatrix& Y) const {
  model_->prepare(params_, states_, 1.0);
  EStep e;
  const int K = states_.size();
  const Eigen::Index n = Y.rows();
  e.candidates.resize(n, states_.Hprime());
  e.loglik.resize(n, K);
  e.log_joint.resize(n);
  e.log_prior = states_.log_prior(model_->log_value_prior(params_));
  const bool per_point = model_->prior_depends_on_candidates();
  if (per_point) e.point_log_prior.resize(n, K);
  Eigen::VectorXd joint(K);
  for (Eigen::Index i = 0; i < n; ++i) {
    model_->select_and_loglik(Y.row(i).data(), e.candidates.row(i).data(), e.loglik.row(i).data());
    if (per_point) {
      model_->point_log_prior(e.candidates.row(i).data(), e.point_log_prior.row(i).data());
      joint = e.loglik.row(i).transpose() + e.point_log_prior.row(i).transpose();
    } else {
      joint = e.loglik.row(i).transpose() + e.log_prior;
    }
    e.log_joint(i) = log_sum_exp(joint.data(), K);
  }
  return e;
}

StepReport ETSolver::step(std::int64_t iteration) {
  const std::int64_t max_it = options_.max_it;
  const double T = options_.temperature.at(iteration, max_it);
  const double beta = 1.0 / T;
  const double ncut = options_.ncut_factor.at(iteration, max_it);
  const double W_noise = options_.W_noise.at(iteration, max_it);
  const double pi_noise = options_.pi_noise.at(iteration, max_it);
  const double sigma_noise = options_.sigma_noise.at(iteration, max_it);
  if (W_noise > 0 || pi_noise > 0 || sigma_noise > 0)
    model_->add_noise(&params_, W_noise, pi_noise, sigma_noise, options_.seed, iteration);

  // E-step over every local point: candidates, per-state log-likelihoods, log-joint sums.
  model_->prepare(params_, states_, T);
  const int K = states_.size();
  const Eigen::Index n = Y_.rows();
  Eigen::Matrix<int, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> candidates(n, states_.Hprime());
  RowMatrix loglik(n, K);
  Eigen::VectorXd log_joint(n);
  const Eigen::VectorXd shared_prior = states_.log_prior(model_->log_value_prior(params_));
  const bool per_point = model_->prior_depends_on_candidates();
  Eigen::VectorXd log_prior = shared_prior;
  // The prior of point i's states (a copy only for models with per-latent priors).
  auto prior_of = [&](Eigen::Index i) -> const Eigen::VectorXd& {
    if (per_point) model_->point_log_prior(candidates.row(i).data(), log_prior.data());
    return log_prior;
  };
  std::int64_t settled = 0;
  for (const Schedule* s : {&options_.temperature, &options_.ncut_factor, &options_.W_noise,
                            &options_.pi_noise, &options_.sigma_noise})
    settled = std::max(settled, s->settled_after(max_it));
  const bool keep_better = iteration > settled && have_candidates_;
  Eigen::VectorXd f(K), old_loglik(K);
  for (Eigen::Index i = 0; i < n; ++i) {
    model_->select_and_loglik(Y_.row(i).data(), candidates.row(i).data(), loglik.row(i).data());
    f = loglik.row(i).transpose() + prior_of(i);
    log_joint(i) = log_sum_exp(f.data(), K);
    if (keep_better && candidates.row(i) != previous_candidates_.row(i)) {
      const Eigen::RowVectorXi fresh = candidates.row(i);
      candidates.row(i) = previous_candidates_.row(i);
      model_->select_and_loglik(Y_.row(i).data(), candidates.row(i).data(), old_loglik.data(), true);
      f = old_loglik + prior_of(i);
      const double old_joint = log_sum_exp(f.data(), K);
      if (old_joint > log_joint(i)) {
        loglik.row(i) = old_loglik.transpose();
        log_joint(i) = old_joint;
      } else {
        candidates.row(i) = fresh;
        prior_of(i);  // back to the fresh candidates' prior
      }
    }
  }
  previous_candidates_ = candidates;
  have_candidates_ = true;

  // Data truncation: keep the points best explained by the truncated state sets.
  const TruncationMass mass =
      truncation_mass(options_.H, options_.gamma, model_->active_probability(params_));
  const auto keep = static_cast<std::int64_t>(
      std::floor(static_cast<double>(N_) * (1.0 - (1.0 - mass.A) * ncut)));
  const std::vector<char> kept = keep_largest(comm_, log_joint.data(), n, std::max<std::int64_t>(keep, 1));

  // Sufficient statistics of the kept points under the tempered posterior; then one
  // Allreduce carries them together with the kept count and the log-likelihood sum.
  const std::int64_t S = model_->statistics_size();
  std::vector<double> stats(S + 2, 0.0);
  Eigen::VectorXd q(K);
  for (Eigen::Index i = 0; i < n; ++i) {
    if (!kept[i]) continue;
    const Eigen::VectorXd& prior = prior_of(i);
    if (options_.anneal_prior)
      f = beta * (loglik.row(i).transpose() + prior);
    else
      f = beta * loglik.row(i).transpose() + prior;
    const double top = f.maxCoeff();
    q = (f.array() - top).exp().matrix();
    q /= q.sum();
    model_->accumulate(Y_.row(i).data(), candidates.row(i).data(), q.data(),
                       loglik.row(i).data(), stats.data());
    stats[S] += 1.0;
    stats[S + 1] += log_joint(i);
  }
  MPI_Allreduce(MPI_IN_PLACE, stats.data(), static_cast<int>(S + 2), MPI_DOUBLE, MPI_SUM, comm_);
  const double n_used = stats[S];
  const double objective = stats[S + 1] / n_used;

  StepReport report;
  report.objective = objective;
  if (!std::isfinite(objective)) {
    report.status = Status::Diverged;
    report.message = "the log-likelihood is not finite";
    return report;
  }
  Parameters next = model_->m_step(stats.data(), n_used, params_);
  if (!next.W.allFinite() || !next.pi.allFinite() || !next.sigma.allFinite() ||
      !(next.sigma.minCoeff() > 0.0)) {
    report.status = Status::Diverged;
    report.message = "the M-step produced invalid parameters (no variance left in the data?)";
    return report;
  }
  params_ = std::move(next);
  if (options_.snapshot_every > 0 && iteration % options_.snapshot_every == 0) {
    const RowMatrix W = params_.W;
    snapshot_iterations_.push_back(static_cast<double>(iteration));
    snapshot_W_.insert(snapshot_W_.end(), W.data(), W.data() + W.size());
  }
  report.fields = {model_->active_probability(params_), model_->noise_level(params_), T, n_used};

  summary_.iterations = iteration;
  summary_.log_likelihood = objective;
  summary_.N_use = static_cast<std::int64_t>(n_used);
  if (options_.tol > 0 && iteration > settled + 1 &&
      std::abs(objective - previous_objective_) <= options_.tol * std::abs(objective)) {
    report.status = Status::Converged;
    report.message = "relative change of the log-likelihood below -tol";
  }
  previous_objective_ = objective;
  return report;
}

namespace {
void write_matrix(h5::File& file, const std::string& path, const Eigen::MatrixXd& M) {
  const RowMatrix R = M;
  h5::write(file, path, std::vector<double>(R.data(), R.data() + R.size()),
            {static_cast<std::uint64_t>(R.rows()), static_cast<std::uint64_t>(R.cols())});
}
void write_vector(h5::File& file, const std::string& path, const Eigen::VectorXd& v) {
  h5::write(file, path, to_vector(v), {static_cast<std::uint64_t>(v.size())});
}
}  // namespace

void ETSolver::save_state(h5::File& file, const std::string& group) const {
  write_matrix(file, group + "/W", params_.W);
  write_vector(file, group + "/pi", params_.pi);
  write_vector(file, group + "/sigma", params_.sigma);
  if (params_.mu.size() > 0) write_vector(file, group + "/mu", params_.mu);
  if (params_.psi.size() > 0) write_vector(file, group + "/psi", params_.psi);
  h5::write(file, group + "/previous_objective", std::vector<double>{previous_objective_}, {1});
  if (!snapshot_iterations_.empty()) {
    h5::write(file, group + "/snapshot_iterations", snapshot_iterations_,
              {snapshot_iterations_.size()});
    h5::write(file, group + "/snapshot_W", snapshot_W_, {snapshot_W_.size()});
  }
  if (!have_candidates_) return;  // the same on every rank: set by step()
  // Row-distributed: each rank writes its points' candidates in global row order.
  std::vector<std::int64_t> cand(previous_candidates_.data(),
                                 previous_candidates_.data() + previous_candidates_.size());
  h5::write_rows(file, group + "/candidates", cand.data(),
                 static_cast<std::uint64_t>(previous_candidates_.rows()),
                 static_cast<std::uint64_t>(options_.Hprime));
}

void ETSolver::load_state(const h5::File& file, const std::string& group) {
  std::vector<std::uint64_t> dims;
  const std::vector<double> W = h5::read_doubles(file, group + "/W", &dims);
  if (dims.size() != 2)
    throw Error("restart " + file.path() + ": " + group + "/W is not a matrix");
  if (static_cast<std::int64_t>(dims[1]) != D_)
    throw Error("restart " + file.path() + ": W has D = " + std::to_string(dims[1]) +
                " columns but the data have D = " + std::to_string(D_));
  if (static_cast<int>(dims[0]) != options_.H)
    throw Error("restart " + file.path() + ": W has H = " + std::to_string(dims[0]) +
                " rows but -H is " + std::to_string(options_.H));
  Parameters p;
  p.W = Eigen::Map<const RowMatrix>(W.data(), dims[0], dims[1]);
  auto read_vector = [&](const std::string& name) {
    const std::vector<double> v = h5::read_doubles(file, group + "/" + name);
    return Eigen::VectorXd(Eigen::Map<const Eigen::VectorXd>(v.data(), v.size()));
  };
  p.pi = read_vector("pi");
  p.sigma = read_vector("sigma");
  if (file.exists(group + "/mu")) p.mu = read_vector("mu");
  if (file.exists(group + "/psi")) p.psi = read_vector("psi");
  try {
    model_->check(p, options_.H, D_);
  } catch (const Error& e) {
    throw Error("restart " + file.path() + ": " + e.what());
  }
  params_ = p;
  if (file.exists(group + "/previous_objective"))
    previous_objective_ = h5::read_doubles(file, group + "/previous_objective").at(0);
  snapshot_iterations_.clear();
  snapshot_W_.clear();
  if (file.exists(group + "/snapshot_iterations")) {
    snapshot_iterations_ = h5::read_doubles(file, group + "/snapshot_iterations");
    snapshot_W_ = h5::read_doubles(file, group + "/snapshot_W");
    if (snapshot_W_.size() != snapshot_iterations_.size() * static_cast<std::size_t>(options_.H * D_))
      throw Error("restart " + file.path() + ": snapshots do not match H x D");
  }
  previous_candidates_.resize(0, options_.Hprime);
  have_candidates_ = false;
  if (file.exists(group + "/candidates")) {
    const std::vector<std::uint64_t> shape = h5::shape(file, group + "/candidates");
    if (shape.size() == 2 && static_cast<std::int64_t>(shape[0]) == N_ &&
        static_cast<int>(shape[1]) == options_.Hprime) {
      const std::vector<std::int64_t> cand =
          h5::read_rows_int64(file, group + "/candidates", row_offset_, Y_.rows());
      previous_candidates_.resize(Y_.rows(), options_.Hprime);
      for (std::size_t i = 0; i < cand.size(); ++i) {
        if (cand[i] < 0 || cand[i] >= options_.H)
          throw Error("restart " + file.path() + ": candidate index out of range");
        previous_candidates_.data()[i] = static_cast<int>(cand[i]);
      }
      have_candidates_ = true;
    }
  }
}

void ETSolver::write_solution(h5::File& file) const {
  write_matrix(file, "solution/W", params_.W);
  write_vector(file, "solution/pi", params_.pi);
  write_vector(file, "solution/sigma", params_.sigma);
  if (params_.mu.size() > 0) write_vector(file, "solution/mu", params_.mu);
  if (params_.psi.size() > 0) write_vector(file, "solution/psi", params_.psi);
  const std::vector<double> values = states_.values();
  h5::write(file, "solution/values", values, {values.size()});
  h5::set_attr(file, "solution", "model", options_.model);
  h5::set_attr(file, "solution", "H", std::int64_t(options_.H));
  h5::set_attr(file, "solution", "Hprime", std::int64_t(options_.Hprime));
  h5::set_attr(file, "solution", "gamma", std::int64_t(options_.gamma));
  h5::set_attr(file, "solution", "D", D_);
  h5::set_attr(file, "solution", "log_likelihood", summary_.log_likelihood);
  h5::set_attr(file, "solution", "W_layout", std::string("H x D: row h is the field of latent h"));
  model_->write_extra(file, params_);
  if (!snapshot_iterations_.empty()) {
    const auto n = static_cast<std::uint64_t>(snapshot_iterations_.size());
    h5::write(file, "snapshots/iteration", snapshot_iterations_, {n});
    h5::write(file, "snapshots/W", snapshot_W_,
              {n, static_cast<std::uint64_t>(options_.H), static_cast<std::uint64_t>(D_)});
  }
}

// ----- inference -----------------------------------------------------------------------

Inference infer(const ETSolver& solver, const RowMatrix& Y, int top_k) {
  const StateSet& S = solver.states();
  const int K = S.size(), H = S.H();
  top_k = std::max(1, std::min(top_k, K));
  const EStep e = solver.e_step(Y);
  const Eigen::Index n = Y.rows();
  Inference out;
  out.states.setZero(n, Eigen::Index(top_k) * H);
  out.probabilities.setZero(n, top_k);
  out.marginals.setZero(n, H);
  out.log_joint = e.log_joint;
  std::vector<int> order(K);
  Eigen::VectorXd q(K);
  for (Eigen::Index i = 0; i < n; ++i) {
    if (e.point_log_prior.size() > 0)
      q = (e.loglik.row(i) + e.point_log_prior.row(i)).transpose().array() - e.log_joint(i);
    else
      q = (e.loglik.row(i).transpose() + e.log_prior).array() - e.log_joint(i);
    q = q.array().exp().matrix();
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(),
                      [&](int a, int b) { return q(a) > q(b) || (q(a) == q(b) && a < b); });
    const int* cand = e.candidates.row(i).data();
    for (int j = 0; j < top_k; ++j) {
      S.expand(order[j], cand, out.states.row(i).data() + Eigen::Index(j) * H);
      out.probabilities(i, j) = q(order[j]);
    }
    for (int k = 1; k < S.combo_begin(); ++k) out.marginals(i, S.singleton_latent(k)) += q(k);
    if (S.combo_count() > 0) {
      const Eigen::VectorXd m =
          S.combo_active().transpose() * q.segment(S.combo_begin(), S.combo_count());
      for (int j = 0; j < S.Hprime(); ++j) out.marginals(i, cand[j]) += m(j);
    }
  }
  return out;
}

void write_inference(h5::File& file, const std::string& group, const Inference& inf, int H,
                     int top_k) {
  top_k = static_cast<int>(inf.probabilities.cols());  // infer() may have capped it at K
  const auto n = static_cast<std::uint64_t>(inf.states.rows());
  h5::write_rows(file, group + "/states", inf.states.data(), n,
                 static_cast<std::uint64_t>(top_k) * H);
  h5::write_rows(file, group + "/probabilities", inf.probabilities.data(), n, top_k);
  h5::write_rows(file, group + "/marginals", inf.marginals.data(), n, H);
  h5::write_rows(file, group + "/log_joint", inf.log_joint.data(), n, 0);
  h5::set_attr(file, group, "top_k", std::int64_t(top_k));
  h5::set_attr(file, group, "states_layout",
               std::string("N x (top_k * H): state j of point n at columns [j H, (j+1) H)"));
}

}  // namespace parasol::sparsecode
