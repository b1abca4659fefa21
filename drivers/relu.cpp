// parasol-relu: global training of two-layer ReLU networks through their convex
// reformulation, solved by ADMM (docs/relu.md). Training rows are distributed over ranks.
//   mpiexec -n 2 parasol-relu -data train.h5 -test test.h5 -P 64 -beta 1e-4 -loss squared \
//       -method admm -seed 1 -tol 1e-6 -output run.h5
//   parasol-relu -predict -network run.h5 -data new.h5 -output predictions.h5
#include <parasol/dataset.hpp>
#include <parasol/driver.hpp>
#include <parasol/error.hpp>
#include <parasol/h5.hpp>
#include <parasol/options.hpp>
#include <parasol/partition.hpp>
#include <parasol/random.hpp>
#include <parasol/relu.hpp>
#include <parasol/relu_adversarial.hpp>

#include <cmath>
#include <cstdio>
#include <memory>

namespace relu = parasol::relu;

static const char help[] =
    "parasol-relu: two-layer ReLU networks trained to global optimality (convex program, ADMM).\n"
    "  mpiexec -n 2 parasol-relu -data train.h5 [-test test.h5] -P 64 -beta 1e-4 \\\n"
    "      -loss squared|bce|hinge -method admm|scp -seed 1 -tol 1e-6 -output run.h5\n"
    "  parasol-relu -method adversarial -loss hinge -epsilon 0.1 ... (robust training)\n"
    "  parasol-relu -predict -network run.h5 -data new.h5 -output predictions.h5\n"
    "      [-attack pgd|worst_case -epsilon 0.1] (robust accuracy under l_inf attack)\n"
    "Labels: +1/-1 (squared, hinge), 0/1 (bce). Without -data: a synthetic demo (-demo_n rows\n"
    "labelled by a planted 3-neuron network).\n";

