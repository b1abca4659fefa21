// Defaults of the problem interfaces, sampling, lower-level solves and the implicit
// hypergradient shared by methods and tests, and the Problem -> BlockProblem adapter.
#include <parasol/error.hpp>
#include <parasol/random.hpp>

#include <algorithm>
#include <cmath>

#include "common.hpp"

namespace parasol::bilevel {

Sample draw_sample(std::uint64_t seed, const std::string& purpose, std::uint64_t index,
                   std::int64_t population, std::int64_t count) {
  return draw_sample(seed, purpose_id(purpose), index, population, count);
}
Sample draw_sample(std::uint64_t seed, std::uint64_t purpose, std::uint64_t index,
                   std::int64_t population, std::int64_t count) {
  Sample sample;
  if (count <= 0 || count >= population) return sample;
  sample.full = false;
  Random random(seed, purpose, index);
  sample.rows.resize(count);
  for (auto& row : sample.rows) row = static_cast<std::int64_t>(random.below(population));
  std::sort(sample.rows.begin(), sample.rows.end());
  return sample;
}

void Problem::constraints(const Vector&, const Vector&, Vector* g, Matrix* jac_x,
                          Matrix* jac_y) const {
  if (g) g->resize(0);
  if (jac_x) jac_x->resize(0, upper_dim());
  if (jac_y) jac_y->resize(0, lower_dim());
}
void Problem::project_upper(Vector*) const {}
void Problem::project_lower(Vector*) const {}
void Problem::project_feasible(Vector* x, Vector* y) const {
  if (num_constraints() > 0)
    throw Error("bilevel problem " + name() + " has constraints but no projection onto them");
  project_upper(x);
  project_lower(y);
}
double Problem::upper_dot(const Vector& a, const Vector& b) const {
  double value = a.dot(b);
  return upper_distributed() ? detail::allreduce_sum(comm(), value) : value;
}
std::vector<double> Problem::metrics(const Vector&, const Vector&) const { return {}; }
bool Problem::known_solution(Vector*, Vector*) const { return false; }

Matrix BlockProblem::lower_block_hessian(std::int64_t i, const Vector& x, const Vector& y,
                                         const Sample& sample) const {
  const std::int64_t d = block_dim();
  Matrix hessian(d, d);
  Vector unit = Vector::Zero(d), column;
  for (std::int64_t k = 0; k < d; ++k) {
    unit[k] = 1.0;
    lower_block_hvp(i, x, y, unit, &column, nullptr, sample);
    hessian.col(k) = column;
    unit[k] = 0.0;
  }
  return 0.5 * (hessian + hessian.transpose());
}
std::vector<double> BlockProblem::metrics(const Vector&, const std::vector<Vector>&) const {
  return {};
}
bool BlockProblem::known_solution(Vector*) const { return false; }
void BlockProblem::sum_objectives(const Vector& x, std::int64_t first,
                                  const std::vector<Vector>& ys, double* upper,
                                  double* lower) const {
  *upper = *lower = 0.0;
  for (std::size_t k = 0; k < ys.size(); ++k) {
    *upper += upper_block(first + std::int64_t(k), x, ys[k], nullptr, nullptr);
    *lower += lower_block(first + std::int64_t(k), x, ys[k], nullptr, nullptr);
  }
}
void BlockProblem::evaluate(const Vector& x, std::int64_t first, const std::vector<Vector>& ys,
                            double* upper, double* lower, std::vector<double>* values) const {
  sum_objectives(x, first, ys, upper, lower);
  if (!collective_blocks()) {
    double sums[2] = {*upper, *lower};
    detail::allreduce_sum(comm(), sums, 2);
    *upper = sums[0];
    *lower = sums[1];
  }
  *values = metrics(x, ys);
}
namespace {
Vector pick(const Vector& full, const std::vector<std::int64_t>& rows) {
  Vector out(Eigen::Index(rows.size()));
  for (std::size_t j = 0; j < rows.size(); ++j) out[Eigen::Index(j)] = full[Eigen::Index(rows[j])];
  return out;
}
}  // namespace
double BlockProblem::upper_block_rows(std::int64_t i, const Vector& x, const Vector& y,
                                      const std::vector<std::int64_t>& rows,
                                      Vector* grad_x_rows, Vector* grad_y,
                                      const Sample& sample) const {
  Vector grad_x;
  const double value = upper_block(i, x, y, grad_x_rows ? &grad_x : nullptr, grad_y, sample);
  if (grad_x_rows) *grad_x_rows = pick(grad_x, rows);
  return value;
}
void BlockProblem::lower_block_hvp_rows(std::int64_t i, const Vector& x, const Vector& y,
                                        const Vector& v, const std::vector<std::int64_t>& rows,
                                        Vector* hyy_v, Vector* hxy_v_rows,
                                        const Sample& sample) const {
  Vector hxy_v;
  lower_block_hvp(i, x, y, v, hyy_v, hxy_v_rows ? &hxy_v : nullptr, sample);
  if (hxy_v_rows) *hxy_v_rows = pick(hxy_v, rows);
}
bool BlockProblem::coupling_rows(std::int64_t, const Sample&, const Sample&,
                                 std::vector<std::int64_t>*) const {
  return false;
}
std::int64_t BlockProblem::max_coupling_rows(std::int64_t, std::int64_t) const {
  return upper_dim();
}

Vector solve_lower(const Problem& problem, const Vector& x, Vector y, double tol,
                   std::int64_t max_it) {
  // Conjugate gradients on the Newton system, repeated (Newton-CG): exact in one step for
  // quadratic lower levels, fast for the smooth strongly convex ones used here.
  Vector grad;
  for (std::int64_t newton = 0; newton < max_it; ++newton) {
    double value = problem.lower(x, y, nullptr, &grad);
    if (grad.norm() <= tol) break;
    Vector step = Vector::Zero(y.size()), r = -grad, p = r, hp;
    double rr = r.squaredNorm();
    for (std::int64_t k = 0; k < 10 * y.size() + 50 && std::sqrt(rr) > 0.1 * tol; ++k) {
      problem.lower_hvp(x, y, p, &hp, nullptr);
      double curvature = p.dot(hp);
      if (curvature <= 0) break;
      double a = rr / curvature;
      step += a * p;
      r -= a * hp;
      double rr_new = r.squaredNorm();
      p = r + (rr_new / rr) * p;
      rr = rr_new;
    }
    if (step.squaredNorm() == 0.0) step = -grad;
    // Backtracking keeps non-quadratic problems monotone.
    double t = 1.0;
    for (int back = 0; back < 40; ++back, t *= 0.5) {
      Vector trial = y + t * step;
      problem.project_lower(&trial);
      if (problem.lower(x, trial, nullptr, nullptr) <= value + 1e-4 * t * grad.dot(step) ||
          back == 39) {
        y = trial;
        break;
      }
    }
  }
  return y;
}

Vector implicit_hypergradient(const Problem& problem, const Vector& x, const Vector& y,
                              double tol) {
  Vector fx, fy;
  problem.upper(x, y, &fx, &fy);
  // Solve d2f/dy2 v = dF/dy by conjugate gradients.
  Vector v = Vector::Zero(y.size()), r = fy, p = r, hp;
  double rr = r.squaredNorm(), stop = tol * std::max(1.0, fy.norm());
  for (std::int64_t k = 0; k < 20 * y.size() + 100 && std::sqrt(rr) > stop; ++k) {
    problem.lower_hvp(x, y, p, &hp, nullptr);
    double a = rr / p.dot(hp);
    v += a * p;
    r -= a * hp;
    double rr_new = r.squaredNorm();
    p = r + (rr_new / rr) * p;
    rr = rr_new;
  }
  Vector hxy_v;
  problem.lower_hvp(x, y, v, nullptr, &hxy_v);
  return fx - hxy_v;
}

namespace {

// One collective block made of a whole Problem.
class SingleBlock : public BlockProblem {
 public:
  explicit SingleBlock(std::shared_ptr<const Problem> problem) : p_(std::move(problem)) {
    if (p_->num_constraints() > 0)
      throw Error("bilevel: problem " + p_->name() +
                  " has lower-level constraints; the bsvrb methods need an unconstrained lower "
                  "level");
  }
  std::string name() const override { return p_->name(); }
  MPI_Comm comm() const override { return p_->comm(); }
  std::int64_t num_blocks() const override { return 1; }
  std::int64_t upper_dim() const override { return p_->upper_dim(); }
  std::int64_t block_dim() const override { return p_->lower_dim(); }
  bool collective_blocks() const override { return true; }
  std::int64_t lower_samples() const override { return p_->lower_samples(); }
  std::int64_t upper_samples() const override { return p_->upper_samples(); }
  void initial_point(Vector* x, Vector* y) const override { p_->initial_point(x, y); }
  double upper_block(std::int64_t, const Vector& x, const Vector& y, Vector* gx, Vector* gy,
                     const Sample& s) const override {
    return p_->upper(x, y, gx, gy, s);
  }
  double lower_block(std::int64_t, const Vector& x, const Vector& y, Vector* gx, Vector* gy,
                     const Sample& s) const override {
    return p_->lower(x, y, gx, gy, s);
  }
  void lower_block_hvp(std::int64_t, const Vector& x, const Vector& y, const Vector& v,
                       Vector* hyy, Vector* hxy, const Sample& s) const override {
    p_->lower_hvp(x, y, v, hyy, hxy, s);
  }
  std::vector<std::string> metric_names() const override { return p_->metric_names(); }
  std::vector<double> metrics(const Vector& x, const std::vector<Vector>& y) const override {
    return p_->metrics(x, y.at(0));
  }
  bool known_solution(Vector* x) const override {
    Vector y;
    return p_->known_solution(x, &y);
  }
  bool upper_distributed() const { return p_->upper_distributed(); }

