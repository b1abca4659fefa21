// The method registry (the one place -method and -help take their names from) and the
// validation of Options.
#include <parasol/error.hpp>

#include "common.hpp"

namespace parasol::bilevel {

std::unique_ptr<Solver> make_lvhba(const Options&, std::shared_ptr<Problem>);
std::unique_ptr<Solver> make_penalty(const Options&, std::shared_ptr<Problem>);
std::unique_ptr<Solver> make_borep(const Options&, std::shared_ptr<Problem>);
std::unique_ptr<Solver> make_bsvrb(const Options&, std::shared_ptr<BlockProblem>, int version);

const std::vector<MethodInfo>& methods() {
  static const std::vector<MethodInfo> registry = {
      {"lvhba", "LV-HBA: proximal Lagrangian value function, single loop, Hessian-free; "
                "lower-level constraints coupled with x", false},
      {"penalty", "sigma-penalty method (Kwon et al.): y on sigma F + f, z on f, projected "
                  "steps; -penalty_variant double|single", false},
      {"borep", "BO-REP: normalized momentum, initialization refinement, periodic lower "
                "updates, Hessian-vector products", false},
      {"bsvrb1", "BSVRBv1: block sampling, MSVR lower/Hessian estimates, STORM upper step",
       true},
      {"bsvrb2", "BSVRBv2: block sampling, MSVR with Hessian-vector products only, lazy "
                 "lower updates", true},
  };
  return registry;
}

std::vector<std::string> method_names() {
  std::vector<std::string> names;
  for (const auto& m : methods()) names.push_back(m.name);
  return names;
}

std::vector<std::string> problem_names() {
  return {"hypercleaning", "toy", "quadratic", "l2reg", "ridge", "multiblock"};
}

bool Options::IsValid(std::string* why) const {
  auto fail = [&](const std::string& message) {
    if (why) *why = message;
    return false;
  };
  bool known = false;
  for (const auto& m : methods()) known = known || m.name == method;
  if (!known) return fail("unknown method '" + method + "'");
  if (batch < 0) return fail("batch must be >= 0");
  if (eval_every < 1) return fail("eval_every must be >= 1");
  for (double value : {lvhba_alpha, lvhba_beta, lvhba_eta, lvhba_gamma1, lvhba_gamma2,
                       lvhba_c0, lvhba_clamp, penalty_sigma, penalty_lr_x, penalty_lr_y,
                       penalty_lr_z, borep_lr_x, borep_lr_y, borep_nu, bsvrb_lr_x,
                       bsvrb_tau_v, bsvrb_hmin, bsvrb_vbound})
    if (!(value > 0)) return fail("step sizes, gammas, sigma, c0 and bounds must be positive");
  if (lvhba_p < 0) return fail("lvhba_p must be >= 0");
  if (penalty_variant != "double" && penalty_variant != "single")
    return fail("penalty_variant must be double or single");
  if (penalty_inner < 1) return fail("penalty_inner must be >= 1");
  if (!(borep_beta >= 0 && borep_beta < 1)) return fail("borep_beta must be in [0, 1)");
  if (!(borep_decay > 0 && borep_decay <= 1) || !(borep_lr_y_decay > 0 && borep_lr_y_decay <= 1))
    return fail("borep_decay and borep_lr_y_decay must be in (0, 1]");
  if (borep_interval < 1 || borep_lower_steps < 0 || borep_init_steps < 0)
    return fail("borep_interval must be >= 1 and the step counts >= 0");
  if (bsvrb_blocks < 1) return fail("bsvrb_blocks must be >= 1");
  if (!(bsvrb_beta > 0 && bsvrb_beta <= 1)) return fail("bsvrb_beta must be in (0, 1]");
  if (!(bsvrb_alpha > 0 && bsvrb_alpha <= 1)) return fail("bsvrb_alpha must be in (0, 1]");
  if (bsvrb_gamma < 0) return fail("bsvrb_gamma must be >= 0");
  return true;
}

std::unique_ptr<Solver> make_solver(const Options& options, std::shared_ptr<Problem> problem) {
  std::string why;
  if (!options.IsValid(&why)) throw Error("bilevel options: " + why);
  if (options.method == "lvhba") return make_lvhba(options, std::move(problem));
  if (options.method == "penalty") return make_penalty(options, std::move(problem));
  if (options.method == "borep") return make_borep(options, std::move(problem));
  // The block methods take any unconstrained problem as one block.
  return make_block_solver(options, as_block_problem(std::move(problem)));
}

std::unique_ptr<Solver> make_block_solver(const Options& options,
                                          std::shared_ptr<BlockProblem> problem) {
  std::string why;
  if (!options.IsValid(&why)) throw Error("bilevel options: " + why);
  if (options.method == "bsvrb1") return make_bsvrb(options, std::move(problem), 1);
  if (options.method == "bsvrb2") return make_bsvrb(options, std::move(problem), 2);
  throw Error("bilevel: method " + options.method + " does not handle the multi-block problem " +
              problem->name() + " (use bsvrb1 or bsvrb2)");
}

}  // namespace parasol::bilevel
