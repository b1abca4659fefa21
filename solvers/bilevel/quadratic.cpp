// The general quadratic bilevel problem: closed-form optimum and hypergradient, HDF5 input
// with validation, random instances for tests, and an m-block version for bsvrb.
#include <parasol/bilevel.hpp>
#include <parasol/error.hpp>
#include <parasol/h5.hpp>
#include <parasol/partition.hpp>
#include <parasol/random.hpp>

#include <cmath>
#include <sstream>

namespace parasol::bilevel {

namespace {

std::string shape_text(const Matrix& m) {
  return std::to_string(m.rows()) + "x" + std::to_string(m.cols());
}

bool check_shape(const char* name, const Matrix& m, std::int64_t rows, std::int64_t cols,
                 std::string* why) {
  if (m.rows() == rows && m.cols() == cols) return true;
  *why = std::string("matrix ") + name + " is " + shape_text(m) + ", expected " +
         std::to_string(rows) + "x" + std::to_string(cols);
  return false;
}
bool check_length(const char* name, const Vector& v, std::int64_t n, std::string* why) {
  if (v.size() == n) return true;
  *why = std::string("vector ") + name + " has length " + std::to_string(v.size()) +
         ", expected " + std::to_string(n);
  return false;
}

Matrix symmetric_part(const Matrix& m) { return 0.5 * (m + m.transpose()); }

}  // namespace

bool QuadraticData::IsValid(std::string* why) const {
  std::string reason;
  std::string* out = why ? why : &reason;
  const std::int64_t ny = A.rows(), nx = B.rows();
  if (ny == 0 || nx == 0) {
    *out = "empty problem: A is " + shape_text(A) + ", B is " + shape_text(B);
    return false;
  }
  // The dimensions follow from A (lower) and B (upper).
  if (!check_shape("A", A, ny, ny, out) || !check_shape("B", B, nx, nx, out) ||
      !check_shape("C", C, nx, ny, out) || !check_shape("F", F, ny, ny, out) ||
      !check_shape("H", H, nx, nx, out) || !check_shape("K", K, nx, ny, out) ||
      !check_length("a", a, ny, out) || !check_length("b", b, nx, out) ||
      !check_length("f", f, ny, out) || !check_length("h", h, nx, out))
    return false;
  for (const Matrix* m : {&A, &B, &C, &F, &H, &K})
    if (!m->allFinite()) {
      *out = "a matrix has non-finite entries";
      return false;
    }
  for (const Vector* v : {&a, &b, &f, &h})
    if (!v->allFinite()) {
      *out = "a vector has non-finite entries";
      return false;
    }
  double scale = std::max(A.cwiseAbs().maxCoeff(), 1e-300);
  if ((A - A.transpose()).cwiseAbs().maxCoeff() > 1e-10 * scale) {
    *out = "the lower-level matrix A is not symmetric";
    return false;
  }
  Eigen::LLT<Matrix> cholesky(A);
  if (cholesky.info() != Eigen::Success) {
    *out = "the lower-level matrix A is not positive definite (Cholesky failed): the lower "
           "level must be strongly convex in z";
    return false;
  }
  return true;
}

bool QuadraticData::solution(Vector* x, Vector* z, std::string* why) const {
  Eigen::LLT<Matrix> a_chol(A);
  Matrix M = -a_chol.solve(C.transpose());  // z*(x) = M x + m
  Vector m = -a_chol.solve(a);
  Matrix Fs = symmetric_part(F), Hs = symmetric_part(H);
  Matrix Q = M.transpose() * Fs * M + Hs + K * M + M.transpose() * K.transpose();
  Q = symmetric_part(Q);
  Eigen::LLT<Matrix> q_chol(Q);
  if (q_chol.info() != Eigen::Success) {
    if (why) *why = "the reduced upper-level Hessian is not positive definite";
    return false;
  }
  *x = -q_chol.solve(M.transpose() * Fs * m + K * m + M.transpose() * f + h);
  *z = M * *x + m;
  return true;
}

Vector QuadraticData::hypergradient(const Vector& x) const {
  Eigen::LLT<Matrix> a_chol(A);
  Vector z = -a_chol.solve(C.transpose() * x + a);
  Vector upper_z = symmetric_part(F) * z + K.transpose() * x + f;
  return symmetric_part(H) * x + K * z + h - C * a_chol.solve(upper_z);
}

QuadraticData random_quadratic(std::uint64_t seed, std::int64_t nx, std::int64_t ny) {
  for (std::uint64_t attempt = 0;; ++attempt) {
    Random random(seed, "bilevel.random_quadratic", attempt);
    auto gaussian = [&](std::int64_t r, std::int64_t c) {
      Matrix m(r, c);
      for (std::int64_t j = 0; j < c; ++j)
        for (std::int64_t i = 0; i < r; ++i) m(i, j) = random.normal();
      return m;
    };
    QuadraticData q;
    Matrix G = gaussian(ny, ny);
    q.A = Matrix::Identity(ny, ny) + G.transpose() * G / (2.0 * ny);
    Matrix Gb = gaussian(nx, nx);
    q.B = Gb.transpose() * Gb / (2.0 * nx);
    q.C = 0.5 * gaussian(nx, ny) / std::sqrt(double(ny));
    Matrix Gf = gaussian(ny, ny);
    q.F = Matrix::Identity(ny, ny) + 0.2 * Gf.transpose() * Gf / double(ny);
    Matrix Gh = gaussian(nx, nx);
    q.H = 0.5 * Matrix::Identity(nx, nx) + 0.2 * Gh.transpose() * Gh / double(nx);
    q.K = 0.2 * gaussian(nx, ny) / std::sqrt(double(ny));
    q.a = gaussian(ny, 1);
    q.b = gaussian(nx, 1);
    q.f = gaussian(ny, 1);
    q.h = gaussian(nx, 1);
    Vector x, z;
    if (q.IsValid(nullptr) && q.solution(&x, &z)) return q;
  }
}

QuadraticData read_quadratic(MPI_Comm comm, const std::string& path) {
  QuadraticData q;
  std::unique_ptr<h5::File> file;
  collective(comm, [&] { file = std::make_unique<h5::File>(comm, path, h5::File::Mode::Read); });
  // Every rank reads the same small replicated datasets; a missing or malformed one is an
  // error on every rank (the checks below depend only on the file).
  auto read = [&](const char* name, bool matrix) -> Matrix {
    std::string where = std::string("/") + name;
    bool present = file->exists(where);
    check_all(comm, present,
              "quadratic problem " + path + ": dataset " + where + " is missing (need A B C a "
              "b for the lower level and F H K f h for the upper level)");
    std::vector<std::uint64_t> dims;
    std::vector<double> data = h5::read_doubles(*file, where, &dims);
    bool ok = matrix ? dims.size() == 2 : (dims.size() == 1 || (dims.size() == 2 && dims[1] == 1));
    check_all(comm, ok,
              "quadratic problem " + path + ": dataset " + where + " must be " +
                  (matrix ? "a 2-D matrix" : "a 1-D vector") + ", it has " +
                  std::to_string(dims.size()) + " dimensions");
    std::int64_t rows = static_cast<std::int64_t>(dims[0]);
    std::int64_t cols = matrix ? static_cast<std::int64_t>(dims[1]) : 1;
    // HDF5 is row-major, Eigen's default column-major.
    return Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic,
                                          Eigen::RowMajor>>(data.data(), rows, cols);
  };
  q.A = read("A", true);
  q.B = read("B", true);
  q.C = read("C", true);
  q.a = read("a", false);
  q.b = read("b", false);
  q.F = read("F", true);
  q.H = read("H", true);
  q.K = read("K", true);
  q.f = read("f", false);
  q.h = read("h", false);
  std::string why;
  bool valid = q.IsValid(&why);
  check_all(comm, valid, "quadratic problem " + path + ": " + why);
  return q;
}

void write_quadratic(MPI_Comm comm, const std::string& path, const QuadraticData& q) {
  h5::File file(comm, path, h5::File::Mode::Create);
  auto put_matrix = [&](const char* name, const Matrix& m) {
    Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rm = m;
    h5::write(file, name, std::vector<double>(rm.data(), rm.data() + rm.size()),
              {static_cast<std::uint64_t>(m.rows()), static_cast<std::uint64_t>(m.cols())});
  };
  auto put_vector = [&](const char* name, const Vector& v) {
    h5::write(file, name, std::vector<double>(v.data(), v.data() + v.size()),
              {static_cast<std::uint64_t>(v.size())});
  };
  put_matrix("A", q.A);
  put_matrix("B", q.B);
  put_matrix("C", q.C);
  put_vector("a", q.a);
  put_vector("b", q.b);
  put_matrix("F", q.F);
  put_matrix("H", q.H);
  put_matrix("K", q.K);
  put_vector("f", q.f);
  put_vector("h", q.h);
  file.close();
}

namespace {

// Evaluations of one quadratic (replicated, no communication).
struct QuadraticTerms {
  explicit QuadraticTerms(QuadraticData data) : q(std::move(data)) {
    q.B = symmetric_part(q.B);
    q.F = symmetric_part(q.F);
    q.H = symmetric_part(q.H);
  }
  double upper(const Vector& x, const Vector& z, Vector* gx, Vector* gz) const {
    Vector Fz = q.F * z, Hx = q.H * x, Kz = q.K * z;
    if (gx) *gx = Hx + Kz + q.h;
    if (gz) *gz = Fz + q.K.transpose() * x + q.f;
    return 0.5 * z.dot(Fz) + 0.5 * x.dot(Hx) + x.dot(Kz) + q.f.dot(z) + q.h.dot(x);
  }
  double lower(const Vector& x, const Vector& z, Vector* gx, Vector* gz) const {
    Vector Az = q.A * z, Bx = q.B * x, Cz = q.C * z;
    if (gx) *gx = Bx + Cz + q.b;
    if (gz) *gz = Az + q.C.transpose() * x + q.a;
    return 0.5 * z.dot(Az) + 0.5 * x.dot(Bx) + x.dot(Cz) + q.a.dot(z) + q.b.dot(x);
  }
  void hvp(const Vector& v, Vector* hyy, Vector* hxy) const {
    if (hyy) *hyy = q.A * v;
    if (hxy) *hxy = q.C * v;
  }
  QuadraticData q;
};

class QuadraticProblem : public Problem {
 public:
  QuadraticProblem(MPI_Comm comm, QuadraticData data) : comm_(comm), t_(std::move(data)) {
    std::string why;
    if (!t_.q.IsValid(&why)) throw Error("quadratic problem: " + why);
  }
  std::string name() const override { return "quadratic"; }
  MPI_Comm comm() const override { return comm_; }
  std::int64_t upper_dim() const override { return t_.q.upper_dim(); }
  std::int64_t lower_dim() const override { return t_.q.lower_dim(); }
  void initial_point(Vector* x, Vector* y) const override {
    *x = Vector::Zero(upper_dim());
    *y = Vector::Zero(lower_dim());
  }
  double upper(const Vector& x, const Vector& y, Vector* gx, Vector* gy,
               const Sample&) const override {
    return t_.upper(x, y, gx, gy);
  }
  double lower(const Vector& x, const Vector& y, Vector* gx, Vector* gy,
               const Sample&) const override {
    return t_.lower(x, y, gx, gy);
  }
  void lower_hvp(const Vector&, const Vector&, const Vector& v, Vector* hyy, Vector* hxy,
                 const Sample&) const override {
    t_.hvp(v, hyy, hxy);
  }
  bool known_solution(Vector* x, Vector* y) const override { return t_.q.solution(x, y); }

