#pragma once
// Errors in parasol are C++ exceptions of type parasol::Error. Anything that can fail on
// one rank but not on another must be agreed on before the next collective, or the ranks
// that did not fail would hang: check_all() and collective() do that agreement.
#include <mpi.h>
#include <petscsys.h>

#include <stdexcept>
#include <string>

namespace parasol {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Collective. If `ok` is false on any rank, every rank throws Error carrying the message
// of the lowest failing rank. Cheap (one small allreduce, one broadcast on failure).
void check_all(MPI_Comm comm, bool ok, const std::string& message);

// Collective. Runs `work` on every rank; an exception on any rank becomes an Error on all
// ranks (message of the lowest failing rank). Use around local work that may throw (file
// parsing, validation of a local slab) before the next collective.
template <class Work>
void collective(MPI_Comm comm, Work&& work) {
  std::string message;
  bool ok = true;
  try {
    work();
  } catch (const std::exception& e) {
    ok = false;
    message = e.what();
  }
  check_all(comm, ok, message);
}

// Throws Error with PETSc's message when `code` is non-zero.
void throw_if_petsc_error(PetscErrorCode code, const char* expression, const char* file, int line);

}  // namespace parasol

#define PARASOL_PETSC(call) ::parasol::throw_if_petsc_error((call), #call, __FILE__, __LINE__)
