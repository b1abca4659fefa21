// The learning problems: per-feature L2 hyperparameters (logistic or ridge), data
// hyper-cleaning with a linear softmax classifier, and BSVRB's multi-block logistic task.
// Training and validation rows are distributed over ranks (hyper-cleaning, l2reg: each rank
// sums over its rows, one allreduce); the multi-block task replicates its (small) data and
// distributes the blocks instead.
#include <parasol/error.hpp>
#include <parasol/partition.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <new>

#include "common.hpp"

namespace parasol::bilevel {
namespace {

double sigmoid(double t) { return t >= 0 ? 1.0 / (1.0 + std::exp(-t)) : std::exp(t) / (1.0 + std::exp(t)); }
// log(1 + exp(-t)), stable.
double softplus_neg(double t) { return t > 0 ? std::log1p(std::exp(-t)) : -t + std::log1p(std::exp(t)); }

// The local rows a Sample selects and their weights: a full pass weighs each row 1/n, a
// minibatch of B draws weighs each draw 1/B (repeats add up).
struct LocalRows {
  std::vector<Eigen::Index> index;
  Vector weight;
};
LocalRows local_rows(const Sample& sample, std::int64_t begin, std::int64_t count,
                     std::int64_t global) {
  LocalRows out;
  if (sample.full) {
    out.index.resize(count);
    for (std::int64_t k = 0; k < count; ++k) out.index[k] = k;
    out.weight = Vector::Constant(count, 1.0 / double(std::max<std::int64_t>(global, 1)));
    return out;
  }
  const double w = 1.0 / double(sample.rows.size());
  std::vector<double> weights;
  for (std::int64_t row : sample.rows) {
    if (row < begin || row >= begin + count) continue;
    Eigen::Index local = Eigen::Index(row - begin);
    if (!out.index.empty() && out.index.back() == local) {
      weights.back() += w;
    } else {
      out.index.push_back(local);
      weights.push_back(w);
    }
  }
  out.weight = Eigen::Map<Vector>(weights.data(), Eigen::Index(weights.size()));
  return out;
}

// ---------------------------------------------------------------------------------------
class L2RegProblem : public Problem {
 public:
  L2RegProblem(MPI_Comm comm, SplitData data, L2Loss loss, double x0)
      : comm_(comm), d_(std::move(data)), loss_(loss), x0_(x0) {
    dim_ = d_.X_train.cols();
  }
  std::string name() const override { return loss_ == L2Loss::Squared ? "ridge" : "l2reg"; }
  MPI_Comm comm() const override { return comm_; }
  std::int64_t upper_dim() const override { return dim_; }
  std::int64_t lower_dim() const override { return dim_; }
  std::int64_t lower_samples() const override { return d_.train_global; }
  std::int64_t upper_samples() const override { return d_.val_global; }
  void initial_point(Vector* x, Vector* y) const override {
    *x = Vector::Constant(dim_, x0_);
    *y = Vector::Zero(dim_);
  }

