#include <parasol/error.hpp>

#include <climits>

namespace parasol {

void check_all(MPI_Comm comm, bool ok, const std::string& message) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  // The lowest failing rank speaks for all.
  int mine = ok ? INT_MAX : rank;
  int first_failed = INT_MAX;
  MPI_Allreduce(&mine, &first_failed, 1, MPI_INT, MPI_MIN, comm);
  if (first_failed == INT_MAX) return;
  int length = rank == first_failed ? static_cast<int>(message.size()) : 0;
  MPI_Bcast(&length, 1, MPI_INT, first_failed, comm);
  std::string text = rank == first_failed ? message : std::string(length, '\0');
  MPI_Bcast(text.data(), length, MPI_CHAR, first_failed, comm);
  throw Error(text);
}

void throw_if_petsc_error(PetscErrorCode code, const char* expression, const char* file,
                          int line) {
  if (code == 0) return;
  const char* text = nullptr;
  PetscErrorMessage(code, &text, nullptr);
  throw Error(std::string("PETSc error ") + std::to_string(code) + " (" +
              (text ? text : "unknown") + ") in " + expression + " at " + file + ":" +
              std::to_string(line));
}

}  // namespace parasol
