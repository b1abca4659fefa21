// BSVRBv1 / BSVRBv2 (Hu, Qiu, Guo, Zhang, Yang, ICML 2023) for F(x) = (1/m) sum_i f_i(x,
// y_i*(x)). Iteration t samples I blocks (shared seed) and B samples per block; for each
// sampled block i, with the same samples at the new point (x_t, y_i) and the old point
// (x_{t-1}, y_i at t-1):
//   MSVR  s_i <- (1-a) s_i + (a+g) grad_y g_i(new) - g grad_y g_i(old)
//   v1:   H_i <- P[(1-a) H_i + (a+g) d2g_i(new) - g d2g_i(old)],
//         G_i = grad_x f_i - d2g_i/dxdy H_i^{-1} grad_y f_i
//   v2:   u_i <- MSVR of d2g_i/dy2 v_i - grad_y f_i,  G_i = grad_x f_i - d2g_i/dxdy v_i
//   STORM z <- (1-beta)(z - G_old) + G_new,  x <- x - eta z
//   v1: every block y_i <- y_i - tau s_i;  v2: sampled blocks only, lazily scaled by the
//   iterations d_i since their last update: y_i <- y_i - tau d_i s_i, v_i <- P(v_i - tau_v d_i u_i).
// Blocks are owned by ranks (Partition::block over m) and balanced per iteration; each
// block's worker sends its coupling rows and G values in one Allgatherv (fixed-size slots),
// and every rank adds them in block order: the iterates are bit-for-bit the same at any
// rank count. x and z are updated lazily on the touched rows only (lazy_storm.hpp).
#include <parasol/error.hpp>
#include <parasol/partition.hpp>
#include <parasol/random.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <numeric>
#include <stdexcept>
#include <string>

#include "common.hpp"
#include "lazy_storm.hpp"

namespace parasol::bilevel {
namespace {

// Seconds per phase of step() on this rank (-bsvrb_profile). With profiling on, a reduction
// before the exchange separates waiting for the busiest rank from the exchange itself and
// sums the busiest rank's CPU seconds of block work per iteration (the critical path of the
// block work on an idle host, estimated on a loaded one), and likewise the CPU seconds of
// everything else outside MPI calls (sampling, plans, the sums, the lazy update, the
// reports): the two add up to the critical path of an iteration without its messages.
struct PhaseTimes {
  double sample = 0, blocks = 0, wait = 0, exchange = 0, update = 0, report = 0;
  double blocks_cpu = 0;  // CPU seconds inside the per-block work (MPI waits excluded)
  double busiest_cpu = 0;  // sum over iterations of the largest blocks_cpu of any rank
  double rest_cpu = 0;     // CPU seconds outside block work and MPI calls
  double busiest_rest_cpu = 0;  // sum over iterations of the largest of those of any rank
  double rest_this_step = 0;    // (reduced with the next iteration's block work)
  std::int64_t steps = 0, blocks_done = 0;
};

// Adds the CPU seconds of a scope (when on) to *total.
class CpuTimer {
 public:
  CpuTimer(bool on, double* total) : total_(on ? total : nullptr), start_(on ? std::clock() : 0) {}
  ~CpuTimer() {
    if (total_) *total_ += double(std::clock() - start_) / CLOCKS_PER_SEC;
  }

 private:
  double* total_;
  std::clock_t start_;
};

class PhaseTimer {
 public:
  PhaseTimer(bool on, double* total) : on_(on), total_(total), start_(on ? MPI_Wtime() : 0) {}
  ~PhaseTimer() {
    if (on_) *total_ += MPI_Wtime() - start_;
  }

