// make_run_file: writes a real run file for the analysis tests, through the same RunFile and
// run_solver API as the drivers. The "solver" is gradient descent with step 1/L on
//   f(x) = 1/2 sum_i a_i (x_i - b_i)^2,  a_i = 1 + (i mod 5),  b_i = 1 + i/10,  x^0 = 0,
// whose iterates have a closed form the tests check against:
//   x_i^k - b_i = -(1 - a_i/L)^k b_i,  L = max a_i = 5.
// x is distributed over ranks by block rows. Besides /solution/x it writes /solution/W, a
// 6 x 16 matrix whose rows are 4x4 "bar" images (row h: a bar of value (h+1)*(-1)^h,
// horizontal at row h for h < 4, vertical at column h-4 otherwise), also row-distributed,
// for the `fields` command.
//
// Options: -n N (problem size), -crash_at K (SIGKILL during iteration K: a killed run),
// plus the common ones (-output, -max_it, -tol, -seed, -checkpoint, ...).
#include <parasol/driver.hpp>
#include <parasol/h5.hpp>
#include <parasol/options.hpp>
#include <parasol/partition.hpp>
#include <parasol/session.hpp>
#include <parasol/solver.hpp>

#include <csignal>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using parasol::Partition;
using parasol::Status;
using parasol::StepReport;

constexpr double kLipschitz = 5.0;  // max over i of a_i = 1 + (i mod 5), for n >= 5
constexpr int kBars = 6;
constexpr int kSide = 4;

double curvature(std::int64_t i) { return 1.0 + static_cast<double>(i % 5); }
double target(std::int64_t i) { return 1.0 + 0.1 * static_cast<double>(i); }

// CRC-32 (IEEE, reflected, as zlib's crc32) of a byte buffer, for /input/<role>/crc32.
std::uint32_t crc32_of(const void* data, std::size_t size) {
  std::uint32_t crc = 0xFFFFFFFFu;
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (std::size_t k = 0; k < size; ++k) {
    crc ^= bytes[k];
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return crc ^ 0xFFFFFFFFu;
}

class QuadraticDescent : public parasol::IterativeSolver {
 public:
  QuadraticDescent(MPI_Comm comm, std::int64_t n, double tol, std::int64_t crash_at)
      : comm_(comm), rows_(Partition::block(n, comm)), tol_(tol), crash_at_(crash_at),
        x_(static_cast<std::size_t>(rows_.count()), 0.0) {}

  std::string family() const override { return "toy"; }
  std::string method() const override { return "gd"; }
  std::vector<std::string> history_fields() const override {
    return {"grad_norm", "distance", "step_size"};
  }

  StepReport step(std::int64_t iteration) override {
    if (iteration == crash_at_) std::raise(SIGKILL);  // a run killed mid-way
    const double step_size = 1.0 / kLipschitz;
    // Local sums of: objective, |gradient|^2, |x - b|^2 after the step; one allreduce.
    double sums[3] = {0.0, 0.0, 0.0};
    for (std::int64_t local = 0; local < rows_.count(); ++local) {
      const std::int64_t i = rows_.begin + local;
      double& x = x_[static_cast<std::size_t>(local)];
      x -= step_size * curvature(i) * (x - target(i));
      const double residual = x - target(i);
      sums[0] += 0.5 * curvature(i) * residual * residual;
      sums[1] += curvature(i) * curvature(i) * residual * residual;
      sums[2] += residual * residual;
    }
    double total[3];
    MPI_Allreduce(sums, total, 3, MPI_DOUBLE, MPI_SUM, comm_);
    StepReport report;
    report.objective = total[0];
    report.fields = {std::sqrt(total[1]), std::sqrt(total[2]), step_size};
    if (report.fields[0] <= tol_) {
      report.status = Status::Converged;
      report.message = "gradient norm below -tol";
    }
    return report;
  }

  void save_state(parasol::h5::File& file, const std::string& group) const override {
    parasol::h5::write_rows(file, group + "/x", x_.data(),
                            static_cast<std::uint64_t>(rows_.count()), 0);
  }
  void load_state(const parasol::h5::File& file, const std::string& group) override {
    x_ = parasol::h5::read_rows(file, group + "/x", static_cast<std::uint64_t>(rows_.begin),
                                static_cast<std::uint64_t>(rows_.count()));
  }

  void write_solution(parasol::h5::File& file) const override {
    parasol::h5::write_rows(file, "solution/x", x_.data(),
                            static_cast<std::uint64_t>(rows_.count()), 0);
    const Partition bars = Partition::block(kBars, comm_);
    std::vector<double> images;
    for (std::int64_t h = bars.begin; h < bars.end; ++h) {
      std::vector<double> image(kSide * kSide, 0.0);
      const double value = static_cast<double>(h + 1) * (h % 2 == 0 ? 1.0 : -1.0);
      for (int k = 0; k < kSide; ++k) {
        const int pixel = h < kSide ? static_cast<int>(h) * kSide + k
                                    : k * kSide + static_cast<int>(h - kSide);
        image[static_cast<std::size_t>(pixel)] = value;
      }
      images.insert(images.end(), image.begin(), image.end());
    }
    parasol::h5::write_rows(file, "solution/W", images.data(),
                            static_cast<std::uint64_t>(bars.count()), kSide * kSide);
  }

  // b as the "input data" whose shape and checksum /input records.
  std::vector<double> all_targets() const {
    std::vector<double> b(static_cast<std::size_t>(rows_.global));
    for (std::int64_t i = 0; i < rows_.global; ++i) b[static_cast<std::size_t>(i)] = target(i);
    return b;
  }

 private:
  MPI_Comm comm_;
  Partition rows_;
  double tol_;
  std::int64_t crash_at_;
  std::vector<double> x_;
};

}  // namespace

int main(int argc, char** argv) {
  // The same path as a family driver: driver_main, common options, solve_and_write.
  return parasol::driver_main(
      argc, argv, "make_run_file",
      "make_run_file: gradient descent on a quadratic, for the analysis tests\n",
      [](parasol::Session& session) {
        const MPI_Comm comm = session.comm();
        std::int64_t n = 0;
        std::int64_t crash_at = 0;
        {
          parasol::OptionReader reader(comm, "", "Toy quadratic");
          n = reader.integer("n", "Problem size", 10, 5);
          crash_at = reader.integer("crash_at", "SIGKILL during this iteration (0: never)", 0, 0);
        }
        parasol::CommonOptions defaults;
        defaults.output = "parasol-toy.h5";
        defaults.max_it = 40;
        defaults.tol = 1e-6;
        const parasol::CommonOptions common = parasol::read_common_options(comm, "toy", defaults);
        if (parasol::finish_options(comm)) return 0;

        QuadraticDescent solver(comm, n, common.tol, crash_at);
        const std::vector<double> b = solver.all_targets();
        const parasol::InputRecord input{"data", "(built-in quadratic targets b)",
                                         {static_cast<std::uint64_t>(n)},
                                         crc32_of(b.data(), b.size() * sizeof(double))};
        return parasol::solve_and_write(comm, solver, common, {input});
      });
}
