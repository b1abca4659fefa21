#pragma once
// Helpers for the bilevel tests.
#include <gtest/gtest.h>
#include <mpi.h>
#include <parasol/bilevel.hpp>

#include <filesystem>
#include <string>

namespace parasol::bilevel::test {

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

// Runs `iterations` steps of the solver without a run file.
inline void run_steps(Solver& solver, std::int64_t iterations) {
  for (std::int64_t t = 1; t <= iterations; ++t) {
    StepReport report = solver.step(t);
    ASSERT_NE(report.status, Status::Diverged) << report.message << " at iteration " << t;
  }
}

inline double relative_error(const Vector& x, const Vector& reference) {
  return (x - reference).norm() / reference.norm();
}

// Central finite differences of phi at x.
template <class Phi>
Vector finite_difference(Phi phi, const Vector& x, double h = 1e-5) {
  Vector grad(x.size()), probe = x;
  for (Eigen::Index k = 0; k < x.size(); ++k) {
    probe[k] = x[k] + h;
    double plus = phi(probe);
    probe[k] = x[k] - h;
    double minus = phi(probe);
    probe[k] = x[k];
    grad[k] = (plus - minus) / (2 * h);
  }
  return grad;
}

}  // namespace parasol::bilevel::test