 private:
  std::shared_ptr<const Problem> p_;
};

}  // namespace

std::unique_ptr<BlockProblem> as_block_problem(std::shared_ptr<const Problem> problem) {
  if (problem->upper_distributed())
    throw Error("bilevel: the bsvrb methods keep x replicated; problem " + problem->name() +
                " distributes its upper variables over ranks");
  return std::make_unique<SingleBlock>(std::move(problem));
}

namespace detail {

void allreduce_sum(MPI_Comm comm, double* data, std::int64_t n) {
  MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_DOUBLE, MPI_SUM, comm);
}
double allreduce_sum(MPI_Comm comm, double value) {
  MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_DOUBLE, MPI_SUM, comm);
  return value;
}

void save_vector(h5::File& file, const std::string& path, const Vector& v, bool distributed) {
  if (distributed) {
    h5::write_rows(file, path, v.data(), static_cast<std::uint64_t>(v.size()), 0);
  } else {
    h5::write(file, path, std::vector<double>(v.data(), v.data() + v.size()),
              {static_cast<std::uint64_t>(v.size())});
  }
}

Vector load_vector(const h5::File& file, const std::string& path, std::int64_t local_size,
                   bool distributed) {
  std::vector<double> data;
  if (distributed) {
    std::int64_t begin = local_size;
    MPI_Exscan(&local_size, &begin, 1, MPI_INT64_T, MPI_SUM, file.comm());
    int rank = 0;
    MPI_Comm_rank(file.comm(), &rank);
    if (rank == 0) begin = 0;
    data = h5::read_rows(file, path, static_cast<std::uint64_t>(begin),
                         static_cast<std::uint64_t>(local_size));
  } else {
    data = h5::read_doubles(file, path);
  }
  check_all(file.comm(), static_cast<std::int64_t>(data.size()) == local_size,
            "checkpoint " + file.path() + ": " + path + " has " + std::to_string(data.size()) +
                " values, expected " + std::to_string(local_size) +
                " (different problem or rank count?)");
  return Eigen::Map<const Vector>(data.data(), local_size);
}

