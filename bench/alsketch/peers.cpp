// Runs IPOPT (serial, rank 0 only, through its C++ TNLP interface) and PETSc TAO ALMM (all
// ranks) on a parasol::alsketch problem, and prints iterations, function evaluations, time,
// peak memory and the final KKT residual, one line per solver:
//   mpiexec -n 2 alsketch_peers -problem poisson -N 64 -tol 1e-6 [-peers ipopt,tao]
#include <coin/IpIpoptApplication.hpp>
#include <coin/IpSolveStatistics.hpp>
#include <coin/IpTNLP.hpp>
#include <parasol/alsketch.hpp>
#include <parasol/error.hpp>
#include <parasol/session.hpp>
#include <petsctao.h>
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace al = parasol::alsketch;
using Clock = std::chrono::steady_clock;

static long peak_rss_mb() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024;
}

// ---------------------------------------------------------------- IPOPT adapter (1 rank)
class IpoptAdapter : public Ipopt::TNLP {
 public:
  explicit IpoptAdapter(al::Problem& p) : p_(p) {
    PARASOL_PETSC(VecCreateMPI(p.comm(), p.local_variables(), PETSC_DETERMINE, &x_));
    PARASOL_PETSC(VecCreateMPI(p.comm(), p.local_constraints(), PETSC_DETERMINE, &l_));
    PARASOL_PETSC(VecDuplicate(x_, &g_));
    PARASOL_PETSC(VecDuplicate(l_, &c_));
    PARASOL_PETSC(VecGetSize(x_, &n_));
    PARASOL_PETSC(VecGetSize(l_, &m_));
    J_ = p.create_jacobian();
    H_ = p.create_hessian();
    if (!H_) throw parasol::Error("IPOPT adapter needs an assembled Hessian");
    p.initial_point(x_, l_);
    p.jacobian(x_, J_);
    p.hessian(x_, l_, H_);
    pattern(J_, false, &jr_, &jc_);
    pattern(H_, true, &hr_, &hc_);
  }
  ~IpoptAdapter() override {
    VecDestroy(&x_); VecDestroy(&l_); VecDestroy(&g_); VecDestroy(&c_);
    MatDestroy(&J_); MatDestroy(&H_);
  }
  int evals = 0;
  double final_kkt = NAN, final_f = NAN;
  bool get_nlp_info(Ipopt::Index& n, Ipopt::Index& m, Ipopt::Index& nnz_j, Ipopt::Index& nnz_h,
                    IndexStyleEnum& style) override {
    n = n_, m = m_, nnz_j = jr_.size(), nnz_h = hr_.size(), style = C_STYLE;
    return true;
  }
  bool get_bounds_info(Ipopt::Index n, double* xl, double* xu, Ipopt::Index m, double* gl,
                       double* gu) override {
    for (int i = 0; i < n; ++i) xl[i] = -1e20, xu[i] = 1e20;
    for (int j = 0; j < m; ++j) gl[j] = gu[j] = 0;
    return true;
  }
  bool get_starting_point(Ipopt::Index n, bool, double* x, bool, double*, double*, Ipopt::Index,
                          bool init_lambda, double* lambda) override {
    Vec x0, l0;
    VecDuplicate(x_, &x0);
    VecDuplicate(l_, &l0);
    p_.initial_point(x0, l0);
    get(x0, x, n);
    if (init_lambda) get(l0, lambda, m_);
    VecDestroy(&x0);
    VecDestroy(&l0);
    return true;
  }
  bool eval_f(Ipopt::Index n, const double* x, bool, double& f) override {
    set(x_, x, n);
    f = p_.objective(x_);
    ++evals;
    return std::isfinite(f);
  }
  bool eval_grad_f(Ipopt::Index n, const double* x, bool, double* g) override {
    set(x_, x, n);
    p_.gradient(x_, g_);
    get(g_, g, n);
    return true;
  }
  bool eval_g(Ipopt::Index n, const double* x, bool, Ipopt::Index m, double* c) override {
    set(x_, x, n);
    p_.constraints(x_, c_);
    get(c_, c, m);
    return true;
  }
  bool eval_jac_g(Ipopt::Index n, const double* x, bool, Ipopt::Index, Ipopt::Index,
                  Ipopt::Index* rows, Ipopt::Index* cols, double* values) override {
    if (!values) {
      for (size_t k = 0; k < jr_.size(); ++k) rows[k] = jr_[k], cols[k] = jc_[k];
      return true;
    }
    set(x_, x, n);
    p_.jacobian(x_, J_);
    for (size_t k = 0; k < jr_.size(); ++k) PARASOL_PETSC(MatGetValue(J_, jr_[k], jc_[k], &values[k]));
    return true;
  }
  // IPOPT wants sigma hess f + sum lambda_i hess c_i; the problem gives hess f + sum mu_i hess c_i.
  bool eval_h(Ipopt::Index n, const double* x, bool, double sigma, Ipopt::Index m,
              const double* lambda, bool, Ipopt::Index, Ipopt::Index* rows, Ipopt::Index* cols,
              double* values) override {
    if (!values) {
      for (size_t k = 0; k < hr_.size(); ++k) rows[k] = hr_[k], cols[k] = hc_[k];
      return true;
    }
    set(x_, x, n);
    std::vector<double> mu(lambda, lambda + m);
    const double s = sigma != 0 ? sigma : 1.0;
    for (auto& v : mu) v /= s;
    set(l_, mu.data(), m);
    p_.hessian(x_, l_, H_);
    for (size_t k = 0; k < hr_.size(); ++k) {
      PARASOL_PETSC(MatGetValue(H_, hr_[k], hc_[k], &values[k]));
      values[k] *= s;
    }
    if (sigma == 0) {  // remove hess f: H(x, lambda) - H(x, 0)
      std::vector<double> zero(m, 0.0);
      set(l_, zero.data(), m);
      p_.hessian(x_, l_, H_);
      for (size_t k = 0; k < hr_.size(); ++k) {
        double v;
        PARASOL_PETSC(MatGetValue(H_, hr_[k], hc_[k], &v));
        values[k] -= v;
      }
    }
    return true;
  }
  void finalize_solution(Ipopt::SolverReturn, Ipopt::Index n, const double* x, const double*,
                         const double*, Ipopt::Index m, const double*, const double* lambda,
                         double f, const Ipopt::IpoptData*, Ipopt::IpoptCalculatedQuantities*) override {
    set(x_, x, n);
    set(l_, lambda, m);
    p_.gradient(x_, g_);
    p_.constraints(x_, c_);
    p_.jacobian(x_, J_);
    Vec r;
    VecDuplicate(g_, &r);
    MatMultTransposeAdd(J_, l_, g_, r);
    PetscReal a, b;
    VecNorm(r, NORM_2, &a);
    VecNorm(c_, NORM_2, &b);
    final_kkt = std::hypot(a, b);
    final_f = f;
    VecDestroy(&r);
  }