 private:
  bool on_;
  double* total_;
  double start_;
};

struct BlockState {
  Vector y, y_prev, s;
  Matrix H;              // v1
  Vector v, v_prev, u;   // v2
  std::int64_t last = 0; // iteration of the last update (0: never sampled)
};

class Bsvrb : public Solver {
 public:
  Bsvrb(const Options& options, std::shared_ptr<BlockProblem> problem, int version)
      : options_(options), problem_(std::move(problem)), version_(version) {
    comm_ = problem_->comm();
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    m_ = problem_->num_blocks();
    d_ = problem_->block_dim();
    collective_ = problem_->collective_blocks();
    owned_ = collective_ ? Partition{m_, 0, m_} : Partition::block(m_, comm_);
    tau_ = options_.bsvrb_tau > 0 ? options_.bsvrb_tau : (version_ == 1 ? 0.5 : 1.0);
    if (version_ == 1 && d_ > 2000)
      throw Error("bsvrb1 keeps a dense " + std::to_string(d_) + "x" + std::to_string(d_) +
                  " Hessian estimate per block; use -method bsvrb2 for a lower level this large");
    Vector y0;
    problem_->initial_point(&x_, &y0);
    storm_ = detail::LazyStorm(options_.bsvrb_beta, options_.bsvrb_lr_x);
    storm_.reset(x_);
    g_new_ = g_old_ = x_now_ = x_then_ = Vector::Zero(x_.size());
    marked_.assign(std::size_t(x_.size()), 0);
    blocks_.resize(owned_.count());
    for (auto& b : blocks_) {
      b.y = b.y_prev = y0;
      b.s = Vector::Zero(d_);
      if (version_ == 1) {
        b.H = Matrix::Identity(d_, d_);
      } else {
        b.v = b.v_prev = b.u = Vector::Zero(d_);
      }
    }
    have_solution_ = problem_->known_solution(&x_star_);
  }
  ~Bsvrb() override {
    if (!options_.bsvrb_profile || times_.steps == 0) return;
    int rank = 0;
    MPI_Comm_rank(comm_, &rank);
    const PhaseTimes& p = times_;
    // (the last iteration's rest was not reduced: this rank's own)
    const double busiest_rest = p.busiest_rest_cpu + p.rest_this_step;
    std::fprintf(stderr,
                 "bsvrb profile rank %d: %lld steps, %lld blocks; seconds: sample %.3f, blocks "
                 "%.3f (cpu %.3f, busiest rank's cpu %.3f), wait %.3f, exchange %.3f, update "
                 "%.3f, report %.3f; cpu outside blocks and MPI %.3f (busiest rank's %.3f); "
                 "critical path cpu %.3f\n",
                 rank, (long long)p.steps, (long long)p.blocks_done, p.sample, p.blocks,
                 p.blocks_cpu, p.busiest_cpu, p.wait, p.exchange, p.update, p.report,
                 p.rest_cpu + p.rest_this_step, busiest_rest, p.busiest_cpu + busiest_rest);
  }

  std::string method() const override { return version_ == 1 ? "bsvrb1" : "bsvrb2"; }
  std::vector<std::string> history_fields() const override {
    std::vector<std::string> fields = {"lower_objective", "stationarity"};
    if (have_solution_) fields.push_back("x_error");
    for (const auto& name : problem_->metric_names()) fields.push_back(name);
    return fields;
  }
  const Vector& x() const override {
    if (x_stale_) storm_.materialize(&x_);
    x_stale_ = false;
    return x_;
  }
  Vector y() const override {
    Vector out(blocks_.size() * d_);
    for (std::size_t k = 0; k < blocks_.size(); ++k) out.segment(k * d_, d_) = blocks_[k].y;
    return out;
  }

  StepReport step(std::int64_t t) override {
    const bool profile = options_.bsvrb_profile;
    ++times_.steps;
    std::vector<std::int64_t> sampled;
    {
      PhaseTimer timer(profile, &times_.sample);
      CpuTimer cpu(profile, &times_.rest_this_step);
      sampled = sample_blocks(t);
    }
    update_blocks(t, sampled);
    {
      PhaseTimer timer(profile, &times_.update);
      CpuTimer cpu(profile, &times_.rest_this_step);
      // STORM and the upper step on the touched rows only (every rank repeats it).
      storm_.step(t, touched_, g_new_, g_old_);
      x_stale_ = true;
      clear_g();
      update_lower(t, sampled);
    }
    PhaseTimer timer(profile, &times_.report);
    CpuTimer cpu(profile, &times_.rest_this_step);
    return report(t);
  }

  Vector hypergradient_at(const Vector& x, std::int64_t inner) override {
    x_ = x;
    x_stale_ = false;
    storm_.reset(x);  // x frozen (z = 0 keeps it there)
    std::vector<std::int64_t> all(m_);
    std::iota(all.begin(), all.end(), 0);
    for (std::int64_t k = 1; k <= inner; ++k) {
      update_blocks(k, all, true);
      clear_g();
      update_lower(k, all);
    }
    update_blocks(inner + 1, all, true);
    Vector G = g_new_;
    clear_g();
    return G;
  }

