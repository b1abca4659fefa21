// parasol-alsketch: AdaSketch-Newton for equality-constrained problems (docs/alsketch.md).
//   mpiexec -n 2 parasol-alsketch -problem hs40 -alsketch_sketch gaussian -tol 1e-8 -output run.h5
#include <parasol/alsketch.hpp>
#include <parasol/driver.hpp>
#include <parasol/error.hpp>
#include <parasol/options.hpp>

#include <string>
#include <vector>

namespace {

const char* kHelp =
    "parasol-alsketch: minimize f(x) subject to c(x) = 0 by AdaSketch-Newton (adaptive inexact\n"
    "  Newton, KKT system solved by randomized sketching, line search on an exact augmented\n"
    "  Lagrangian). -problem and -alsketch_sketch list their choices below; docs/alsketch.md.\n";

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
    alsketch::Solver solver(*problem, options);  // reads the -alsketch_ksp_ options
    if (finish_options(comm)) return 0;
    std::vector<InputRecord> inputs;
    if (!common.data.empty()) inputs.push_back({"data", common.data, {}, 0});
    return solve_and_write(comm, solver, common, inputs, [&](RunFile& run) {
      h5::set_attr(run.file(), "/", "problem", problem_name);
      if (auto f_star = problem->known_objective())
        h5::set_attr(run.file(), "/", "known_objective", *f_star);
    });
  });
}
