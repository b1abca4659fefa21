// Row-distributed tables and the transforms of parasol-data. Every transform works on this
// rank's rows and moves rows between ranks with one all-to-all when their order changes;
// random draws are keyed by global row (or patch) index, so the result does not depend on
// the number of ranks.
#include <parasol/data_tools.hpp>
#include <parasol/error.hpp>
#include <parasol/random.hpp>

#include <hdf5.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <numeric>
#include <set>

namespace parasol::data {
namespace {

int comm_rank(MPI_Comm comm) {
  int r;
  MPI_Comm_rank(comm, &r);
  return r;
}
int comm_size(MPI_Comm comm) {
  int s;
  MPI_Comm_size(comm, &s);
  return s;
}

long long sum_all(MPI_Comm comm, long long v) {
  long long total = 0;
  MPI_Allreduce(&v, &total, 1, MPI_LONG_LONG, MPI_SUM, comm);
  return total;
}

// Global index of the first local row: sum of the local counts of lower ranks.
long long offset_of(MPI_Comm comm, long long local_count) {
  long long before = 0;
  MPI_Exscan(&local_count, &before, 1, MPI_LONG_LONG, MPI_SUM, comm);
  return comm_rank(comm) == 0 ? 0 : before;
}

// Names of the datasets directly under the root group.
herr_t collect_name(hid_t, const char* name, const H5L_info_t*, void* out) {
  static_cast<std::vector<std::string>*>(out)->push_back(name);
  return 0;
}

std::vector<std::string> root_datasets(const h5::File& file) {
  std::vector<std::string> names, datasets;
  H5Literate(file.id(), H5_INDEX_NAME, H5_ITER_NATIVE, nullptr, collect_name, &names);
  for (const auto& name : names) {
    H5O_info_t info;
    if (H5Oget_info_by_name(file.id(), name.c_str(), &info, H5P_DEFAULT) >= 0 &&
        info.type == H5O_TYPE_DATASET)
      datasets.push_back(name);
  }
  return datasets;
}

bool is_integer(double v) { return std::isfinite(v) && v == std::floor(v); }

}  // namespace

const std::vector<std::string>& row_field_names() {
  static const std::vector<std::string> names = {"y", "y_true"};
  return names;
}

Rows load_rows(MPI_Comm comm, const std::string& path) {
  Dataset ds = load_dataset(comm, path);
  Rows out;
  out.rows = ds.rows;
  out.cols = ds.cols;
  out.X = std::move(ds.X);
  if (ds.y.size() == ds.rows.count() && ds.y.size() > 0) out.fields["y"] = ds.y;
  // A file with no /y still needs the field on ranks without rows: agree on presence.
  h5::File file(comm, path, h5::File::Mode::Read);
  if (file.exists("y") && !out.has("y")) out.fields["y"] = Eigen::VectorXd();
  std::vector<std::string> names;
  collective(comm, [&] { names = root_datasets(file); });
  for (const auto& name : names) {
    if (name == "X" || name == "y" || name == "X_indptr" || name == "X_indices" || name == "X_data")
      continue;
    const auto& fields = row_field_names();
    if (std::find(fields.begin(), fields.end(), name) != fields.end()) {
      std::vector<std::uint64_t> dims;
      collective(comm, [&] { dims = h5::shape(file, name); });
      check_all(comm, dims.size() == 1 && dims[0] == std::uint64_t(ds.rows.global),
                path + ": /" + name + " must be 1-D with one entry per row (" +
                    std::to_string(ds.rows.global) + ")");
      std::vector<double> local;
      collective(comm, [&] { local = h5::read_rows(file, name, ds.rows.begin, ds.rows.count()); });
      bool finite = std::all_of(local.begin(), local.end(), [](double v) { return std::isfinite(v); });
      check_all(comm, finite, path + ": non-finite value in /" + name);
      out.fields[name] = Eigen::Map<Eigen::VectorXd>(local.data(), local.size());
    } else {
      Replicated r;
      collective(comm, [&] { r.values = h5::read_doubles(file, name, &r.dims); });
      out.extras[name] = std::move(r);
    }
  }
  return out;
}

Rows rows_from_table(MPI_Comm comm, Table table) {
  check_all(comm, !table.sparse || comm_rank(comm) != 0, "rows_from_table: sparse tables are written with save_table");
  long long N = table.rows, D = table.cols, has_y = table.y.size() > 0 ? 1 : 0;
  MPI_Bcast(&N, 1, MPI_LONG_LONG, 0, comm);
  MPI_Bcast(&D, 1, MPI_LONG_LONG, 0, comm);
  MPI_Bcast(&has_y, 1, MPI_LONG_LONG, 0, comm);
  Rows out;
  out.cols = D;
  const bool root = comm_rank(comm) == 0;
  out.rows.global = N;
  out.rows.begin = root ? 0 : N;
  out.rows.end = N;
  out.X = root ? std::move(table.X) : RowMatrix(0, D);
  if (has_y) out.fields["y"] = root ? table.y : Eigen::VectorXd();
  return out;
}

void save_rows(MPI_Comm comm, const std::string& path, const Rows& rows,
               const std::string& description) {
  DatasetWriter writer(comm, path, description);
  writer.write_X(rows.X, rows.cols);
  for (const auto& [name, values] : rows.fields) writer.write_column(name, values);
  for (const auto& [name, r] : rows.extras) writer.write_replicated(name, r.values, r.dims);
  writer.commit();
}

void save_table(MPI_Comm comm, const std::string& path, Table table,
                const std::string& description) {
  // The whole table is rank 0's, so rank 0 writes it alone: a collective write would first
  // ship the data to the other ranks' I/O aggregators (twice as slow for Fashion-MNIST).
  // The other ranks wait for the verdict.
  collective(comm, [&] {
    if (comm_rank(comm) != 0) return;
    MPI_Comm self = MPI_COMM_SELF;
    if (!table.sparse) {
      save_rows(self, path, rows_from_table(self, std::move(table)), description);
      return;
    }
    DatasetWriter writer(self, path, description);
    writer.write_X_csr(table.csr, table.cols);
    if (table.y.size() > 0) writer.write_column("y", table.y);
    writer.commit();
  });
}

RowMatrix redistribute_rows(MPI_Comm comm, const RowMatrix& local,
                            const std::vector<std::int64_t>& dest, std::int64_t total) {
  const int size = comm_size(comm);
  long long cols_local = local.rows() > 0 ? local.cols() : -1, cols = 0;
  MPI_Allreduce(&cols_local, &cols, 1, MPI_LONG_LONG, MPI_MAX, comm);
  if (cols < 0) cols = local.cols();  // no rows anywhere
  const Partition mine = Partition::block(total, comm);

  // Pack each row as [destination, values...], grouped by the rank that owns the destination.
  const long long width = cols + 1;
  bool ok = static_cast<std::int64_t>(dest.size()) == local.rows() &&
            (local.rows() == 0 || local.cols() == cols);
  for (std::int64_t d : dest) ok = ok && d >= 0 && d < total;
  check_all(comm, ok, "redistribute_rows: destinations out of range or row widths differ");
  std::vector<int> send_rows(size, 0);
  std::vector<int> owner(dest.size());
  for (std::size_t i = 0; i < dest.size(); ++i) {
    owner[i] = Partition::owner(total, size, dest[i]);
    ++send_rows[owner[i]];
  }
  std::vector<int> recv_rows(size);
  MPI_Alltoall(send_rows.data(), 1, MPI_INT, recv_rows.data(), 1, MPI_INT, comm);
  std::vector<int> send_counts(size), send_displs(size), recv_counts(size), recv_displs(size);
  long long send_total = 0, recv_total = 0;
  for (int r = 0; r < size; ++r) {
    send_displs[r] = static_cast<int>(send_total);
    recv_displs[r] = static_cast<int>(recv_total);
    send_total += send_rows[r] * width;
    recv_total += recv_rows[r] * width;
    send_counts[r] = static_cast<int>(send_rows[r] * width);
    recv_counts[r] = static_cast<int>(recv_rows[r] * width);
  }
  check_all(comm, send_total < INT_MAX && recv_total < INT_MAX,
            "redistribute_rows: too much data for one rank (use more ranks)");
  std::vector<double> send(send_total), recv(recv_total);
  std::vector<int> cursor(send_displs);
  for (std::size_t i = 0; i < dest.size(); ++i) {
    double* p = send.data() + cursor[owner[i]];
    p[0] = static_cast<double>(dest[i]);
    for (long long c = 0; c < cols; ++c) p[1 + c] = local(static_cast<Eigen::Index>(i), c);
    cursor[owner[i]] += static_cast<int>(width);
  }
  MPI_Alltoallv(send.data(), send_counts.data(), send_displs.data(), MPI_DOUBLE, recv.data(),
                recv_counts.data(), recv_displs.data(), MPI_DOUBLE, comm);
  RowMatrix out(mine.count(), cols);
  std::vector<char> filled(mine.count(), 0);
  ok = recv_total / width == mine.count();
  for (long long k = 0; ok && k < recv_total / width; ++k) {
    const double* p = recv.data() + k * width;
    const std::int64_t row = static_cast<std::int64_t>(p[0]) - mine.begin;
    if (row < 0 || row >= mine.count() || filled[row]) {
      ok = false;
      break;
    }
    filled[row] = 1;
    for (long long c = 0; c < cols; ++c) out(row, c) = p[1 + c];
  }
  check_all(comm, ok, "redistribute_rows: destinations are not a one-to-one cover of the result");
  return out;
}

Rows move_rows(MPI_Comm comm, const Rows& in, const std::vector<std::int64_t>& dest,
               std::int64_t total) {
  // Move X and the per-row fields together as one wider matrix.
  const std::int64_t n = in.rows.count();
  const std::int64_t nf = static_cast<std::int64_t>(in.fields.size());
  RowMatrix packed(n, in.cols + nf);
  if (n > 0) {
    packed.leftCols(in.cols) = in.X;
    std::int64_t k = 0;
    for (const auto& [name, values] : in.fields) packed.col(in.cols + k++) = values;
  }
  RowMatrix moved = redistribute_rows(comm, packed, dest, total);
  Rows out;
  out.rows = Partition::block(total, comm);
  out.cols = in.cols;
  out.X = moved.leftCols(in.cols);
  std::int64_t k = 0;
  for (const auto& [name, values] : in.fields) out.fields[name] = moved.col(in.cols + k++);
  out.extras = in.extras;
  return out;
}

std::vector<std::int64_t> permutation(std::int64_t n, std::uint64_t seed, std::string_view purpose) {
  std::vector<std::int64_t> p(n);
  std::iota(p.begin(), p.end(), 0);
  Random random(seed, purpose, 0);
  for (std::int64_t i = n - 1; i > 0; --i) {  // Fisher-Yates
    std::int64_t j = static_cast<std::int64_t>(random.below(static_cast<std::uint64_t>(i + 1)));
    std::swap(p[i], p[j]);
  }
  return p;
}

std::vector<std::int64_t> split_sizes(std::int64_t n, const std::vector<double>& fractions) {
  double sum = 0;
  for (double f : fractions) {
    if (!(f >= 0)) throw Error("split fractions must be non-negative");
    sum += f;
  }
  if (fractions.empty() || std::abs(sum - 1.0) > 1e-9)
    throw Error("split fractions must add up to 1 (they add up to " + std::to_string(sum) + ")");
  std::vector<std::int64_t> sizes;
  double cumulative = 0;
  std::int64_t previous = 0;
  for (std::size_t k = 0; k < fractions.size(); ++k) {
    cumulative += fractions[k];
    std::int64_t boundary = k + 1 == fractions.size()
                                ? n
                                : std::min<std::int64_t>(n, std::llround(cumulative * double(n)));
    sizes.push_back(boundary - previous);
    previous = boundary;
  }
  return sizes;
}

std::vector<Rows> split(MPI_Comm comm, const Rows& in, const std::vector<double>& fractions,
                        std::uint64_t seed) {
  std::vector<std::int64_t> sizes;
  collective(comm, [&] { sizes = split_sizes(in.rows.global, fractions); });
  // position[i]: where input row i lands in the shuffled order.
  std::vector<std::int64_t> perm = permutation(in.rows.global, seed, "data.split");
  std::vector<std::int64_t> position(in.rows.global);
  for (std::int64_t k = 0; k < in.rows.global; ++k) position[perm[k]] = k;
  std::vector<Rows> parts;
  std::int64_t start = 0;
  for (std::int64_t size : sizes) {
    // Rows of this part that live here, moved to their place within the part.
    std::vector<std::int64_t> local_index, dest;
    for (std::int64_t r = 0; r < in.rows.count(); ++r) {
      std::int64_t pos = position[in.rows.begin + r];
      if (pos >= start && pos < start + size) {
        local_index.push_back(r);
        dest.push_back(pos - start);
      }
    }
    Rows selected;
    selected.rows = in.rows;
    selected.cols = in.cols;
    selected.X.resize(static_cast<Eigen::Index>(local_index.size()), in.cols);
    for (std::size_t i = 0; i < local_index.size(); ++i) selected.X.row(i) = in.X.row(local_index[i]);
    for (const auto& [name, values] : in.fields) {
      Eigen::VectorXd v(local_index.size());
      for (std::size_t i = 0; i < local_index.size(); ++i) v[i] = values[local_index[i]];
      selected.fields[name] = v;
    }
    selected.extras = in.extras;
    selected.rows.end = selected.rows.begin + static_cast<std::int64_t>(local_index.size());
    parts.push_back(move_rows(comm, selected, dest, size));
    start += size;
  }
  return parts;
}

Rows subset(MPI_Comm comm, const Rows& in, const SubsetOptions& options) {
  const std::size_t k = options.classes.size();
  check_all(comm, k == 0 || in.has("y"), "subset by class needs labels /y");
  check_all(comm, options.labels != LabelMode::PlusMinusOne || k == 2,
            "+1/-1 labels need exactly two classes, " + std::to_string(k) + " given");
  check_all(comm, options.labels != LabelMode::Index || k > 0, "index labels need -classes");
  std::set<double> distinct(options.classes.begin(), options.classes.end());
  check_all(comm, distinct.size() == k, "the classes of a subset must be distinct");
  LabelMode mode = options.labels;
  if (mode == LabelMode::Auto) mode = k == 2 ? LabelMode::PlusMinusOne : LabelMode::Original;

  // Which local rows stay, and their new labels.
  auto class_of = [&](double label) -> std::int64_t {
    for (std::size_t c = 0; c < k; ++c)
      if (label == options.classes[c]) return static_cast<std::int64_t>(c);
    return -1;
  };
  auto relabel = [&](double label) {
    std::int64_t c = class_of(label);
    if (mode == LabelMode::PlusMinusOne) return c == 0 ? 1.0 : -1.0;
    if (mode == LabelMode::Index) return static_cast<double>(c);
    return label;
  };
  std::vector<std::int64_t> keep;
  for (std::int64_t r = 0; r < in.rows.count(); ++r)
    if (k == 0 || class_of(in.fields.at("y")[r]) >= 0) keep.push_back(r);
  const long long before = offset_of(comm, static_cast<long long>(keep.size()));
  long long total = sum_all(comm, static_cast<long long>(keep.size()));
  if (options.max_rows >= 0) total = std::min<long long>(total, options.max_rows);
  check_all(comm, total > 0, "subset selects no rows (classes absent from /y?)");

  Rows selected;
  selected.cols = in.cols;
  selected.extras = in.extras;
  std::vector<std::int64_t> dest;
  std::vector<std::int64_t> rows;
  for (std::size_t i = 0; i < keep.size(); ++i) {
    if (before + static_cast<long long>(i) >= total) break;
    rows.push_back(keep[i]);
    dest.push_back(before + static_cast<std::int64_t>(i));
  }
  selected.rows = in.rows;
  selected.rows.end = in.rows.begin + static_cast<std::int64_t>(rows.size());
  selected.X.resize(static_cast<Eigen::Index>(rows.size()), in.cols);
  for (std::size_t i = 0; i < rows.size(); ++i) selected.X.row(i) = in.X.row(rows[i]);
  for (const auto& [name, values] : in.fields) {
    Eigen::VectorXd v(rows.size());
    const bool is_label = name == "y" || name == "y_true";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      // y_true of a corrupted set may hold a class outside the list: keep such values as they are.
      double value = values[rows[i]];
      v[i] = is_label && k > 0 && class_of(value) >= 0 ? relabel(value) : value;
    }
    selected.fields[name] = v;
  }
  return move_rows(comm, selected, dest, total);
}

