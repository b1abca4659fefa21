#pragma once
// What every parasol-<family> driver shares, so that the drivers stay thin: the main()
// wrapper (session, error report, exit code agreed over ranks), the end of option reading
// (-help, unknown options) and the solve with its run file.
#include <parasol/run_file.hpp>
#include <parasol/session.hpp>
#include <parasol/solver.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace parasol {

// Runs `body` inside a Session. A parasol::Error (collective by construction) is printed once
// by rank 0 as "<name>: error: <message>" and gives exit code 1 on every rank; any other
// exception is not known to be collective, so it aborts the whole job (MPI_Abort) instead of
// letting the other ranks hang.
int driver_main(int argc, char** argv, const std::string& name, const char* help,
                const std::function<int(Session&)>& body);

// Call once every option (including sub-solvers') has been read: throws on unknown options
// and returns true when -help was given (the driver then returns 0 without doing any work).
bool finish_options(MPI_Comm comm);

// An input file recorded under /input/<role> of the run file.
struct InputRecord {
  std::string role;
  std::string path;
  std::vector<std::uint64_t> shape;
  std::uint32_t crc32 = 0;
};

// Creates the run file (options.output), runs the solver with the shared loop, writes the
// solution (and `extra` output), finalizes the run file and prints a one-line summary on
// rank 0. A failure during the run is recorded as status "failed" with its reason, then
// rethrown. Returns the process exit code for the final status.
int solve_and_write(MPI_Comm comm, IterativeSolver& solver, const CommonOptions& options,
                    const std::vector<InputRecord>& inputs,
                    const std::function<void(RunFile&)>& extra = {});

}  // namespace parasol