void save_scalars(h5::File& file, const std::string& path, const std::vector<double>& values) {
  h5::write(file, path, values, {values.size()});
}

std::vector<double> load_scalars(const h5::File& file, const std::string& path,
                                 std::size_t expected) {
  auto values = h5::read_doubles(file, path);
  check_all(file.comm(), values.size() == expected,
            "checkpoint " + file.path() + ": " + path + " has the wrong length");
  return values;
}

ProblemSolver::ProblemSolver(const Options& options, std::shared_ptr<Problem> problem)
    : options_(options), problem_(std::move(problem)) {
  problem_->initial_point(&x_, &y_);
  Vector y_star;
  have_solution_ = problem_->known_solution(&x_star_, &y_star);
}

std::vector<std::string> ProblemSolver::history_fields() const {
  std::vector<std::string> fields = {"lower_objective", "stationarity"};
  if (have_solution_) fields.push_back("x_error");
  for (const auto& name : problem_->metric_names()) fields.push_back(name);
  return fields;
}

StepReport ProblemSolver::report(double stationarity, std::int64_t iteration) {
  if (!have_last_ || options_.eval_every <= 1 || iteration % options_.eval_every == 0) {
    last_ = StepReport();
    last_.objective = problem_->upper(x_, y_, nullptr, nullptr);
    last_.fields.push_back(problem_->lower(x_, y_, nullptr, nullptr));
    last_.fields.push_back(0.0);
    if (have_solution_) last_.fields.push_back(0.0);
    for (double value : problem_->metrics(x_, y_)) last_.fields.push_back(value);
    have_last_ = true;
  }
  StepReport report = last_;
  report.fields[1] = stationarity;
  if (have_solution_) {
    Vector diff = x_ - x_star_;
    report.fields[2] = std::sqrt(problem_->upper_dot(diff, diff) /
                                 std::max(problem_->upper_dot(x_star_, x_star_), 1e-300));
  }
  bool finite = std::isfinite(report.objective) && std::isfinite(stationarity);
  if (!finite) {
    report.status = Status::Diverged;
    report.message = "the iterates became non-finite (step sizes too large?)";
  } else if (options_.tol > 0 && stationarity < options_.tol) {
    report.status = Status::Converged;
    report.message = "stationarity measure below -tol";
  }
  return report;
}

Sample ProblemSolver::lower_batch(const std::string& purpose, std::uint64_t index) const {
  return draw_sample(options_.seed, "bilevel." + purpose, index, problem_->lower_samples(),
                     options_.batch);
}
Sample ProblemSolver::upper_batch(const std::string& purpose, std::uint64_t index) const {
  return draw_sample(options_.seed, "bilevel." + purpose, index, problem_->upper_samples(),
                     options_.batch);
}

void ProblemSolver::save_xy(h5::File& file, const std::string& group) const {
  save_vector(file, group + "/x", x_, problem_->upper_distributed());
  save_vector(file, group + "/y", y_, false);
}
void ProblemSolver::load_xy(const h5::File& file, const std::string& group) {
  x_ = load_vector(file, group + "/x", x_.size(), problem_->upper_distributed());
  y_ = load_vector(file, group + "/y", y_.size(), false);
}

void ProblemSolver::write_solution(h5::File& file) const {
  save_vector(file, "solution/x", x_, problem_->upper_distributed());
  save_vector(file, "solution/y", y_, false);
}

}  // namespace detail
}  // namespace parasol::bilevel
