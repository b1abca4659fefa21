#pragma once
// Helpers for the bilevel tests.
#include <gtest/gtest.h>
#include <mpi.h>
#include <parasol/bilevel.hpp>

#include "parasol_test.hpp"

#include <filesystem>
#include <string>

namespace parasol::bilevel::test {

// rank(), size() and scratch_dir() are the shared ones.
using parasol::test::rank;
using parasol::test::scratch_dir;
using parasol::test::size;

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
