// parasol-alsketch: AdaSketch-Newton for equality-constrained problems (docs/alsketch.md).
//   mpiexec -n 2 parasol-alsketch -problem hs40 -alsketch_sketch gaussian -tol 1e-8 -output run.h5
#include <parasol/alsketch.hpp>
#include <parasol/driver.hpp>
#include <parasol/error.hpp>
#include <parasol/options.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

namespace {

const char* kHelp =
    "parasol-alsketch: minimize f(x) subject to c(x) = 0 by AdaSketch-Newton (adaptive inexact\n"
    "  Newton, KKT system solved by randomized sketching, line search on an exact augmented\n"
    "  Lagrangian). -problem and -alsketch_sketch list their choices below; docs/alsketch.md.\n";

// Resident memory of this process, summed over the ranks: the current value or the peak
// since the start (getrusage's maximum resident set size).
double resident_bytes(MPI_Comm comm, bool peak) {
  double mine = 0;
  if (peak) {
    rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    mine = usage.ru_maxrss * 1024.0;  // KB on Linux
  } else {
    PetscLogDouble current = 0;
    PetscMemoryGetCurrentUsage(&current);
    mine = current;
  }
  double total = 0;
  MPI_Allreduce(&mine, &total, 1, MPI_DOUBLE, MPI_SUM, comm);
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace parasol;
  return driver_main(argc, argv, "parasol-alsketch", kHelp, [](Session& session) {
    MPI_Comm comm = session.comm();
    CommonOptions defaults;
    defaults.max_it = 1000;
    defaults.tol = 1e-8;
    defaults.seed = 2023;
    const CommonOptions common = read_common_options(comm, "alsketch", defaults);
    std::string why;
    if (!common.IsValid(&why)) throw Error(why);

    alsketch::ProblemParams params;
    std::string problem_name;
    {
      OptionReader r(comm, "", "alsketch problem");
      std::vector<std::string> names;
      std::string help = "problem:";
      for (const auto& p : alsketch::problem_registry()) {
        names.push_back(p.name);
        help += " " + p.name + " (" + p.description + ");";
      }
      problem_name = r.choice("problem", help, names, "hs40");
      params.N = r.integer("N", "poisson: grid size N (N x N interior points); genhs28: n",
                           32, 1);
    }
    alsketch::Options defaults_alsketch;
    defaults_alsketch.tol = common.tol;
    defaults_alsketch.seed = static_cast<std::uint64_t>(common.seed);
    alsketch::Options options = alsketch::read_options(comm, defaults_alsketch);
    if (!options.IsValid(&why)) throw Error(why);
    if (help_requested()) {
      finish_options(comm);
      return 0;
    }
    params.data = common.data;
    params.seed = common.seed;
    auto problem = alsketch::make_problem(problem_name, comm, params);
    alsketch::Solver solver(*problem, options);
    // Memory yardstick: resident memory once the problem and the solver's vectors exist, before
    // any KKT matrix, factorization or preconditioner (summed over the ranks).
    const double rss_setup = resident_bytes(comm, false);
    // The KSP and its sub-solvers read their -alsketch_ options here (ksp: the KKT matrix at
    // the starting point is set up, its factorization or preconditioner kept for the first
    // step). Its time is not in the solve time that run_solver reports: printed separately.
    const double t_prepare = MPI_Wtime();
    solver.prepare();
    const double prepare_seconds = MPI_Wtime() - t_prepare;
    if (finish_options(comm)) return 0;
    std::vector<InputRecord> inputs;
    if (!common.data.empty()) inputs.push_back({"data", common.data, {}, 0});
    return solve_and_write(comm, solver, common, inputs, [&](RunFile& run) {
      h5::set_attr(run.file(), "/", "problem", problem_name);
      // The solve's memory beyond the setup baseline against the problem's own data.
      const double data = solver.problem_data_bytes();
      const double extra = std::max(0.0, resident_bytes(comm, true) - rss_setup);
      h5::set_attr(run.file(), "/", "memory_problem_data_bytes", data);
      h5::set_attr(run.file(), "/", "memory_solver_peak_bytes", extra);
      if (session.rank() == 0) {
        const auto& sum = solver.summary();
        std::printf("alsketch memory: problem data %.1f MB, solver peak above setup %.1f MB "
                    "(%.2fx the data; all ranks)\n",
                    data / 1048576.0, extra / 1048576.0, extra / data);
        if (options.sketch == "ksp")
          std::printf("alsketch ksp: %lld KKT setups, %lld Krylov iterations; setup before the "
                      "first iteration %.3f s (not in the solve time below)\n",
                      static_cast<long long>(sum.kkt_setups),
                      static_cast<long long>(sum.krylov_iterations), prepare_seconds);
        std::fflush(stdout);
      }
      if (auto f_star = problem->known_objective())
        h5::set_attr(run.file(), "/", "known_objective", *f_star);
    });
  });
}