Rows corrupt_labels(MPI_Comm comm, const Rows& in, double rate, std::uint64_t seed,
                    std::int64_t num_classes, std::int64_t* changed) {
  check_all(comm, in.has("y"), "label corruption needs labels /y");
  check_all(comm, rate >= 0 && rate <= 1, "corruption rate must be in [0, 1]");
  const Eigen::VectorXd& y = in.fields.at("y");
  // Binary +-1 labels are flipped; otherwise labels are classes 0..K-1.
  bool local_pm1 = (y.array().abs() == 1.0).all();
  int pm1 = local_pm1 ? 1 : 0, all_pm1 = 0;
  MPI_Allreduce(&pm1, &all_pm1, 1, MPI_INT, MPI_MIN, comm);
  if (!all_pm1) {
    check_all(comm, num_classes >= 2, "label corruption needs -num_classes >= 2");
    std::string bad;
    for (Eigen::Index r = 0; r < y.size() && bad.empty(); ++r)
      if (!is_integer(y[r]) || y[r] < 0 || y[r] >= double(num_classes))
        bad = "label " + std::to_string(y[r]) + " of row " + std::to_string(in.rows.begin + r) +
              " is not a class in [0, " + std::to_string(num_classes) + ")";
    check_all(comm, bad.empty(), bad);
  }
  Rows out = in;
  Eigen::VectorXd& noisy = out.fields["y"];
  if (!out.has("y_true")) out.fields["y_true"] = y;
  long long count = 0;
  for (Eigen::Index r = 0; r < y.size(); ++r) {
    Random random(seed, "data.corrupt", static_cast<std::uint64_t>(in.rows.begin + r));
    if (random.uniform() >= rate) continue;
    if (all_pm1) {
      noisy[r] = -y[r];
    } else {
      // Uniform over the other K-1 classes.
      std::int64_t c = static_cast<std::int64_t>(random.below(static_cast<std::uint64_t>(num_classes - 1)));
      if (c >= static_cast<std::int64_t>(y[r])) ++c;
      noisy[r] = static_cast<double>(c);
    }
    ++count;
  }
  long long total = sum_all(comm, count);
  if (changed) *changed = total;
  return out;
}