  double upper(const Vector&, const Vector& y, Vector* gx, Vector* gy,
               const Sample& sample) const override {
    if (gx) *gx = Vector::Zero(dim_);
    return data_loss(d_.X_val, d_.y_val, d_.val_begin, d_.val_global, y, gy, sample);
  }
  double lower(const Vector& x, const Vector& y, Vector* gx, Vector* gy,
               const Sample& sample) const override {
    double value = data_loss(d_.X_train, d_.y_train, d_.train_begin, d_.train_global, y, gy, sample);
    Vector ex = x.array().exp();
    if (gy) *gy += ex.cwiseProduct(y);
    if (gx) *gx = 0.5 * ex.cwiseProduct(y.cwiseAbs2());
    return value + 0.5 * ex.dot(y.cwiseAbs2());
  }
  void lower_hvp(const Vector& x, const Vector& y, const Vector& v, Vector* hyy, Vector* hxy,
                 const Sample& sample) const override {
    Vector ex = x.array().exp();
    if (hyy) {
      LocalRows rows = local_rows(sample, d_.train_begin, d_.X_train.rows(), d_.train_global);
      RowMatrix A = d_.X_train(rows.index, Eigen::all);
      Vector t = A * y, curvature(t.size());
      for (Eigen::Index k = 0; k < t.size(); ++k) {
        double b = d_.y_train[rows.index[k]];
        curvature[k] = loss_ == L2Loss::Squared ? 1.0 : sigmoid(b * t[k]) * sigmoid(-b * t[k]);
      }
      *hyy = A.transpose() * (rows.weight.cwiseProduct(curvature).cwiseProduct(A * v));
      detail::allreduce_sum(comm_, *hyy);
      *hyy += ex.cwiseProduct(v);
    }
    if (hxy) *hxy = ex.cwiseProduct(y).cwiseProduct(v);
  }
  std::vector<std::string> metric_names() const override {
    if (loss_ == L2Loss::Squared) return {};
    return {"val_accuracy", "test_accuracy"};
  }
  std::vector<double> metrics(const Vector&, const Vector& y) const override {
    if (loss_ == L2Loss::Squared) return {};
    double counts[4] = {0, double(d_.X_val.rows()), 0, double(d_.X_test.rows())};
    Vector pv = d_.X_val * y, pt = d_.X_test * y;
    for (Eigen::Index k = 0; k < pv.size(); ++k) counts[0] += (pv[k] >= 0) == (d_.y_val[k] > 0);
    for (Eigen::Index k = 0; k < pt.size(); ++k) counts[2] += (pt[k] >= 0) == (d_.y_test[k] > 0);
    detail::allreduce_sum(comm_, counts, 4);
    return {counts[0] / std::max(counts[1], 1.0), counts[2] / std::max(counts[3], 1.0)};
  }

 private:
  // Mean loss over the selected rows (summed over ranks), gradient in y if asked.
  double data_loss(const RowMatrix& X, const Vector& labels, std::int64_t begin,
                   std::int64_t global, const Vector& y, Vector* gy, const Sample& sample) const {
    LocalRows rows = local_rows(sample, begin, X.rows(), global);
    RowMatrix A = X(rows.index, Eigen::all);
    Vector t = A * y, dloss(t.size());
    double value = 0.0;
    for (Eigen::Index k = 0; k < t.size(); ++k) {
      double b = labels[rows.index[k]];
      if (loss_ == L2Loss::Squared) {
        value += rows.weight[k] * 0.5 * (t[k] - b) * (t[k] - b);
        dloss[k] = t[k] - b;
      } else {
        value += rows.weight[k] * softplus_neg(b * t[k]);
        dloss[k] = -b * sigmoid(-b * t[k]);
      }
    }
    Vector buffer(dim_ + 1);
    buffer.head(dim_) = gy ? Vector(A.transpose() * rows.weight.cwiseProduct(dloss))
                           : Vector::Zero(dim_);
    buffer[dim_] = value;
    detail::allreduce_sum(comm_, buffer);
    if (gy) *gy = buffer.head(dim_);
    return buffer[dim_];
  }

  MPI_Comm comm_;
  SplitData d_;
  L2Loss loss_;
  double x0_;
  std::int64_t dim_ = 0;
};

// ---------------------------------------------------------------------------------------
// Linear softmax: y = [vec(W) (classes x features, column-major); b (classes)].
class HyperCleaningProblem : public Problem {
 public:
  HyperCleaningProblem(MPI_Comm comm, SplitData data, std::int64_t classes, double mu)
      : comm_(comm), d_(std::move(data)), k_(classes), mu_(mu) {
    features_ = d_.X_train.cols();
    auto check_labels = [&](const Vector& labels, const char* part) {
      bool ok = true;
      for (double c : labels) ok = ok && c >= 0 && c < double(k_) && c == std::floor(c);
      check_all(comm_, ok, std::string("hypercleaning: ") + part +
                               " labels must be class indices 0.." + std::to_string(k_ - 1));
    };
    check_labels(d_.y_train, "training");
    check_labels(d_.y_val, "validation");
    check_labels(d_.y_test, "test");
  }
  std::string name() const override { return "hypercleaning"; }
  MPI_Comm comm() const override { return comm_; }
  std::int64_t upper_dim() const override { return d_.X_train.rows(); }
  std::int64_t lower_dim() const override { return k_ * (features_ + 1); }
  bool upper_distributed() const override { return true; }
  std::int64_t lower_samples() const override { return d_.train_global; }
  std::int64_t upper_samples() const override { return d_.val_global; }
  void initial_point(Vector* x, Vector* y) const override {
    *x = Vector::Zero(upper_dim());  // every weight sigmoid(0) = 1/2
    *y = Vector::Zero(lower_dim());
  }

