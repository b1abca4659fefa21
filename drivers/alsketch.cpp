// parasol-alsketch: AdaSketch-Newton for equality-constrained problems (docs/alsketch.md).
//   mpiexec -n 2 parasol-alsketch -problem hs40 -alsketch_sketch gaussian -tol 1e-8 -output run.h5
#include <parasol/alsketch.hpp>
#include <parasol/driver.hpp>
#include <parasol/error.hpp>
#include <parasol/options.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <string>
#include <vector>

namespace {

const char* kHelp =
    "parasol-alsketch: minimize f(x) subject to c(x) = 0 by AdaSketch-Newton (adaptive inexact\n"
    "  Newton, KKT system solved by randomized sketching, line search on an exact augmented\n"
    "  Lagrangian). -problem and -alsketch_sketch list their choices below; docs/alsketch.md.\n";

// The solver's memory: resident memory above a baseline taken once the problem and the
// solver's vectors exist, at the peak of the solve, summed over the ranks. On Linux the peak
// resident set (VmHWM) is reset at the baseline by writing "5" to /proc/self/clear_refs, so a
// transient peak before it (the problem's construction) is not counted. Where /proc is not
// writable (on any rank), the fallback is getrusage's maximum RSS, the peak since the process
// started, which does count such transients.
class SolverMemory {
 public:
  explicit SolverMemory(MPI_Comm comm) : comm_(comm) {
    int reset = 0;
    if (std::FILE* f = std::fopen("/proc/self/clear_refs", "w")) {
      reset = std::fputs("5", f) >= 0;
      reset = (std::fclose(f) == 0) && reset;
    }
    double mine = reset ? status_kb("VmRSS:") : -1;
    if (mine < 0) reset = 0;
    int all_reset = 0;
    MPI_Allreduce(&reset, &all_reset, 1, MPI_INT, MPI_MIN, comm);
    proc_ = all_reset != 0;
    if (proc_) {
      mine *= 1024.0;
    } else {
      PetscLogDouble current = 0;
      PetscMemoryGetCurrentUsage(&current);
      mine = current;
    }
    MPI_Allreduce(&mine, &baseline_, 1, MPI_DOUBLE, MPI_SUM, comm);
  }
  const char* method() const {
    return proc_ ? "VmHWM reset via /proc/self/clear_refs" : "getrusage peak since start";
  }
  // Peak resident memory since the baseline minus the baseline, summed over the ranks.
  double peak_above_baseline() const {
    double mine = 0;
    if (proc_) {
      mine = status_kb("VmHWM:") * 1024.0;
    } else {
      rusage usage;
      getrusage(RUSAGE_SELF, &usage);
      mine = usage.ru_maxrss * 1024.0;  // KB on Linux
    }
    double total = 0;
    MPI_Allreduce(&mine, &total, 1, MPI_DOUBLE, MPI_SUM, comm_);
    return std::max(0.0, total - baseline_);
  }

 private:
  // A "Key:   value kB" line of /proc/self/status, in kB (-1 when missing).
  static double status_kb(const char* key) {
    std::FILE* f = std::fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    double kb = -1;
    const std::size_t len = std::strlen(key);
    while (std::fgets(line, sizeof line, f))
      if (std::strncmp(line, key, len) == 0) {
        kb = std::atof(line + len);
        break;
      }
    std::fclose(f);
    return kb;
  }
  MPI_Comm comm_;
  bool proc_ = false;
  double baseline_ = 0;
};

// The solver as run_solver sees it, forwarding everything, with the memory reading taken when
// the solve has ended: solve_and_write calls write_solution right after the last step, and the
// solution output itself (x and lambda scattered to natural order, the parallel HDF5 write:
// ~6 MB per rank at poisson N = 512, the MPI-IO buffers) is I/O, not the solver's memory.
class MeasuredSolver : public parasol::IterativeSolver {
 public:
  MeasuredSolver(parasol::IterativeSolver& inner, const SolverMemory& memory)
      : inner_(inner), memory_(memory) {}
  std::string family() const override { return inner_.family(); }
  std::string method() const override { return inner_.method(); }
  std::vector<std::string> history_fields() const override { return inner_.history_fields(); }
  parasol::StepReport step(std::int64_t iteration) override { return inner_.step(iteration); }
  void save_state(parasol::h5::File& file, const std::string& group) const override {
    inner_.save_state(file, group);
  }
  void load_state(const parasol::h5::File& file, const std::string& group) override {
    inner_.load_state(file, group);
  }
  void write_solution(parasol::h5::File& file) const override {
    peak_ = memory_.peak_above_baseline();  // collective, as write_solution is
    inner_.write_solution(file);
  }
  // The solver's memory at the end of the solve (before the output); negative before that.
  double peak() const { return peak_; }

 private:
  parasol::IterativeSolver& inner_;
  const SolverMemory& memory_;
  mutable double peak_ = -1;
};

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
      params.poisson_schur_pc = r.choice(
          "alsketch_poisson_schur_pc",
          "poisson: Schur complement preconditioner of the ksp presets schur and fieldsplit: fft "
          "(exact inverse of G B^-1 G^T by FFTW's 2-D sine transform) or amg (two BoomerAMG "
          "cycles on -Delta_h + sqrt(10) I, options -alsketch_poisson_schur_pc_*)",
          {"fft", "amg"}, "fft");
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
    // any KKT matrix, factorization or preconditioner (summed over the ranks); peak reset here.
    const SolverMemory memory(comm);
    // The KSP and its sub-solvers read their -alsketch_ options here (ksp: the KKT matrix at
    // the starting point is set up, its factorization or preconditioner kept for the first
    // step). Its time is not in the solve time that run_solver reports: printed separately.
    const double t_prepare = MPI_Wtime();
    solver.prepare();
    const double prepare_seconds = MPI_Wtime() - t_prepare;
    if (finish_options(comm)) return 0;
    std::vector<InputRecord> inputs;
    if (!common.data.empty()) inputs.push_back({"data", common.data, {}, 0});
    MeasuredSolver measured(solver, memory);
    return solve_and_write(comm, measured, common, inputs, [&](RunFile& run) {
      h5::set_attr(run.file(), "/", "problem", problem_name);
      // The solve's memory beyond the setup baseline against the problem's own data.
      const double data = solver.problem_data_bytes();
      const double extra = measured.peak() >= 0 ? measured.peak() : memory.peak_above_baseline();
      h5::set_attr(run.file(), "/", "memory_problem_data_bytes", data);
      h5::set_attr(run.file(), "/", "memory_solver_peak_bytes", extra);
      h5::set_attr(run.file(), "/", "memory_method", std::string(memory.method()));
      if (session.rank() == 0) {
        const auto& sum = solver.summary();
        std::printf("alsketch memory: problem data %.1f MB, solver peak above setup %.1f MB "
                    "(%.2fx the data; all ranks; %s)\n",
                    data / 1048576.0, extra / 1048576.0, extra / data, memory.method());
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
