#pragma once
// Balanced block rows: the first (n mod size) ranks own one extra row. RankPieces: pieces of
// any length, one per rank, concatenated in rank order (MPI_Allgatherv's counts and offsets).
#include <mpi.h>

#include <cstdint>
#include <vector>

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

template <class T>
MPI_Datatype mpi_datatype();
template <>
inline MPI_Datatype mpi_datatype<double>() { return MPI_DOUBLE; }
template <>
inline MPI_Datatype mpi_datatype<int>() { return MPI_INT; }
template <>
inline MPI_Datatype mpi_datatype<long>() { return MPI_LONG; }
template <>
inline MPI_Datatype mpi_datatype<long long>() { return MPI_LONG_LONG; }

// Every rank's piece length and where it starts in the concatenation.
struct RankPieces {
  std::vector<int> counts, offsets;
  int total = 0;

  // Collective: each rank gives the length of its own piece.
  static RankPieces of(MPI_Comm comm, int local_count);
  // The same pieces with `width` values per entry (rows of `width` columns).
  RankPieces times(int width) const;

  // Collective: the pieces (counts[rank] values at `local` on each rank) concatenated in rank
  // order on every rank.
  template <class T>
  std::vector<T> allgather(MPI_Comm comm, const T* local) const {
    std::vector<T> all(static_cast<std::size_t>(total));
    allgather(comm, local, all.data());
    return all;
  }
  // The same into `all` (room for `total` values).
  template <class T>
  void allgather(MPI_Comm comm, const T* local, T* all) const {
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    MPI_Allgatherv(local, counts[rank], mpi_datatype<T>(), all, counts.data(), offsets.data(),
                   mpi_datatype<T>(), comm);
  }
};

// Collective: every rank's vector, concatenated in rank order, on every rank.
template <class T>
std::vector<T> allgather_pieces(MPI_Comm comm, const std::vector<T>& local) {
  return RankPieces::of(comm, static_cast<int>(local.size())).allgather(comm, local.data());
}

}  // namespace parasol
