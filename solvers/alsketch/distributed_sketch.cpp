// Sketching on the distributed KKT matrix (sketch.hpp): no rank holds more of K than its own
// rows; vectors of length n + m are PETSc Vecs, plus O(n + m) index maps (natural <-> PETSc
// order, and for row-norm sampling the cumulative row norms) on every rank.
#include "sketch.hpp"

#include <parasol/error.hpp>
#include <parasol/partition.hpp>
#include <parasol/random.hpp>

#include <algorithm>
#include <cmath>

namespace parasol::alsketch::detail {

// Kaczmarz steps per collective (the iterates are those of single steps; the residual norm is
// checked once per batch).
constexpr int kKaczmarzBatch = 64;

DistributedSketchSolver::DistributedSketchSolver(Mat K, Vec b, const std::vector<PetscInt>& natural,
                                                 const SketchConfig& config, std::uint64_t key)
    : K_(K), b_(b), config_(config), purpose_(key), natural_local_(natural) {
  PARASOL_PETSC(PetscObjectGetComm(reinterpret_cast<PetscObject>(K), &comm_));
  if (config.kind != "gaussian" && config.kind != "kaczmarz" && config.kind != "block")
    throw Error("alsketch: unknown sketch '" + config.kind + "'");
  config_.block_size = config.kind == "block" ? std::max(1, config.block_size) : 1;
  PARASOL_PETSC(MatGetOwnershipRange(K, &lo_, &hi_));
  PARASOL_PETSC(MatGetSize(K, &N_, nullptr));
  PARASOL_PETSC(VecDuplicate(b, &z_));
  PARASOL_PETSC(VecDuplicate(b, &r_));
  PARASOL_PETSC(VecSet(z_, 0.0));
  PARASOL_PETSC(VecAXPBY(r_, -1.0, 0.0, b));
  recompute_interval_ = config.recompute_interval > 0 ? config.recompute_interval
                                                      : std::max<PetscInt>(N_, 64);
  if (config.kind != "kaczmarz") {
    S_.resize(config_.block_size);
    KS_.resize(config_.block_size);
    for (int j = 0; j < config_.block_size; ++j) {
      PARASOL_PETSC(VecDuplicate(b, &S_[j]));
      PARASOL_PETSC(VecDuplicate(b, &KS_[j]));
    }
    return;
  }

  // Kaczmarz: local rows (CSR), the same entries by global column (CSC), the natural order.
  const PetscInt local = hi_ - lo_;
  row_ptr_.assign(1, 0);
  for (PetscInt i = lo_; i < hi_; ++i) {
    PetscInt ncols;
    const PetscInt* idx;
    const PetscScalar* val;
    PARASOL_PETSC(MatGetRow(K, i, &ncols, &idx, &val));
    double norm2 = 0;
    for (PetscInt k = 0; k < ncols; ++k) {
      row_col_.push_back(idx[k]);
      row_val_.push_back(val[k]);
      norm2 += val[k] * val[k];
    }
    row_norm2_.push_back(norm2);
    row_ptr_.push_back(static_cast<PetscInt>(row_col_.size()));
    PARASOL_PETSC(MatRestoreRow(K, i, &ncols, &idx, &val));
  }
  col_ptr_.assign(N_ + 1, 0);
  for (PetscInt c : row_col_) ++col_ptr_[c + 1];
  for (PetscInt c = 0; c < N_; ++c) col_ptr_[c + 1] += col_ptr_[c];
  col_row_.resize(row_col_.size());
  col_val_.resize(row_col_.size());
  std::vector<PetscInt> fill(col_ptr_.begin(), col_ptr_.end() - 1);
  for (PetscInt j = 0; j < local; ++j)
    for (PetscInt k = row_ptr_[j]; k < row_ptr_[j + 1]; ++k) {
      const PetscInt at = fill[row_col_[k]]++;
      col_row_[at] = j;
      col_val_[at] = row_val_[k];
    }

  const RankPieces pieces = RankPieces::of(comm_, static_cast<int>(local));
  const std::vector<PetscInt> natural_all = pieces.allgather(comm_, natural_local_.data());
  {  // every row's length, so every rank knows what each owner contributes to a batch
    std::vector<PetscInt> mine(local);
    for (PetscInt j = 0; j < local; ++j) mine[j] = row_ptr_[j + 1] - row_ptr_[j];
    row_length_ = pieces.allgather(comm_, mine.data());
    ranges_.assign(pieces.offsets.begin(), pieces.offsets.end());
    ranges_.push_back(pieces.total);
  }
  petsc_of_natural_.assign(N_, 0);
  for (PetscInt p = 0; p < N_; ++p) petsc_of_natural_[natural_all[p]] = p;
  if (config_.rownorm_weights) {
    const std::vector<double> norms_all = pieces.allgather(comm_, row_norm2_.data());
    cumulative_.resize(N_);
    double total = 0;
    for (PetscInt i = 0; i < N_; ++i) cumulative_[i] = (total += norms_all[petsc_of_natural_[i]]);
  }
}

DistributedSketchSolver::~DistributedSketchSolver() {
  for (Vec* v : {&z_, &r_}) VecDestroy(v);
  for (Vec& v : S_) VecDestroy(&v);
  for (Vec& v : KS_) VecDestroy(&v);
}

void DistributedSketchSolver::recompute_residual() {
  PARASOL_PETSC(MatMult(K_, z_, r_));
  PARASOL_PETSC(VecAXPY(r_, -1.0, b_));
  since_recompute_ = 0;
}

double DistributedSketchSolver::residual_norm() const {
  PetscReal norm;
  PARASOL_PETSC(VecNorm(r_, NORM_2, &norm));
  return norm;
}

bool DistributedSketchSolver::run(double target, std::int64_t budget) {
  for (std::int64_t taken = 0;;) {
    if (config_.kind == "kaczmarz") {
      // The norm test rides on the batch's one collective.
      const int batch = static_cast<int>(std::min<std::int64_t>(kKaczmarzBatch, budget - taken));
      if (kaczmarz_batch(batch, target)) {
        if (since_recompute_ == 0) return true;
        recompute_residual();  // confirm without drift
        if (residual_norm() <= target) return true;
        continue;
      }
      if (batch == 0) break;
      taken += batch;
      if ((since_recompute_ += batch) >= recompute_interval_) recompute_residual();
    } else {
      if (residual_norm() <= target) {
        if (since_recompute_ > 0) recompute_residual();
        if (residual_norm() <= target) return true;
      }
      if (taken >= budget) break;
      block_step(config_.block_size);
      ++taken;
    }
  }
  recompute_residual();
  return residual_norm() <= target;
}

bool DistributedSketchSolver::kaczmarz_batch(int steps, double target) {
  // The rows of the batch, drawn by every rank alike.
  std::vector<PetscInt> rows(steps);
  for (int k = 0; k < steps; ++k) {
    Random random(config_.seed, sketch_step_purpose(config_, purpose_, steps_ + k), 0);
    PetscInt i;
    if (config_.rownorm_weights && cumulative_.back() > 0) {
      const double u = random.uniform() * cumulative_.back();
      i = std::upper_bound(cumulative_.begin(), cumulative_.end(), u) - cumulative_.begin();
      i = std::min<PetscInt>(i, N_ - 1);
    } else {
      i = static_cast<PetscInt>(random.below(static_cast<std::uint64_t>(N_)));
    }
    rows[k] = petsc_of_natural_[i];
  }
  // Each rank contributes its |r|^2, then for each of its rows of the batch: k, r_p (batch
  // start), count, (column, value)... The sizes follow from the row lengths: one collective.
  int size;
  MPI_Comm_size(comm_, &size);
  std::vector<int> counts(size, 1), displs(size, 0);
  for (int k = 0; k < steps; ++k) {
    const int owner = static_cast<int>(std::upper_bound(ranges_.begin(), ranges_.end(), rows[k]) -
                                       ranges_.begin()) - 1;
    counts[owner] += 3 + 2 * static_cast<int>(row_length_[rows[k]]);
  }
  for (int q = 1; q < size; ++q) displs[q] = displs[q - 1] + counts[q - 1];
  PetscScalar* r;
  PARASOL_PETSC(VecGetArray(r_, &r));
  std::vector<double> mine;
  {
    double r2 = 0;
    for (PetscInt j = 0; j < hi_ - lo_; ++j) r2 += r[j] * r[j];
    mine.push_back(r2);
  }
  for (int k = 0; k < steps; ++k) {
    const PetscInt p = rows[k];
    if (p < lo_ || p >= hi_) continue;
    const PetscInt j = p - lo_;
    mine.push_back(k);
    mine.push_back(r[j]);
    mine.push_back(static_cast<double>(row_ptr_[j + 1] - row_ptr_[j]));
    for (PetscInt e = row_ptr_[j]; e < row_ptr_[j + 1]; ++e) {
      mine.push_back(static_cast<double>(row_col_[e]));
      mine.push_back(row_val_[e]);
    }
  }
  int rank;
  MPI_Comm_rank(comm_, &rank);  // mine.size() == counts[rank]: K does not change in a solve
  std::vector<double> all(displs[size - 1] + counts[size - 1]);
  MPI_Allgatherv(mine.data(), counts[rank], MPI_DOUBLE, all.data(), counts.data(), displs.data(),
                 MPI_DOUBLE, comm_);
  double r2 = 0;
  for (int q = 0; q < size; ++q) r2 += all[displs[q]];
  if (r2 <= target * target || steps == 0) {
    PARASOL_PETSC(VecRestoreArray(r_, &r));
    return r2 <= target * target;
  }
  steps_ += steps;
  // Unpack: where each step's row starts in `all` (a row drawn twice is packed twice).
  std::vector<std::size_t> at(steps);
  for (int q = 0; q < size; ++q) {
    const std::size_t end = static_cast<std::size_t>(displs[q]) + counts[q];
    for (std::size_t pos = displs[q] + 1; pos < end;) {
      at[static_cast<int>(all[pos])] = pos;
      pos += 3 + 2 * static_cast<std::size_t>(all[pos + 2]);
    }
  }
  auto length = [&](int k) { return static_cast<int>(all[at[k] + 2]); };
  auto col = [&](int k, int e) { return static_cast<PetscInt>(all[at[k] + 3 + 2 * e]); };
  auto val = [&](int k, int e) { return all[at[k] + 4 + 2 * e]; };
  // K_{i_k} . K_{i_j} for sorted sparse rows.
  auto row_dot = [&](int a, int b) {
    double sum = 0;
    for (int ea = 0, eb = 0; ea < length(a) && eb < length(b);) {
      const PetscInt ca = col(a, ea), cb = col(b, eb);
      if (ca == cb) sum += val(a, ea++) * val(b, eb++);
      else if (ca < cb) ++ea;
      else ++eb;
    }
    return sum;
  };
  // Step sizes, sequentially as the single steps would take them.
  std::vector<double> alpha(steps, 0.0);
  for (int k = 0; k < steps; ++k) {
    const double norm2 = row_dot(k, k);
    if (!(norm2 > 0)) continue;
    double rk = all[at[k] + 1];
    for (int j = 0; j < k; ++j)
      if (alpha[j] != 0) rk -= alpha[j] * row_dot(k, j);
    alpha[k] = rk / norm2;
  }
  // z -= alpha_k K_{i_k} and r -= alpha_k K K_{i_k} on this rank's entries.
  PetscScalar* z;
  PARASOL_PETSC(VecGetArray(z_, &z));
  for (int k = 0; k < steps; ++k) {
    if (alpha[k] == 0) continue;
    for (int e = 0; e < length(k); ++e) {
      const PetscInt c = col(k, e);
      const double value = val(k, e);  // K_{i,c} = K_{c,i}
      if (c >= lo_ && c < hi_) z[c - lo_] -= alpha[k] * value;
      for (PetscInt q = col_ptr_[c]; q < col_ptr_[c + 1]; ++q)
        r[col_row_[q]] -= alpha[k] * value * col_val_[q];
    }
  }
  PARASOL_PETSC(VecRestoreArray(z_, &z));
  PARASOL_PETSC(VecRestoreArray(r_, &r));
  return false;
}

void DistributedSketchSolver::block_step(int s) {
  const std::uint64_t purpose = sketch_step_purpose(config_, purpose_, steps_);
  ++steps_;
  const PetscInt local = hi_ - lo_;
  std::vector<PetscScalar*> S(s);
  for (int j = 0; j < s; ++j) PARASOL_PETSC(VecGetArray(S_[j], &S[j]));
  for (PetscInt i = 0; i < local; ++i) {
    const auto q = static_cast<std::uint64_t>(natural_local_[i]);
    if (config_.kind == "gaussian") {  // as the dense solver: normal q % 2 of the pair q / 2
      Random random(config_.seed, purpose, q / 2);
      S[0][i] = random.normal();
      if (q % 2 == 1) S[0][i] = random.normal();
    } else {
      Random random(config_.seed, purpose, q);
      for (int j = 0; j < s; ++j) S[j][i] = random.normal();
    }
  }
  for (int j = 0; j < s; ++j) PARASOL_PETSC(VecRestoreArray(S_[j], &S[j]));
  for (int j = 0; j < s; ++j) PARASOL_PETSC(MatMult(K_, S_[j], KS_[j]));
  // One reduction: (KS)^T KS and S^T r.
  std::vector<double> local_sums(static_cast<std::size_t>(s) * s + s, 0.0);
  {
    std::vector<const PetscScalar*> W(s), Sr(s);
    const PetscScalar* r;
    for (int j = 0; j < s; ++j) {
      PARASOL_PETSC(VecGetArrayRead(KS_[j], &W[j]));
      PARASOL_PETSC(VecGetArrayRead(S_[j], &Sr[j]));
    }
    PARASOL_PETSC(VecGetArrayRead(r_, &r));
    for (int a = 0; a < s; ++a) {
      for (int c = 0; c <= a; ++c) {
        double sum = 0;
        for (PetscInt i = 0; i < local; ++i) sum += W[a][i] * W[c][i];
        local_sums[a * s + c] = local_sums[c * s + a] = sum;
      }
      double sum = 0;
      for (PetscInt i = 0; i < local; ++i) sum += Sr[a][i] * r[i];
      local_sums[s * s + a] = sum;
    }
    PARASOL_PETSC(VecRestoreArrayRead(r_, &r));
    for (int j = 0; j < s; ++j) {
      PARASOL_PETSC(VecRestoreArrayRead(KS_[j], &W[j]));
      PARASOL_PETSC(VecRestoreArrayRead(S_[j], &Sr[j]));
    }
  }
  MPI_Allreduce(MPI_IN_PLACE, local_sums.data(), static_cast<int>(local_sums.size()), MPI_DOUBLE,
                MPI_SUM, comm_);
  const Eigen::Map<const Eigen::MatrixXd> gram(local_sums.data(), s, s);
  const Eigen::Map<const Eigen::VectorXd> Str(local_sums.data() + s * s, s);
  Eigen::VectorXd y;
  if (s == 1) {
    y = Eigen::VectorXd::Constant(1, gram(0, 0) > 0 ? Str[0] / gram(0, 0) : 0.0);
  } else {
    y = Eigen::MatrixXd(gram).completeOrthogonalDecomposition().solve(Eigen::VectorXd(Str));
  }
  std::vector<PetscScalar> minus_y(s);
  for (int j = 0; j < s; ++j) minus_y[j] = -y[j];
  PARASOL_PETSC(VecMAXPY(z_, s, minus_y.data(), KS_.data()));
  // r = K z - b afresh: costs one MatMult, as the incremental update K (KS y) would.
  recompute_residual();
}

}  // namespace parasol::alsketch::detail
