// The LV-HBA coupled-constraint toy (docs/bilevel.md): the lower level is convex but not
// strongly convex in y2 and its solution set is not a singleton, and the constraint couples
// x and y, so only lvhba applies. No data: every rank evaluates the same small vectors.
#include <parasol/bilevel.hpp>

namespace parasol::bilevel {
namespace {

class ToyProblem : public Problem {
 public:
  ToyProblem(MPI_Comm comm, std::int64_t n, double start) : comm_(comm), n_(n), start_(start) {}
  std::string name() const override { return "toy"; }
  MPI_Comm comm() const override { return comm_; }
  std::int64_t upper_dim() const override { return n_; }
  std::int64_t lower_dim() const override { return 2 * n_; }
  void initial_point(Vector* x, Vector* y) const override {
    *x = Vector::Constant(n_, start_);
    *y = Vector::Constant(2 * n_, start_);
  }
  // F = 1/2 |x - y2|^2 + 1/2 |y1 - 1|^2
  double upper(const Vector& x, const Vector& y, Vector* gx, Vector* gy,
               const Sample&) const override {
    auto y1 = y.head(n_), y2 = y.tail(n_);
    if (gx) *gx = x - y2;
    if (gy) {
      gy->resize(2 * n_);
      gy->head(n_) = y1.array() - 1.0;
      gy->tail(n_) = y2 - x;
    }
    return 0.5 * (x - y2).squaredNorm() + 0.5 * (y1.array() - 1.0).matrix().squaredNorm();
  }
  // f = 1/2 |y1|^2 - x'y1 + 1'y2
  double lower(const Vector& x, const Vector& y, Vector* gx, Vector* gy,
               const Sample&) const override {
    auto y1 = y.head(n_), y2 = y.tail(n_);
    if (gx) *gx = -y1;
    if (gy) {
      gy->resize(2 * n_);
      gy->head(n_) = y1 - x;
      gy->tail(n_).setOnes();
    }
    return 0.5 * y1.squaredNorm() - x.dot(y1) + y2.sum();
  }
  void lower_hvp(const Vector&, const Vector&, const Vector& v, Vector* hyy, Vector* hxy,
                 const Sample&) const override {
    if (hyy) {
      *hyy = Vector::Zero(2 * n_);
      hyy->head(n_) = v.head(n_);
    }
    if (hxy) *hxy = -v.head(n_);
  }
  // 1'x + 1'y = 0
  std::int64_t num_constraints() const override { return 1; }
  bool constraint_equalities() const override { return true; }
  void constraints(const Vector& x, const Vector& y, Vector* g, Matrix* jac_x,
                   Matrix* jac_y) const override {
    if (g) *g = Vector::Constant(1, x.sum() + y.sum());
    if (jac_x) *jac_x = Matrix::Ones(1, n_);
    if (jac_y) *jac_y = Matrix::Ones(1, 2 * n_);
  }
  // Projection onto the hyperplane 1'(x, y) = 0: subtract the mean.
  void project_feasible(Vector* x, Vector* y) const override {
    double shift = (x->sum() + y->sum()) / static_cast<double>(3 * n_);
    x->array() -= shift;
    y->array() -= shift;
  }
  bool known_solution(Vector* x, Vector* y) const override {
    *x = Vector::Constant(n_, -0.3);
    y->resize(2 * n_);
    y->head(n_).setConstant(0.7);
    y->tail(n_).setConstant(-0.4);
    return true;
  }

 private:
  MPI_Comm comm_;
  std::int64_t n_;
  double start_;
};

}  // namespace

std::shared_ptr<Problem> make_toy_problem(MPI_Comm comm, std::int64_t n, double start) {
  return std::make_shared<ToyProblem>(comm, n, start);
}

}  // namespace parasol::bilevel
