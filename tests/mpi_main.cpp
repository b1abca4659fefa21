// Shared main for MPI test binaries: PETSc is initialized once, only rank 0 prints the
// GoogleTest report, and the exit status is agreed over ranks (a failure on any rank fails
// every rank).
#include <gtest/gtest.h>
#include <parasol/session.hpp>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  parasol::Session session(&argc, &argv, "parasol test");
  if (session.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, session.comm());
  return any_failed;
}