  double upper(const Vector&, const Vector& y, Vector* gx, Vector* gy,
               const Sample& sample) const override {
    if (gx) *gx = Vector::Zero(upper_dim());
    LocalRows rows = local_rows(sample, d_.val_begin, d_.X_val.rows(), d_.val_global);
    return cross_entropy(d_.X_val, d_.y_val, rows, rows.weight, y, gy, nullptr);
  }
  double lower(const Vector& x, const Vector& y, Vector* gx, Vector* gy,
               const Sample& sample) const override {
    LocalRows rows = local_rows(sample, d_.train_begin, d_.X_train.rows(), d_.train_global);
    Vector weights(rows.index.size());
    for (std::size_t k = 0; k < rows.index.size(); ++k)
      weights[k] = rows.weight[k] * sigmoid(x[rows.index[k]]);
    Vector per_row;
    double value = cross_entropy(d_.X_train, d_.y_train, rows, weights, y, gy, gx ? &per_row : nullptr);
    if (gx) {
      *gx = Vector::Zero(upper_dim());
      for (std::size_t k = 0; k < rows.index.size(); ++k) {
        double s = sigmoid(x[rows.index[k]]);
        (*gx)[rows.index[k]] += rows.weight[k] * s * (1 - s) * per_row[k];
      }
    }
    if (gy) *gy += mu_ * y;
    return value + 0.5 * mu_ * y.squaredNorm();
  }
  void lower_hvp(const Vector& x, const Vector& y, const Vector& v, Vector* hyy, Vector* hxy,
                 const Sample& sample) const override {
    LocalRows rows = local_rows(sample, d_.train_begin, d_.X_train.rows(), d_.train_global);
    RowMatrix A = d_.X_train(rows.index, Eigen::all);
    Matrix P = probabilities(A, y);
    Matrix U = logits(A, v);  // directional derivative of the logits
    // (diag(p) - p p') u per row, and (p - e_c)' u.
    Vector pu = (P.array() * U.array()).rowwise().sum();
    Matrix S = P.array() * (U.colwise() - pu).array();
    if (hyy) {
      Vector w(rows.index.size());
      for (std::size_t k = 0; k < rows.index.size(); ++k)
        w[k] = rows.weight[k] * sigmoid(x[rows.index[k]]);
      Matrix R = w.asDiagonal() * S;
      *hyy = pack(R.transpose() * A, R.colwise().sum().transpose());
      detail::allreduce_sum(comm_, *hyy);
      *hyy += mu_ * v;
    }
    if (hxy) {
      *hxy = Vector::Zero(upper_dim());
      for (std::size_t k = 0; k < rows.index.size(); ++k) {
        int c = int(d_.y_train[rows.index[k]]);
        double s = sigmoid(x[rows.index[k]]);
        (*hxy)[rows.index[k]] = rows.weight[k] * s * (1 - s) * (pu[k] - U(k, c));
      }
    }
  }
  std::vector<std::string> metric_names() const override {
    std::vector<std::string> names = {"val_accuracy", "test_accuracy"};
    if (d_.y_train_clean.size() == d_.y_train.size())
      names.insert(names.end(), {"corrupted_below_half", "clean_below_half"});
    return names;
  }
  std::vector<double> metrics(const Vector& x, const Vector& y) const override {
    double counts[8] = {correct(d_.X_val, d_.y_val, y), double(d_.X_val.rows()),
                        correct(d_.X_test, d_.y_test, y), double(d_.X_test.rows()), 0, 0, 0, 0};
    bool know_clean = d_.y_train_clean.size() == d_.y_train.size();
    if (know_clean) {
      for (Eigen::Index j = 0; j < x.size(); ++j) {
        bool corrupted = d_.y_train[j] != d_.y_train_clean[j];
        bool low = x[j] < 0.0;  // sigmoid(x) < 1/2
        counts[corrupted ? 4 : 6] += low;
        counts[corrupted ? 5 : 7] += 1;
      }
    }
    detail::allreduce_sum(comm_, counts, 8);
    std::vector<double> out = {counts[0] / std::max(counts[1], 1.0),
                               counts[2] / std::max(counts[3], 1.0)};
    if (know_clean)
      out.insert(out.end(), {counts[4] / std::max(counts[5], 1.0), counts[6] / std::max(counts[7], 1.0)});
    return out;
  }

