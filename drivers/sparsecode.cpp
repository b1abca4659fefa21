// parasol-sparsecode: probabilistic sparse coding (BSC, MCA, MMCA, TSC, DSC, GSC) learned with
// expectation truncation, data-parallel over MPI. Without -data it runs the bars demo:
// bars data generated in-process from -seed, learned, and scored against the true bars.
#include <parasol/dataset.hpp>
#include <parasol/driver.hpp>
#include <parasol/error.hpp>
#include <parasol/options.hpp>
#include <parasol/sparsecode.hpp>

#include <cstdio>

namespace sc = parasol::sparsecode;

static const char help[] =
    "parasol-sparsecode: sparse coding with truncated EM (ProSper models) over MPI.\n"
    "  mpiexec -n 4 parasol-sparsecode -model bsc -data X.h5 -H 10 -Hprime 8 -gamma 5 \\\n"
    "      -max_it 150 -seed 1 -output run.h5\n"
    "Without -data: the bars demo (5x5 bars, amplitude 10, sigma 2, pi 0.2, -demo_N points).\n"
    "Schedules: a number, or pos:value,... (pos an iteration, or a fraction of -max_it when it\n"
    "has a decimal point; negative counts from the end), e.g. -anneal_T 0:5,0.8:1\n";

namespace {

struct DriverOptions {
  sc::Options model;
  std::string infer;
  int infer_topk = 5;
  std::int64_t demo_N = 1000;
};

DriverOptions read_options(MPI_Comm comm, const parasol::CommonOptions& common) {
  DriverOptions o;
  parasol::OptionReader r(comm, "", "parasol-sparsecode: model and truncation");
  o.model.model = r.choice("model", "Generative model", sc::model_names(), "bsc");
  o.model.H = static_cast<int>(r.integer("H", "Number of latent units", 10, 1, 100000));
  o.model.Hprime = static_cast<int>(
      r.integer("Hprime", "Candidate latents per data point (H' <= H)", 8, 1, 100000));
  o.model.gamma = static_cast<int>(
      r.integer("gamma", "Most active units in a candidate state (gamma <= H')", 5, 1, 100000));
  o.model.values = r.reals("values", "dsc: latent value set (must contain 0)", {0, 1, 2});
  o.model.noise = r.choice("noise", "gsc: noise covariance sigma^2 I or diag(sigma_d^2)",
                           {"scalar", "diagonal"}, "scalar");
  o.model.temperature =
      sc::Schedule::parse(r.string("anneal_T", "Temperature schedule (beta = 1/T)", "0:2,0.7:1"),
                          "anneal_T");
  o.model.anneal_prior =
      r.flag("anneal_prior", "Temper the prior too (otherwise only the likelihood)", false);
  o.model.ncut_factor = sc::Schedule::parse(
      r.string("anneal_ncut", "Data truncation factor schedule in [0,1]", "0:0,0.67:1"),
      "anneal_ncut");
  o.model.W_noise = sc::Schedule::parse(
      r.string("anneal_W_noise", "Std of noise added to W each iteration", "0"), "anneal_W_noise");
  o.model.pi_noise = sc::Schedule::parse(
      r.string("anneal_pi_noise", "Std of noise added to pi each iteration", "0"),
      "anneal_pi_noise");
  o.model.sigma_noise = sc::Schedule::parse(
      r.string("anneal_sigma_noise", "Std of noise added to sigma each iteration", "0"),
      "anneal_sigma_noise");
  o.infer = r.string("infer", "HDF5 data to infer after learning (top-K states, marginals)", "");
  o.infer_topk = static_cast<int>(r.integer("infer_topk", "States kept per point by -infer", 5, 1, 1000));
  o.model.snapshot_every = r.integer(
      "snapshot_every", "Keep W every k iterations, written to /snapshots/W (0: none)", 0, 0);
  o.demo_N = r.integer("demo_N", "Bars demo (no -data): number of data points", 1000, 1);
  o.model.max_it = common.max_it;
  o.model.seed = static_cast<std::uint64_t>(common.seed);
  o.model.tol = common.tol;
  if (o.model.noise != "scalar" && o.model.model != "gsc")
    throw parasol::Error("-noise diagonal is only available for -model gsc");
  std::string why;
  if (!o.model.IsValid(&why)) throw parasol::Error(why);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  return parasol::driver_main(argc, argv, "parasol-sparsecode", help, [](parasol::Session& s) {
    const MPI_Comm comm = s.comm();
    parasol::CommonOptions defaults;
    defaults.max_it = 100;
    defaults.tol = 1e-8;  // relative change of the log-likelihood, checked once annealing ends
    defaults.output = "parasol-sparsecode.h5";
    const auto common = parasol::read_common_options(comm, "sparsecode", defaults);
    const DriverOptions o = read_options(comm, common);

    std::vector<parasol::InputRecord> inputs;
    parasol::RowMatrix Y;
    Eigen::MatrixXd true_W;
    sc::BarsSpec bars;
    if (!common.data.empty()) {
      parasol::Dataset data = parasol::load_dataset(comm, common.data);
      Y = data.dense_local();
      inputs.push_back({"data", common.data,
                        {static_cast<std::uint64_t>(data.rows.global),
                         static_cast<std::uint64_t>(data.cols)},
                        data.crc32});
    } else {
      // The demo: bars generated from the chosen model's prior, rows keyed by global index.
      bars.model = o.model.model;
      bars.signed_bars = o.model.model == "tsc" || o.model.model == "mmca";
      bars.R = o.model.H / 2 > 0 ? o.model.H / 2 : 1;
      if (2 * bars.R != o.model.H)
        throw parasol::Error("the bars demo (no -data) needs an even -H (H = 2 R bars)");
      if (o.model.model == "dsc") {
        bars.values = o.model.values;
        bars.value_prior.assign(bars.values.size(), 0.2 / (bars.values.size() - 1));
        for (std::size_t v = 0; v < bars.values.size(); ++v)
          if (bars.values[v] == 0.0) bars.value_prior[v] = 0.8;
      }
      const auto seed = static_cast<std::uint64_t>(common.seed);
      true_W = sc::bars_fields(bars, seed);
      const auto rows = parasol::Partition::block(o.demo_N, comm);
      Y = sc::bars_data(bars, true_W, rows.begin, rows.end, seed);
    }
    sc::ETSolver solver(comm, o.model, std::move(Y));

    parasol::Dataset infer_data;
    if (!o.infer.empty()) {
      infer_data = parasol::load_dataset(comm, o.infer);
      if (infer_data.cols != solver.parameters().W.cols())
        throw parasol::Error("-infer " + o.infer + ": D = " + std::to_string(infer_data.cols) +
                             " does not match the training data's D = " +
                             std::to_string(solver.parameters().W.cols()));
      inputs.push_back({"infer", o.infer,
                        {static_cast<std::uint64_t>(infer_data.rows.global),
                         static_cast<std::uint64_t>(infer_data.cols)},
                        infer_data.crc32});
    }
    if (parasol::finish_options(comm)) return 0;

    double match_error = -1.0;
    const int code = parasol::solve_and_write(comm, solver, common, inputs, [&](parasol::RunFile& run) {
      if (!o.infer.empty()) {
        const sc::Inference inf = sc::infer(solver, infer_data.dense_local(), o.infer_topk);
        sc::write_inference(run.file(), "inference", inf, o.model.H, o.infer_topk);
      }
      if (true_W.size() > 0) {
        match_error = sc::bars_match_error(sc::effective_fields(solver.parameters()), true_W,
                                           o.model.model == "tsc");
        const parasol::RowMatrix truth = true_W;
        parasol::h5::write(run.file(), "demo/true_W",
                           std::vector<double>(truth.data(), truth.data() + truth.size()),
                           {static_cast<std::uint64_t>(truth.rows()),
                            static_cast<std::uint64_t>(truth.cols())});
        parasol::h5::set_attr(run.file(), "demo", "match_error", match_error);
        parasol::h5::set_attr(run.file(), "demo", "amplitude", bars.amplitude);
      }
    });
    if (s.rank() == 0) {
      std::printf("  log-likelihood per point: %.6f  N_use: %lld\n",
                  solver.summary().log_likelihood,
                  static_cast<long long>(solver.summary().N_use));
      if (match_error >= 0)
        std::printf("  bars demo: largest matched MAE %.3f (%s: below 10%% of amplitude %.0f)\n",
                    match_error, match_error < 0.1 * bars.amplitude ? "recovered" : "not recovered",
                    bars.amplitude);
    }
    return code;
  });
}