Rows standardize(MPI_Comm comm, const Rows& in, const Eigen::VectorXd* mean_in,
                 const Eigen::VectorXd* std_in) {
  const std::int64_t D = in.cols;
  Eigen::VectorXd mean, stddev;
  if (mean_in && std_in) {
    check_all(comm, mean_in->size() == D && std_in->size() == D,
              "standardization statistics have " + std::to_string(mean_in->size()) +
                  " entries, the data " + std::to_string(D) + " features");
    mean = *mean_in;
    stddev = *std_in;
  } else {
    const double N = static_cast<double>(in.rows.global);
    Eigen::VectorXd local_sum = in.rows.count() > 0 ? Eigen::VectorXd(in.X.colwise().sum().transpose())
                                                    : Eigen::VectorXd::Zero(D);
    mean.resize(D);
    MPI_Allreduce(local_sum.data(), mean.data(), static_cast<int>(D), MPI_DOUBLE, MPI_SUM, comm);
    mean /= N;
    // Second pass on centered values: no cancellation from sum of squares minus squared sum.
    Eigen::VectorXd local_sq = Eigen::VectorXd::Zero(D);
    if (in.rows.count() > 0)
      local_sq = (in.X.rowwise() - mean.transpose()).array().square().colwise().sum().transpose();
    stddev.resize(D);
    MPI_Allreduce(local_sq.data(), stddev.data(), static_cast<int>(D), MPI_DOUBLE, MPI_SUM, comm);
    stddev = (stddev / N).cwiseSqrt();
    // A feature is constant when its spread is round-off relative to its magnitude.
    for (std::int64_t j = 0; j < D; ++j)
      if (stddev[j] <= 1e-12 * std::max(1.0, std::abs(mean[j]))) stddev[j] = 0;
  }
  Rows out = in;
  Eigen::RowVectorXd scale(D);
  for (std::int64_t j = 0; j < D; ++j) scale[j] = stddev[j] > 0 ? 1.0 / stddev[j] : 0.0;
  if (out.rows.count() > 0)
    out.X = ((in.X.rowwise() - mean.transpose()).array().rowwise() * scale.array()).matrix();
  out.extras["mean"] = Replicated{std::vector<double>(mean.data(), mean.data() + D), {std::uint64_t(D)}};
  out.extras["std"] = Replicated{std::vector<double>(stddev.data(), stddev.data() + D), {std::uint64_t(D)}};
  return out;
}

