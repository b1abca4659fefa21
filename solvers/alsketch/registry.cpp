// The alsketch registries (-problem, -alsketch_sketch) and the option block.
#include <parasol/alsketch.hpp>
#include <parasol/error.hpp>
#include <parasol/options.hpp>

#include "hs_problems.hpp"

namespace parasol::alsketch {

const std::vector<ProblemInfo>& problem_registry() {
  static const std::vector<ProblemInfo> registry = [] {
    std::vector<ProblemInfo> r;
    for (const auto& name : hs_problem_names()) {
      std::string d = name == "genhs28" ? "CUTEst GENHS28 at n = -N (f* = 0.927173694 at n = 10)"
                      : name == "orthregb" ? "CUTEst ORTHREGB, n = 27, m = 6"
                                           : "Hock-Schittkowski problem " + name.substr(2);
      r.push_back({name, d, false});
    }
    r.push_back({"logreg",
                 "logistic regression on -data with 10 random linear equalities and |x|^2 = 1",
                 true});
    r.push_back({"poisson", "5-point Poisson control on an N x N grid (-N), PETSc DMDA", false});
    return r;
  }();
  return registry;
}

std::unique_ptr<Problem> make_problem(const std::string& name, MPI_Comm comm,
                                      const ProblemParams& params) {
  if (name == "logreg") {
    if (params.data.empty()) throw Error("alsketch: problem logreg needs -data FILE");
    return make_logreg_problem(comm, params.data, static_cast<std::uint64_t>(params.seed));
  }
  if (name == "poisson") {
    if (params.N < 1) throw Error("alsketch: -N must be >= 1 for poisson");
    // The DMDA gives every rank at least one grid line in each split direction.
    int ranks = 1;
    MPI_Comm_size(comm, &ranks);
    if (params.N < ranks)
      throw Error("alsketch: poisson needs -N >= the number of ranks (-N " +
                  std::to_string(params.N) + " on " + std::to_string(ranks) + " ranks)");
    return make_poisson_problem(comm, static_cast<int>(params.N), params.poisson_schur_pc);
  }
  for (const auto& hs : hs_problem_names())
    if (hs == name) return make_hs_problem(name, comm, static_cast<int>(params.N));
  std::string list;
  for (const auto& p : problem_registry()) list += (list.empty() ? "" : ", ") + p.name;
  throw Error("alsketch: unknown problem '" + name + "' (known: " + list + ")");
}

Options read_options(MPI_Comm comm, const Options& d) {
  Options o = d;
  OptionReader r(comm, "alsketch_", "AdaSketch-Newton (parasol-alsketch)");
  std::vector<std::string> sketches;
  std::string sketch_help = "KKT solver:";
  for (const auto& s : sketch_registry()) {
    sketches.push_back(s.name);
    sketch_help += " " + s.name + " (" + s.description + ");";
  }
  o.sketch = r.choice("sketch", sketch_help, sketches, d.sketch);
  o.kaczmarz_weights = r.choice("kaczmarz_weights", "row sampling of kaczmarz",
                                {"uniform", "rownorm"}, d.kaczmarz_weights);
  o.block_size = static_cast<int>(
      r.integer("block_size", "directions per step of the block sketch", d.block_size, 1));
  o.max_sketch_steps = r.integer("max_sketch_steps", "sketch steps per iteration at most",
                                 d.max_sketch_steps, 1);
  o.accelerate = r.flag("accelerate",
                        "Nesterov-accelerated gaussian/kaczmarz sketching (n + m <= dense_limit)",
                        d.accelerate);
  o.warm_start = r.flag("warm_start",
                        "start each sketch from the previous direction (scaled least squares)",
                        d.warm_start);
  o.eta1 = r.real("eta1", "initial penalty eta1 on |c|^2", d.eta1, 0);
  o.eta2 = r.real("eta2", "initial penalty eta2 on |grad_x L|^2", d.eta2, 0);
  o.delta = r.real("delta", "initial accuracy parameter delta", d.delta, 0);
  o.delta_min = r.real("delta_min", "lower bound of delta", d.delta_min, 0);
  o.xi_B = r.real("xi_B", "Hessian shift constant xi_B", d.xi_B, 0);
  o.beta = r.real("beta", "Armijo constant beta", d.beta, 0, 0.5);
  o.nu = r.real("nu", "penalty growth factor nu", d.nu, 1);
  o.backtrack = r.real("backtrack", "step reduction per rejected trial", d.backtrack, 0, 1);
  o.max_backtracks = static_cast<int>(
      r.integer("max_backtracks", "rejected trials before failing", d.max_backtracks, 1));
  o.psi_factor = r.real("psi_factor", "constant in psi (proxy for |K^-1|)", d.psi_factor, 0);
  o.jacobian_eig_min = r.real("jacobian_eig_min",
                              "fail when lambda_min(G G^T) falls below this", d.jacobian_eig_min, 0);
  o.reduced_hessian_min = r.real("reduced_hessian_min",
                                 "shift B when lambda_min(Z^T H Z) is below this",
                                 d.reduced_hessian_min);
  o.dense_limit = r.integer("dense_limit",
                            "largest n + m the sketches gather (above: distributed sketching)",
                            d.dense_limit, 1);
  o.lanczos_steps = static_cast<int>(r.integer(
      "lanczos_steps", "Lanczos steps for the spectral estimates when n + m > dense_limit",
      d.lanczos_steps, 2, 1000));
  o.ksp_preset = r.choice(
      "ksp_preset",
      "ksp sketch: mumps (MUMPS LU, LDL^T beyond -alsketch_dense_limit), fieldsplit (MINRES + Schur complement fieldsplit, GAMG on "
      "G diag(B)^-1 G^T), schur (diagonal B only: CG on the Schur complement G B^-1 G^T, matrix-free; "
      "the problem's Schur preconditioner, else GAMG), minres (MINRES, no preconditioner), auto (mumps; minres for Hessian "
      "products)",
      {"auto", "mumps", "fieldsplit", "schur", "minres"}, d.ksp_preset);
  o.problem_schur = r.flag("problem_schur",
                           "ksp fieldsplit and schur: use the problem's own Schur complement preconditioner "
                           "when it has one (poisson), else G diag(B)^-1 G^T + AMG",
                           d.problem_schur);
  o.sharpen = r.flag("sharpen",
                     "sharpen the accuracy condition (theta = min(1, KKT residual))", d.sharpen);
  return o;
}

}  // namespace parasol::alsketch
