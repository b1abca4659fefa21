#pragma once
// Shared by every MPI test binary (include "parasol_test.hpp"): rank/size and a per-test
// scratch directory agreed over ranks.
#include <gtest/gtest.h>
#include <mpi.h>

#include <filesystem>
#include <string>

namespace parasol::test {

inline int rank(MPI_Comm comm = MPI_COMM_WORLD) {
  int r = 0;
  MPI_Comm_rank(comm, &r);
  return r;
}
inline int size(MPI_Comm comm = MPI_COMM_WORLD) {
  int s = 1;
  MPI_Comm_size(comm, &s);
  return s;
}

// A fresh directory, the same path on every rank, unique per test and rank count.
inline std::string scratch_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string dir = std::string("scratch/") + info->test_suite_name() + "." + info->name() +
                    ".np" + std::to_string(size());
  if (rank() == 0) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return dir;
}

}  // namespace parasol::test
