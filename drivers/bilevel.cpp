// parasol-bilevel: bilevel optimization (LV-HBA, penalty, BO-REP, BSVRBv1/v2) on the toy,
// quadratic, hyper-cleaning, L2-hyperparameter and multi-block problems (docs/bilevel.md).
//   mpiexec -n 2 parasol-bilevel -method lvhba -problem hypercleaning -max_it 2000 -output run.h5
#include <parasol/bilevel.hpp>
#include <parasol/driver.hpp>
#include <parasol/error.hpp>
#include <parasol/partition.hpp>
#include <parasol/h5.hpp>
#include <parasol/options.hpp>

#include <string>
#include <vector>

namespace {

using namespace parasol;
using namespace parasol::bilevel;

const char* kHelp =
    "parasol-bilevel: bilevel optimization min_x F(x, y*(x)), y*(x) = argmin_y f(x, y)\n"
    "  (-method and -problem list their choices below; docs/bilevel.md has the details)\n";

struct ProblemOptions {
  std::string problem;
  std::int64_t toy_n = 100;
  std::string fashion_dir;
  double noise = 0.5, mu = 1e-3, val_fraction = 0.2, test_fraction = 0.0, lambda = 1e-5;
  std::int64_t classes = 10, blocks = 100;
};

std::string method_help() {
  std::string text = "bilevel method:";
  for (const auto& m : methods()) text += " " + m.name + " (" + m.description + ");";
  return text;
}

Options read_method_options(MPI_Comm comm, ProblemOptions* p) {
  Options o;
  OptionReader r(comm, "", "Bilevel options");
  o.method = r.choice("method", method_help(), method_names(), o.method);
  p->problem = r.choice("problem",
                        "problem: hypercleaning (Fashion-MNIST, default data), toy (LV-HBA "
                        "coupled-constraint toy), quadratic (-data with A B C a b F H K f h), "
                        "l2reg / ridge (per-feature L2 weights, -data), multiblock (m logistic "
                        "blocks, -data, bsvrb methods)",
                        problem_names(), "hypercleaning");
  o.batch = r.integer("batch", "samples per stochastic evaluation (0: full data)", o.batch, 0);
  o.eval_every = r.integer("eval_every", "full objective/metric evaluation every N iterations "
                           "(other rows repeat the last values)", o.eval_every, 1);
  p->toy_n = r.integer("toy_n", "toy: dimension n", p->toy_n, 1);
  p->fashion_dir = r.string("fashion_dir", "hypercleaning without -data: Fashion-MNIST idx files",
                            "/usr/share/datasets/fashion-mnist");
  p->noise = r.real("noise", "hypercleaning default data: share of corrupted training labels",
                    p->noise, 0.0, 1.0);
  p->mu = r.real("mu", "hypercleaning: L2 weight of the classifier", p->mu, 0.0);
  p->classes = r.integer("classes", "hypercleaning: number of classes", p->classes, 2);
  p->val_fraction = r.real("val_fraction", "-data problems: share of rows for validation",
                           p->val_fraction, 0.0, 1.0);
  p->test_fraction = r.real("test_fraction", "-data problems: share of rows for test (last rows)",
                            p->test_fraction, 0.0, 1.0);
  p->blocks = r.integer("blocks", "multiblock: number of blocks m", p->blocks, 1);
  p->lambda = r.real("lambda", "multiblock: L2 weight of each block", p->lambda, 0.0);

  o.lvhba_alpha = r.real("lvhba_alpha", "lvhba: step on (x, y)", o.lvhba_alpha, 0.0);
  o.lvhba_alpha_x = r.real("lvhba_alpha_x", "lvhba: step on x (0: lvhba_alpha)", o.lvhba_alpha_x, 0.0);
  o.lvhba_beta = r.real("lvhba_beta", "lvhba: step on z", o.lvhba_beta, 0.0);
  o.lvhba_eta = r.real("lvhba_eta", "lvhba: step on (theta, lambda)", o.lvhba_eta, 0.0);
  o.lvhba_gamma1 = r.real("lvhba_gamma1", "lvhba: proximal gamma of y", o.lvhba_gamma1, 0.0);
  o.lvhba_gamma2 = r.real("lvhba_gamma2", "lvhba: proximal gamma of the multipliers", o.lvhba_gamma2, 0.0);
  o.lvhba_c0 = r.real("lvhba_c0", "lvhba: penalty c_k = c0 (k+1)^p", o.lvhba_c0, 0.0);
  o.lvhba_p = r.real("lvhba_p", "lvhba: penalty growth exponent p", o.lvhba_p, 0.0);
  o.lvhba_clamp = r.real("lvhba_clamp", "lvhba: multiplier bound u", o.lvhba_clamp, 0.0);

  o.penalty_variant = r.choice("penalty_variant", "penalty: double (inner loops, full data) or "
                               "single (one step each, minibatches)", {"double", "single"},
                               o.penalty_variant);
  o.penalty_sigma = r.real("penalty_sigma", "penalty: sigma (h = sigma F + f)", o.penalty_sigma, 0.0);
  o.penalty_lr_x = r.real("penalty_lr_x", "penalty: upper step", o.penalty_lr_x, 0.0);
  o.penalty_lr_y = r.real("penalty_lr_y", "penalty: step on y (sigma F + f)", o.penalty_lr_y, 0.0);
  o.penalty_lr_z = r.real("penalty_lr_z", "penalty: step on z (f)", o.penalty_lr_z, 0.0);
  o.penalty_inner = r.integer("penalty_inner", "penalty: inner steps per outer step", o.penalty_inner, 1);
  o.penalty_inner_tol = r.real("penalty_inner_tol", "penalty: inner stop below this gradient norm",
                               o.penalty_inner_tol, 0.0);
  o.penalty_momentum = r.real("penalty_momentum", "penalty single: momentum", o.penalty_momentum, 0.0, 1.0);

  o.borep_lr_x = r.real("borep_lr_x", "borep: normalized upper step", o.borep_lr_x, 0.0);
  o.borep_lr_y = r.real("borep_lr_y", "borep: lower step", o.borep_lr_y, 0.0);
  o.borep_beta = r.real("borep_beta", "borep: momentum", o.borep_beta, 0.0, 1.0);
  o.borep_nu = r.real("borep_nu", "borep: step of the linear-system variable", o.borep_nu, 0.0);
  o.borep_interval = r.integer("borep_interval", "borep: lower update every I iterations", o.borep_interval, 1);
  o.borep_lower_steps = r.integer("borep_lower_steps", "borep: N lower steps per update", o.borep_lower_steps, 0);
  o.borep_init_steps = r.integer("borep_init_steps", "borep: initialization refinement steps", o.borep_init_steps, 0);
  o.borep_decay = r.real("borep_decay", "borep: upper step multiplied by this every iteration",
                         o.borep_decay, 0.0, 1.0);

  o.borep_lr_y_decay = r.real("borep_lr_y_decay", "borep: lower step multiplied by this every "
                              "iteration", o.borep_lr_y_decay, 0.0, 1.0);
  o.bsvrb_blocks = r.integer("bsvrb_blocks", "bsvrb: blocks I sampled per iteration", o.bsvrb_blocks, 1);
  o.bsvrb_lr_x = r.real("bsvrb_lr_x", "bsvrb: upper step eta", o.bsvrb_lr_x, 0.0);
  o.bsvrb_beta = r.real("bsvrb_beta", "bsvrb: STORM beta", o.bsvrb_beta, 0.0, 1.0);
  o.bsvrb_alpha = r.real("bsvrb_alpha", "bsvrb: MSVR alpha", o.bsvrb_alpha, 0.0, 1.0);
  o.bsvrb_gamma = r.real("bsvrb_gamma", "bsvrb: MSVR gamma", o.bsvrb_gamma, 0.0);
  o.bsvrb_tau = r.real("bsvrb_tau", "bsvrb: lower step (-1: 0.5 for v1, 1 for v2)", o.bsvrb_tau);
  o.bsvrb_tau_v = r.real("bsvrb_tau_v", "bsvrb2: step of v", o.bsvrb_tau_v, 0.0);
  o.bsvrb_hmin = r.real("bsvrb_hmin", "bsvrb1: smallest Hessian eigenvalue kept", o.bsvrb_hmin, 0.0);
  o.bsvrb_vbound = r.real("bsvrb_vbound", "bsvrb2: radius of the ball for v", o.bsvrb_vbound, 0.0);
  o.bsvrb_profile = r.flag("bsvrb_profile", "bsvrb: print each rank's seconds per phase of the "
                           "iteration (sampling, block work, waiting, exchange, update) at the end",
                           o.bsvrb_profile);
  return o;
}

// Rows of every rank, on every rank (the multi-block task replicates its small data).
RowMatrix gather_rows(MPI_Comm comm, const RowMatrix& local, Eigen::VectorXd* labels) {
  const RankPieces rows = RankPieces::of(comm, int(local.rows()));
  RowMatrix all(rows.total, local.cols());
  rows.times(int(local.cols())).allgather(comm, local.data(), all.data());
  const Eigen::VectorXd mine_labels = *labels;
  labels->resize(rows.total);
  rows.allgather(comm, mine_labels.data(), labels->data());
  return all;
}

// The input record of -data: the shape of /X (learning problems) or /A (quadratic).
InputRecord describe_data(MPI_Comm comm, const std::string& path) {
  InputRecord record{"data", path, {}, 0};
  h5::File file(comm, path, h5::File::Mode::Read);
  for (const char* name : {"/X", "/A"})
    if (file.exists(name)) {
      record.shape = h5::shape(file, name);
      break;
    }
  if (record.shape.empty()) record.shape = {0};
  return record;
}

void require_data(MPI_Comm comm, const CommonOptions& common, const std::string& problem) {
  check_all(comm, !common.data.empty(),
            "problem " + problem + " needs -data FILE (see docs/bilevel.md for the layout)");
}

}  // namespace

