#pragma once
// The run file: one self-describing HDF5 file per run (schema in docs/output-format.md).
// It is written as FILE.partial and renamed to FILE only when complete, so an existing
// FILE is never left half-overwritten. /history rows are appended and flushed as the run
// goes (batched: at most one flush per flush interval, default 1 s, so that cheap iterations
// are not slowed by collective I/O), so a killed run keeps its history in FILE.partial up to
// the last flush.
#include <parasol/h5.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace parasol {

enum class Status { Running, Converged, MaxIterations, Diverged, Interrupted, Failed };
const char* to_string(Status status);  // "converged", "max_iterations", ...
// Process exit code for a final status: 0 converged/max_iterations, 75 interrupted, 1 otherwise.
int exit_code(Status status);

class RunFile {
 public:
  // Collective. Creates `path`.partial and writes the root attributes known at start.
  // `history_fields` are the solver's own columns; iteration, wall_time and objective
  // always come first.
  RunFile(MPI_Comm comm, const std::string& path, const std::string& solver,
          const std::string& method, std::int64_t seed,
          const std::vector<std::string>& history_fields);
  ~RunFile();  // an unfinished file is closed as "failed" and left as FILE.partial
  RunFile(const RunFile&) = delete;
  RunFile& operator=(const RunFile&) = delete;

  h5::File& file() { return file_; }
  const std::string& path() const { return path_; }
  const std::vector<std::string>& history_columns() const { return columns_; }

  // Collective; `row` has one value per history column (iteration, wall_time, objective, ...).
  // Written to the file when the flush interval has passed since the last write.
  void append_history(const std::vector<double>& row);
  // Collective: writes the rows not yet written and flushes the file.
  void flush_history();
  // Seconds between history writes (0: every row).
  void set_flush_interval(double seconds) { flush_interval_ = seconds; }

  // Records an input file under /input/<role>: its path, shape and CRC32 checksum.
  void describe_input(const std::string& role, const std::string& input_path,
                      const std::vector<std::uint64_t>& shape, std::uint32_t crc32);

  // Collective. Writes status, iterations, wall_time and message, closes and renames.
  // A failed run whose target already exists keeps FILE.partial and leaves FILE alone.
  void finalize(Status status, std::int64_t iterations, double wall_time,
                const std::string& message = "");

 private:
  MPI_Comm comm_;
  std::string path_;
  std::vector<std::string> columns_;
  h5::File file_;
  bool finalized_ = false;
  std::vector<std::vector<double>> pending_rows_;
  double flush_interval_ = 1.0;
  double last_flush_ = -1e300;
};

}  // namespace parasol
