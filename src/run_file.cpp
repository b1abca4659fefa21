#include <parasol/error.hpp>
#include <parasol/options.hpp>
#include <parasol/run_file.hpp>
#include <parasol/version.hpp>

#include <cstdio>
#include <filesystem>

namespace parasol {

const char* to_string(Status status) {
  switch (status) {
    case Status::Running: return "running";
    case Status::Converged: return "converged";
    case Status::MaxIterations: return "max_iterations";
    case Status::Diverged: return "diverged";
    case Status::Interrupted: return "interrupted";
    case Status::Failed: return "failed";
  }
  return "failed";
}

int exit_code(Status status) {
  switch (status) {
    case Status::Converged:
    case Status::MaxIterations: return 0;
    case Status::Interrupted: return 75;  // EX_TEMPFAIL: run again with -restart
    default: return 1;
  }
}

namespace {
int comm_size(MPI_Comm comm) {
  int size = 1;
  MPI_Comm_size(comm, &size);
  return size;
}
std::vector<std::string> columns_with(const std::vector<std::string>& fields) {
  std::vector<std::string> columns{"iteration", "wall_time", "objective"};
  columns.insert(columns.end(), fields.begin(), fields.end());
  return columns;
}
}  // namespace

RunFile::RunFile(MPI_Comm comm, const std::string& path, const std::string& solver,
                 const std::string& method, std::int64_t seed,
                 const std::vector<std::string>& history_fields)
    : comm_(comm),
      path_(path),
      columns_(columns_with(history_fields)),
      file_(comm, path + ".partial", h5::File::Mode::Create) {
  h5::set_attr(file_, "/", "parasol_version", std::string(version()));
  h5::set_attr(file_, "/", "solver", solver);
  h5::set_attr(file_, "/", "method", method);
  h5::set_attr(file_, "/", "status", std::string(to_string(Status::Running)));
  h5::set_attr(file_, "/", "nranks", static_cast<std::int64_t>(comm_size(comm)));
  h5::set_attr(file_, "/", "seed", seed);
  h5::set_attr(file_, "/", "options", options_as_text());
  h5::set_attr(file_, "/", "iterations", std::int64_t{0});
  h5::set_attr(file_, "/", "wall_time", 0.0);
  h5::create_group(file_, "/history");
  std::string joined;
  for (const auto& c : columns_) joined += (joined.empty() ? "" : ",") + c;
  h5::set_attr(file_, "/history", "columns", joined);
  for (const auto& c : columns_) h5::create_series(file_, "/history/" + c);
  h5::create_group(file_, "/solution");
  file_.flush();
}

RunFile::~RunFile() {
  if (finalized_) return;
  try {
    finalize(Status::Failed, -1, -1.0, "run ended before it was finalized");
  } catch (...) {
    // Destructors must not throw; the .partial file stays behind as evidence.
  }
}

void RunFile::append_history(const std::vector<double>& row) {
  check_all(comm_, row.size() == columns_.size(),
            "history row has " + std::to_string(row.size()) + " values for " +
                std::to_string(columns_.size()) + " columns");
  pending_rows_.push_back(row);
  // Rank 0's clock decides, so that every rank takes part in the same collective writes.
  int due = MPI_Wtime() - last_flush_ >= flush_interval_ ? 1 : 0;
  MPI_Bcast(&due, 1, MPI_INT, 0, comm_);
  if (due) flush_history();
}

void RunFile::flush_history() {
  if (!pending_rows_.empty()) {
    for (std::size_t c = 0; c < columns_.size(); ++c) {
      std::vector<double> column;
      for (const auto& row : pending_rows_) column.push_back(row[c]);
      h5::append_series(file_, "/history/" + columns_[c], column);
    }
    // Progress so far, so that a killed run's FILE.partial says how far it got.
    h5::set_attr(file_, "/", "iterations", static_cast<std::int64_t>(pending_rows_.back()[0]));
    h5::set_attr(file_, "/", "wall_time", pending_rows_.back()[1]);
    pending_rows_.clear();
  }
  file_.flush();
  last_flush_ = MPI_Wtime();
}

void RunFile::describe_input(const std::string& role, const std::string& input_path,
                             const std::vector<std::uint64_t>& shape, std::uint32_t crc32) {
  const std::string group = "/input/" + role;
  h5::create_group(file_, group);
  h5::set_attr(file_, group, "path", input_path);
  h5::set_attr(file_, group, "shape", std::vector<std::int64_t>(shape.begin(), shape.end()));
  h5::set_attr(file_, group, "crc32", static_cast<std::int64_t>(crc32));
}

void RunFile::finalize(Status status, std::int64_t iterations, double wall_time,
                       const std::string& message) {
  if (finalized_) return;
  finalized_ = true;
  flush_history();
  h5::set_attr(file_, "/", "status", std::string(to_string(status)));
  if (iterations >= 0) h5::set_attr(file_, "/", "iterations", iterations);
  if (wall_time >= 0) h5::set_attr(file_, "/", "wall_time", wall_time);
  h5::set_attr(file_, "/", "message", message);
  file_.close();
  int rank = 0;
  MPI_Comm_rank(comm_, &rank);
  std::string error;
  if (rank == 0) {
    const std::string partial = path_ + ".partial";
    std::error_code ec;
    const bool keep_earlier = status == Status::Failed && std::filesystem::exists(path_, ec);
    // A failed run never replaces an earlier good file: it stays as FILE.partial.
    if (!keep_earlier) {
      std::filesystem::rename(partial, path_, ec);
      if (ec) error = path_ + ": cannot rename " + partial + ": " + ec.message();
    }
  }
  check_all(comm_, error.empty(), error);
}

}  // namespace parasol
