#pragma once
// Options come from PETSc's options database (command line, -options_file, PETSC_OPTIONS).
// OptionReader wraps one PetscOptionsBegin/End block: every option read through it appears
// in -help with its default and description, and is validated with a message that names
// the option. After all options (including sub-solvers' such as KSP) have been read, call
// reject_unknown_options(): a misspelled or unknown option is an error, not ignored.
#include <mpi.h>
#include <petscsys.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace parasol {

class OptionReader {
 public:
  // `prefix` may be empty; `title` heads this block in -help.
  OptionReader(MPI_Comm comm, const std::string& prefix, const std::string& title);
  ~OptionReader();  // ends the block
  OptionReader(const OptionReader&) = delete;
  OptionReader& operator=(const OptionReader&) = delete;

  // `name` without the leading dash or prefix, e.g. "tol".
  std::string string(const std::string& name, const std::string& help, const std::string& def);
  std::int64_t integer(const std::string& name, const std::string& help, std::int64_t def,
                       std::int64_t min = std::numeric_limits<std::int64_t>::min(),
                       std::int64_t max = std::numeric_limits<std::int64_t>::max());
  double real(const std::string& name, const std::string& help, double def,
              double min = -std::numeric_limits<double>::infinity(),
              double max = std::numeric_limits<double>::infinity());
  bool flag(const std::string& name, const std::string& help, bool def);
  // One of `choices`; an unknown value is an error listing the valid choices.
  std::string choice(const std::string& name, const std::string& help,
                     const std::vector<std::string>& choices, const std::string& def);
  // Comma-separated reals, e.g. -anneal_T 0:5,0.8:1
  std::vector<double> reals(const std::string& name, const std::string& help,
                            const std::vector<double>& def);
  // True when the option was given (after it has been read).
  bool was_set(const std::string& name) const;

 private:
  std::string full_name(const std::string& name) const;
  MPI_Comm comm_;
  std::string prefix_;
  void* items_;  // PetscOptionItems, kept opaque to keep petsc internals out of this header
  std::vector<std::string> set_;
};

// True when -help was given: drivers print every option block and exit 0 before any work.
bool help_requested();

// Collective: throws Error naming every option in the database that nothing has read.
void reject_unknown_options(MPI_Comm comm);

// Options every driver shares. Each driver supplies its own defaults for max_it and tol.
struct CommonOptions {
  std::string data;        // -data FILE: input HDF5 (empty: built-in default problem)
  std::string output;      // -output FILE (default parasol-<solver>.h5)
  std::int64_t seed = 1;   // -seed N
  std::int64_t max_it = 100;
  double tol = 1e-8;
  std::string checkpoint;  // -checkpoint FILE
  std::int64_t checkpoint_every = 0;  // 0: only on SIGUSR1 and at the end
  std::string restart;     // -restart FILE
  bool monitor = false;    // -monitor: one line per iteration on rank 0
  double history_flush_interval = 1.0;  // seconds between writes of /history rows

  bool IsValid(std::string* why) const;
};

// Reads the common options (in their own -help block) with the driver's defaults.
CommonOptions read_common_options(MPI_Comm comm, const std::string& solver,
                                  const CommonOptions& defaults);

// The full option set as "-name value" pairs, one per line, for the run file's `options`.
std::string options_as_text();

}  // namespace parasol
