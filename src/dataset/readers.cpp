// Readers of foreign formats for parasol-data: IDX (raw or gzip), LIBSVM text, CSV.
// Local (not collective): one process parses the whole file. Every defect is an Error whose
// message starts with the file name.
#include <parasol/data_tools.hpp>
#include <parasol/error.hpp>

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

namespace parasol::data {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error(path + ": " + what);
}

bool is_gzip(const unsigned char* bytes, std::size_t size) {
  return size >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

std::vector<unsigned char> gunzip(const std::vector<unsigned char>& in, const std::string& path) {
  z_stream stream{};
  // 16 + MAX_WBITS: expect a gzip header and trailer (the trailer's CRC is checked).
  if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) fail(path, "cannot initialize zlib");
  std::vector<unsigned char> out;
  out.resize(std::max<std::size_t>(in.size() * 4, 1 << 16));
  stream.next_in = const_cast<unsigned char*>(in.data());
  stream.avail_in = static_cast<uInt>(in.size());
  std::size_t produced = 0;
  int status = Z_OK;
  while (true) {
    if (produced == out.size()) out.resize(out.size() * 2);
    stream.next_out = out.data() + produced;
    stream.avail_out = static_cast<uInt>(std::min<std::size_t>(out.size() - produced, 1u << 30));
    const uInt before = stream.avail_out;
    status = inflate(&stream, Z_NO_FLUSH);
    produced += before - stream.avail_out;
    if (status == Z_STREAM_END) {
      // Concatenated gzip members are legal; continue with the next one if bytes remain.
      if (stream.avail_in == 0) break;
      if (inflateReset(&stream) != Z_OK) break;
      continue;
    }
    if (status == Z_OK) continue;
    if (status == Z_BUF_ERROR && stream.avail_in == 0) {
      inflateEnd(&stream);
      fail(path, "truncated gzip data (unexpected end of file)");
    }
    if (status == Z_BUF_ERROR) continue;  // output full: grow and go on
    std::string message = stream.msg ? stream.msg : "error " + std::to_string(status);
    inflateEnd(&stream);
    fail(path, "corrupt gzip data (" + message + ")");
  }
  inflateEnd(&stream);
  out.resize(produced);
  return out;
}

std::uint64_t big_endian_u32(const unsigned char* p) {
  return (std::uint64_t(p[0]) << 24) | (std::uint64_t(p[1]) << 16) | (std::uint64_t(p[2]) << 8) |
         std::uint64_t(p[3]);
}

std::size_t idx_type_size(unsigned char type) {
  switch (type) {
    case 0x08: case 0x09: return 1;
    case 0x0B: return 2;
    case 0x0C: case 0x0D: return 4;
    case 0x0E: return 8;
    default: return 0;
  }
}

double idx_value(unsigned char type, const unsigned char* p) {
  switch (type) {
    case 0x08: return p[0];
    case 0x09: return static_cast<signed char>(p[0]);
    case 0x0B: return static_cast<std::int16_t>((std::uint16_t(p[0]) << 8) | p[1]);
    case 0x0C: return static_cast<std::int32_t>(big_endian_u32(p));
    case 0x0D: {
      std::uint32_t bits = static_cast<std::uint32_t>(big_endian_u32(p));
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    }
    default: {  // 0x0E
      std::uint64_t bits = (big_endian_u32(p) << 32) | big_endian_u32(p + 4);
      double d;
      std::memcpy(&d, &bits, 8);
      return d;
    }
  }
}

// Parses a number filling the whole token; false if it is not one.
bool parse_number(const std::string& token, double* value) {
  if (token.empty()) return false;
  const char* begin = token.c_str();
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(begin, &end);
  if (end == begin || *end != '\0') return false;
  *value = v;
  return true;
}

bool parse_integer(const std::string& token, std::int64_t* value) {
  if (token.empty()) return false;
  const char* begin = token.c_str();
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(begin, &end, 10);
  if (end == begin || *end != '\0' || errno == ERANGE) return false;
  *value = v;
  return true;
}

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  auto b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

std::string where(const std::string& path, std::int64_t line) {
  return path + ": line " + std::to_string(line);
}

// Lines of a text file (gunzipped if needed).
std::vector<std::string> read_lines(const std::string& path) {
  std::vector<unsigned char> bytes = read_file_bytes(path);
  if (std::find(bytes.begin(), bytes.end(), '\0') != bytes.end())
    fail(path, "not a text file (contains NUL bytes)");
  std::vector<std::string> lines;
  std::string current;
  for (unsigned char c : bytes) {
    if (c == '\n') {
      lines.push_back(std::move(current));
      current.clear();
    } else {
      current.push_back(static_cast<char>(c));
    }
  }
  if (!current.empty()) lines.push_back(std::move(current));
  return lines;
}

}  // namespace

