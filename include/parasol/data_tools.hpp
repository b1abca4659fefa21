#pragma once
// The library behind parasol-data (docs/input-format.md): readers for foreign formats
// (IDX, LIBSVM, CSV), a writer for parasol's HDF5 input layout, and the transforms that make
// derived data sets (split, subset, label corruption, standardization, synthetic bars,
// image patches).
//
// Two kinds of functions:
//  - readers of foreign formats are local (not collective): one process parses the whole
//    file into a Table and throws Error naming the file on any defect;
//  - everything on Rows (row-distributed tables) is collective over the communicator, and
//    its results do not depend on the number of ranks (random draws are keyed by global row).
#include <Eigen/Dense>
#include <mpi.h>
#include <parasol/dataset.hpp>
#include <parasol/h5.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace parasol::data {

// ---------------------------------------------------------------------------------------
// Foreign formats (local).

// The whole file, gunzipped when it is gzip-compressed (detected from its magic bytes).
// A truncated or corrupt gzip stream is an Error naming the file.
std::vector<unsigned char> read_file_bytes(const std::string& path);

// An IDX array (the MNIST format): magic 0x00 0x00 <type> <ndims>, ndims big-endian uint32
// dimensions, then the values big-endian in row-major order.
struct IdxArray {
  unsigned char type = 0;             // 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64
  std::vector<std::uint64_t> dims;
  std::vector<double> values;         // row-major
};
// `name` is used in messages. Rejects a wrong magic number, an unknown type, zero or
// overflowing dimensions, a length that does not match the dimensions, non-finite values.
IdxArray parse_idx(const unsigned char* bytes, std::size_t size, const std::string& name);
IdxArray read_idx(const std::string& path);
// True when the bytes start like an IDX file (used by format detection).
bool looks_like_idx(const std::vector<unsigned char>& bytes);

// A whole table held by one process: what a reader produces.
struct Table {
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  bool sparse = false;
  RowMatrix X;        // dense storage (empty when sparse)
  CsrRows csr;        // sparse storage, indptr[0] == 0 (empty when dense)
  Eigen::VectorXd y;  // labels; size 0 when there are none
  bool byte_images = false;  // values came from unsigned-byte IDX (0..255)
};

// IDX images (first dimension N, the rest flattened to D) with optional IDX labels.
Table read_idx_table(const std::string& images, const std::string& labels);

struct LibsvmOptions {
  std::int64_t features = 0;  // D; 0: the largest index in the file
  bool zero_based = false;    // indices start at 0 instead of 1
  bool sparse = false;        // keep CSR instead of densifying
};
// "label index:value index:value ... [# comment]", indices strictly increasing per line.
Table read_libsvm(const std::string& path, const LibsvmOptions& options);

struct CsvOptions {
  std::int64_t label_column = -1;  // 0-based column holding the label; -1: none
  char delimiter = ',';
};
// Numeric CSV; a first line with a non-numeric field is taken as a header and skipped.
// Every row must have the same number of fields, every field a finite number.
Table read_csv(const std::string& path, const CsvOptions& options);

// Labels from an IDX file (1-D) or from text, one number per line.
Eigen::VectorXd read_labels(const std::string& path);

// "idx", "libsvm" or "csv" from the file's contents.
std::string detect_format(const std::string& path);

// Maps values to [0, 1]: divides by 255 for byte images, otherwise min-max over all of X.
void scale_to_unit(Table& table);

// ---------------------------------------------------------------------------------------
// Writing parasol's HDF5 layout (collective).

// CRC32 (zlib) of a byte string spread over ranks in rank order: each rank passes the CRC
// and length of its piece; the result (on every rank) is the CRC of the concatenation.
std::uint32_t combine_crc32(MPI_Comm comm, std::uint32_t local_crc, std::uint64_t local_bytes);

// Writes FILE.partial and renames it to FILE on commit(); destroyed uncommitted (an error
// on the way), it removes FILE.partial, so a failed run leaves no output and never touches
// an existing FILE. Root attributes `description` and `parasol_version` are always written.
class DatasetWriter {
 public:
  DatasetWriter(MPI_Comm comm, const std::string& path, const std::string& description);
  ~DatasetWriter();
  DatasetWriter(const DatasetWriter&) = delete;
  DatasetWriter& operator=(const DatasetWriter&) = delete;

  h5::File& file() { return file_; }
  // Dense /X from local rows (rank order = global row order); also sets attribute X_crc32.
  void write_X(const RowMatrix& X_local, std::int64_t cols);
  // CSR /X_indptr, /X_indices, /X_data and attribute X_shape from local rows (local indptr).
  void write_X_csr(const CsrRows& local, std::int64_t cols);
  // A per-row 1-D dataset (/y, /y_true) from local entries.
  void write_column(const std::string& name, const Eigen::VectorXd& local);
  // A replicated array (rank 0's copy is written).
  void write_replicated(const std::string& name, const std::vector<double>& values,
                        const std::vector<std::uint64_t>& dims);
  void commit();

 private:
  MPI_Comm comm_;
  std::string path_;
  std::string partial_;
  h5::File file_;
  bool committed_ = false;
};