 private:
  Eigen::Map<const Matrix> W(const Vector& y) const { return {y.data(), k_, features_}; }
  Vector pack(const Matrix& gW, const Vector& gb) const {
    Vector out(lower_dim());
    out.head(k_ * features_) = Eigen::Map<const Vector>(gW.data(), gW.size());
    out.tail(k_) = gb;
    return out;
  }
  Matrix logits(const RowMatrix& A, const Vector& y) const {
    Matrix Z = A * W(y).transpose();
    Z.rowwise() += y.tail(k_).transpose();
    return Z;
  }
  Matrix probabilities(const RowMatrix& A, const Vector& y) const {
    Matrix Z = logits(A, y);
    for (Eigen::Index r = 0; r < Z.rows(); ++r) {
      Z.row(r).array() -= Z.row(r).maxCoeff();
      Z.row(r) = Z.row(r).array().exp().matrix();
      Z.row(r) /= Z.row(r).sum();
    }
    return Z;
  }
  // sum_k weight_k CE_k over the selected rows, summed over ranks; gradient in y; per-row CE.
  double cross_entropy(const RowMatrix& X, const Vector& labels, const LocalRows& rows,
                       const Vector& weights, const Vector& y, Vector* gy, Vector* per_row) const {
    RowMatrix A = X(rows.index, Eigen::all);
    Matrix Z = logits(A, y);
    Vector ce(Z.rows());
    Matrix R(Z.rows(), k_);
    for (Eigen::Index r = 0; r < Z.rows(); ++r) {
      double top = Z.row(r).maxCoeff();
      Eigen::RowVectorXd e = (Z.row(r).array() - top).exp();
      double sum = e.sum();
      int c = int(labels[rows.index[r]]);
      ce[r] = top + std::log(sum) - Z(r, c);
      R.row(r) = weights[r] * e / sum;
      R(r, c) -= weights[r];
    }
    if (per_row) *per_row = ce;
    Vector buffer(gy ? lower_dim() + 1 : 1);
    if (gy) buffer.head(lower_dim()) = pack(R.transpose() * A, R.colwise().sum().transpose());
    buffer[buffer.size() - 1] = weights.dot(ce);
    detail::allreduce_sum(comm_, buffer);
    if (gy) *gy = buffer.head(lower_dim());
    return buffer[buffer.size() - 1];
  }
  double correct(const RowMatrix& X, const Vector& labels, const Vector& y) const {
    if (X.rows() == 0) return 0.0;
    Matrix Z = logits(X, y);
    double count = 0;
    for (Eigen::Index r = 0; r < Z.rows(); ++r) {
      Eigen::Index best;
      Z.row(r).maxCoeff(&best);
      count += double(best) == labels[r];
    }
    return count;
  }

  MPI_Comm comm_;
  SplitData d_;
  std::int64_t k_, features_ = 0;
  double mu_;
};

// ---------------------------------------------------------------------------------------
// Doubles shared by the ranks of one node (MPI shared memory): one copy of replicated read-
// only data instead of one per rank. The multiblock task reads random minibatch rows of its
// data in every block; on a8a (22 MB with the validation rows) two private copies do not fit
// a 32 MB L3 cache at 2 ranks, and every block got slower than at 1 rank.
class NodeSharedDoubles {
 public:
  // Collective over comm; `fill` writes the data on the node's first rank.
  template <class Fill>
  NodeSharedDoubles(MPI_Comm comm, std::int64_t count, Fill fill) {
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node_);
    int node_rank = 0;
    MPI_Comm_rank(node_, &node_rank);
    const MPI_Aint bytes = node_rank == 0 ? MPI_Aint(count) * MPI_Aint(sizeof(double)) : 0;
    double* mine = nullptr;
    MPI_Win_allocate_shared(bytes, int(sizeof(double)), MPI_INFO_NULL, node_, &mine, &window_);
    MPI_Aint size = 0;
    int unit = 0;
    MPI_Win_shared_query(window_, 0, &size, &unit, &data_);
    MPI_Win_lock_all(MPI_MODE_NOCHECK, window_);
    if (node_rank == 0) fill(data_);
    MPI_Win_sync(window_);
    MPI_Barrier(node_);
    MPI_Win_sync(window_);
    MPI_Win_unlock_all(window_);
  }
  ~NodeSharedDoubles() {  // collective (every rank destroys its problem)
    MPI_Win_free(&window_);
    MPI_Comm_free(&node_);
  }
  NodeSharedDoubles(const NodeSharedDoubles&) = delete;
  NodeSharedDoubles& operator=(const NodeSharedDoubles&) = delete;
  const double* data() const { return data_; }

