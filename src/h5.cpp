#include <parasol/error.hpp>
#include <parasol/h5.hpp>

#include <cstdio>
#include <utility>

namespace parasol::h5 {
namespace {

// RAII for HDF5 identifiers.
class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  Handle(Handle&& other) noexcept : id_(std::exchange(other.id_, -1)), close_(other.close_) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  operator hid_t() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

[[noreturn]] void fail(const std::string& file, const std::string& what) {
  throw Error(file + ": " + what);
}

int rank_of(MPI_Comm comm) {
  int r = 0;
  MPI_Comm_rank(comm, &r);
  return r;
}

template <class T>
hid_t memory_type();
template <>
hid_t memory_type<double>() { return H5T_NATIVE_DOUBLE; }
template <>
hid_t memory_type<std::int64_t>() { return H5T_NATIVE_INT64; }

hid_t file_type(hid_t memory) {
  return memory == H5T_NATIVE_DOUBLE ? H5T_IEEE_F64LE : H5T_STD_I64LE;
}

Handle collective_transfer() {
  Handle plist(H5Pcreate(H5P_DATASET_XFER), H5Pclose);
  H5Pset_dxpl_mpio(plist, H5FD_MPIO_COLLECTIVE);
  return plist;
}

Handle intermediate_groups() {
  Handle plist(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(plist, 1);
  return plist;
}

// Replaces any earlier object at `path` so that files can be rewritten in place.
void remove_if_present(File& file, const std::string& path) {
  if (file.exists(path)) H5Ldelete(file.id(), path.c_str(), H5P_DEFAULT);
}

template <class T>
void write_replicated(File& file, const std::string& path, const T* data,
                      const std::vector<std::uint64_t>& dims) {
  remove_if_present(file, path);
  std::vector<hsize_t> hdims(dims.begin(), dims.end());
  Handle space(dims.empty() ? H5Screate(H5S_SCALAR)
                            : H5Screate_simple(static_cast<int>(hdims.size()), hdims.data(),
                                               nullptr),
               H5Sclose);
  Handle set(H5Dcreate2(file.id(), path.c_str(), file_type(memory_type<T>()), space,
                        intermediate_groups(), H5P_DEFAULT, H5P_DEFAULT),
             H5Dclose);
  if (!set.valid()) fail(file.path(), "cannot create dataset " + path);
  // Every rank takes part in the collective write; only rank 0 contributes data.
  if (rank_of(file.comm()) != 0) H5Sselect_none(space);
  Handle memspace(H5Scopy(space), H5Sclose);
  if (H5Dwrite(set, memory_type<T>(), memspace, space, collective_transfer(), data) < 0)
    fail(file.path(), "cannot write dataset " + path);
}

template <class T>
std::vector<T> read_all(const File& file, const std::string& path,
                        std::vector<std::uint64_t>* dims_out) {
  if (!file.exists(path)) fail(file.path(), "missing dataset " + path);
  Handle set(H5Dopen2(file.id(), path.c_str(), H5P_DEFAULT), H5Dclose);
  if (!set.valid()) fail(file.path(), path + " is not a dataset");
  const auto dims = shape(file, path);
  std::uint64_t count = 1;
  for (auto d : dims) count *= d;
  std::vector<T> data(count);
  if (count > 0 &&
      H5Dread(set, memory_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) < 0)
    fail(file.path(), "cannot read dataset " + path + " (truncated or wrong type?)");
  if (dims_out) *dims_out = dims;
  return data;
}

template <class T>
void write_row_block(File& file, const std::string& path, const T* local,
                     std::uint64_t local_rows, std::uint64_t cols) {
  unsigned long long mine = local_rows, offset = 0, global = 0;
  MPI_Exscan(&mine, &offset, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, file.comm());
  if (rank_of(file.comm()) == 0) offset = 0;  // MPI_Exscan leaves rank 0's result undefined
  MPI_Allreduce(&mine, &global, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, file.comm());
  remove_if_present(file, path);
  std::vector<hsize_t> dims{global};
  if (cols > 0) dims.push_back(cols);
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  Handle set(H5Dcreate2(file.id(), path.c_str(), file_type(memory_type<T>()), space,
                        intermediate_groups(), H5P_DEFAULT, H5P_DEFAULT),
             H5Dclose);
  if (!set.valid()) fail(file.path(), "cannot create dataset " + path);
  std::vector<hsize_t> start{offset}, count{local_rows};
  if (cols > 0) {
    start.push_back(0);
    count.push_back(cols);
  }
  Handle memspace(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr),
                  H5Sclose);
  if (local_rows == 0) {
    H5Sselect_none(space);
    H5Sselect_none(memspace);
  } else {
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
  }
  if (H5Dwrite(set, memory_type<T>(), memspace, space, collective_transfer(), local) < 0)
    fail(file.path(), "cannot write dataset " + path);
}

template <class T>
std::vector<T> read_row_block(const File& file, const std::string& path,
                              std::uint64_t row_begin, std::uint64_t nrows) {
  if (!file.exists(path)) fail(file.path(), "missing dataset " + path);
  const auto dims = shape(file, path);
  if (dims.empty() || dims.size() > 2)
    fail(file.path(), path + " must be 1-D or 2-D, has " + std::to_string(dims.size()) +
                          " dimensions");
  if (row_begin + nrows > dims[0])
    fail(file.path(), path + " has " + std::to_string(dims[0]) + " rows, rows up to " +
                          std::to_string(row_begin + nrows) + " were requested");
  const std::uint64_t cols = dims.size() == 2 ? dims[1] : 1;
  std::vector<T> data(nrows * cols);
  if (nrows == 0 || cols == 0) return data;
  Handle set(H5Dopen2(file.id(), path.c_str(), H5P_DEFAULT), H5Dclose);
  Handle space(H5Dget_space(set), H5Sclose);
  std::vector<hsize_t> start{row_begin}, count{nrows};
  if (dims.size() == 2) {
    start.push_back(0);
    count.push_back(cols);
  }
  H5Sselect_hyperslab(space, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
  Handle memspace(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr),
                  H5Sclose);
  if (H5Dread(set, memory_type<T>(), memspace, space, H5P_DEFAULT, data.data()) < 0)
    fail(file.path(), "cannot read rows of " + path + " (truncated file or wrong type?)");
  return data;
}

Handle open_object(const File& file, const std::string& object) {
  Handle obj(H5Oopen(file.id(), object.c_str(), H5P_DEFAULT), H5Oclose);
  if (!obj.valid()) fail(file.path(), "no object " + object);
  return obj;
}

void write_attribute(File& file, const std::string& object, const std::string& name,
                     hid_t file_type_id, hid_t mem_type, hid_t space, const void* data) {
  Handle obj = open_object(file, object);
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  Handle attr(H5Acreate2(obj, name.c_str(), file_type_id, space, H5P_DEFAULT, H5P_DEFAULT),
              H5Aclose);
  if (!attr.valid() || H5Awrite(attr, mem_type, data) < 0)
    fail(file.path(), "cannot write attribute " + name + " on " + object);
}

Handle open_attribute(const File& file, const std::string& object, const std::string& name) {
  Handle obj = open_object(file, object);
  if (H5Aexists(obj, name.c_str()) <= 0)
    fail(file.path(), "missing attribute " + name + " on " + object);
  return Handle(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
}

}  // namespace

File::File(MPI_Comm comm, const std::string& path, Mode mode) : comm_(comm), path_(path) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // parasol reports errors itself
  Handle access(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_fapl_mpio(access, comm, MPI_INFO_NULL);
  // The 1.8 format: dense storage for large attributes (the option text), and no
  // "file is open for writing" superblock flag, so a killed run's history stays readable.
  H5Pset_libver_bounds(access, H5F_LIBVER_V18, H5F_LIBVER_V18);
  if (mode == Mode::Create) {
    id_ = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, access);
  } else {
    // Checked first so that a missing file and a non-HDF5 file get different messages.
    if (H5Fis_hdf5(path.c_str()) <= 0) {
      FILE* probe = std::fopen(path.c_str(), "rb");
      if (!probe) fail(path, "cannot open (no such file or not readable)");
      std::fclose(probe);
      fail(path, "not an HDF5 file (or truncated/corrupt)");
    }
    id_ = H5Fopen(path.c_str(), mode == Mode::Read ? H5F_ACC_RDONLY : H5F_ACC_RDWR, access);
  }
  if (id_ < 0) fail(path, mode == Mode::Create ? "cannot create file" : "cannot open file");
}

File::~File() { close(); }

File::File(File&& other) noexcept
    : comm_(other.comm_), path_(std::move(other.path_)), id_(std::exchange(other.id_, -1)) {}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    close();
    comm_ = other.comm_;
    path_ = std::move(other.path_);
    id_ = std::exchange(other.id_, -1);
  }
  return *this;
}