// ---------------------------------------------------------------------------------------
// Row-distributed tables: the working form of the transforms (collective).

struct Replicated {
  std::vector<double> values;
  std::vector<std::uint64_t> dims;
};

struct Rows {
  Partition rows;                                // global rows held here
  std::int64_t cols = 0;                         // D
  RowMatrix X;                                   // local rows, dense
  std::map<std::string, Eigen::VectorXd> fields;  // per-row values: "y", "y_true"
  std::map<std::string, Replicated> extras;      // other root datasets, carried verbatim
  bool has(const std::string& field) const { return fields.count(field) != 0; }
};

// The per-row 1-D datasets that travel with their rows through the transforms.
const std::vector<std::string>& row_field_names();

// Loads a data set (dense or CSR, densified) in balanced block rows with its per-row
// fields and the other root datasets (W_true, mean, std ...).
Rows load_rows(MPI_Comm comm, const std::string& path);
// Rank 0 holds the whole table, the other ranks none (for converters).
Rows rows_from_table(MPI_Comm comm, Table table);
void save_rows(MPI_Comm comm, const std::string& path, const Rows& rows,
               const std::string& description);
// Sparse tables (LIBSVM -sparse) are written as CSR. Collective; `table` is rank 0's (the
// others pass an empty one) and rank 0 writes it.
// Taken by value: move a large table in.
void save_table(MPI_Comm comm, const std::string& path, Table table,
                const std::string& description);

// Moves local row i to global position dest[i] of a `total`-row result; the destinations of
// all ranks together must be distinct and cover [0, total). Returns this rank's block of the
// result under Partition::block(total).
RowMatrix redistribute_rows(MPI_Comm comm, const RowMatrix& local,
                            const std::vector<std::int64_t>& dest, std::int64_t total);
// The same for a whole Rows (X and its fields); extras are kept.
Rows move_rows(MPI_Comm comm, const Rows& in, const std::vector<std::int64_t>& dest,
               std::int64_t total);

// A seeded permutation of 0..n-1 (identical on every rank).
std::vector<std::int64_t> permutation(std::int64_t n, std::uint64_t seed, std::string_view purpose);
// Part sizes for fractions summing to 1: rounded cumulative boundaries, so they add up to n.
std::vector<std::int64_t> split_sizes(std::int64_t n, const std::vector<double>& fractions);
// Rows are shuffled by a seeded permutation and cut into consecutive parts.
std::vector<Rows> split(MPI_Comm comm, const Rows& in, const std::vector<double>& fractions,
                        std::uint64_t seed);

enum class LabelMode { Auto, PlusMinusOne, Original, Index };
struct SubsetOptions {
  std::vector<double> classes;   // empty: keep every row (head selection with max_rows)
  LabelMode labels = LabelMode::Auto;  // Auto: +1/-1 for two classes, else original
  std::int64_t max_rows = -1;    // keep only the first max_rows selected rows; -1: all
};
// Keeps rows in input order. With PlusMinusOne, the first class becomes +1 and the second -1;
// with Index, class k of the list becomes k. A present y_true is relabelled the same way.
Rows subset(MPI_Comm comm, const Rows& in, const SubsetOptions& options);

// Replaces each label with probability `rate` by a different class drawn uniformly (seeded,
// keyed by global row). Labels must be integers in [0, num_classes), or all +-1 (flipped).
// The original labels are kept in y_true (an existing y_true is kept as it is).
// `changed` (if given) receives the global number of labels replaced.
Rows corrupt_labels(MPI_Comm comm, const Rows& in, double rate, std::uint64_t seed,
                    std::int64_t num_classes, std::int64_t* changed = nullptr);

// Zero mean, unit variance per feature (population variance); constant features become 0.
// With `mean`/`std` given, uses those (e.g. a training set's statistics) instead.
// Stores the statistics as extras "mean" and "std" (std 0 marks a constant feature).
Rows standardize(MPI_Comm comm, const Rows& in, const Eigen::VectorXd* mean = nullptr,
                 const Eigen::VectorXd* std = nullptr);

// Synthetic bars (ProSper's bars test): R = H/2 horizontal and R vertical bars on an R x R
// image, W_true = amplitude * bars (H x D, D = R^2; random signs per bar if random_signs);
// each row x = s^T W_true + sigma * noise with s_h ~ Bernoulli(pi).
struct BarsOptions {
  std::int64_t H = 10;
  double amplitude = 10.0;
  double sigma = 2.0;
  double pi = 0.2;
  std::int64_t N = 1000;
  std::uint64_t seed = 1;
  bool random_signs = false;
};
Rows make_bars(MPI_Comm comm, const BarsOptions& options);  // extras: W_true; fields: none

// Random size x size patches cut from square images (rows of D = side^2 pixels). Patch j
// takes image, top and left from Random(seed, "data.patches", j); `center` removes each
// patch's mean.
struct PatchOptions {
  std::int64_t size = 8;
  std::int64_t count = 20000;
  std::uint64_t seed = 1;
  bool center = false;
};
Rows cut_patches(MPI_Comm comm, const Rows& images, const PatchOptions& options);

}  // namespace parasol::data
