#pragma once
// Balanced block rows: the first (n mod size) ranks own one extra row.
#include <mpi.h>

#include <cstdint>

namespace parasol {

struct Partition {
  std::int64_t global = 0;
  std::int64_t begin = 0;  // first global row owned here
  std::int64_t end = 0;    // one past the last
  std::int64_t count() const { return end - begin; }

  static Partition block(std::int64_t global, int rank, int size);
  static Partition block(std::int64_t global, MPI_Comm comm);
  // The rank that owns global row `row` under block(global, ., size).
  static int owner(std::int64_t global, int size, std::int64_t row);
};

}  // namespace parasol
