#include <parasol/driver.hpp>
#include <parasol/error.hpp>
#include <parasol/options.hpp>

#include <cstdio>
#include <exception>

namespace parasol {

int driver_main(int argc, char** argv, const std::string& name, const char* help,
                const std::function<int(Session&)>& body) {
  Session session(&argc, &argv, help);
  if (session.version_requested()) {
    if (session.rank() == 0) std::printf("%s: %s\n", name.c_str(), version_report().c_str());
    return 0;
  }
  int code = 1;
  try {
    code = body(session);
  } catch (const Error& e) {
    if (session.rank() == 0) std::fprintf(stderr, "%s: error: %s\n", name.c_str(), e.what());
    code = 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: fatal error on rank %d: %s\n", name.c_str(), session.rank(),
                 e.what());
    MPI_Abort(session.comm(), 1);
  }
  // Ranks could disagree only through a bug; take the worst code so that no rank reports
  // success for a run that failed elsewhere.
  int worst = code;
  MPI_Allreduce(&code, &worst, 1, MPI_INT, MPI_MAX, session.comm());
  return worst;
}

bool finish_options(MPI_Comm comm) {
  if (help_requested()) return true;
  reject_unknown_options(comm);
  return false;
}

int solve_and_write(MPI_Comm comm, IterativeSolver& solver, const CommonOptions& options,
                    const std::vector<InputRecord>& inputs,
                    const std::function<void(RunFile&)>& extra) {
  RunFile run(comm, options.output, solver.family(), solver.method(), options.seed,
              solver.history_fields());
  run.set_flush_interval(options.history_flush_interval);
  for (const auto& input : inputs)
    run.describe_input(input.role, input.path, input.shape, input.crc32);
  RunSummary summary;
  try {
    summary = run_solver(solver, options, &run);
    solver.write_solution(run.file());
    if (extra) extra(run);
  } catch (const Error& e) {
    run.finalize(Status::Failed, summary.iterations, summary.wall_time, e.what());
    throw;
  }
  run.finalize(summary.status, summary.iterations, summary.wall_time, summary.message);
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) {
    std::printf("%s %s: %s after %lld iterations in %.3f s%s%s\n  output: %s\n",
                solver.family().c_str(), solver.method().c_str(), to_string(summary.status),
                static_cast<long long>(summary.iterations), summary.wall_time,
                summary.message.empty() ? "" : " (", 
                summary.message.empty() ? "" : (summary.message + ")").c_str(),
                options.output.c_str());
    std::fflush(stdout);
  }
  return exit_code(summary.status);
}

}  // namespace parasol
