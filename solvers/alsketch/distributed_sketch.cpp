// Sketching on the distributed KKT matrix (sketch.hpp): no rank holds more of K than its own
// rows; vectors of length n + m are PETSc Vecs, plus O(n + m) index maps (natural <-> PETSc
// order, and for row-norm sampling the cumulative row norms) on every rank.
#include "sketch.hpp"

#include <parasol/error.hpp>
#include <parasol/random.hpp>

#include <algorithm>
#include <cmath>

namespace parasol::alsketch::detail {

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
  if (config_.momentum != 0) {
    PARASOL_PETSC(VecDuplicate(b, &z_prev_));
    PARASOL_PETSC(VecDuplicate(b, &r_prev_));
    PARASOL_PETSC(VecCopy(z_, z_prev_));
    PARASOL_PETSC(VecCopy(r_, r_prev_));
  }
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
    max_row_ = std::max(max_row_, static_cast<int>(ncols));
    PARASOL_PETSC(MatRestoreRow(K, i, &ncols, &idx, &val));
  }
  MPI_Allreduce(MPI_IN_PLACE, &max_row_, 1, MPI_INT, MPI_MAX, comm_);
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

  int size;
  MPI_Comm_size(comm_, &size);
  int count = static_cast<int>(local);
  std::vector<int> counts(size), displs(size, 0);
  MPI_Allgather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, comm_);
  for (int r = 1; r < size; ++r) displs[r] = displs[r - 1] + counts[r - 1];
  std::vector<PetscInt> natural_all(N_);
  MPI_Allgatherv(natural_local_.data(), count, MPIU_INT, natural_all.data(), counts.data(),
                 displs.data(), MPIU_INT, comm_);
  petsc_of_natural_.assign(N_, 0);
  for (PetscInt p = 0; p < N_; ++p) petsc_of_natural_[natural_all[p]] = p;
  owner_of_natural_.assign(N_, 0);
  for (int r = 0; r < size; ++r)
    for (int k = 0; k < counts[r]; ++k) owner_of_natural_[natural_all[displs[r] + k]] = r;
  if (config_.rownorm_weights) {
    std::vector<double> norms_all(N_);
    MPI_Allgatherv(row_norm2_.data(), count, MPI_DOUBLE, norms_all.data(), counts.data(),
                   displs.data(), MPI_DOUBLE, comm_);
    cumulative_.resize(N_);
    double total = 0;
    for (PetscInt i = 0; i < N_; ++i) cumulative_[i] = (total += norms_all[petsc_of_natural_[i]]);
  }
  buffer_.resize(3 + 2 * static_cast<std::size_t>(max_row_));
}

DistributedSketchSolver::~DistributedSketchSolver() {
  for (Vec* v : {&z_, &r_, &z_prev_, &r_prev_, &work_}) VecDestroy(v);
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
  // The norm is a reduction: for kaczmarz (a cheap step) it is checked every 16 steps.
  const std::int64_t check_every = config_.kind == "kaczmarz" ? 16 : 1;
  for (std::int64_t taken = 0;; ++taken) {
    if (taken % check_every == 0 && residual_norm() <= target) {
      if (since_recompute_ > 0) recompute_residual();  // confirm without drift
      if (residual_norm() <= target) return true;
    }
    if (taken >= budget) break;
    if (config_.kind == "kaczmarz") {
      kaczmarz_step();
      if (++since_recompute_ >= recompute_interval_) recompute_residual();
    } else {
      block_step(config_.block_size);
    }
  }
  recompute_residual();
  return residual_norm() <= target;
}

