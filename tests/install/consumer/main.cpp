// Uses the installed parasol: the umbrella header, a Session (PETSc and MPI), a collective
// computation (block partition of rows, sums agreed over ranks) and the version string.
#include <parasol/parasol.hpp>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  parasol::Session session(&argc, &argv, "parasol install check\n");
  const std::int64_t rows = 10;
  const parasol::Partition part = parasol::Partition::block(rows, session.comm());
  std::int64_t owned = part.count(), total = 0;
  MPI_Allreduce(&owned, &total, 1, MPI_INT64_T, MPI_SUM, session.comm());
  // The header's macro and the library's string must name the same release.
  const bool same_version = std::strcmp(parasol::version(), PARASOL_VERSION) == 0;
  std::printf("rank %d of %d: rows [%lld, %lld)\n", session.rank(), session.size(),
              static_cast<long long>(part.begin), static_cast<long long>(part.end));
  if (session.rank() == 0)
    std::printf("parasol %s (header %s): %lld rows in all\n", parasol::version(),
                PARASOL_VERSION, static_cast<long long>(total));
  return same_version && total == rows ? 0 : 1;
}