Rows make_bars(MPI_Comm comm, const BarsOptions& o) {
  check_all(comm, o.H >= 2 && o.H % 2 == 0, "bars: -H must be even and >= 2 (H/2 bars each way)");
  check_all(comm, o.N >= 1, "bars: -N must be >= 1");
  check_all(comm, o.pi >= 0 && o.pi <= 1, "bars: -pi must be in [0, 1]");
  check_all(comm, o.sigma >= 0, "bars: -sigma must be >= 0");
  const std::int64_t R = o.H / 2, D = R * R;
  // W_true: rows 0..R-1 horizontal bars (image row r), rows R..2R-1 vertical (image column r).
  RowMatrix W = RowMatrix::Zero(o.H, D);
  Random signs(o.seed, "data.bars.signs", 0);
  for (std::int64_t h = 0; h < o.H; ++h) {
    const double sign = o.random_signs ? (signs.uniform() < 0.5 ? -1.0 : 1.0) : 1.0;
    for (std::int64_t k = 0; k < R; ++k) {
      const std::int64_t pixel = h < R ? h * R + k : k * R + (h - R);
      W(h, pixel) = sign * o.amplitude;
    }
  }
  Rows out;
  out.rows = Partition::block(o.N, comm);
  out.cols = D;
  out.X.resize(out.rows.count(), D);
  Eigen::RowVectorXd s(o.H);
  for (std::int64_t r = 0; r < out.rows.count(); ++r) {
    Random random(o.seed, "data.bars", static_cast<std::uint64_t>(out.rows.begin + r));
    for (std::int64_t h = 0; h < o.H; ++h) s[h] = random.uniform() < o.pi ? 1.0 : 0.0;
    out.X.row(r) = s * W;
    for (std::int64_t d = 0; d < D; ++d) out.X(r, d) += o.sigma * random.normal();
  }
  out.extras["W_true"] = Replicated{std::vector<double>(W.data(), W.data() + W.size()),
                                    {std::uint64_t(o.H), std::uint64_t(D)}};
  return out;
}