  void save_state(h5::File& file, const std::string& group) const override {
    // x for readers; the lazy form (values at each row's stamp) for an exact restart.
    detail::save_vector(file, group + "/x", x(), false);
    detail::save_vector(file, group + "/storm_x", storm_.x_stored(), false);
    detail::save_vector(file, group + "/storm_x_before", storm_.x_before_stored(), false);
    detail::save_vector(file, group + "/storm_z", storm_.z_stored(), false);
    detail::save_vector(file, group + "/storm_stamp", storm_.stamps(), false);
    detail::save_scalars(file, group + "/storm_scalars", storm_.scalars());
    save_blocks(file, group + "/y", d_, [](const BlockState& b) { return b.y; });
    save_blocks(file, group + "/y_prev", d_, [](const BlockState& b) { return b.y_prev; });
    save_blocks(file, group + "/s", d_, [](const BlockState& b) { return b.s; });
    save_blocks(file, group + "/last", 1,
                [](const BlockState& b) { return Vector::Constant(1, double(b.last)); });
    if (version_ == 1) {
      save_blocks(file, group + "/H", d_ * d_, [](const BlockState& b) { return flat(b.H); });
    } else {
      save_blocks(file, group + "/v", d_, [](const BlockState& b) { return b.v; });
      save_blocks(file, group + "/v_prev", d_, [](const BlockState& b) { return b.v_prev; });
      save_blocks(file, group + "/u", d_, [](const BlockState& b) { return b.u; });
    }
  }
  void load_state(const h5::File& file, const std::string& group) override {
    const std::int64_t n = storm_.size();
    storm_.restore(detail::load_vector(file, group + "/storm_x", n, false),
                   detail::load_vector(file, group + "/storm_x_before", n, false),
                   detail::load_vector(file, group + "/storm_z", n, false),
                   detail::load_vector(file, group + "/storm_stamp", n, false),
                   detail::load_scalars(file, group + "/storm_scalars", 2));
    x_stale_ = true;
    load_blocks(file, group + "/y", d_, [](BlockState& b, const Vector& v) { b.y = v; });
    load_blocks(file, group + "/y_prev", d_, [](BlockState& b, const Vector& v) { b.y_prev = v; });
    load_blocks(file, group + "/s", d_, [](BlockState& b, const Vector& v) { b.s = v; });
    load_blocks(file, group + "/last", 1,
                [](BlockState& b, const Vector& v) { b.last = std::int64_t(v[0]); });
    const std::int64_t d = d_;
    if (version_ == 1) {
      load_blocks(file, group + "/H", d * d, [d](BlockState& b, const Vector& v) {
        b.H = Eigen::Map<const Matrix>(v.data(), d, d);
      });
    } else {
      load_blocks(file, group + "/v", d_, [](BlockState& b, const Vector& v) { b.v = v; });
      load_blocks(file, group + "/v_prev", d_, [](BlockState& b, const Vector& v) { b.v_prev = v; });
      load_blocks(file, group + "/u", d_, [](BlockState& b, const Vector& v) { b.u = v; });
    }
  }

  void write_solution(h5::File& file) const override {
    detail::save_vector(file, "solution/x", x(), false);
    save_blocks(file, "solution/y", d_, [](const BlockState& b) { return b.y; });
  }

 private:
  static Vector flat(const Matrix& m) { return Eigen::Map<const Vector>(m.data(), m.size()); }

  // I distinct blocks from a shared stream (partial Fisher-Yates), sorted.
  std::vector<std::int64_t> sample_blocks(std::int64_t t) const {
    std::vector<std::int64_t> order(m_);
    std::iota(order.begin(), order.end(), 0);
    std::int64_t count = std::min<std::int64_t>(options_.bsvrb_blocks, m_);
    Random random(options_.seed, "bilevel.bsvrb.blocks", std::uint64_t(t));
    for (std::int64_t k = 0; k < count; ++k)
      std::swap(order[k], order[k + std::int64_t(random.below(std::uint64_t(m_ - k)))]);
    order.resize(count);
    std::sort(order.begin(), order.end());
    return order;
  }

  static constexpr std::uint64_t kLowerSample = purpose_id("bilevel.bsvrb.lower");
  static constexpr std::uint64_t kUpperSample = purpose_id("bilevel.bsvrb.upper");
  Sample block_sample(std::uint64_t purpose, std::int64_t t, std::int64_t i,
                      std::int64_t population) const {
    return draw_sample(options_.seed, purpose, std::uint64_t(t) * std::uint64_t(m_) + i,
                       population, options_.batch);
  }

  // H^{-1} r with H kept positive definite (eigenvalues below hmin raised to hmin).
  Vector solve_hessian(Matrix* H, const Vector& r) const {
    Eigen::LLT<Matrix> chol(*H);
    if (chol.info() == Eigen::Success && chol.matrixLLT().diagonal().minCoeff() >
                                             std::sqrt(options_.bsvrb_hmin))
      return chol.solve(r);
    Eigen::SelfAdjointEigenSolver<Matrix> eig(*H);
    Vector values = eig.eigenvalues().cwiseMax(options_.bsvrb_hmin);
    *H = eig.eigenvectors() * values.asDiagonal() * eig.eigenvectors().transpose();
    return eig.eigenvectors() * (eig.eigenvectors().transpose() * r).cwiseQuotient(values);
  }

  // A block this rank works on: its samples (from the shared seed) and the rows of x it
  // reads and whose G entries it produces (all rows when the problem does not say).
  struct Plan {
    Sample lower, upper;
    std::vector<std::int64_t> rows;
  };

  // The gathered message: one slot per sampled block, rank by rank (each rank's blocks in
  // block order). A slot is [n, the block's n coupling rows, G_new on them, G_old on them],
  // padded to the most coupling rows a block can have, so that every slot's place follows
  // from the worker assignment alone: no counts exchange, and no rank draws the minibatches
  // of blocks it does not work on.
  std::int64_t max_rows(bool full_data) const {
    const std::int64_t n = problem_->upper_dim();
    if (full_data) return n;
    // (the sample sizes as draw_sample makes them: the population when the batch covers it)
    const auto drawn = [this](std::int64_t population) {
      return options_.batch <= 0 || options_.batch >= population ? population : options_.batch;
    };
    const std::int64_t bound = problem_->max_coupling_rows(drawn(problem_->lower_samples()),
                                                           drawn(problem_->upper_samples()));
    return std::clamp<std::int64_t>(bound, 0, n);
  }
  static std::int64_t slot_size(std::int64_t max_rows) { return 1 + 3 * max_rows; }