bool File::exists(const std::string& object_path) const {
  // Walks the path one link at a time: H5Lexists fails on a missing intermediate group.
  std::string partial;
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    std::size_t next = object_path.find('/', pos + 1);
    partial = object_path.substr(0, next);
    if (!partial.empty() && partial != "/" && H5Lexists(id_, partial.c_str(), H5P_DEFAULT) <= 0)
      return false;
    pos = next;
  }
  return true;
}

void File::flush() {
  if (id_ >= 0) H5Fflush(id_, H5F_SCOPE_GLOBAL);
}

void File::close() {
  if (id_ >= 0) H5Fclose(id_);
  id_ = -1;
}

std::vector<std::uint64_t> shape(const File& file, const std::string& path) {
  if (!file.exists(path)) fail(file.path(), "missing dataset " + path);
  Handle set(H5Dopen2(file.id(), path.c_str(), H5P_DEFAULT), H5Dclose);
  if (!set.valid()) fail(file.path(), path + " is not a dataset");
  Handle space(H5Dget_space(set), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(rank > 0 ? rank : 0);
  if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return {dims.begin(), dims.end()};
}

void write(File& file, const std::string& path, const std::vector<double>& data,
           const std::vector<std::uint64_t>& dims) {
  write_replicated(file, path, data.data(), dims);
}
void write(File& file, const std::string& path, const std::vector<std::int64_t>& data,
           const std::vector<std::uint64_t>& dims) {
  write_replicated(file, path, data.data(), dims);
}
std::vector<double> read_doubles(const File& file, const std::string& path,
                                 std::vector<std::uint64_t>* dims) {
  return read_all<double>(file, path, dims);
}
std::vector<std::int64_t> read_int64s(const File& file, const std::string& path,
                                      std::vector<std::uint64_t>* dims) {
  return read_all<std::int64_t>(file, path, dims);
}

void write_rows(File& file, const std::string& path, const double* local,
                std::uint64_t local_rows, std::uint64_t cols) {
  write_row_block(file, path, local, local_rows, cols);
}
void write_rows(File& file, const std::string& path, const std::int64_t* local,
                std::uint64_t local_rows, std::uint64_t cols) {
  write_row_block(file, path, local, local_rows, cols);
}
std::vector<double> read_rows(const File& file, const std::string& path,
                              std::uint64_t row_begin, std::uint64_t nrows) {
  return read_row_block<double>(file, path, row_begin, nrows);
}
std::vector<std::int64_t> read_rows_int64(const File& file, const std::string& path,
                                          std::uint64_t row_begin, std::uint64_t nrows) {
  return read_row_block<std::int64_t>(file, path, row_begin, nrows);
}

void set_attr(File& file, const std::string& object, const std::string& name, double value) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  write_attribute(file, object, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, space, &value);
}
void set_attr(File& file, const std::string& object, const std::string& name,
              std::int64_t value) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  write_attribute(file, object, name, H5T_STD_I64LE, H5T_NATIVE_INT64, space, &value);
}
void set_attr(File& file, const std::string& object, const std::string& name,
              const std::string& value) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, value.empty() ? 1 : value.size());
  H5Tset_strpad(type, H5T_STR_NULLPAD);
  H5Tset_cset(type, H5T_CSET_UTF8);
  write_attribute(file, object, name, type, type, space, value.empty() ? "" : value.data());
}
void set_attr(File& file, const std::string& object, const std::string& name,
              const std::vector<double>& value) {
  hsize_t n = value.size();
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  write_attribute(file, object, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, space, value.data());
}

