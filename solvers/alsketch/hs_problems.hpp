#pragma once
// Private: the built-in problems of the alsketch family.
#include <parasol/alsketch.hpp>

namespace parasol::alsketch {

const std::vector<std::string>& hs_problem_names();
// genhs_n: the size of genhs28 (ignored by the others).
std::unique_ptr<Problem> make_hs_problem(const std::string& name, MPI_Comm comm, int genhs_n);

// logreg: constrained logistic regression on the HDF5 data set `path`.
std::unique_ptr<Problem> make_logreg_problem(MPI_Comm comm, const std::string& path,
                                             std::uint64_t seed);
// poisson: 5-point Poisson control on an N x N grid (PETSc DMDA).
// schur_pc: fft | amg (its Schur complement preconditioner; ProblemParams).
std::unique_ptr<Problem> make_poisson_problem(MPI_Comm comm, int N, const std::string& schur_pc);

}  // namespace parasol::alsketch