Rows cut_patches(MPI_Comm comm, const Rows& images, const PatchOptions& o) {
  const std::int64_t D = images.cols;
  const std::int64_t side = static_cast<std::int64_t>(std::llround(std::sqrt(double(D))));
  check_all(comm, side * side == D,
            "patches: rows must be square images, D = " + std::to_string(D) + " is not a square");
  check_all(comm, o.size >= 1 && o.size <= side,
            "patches: -size must be in [1, " + std::to_string(side) + "] for " +
                std::to_string(side) + " x " + std::to_string(side) + " images");
  check_all(comm, o.count >= 1, "patches: -count must be >= 1");
  const std::int64_t p = o.size, positions = side - p + 1;
  // Every rank walks all patches and cuts those whose image it holds.
  std::vector<std::int64_t> dest;
  std::vector<double> buffer;
  for (std::int64_t j = 0; j < o.count; ++j) {
    Random random(o.seed, "data.patches", static_cast<std::uint64_t>(j));
    const std::int64_t image = static_cast<std::int64_t>(random.below(images.rows.global));
    const std::int64_t top = static_cast<std::int64_t>(random.below(positions));
    const std::int64_t left = static_cast<std::int64_t>(random.below(positions));
    if (image < images.rows.begin || image >= images.rows.end) continue;
    const auto row = images.X.row(image - images.rows.begin);
    const std::size_t first = buffer.size();
    for (std::int64_t a = 0; a < p; ++a)
      for (std::int64_t b = 0; b < p; ++b) buffer.push_back(row[(top + a) * side + left + b]);
    if (o.center) {
      double mean = 0;
      for (std::size_t i = first; i < buffer.size(); ++i) mean += buffer[i];
      mean /= double(p * p);
      for (std::size_t i = first; i < buffer.size(); ++i) buffer[i] -= mean;
    }
    dest.push_back(j);
  }
  RowMatrix local = Eigen::Map<RowMatrix>(buffer.data(), static_cast<Eigen::Index>(dest.size()), p * p);
  Rows out;
  out.rows = Partition::block(o.count, comm);
  out.cols = p * p;
  out.X = redistribute_rows(comm, local, dest, o.count);
  return out;
}

}  // namespace parasol::data