std::vector<unsigned char> read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, std::string("cannot open for reading (") + std::strerror(errno) + ")");
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
  if (in.bad()) fail(path, "read error");
  if (is_gzip(bytes.data(), bytes.size())) return gunzip(bytes, path);
  return bytes;
}

bool looks_like_idx(const std::vector<unsigned char>& bytes) {
  return bytes.size() >= 4 && bytes[0] == 0 && bytes[1] == 0 && idx_type_size(bytes[2]) != 0 &&
         bytes[3] >= 1;
}

namespace {

// Checks the IDX header and length; returns the array without values and the header size.
IdxArray idx_header(const unsigned char* bytes, std::size_t size, const std::string& name,
                    std::size_t* header_size) {
  if (size < 4) fail(name, "too short for an IDX header (" + std::to_string(size) + " bytes)");
  if (bytes[0] != 0 || bytes[1] != 0) {
    char magic[16];
    std::snprintf(magic, sizeof magic, "0x%02x%02x%02x%02x", bytes[0], bytes[1], bytes[2],
                  bytes[3]);
    fail(name, std::string("wrong magic number ") + magic +
                   " (an IDX file starts with two zero bytes, a type byte and the rank)");
  }
  IdxArray array;
  array.type = bytes[2];
  const std::size_t value_size = idx_type_size(array.type);
  if (value_size == 0) {
    char type[8];
    std::snprintf(type, sizeof type, "0x%02x", bytes[2]);
    fail(name, std::string("unknown IDX value type ") + type +
                   " in the magic number (valid: 0x08 0x09 0x0b 0x0c 0x0d 0x0e)");
  }
  const unsigned ndims = bytes[3];
  if (ndims == 0) fail(name, "IDX magic number gives 0 dimensions");
  const std::size_t header = 4 + 4 * std::size_t(ndims);
  if (size < header)
    fail(name, "truncated IDX header (" + std::to_string(size) + " bytes, header needs " +
                   std::to_string(header) + ")");
  std::uint64_t count = 1;
  for (unsigned k = 0; k < ndims; ++k) {
    std::uint64_t d = big_endian_u32(bytes + 4 + 4 * k);
    if (d == 0) fail(name, "IDX dimension " + std::to_string(k) + " is 0");
    if (count > (std::uint64_t(1) << 40) / d) fail(name, "IDX dimensions are implausibly large");
    count *= d;
    array.dims.push_back(d);
  }
  const std::uint64_t expected = header + count * value_size;
  if (size < expected)
    fail(name, "truncated IDX file: " + std::to_string(size) +
                   " bytes, the header's dimensions need " + std::to_string(expected));
  if (size > expected)
    fail(name, "IDX file has " + std::to_string(size - expected) +
                   " bytes after the data its header describes (inconsistent dimensions)");
  *header_size = header;
  return array;
}

std::uint64_t element_count(const IdxArray& a) {
  std::uint64_t count = 1;
  for (auto d : a.dims) count *= d;
  return count;
}

// Decodes the values after the header into `out` (element_count entries).
void idx_decode(const IdxArray& a, const unsigned char* values, const std::string& name,
                double* out) {
  const std::size_t value_size = idx_type_size(a.type);
  const std::uint64_t count = element_count(a);
  for (std::uint64_t i = 0; i < count; ++i, values += value_size) {
    const double v = idx_value(a.type, values);
    if (!std::isfinite(v)) fail(name, "non-finite value at element " + std::to_string(i));
    out[i] = v;
  }
}

}  // namespace

IdxArray parse_idx(const unsigned char* bytes, std::size_t size, const std::string& name) {
  std::size_t header = 0;
  IdxArray array = idx_header(bytes, size, name, &header);
  array.values.resize(element_count(array));
  idx_decode(array, bytes + header, name, array.values.data());
  return array;
}

IdxArray read_idx(const std::string& path) {
  std::vector<unsigned char> bytes = read_file_bytes(path);
  return parse_idx(bytes.data(), bytes.size(), path);
}

