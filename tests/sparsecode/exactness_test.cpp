// With H' = H and gamma = H the truncated E-step covers every state, so one EM iteration of
// the solver must equal exact EM computed here by brute-force enumeration of all V^H
// states (2^H binary, 3^H ternary), independently of the solver's code.
#include <gtest/gtest.h>
#include <parasol/random.hpp>

#include <cmath>

#include "test_util.hpp"

namespace sc = parasol::sparsecode;

namespace {

struct Exact {
  double log_likelihood = 0;  // mean log p(y_n)
  Eigen::MatrixXd W;
  double sigma = 0;
  Eigen::VectorXd pi;
  Eigen::MatrixXd marginals;  // N x H: p(s_h != 0 | y_n)
  Eigen::MatrixXd map_state;  // N x H
};

Exact brute_force(const std::string& kind, const std::vector<double>& values,
                  const Eigen::VectorXd& value_prior, const sc::Parameters& p,
                  const parasol::RowMatrix& Y) {
  const int H = static_cast<int>(p.W.rows()), D = static_cast<int>(p.W.cols());
  const int V = static_cast<int>(values.size());
  const int N = static_cast<int>(Y.rows());
  int states = 1;
  for (int h = 0; h < H; ++h) states *= V;
  const double var = p.sigma(0) * p.sigma(0);
  Eigen::MatrixXd Wq = Eigen::MatrixXd::Zero(H, H), Wp = Eigen::MatrixXd::Zero(H, D);
  Eigen::VectorXd counts = Eigen::VectorXd::Zero(V);
  double r2sum = 0, llsum = 0;
  std::vector<std::vector<double>> lj_all;
  std::vector<Eigen::VectorXd> s_list;
  Exact out;
  out.marginals.setZero(N, H);
  out.map_state.setZero(N, H);
  for (int n = 0; n < N; ++n) {
    const Eigen::VectorXd y = Y.row(n).transpose();
    std::vector<Eigen::VectorXd> s_all;
    std::vector<std::vector<int>> idx_all;
    std::vector<double> lj;
    for (int code = 0; code < states; ++code) {
      Eigen::VectorXd s(H);
      std::vector<int> idx(H);
      double logp = 0;
      for (int h = 0, c = code; h < H; ++h, c /= V) {
        idx[h] = c % V;
        s(h) = values[idx[h]];
        logp += std::log(value_prior(idx[h]));
      }
      const double r2 = (y - p.W.transpose() * s).squaredNorm();
      lj.push_back(logp - 0.5 * r2 / var - 0.5 * D * std::log(2 * M_PI * var));
      s_all.push_back(s);
      idx_all.push_back(idx);
    }
    double top = *std::max_element(lj.begin(), lj.end()), z = 0;
    for (double v : lj) z += std::exp(v - top);
    const double logpy = top + std::log(z);
    llsum += logpy;
    lj_all.push_back(lj);
    s_list = s_all;
    const int map = static_cast<int>(std::max_element(lj.begin(), lj.end()) - lj.begin());
    out.map_state.row(n) = s_all[map].transpose();
    for (int k = 0; k < states; ++k) {
      const double q = std::exp(lj[k] - logpy);
      const Eigen::VectorXd& s = s_all[k];
      Wq += q * s * s.transpose();
      Wp += q * s * y.transpose();
      for (int h = 0; h < H; ++h) {
        counts(idx_all[k][h]) += q;
        if (s(h) != 0) out.marginals(n, h) += q;
      }
    }
  }
  out.log_likelihood = llsum / N;
  out.W = Wq.fullPivLu().solve(Wp);
  // sigma at the new W: a second pass over all states and points.
  for (int n = 0; n < N; ++n) {
    const Eigen::VectorXd y = Y.row(n).transpose();
    double top = *std::max_element(lj_all[n].begin(), lj_all[n].end()), z = 0;
    for (double v : lj_all[n]) z += std::exp(v - top);
    for (int k = 0; k < states; ++k) {
      const double q = std::exp(lj_all[n][k] - top) / z;
      r2sum += q * (y - out.W.transpose() * s_list[k]).squaredNorm();
    }
  }
  out.sigma = std::sqrt(r2sum / (double(D) * N));
  if (kind == "dsc")
    out.pi = counts / counts.sum();
  else
    out.pi = Eigen::VectorXd::Constant(1, (counts.sum() - counts(0)) / (double(N) * H));
  return out;
}

void check_exact(const std::string& kind) {
  const MPI_Comm comm = MPI_COMM_WORLD;
  const int H = 4, D = 5;
  const std::int64_t N = 13;
  parasol::RowMatrix Y_all(N, D);
  for (std::int64_t n = 0; n < N; ++n) {
    parasol::Random r(3, "test.exact.y", n);
    for (int d = 0; d < D; ++d) Y_all(n, d) = 1.0 + 2.0 * r.normal();
  }
  const parasol::Partition rows = parasol::Partition::block(N, comm);
  sc::Options o;
  o.model = kind;
  o.H = H;
  o.Hprime = H;
  o.gamma = H;
  o.values = {0, 1, 2.5};
  o.max_it = 1;
  sc::ETSolver solver(comm, o, Y_all.middleRows(rows.begin, rows.count()));

  sc::Parameters p;
  p.W.resize(H, D);
  parasol::Random r(5, "test.exact.W");
  for (int h = 0; h < H; ++h)
    for (int d = 0; d < D; ++d) p.W(h, d) = 1.5 * r.normal();
  p.sigma = Eigen::VectorXd::Constant(1, 1.3);
  std::vector<double> values;
  Eigen::VectorXd value_prior;
  if (kind == "bsc") {
    values = {0, 1};
    p.pi = Eigen::VectorXd::Constant(1, 0.3);
    value_prior = Eigen::Vector2d(0.7, 0.3);
  } else if (kind == "tsc") {
    values = {0, 1, -1};
    p.pi = Eigen::VectorXd::Constant(1, 0.3);
    value_prior = Eigen::Vector3d(0.7, 0.15, 0.15);
  } else {
    values = {0, 1, 2.5};
    p.pi = Eigen::Vector3d(0.6, 0.3, 0.1);
    value_prior = p.pi;
  }
  solver.set_parameters(p);
  ASSERT_EQ(solver.states().size(), static_cast<int>(std::pow(values.size(), H)));

  const Exact exact = brute_force(kind, values, value_prior, p, Y_all);

  // Inference with the same parameters: marginals and the MAP state.
  const sc::Inference inf = sc::infer(solver, Y_all.middleRows(rows.begin, rows.count()), 3);
  for (std::int64_t i = 0; i < rows.count(); ++i) {
    for (int h = 0; h < H; ++h)
      EXPECT_NEAR(inf.marginals(i, h), exact.marginals(rows.begin + i, h), 1e-10);
    EXPECT_LT((inf.states.row(i).head(H) - exact.map_state.row(rows.begin + i)).norm(), 1e-12);
    EXPECT_GE(inf.probabilities(i, 0), inf.probabilities(i, 1));
  }

  const parasol::StepReport report = solver.step(1);
  EXPECT_NEAR(report.objective, exact.log_likelihood, 1e-10 * std::abs(exact.log_likelihood));
  EXPECT_EQ(report.fields.at(3), double(N));  // no data truncation
  const sc::Parameters& next = solver.parameters();
  EXPECT_LT((next.W - exact.W).cwiseAbs().maxCoeff(), 1e-9) << kind;
  EXPECT_NEAR(next.sigma(0), exact.sigma, 1e-10);
  ASSERT_EQ(next.pi.size(), exact.pi.size());
  EXPECT_LT((next.pi - exact.pi).cwiseAbs().maxCoeff(), 1e-10) << kind;
}

}  // namespace