  // Who works on each sampled block this iteration. Normally its home rank (the owner of its
  // state); a rank with more sampled blocks than its share hands the excess, with the state,
  // to ranks with fewer. Shares are count / P, the count mod P larger ones going to the ranks
  // with the most sampled home blocks (fewest moves). The assignment depends on the sampled
  // set only, and a block's arithmetic is the same wherever it runs, so the iterates do not
  // depend on where a block is worked on (nor on the rank count).
  std::vector<int> assign_workers(const std::vector<std::int64_t>& sampled) const {
    const std::int64_t count = std::int64_t(sampled.size());
    std::vector<int> worker(count, rank_);
    if (collective_ || size_ == 1) return worker;
    std::vector<std::int64_t> home_count(size_, 0), quota(size_, count / size_), load(size_, 0);
    for (std::int64_t i : sampled) ++home_count[home(i)];
    std::vector<int> busiest(size_);
    std::iota(busiest.begin(), busiest.end(), 0);
    std::stable_sort(busiest.begin(), busiest.end(),
                     [&](int p, int q) { return home_count[p] > home_count[q]; });
    for (std::int64_t j = 0; j < count % size_; ++j) ++quota[busiest[j]];
    std::vector<std::int64_t> excess;
    for (std::int64_t k = 0; k < count; ++k) {
      const int h = home(sampled[k]);
      if (load[h] < quota[h]) {
        worker[k] = h;
        ++load[h];
      } else {
        excess.push_back(k);
      }
    }
    int r = 0;
    for (std::int64_t k : excess) {
      while (load[r] >= quota[r]) ++r;
      worker[k] = r;
      ++load[r];
    }
    return worker;
  }

  int home(std::int64_t block) const {
    return collective_ ? rank_ : Partition::owner(m_, size_, block);
  }

  // What travels when a block is worked on away from its home. Out: what its work reads,
  // with y_prev (and v_prev) only when they differ from y (and v), i.e. v1 always (its y
  // moves every iteration), v2 only for a block updated in the previous iteration. Back:
  // what the work changes (last, s, and H or u). v2 on a8a (d = 124): 2 + 4d doubles out,
  // under Open MPI's 4 KB shared-memory eager limit, and 1 + 2d back, instead of 1 + 6d
  // each way.
  std::int64_t out_size() const { return 2 + 3 * d_ + (version_ == 1 ? d_ * d_ : 3 * d_); }
  std::int64_t back_size() const { return 1 + d_ + (version_ == 1 ? d_ * d_ : d_); }
  static void put(const Eigen::Ref<const Matrix>& v, double** out) {
    *out = std::copy(v.data(), v.data() + v.size(), *out);
  }
  template <class V>
  static void get(V* v, std::int64_t rows, std::int64_t cols, const double** in) {
    v->resize(rows, cols);
    std::copy(*in, *in + rows * cols, v->data());
    *in += rows * cols;
  }
  // Returns the number of doubles written.
  int pack_out(const BlockState& b, std::int64_t t, double* out) const {
    double* start = out;
    const bool with_prev = version_ == 1 || b.last == t - 1;
    *out++ = double(b.last);
    *out++ = with_prev ? 1.0 : 0.0;
    put(b.y, &out), put(b.s, &out);
    if (version_ == 1) {
      put(b.H, &out);
      put(b.y_prev, &out);
    } else {
      put(b.v, &out), put(b.u, &out);
      if (with_prev) put(b.y_prev, &out), put(b.v_prev, &out);
    }
    return int(out - start);
  }
  void unpack_out(const double* in, BlockState* b) const {
    b->last = std::int64_t(*in++);
    const bool with_prev = *in++ != 0.0;
    get(&b->y, d_, 1, &in), get(&b->s, d_, 1, &in);
    if (version_ == 1) {
      get(&b->H, d_, d_, &in);
      get(&b->y_prev, d_, 1, &in);
    } else {
      get(&b->v, d_, 1, &in), get(&b->u, d_, 1, &in);
      if (with_prev) {
        get(&b->y_prev, d_, 1, &in), get(&b->v_prev, d_, 1, &in);
      } else {
        b->y_prev = b->y;
        b->v_prev = b->v;
      }
    }
  }
  void pack_back(const BlockState& b, double* out) const {
    *out++ = double(b.last);
    put(b.s, &out);
    if (version_ == 1) {
      put(b.H, &out);
    } else {
      put(b.u, &out);
    }
  }
  void unpack_back(const double* in, BlockState* b) const {
    b->last = std::int64_t(*in++);
    get(&b->s, d_, 1, &in);
    if (version_ == 1) {
      get(&b->H, d_, d_, &in);
    } else {
      get(&b->u, d_, 1, &in);
    }
  }

