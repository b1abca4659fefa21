#pragma once
// Private helpers shared by the bilevel methods: history reporting and state I/O.
#include <parasol/bilevel.hpp>
#include <parasol/h5.hpp>

#include <string>
#include <vector>

namespace parasol::bilevel::detail {

// Sum of a buffer over ranks, in place.
void allreduce_sum(MPI_Comm comm, double* data, std::int64_t n);
inline void allreduce_sum(MPI_Comm comm, Vector& v) { allreduce_sum(comm, v.data(), v.size()); }
double allreduce_sum(MPI_Comm comm, double value);

// State vectors in checkpoints: replicated (rank 0's copy) or row-distributed slices.
void save_vector(h5::File& file, const std::string& path, const Vector& v, bool distributed);
Vector load_vector(const h5::File& file, const std::string& path, std::int64_t local_size,
                   bool distributed);
void save_scalars(h5::File& file, const std::string& path, const std::vector<double>& values);
std::vector<double> load_scalars(const h5::File& file, const std::string& path,
                                 std::size_t expected);

// Base of the single-problem methods: history columns lower_objective, stationarity,
// x_error (when the problem knows its optimum) and the problem's metrics.
class ProblemSolver : public Solver {
 public:
  ProblemSolver(const Options& options, std::shared_ptr<Problem> problem);
  std::vector<std::string> history_fields() const override;
  const Vector& x() const override { return x_; }
  Vector y() const override { return y_; }
  void write_solution(h5::File& file) const override;

 protected:
  // Evaluates the full objectives and metrics at (x_, y_) for the history row (every
  // options.eval_every iterations; rows in between repeat the last evaluation).
  StepReport report(double stationarity, std::int64_t iteration);
  Sample lower_batch(const std::string& purpose, std::uint64_t index) const;
  Sample upper_batch(const std::string& purpose, std::uint64_t index) const;
  void save_xy(h5::File& file, const std::string& group) const;
  void load_xy(const h5::File& file, const std::string& group);

  Options options_;
  std::shared_ptr<Problem> problem_;
  Vector x_, y_;
  bool have_solution_ = false;
  Vector x_star_;
  StepReport last_;
  bool have_last_ = false;
};

}  // namespace parasol::bilevel::detail