Eigen::VectorXd read_labels(const std::string& path) {
  std::vector<unsigned char> bytes = read_file_bytes(path);
  if (looks_like_idx(bytes)) {
    IdxArray a = parse_idx(bytes.data(), bytes.size(), path);
    if (a.dims.size() != 1)
      fail(path, "labels must be a 1-D IDX array, this one has " + std::to_string(a.dims.size()) +
                     " dimensions");
    return Eigen::Map<Eigen::VectorXd>(a.values.data(), a.values.size());
  }
  std::vector<std::string> lines = read_lines(path);
  std::vector<double> labels;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::string t = trim(lines[i]);
    if (t.empty()) continue;
    double v;
    if (!parse_number(t, &v)) fail(where(path, i + 1), "'" + t + "' is not a number");
    if (!std::isfinite(v)) fail(where(path, i + 1), "non-finite label");
    labels.push_back(v);
  }
  if (labels.empty()) fail(path, "no labels");
  return Eigen::Map<Eigen::VectorXd>(labels.data(), labels.size());
}

Table read_idx_table(const std::string& images, const std::string& labels) {
  // Decoded straight into X: Fashion-MNIST's training images are 376 MB as float64.
  Table t;
  {
    std::vector<unsigned char> bytes = read_file_bytes(images);
    std::size_t header = 0;
    IdxArray a = idx_header(bytes.data(), bytes.size(), images, &header);
    t.rows = static_cast<std::int64_t>(a.dims[0]);
    t.cols = 1;
    for (std::size_t k = 1; k < a.dims.size(); ++k) t.cols *= static_cast<std::int64_t>(a.dims[k]);
    t.X.resize(t.rows, t.cols);
    idx_decode(a, bytes.data() + header, images, t.X.data());
    t.byte_images = a.type == 0x08;
  }
  if (!labels.empty()) {
    t.y = read_labels(labels);
    if (t.y.size() != t.rows)
      fail(labels, std::to_string(t.y.size()) + " labels for " + std::to_string(t.rows) +
                       " rows in " + images);
  }
  return t;
}

Table read_libsvm(const std::string& path, const LibsvmOptions& options) {
  if (options.features < 0) fail(path, "-features must be >= 0");
  std::vector<std::string> lines = read_lines(path);
  Table t;
  t.sparse = true;
  t.csr.indptr.push_back(0);
  std::vector<double> labels;
  std::int64_t max_index = -1;
  const std::int64_t base = options.zero_based ? 0 : 1;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::string line = lines[i];
    auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::istringstream tokens(line);
    std::string token;
    if (!(tokens >> token)) continue;  // blank or comment-only line
    const std::string at = where(path, i + 1);
    double label;
    if (token.find(':') != std::string::npos || !parse_number(token, &label))
      fail(at, "expected a label first, found '" + token + "'");
    if (!std::isfinite(label)) fail(at, "non-finite label");
    labels.push_back(label);
    std::int64_t previous = -1;
    while (tokens >> token) {
      auto colon = token.find(':');
      if (colon == std::string::npos) fail(at, "expected index:value, found '" + token + "'");
      std::int64_t index;
      double value;
      if (!parse_integer(token.substr(0, colon), &index))
        fail(at, "bad feature index in '" + token + "'");
      if (!parse_number(token.substr(colon + 1), &value))
        fail(at, "bad feature value in '" + token + "'");
      if (!std::isfinite(value)) fail(at, "non-finite value in '" + token + "'");
      index -= base;
      if (index < 0)
        fail(at, "feature index in '" + token + "' below " + std::to_string(base) +
                     (options.zero_based ? "" : " (LIBSVM indices are 1-based; see -zero_based)"));
      if (options.features > 0 && index >= options.features)
        fail(at, "feature index in '" + token + "' exceeds -features " +
                     std::to_string(options.features));
      if (index <= previous) fail(at, "feature indices must be strictly increasing ('" + token + "')");
      previous = index;
      max_index = std::max(max_index, index);
      t.csr.indices.push_back(index);
      t.csr.values.push_back(value);
    }
    t.csr.indptr.push_back(static_cast<std::int64_t>(t.csr.indices.size()));
  }
  if (labels.empty()) fail(path, "no data lines");
  t.rows = static_cast<std::int64_t>(labels.size());
  t.cols = options.features > 0 ? options.features : max_index + 1;
  if (t.cols <= 0) fail(path, "no features (every row is empty); give -features D");
  t.y = Eigen::Map<Eigen::VectorXd>(labels.data(), labels.size());
  if (!options.sparse) {
    t.sparse = false;
    t.X = RowMatrix::Zero(t.rows, t.cols);
    for (std::int64_t r = 0; r < t.rows; ++r)
      for (std::int64_t k = t.csr.indptr[r]; k < t.csr.indptr[r + 1]; ++k)
        t.X(r, t.csr.indices[k]) = t.csr.values[k];
    t.csr = CsrRows{};
  }
  return t;
}