  // MSVR updates of the sampled blocks and the averaged G at the new and old points (into
  // g_new_ and g_old_, nonzero only at touched_).
  void update_blocks(std::int64_t t, const std::vector<std::int64_t>& sampled,
                     bool full_data = false) {
    const std::int64_t count = std::int64_t(sampled.size());
    const bool profile = options_.bsvrb_profile && !full_data;
    double blocks_start = profile ? MPI_Wtime() : 0;
    std::clock_t plan_start = profile ? std::clock() : 0;
    double work_cpu = 0;  // CPU seconds inside work_block (MPI waits excluded)
    const std::vector<int> worker = assign_workers(sampled);
    const std::int64_t out_max = out_size(), back = back_size();
    // Blocks that change hands: states out to their workers (guests there), back afterwards.
    // (all posted first, so that they travel while every rank makes its plans and works on
    // its own blocks)
    std::vector<std::int64_t> guests, lent;  // positions k in sampled
    for (std::int64_t k = 0; k < count; ++k) {
      const int h = home(sampled[k]);
      if (worker[k] == rank_ && h != rank_) guests.push_back(k);
      if (h == rank_ && worker[k] != rank_) lent.push_back(k);
    }
    guest_states_.resize(guests.size() * out_max);  // (kept: not zeroed every iteration)
    lent_states_.resize(lent.size() * out_max);
    returned_states_.resize(lent.size() * back);
    std::vector<MPI_Request> guests_in(guests.size()), lent_out(lent.size()),
        lent_back(lent.size()), guests_back;
    for (std::size_t j = 0; j < guests.size(); ++j)
      MPI_Irecv(guest_states_.data() + j * out_max, int(out_max), MPI_DOUBLE,
                home(sampled[guests[j]]), kStateOut, comm_, &guests_in[j]);
    for (std::size_t j = 0; j < lent.size(); ++j) {
      const int size = pack_out(blocks_[sampled[lent[j]] - owned_.begin], t,
                                lent_states_.data() + j * out_max);
      MPI_Isend(lent_states_.data() + j * out_max, size, MPI_DOUBLE, worker[lent[j]], kStateOut,
                comm_, &lent_out[j]);
      MPI_Irecv(returned_states_.data() + j * back, int(back), MPI_DOUBLE, worker[lent[j]],
                kStateBack, comm_, &lent_back[j]);
    }
    // The gathered message (max_rows): each rank fills the slots of the blocks it works on.
    const bool gather = !collective_ && size_ > 1;
    const std::int64_t row_cap = max_rows(full_data), slot = slot_size(row_cap);
    std::vector<std::int64_t> slot_of(std::size_t(count), 0);  // where block k's slot starts
    std::vector<int> counts(gather ? size_ : 1, 0), displs(counts.size(), 0);
    for (std::int64_t k = 0; k < count; ++k) counts[gather ? worker[k] : 0] += int(slot);
    for (std::size_t r = 1; r < counts.size(); ++r) displs[r] = displs[r - 1] + counts[r - 1];
    {
      std::vector<int> next(displs);
      for (std::int64_t k = 0; k < count; ++k) {
        slot_of[k] = next[gather ? worker[k] : 0];
        next[gather ? worker[k] : 0] += int(slot);
      }
    }
    values_.resize(std::size_t(displs.back() + counts.back()));
    // The samples and coupling rows of this rank's blocks, and x after iterations t-1 and t-2
    // on those rows.
    std::vector<Plan> plans(static_cast<std::size_t>(count));  // (this rank's blocks only)
    storm_.prepare(t);
    for (std::int64_t k = 0; k < count; ++k) {
      if (worker[k] != rank_) continue;
      Plan& plan = plans[std::size_t(k)];
      const std::int64_t i = sampled[std::size_t(k)];
      if (!full_data) {
        plan.lower = block_sample(kLowerSample, t, i, problem_->lower_samples());
        plan.upper = block_sample(kUpperSample, t, i, problem_->upper_samples());
      }
      if (!problem_->coupling_rows(i, plan.lower, plan.upper, &plan.rows)) {
        plan.rows.resize(std::size_t(x_now_.size()));
        std::iota(plan.rows.begin(), plan.rows.end(), 0);
      }
      // (a broken problem, not bad input: abort rather than hang the other ranks)
      if (std::int64_t(plan.rows.size()) > row_cap)
        throw std::logic_error("bilevel problem " + problem_->name() + ": block " +
                               std::to_string(i) + " has more coupling rows than " +
                               "max_coupling_rows() allows");
      for (std::int64_t r : plan.rows) {
        x_now_[r] = storm_.x_at(r, t - 1);
        x_then_[r] = storm_.x_at(r, t - 2);
      }
    }
    if (profile) times_.rest_this_step += double(std::clock() - plan_start) / CLOCKS_PER_SEC;
    // This rank's own blocks first, then the guests: a lent state travels while both ranks
    // work, instead of both waiting for it before any work. A state above MPI's eager limit
    // (v1, v2 with a large d) goes by rendezvous; with a single-copy transport (Open MPI's
    // vader uses CMA) the receiver completes it alone, else the test between the lender's
    // blocks moves it along.
    for (std::int64_t k = 0; k < count; ++k) {
      if (worker[k] != rank_ || home(sampled[k]) != rank_) continue;
      work_block(t, sampled[k], plans[k], &blocks_[sampled[k] - owned_.begin],
                 values_.data() + slot_of[k], profile ? &work_cpu : nullptr);
      if (!lent.empty()) {
        int done = 0;
        MPI_Testall(int(lent_out.size()), lent_out.data(), &done, MPI_STATUSES_IGNORE);
      }
    }
    MPI_Waitall(int(guests_in.size()), guests_in.data(), MPI_STATUSES_IGNORE);
    std::vector<BlockState> guest_blocks(guests.size());
    for (std::size_t j = 0; j < guests.size(); ++j) {
      unpack_out(guest_states_.data() + j * out_max, &guest_blocks[j]);
      const std::int64_t k = guests[j];
      work_block(t, sampled[k], plans[k], &guest_blocks[j], values_.data() + slot_of[k],
                 profile ? &work_cpu : nullptr);
      pack_back(guest_blocks[j], guest_states_.data() + j * out_max);
      guests_back.emplace_back();
      MPI_Isend(guest_states_.data() + j * out_max, int(back), MPI_DOUBLE,
                home(sampled[guests[j]]), kStateBack, comm_, &guests_back.back());
    }
    if (profile) {
      times_.blocks_done += std::int64_t(guests.size());
      for (std::int64_t k = 0; k < count; ++k)
        times_.blocks_done += worker[k] == rank_ && home(sampled[k]) == rank_;
      times_.blocks += MPI_Wtime() - blocks_start;
      // this iteration's block work, the previous iteration's rest (and this one's so far)
      double cpu[2] = {work_cpu, times_.rest_this_step};
      times_.blocks_cpu += work_cpu;
      times_.rest_cpu += times_.rest_this_step;
      times_.rest_this_step = 0;
      PhaseTimer timer(true, &times_.wait);
      MPI_Allreduce(MPI_IN_PLACE, cpu, 2, MPI_DOUBLE, MPI_MAX, comm_);
      times_.busiest_cpu += cpu[0];
      times_.busiest_rest_cpu += cpu[1];
    }
    PhaseTimer timer(profile, &times_.exchange);
    // Each block has one worker (collective blocks: already everywhere); values are copied.
    if (gather)
      MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, values_.data(), counts.data(),
                     displs.data(), MPI_DOUBLE, comm_);
    MPI_Waitall(int(lent_out.size()), lent_out.data(), MPI_STATUSES_IGNORE);
    MPI_Waitall(int(guests_back.size()), guests_back.data(), MPI_STATUSES_IGNORE);
    MPI_Waitall(int(lent_back.size()), lent_back.data(), MPI_STATUSES_IGNORE);
    for (std::size_t j = 0; j < lent.size(); ++j)
      unpack_back(returned_states_.data() + j * back, &blocks_[sampled[lent[j]] - owned_.begin]);
    // Sum the blocks in block order, whoever computed them: the same sums at any rank count.
    CpuTimer sum_cpu(profile, &times_.rest_this_step);
    for (std::int64_t k = 0; k < count; ++k) {
      const double* block = values_.data() + slot_of[k];
      const std::int64_t n = std::int64_t(block[0]);
      const double *rows = block + 1, *g_new = rows + n, *g_old = g_new + n;
      for (std::int64_t j = 0; j < n; ++j) {
        const std::int64_t r = std::int64_t(rows[j]);
        g_new_[r] += g_new[j];
        g_old_[r] += g_old[j];
        if (!marked_[std::size_t(r)]) {
          marked_[std::size_t(r)] = 1;
          touched_.push_back(Eigen::Index(r));
        }
      }
    }
    const double scale = double(std::max<std::int64_t>(count, 1));
    for (Eigen::Index r : touched_) {
      g_new_[r] /= scale;
      g_old_[r] /= scale;
    }
  }