int main(int argc, char** argv) {
  return driver_main(argc, argv, "parasol-bilevel", kHelp, [](Session& session) {
    MPI_Comm comm = session.comm();
    CommonOptions defaults;
    defaults.max_it = 1000;
    defaults.tol = 1e-10;
    const CommonOptions common = read_common_options(comm, "bilevel", defaults);
    ProblemOptions p;
    Options options = read_method_options(comm, &p);
    options.seed = std::uint64_t(common.seed);
    options.tol = common.tol;
    std::string why;
    check_all(comm, options.IsValid(&why), "bilevel options: " + why);
    if (finish_options(comm)) return 0;

    std::vector<InputRecord> inputs;
    if (!common.data.empty()) collective(comm, [&] { inputs.push_back(describe_data(comm, common.data)); });
    std::unique_ptr<Solver> solver;
    const bool block_method = options.method == "bsvrb1" || options.method == "bsvrb2";
    if (p.problem == "multiblock") {
      require_data(comm, common, p.problem);
      check_all(comm, block_method, "problem multiblock needs -method bsvrb1 or bsvrb2");
      SplitData split = load_split(comm, common.data, p.val_fraction, 0.0);
      RowMatrix X_train = gather_rows(comm, split.X_train, &split.y_train);
      RowMatrix X_val = gather_rows(comm, split.X_val, &split.y_val);
      std::shared_ptr<BlockProblem> problem;
      collective(comm, [&] {
        problem = make_multiblock_problem(comm, X_train, split.y_train, X_val, split.y_val,
                                          p.blocks, p.lambda);
      });
      solver = make_block_solver(options, problem);
    } else {
      std::shared_ptr<Problem> problem;
      if (p.problem == "toy") {
        problem = make_toy_problem(comm, p.toy_n);
      } else if (p.problem == "quadratic") {
        require_data(comm, common, p.problem);
        problem = make_quadratic_problem(comm, read_quadratic(comm, common.data));
      } else if (p.problem == "hypercleaning") {
        SplitData split = common.data.empty()
                              ? load_fashion_mnist_split(comm, p.fashion_dir, common.seed, p.noise)
                              : load_split(comm, common.data, p.val_fraction, p.test_fraction);
        if (common.data.empty())
          inputs.push_back({"fashion_mnist", p.fashion_dir, {60000 + 10000, 784}, 0});
        problem = make_hypercleaning_problem(comm, std::move(split), p.classes, p.mu);
      } else {  // l2reg, ridge
        require_data(comm, common, p.problem);
        problem = make_l2reg_problem(comm, load_split(comm, common.data, p.val_fraction, p.test_fraction),
                                     p.problem == "ridge" ? L2Loss::Squared : L2Loss::Logistic);
      }
      collective(comm, [&] { solver = make_solver(options, problem); });
    }
    return solve_and_write(comm, *solver, common, inputs);
  });
}
