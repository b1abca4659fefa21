#include <parasol/partition.hpp>

namespace parasol {

Partition Partition::block(std::int64_t global, int rank, int size) {
  const std::int64_t base = global / size, extra = global % size;
  Partition p;
  p.global = global;
  p.begin = rank * base + (rank < extra ? rank : extra);
  p.end = p.begin + base + (rank < extra ? 1 : 0);
  return p;
}

Partition Partition::block(std::int64_t global, MPI_Comm comm) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  return block(global, rank, size);
}

int Partition::owner(std::int64_t global, int size, std::int64_t row) {
  const std::int64_t base = global / size, extra = global % size;
  const std::int64_t split = extra * (base + 1);  // rows held by the ranks with an extra row
  if (row < split) return static_cast<int>(row / (base + 1));
  return static_cast<int>(extra + (row - split) / base);
}

RankPieces RankPieces::of(MPI_Comm comm, int local_count) {
  int size = 1;
  MPI_Comm_size(comm, &size);
  RankPieces p;
  p.counts.resize(size);
  p.offsets.resize(size);
  MPI_Allgather(&local_count, 1, MPI_INT, p.counts.data(), 1, MPI_INT, comm);
  for (int r = 0; r < size; ++r) {
    p.offsets[r] = p.total;
    p.total += p.counts[r];
  }
  return p;
}

RankPieces RankPieces::times(int width) const {
  RankPieces p = *this;
  for (int& c : p.counts) c *= width;
  for (int& o : p.offsets) o *= width;
  p.total *= width;
  return p;
}

}  // namespace parasol
