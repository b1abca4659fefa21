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
