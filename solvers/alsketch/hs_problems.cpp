// Hock-Schittkowski / CUTEst test problems (original HS scaling) with their standard starting
// points. Each problem is written once, as f(x) and c(x) over hyper-dual numbers; exact first
// and second derivatives come from evaluating them with dual parts seeded (no hand-written
// derivatives to get wrong, no finite-difference error).
#include "hs_problems.hpp"

#include <parasol/error.hpp>

#include <cmath>
#include <functional>

namespace parasol::alsketch {
namespace {

// Hyper-dual number v + d1 e1 + d2 e2 + d12 e1 e2 (e1^2 = e2^2 = 0): f(x + e1 u + e2 w)
// carries f, u.grad f, w.grad f and u^T hess f w.
struct HD {
  double v = 0, d1 = 0, d2 = 0, d12 = 0;
  HD() = default;
  HD(double value) : v(value) {}  // NOLINT: constants mix freely with variables
  HD(double value, double a, double b, double ab) : v(value), d1(a), d2(b), d12(ab) {}
};
HD operator+(HD a, HD b) { return {a.v + b.v, a.d1 + b.d1, a.d2 + b.d2, a.d12 + b.d12}; }
HD operator-(HD a, HD b) { return {a.v - b.v, a.d1 - b.d1, a.d2 - b.d2, a.d12 - b.d12}; }
HD operator-(HD a) { return {-a.v, -a.d1, -a.d2, -a.d12}; }
HD operator*(HD a, HD b) {
  return {a.v * b.v, a.d1 * b.v + a.v * b.d1, a.d2 * b.v + a.v * b.d2,
          a.d12 * b.v + a.d1 * b.d2 + a.d2 * b.d1 + a.v * b.d12};
}
// phi(a) given phi, phi', phi'' at a.v
HD chain(HD a, double f0, double f1, double f2) {
  return {f0, f1 * a.d1, f1 * a.d2, f1 * a.d12 + f2 * a.d1 * a.d2};
}
HD pow(HD a, int k) {
  const double x = a.v;
  return chain(a, std::pow(x, k), k * std::pow(x, k - 1),
               k * (k - 1) * (k >= 2 ? std::pow(x, k - 2) : 0.0));
}
HD log(HD a) { return chain(a, std::log(a.v), 1 / a.v, -1 / (a.v * a.v)); }
HD sin(HD a) { return chain(a, std::sin(a.v), std::cos(a.v), -std::sin(a.v)); }

using Vars = std::vector<HD>;
struct Definition {
  std::string name;
  int n = 0, m = 0;
  std::vector<double> x0;
  std::optional<double> f_star;
  std::function<HD(const Vars&)> f;
  std::function<std::vector<HD>(const Vars&)> c;
};

// x[1..n] in the HS numbering is x[0..n-1] here.
Definition hs_definition(const std::string& name, int genhs_n) {
  Definition d;
  d.name = name;
  if (name == "hs6") {
    d.n = 2, d.m = 1, d.x0 = {-1.2, 1}, d.f_star = 0.0;
    d.f = [](const Vars& x) { return pow(1 - x[0], 2); };
    d.c = [](const Vars& x) { return std::vector<HD>{10 * (x[1] - pow(x[0], 2))}; };
  } else if (name == "hs7") {
    d.n = 2, d.m = 1, d.x0 = {2, 2}, d.f_star = -std::sqrt(3.0);
    d.f = [](const Vars& x) { return log(1 + pow(x[0], 2)) - x[1]; };
    d.c = [](const Vars& x) {
      return std::vector<HD>{pow(1 + pow(x[0], 2), 2) + pow(x[1], 2) - 4};
    };
  } else if (name == "hs26") {
    d.n = 3, d.m = 1, d.x0 = {-2.6, 2, 2}, d.f_star = 0.0;
    d.f = [](const Vars& x) { return pow(x[0] - x[1], 2) + pow(x[1] - x[2], 4); };
    d.c = [](const Vars& x) {
      return std::vector<HD>{(1 + pow(x[1], 2)) * x[0] + pow(x[2], 4) - 3};
    };
  } else if (name == "hs27") {
    d.n = 3, d.m = 1, d.x0 = {2, 2, 2}, d.f_star = 0.04;
    d.f = [](const Vars& x) { return 0.01 * pow(x[0] - 1, 2) + pow(x[1] - pow(x[0], 2), 2); };
    d.c = [](const Vars& x) { return std::vector<HD>{x[0] + pow(x[2], 2) + 1}; };
  } else if (name == "hs28") {
    d.n = 3, d.m = 1, d.x0 = {-4, 1, 1}, d.f_star = 0.0;
    d.f = [](const Vars& x) { return pow(x[0] + x[1], 2) + pow(x[1] + x[2], 2); };
    d.c = [](const Vars& x) { return std::vector<HD>{x[0] + 2 * x[1] + 3 * x[2] - 1}; };
  } else if (name == "hs39") {
    d.n = 4, d.m = 2, d.x0 = {2, 2, 2, 2}, d.f_star = -1.0;
    d.f = [](const Vars& x) { return -x[0]; };
    d.c = [](const Vars& x) {
      return std::vector<HD>{x[1] - pow(x[0], 3) - pow(x[2], 2),
                             pow(x[0], 2) - x[1] - pow(x[3], 2)};
    };
  } else if (name == "hs40") {
    d.n = 4, d.m = 3, d.x0 = {0.8, 0.8, 0.8, 0.8}, d.f_star = -0.25;
    d.f = [](const Vars& x) { return -(x[0] * x[1] * x[2] * x[3]); };
    d.c = [](const Vars& x) {
      return std::vector<HD>{pow(x[0], 3) + pow(x[1], 2) - 1, pow(x[0], 2) * x[3] - x[2],
                             pow(x[3], 2) - x[1]};
    };
  } else if (name == "hs42") {
    d.n = 4, d.m = 2, d.x0 = {1, 1, 1, 1}, d.f_star = 28 - 10 * std::sqrt(2.0);
    d.f = [](const Vars& x) {
      return pow(x[0] - 1, 2) + pow(x[1] - 2, 2) + pow(x[2] - 3, 2) + pow(x[3] - 4, 2);
    };
    d.c = [](const Vars& x) {
      return std::vector<HD>{x[0] - 2, pow(x[2], 2) + pow(x[3], 2) - 2};
    };
  } else if (name == "hs46") {
    d.n = 5, d.m = 2, d.x0 = {std::sqrt(2.0) / 2, 1.75, 0.5, 2, 2}, d.f_star = 0.0;
    d.f = [](const Vars& x) {
      return pow(x[0] - x[1], 2) + pow(x[2] - 1, 2) + pow(x[3] - 1, 4) + pow(x[4] - 1, 6);
    };
    d.c = [](const Vars& x) {
      return std::vector<HD>{pow(x[0], 2) * x[3] + sin(x[3] - x[4]) - 1,
                             x[1] + pow(x[2], 4) * pow(x[3], 2) - 2};
    };
  } else if (name == "hs47") {
    d.n = 5, d.m = 3, d.x0 = {2, std::sqrt(2.0), -1, 2 - std::sqrt(2.0), 0.5}, d.f_star = 0.0;
    d.f = [](const Vars& x) {
      return pow(x[0] - x[1], 2) + pow(x[1] - x[2], 3) + pow(x[2] - x[3], 4) +
             pow(x[3] - x[4], 4);
    };
    d.c = [](const Vars& x) {
      return std::vector<HD>{x[0] + pow(x[1], 2) + pow(x[2], 3) - 3,
                             x[1] - pow(x[2], 2) + x[3] - 1, x[0] * x[4] - 1};
    };
  } else if (name == "hs48") {
    d.n = 5, d.m = 2, d.x0 = {3, 5, -3, 2, -2}, d.f_star = 0.0;
    d.f = [](const Vars& x) {
      return pow(x[0] - 1, 2) + pow(x[1] - x[2], 2) + pow(x[3] - x[4], 2);
    };
    d.c = [](const Vars& x) {
      return std::vector<HD>{x[0] + x[1] + x[2] + x[3] + x[4] - 5,
                             x[2] - 2 * (x[3] + x[4]) + 3};
    };
  } else if (name == "hs49") {
    d.n = 5, d.m = 2, d.x0 = {10, 7, 2, -3, 0.8}, d.f_star = 0.0;
    d.f = [](const Vars& x) {
      return pow(x[0] - x[1], 2) + pow(x[2] - 1, 2) + pow(x[3] - 1, 4) + pow(x[4] - 1, 6);
    };
    d.c = [](const Vars& x) {
      return std::vector<HD>{x[0] + x[1] + x[2] + 4 * x[3] - 7, x[2] + 5 * x[4] - 6};
    };
  } else if (name == "hs50") {
    d.n = 5, d.m = 3, d.x0 = {35, -31, 11, 5, -5}, d.f_star = 0.0;
    d.f = [](const Vars& x) {
      return pow(x[0] - x[1], 2) + pow(x[1] - x[2], 2) + pow(x[2] - x[3], 4) +
             pow(x[3] - x[4], 2);
    };
    d.c = [](const Vars& x) {
      std::vector<HD> c;
      for (int i = 0; i < 3; ++i) c.push_back(x[i] + 2 * x[i + 1] + 3 * x[i + 2] - 6);
      return c;
    };
  } else if (name == "hs51") {
    d.n = 5, d.m = 3, d.x0 = {2.5, 0.5, 2, -1, 0.5}, d.f_star = 0.0;
    d.f = [](const Vars& x) {
      return pow(x[0] - x[1], 2) + pow(x[1] + x[2] - 2, 2) + pow(x[3] - 1, 2) +
             pow(x[4] - 1, 2);
    };
    d.c = [](const Vars& x) {
      return std::vector<HD>{x[0] + 3 * x[1] - 4, x[2] + x[3] - 2 * x[4], x[1] - x[4]};
    };
  } else if (name == "genhs28") {
    const int n = genhs_n;
    if (n < 3) throw Error("alsketch: genhs28 needs -N >= 3 (got " + std::to_string(n) + ")");
    d.n = n, d.m = n - 2;
    d.x0.assign(n, 1.0);
    d.x0[0] = -4;
    if (n == 10) d.f_star = 0.927173694;
    d.f = [n](const Vars& x) {
      HD s = 0;
      for (int i = 0; i + 1 < n; ++i) s = s + pow(x[i] + x[i + 1], 2);
      return s;
    };
    d.c = [n](const Vars& x) {
      std::vector<HD> c;
      for (int i = 0; i + 2 < n; ++i) c.push_back(x[i] + 2 * x[i + 1] + 3 * x[i + 2] - 1);
      return c;
    };
  } else if (name == "orthregb") {
    // Variables: H = [h11 h12 h13; h12 h22 h23; h13 h23 h33] (6), g (3), points p_1..p_6.
    static const double offsets[6][3] = {{9, 9, 0}, {6, -6, 0}, {-9, -9, 0},
                                         {-6, 6, 0}, {0, 0, 7}, {0, 0, -7}};
    d.n = 27, d.m = 6, d.f_star = 0.0;
    d.x0 = {1, 0, 0, 1, 0, 1, 0, 0, 0};
    for (const auto& o : offsets)
      for (int k = 0; k < 3; ++k) d.x0.push_back(0.5 + o[k]);
    d.f = [](const Vars& x) {
      HD s = 0;
      for (int i = 0; i < 6; ++i)
        for (int k = 0; k < 3; ++k) s = s + pow(x[9 + 3 * i + k] - (0.5 + offsets[i][k]), 2);
      return s;
    };
    d.c = [](const Vars& x) {
      std::vector<HD> c;
      for (int i = 0; i < 6; ++i) {
        const HD& px = x[9 + 3 * i];
        const HD& py = x[10 + 3 * i];
        const HD& pz = x[11 + 3 * i];
        HD quad = x[0] * px * px + x[3] * py * py + x[5] * pz * pz +
                  2 * (x[1] * px * py + x[2] * px * pz + x[4] * py * pz);
        c.push_back(quad - 2 * (x[6] * px + x[7] * py + x[8] * pz) - 1);
      }
      return c;
    };
  } else {
    throw Error("alsketch: unknown HS problem '" + name + "'");
  }
  return d;
}

class HsProblem : public ReplicatedProblem {
 public:
  HsProblem(MPI_Comm comm, Definition d) : ReplicatedProblem(comm, d.n, d.m), d_(std::move(d)) {}
  std::string name() const override { return d_.name; }
  std::optional<double> known_objective() const override { return d_.f_star; }
  Eigen::VectorXd start_x() const override {
    return Eigen::Map<const Eigen::VectorXd>(d_.x0.data(), d_.n);
  }
  double f(const Eigen::VectorXd& x) override { return d_.f(seed(x, -1, -1)).v; }
  Eigen::VectorXd grad_f(const Eigen::VectorXd& x) override {
    Eigen::VectorXd g(n());
    for (int i = 0; i < n(); ++i) g[i] = d_.f(seed(x, i, -1)).d1;
    return g;
  }
  Eigen::VectorXd c(const Eigen::VectorXd& x) override {
    auto c = d_.c(seed(x, -1, -1));
    Eigen::VectorXd out(m());
    for (int j = 0; j < m(); ++j) out[j] = c[j].v;
    return out;
  }
  Eigen::MatrixXd jac(const Eigen::VectorXd& x) override {
    Eigen::MatrixXd J(m(), n());
    for (int i = 0; i < n(); ++i) {
      auto c = d_.c(seed(x, i, -1));
      for (int j = 0; j < m(); ++j) J(j, i) = c[j].d1;
    }
    return J;
  }
  Eigen::MatrixXd hess_lagrangian(const Eigen::VectorXd& x,
                                  const Eigen::VectorXd& lambda) override {
    Eigen::MatrixXd H(n(), n());
    for (int i = 0; i < n(); ++i)
      for (int k = i; k < n(); ++k) {
        Vars v = seed(x, i, k);
        HD L = d_.f(v);
        auto c = d_.c(v);
        for (int j = 0; j < m(); ++j) L = L + lambda[j] * c[j];
        H(i, k) = H(k, i) = L.d12;
      }
    return H;
  }

 private:
  // x with e1 seeded on variable i and e2 on variable k (-1: none).
  Vars seed(const Eigen::VectorXd& x, int i, int k) const {
    Vars v(x.size());
    for (Eigen::Index j = 0; j < x.size(); ++j) v[j] = HD(x[j]);
    if (i >= 0) v[i].d1 = 1;
    if (k >= 0) v[k].d2 = 1;
    return v;
  }
  Definition d_;
};

}  // namespace

const std::vector<std::string>& hs_problem_names() {
  static const std::vector<std::string> names = {
      "hs6",  "hs7",  "hs26", "hs27", "hs28", "hs39", "hs40",    "hs42",
      "hs46", "hs47", "hs48", "hs49", "hs50", "hs51", "genhs28", "orthregb"};
  return names;
}

std::unique_ptr<Problem> make_hs_problem(const std::string& name, MPI_Comm comm, int genhs_n) {
  return std::make_unique<HsProblem>(comm, hs_definition(name, genhs_n));
}

}  // namespace parasol::alsketch