namespace {

struct DriverOptions {
  relu::Options solver;
  std::string test;
  bool predict = false;
  std::string network;
  std::string attack = "none";
  relu::PgdOptions pgd;
  std::int64_t demo_n = 1000, demo_d = 10;
};

DriverOptions read_options(MPI_Comm comm) {
  DriverOptions o;
  parasol::OptionReader r(comm, "", "parasol-relu: convex ReLU training");
  relu::Options& s = o.solver;
  o.predict = r.flag("predict", "Predict with -network on -data instead of training", false);
  o.network = r.string("network", "Run file whose /solution is the network (-predict)", "");
  o.test = r.string("test", "HDF5 test set: test accuracy in /history", "");
  s.method = r.choice("method", "Algorithm", relu::method_names(), s.method);
  s.loss = r.choice("loss", "Loss (squared, hinge: labels +-1; bce: labels 0/1)",
                    relu::loss_names(), s.loss);
  s.patterns = r.integer("P", "Activation patterns to sample (duplicates removed)", s.patterns);
  s.beta = r.real("beta", "Group-lasso weight", s.beta);
  s.bias = r.flag("bias", "Append a ones column to X (a bias per neuron)", s.bias);
  s.rho = r.real("rho", "ADMM penalty (initial value)", s.rho);
  s.adaptive_rho = r.flag("adaptive_rho", "Residual balancing of rho every 10 iterations", s.adaptive_rho);
  s.max_rho_changes = r.integer("max_rho_changes", "Most changes of rho", s.max_rho_changes);
  s.cone_weight = r.real("cone_weight", "Penalty of the cone split relative to rho (0: automatic)", s.cone_weight);
  s.loss_weight = r.real("loss_weight", "Penalty of the loss split relative to rho (0: 1)", s.loss_weight);
  s.epsilon = r.real("epsilon", "l_inf radius: of the perturbations for -method adversarial, of the attack for -predict -attack", s.epsilon);
  o.attack = r.choice("attack", "-predict: l_inf attack for robust accuracy (pgd on the network, worst_case of the convex model)",
                      {"none", "pgd", "worst_case"}, o.attack);
  o.pgd.steps = r.integer("pgd_steps", "-attack pgd: sign-gradient steps per restart", o.pgd.steps, 1);
  o.pgd.restarts = r.integer("pgd_restarts", "-attack pgd: restarts (the first from delta = 0, the others random)", o.pgd.restarts, 1);
  o.pgd.step_size = r.real("pgd_step_size", "-attack pgd: step length (0: 2.5 epsilon / steps)", o.pgd.step_size);
  s.gamma = r.real("gamma", "Dual step in the scaled form (1: standard ADMM)", s.gamma);
  s.linear_solver = r.choice("linear_solver", "u-update: dense Cholesky, Woodbury (n x n factor), PCG, or auto by cost",
                             relu::linear_solver_names(), s.linear_solver);
  s.dense_limit = r.integer("dense_limit", "auto: a direct solve (dense: K d, Woodbury: n) only for systems at most this large", s.dense_limit);
  s.bce_solver = r.choice("bce_solver", "Cross-entropy: split the loss (exact u-update) or ADMM-RBCD (inexact u-update)",
                          relu::bce_solver_names(), s.bce_solver);
  s.rbcd_sweeps = r.integer("rbcd_sweeps", "ADMM-RBCD: block-coordinate sweeps per ADMM iteration", s.rbcd_sweeps);
  s.pcg_rtol = r.real("pcg_rtol", "PCG relative residual", s.pcg_rtol);
  s.pcg_inexact = r.real("pcg_inexact", "PCG stops at relative residual max(pcg_rtol, this x the last ADMM residual)", s.pcg_inexact);
  s.pcg_single = r.flag("pcg_single", "PCG products with X in single precision while the requested relative residual is >= 1e-4", s.pcg_single);
  s.pcg_max_it = r.integer("pcg_max_it", "PCG iterations per u-update at most", s.pcg_max_it);
  s.record_every = r.integer("record_every", "ADMM iterations per history row (and per -max_it count)", s.record_every);
  s.validation_fraction = r.real("validation_fraction", "Hold out this fraction of the training rows; stop when their accuracy stops improving, keep the best iterate (0: off)", s.validation_fraction);
  s.validation_patience = r.integer("validation_patience", "-validation_fraction: iterations without a better validation accuracy before stopping", s.validation_patience);
  o.demo_n = r.integer("demo_n", "Synthetic demo (no -data): rows", o.demo_n, 1);
  o.demo_d = r.integer("demo_d", "Synthetic demo (no -data): features", o.demo_d, 1);
  return o;
}

// The demo data: x ~ N(0, I), label sign of a planted network, keyed by global row.
void demo_data(MPI_Comm comm, const DriverOptions& o, std::uint64_t seed, relu::RowMatrix& X,
               Eigen::VectorXd& y) {
  const parasol::Partition rows = parasol::Partition::block(o.demo_n, comm);
  relu::RowMatrix teacher(3, o.demo_d);
  parasol::Random t(seed, "relu.demo.teacher", 0);
  for (Eigen::Index i = 0; i < teacher.size(); ++i) teacher.data()[i] = t.normal();
  const Eigen::Vector3d alpha(1.0, -1.0, 0.5);
  X.resize(rows.count(), o.demo_d);
  y.resize(rows.count());
  for (std::int64_t k = 0; k < rows.count(); ++k) {
    parasol::Random r(seed, "relu.demo.rows", static_cast<std::uint64_t>(rows.begin + k));
    for (std::int64_t c = 0; c < o.demo_d; ++c) X(k, c) = r.normal();
    const double f = (teacher * X.row(k).transpose()).cwiseMax(0.0).dot(alpha) - 0.3;
    const bool positive = f > 0;
    y(k) = o.solver.loss == "bce" ? (positive ? 1.0 : 0.0) : (positive ? 1.0 : -1.0);
  }
}

int predict(MPI_Comm comm, const DriverOptions& o, const parasol::CommonOptions& common) {
  if (o.network.empty()) throw parasol::Error("-predict needs -network RUN.h5 (a training run file)");
  if (common.data.empty()) throw parasol::Error("-predict needs -data FILE (the points to predict)");
  relu::Network net;
  std::int64_t features = 0;
  {
    parasol::h5::File file(comm, o.network, parasol::h5::File::Mode::Read);
    parasol::collective(comm, [&] {
      if (!file.exists("/solution") || !parasol::h5::has_attr(file, "/solution", "neurons"))
        throw parasol::Error("-network " + o.network + ": no /solution with a network (not a parasol-relu run file?)");
      net = relu::read_network(file);
      features = parasol::h5::attr_int(file, "/solution", "features");
    });
  }
  parasol::LoadOptions load;
  load.require_labels = o.attack != "none";  // robust accuracy needs the labels
  parasol::Dataset data = parasol::load_dataset(comm, common.data, load);
  parasol::check_all(comm, data.cols == features,
                     "-data " + common.data + " has " + std::to_string(data.cols) +
                         " features but the network in " + o.network + " expects " +
                         std::to_string(features));
  const relu::RowMatrix X = data.dense_local();
  const Eigen::VectorXd output = net.predict(X);
  Eigen::VectorXd classes = output.unaryExpr([](double t) { return t > 0 ? 1.0 : -1.0; });
  const std::string path = common.output;
  {
    parasol::h5::File file(comm, path, parasol::h5::File::Mode::Create);
    parasol::h5::write_rows(file, "/predictions", output.data(), static_cast<std::uint64_t>(output.size()), 0);
    parasol::h5::write_rows(file, "/classes", classes.data(), static_cast<std::uint64_t>(classes.size()), 0);
    parasol::h5::set_attr(file, "/", "network", o.network);
    parasol::h5::set_attr(file, "/", "data", common.data);
    parasol::h5::set_attr(file, "/predictions", "description",
                          std::string("network output f(x); class +1 when f(x) > 0, else -1"));
    double acc = -1.0;
    if (data.has_labels()) {
      acc = relu::accuracy(comm, output, data.y);
      parasol::h5::set_attr(file, "/", "accuracy", acc);
    }
    double robust = -1.0;
    if (o.attack != "none") {
      relu::AttackResult attacked;
      if (o.attack == "pgd") {
        relu::PgdOptions pgd = o.pgd;
        pgd.epsilon = o.solver.epsilon;
        pgd.seed = o.solver.seed;
        attacked = relu::pgd_attack(comm, net, X, data.y, pgd);
      } else {
        relu::ConvexModel model;
        {
          parasol::h5::File run(comm, o.network, parasol::h5::File::Mode::Read);
          parasol::collective(comm, [&] { model = relu::read_convex_model(run); });
        }
        attacked = relu::worst_case_attack(comm, model, X, data.y, o.solver.epsilon);
      }
      robust = attacked.robust_accuracy;
      const auto rows = static_cast<std::uint64_t>(X.rows());
      parasol::h5::write_rows(file, "/adversarial_predictions", attacked.adversarial_output.data(), rows, 0);
      parasol::h5::write_rows(file, "/perturbation", attacked.perturbation.data(), rows,
                              static_cast<std::uint64_t>(attacked.perturbation.cols()));
      parasol::h5::set_attr(file, "/", "attack", o.attack);
      parasol::h5::set_attr(file, "/", "epsilon", o.solver.epsilon);
      parasol::h5::set_attr(file, "/", "robust_accuracy", robust);
      parasol::h5::set_attr(file, "/adversarial_predictions", "description",
                            std::string(o.attack == "pgd" ? "network output at the PGD point x + delta (lowest margin found)"
                                                          : "convex model output at x + delta with the patterns of x (exact worst case)"));
    }
    file.close();
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    if (rank == 0) {
      if (robust >= 0)
        std::printf("relu predict: %lld points, accuracy %.4f, robust accuracy %.4f (%s, epsilon %g)\n",
                    static_cast<long long>(data.rows.global), acc, robust, o.attack.c_str(), o.solver.epsilon);
      else if (acc >= 0) std::printf("relu predict: %lld points, accuracy %.4f\n", static_cast<long long>(data.rows.global), acc);
      else std::printf("relu predict: %lld points\n", static_cast<long long>(data.rows.global));
      std::printf("  output: %s\n", path.c_str());
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return parasol::driver_main(argc, argv, "parasol-relu", help, [](parasol::Session& s) {
    const MPI_Comm comm = s.comm();
    DriverOptions o = read_options(comm);
    parasol::CommonOptions defaults;
    defaults.max_it = 5000;
    defaults.tol = 1e-6;  // all four ADMM residuals (relative)
    defaults.output = o.predict ? "parasol-relu-predictions.h5" : "parasol-relu.h5";
    const auto common = parasol::read_common_options(comm, "relu", defaults);
    o.solver.tol = common.tol;
    o.solver.seed = static_cast<std::uint64_t>(common.seed);
    if (o.predict) {
      // -epsilon is the attack's radius here, not a training option.
      parasol::check_all(comm, std::isfinite(o.solver.epsilon) && o.solver.epsilon >= 0,
                         "-epsilon must be finite and >= 0");
      parasol::check_all(comm, o.attack == "none" || o.solver.epsilon > 0,
                         "-attack " + o.attack + " needs -epsilon > 0 (the l_inf radius)");
      parasol::check_all(comm, o.attack != "none" || o.solver.epsilon == 0,
                         "-epsilon with -predict needs -attack pgd or -attack worst_case");
    } else {
      std::string why;
      const bool valid = o.solver.IsValid(&why);
      parasol::check_all(comm, valid, why);
      parasol::check_all(comm, o.attack == "none", "-attack is only used with -predict");
    }
    if (parasol::finish_options(comm)) return 0;  // -help; unknown options rejected
    if (o.predict) return predict(comm, o, common);
    parasol::check_all(comm, o.network.empty(), "-network is only used with -predict");

    std::vector<parasol::InputRecord> inputs;
    relu::RowMatrix X, X_test;
    Eigen::VectorXd y, y_test;
    if (!common.data.empty()) {
      parasol::LoadOptions load;
      load.require_labels = true;
      parasol::Dataset data = parasol::load_dataset(comm, common.data, load);
      X = data.dense_local();
      y = data.y;
      inputs.push_back({"data", common.data,
                        {static_cast<std::uint64_t>(data.rows.global), static_cast<std::uint64_t>(data.cols)},
                        data.crc32});
      if (!o.test.empty()) {
        parasol::Dataset test = parasol::load_dataset(comm, o.test, load);
        parasol::check_all(comm, test.cols == data.cols,
                           "-test " + o.test + " has " + std::to_string(test.cols) +
                               " features but -data " + common.data + " has " +
                               std::to_string(data.cols));
        X_test = test.dense_local();
        y_test = test.y;
        inputs.push_back({"test", o.test,
                          {static_cast<std::uint64_t>(test.rows.global), static_cast<std::uint64_t>(test.cols)},
                          test.crc32});
      }
    } else {
      parasol::check_all(comm, o.test.empty(), "-test needs -data (the demo has no test set)");
      demo_data(comm, o, o.solver.seed, X, y);
    }
    // -method adversarial has its own solver class; both give the same summary.
    std::unique_ptr<relu::Solver> standard;
    std::unique_ptr<relu::AdversarialSolver> adversarial;
    if (o.solver.method == "adversarial")
      adversarial = std::make_unique<relu::AdversarialSolver>(comm, o.solver, X, y, X_test, y_test);
    else
      standard = std::make_unique<relu::Solver>(comm, o.solver, X, y, X_test, y_test);
    parasol::IterativeSolver& solver = standard ? static_cast<parasol::IterativeSolver&>(*standard) : *adversarial;
    auto summary = [&] { return standard ? standard->summary() : adversarial->summary(); };
    const relu::Summary before = summary();
    if (s.rank() == 0)
      std::printf("relu: %lld of %lld sampled patterns distinct; u-update %s; setup %.3f s\n",
                  static_cast<long long>(before.patterns), static_cast<long long>(before.patterns_requested),
                  before.linear_solver.c_str(), before.setup_seconds);
    return parasol::solve_and_write(comm, solver, common, inputs, [&](parasol::RunFile& run) {
      const relu::Summary after = summary();
      parasol::h5::set_attr(run.file(), "/solution", "pcg_iterations", after.pcg_iterations);
      parasol::h5::set_attr(run.file(), "/solution", "setup_seconds", after.setup_seconds);
    });
  });
}