 private:
  MPI_Comm node_ = MPI_COMM_NULL;
  MPI_Win window_ = MPI_WIN_NULL;
  double* data_ = nullptr;
};

// y_i = [bias; weights]; loss_j = log(1 + exp(-b_j y'[1; a_j] / sigma_i)).
class MultiBlockProblem : public BlockProblem {
  using DataView = Eigen::Map<const RowMatrix>;

 public:
  MultiBlockProblem(MPI_Comm comm, const RowMatrix& X_train, const Vector& y_train,
                    const RowMatrix& X_val, const Vector& y_val, std::int64_t m, double lambda)
      : comm_(comm), m_(m), lambda_(lambda) {
    // [1, a_j] rows of the training and validation data, one copy per node.
    const Eigen::Index cols = X_train.cols() + 1, n_train = X_train.rows(), n_val = X_val.rows();
    check_all(comm_, X_val.cols() == X_train.cols() || n_val == 0,
              "multiblock: validation and training data have different feature counts");
    data_ = std::make_unique<NodeSharedDoubles>(
        comm_, std::int64_t((n_train + n_val) * cols), [&](double* out) {
          auto augment = [cols](const RowMatrix& X, double* to) {
            Eigen::Map<RowMatrix> M(to, X.rows(), cols);
            M.col(0).setOnes();
            M.rightCols(cols - 1) = X;
          };
          augment(X_train, out);
          if (n_val > 0) augment(X_val, out + n_train * cols);
        });
    new (&train_) DataView(data_->data(), n_train, cols);
    new (&val_) DataView(data_->data() + n_train * cols, n_val, cols);
    b_train_ = y_train;
    b_val_ = y_val;
    bool ok = true;
    for (double b : b_train_) ok = ok && (b == 1.0 || b == -1.0);
    for (double b : b_val_) ok = ok && (b == 1.0 || b == -1.0);
    check_all(comm_, ok, "multiblock: labels must be +1 or -1");
    check_all(comm_, m_ >= 1, "multiblock: need at least one block");
    // Temperatures spread geometrically over [1.16, 10.95], the range of BSVRB's task.
    temperature_.resize(m_);
    for (std::int64_t i = 0; i < m_; ++i)
      temperature_[i] = m_ == 1 ? 1.0 : 1.16 * std::pow(10.95 / 1.16, double(i) / double(m_ - 1));
  }
  std::string name() const override { return "multiblock"; }
  MPI_Comm comm() const override { return comm_; }
  std::int64_t num_blocks() const override { return m_; }
  std::int64_t upper_dim() const override { return train_.rows(); }
  std::int64_t block_dim() const override { return train_.cols(); }
  std::int64_t lower_samples() const override { return train_.rows(); }
  std::int64_t upper_samples() const override { return val_.rows(); }
  void initial_point(Vector* x, Vector* y) const override {
    *x = Vector::Zero(upper_dim());
    *y = Vector::Zero(block_dim());
  }

