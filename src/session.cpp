#include <parasol/error.hpp>
#include <parasol/session.hpp>

#include <csignal>
#include <cstdlib>
#include <string>

namespace parasol {
namespace {
volatile std::sig_atomic_t g_signal = 0;
extern "C" void on_checkpoint_signal(int) { g_signal = 1; }
}  // namespace

namespace {
// Removes -help/--help/-h from the command line and says whether one was there. PETSc would
// otherwise print its generic options (debugger, malloc, ...) ahead of ours; parasol puts
// -help back into the options database after initialization so that every option block
// (ours, and PETSc objects' such as KSP) still prints its help.
bool take_help_flag(int* argc, char** argv) {
  bool found = false;
  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-help" || arg == "--help" || arg == "-h") {
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
  const bool help_wanted = take_help_flag(argc, *argv);
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

bool signal_received() { return g_signal != 0; }
void set_signal_received(bool value) { g_signal = value ? 1 : 0; }

bool signal_requested_anywhere(MPI_Comm comm) {
  int mine = signal_received() ? 1 : 0, any = 0;
  MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, comm);
  return any != 0;
}

}  // namespace parasol
