#include <parasol/error.hpp>
#include <parasol/session.hpp>
#include <parasol/solver.hpp>
#include <parasol/version.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>

namespace parasol {
namespace {

int rank_of(MPI_Comm comm) {
  int r = 0;
  MPI_Comm_rank(comm, &r);
  return r;
}
int size_of(MPI_Comm comm) {
  int s = 1;
  MPI_Comm_size(comm, &s);
  return s;
}

std::vector<std::string> history_columns(const IterativeSolver& solver) {
  std::vector<std::string> columns{"iteration", "wall_time", "objective"};
  const auto fields = solver.history_fields();
  columns.insert(columns.end(), fields.begin(), fields.end());
  return columns;
}

void print_monitor_line(const IterativeSolver& solver, const std::vector<double>& row) {
  const auto fields = solver.history_fields();
  std::printf("%6lld  objective % .10e", static_cast<long long>(row[0]), row[2]);
  for (std::size_t i = 0; i < fields.size(); ++i)
    std::printf("  %s %.4e", fields[i].c_str(), row[3 + i]);
  std::printf("\n");
  std::fflush(stdout);
}

}  // namespace

void write_checkpoint(MPI_Comm comm, const std::string& path, const IterativeSolver& solver,
                      std::int64_t iteration, double wall_time,
                      const std::vector<std::vector<double>>& history_rows) {
  const std::string temporary = path + ".tmp";
  {
    h5::File file(comm, temporary, h5::File::Mode::Create);
    h5::set_attr(file, "/", "parasol_version", std::string(version()));
    h5::set_attr(file, "/", "family", solver.family());
    h5::set_attr(file, "/", "method", solver.method());
    h5::set_attr(file, "/", "nranks", static_cast<std::int64_t>(size_of(comm)));
    h5::set_attr(file, "/", "iteration", iteration);
    h5::set_attr(file, "/", "wall_time", wall_time);
    const auto columns = history_columns(solver);
    std::vector<double> flat;
    for (const auto& row : history_rows) flat.insert(flat.end(), row.begin(), row.end());
    h5::write(file, "/history", flat, {history_rows.size(), columns.size()});
    std::string joined;
    for (const auto& c : columns) joined += (joined.empty() ? "" : ",") + c;
    h5::set_attr(file, "/history", "columns", joined);
    h5::create_group(file, "/state");
    solver.save_state(file, "/state");
    file.flush();
  }
  // Only a complete checkpoint takes the name: a kill during the write leaves the old one.
  std::string error;
  if (rank_of(comm) == 0) {
    std::error_code ec;
    std::filesystem::rename(temporary, path, ec);
    if (ec) error = path + ": cannot rename checkpoint: " + ec.message();
  }
  check_all(comm, error.empty(), error);
}

CheckpointInfo read_checkpoint(MPI_Comm comm, const std::string& path, IterativeSolver& solver) {
  CheckpointInfo info;
  collective(comm, [&] {
    h5::File file(comm, path, h5::File::Mode::Read);
    const std::string family = h5::attr_string(file, "/", "family");
    const std::string method = h5::attr_string(file, "/", "method");
    if (family != solver.family() || method != solver.method())
      throw Error(path + ": checkpoint of " + family + "/" + method + ", cannot restart " +
                  solver.family() + "/" + solver.method());
    info.iteration = h5::attr_int(file, "/", "iteration");
    info.wall_time = h5::attr_double(file, "/", "wall_time");
    std::vector<std::uint64_t> dims;
    const auto flat = h5::read_doubles(file, "/history", &dims);
    const std::size_t columns = history_columns(solver).size();
    if (dims.size() != 2 || dims[1] != columns)
      throw Error(path + ": /history has the wrong shape for " + solver.family());
    for (std::uint64_t i = 0; i < dims[0]; ++i)
      info.history_rows.emplace_back(flat.begin() + i * columns,
                                     flat.begin() + (i + 1) * columns);
  });
  // load_state may use collectives (distributed reads), so it runs outside the lambda.
  h5::File file(comm, path, h5::File::Mode::Read);
  solver.load_state(file, "/state");
  return info;
}

RunSummary run_solver(IterativeSolver& solver, const CommonOptions& options, RunFile* run_file) {
  const MPI_Comm comm = PETSC_COMM_WORLD;
  const bool root = rank_of(comm) == 0;
  const std::size_t field_count = solver.history_fields().size();

  std::vector<std::vector<double>> history;
  std::int64_t first = 1;
  double earlier_time = 0.0;
  if (!options.restart.empty()) {
    CheckpointInfo info = read_checkpoint(comm, options.restart, solver);
    first = info.iteration + 1;
    earlier_time = info.wall_time;
    history = std::move(info.history_rows);
    if (run_file)
      for (const auto& row : history) run_file->append_history(row);
    if (root)
      std::printf("%s: restarted from %s at iteration %lld\n", solver.family().c_str(),
                  options.restart.c_str(), static_cast<long long>(info.iteration));
  }

  RunSummary summary;
  summary.iterations = first - 1;
  const double start = MPI_Wtime();
  auto elapsed = [&] { return earlier_time + (MPI_Wtime() - start); };
  std::int64_t last_checkpoint = -1;
  auto checkpoint = [&](std::int64_t iteration) {
    if (options.checkpoint.empty() || last_checkpoint == iteration) return;
    write_checkpoint(comm, options.checkpoint, solver, iteration, elapsed(), history);
    last_checkpoint = iteration;
    if (run_file) run_file->flush_history();  // the run file is never behind the checkpoint
  };

  for (std::int64_t it = first; it <= options.max_it; ++it) {
    StepReport report = solver.step(it);
    check_all(comm, report.fields.size() == field_count,
              solver.family() + ": step reported " + std::to_string(report.fields.size()) +
                  " history fields, expected " + std::to_string(field_count));
    std::vector<double> row{static_cast<double>(it), elapsed(), report.objective};
    row.insert(row.end(), report.fields.begin(), report.fields.end());
    history.push_back(row);
    if (run_file) run_file->append_history(row);
    if (options.monitor && root) print_monitor_line(solver, row);
    summary.iterations = it;

    if (report.status == Status::Running && !std::isfinite(report.objective)) {
      report.status = Status::Diverged;
      report.message = "objective is not finite at iteration " + std::to_string(it);
    }
    if (report.status != Status::Running) {
      summary.status = report.status;
      summary.message = report.message;
      break;
    }
    const bool signalled = signal_requested_anywhere(comm);
    if (signalled || (options.checkpoint_every > 0 && it % options.checkpoint_every == 0))
      checkpoint(it);
    if (signalled) {
      summary.status = Status::Interrupted;
      summary.message = options.checkpoint.empty()
                            ? "SIGUSR1 received; no -checkpoint was given, so none was written"
                            : "SIGUSR1 received; checkpoint written to " + options.checkpoint;
      break;
    }
  }
  if (summary.status == Status::Running) {
    summary.status = Status::MaxIterations;
    summary.message = "reached -max_it " + std::to_string(options.max_it);
  }
  // The final state is worth keeping too: a finished run can be continued with more -max_it.
  if (summary.status != Status::Failed) checkpoint(summary.iterations);
  summary.wall_time = elapsed();
  return summary;
}

}  // namespace parasol