  // Back to all zeros (only the touched entries can be nonzero).
  void clear_g() {
    for (Eigen::Index r : touched_) {
      g_new_[r] = g_old_[r] = 0.0;
      marked_[std::size_t(r)] = 0;
    }
    touched_.clear();
  }

  // The MSVR updates of block i with state b on the samples of `plan`; writes its slot of the
  // gathered message to `out`: |rows|, the rows, G_new and G_old on them (max_rows).
  void work_block(std::int64_t t, std::int64_t i, const Plan& plan, BlockState* state,
                  double* out, double* cpu_seconds = nullptr) {
    const std::clock_t cpu_start = cpu_seconds ? std::clock() : 0;
    struct AddCpu {
      double* total;
      std::clock_t start;
      ~AddCpu() {
        if (total) *total += double(std::clock() - start) / CLOCKS_PER_SEC;
      }
    } add_cpu{cpu_seconds, cpu_start};
    BlockState& b = *state;
    if (version_ == 2 && b.last != t - 1) {
      // not updated in iteration t-1: its values then are its values now
      b.y_prev = b.y;
      b.v_prev = b.v;
    }
    const double a = options_.bsvrb_alpha, g = options_.bsvrb_gamma;
    const Sample& lower = plan.lower;
    const Sample& upper = plan.upper;
    const Vector& x = x_now_;        // x after t-1, on the rows this block reads
    const Vector& x_prev = x_then_;  // x after t-2
    const bool first = b.last == 0;  // never sampled: start the estimators here
    Vector gy_new, gy_old;
    problem_->lower_block(i, x, b.y, nullptr, &gy_new, lower);
    if (first || b.s.size() == 0) {
      b.s = gy_new;
    } else {
      problem_->lower_block(i, x_prev, b.y_prev, nullptr, &gy_old, lower);
      b.s = (1 - a) * b.s + (a + g) * gy_new - g * gy_old;
    }
    Vector fx_new, fy_new, fx_old, fy_old, hxy, hxy_old;
    // (grad_x and hxy only on the coupling rows: no vector of length dim x per block)
    const std::vector<std::int64_t>& rows = plan.rows;
    problem_->upper_block_rows(i, x, b.y, rows, &fx_new, &fy_new, upper);
    problem_->upper_block_rows(i, x_prev, b.y_prev, rows, &fx_old, &fy_old, upper);
    if (version_ == 1) {
      // G_old with the old Hessian estimate, at the old point. Except at a block's first
      // sampling, b.H is the estimate solve_hessian made positive definite (eigenvalues about
      // hmin or more) when the block was last sampled, so a Cholesky solve suffices: one
      // eigendecomposition per block saved, and a more even cost per block.
      Matrix hess_new = problem_->lower_block_hessian(i, x, b.y, lower);
      if (first) b.H = hess_new;
      Vector solved_old;
      Eigen::LLT<Matrix> chol;
      if (!first) chol.compute(b.H);
      if (!first && chol.info() == Eigen::Success) {
        solved_old = chol.solve(fy_old);
      } else {
        Matrix H_old = b.H;
        solved_old = solve_hessian(&H_old, fy_old);
      }
      problem_->lower_block_hvp_rows(i, x_prev, b.y_prev, solved_old, rows, nullptr, &hxy_old,
                                     lower);
      if (!first) {
        Matrix hess_old = problem_->lower_block_hessian(i, x_prev, b.y_prev, lower);
        b.H = (1 - a) * b.H + (a + g) * hess_new - g * hess_old;
      }
      b.H = 0.5 * (b.H + b.H.transpose());
      problem_->lower_block_hvp_rows(i, x, b.y, solve_hessian(&b.H, fy_new), rows, nullptr, &hxy,
                                     lower);
    } else {
      Vector hyy_new, hyy_old;
      problem_->lower_block_hvp_rows(i, x, b.y, b.v, rows, &hyy_new, &hxy, lower);
      problem_->lower_block_hvp_rows(i, x_prev, b.y_prev, b.v_prev, rows, &hyy_old, &hxy_old,
                                     lower);
      Vector gamma_new = hyy_new - fy_new, gamma_old = hyy_old - fy_old;
      b.u = first ? gamma_new : Vector((1 - a) * b.u + (a + g) * gamma_new - g * gamma_old);
    }
    if (b.last == 0) b.last = -1;  // sampled once: MSVR corrections apply from now on
    const Eigen::Index n = Eigen::Index(rows.size());
    out[0] = double(n);
    double *out_rows = out + 1, *g_new = out_rows + n, *g_old = g_new + n;
    for (Eigen::Index j = 0; j < n; ++j) {
      out_rows[j] = double(rows[j]);
      g_new[j] = fx_new[j] - hxy[j];
      g_old[j] = fx_old[j] - hxy_old[j];
    }
  }