void set_attr(File& file, const std::string& object, const std::string& name,
              const std::vector<std::int64_t>& value) {
  hsize_t n = value.size();
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  write_attribute(file, object, name, H5T_STD_I64LE, H5T_NATIVE_INT64, space, value.data());
}

bool has_attr(const File& file, const std::string& object, const std::string& name) {
  if (!file.exists(object)) return false;
  Handle obj = open_object(file, object);
  return H5Aexists(obj, name.c_str()) > 0;
}

double attr_double(const File& file, const std::string& object, const std::string& name) {
  Handle attr = open_attribute(file, object, name);
  double value = 0;
  if (H5Aread(attr, H5T_NATIVE_DOUBLE, &value) < 0)
    fail(file.path(), "attribute " + name + " is not a number");
  return value;
}
std::int64_t attr_int(const File& file, const std::string& object, const std::string& name) {
  Handle attr = open_attribute(file, object, name);
  std::int64_t value = 0;
  if (H5Aread(attr, H5T_NATIVE_INT64, &value) < 0)
    fail(file.path(), "attribute " + name + " is not an integer");
  return value;
}
std::string attr_string(const File& file, const std::string& object, const std::string& name) {
  Handle attr = open_attribute(file, object, name);
  Handle type(H5Aget_type(attr), H5Tclose);
  if (H5Tget_class(type) != H5T_STRING)
    fail(file.path(), "attribute " + name + " is not a string");
  if (H5Tis_variable_str(type) > 0) {
    char* text = nullptr;
    Handle memtype(H5Tget_native_type(type, H5T_DIR_ASCEND), H5Tclose);
    H5Aread(attr, memtype, &text);
    std::string value = text ? text : "";
    H5free_memory(text);
    return value;
  }
  std::string value(H5Tget_size(type), '\0');
  H5Aread(attr, type, value.data());
  return value.substr(0, value.find('\0'));
}
std::vector<double> attr_doubles(const File& file, const std::string& object,
                                 const std::string& name) {
  Handle attr = open_attribute(file, object, name);
  Handle space(H5Aget_space(attr), H5Sclose);
  std::vector<double> value(H5Sget_simple_extent_npoints(space));
  if (!value.empty() && H5Aread(attr, H5T_NATIVE_DOUBLE, value.data()) < 0)
    fail(file.path(), "attribute " + name + " is not numeric");
  return value;
}

