#include <parasol/error.hpp>
#include <parasol/session.hpp>

#include <parasol/version.hpp>

#include <Eigen/Core>
#include <hdf5.h>

#include <csignal>
#include <cstdlib>
#include <initializer_list>
#include <string>

namespace parasol {
namespace {
volatile std::sig_atomic_t g_signal = 0;
extern "C" void on_checkpoint_signal(int) { g_signal = 1; }
}  // namespace

namespace {
// Removes every argument in `names` from the command line and says whether one was there.
// For -help: PETSc would otherwise print its generic options (debugger, malloc, ...) ahead of
// ours; parasol puts -help back into the options database after initialization so that every
// option block (ours, and PETSc objects' such as KSP) still prints its help.
bool take_flag(int* argc, char** argv, std::initializer_list<const char*> names) {
  bool found = false;
  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    const std::string arg = argv[i];
    bool match = false;
    for (const char* name : names) match = match || arg == name;
    if (match) {
      found = true;
      // "-help intro" is PETSc's "version only" form; its argument goes too.
      if (i + 1 < *argc && std::string(argv[i + 1]) == "intro") ++i;
      continue;
    }
    argv[kept++] = argv[i];
  }
  *argc = kept;
  argv[kept] = nullptr;
  return found;
}
}  // namespace

Session::Session(int* argc, char*** argv, const char* help) {
  const bool help_wanted = take_flag(argc, *argv, {"-help", "--help", "-h"});
  version_requested_ = take_flag(argc, *argv, {"-version", "--version"});
  PetscErrorCode code = PetscInitialize(argc, argv, nullptr, help);
  if (code) std::exit(1);  // nothing else is up yet; PETSc has printed why
  if (help_wanted) {
    PetscOptionsSetValue(nullptr, "-help", nullptr);
    PetscPrintf(PETSC_COMM_WORLD, "%s\n", help ? help : "");
  }
  // PETSc returns error codes silently; parasol turns them into exceptions with the message.
  PetscPushErrorHandler(PetscReturnErrorHandler, nullptr);
  // PETSc leaves SIGUSR1 alone; SLURM's --signal=B:USR1@T (forwarded by mpirun) asks for a
  // checkpoint before the time limit.
  struct sigaction action {};
  action.sa_handler = on_checkpoint_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &action, nullptr);
}

Session::~Session() {
  PetscPopErrorHandler();
  PetscFinalize();
}

int Session::rank() const {
  int r = 0;
  MPI_Comm_rank(comm(), &r);
  return r;
}

int Session::size() const {
  int s = 1;
  MPI_Comm_size(comm(), &s);
  return s;
}

std::string version_report() {
  PetscInt petsc_major = 0, petsc_minor = 0, petsc_subminor = 0;
  PetscGetVersionNumber(&petsc_major, &petsc_minor, &petsc_subminor, nullptr);
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING] = "";
  int length = 0;
  MPI_Get_library_version(mpi, &length);
  std::string mpi_name(mpi, static_cast<std::size_t>(length));
  mpi_name = mpi_name.substr(0, mpi_name.find_first_of(",\n"));  // "Open MPI v4.1.4"
  unsigned hdf5_major = 0, hdf5_minor = 0, hdf5_release = 0;
  H5get_libversion(&hdf5_major, &hdf5_minor, &hdf5_release);
  auto dotted = [](auto a, auto b, auto c) {
    return std::to_string(a) + "." + std::to_string(b) + "." + std::to_string(c);
  };
  return std::string("parasol ") + version() + " (PETSc " +
         dotted(petsc_major, petsc_minor, petsc_subminor) + ", " + mpi_name + ", HDF5 " +
         dotted(hdf5_major, hdf5_minor, hdf5_release) + ", Eigen " +
         dotted(EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION) + ")";
}

bool signal_received() { return g_signal != 0; }
void set_signal_received(bool value) { g_signal = value ? 1 : 0; }

bool signal_requested_anywhere(MPI_Comm comm) {
  int mine = signal_received() ? 1 : 0, any = 0;
  MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, comm);
  return any != 0;
}

}  // namespace parasol