  void update_lower(std::int64_t t, const std::vector<std::int64_t>& sampled) {
    if (version_ == 1) {
      for (auto& b : blocks_) {
        b.y_prev = b.y;
        b.y -= tau_ * b.s;
      }
      for (std::int64_t i : sampled)
        if (i >= owned_.begin && i < owned_.end) blocks_[i - owned_.begin].last = t;
      return;
    }
    for (std::int64_t i : sampled) {
      if (i < owned_.begin || i >= owned_.end) continue;
      BlockState& b = blocks_[i - owned_.begin];
      // (v2: y_prev, v_prev are only kept for the blocks updated last; work_block refreshes
      // the others, so no O(m d) copy per iteration)
      b.y_prev = b.y;
      b.v_prev = b.v;
      double lag = b.last > 0 ? double(t - b.last) : double(t);
      b.y -= tau_ * lag * b.s;
      b.v -= options_.bsvrb_tau_v * lag * b.u;
      double norm = b.v.norm();
      if (norm > options_.bsvrb_vbound) b.v *= options_.bsvrb_vbound / norm;
      b.last = t;
    }
  }

  StepReport report(std::int64_t t) {
    const bool scheduled = t == 1 || options_.eval_every <= 1 || t % options_.eval_every == 0;
    // (also the first report after a restart: no evaluation to repeat yet)
    const bool evaluate = scheduled || last_.fields.empty();
    if (evaluate) {
      // the running ||z|| made exact again (O(n), like the evaluation), on the schedule only
      // (so that a restarted run reports the same values as an uninterrupted one)
      if (scheduled) storm_.resync_norm();
      x();                   // materialized
      double upper = 0.0, lower = 0.0;
      std::vector<Vector> ys;
      std::vector<double> metrics;
      for (const BlockState& b : blocks_) ys.push_back(b.y);
      problem_->evaluate(x_, owned_.begin, ys, &upper, &lower, &metrics);
      last_.objective = upper / double(m_);
      last_.fields = {lower / double(m_), 0.0};
      if (have_solution_) last_.fields.push_back((x_ - x_star_).norm() / x_star_.norm());
      for (double value : metrics) last_.fields.push_back(value);
    }
    StepReport report = last_;
    report.fields[1] = storm_.z_norm();
    if (have_solution_) report.fields[2] = (x() - x_star_).norm() / x_star_.norm();
    if (!storm_.finite() || (evaluate && !x_.allFinite()) || !std::isfinite(report.objective)) {
      report.status = Status::Diverged;
      report.message = "the iterates became non-finite (step sizes too large?)";
    } else if (options_.tol > 0 && report.fields[1] < options_.tol &&
               t > (m_ + options_.bsvrb_blocks - 1) / options_.bsvrb_blocks + 1) {
      // (not before every block can have been sampled: v2 starts from v = 0, G = 0)
      report.status = Status::Converged;
      report.message = "STORM hypergradient estimate below -tol";
    }
    return report;
  }

