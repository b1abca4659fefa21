#pragma once
// One Session per process: initializes PETSc (and MPI), routes PETSc errors to exceptions,
// and installs the SIGUSR1 handler that requests a checkpoint (SLURM --signal=B:USR1@T).
#include <mpi.h>

#include <string>

namespace parasol {

class Session {
 public:
  // `help` is printed first by -help (PETSc's convention). -version/--version is taken off
  // the command line (PETSc would print its own banner and go on) and reported by
  // version_requested(); driver_main answers it.
  Session(int* argc, char*** argv, const char* help);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  MPI_Comm comm() const { return MPI_COMM_WORLD; }
  int rank() const;
  int size() const;
  bool version_requested() const { return version_requested_; }

 private:
  bool version_requested_ = false;
};

// "parasol <version> (PETSc ..., <MPI library>, HDF5 ..., Eigen ...)": what -version prints.
std::string version_report();

// True once SIGUSR1 has arrived on this rank (async-signal-safe flag). Agree across ranks
// with signal_requested_anywhere() before acting on it.
bool signal_received();
// Collective: true when any rank has seen SIGUSR1.
bool signal_requested_anywhere(MPI_Comm comm);
// For tests: pretend the signal arrived (or clear it).
void set_signal_received(bool value);

}  // namespace parasol