  double upper_block(std::int64_t i, const Vector&, const Vector& y, Vector* gx, Vector* gy,
                     const Sample& sample) const override {
    if (gx) *gx = Vector::Zero(upper_dim());
    LocalRows rows = local_rows(sample, 0, val_.rows(), val_.rows());
    return loss(val_, b_val_, sample, rows, rows.weight, temperature_[i], y, gy, nullptr);
  }
  double lower_block(std::int64_t i, const Vector& x, const Vector& y, Vector* gx, Vector* gy,
                     const Sample& sample) const override {
    LocalRows rows = local_rows(sample, 0, train_.rows(), train_.rows());
    Vector w = weights(x, rows);
    Vector per_row;
    double value =
        loss(train_, b_train_, sample, rows, w, temperature_[i], y, gy, gx ? &per_row : nullptr);
    if (gx) {
      *gx = Vector::Zero(upper_dim());
      for (std::size_t k = 0; k < rows.index.size(); ++k) {
        double s = sigmoid(x[rows.index[k]]);
        (*gx)[rows.index[k]] += rows.weight[k] * s * (1 - s) * per_row[k];
      }
    }
    if (gy) *gy += lambda_ * y;
    return value + 0.5 * lambda_ * y.squaredNorm();
  }
  void lower_block_hvp(std::int64_t i, const Vector& x, const Vector& y, const Vector& v,
                       Vector* hyy, Vector* hxy, const Sample& sample) const override {
    if (hxy) *hxy = Vector::Zero(upper_dim());
    hvp(i, x, y, v, hyy, hxy, false, sample);
  }
  // The upper level does not depend on x; d2g_i/dxdy v lives on the sampled rows, which
  // are the coupling rows (unique, sorted, as local_rows lists them).
  double upper_block_rows(std::int64_t i, const Vector& x, const Vector& y,
                          const std::vector<std::int64_t>& rows, Vector* gx_rows, Vector* gy,
                          const Sample& sample) const override {
    if (gx_rows) *gx_rows = Vector::Zero(Eigen::Index(rows.size()));
    return upper_block(i, x, y, nullptr, gy, sample);
  }
  void lower_block_hvp_rows(std::int64_t i, const Vector& x, const Vector& y, const Vector& v,
                            const std::vector<std::int64_t>& rows, Vector* hyy,
                            Vector* hxy_rows, const Sample& sample) const override {
    if (hxy_rows && std::int64_t(rows.size()) !=
                        std::int64_t(sample.full ? train_.rows() : unique_count(sample))) {
      BlockProblem::lower_block_hvp_rows(i, x, y, v, rows, hyy, hxy_rows, sample);
      return;
    }
    if (hxy_rows) hxy_rows->resize(Eigen::Index(rows.size()));
    hvp(i, x, y, v, hyy, hxy_rows, true, sample);
  }
  // hyy = d2g_i/dy2 v; hxy = d2g_i/dxdy v at the sampled rows: hxy[row] (by_position false)
  // or hxy[k] for the k-th distinct sampled row (by_position true).
  void hvp(std::int64_t i, const Vector& x, const Vector& y, const Vector& v, Vector* hyy,
           Vector* hxy, bool by_position, const Sample& sample) const {
    LocalRows rows = local_rows(sample, 0, train_.rows(), train_.rows());
    RowMatrix gathered;
    const DataView A = sampled_rows(train_, sample, rows, &gathered);
    const double sigma = temperature_[i];
    Vector t = A * y, av = A * v;
    if (hyy) {
      Vector c(t.size());
      for (Eigen::Index k = 0; k < t.size(); ++k) {
        double margin = b_train_[rows.index[k]] * t[k] / sigma;
        c[k] = rows.weight[k] * sigmoid(x[rows.index[k]]) * sigmoid(margin) * sigmoid(-margin) /
               (sigma * sigma);
      }
      *hyy = A.transpose() * c.cwiseProduct(av) + lambda_ * v;
    }
    if (hxy) {
      for (Eigen::Index k = 0; k < t.size(); ++k) {
        double b = b_train_[rows.index[k]], s = sigmoid(x[rows.index[k]]);
        double dloss = -sigmoid(-b * t[k] / sigma) * b / sigma;  // d loss / d t
        (*hxy)[by_position ? k : rows.index[k]] = rows.weight[k] * s * (1 - s) * dloss * av[k];
      }
    }
  }
  Matrix lower_block_hessian(std::int64_t i, const Vector& x, const Vector& y,
                             const Sample& sample) const override {
    LocalRows rows = local_rows(sample, 0, train_.rows(), train_.rows());
    RowMatrix gathered;
    const DataView A = sampled_rows(train_, sample, rows, &gathered);
    const double sigma = temperature_[i];
    Vector t = A * y, c(t.size());
    for (Eigen::Index k = 0; k < t.size(); ++k) {
      double margin = b_train_[rows.index[k]] * t[k] / sigma;
      c[k] = rows.weight[k] * sigmoid(x[rows.index[k]]) * sigmoid(margin) * sigmoid(-margin) /
             (sigma * sigma);
    }
    Matrix H = A.transpose() * c.asDiagonal() * A;
    H.diagonal().array() += lambda_;
    return H;
  }
  // x weighs the training samples: the upper terms do not depend on x, and d2g_i/dxdy v is
  // nonzero only on the sampled training rows.
  std::int64_t max_coupling_rows(std::int64_t lower_count, std::int64_t) const override {
    return std::min(lower_count, upper_dim());
  }
  bool coupling_rows(std::int64_t, const Sample& lower, const Sample&,
                     std::vector<std::int64_t>* rows) const override {
    if (lower.full) return false;
    rows->assign(lower.rows.begin(), lower.rows.end());
    rows->erase(std::unique(rows->begin(), rows->end()), rows->end());
    return true;
  }
  // All blocks read the same rows: one matrix product for all of them (the data is read
  // once, not once per block).
  void sum_objectives(const Vector& x, std::int64_t first, const std::vector<Vector>& ys,
                      double* upper, double* lower) const override {
    *upper = *lower = 0.0;
    if (ys.empty()) return;
    partial_sums(x, first, stack(ys), {train_.rows(), 0, train_.rows()},
                 {val_.rows(), 0, val_.rows()}, ys, 0, upper, lower, nullptr);
  }
  // The data rows split over the ranks and every block on each: one product of this rank's
  // rows with all m blocks' y (gathered: m d values), and one validation product for the
  // objectives and the accuracy. Split by blocks (sum_objectives and metrics on each rank's
  // own), every rank read all the data and packed it for its products (w8a: 0.208 s at 1
  // rank, 0.114 s at 2; now 0.180 s and 0.092 s).
  void evaluate(const Vector& x, std::int64_t first, const std::vector<Vector>& ys,
                double* upper, double* lower, std::vector<double>* metrics) const override {
    int rank = 0;
    MPI_Comm_rank(comm_, &rank);
    const Eigen::Index d = train_.cols(), mine = Eigen::Index(ys.size());
    Vector local(d * mine);
    for (Eigen::Index k = 0; k < mine; ++k) local.segment(k * d, d) = ys[std::size_t(k)];
    const RankPieces pieces = RankPieces::of(comm_, int(d * mine));
    Matrix Y(d, pieces.total / d);
    pieces.allgather(comm_, local.data(), Y.data());
    const Eigen::Index own_column = pieces.offsets[rank] / d;  // this rank's first block in Y
    double sums[3] = {0.0, 0.0, 0.0};  // upper, lower, correct validation predictions
    partial_sums(x, first - own_column, Y, Partition::block(train_.rows(), comm_),
                 Partition::block(val_.rows(), comm_), ys, own_column, &sums[0], &sums[1],
                 &sums[2]);
    detail::allreduce_sum(comm_, sums, 3);
    *upper = sums[0];
    *lower = sums[1];
    *metrics = {sums[2] / (double(m_) * double(std::max<Eigen::Index>(val_.rows(), 1)))};
  }
  std::vector<std::string> metric_names() const override { return {"val_accuracy"}; }
  // Mean over blocks of the validation accuracy.
  std::vector<double> metrics(const Vector&, const std::vector<Vector>& y_local) const override {
    double correct = 0;
    if (!y_local.empty()) {
      const Matrix T = val_ * stack(y_local);
      for (Eigen::Index c = 0; c < T.cols(); ++c)
        for (Eigen::Index k = 0; k < T.rows(); ++k)
          correct += (T(k, c) >= 0) == (b_val_[k] > 0);
    }
    correct = detail::allreduce_sum(comm_, correct);
    return {correct / (double(m_) * double(std::max<Eigen::Index>(val_.rows(), 1)))};
  }