  template <class Get>
  void save_blocks(h5::File& file, const std::string& path, std::int64_t cols, Get get) const {
    RowMatrix data(std::int64_t(blocks_.size()), cols);
    for (std::size_t k = 0; k < blocks_.size(); ++k) data.row(k) = get(blocks_[k]).transpose();
    if (collective_) {
      h5::write(file, path, std::vector<double>(data.data(), data.data() + data.size()),
                {std::uint64_t(data.rows()), std::uint64_t(cols)});
    } else {
      h5::write_rows(file, path, data.data(), std::uint64_t(data.rows()), std::uint64_t(cols));
    }
  }

  template <class Set>
  void load_blocks(const h5::File& file, const std::string& path, std::int64_t cols, Set set) {
    std::vector<double> data =
        collective_ ? h5::read_doubles(file, path)
                    : h5::read_rows(file, path, std::uint64_t(owned_.begin),
                                    std::uint64_t(owned_.count()));
    check_all(comm_, std::int64_t(data.size()) == owned_.count() * cols,
              "checkpoint " + file.path() + ": " + path + " does not match this problem");
    for (std::int64_t k = 0; k < owned_.count(); ++k)
      set(blocks_[k], Eigen::Map<const Vector>(data.data() + k * cols, cols));
  }

  Options options_;
  std::shared_ptr<BlockProblem> problem_;
  int version_;
  static constexpr int kStateOut = 0x5b01, kStateBack = 0x5b02;  // tags of block states
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  std::int64_t m_ = 0, d_ = 0;
  bool collective_ = false;
  Partition owned_;
  double tau_ = 1.0;
  mutable Vector x_;             // x after the last iteration (materialized on demand)
  mutable bool x_stale_ = false;
  detail::LazyStorm storm_;      // x and the STORM estimate z, lazily per row
  Vector x_now_, x_then_;        // x after t-1 and t-2 on the rows this rank's blocks read
  std::vector<BlockState> blocks_;
  bool have_solution_ = false;
  Vector x_star_;
  StepReport last_;
  PhaseTimes times_;
  Vector g_new_, g_old_;               // the averaged G at the new and old points
  std::vector<double> values_;         // the gathered message (max_rows; kept, not reallocated)
  std::vector<double> guest_states_, lent_states_, returned_states_;  // block states moved
  std::vector<Eigen::Index> touched_;  // where g_new_, g_old_ may be nonzero (unique)
  std::vector<char> marked_;           // marked_[r]: r is in touched_
};

}  // namespace

std::unique_ptr<Solver> make_bsvrb(const Options& options, std::shared_ptr<BlockProblem> problem,
                                   int version) {
  return std::make_unique<Bsvrb>(options, std::move(problem), version);
}

}  // namespace parasol::bilevel