 private:
  MPI_Comm comm_;
  QuadraticTerms t_;
};

class QuadraticBlocks : public BlockProblem {
 public:
  QuadraticBlocks(MPI_Comm comm, std::vector<QuadraticData> blocks) : comm_(comm) {
    if (blocks.empty()) throw Error("quadratic blocks: no blocks");
    const std::int64_t nx = blocks[0].upper_dim(), ny = blocks[0].lower_dim();
    for (auto& block : blocks) {
      std::string why;
      if (!block.IsValid(&why)) throw Error("quadratic blocks: " + why);
      if (block.upper_dim() != nx || block.lower_dim() != ny)
        throw Error("quadratic blocks: every block must have the same dimensions");
      blocks_.emplace_back(std::move(block));
    }
  }
  std::string name() const override { return "quadratic"; }
  MPI_Comm comm() const override { return comm_; }
  std::int64_t num_blocks() const override { return std::int64_t(blocks_.size()); }
  std::int64_t upper_dim() const override { return blocks_[0].q.upper_dim(); }
  std::int64_t block_dim() const override { return blocks_[0].q.lower_dim(); }
  void initial_point(Vector* x, Vector* y) const override {
    *x = Vector::Zero(upper_dim());
    *y = Vector::Zero(block_dim());
  }
  double upper_block(std::int64_t i, const Vector& x, const Vector& y, Vector* gx, Vector* gy,
                     const Sample&) const override {
    return blocks_[i].upper(x, y, gx, gy);
  }
  double lower_block(std::int64_t i, const Vector& x, const Vector& y, Vector* gx, Vector* gy,
                     const Sample&) const override {
    return blocks_[i].lower(x, y, gx, gy);
  }
  void lower_block_hvp(std::int64_t i, const Vector&, const Vector&, const Vector& v,
                       Vector* hyy, Vector* hxy, const Sample&) const override {
    blocks_[i].hvp(v, hyy, hxy);
  }
  Matrix lower_block_hessian(std::int64_t i, const Vector&, const Vector&,
                             const Sample&) const override {
    return blocks_[i].q.A;
  }
  // x* of (1/m) sum_i Phi_i: sum_i Q_i x = -sum_i r_i.
  bool known_solution(Vector* x) const override {
    const std::int64_t nx = upper_dim();
    Matrix Q = Matrix::Zero(nx, nx);
    Vector r = Vector::Zero(nx);
    for (const auto& block : blocks_) {
      const auto& q = block.q;
      Eigen::LLT<Matrix> a_chol(q.A);
      Matrix M = -a_chol.solve(q.C.transpose());
      Vector m = -a_chol.solve(q.a);
      Q += M.transpose() * q.F * M + q.H + q.K * M + M.transpose() * q.K.transpose();
      r += M.transpose() * q.F * m + q.K * m + M.transpose() * q.f + q.h;
    }
    Eigen::LLT<Matrix> chol(symmetric_part(Q));
    if (chol.info() != Eigen::Success) return false;
    *x = -chol.solve(r);
    return true;
  }

 private:
  MPI_Comm comm_;
  std::vector<QuadraticTerms> blocks_;
};

}  // namespace

std::shared_ptr<Problem> make_quadratic_problem(MPI_Comm comm, QuadraticData data) {
  return std::make_shared<QuadraticProblem>(comm, std::move(data));
}

std::unique_ptr<BlockProblem> make_quadratic_blocks(MPI_Comm comm,
                                                    std::vector<QuadraticData> blocks) {
  return std::make_unique<QuadraticBlocks>(comm, std::move(blocks));
}

}  // namespace parasol::bilevel