TEST(SparsecodeExactness, BinaryMatchesAllTwoToTheHStates) { check_exact("bsc"); }
TEST(SparsecodeExactness, TernaryMatchesAllThreeToTheHStates) { check_exact("tsc"); }
TEST(SparsecodeExactness, DiscreteMatchesAllValueAssignments) { check_exact("dsc"); }

// Spike-and-slab: the solver integrates the slab out through Woodbury identities on the
// |A| x |A| matrix Lambda; the brute force here uses the dense D x D covariance
// C = Sigma + W_A^T Psi_A W_A and Gaussian conditioning for the slab posterior.
namespace {
void check_gsc_exact(const std::string& noise) {
  const MPI_Comm comm = MPI_COMM_WORLD;
  const int H = 4, D = 5;
  const std::int64_t N = 13;
  parasol::RowMatrix Y(N, D);
  for (std::int64_t n = 0; n < N; ++n) {
    parasol::Random r(4, "test.exact.gsc.y", n);
    for (int d = 0; d < D; ++d) Y(n, d) = 0.5 + 1.5 * r.normal();
  }
  const parasol::Partition rows = parasol::Partition::block(N, comm);
  sc::Options o;
  o.model = "gsc";
  o.noise = noise;
  o.H = H;
  o.Hprime = H;
  o.gamma = H;
  o.max_it = 1;
  sc::ETSolver solver(comm, o, Y.middleRows(rows.begin, rows.count()));
  sc::Parameters p;
  p.W.resize(H, D);
  parasol::Random r(6, "test.exact.gsc.W");
  for (int h = 0; h < H; ++h)
    for (int d = 0; d < D; ++d) p.W(h, d) = r.normal();
  p.pi = Eigen::Vector4d(0.2, 0.3, 0.4, 0.25);
  p.mu = Eigen::Vector4d(1.0, -0.5, 2.0, 0.7);
  p.psi = Eigen::Vector4d(0.8, 1.2, 0.5, 1.0);
  if (noise == "diagonal") {
    p.sigma.resize(D);
    p.sigma << 0.9, 1.1, 1.3, 0.7, 1.0;
  } else {
    p.sigma = Eigen::VectorXd::Constant(1, 1.1);
  }
  solver.set_parameters(p);

  const Eigen::VectorXd sigma2 =
      p.sigma.size() == D ? Eigen::VectorXd(p.sigma.array().square())
                          : Eigen::VectorXd::Constant(D, p.sigma(0) * p.sigma(0));
  Eigen::MatrixXd M = Eigen::MatrixXd::Zero(H, H), P = Eigen::MatrixXd::Zero(H, D);
  Eigen::VectorXd s_sum = Eigen::VectorXd::Zero(H), x_sum = Eigen::VectorXd::Zero(H);
  Eigen::VectorXd yy = Eigen::VectorXd::Zero(D);
  double ll_sum = 0;
  for (std::int64_t n = 0; n < N; ++n) {
    const Eigen::VectorXd y = Y.row(n).transpose();
    yy += y.cwiseAbs2();
    std::vector<double> lj;
    std::vector<Eigen::VectorXd> x_mean;
    std::vector<Eigen::MatrixXd> x_second;
    for (int mask = 0; mask < (1 << H); ++mask) {
      std::vector<int> A;
      double logp = 0;
      for (int h = 0; h < H; ++h) {
        const bool on = (mask >> h) & 1;
        logp += std::log(on ? p.pi(h) : 1 - p.pi(h));
        if (on) A.push_back(h);
      }
      const int k = static_cast<int>(A.size());
      Eigen::MatrixXd WA(k, D);
      Eigen::VectorXd muA(k), psiA(k);
      for (int i = 0; i < k; ++i) {
        WA.row(i) = p.W.row(A[i]);
        muA(i) = p.mu(A[i]);
        psiA(i) = p.psi(A[i]) * p.psi(A[i]);
      }
      Eigen::MatrixXd C = Eigen::MatrixXd(sigma2.asDiagonal());
      if (k > 0) C += WA.transpose() * psiA.asDiagonal() * WA;
      const Eigen::VectorXd e = k > 0 ? Eigen::VectorXd(y - WA.transpose() * muA) : y;
      const Eigen::LLT<Eigen::MatrixXd> llt(C);
      const double logdet = 2 * Eigen::MatrixXd(llt.matrixL()).diagonal().array().log().sum();
      lj.push_back(logp - 0.5 * (D * std::log(2 * M_PI) + logdet + e.dot(llt.solve(e))));
      Eigen::VectorXd xm = Eigen::VectorXd::Zero(H);
      Eigen::MatrixXd xs = Eigen::MatrixXd::Zero(H, H);
      if (k > 0) {
        const Eigen::MatrixXd PW = psiA.asDiagonal() * WA;  // k x D
        const Eigen::VectorXd kappa = muA + PW * llt.solve(e);
        const Eigen::MatrixXd V = Eigen::MatrixXd(psiA.asDiagonal()) - PW * llt.solve(PW.transpose());
        for (int i = 0; i < k; ++i) {
          xm(A[i]) = kappa(i);
          for (int j = 0; j < k; ++j) xs(A[i], A[j]) = kappa(i) * kappa(j) + V(i, j);
        }
      }
      x_mean.push_back(xm);
      x_second.push_back(xs);
    }
    const double top = *std::max_element(lj.begin(), lj.end());
    double z = 0;
    for (double v : lj) z += std::exp(v - top);
    const double logpy = top + std::log(z);
    ll_sum += logpy;
    for (int mask = 0; mask < (1 << H); ++mask) {
      const double q = std::exp(lj[mask] - logpy);
      M += q * x_second[mask];
      P += q * x_mean[mask] * y.transpose();
      x_sum += q * x_mean[mask];
      for (int h = 0; h < H; ++h)
        if ((mask >> h) & 1) s_sum(h) += q;
    }
  }
  const Eigen::MatrixXd W = M.fullPivLu().solve(P);
  const Eigen::VectorXd mu = x_sum.cwiseQuotient(s_sum);
  const Eigen::VectorXd psi = (M.diagonal().cwiseQuotient(s_sum) - mu.cwiseAbs2()).cwiseSqrt();
  Eigen::VectorXd residual(D);
  for (int d = 0; d < D; ++d)
    residual(d) = (yy(d) - 2 * W.col(d).dot(P.col(d)) + W.col(d).dot(M * W.col(d))) / N;

  const parasol::StepReport report = solver.step(1);
  EXPECT_NEAR(report.objective, ll_sum / N, 1e-10 * std::abs(ll_sum / N));
  const sc::Parameters& next = solver.parameters();
  EXPECT_LT((next.W - W).cwiseAbs().maxCoeff(), 1e-9);
  EXPECT_LT((next.pi - s_sum / N).cwiseAbs().maxCoeff(), 1e-10);
  EXPECT_LT((next.mu - mu).cwiseAbs().maxCoeff(), 1e-9);
  EXPECT_LT((next.psi - psi).cwiseAbs().maxCoeff(), 1e-9);
  if (noise == "diagonal")
    EXPECT_LT((next.sigma - residual.cwiseSqrt()).cwiseAbs().maxCoeff(), 1e-9);
  else
    EXPECT_NEAR(next.sigma(0), std::sqrt(residual.mean()), 1e-10);
}
}  // namespace

TEST(SparsecodeExactness, SpikeAndSlabScalarNoiseMatchesDenseGaussians) { check_gsc_exact("scalar"); }
TEST(SparsecodeExactness, SpikeAndSlabDiagonalNoiseMatchesDenseGaussians) { check_gsc_exact("diagonal"); }