 private:
  static void pattern(Mat A, bool lower, std::vector<int>* r, std::vector<int>* c) {
    PetscInt lo, hi;
    MatGetOwnershipRange(A, &lo, &hi);
    for (PetscInt i = lo; i < hi; ++i) {
      PetscInt nc;
      const PetscInt* idx;
      MatGetRow(A, i, &nc, &idx, nullptr);
      for (PetscInt k = 0; k < nc; ++k)
        if (!lower || idx[k] <= i) r->push_back(i), c->push_back(idx[k]);
      MatRestoreRow(A, i, &nc, &idx, nullptr);
    }
  }
  static void set(Vec v, const double* a, PetscInt n) {
    PetscScalar* p;
    VecGetArray(v, &p);
    std::copy(a, a + n, p);
    VecRestoreArray(v, &p);
  }
  static void get(Vec v, double* a, PetscInt n) {
    const PetscScalar* p;
    VecGetArrayRead(v, &p);
    std::copy(p, p + n, a);
    VecRestoreArrayRead(v, &p);
  }
  al::Problem& p_;
  Vec x_, l_, g_, c_;
  Mat J_, H_;
  PetscInt n_, m_;
  std::vector<int> jr_, jc_, hr_, hc_;
};

// ---------------------------------------------------------------- TAO ALMM callbacks
struct TaoCtx {
  al::Problem* p;
  int evals = 0;
};
static PetscErrorCode tao_fg(Tao, Vec x, PetscReal* f, Vec g, void* ctx) {
  auto* t = static_cast<TaoCtx*>(ctx);
  PetscCallCXX(*f = t->p->objective(x));
  PetscCallCXX(t->p->gradient(x, g));
  ++t->evals;
  return 0;
}
static PetscErrorCode tao_ce(Tao, Vec x, Vec c, void* ctx) {
  PetscCallCXX(static_cast<TaoCtx*>(ctx)->p->constraints(x, c));
  return 0;
}
static PetscErrorCode tao_je(Tao, Vec x, Mat J, Mat, void* ctx) {
  PetscCallCXX(static_cast<TaoCtx*>(ctx)->p->jacobian(x, J));
  return 0;
}
// Wall-clock budget (-time_limit s): checked after every iteration of the outer ALMM solver
// and of its subsolver; past it both stop with TAO_DIVERGED_USER.
struct TaoBudget {
  Tao outer;
  Clock::time_point start;
  double seconds;
};
static PetscErrorCode tao_budget_monitor(Tao tao, void* ctx) {
  auto* b = static_cast<TaoBudget*>(ctx);
  if (std::chrono::duration<double>(Clock::now() - b->start).count() > b->seconds) {
    PetscCall(TaoSetConvergedReason(tao, TAO_DIVERGED_USER));
    PetscCall(TaoSetConvergedReason(b->outer, TAO_DIVERGED_USER));
  }
  return 0;
}