std::vector<std::int64_t> attr_int64s(const File& file, const std::string& object,
                                      const std::string& name) {
  Handle attr = open_attribute(file, object, name);
  Handle space(H5Aget_space(attr), H5Sclose);
  std::vector<std::int64_t> value(H5Sget_simple_extent_npoints(space));
  if (!value.empty() && H5Aread(attr, H5T_NATIVE_INT64, value.data()) < 0)
    fail(file.path(), "attribute " + name + " is not an integer array");
  return value;
}

void create_group(File& file, const std::string& path) {
  if (file.exists(path)) return;
  Handle group(H5Gcreate2(file.id(), path.c_str(), intermediate_groups(), H5P_DEFAULT,
                          H5P_DEFAULT),
               H5Gclose);
  if (!group.valid()) fail(file.path(), "cannot create group " + path);
}

void create_series(File& file, const std::string& path) {
  remove_if_present(file, path);
  hsize_t zero = 0, unlimited = H5S_UNLIMITED, chunk = 256;
  Handle space(H5Screate_simple(1, &zero, &unlimited), H5Sclose);
  Handle create(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_chunk(create, 1, &chunk);
  Handle set(H5Dcreate2(file.id(), path.c_str(), H5T_IEEE_F64LE, space, intermediate_groups(),
                        create, H5P_DEFAULT),
             H5Dclose);
  if (!set.valid()) fail(file.path(), "cannot create series " + path);
}

void append_series(File& file, const std::string& path, const std::vector<double>& values) {
  if (values.empty()) return;
  Handle set(H5Dopen2(file.id(), path.c_str(), H5P_DEFAULT), H5Dclose);
  if (!set.valid()) fail(file.path(), "missing series " + path);
  hsize_t n = 0;
  {
    Handle space(H5Dget_space(set), H5Sclose);
    H5Sget_simple_extent_dims(space, &n, nullptr);
  }
  hsize_t count = values.size(), grown = n + count;
  H5Dset_extent(set, &grown);
  Handle space(H5Dget_space(set), H5Sclose);
  Handle memspace(H5Screate_simple(1, &count, nullptr), H5Sclose);
  if (rank_of(file.comm()) == 0) {
    H5Sselect_hyperslab(space, H5S_SELECT_SET, &n, nullptr, &count, nullptr);
  } else {
    H5Sselect_none(space);
    H5Sselect_none(memspace);
  }
  if (H5Dwrite(set, H5T_NATIVE_DOUBLE, memspace, space, collective_transfer(), values.data()) < 0)
    fail(file.path(), "cannot append to " + path);
}

}  // namespace parasol::h5
