#pragma once
// Synthetic data for the relu tests, keyed by global row (so the same at every rank count):
// x ~ N(0, I_d), label sign(sum_i alpha_i (t_i^T x)_+ - 0.3) of a planted 3-neuron ReLU
// teacher t (alpha = (1, -1, 0.5)), a fraction `flip` of the labels flipped at random.
#include <Eigen/Dense>
#include <parasol/partition.hpp>
#include <parasol/random.hpp>
#include <parasol/relu.hpp>

#include <mpi.h>

#include <cstdint>
#include <string>

namespace parasol::relu::test {

struct TeacherData {
  RowMatrix X;          // this rank's rows (block partition of n)
  Eigen::VectorXd y;    // +-1
  std::int64_t first = 0;  // global index of the first local row
};

// `teacher_purpose` keys the teacher's draws, `row_purpose` (with the global row) each row's.
inline TeacherData make_teacher_data(MPI_Comm comm, std::int64_t n, std::int64_t d, std::uint64_t seed,
                                     const std::string& teacher_purpose, const std::string& row_purpose,
                                     double flip) {
  const Partition part = Partition::block(n, comm);
  RowMatrix teacher(3, d);
  Random t(seed, teacher_purpose, 0);
  for (Eigen::Index i = 0; i < teacher.size(); ++i) teacher.data()[i] = t.normal();
  const Eigen::Vector3d alpha(1.0, -1.0, 0.5);
  TeacherData data;
  data.first = part.begin;
  data.X.resize(part.count(), d);
  data.y.resize(part.count());
  for (std::int64_t k = 0; k < part.count(); ++k) {
    Random r(seed, row_purpose, static_cast<std::uint64_t>(part.begin + k));
    for (std::int64_t c = 0; c < d; ++c) data.X(k, c) = r.normal();
    const double f = (teacher * data.X.row(k).transpose()).cwiseMax(0.0).dot(alpha) - 0.3;
    data.y(k) = (f > 0) == (r.uniform() >= flip) ? 1.0 : -1.0;
  }
  return data;
}

}  // namespace parasol::relu::test