int main(int argc, char** argv) {
  parasol::Session session(&argc, &argv, "alsketch_peers: IPOPT and TAO ALMM on alsketch problems\n");
  MPI_Comm comm = session.comm();
  // PETSc's own message and traceback when TAO or IPOPT's callbacks fail (the session installs
  // a silent handler for the library).
  PetscPushErrorHandler(PetscTraceBackErrorHandler, nullptr);
  try {
    char name[64] = "hs40", peers[64] = "ipopt,tao";
    PetscInt N = 32;
    PetscReal tol = 1e-6;
    PetscOptionsGetString(nullptr, nullptr, "-problem", name, sizeof name, nullptr);
    PetscOptionsGetString(nullptr, nullptr, "-peers", peers, sizeof peers, nullptr);
    PetscOptionsGetInt(nullptr, nullptr, "-N", &N, nullptr);
    PetscOptionsGetReal(nullptr, nullptr, "-tol", &tol, nullptr);
    PetscReal time_limit = 600;
    PetscOptionsGetReal(nullptr, nullptr, "-time_limit", &time_limit, nullptr);
    const std::string which = peers;
    if (which.find("ipopt") != std::string::npos && session.size() > 1)
      throw parasol::Error("run the ipopt peer on one process (its sequential MUMPS clashes "
                           "with PETSc's parallel MUMPS)");
    if (which.find("ipopt") != std::string::npos) {
      auto problem = al::make_problem(name, MPI_COMM_SELF, {"", N, 1});
      Ipopt::SmartPtr<IpoptAdapter> nlp = new IpoptAdapter(*problem);
      Ipopt::SmartPtr<Ipopt::IpoptApplication> app = IpoptApplicationFactory();
      app->Options()->SetNumericValue("tol", tol);
      app->Options()->SetIntegerValue("print_level", 0);
      app->Options()->SetIntegerValue("max_iter", 3000);
      app->Initialize();
      const auto t0 = Clock::now();
      Ipopt::ApplicationReturnStatus st = app->OptimizeTNLP(nlp);
      const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
      std::printf("ipopt  problem=%s N=%d ranks=1 status=%d iterations=%d f_evals=%d time=%.3f s "
                  "peak_rss=%ld MB objective=%.10g kkt=%.3e\n",
                  name, (int)N, (int)st, (int)app->Statistics()->IterationCount(), nlp->evals,
                  secs, peak_rss_mb(), nlp->final_f, nlp->final_kkt);
    }
    MPI_Barrier(comm);
    if (which.find("tao") != std::string::npos) {
      auto problem = al::make_problem(name, comm, {"", N, 1});
      Vec x, l, c;
      VecCreateMPI(comm, problem->local_variables(), PETSC_DETERMINE, &x);
      VecCreateMPI(comm, problem->local_constraints(), PETSC_DETERMINE, &l);
      VecDuplicate(l, &c);
      problem->initial_point(x, l);
      Mat J = problem->create_jacobian();
      TaoCtx ctx{problem.get()};
      Tao tao;
      PARASOL_PETSC(TaoCreate(comm, &tao));
      PARASOL_PETSC(TaoSetType(tao, TAOALMM));
      PARASOL_PETSC(TaoSetSolution(tao, x));
      PARASOL_PETSC(TaoSetObjectiveAndGradient(tao, nullptr, tao_fg, &ctx));
      PARASOL_PETSC(TaoSetEqualityConstraintsRoutine(tao, c, tao_ce, &ctx));
      PARASOL_PETSC(TaoSetJacobianEqualityRoutine(tao, J, J, tao_je, &ctx));
      PARASOL_PETSC(TaoSetTolerances(tao, tol, PETSC_DEFAULT, PETSC_DEFAULT));
      PARASOL_PETSC(TaoSetConstraintTolerances(tao, tol, PETSC_DEFAULT));
      PARASOL_PETSC(TaoSetMaximumIterations(tao, 1000));
      // TAO's defaults (PHR formulation, bqnls subsolver) unless options say otherwise. PHR
      // stops at once on poisson and orthregb with PETSc error 83 (PETSC_ERR_USER, "User
      // provided compute function generated Inf or NaN", raised in the subsolver's
      // initialization, TaoBNKInitialize or TaoSolve_BNCG) although f, grad f, c and J are
      // finite there: the classic formulation evaluates them without complaint. Both problems
      // start where |c(x0)|^2 >> |f(x0)| (orthregb: f(x0) = 0; poisson: |c|_inf ~ 3e5 at N = 16),
      // so PHR's mu0 = max(1e-6, min(10, 2|f|/|c|^2)) is 1e-6. run.sh therefore runs orthregb
      // with -tao_almm_type classic and poisson with -tao_almm_subsolver_tao_type bncg (PHR
      // with bncg starts there), and prints which.
      Tao sub;
      PARASOL_PETSC(TaoALMMGetSubsolver(tao, &sub));
      PARASOL_PETSC(TaoSetFromOptions(tao));
      const auto t0 = Clock::now();
      TaoBudget budget{tao, t0, time_limit};
      PARASOL_PETSC(TaoSetMonitor(tao, tao_budget_monitor, &budget, nullptr));
      PARASOL_PETSC(TaoSetMonitor(sub, tao_budget_monitor, &budget, nullptr));
      PARASOL_PETSC(TaoSolve(tao));
      const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
      PetscInt its;
      PetscReal f, gnorm, cnorm, xdiff;
      TaoConvergedReason reason;
      TaoGetSolutionStatus(tao, &its, &f, &gnorm, &cnorm, &xdiff, &reason);
      long rss = peak_rss_mb(), rss_max = 0;
      MPI_Reduce(&rss, &rss_max, 1, MPI_LONG, MPI_MAX, 0, comm);
      int size;
      MPI_Comm_size(comm, &size);
      TaoALMMType almm_type;
      TaoType sub_type;
      PARASOL_PETSC(TaoALMMGetType(tao, &almm_type));
      PARASOL_PETSC(TaoGetType(sub, &sub_type));
      if (session.rank() == 0)
        std::printf("tao    problem=%s N=%d ranks=%d status=%s iterations=%d f_evals=%d time=%.3f s "
                    "peak_rss=%ld MB objective=%.10g gnorm=%.3e cnorm=%.3e almm=%s subsolver=%s\n",
                    name, (int)N, size, TaoConvergedReasons[reason], (int)its, ctx.evals, secs,
                    rss_max, f, gnorm, cnorm, TaoALMMTypes[almm_type], sub_type);
      TaoDestroy(&tao);
      MatDestroy(&J);
      VecDestroy(&x);
      VecDestroy(&l);
      VecDestroy(&c);
    }
  } catch (const parasol::Error& e) {
    if (session.rank() == 0) std::fprintf(stderr, "alsketch_peers: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