Table read_csv(const std::string& path, const CsvOptions& options) {
  if (options.label_column < -1) fail(path, "-label_column must be >= -1");
  std::vector<std::string> lines = read_lines(path);
  std::vector<double> values;
  std::vector<double> labels;
  std::int64_t fields_per_row = -1;
  std::int64_t rows = 0;
  bool first_content_line = true;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (trim(lines[i]).empty()) continue;
    const std::string at = where(path, i + 1);
    std::vector<std::string> fields;
    std::string field;
    std::istringstream in(lines[i]);
    while (std::getline(in, field, options.delimiter)) fields.push_back(trim(field));
    if (!lines[i].empty() && trim(lines[i]).back() == options.delimiter) fields.push_back("");
    std::vector<double> row(fields.size());
    bool numeric = true;
    for (std::size_t k = 0; k < fields.size(); ++k) numeric = numeric && parse_number(fields[k], &row[k]);
    if (first_content_line) {
      first_content_line = false;
      if (!numeric) {
        // A header needs at least one field that is not a number and not empty.
        bool has_name = std::any_of(fields.begin(), fields.end(), [](const std::string& f) {
          double v;
          return !f.empty() && !parse_number(f, &v);
        });
        if (has_name) {
          fields_per_row = static_cast<std::int64_t>(fields.size());
          continue;
        }
      }
    }
    if (fields_per_row < 0) fields_per_row = static_cast<std::int64_t>(fields.size());
    if (static_cast<std::int64_t>(fields.size()) != fields_per_row)
      fail(at, std::to_string(fields.size()) + " fields, expected " + std::to_string(fields_per_row));
    for (std::size_t k = 0; k < fields.size(); ++k) {
      if (!parse_number(fields[k], &row[k]))
        fail(at, "field " + std::to_string(k) + " '" + fields[k] + "' is not a number");
      if (!std::isfinite(row[k])) fail(at, "field " + std::to_string(k) + " is not finite");
    }
    if (options.label_column >= fields_per_row)
      fail(path, "-label_column " + std::to_string(options.label_column) + " but rows have " +
                     std::to_string(fields_per_row) + " fields");
    for (std::int64_t k = 0; k < fields_per_row; ++k) {
      if (k == options.label_column)
        labels.push_back(row[k]);
      else
        values.push_back(row[k]);
    }
    ++rows;
  }
  if (rows == 0) fail(path, "no data rows");
  Table t;
  t.rows = rows;
  t.cols = fields_per_row - (options.label_column >= 0 ? 1 : 0);
  if (t.cols <= 0) fail(path, "no feature columns besides the label");
  t.X = Eigen::Map<RowMatrix>(values.data(), t.rows, t.cols);
  if (!labels.empty()) t.y = Eigen::Map<Eigen::VectorXd>(labels.data(), labels.size());
  return t;
}

std::string detect_format(const std::string& path) {
  // The first 64 KiB are enough (gzread decompresses or passes raw bytes through); a file
  // that cannot be read that way is read whole, so that the error explains what is wrong.
  std::vector<unsigned char> bytes(1 << 16);
  gzFile f = gzopen(path.c_str(), "rb");
  int got = f ? gzread(f, bytes.data(), static_cast<unsigned>(bytes.size())) : -1;
  if (f) gzclose(f);
  if (got < 0)
    bytes = read_file_bytes(path);
  else
    bytes.resize(static_cast<std::size_t>(got));
  if (looks_like_idx(bytes)) return "idx";
  // Text never starts with a NUL byte: a binary file goes to the IDX reader, which explains.
  if (!bytes.empty() && bytes[0] == 0) return "idx";
  // LIBSVM lines contain index:value pairs; CSV lines do not.
  std::size_t end = std::min<std::size_t>(bytes.size(), 1 << 16);
  for (std::size_t i = 0; i < end; ++i) {
    if (bytes[i] == ':') return "libsvm";
  }
  return "csv";
}

void scale_to_unit(Table& table) {
  if (table.byte_images) {
    if (table.sparse)
      for (double& v : table.csr.values) v /= 255.0;
    else
      table.X /= 255.0;
    return;
  }
  if (table.sparse) {
    // Zeros are implicit entries, so the range includes 0; keep sparsity by dividing by max|x|.
    double m = 0;
    for (double v : table.csr.values) m = std::max(m, std::abs(v));
    if (m > 0)
      for (double& v : table.csr.values) v /= m;
    return;
  }
  if (table.X.size() == 0) return;
  const double lo = table.X.minCoeff(), hi = table.X.maxCoeff();
  if (hi > lo)
    table.X = (table.X.array() - lo) / (hi - lo);
  else
    table.X.setZero();
}

}  // namespace parasol::data
