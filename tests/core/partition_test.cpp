#include <gtest/gtest.h>
#include <parasol/partition.hpp>

using parasol::Partition;

TEST(Partition, BlocksCoverRowsInOrderAndDifferByAtMostOne) {
  for (int size : {1, 2, 3, 7}) {
    for (std::int64_t n : {0, 1, 2, 10, 11, 100}) {
      std::int64_t next = 0, smallest = n, largest = 0;
      for (int r = 0; r < size; ++r) {
        const Partition p = Partition::block(n, r, size);
        EXPECT_EQ(p.begin, next);
        next = p.end;
        smallest = std::min(smallest, p.count());
        largest = std::max(largest, p.count());
        for (std::int64_t row = p.begin; row < p.end; ++row)
          EXPECT_EQ(Partition::owner(n, size, row), r) << "n=" << n << " size=" << size;
      }
      EXPECT_EQ(next, n);
      EXPECT_LE(largest - smallest, 1);
    }
  }
}

TEST(Partition, CommunicatorBlocksSumToGlobal) {
  const Partition p = Partition::block(11, MPI_COMM_WORLD);
  long long mine = p.count(), total = 0;
  MPI_Allreduce(&mine, &total, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_EQ(total, 11);
}

// Pieces of uneven length (rank r gives r + 1 values, rank 0 of 3 ranks none with offset 1):
// every rank sees the same concatenation in rank order; times() scales to rows of values.
TEST(RankPieces, AllgatherConcatenatesInRankOrder) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::vector<long long> mine(static_cast<std::size_t>(rank + 1));
  for (std::size_t k = 0; k < mine.size(); ++k) mine[k] = 100 * rank + static_cast<long long>(k);
  const std::vector<long long> all = parasol::allgather_pieces(MPI_COMM_WORLD, mine);
  std::vector<long long> expected;
  for (int r = 0; r < size; ++r)
    for (int k = 0; k <= r; ++k) expected.push_back(100 * r + k);
  EXPECT_EQ(all, expected);

  const auto rows = parasol::RankPieces::of(MPI_COMM_WORLD, rank);  // rank 0: no rows
  const auto values = rows.times(2);
  std::vector<double> local(2 * static_cast<std::size_t>(rank), static_cast<double>(rank));
  const std::vector<double> gathered = values.allgather(MPI_COMM_WORLD, local.data());
  ASSERT_EQ(static_cast<int>(gathered.size()), 2 * rows.total);
  for (int r = 0; r < size; ++r) {
    EXPECT_EQ(values.offsets[r], 2 * rows.offsets[r]);
    for (int k = 0; k < values.counts[r]; ++k) EXPECT_EQ(gathered[values.offsets[r] + k], r);
  }
}
