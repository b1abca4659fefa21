#pragma once
// Small helpers shared by admm.cpp, adversarial.cpp and attack.cpp; not a public interface.
#include <parasol/relu.hpp>

#include <mpi.h>

#include <cstdint>
#include <vector>

namespace parasol::relu::detail {

// Sum over ranks with the same bits on every rank (reduce to 0, then broadcast), so that
// replicated variables never drift apart and control decisions agree everywhere.
inline void sum_replicated(MPI_Comm comm, double* data, int count) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) {
    MPI_Reduce(MPI_IN_PLACE, data, count, MPI_DOUBLE, MPI_SUM, 0, comm);
  } else {
    MPI_Reduce(data, nullptr, count, MPI_DOUBLE, MPI_SUM, 0, comm);
  }
  MPI_Bcast(data, count, MPI_DOUBLE, 0, comm);
}

inline std::int64_t first_row_of(MPI_Comm comm, std::int64_t local_rows) {
  std::int64_t first = 0;
  MPI_Exscan(&local_rows, &first, 1, MPI_INT64_T, MPI_SUM, comm);
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  return rank == 0 ? 0 : first;
}

inline std::vector<double> flat(const RowMatrix& M) {
  return std::vector<double>(M.data(), M.data() + M.size());
}

}  // namespace parasol::relu::detail