 private:
  static std::int64_t unique_count(const Sample& sample) {
    std::int64_t count = 0;
    for (std::size_t k = 0; k < sample.rows.size(); ++k)
      count += k == 0 || sample.rows[k] != sample.rows[k - 1];
    return count;
  }
  // Sums over the blocks first, first + 1, ... (Y's columns) on the training rows `train` and
  // the validation rows `val`: the upper terms (each block's mean over all validation rows),
  // the weighted lower terms plus, for the blocks in `own` (from Y's column own_column on),
  // their L2 terms, and the correct validation predictions (when `correct` is not null).
  void partial_sums(const Vector& x, std::int64_t first, const Matrix& Y, const Partition& train,
                    const Partition& val, const std::vector<Vector>& own, Eigen::Index own_column,
                    double* upper, double* lower, double* correct) const {
    const Matrix T_train = train_.middleRows(train.begin, train.count()) * Y;
    const Matrix T_val = val_.middleRows(val.begin, val.count()) * Y;
    Vector w(train.count());
    for (Eigen::Index r = 0; r < w.size(); ++r)
      w[r] = sigmoid(x[train.begin + r]) / double(train_.rows());
    for (Eigen::Index k = 0; k < Y.cols(); ++k) {
      const double sigma = temperature_[first + k];
      double up = 0.0, low = 0.0;
      for (Eigen::Index r = 0; r < T_val.rows(); ++r)
        up += softplus_neg(b_val_[val.begin + r] * T_val(r, k) / sigma);
      for (Eigen::Index r = 0; r < T_train.rows(); ++r)
        low += w[r] * softplus_neg(b_train_[train.begin + r] * T_train(r, k) / sigma);
      *upper += up / double(std::max<Eigen::Index>(val_.rows(), 1));
      const Eigen::Index j = k - own_column;
      const bool owned = j >= 0 && j < Eigen::Index(own.size());
      *lower += low + (owned ? 0.5 * lambda_ * own[std::size_t(j)].squaredNorm() : 0.0);
      if (correct)
        for (Eigen::Index r = 0; r < T_val.rows(); ++r)
          *correct += (T_val(r, k) >= 0) == (b_val_[val.begin + r] > 0);
    }
  }
  static Matrix stack(const std::vector<Vector>& ys) {
    Matrix Y(ys.front().size(), Eigen::Index(ys.size()));
    for (std::size_t k = 0; k < ys.size(); ++k) Y.col(Eigen::Index(k)) = ys[k];
    return Y;
  }
  Vector weights(const Vector& x, const LocalRows& rows) const {
    Vector w(rows.index.size());
    for (std::size_t k = 0; k < rows.index.size(); ++k)
      w[k] = rows.weight[k] * sigmoid(x[rows.index[k]]);
    return w;
  }
  // The rows of X a sample reads: X itself for the full data (no copy of the whole matrix on
  // every full evaluation), else the sampled rows gathered into `gathered`.
  static DataView sampled_rows(const DataView& X, const Sample& sample, const LocalRows& rows,
                               RowMatrix* gathered) {
    if (sample.full) return X;
    *gathered = X(rows.index, Eigen::all);
    return DataView(gathered->data(), gathered->rows(), gathered->cols());
  }
  double loss(const DataView& X, const Vector& labels, const Sample& sample,
              const LocalRows& rows, const Vector& w, double sigma, const Vector& y, Vector* gy,
              Vector* per_row) const {
    RowMatrix gathered;
    const DataView A = sampled_rows(X, sample, rows, &gathered);
    Vector t = A * y, d(t.size()), values(t.size());
    for (Eigen::Index k = 0; k < t.size(); ++k) {
      double b = labels[rows.index[k]];
      values[k] = softplus_neg(b * t[k] / sigma);
      d[k] = -sigmoid(-b * t[k] / sigma) * b / sigma;
    }
    if (gy) *gy = A.transpose() * w.cwiseProduct(d);
    if (per_row) *per_row = values;
    return w.dot(values);
  }

  MPI_Comm comm_;
  std::int64_t m_;
  double lambda_;
  std::unique_ptr<NodeSharedDoubles> data_;
  DataView train_{nullptr, 0, 0}, val_{nullptr, 0, 0};  // into data_
  Vector b_train_, b_val_, temperature_;
};

}  // namespace

std::shared_ptr<Problem> make_l2reg_problem(MPI_Comm comm, SplitData data, L2Loss loss,
                                            double x0) {
  return std::make_shared<L2RegProblem>(comm, std::move(data), loss, x0);
}

std::shared_ptr<Problem> make_hypercleaning_problem(MPI_Comm comm, SplitData data,
                                                    std::int64_t classes, double mu) {
  return std::make_shared<HyperCleaningProblem>(comm, std::move(data), classes, mu);
}

std::unique_ptr<BlockProblem> make_multiblock_problem(MPI_Comm comm, const RowMatrix& X_train,
                                                      const Vector& y_train,
                                                      const RowMatrix& X_val,
                                                      const Vector& y_val, std::int64_t m,
                                                      double lambda) {
  return std::make_unique<MultiBlockProblem>(comm, X_train, y_train, X_val, y_val, m, lambda);
}

}  // namespace parasol::bilevel