void DistributedSketchSolver::kaczmarz_step() {
  Random random(config_.seed, sketch_step_purpose(config_, purpose_, steps_), 0);
  ++steps_;
  PetscInt i;
  if (config_.rownorm_weights && cumulative_.back() > 0) {
    const double u = random.uniform() * cumulative_.back();
    i = std::upper_bound(cumulative_.begin(), cumulative_.end(), u) - cumulative_.begin();
    i = std::min<PetscInt>(i, N_ - 1);
  } else {
    i = static_cast<PetscInt>(random.below(static_cast<std::uint64_t>(N_)));
  }
  const PetscInt p = petsc_of_natural_[i];
  const int owner = owner_of_natural_[i];
  int rank;
  MPI_Comm_rank(comm_, &rank);
  PetscScalar* r;
  PARASOL_PETSC(VecGetArray(r_, &r));
  if (rank == owner) {  // r_p, |K_p|^2, count, then (column, value) pairs
    const PetscInt j = p - lo_;
    buffer_[0] = r[j];
    buffer_[1] = row_norm2_[j];
    buffer_[2] = static_cast<double>(row_ptr_[j + 1] - row_ptr_[j]);
    std::size_t at = 3;
    for (PetscInt k = row_ptr_[j]; k < row_ptr_[j + 1]; ++k) {
      buffer_[at++] = static_cast<double>(row_col_[k]);
      buffer_[at++] = row_val_[k];
    }
  }
  MPI_Bcast(buffer_.data(), static_cast<int>(buffer_.size()), MPI_DOUBLE, owner, comm_);
  const double norm2 = buffer_[1];
  const int count = static_cast<int>(buffer_[2]);
  if (!(norm2 > 0)) {
    PARASOL_PETSC(VecRestoreArray(r_, &r));
    return;
  }
  const double alpha = buffer_[0] / norm2;
  PetscScalar* z;
  PARASOL_PETSC(VecGetArray(z_, &z));
  if (config_.momentum != 0) {
    // Heavy ball: z+ = z - d + beta (z - z_prev) (and r alike): a dense O(local) update.
    const PetscInt local = hi_ - lo_;
    PetscScalar *zp, *rp;
    PARASOL_PETSC(VecGetArray(z_prev_, &zp));
    PARASOL_PETSC(VecGetArray(r_prev_, &rp));
    for (PetscInt j = 0; j < local; ++j) {
      const double zn = z[j] + config_.momentum * (z[j] - zp[j]);
      const double rn = r[j] + config_.momentum * (r[j] - rp[j]);
      zp[j] = z[j], rp[j] = r[j];
      z[j] = zn, r[j] = rn;
    }
    PARASOL_PETSC(VecRestoreArray(z_prev_, &zp));
    PARASOL_PETSC(VecRestoreArray(r_prev_, &rp));
  }
  for (int e = 0; e < count; ++e) {
    const PetscInt col = static_cast<PetscInt>(buffer_[3 + 2 * e]);
    const double value = buffer_[4 + 2 * e];  // K_{p,col} = K_{col,p}
    if (col >= lo_ && col < hi_) z[col - lo_] -= alpha * value;
    // r -= alpha K K_p: column `col` of K restricted to this rank's rows.
    for (PetscInt k = col_ptr_[col]; k < col_ptr_[col + 1]; ++k)
      r[col_row_[k]] -= alpha * value * col_val_[k];
  }
  PARASOL_PETSC(VecRestoreArray(z_, &z));
  PARASOL_PETSC(VecRestoreArray(r_, &r));
}

void DistributedSketchSolver::block_step(int s) {
  const std::uint64_t purpose = sketch_step_purpose(config_, purpose_, steps_);
  ++steps_;
  const PetscInt local = hi_ - lo_;
  std::vector<PetscScalar*> S(s);
  for (int j = 0; j < s; ++j) PARASOL_PETSC(VecGetArray(S_[j], &S[j]));
  for (PetscInt i = 0; i < local; ++i) {
    Random random(config_.seed, purpose, static_cast<std::uint64_t>(natural_local_[i]));
    for (int j = 0; j < s; ++j) S[j][i] = random.normal();
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
  if (config_.momentum != 0) {
    // z+ = z - KS y + beta (z - z_prev)
    if (!work_) PARASOL_PETSC(VecDuplicate(z_, &work_));
    PARASOL_PETSC(VecCopy(z_, work_));
    PARASOL_PETSC(VecAXPBY(z_, -config_.momentum, 1.0 + config_.momentum, z_prev_));
    std::swap(work_, z_prev_);
  }
  PARASOL_PETSC(VecMAXPY(z_, s, minus_y.data(), KS_.data()));
  // r = K z - b afresh: costs one MatMult, as the incremental update K (KS y) would.
  recompute_residual();
}

}  // namespace parasol::alsketch::detail
