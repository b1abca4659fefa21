#pragma once
// The shared iteration loop. A solver family supplies its state, one step, the names of its
// history fields and its solution; run_solver() supplies the rest, the same for every
// family: restart from a checkpoint, the monitor line, the run-file history, checkpoints
// every -checkpoint_every iterations and on SIGUSR1, the iteration limit and final status.
#include <parasol/h5.hpp>
#include <parasol/options.hpp>
#include <parasol/run_file.hpp>

#include <string>
#include <vector>

namespace parasol {

struct StepReport {
  double objective = 0.0;
  std::vector<double> fields;         // one per history_fields(), same order
  Status status = Status::Running;    // Converged / Diverged / Failed end the run
  std::string message;                // why, when it ended
};

class IterativeSolver {
 public:
  virtual ~IterativeSolver() = default;
  virtual std::string family() const = 0;   // "sparsecode", "alsketch", ...
  virtual std::string method() const = 0;   // "bsc", "gaussian", ...
  virtual std::vector<std::string> history_fields() const = 0;
  // Performs iteration `iteration` (1-based) and reports it. Must be collective-safe: every
  // rank returns the same status.
  virtual StepReport step(std::int64_t iteration) = 0;
  // The whole state needed to continue bit-for-bit, under `group` of `file` (collective).
  virtual void save_state(h5::File& file, const std::string& group) const = 0;
  virtual void load_state(const h5::File& file, const std::string& group) = 0;
  // Writes /solution (and anything else final) into the run file (collective).
  virtual void write_solution(h5::File& file) const = 0;
};

struct RunSummary {
  Status status = Status::Running;
  std::int64_t iterations = 0;
  double wall_time = 0.0;
  std::string message;
};

// Collective. Runs `solver` from iteration 1, or from the checkpoint named by
// options.restart, until it reports an end or options.max_it is reached.
// `run_file` may be null (library use without output). Does not finalize the run file.
RunSummary run_solver(IterativeSolver& solver, const CommonOptions& options, RunFile* run_file);

// Checkpoint files (used by run_solver; public for tests). Written atomically: FILE.tmp then
// rename. Holds the solver state under /state, the history so far under /history, and
// attributes family, method, nranks, iteration, wall_time.
void write_checkpoint(MPI_Comm comm, const std::string& path, const IterativeSolver& solver,
                      std::int64_t iteration, double wall_time,
                      const std::vector<std::vector<double>>& history_rows);
struct CheckpointInfo {
  std::int64_t iteration = 0;
  double wall_time = 0.0;
  std::vector<std::vector<double>> history_rows;
};
CheckpointInfo read_checkpoint(MPI_Comm comm, const std::string& path, IterativeSolver& solver);

}  // namespace parasol
