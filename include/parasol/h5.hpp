#pragma once
// A thin collective layer over parallel HDF5 (MPI-IO). Every function here is collective
// over the file's communicator unless it says otherwise. Two shapes of data:
//  - replicated: identical on every rank (parameters, history); rank 0 writes, all read;
//  - rows: a matrix distributed by contiguous row blocks; each rank writes/reads its slab.
// Paths may contain groups ("solution/W"); missing groups are created.
#include <hdf5.h>
#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace parasol::h5 {

class File {
 public:
  enum class Mode { Create /* truncate */, Read, ReadWrite };
  File(MPI_Comm comm, const std::string& path, Mode mode);
  ~File();
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  hid_t id() const { return id_; }
  MPI_Comm comm() const { return comm_; }
  const std::string& path() const { return path_; }
  bool exists(const std::string& object_path) const;  // not collective
  void flush();
  void close();

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  std::string path_;
  hid_t id_ = -1;
};

// Shape of a dataset (not collective).
std::vector<std::uint64_t> shape(const File& file, const std::string& path);

// Replicated arrays of any rank (dims in row-major order; empty dims = scalar).
void write(File& file, const std::string& path, const std::vector<double>& data,
           const std::vector<std::uint64_t>& dims);
void write(File& file, const std::string& path, const std::vector<std::int64_t>& data,
           const std::vector<std::uint64_t>& dims);
std::vector<double> read_doubles(const File& file, const std::string& path,
                                 std::vector<std::uint64_t>* dims = nullptr);
std::vector<std::int64_t> read_int64s(const File& file, const std::string& path,
                                      std::vector<std::uint64_t>* dims = nullptr);

// Row-distributed 2-D array (or 1-D when cols == 0): this rank's `local_rows` rows, in
// global row order by rank. Global row count and offsets come from an MPI_Exscan.
void write_rows(File& file, const std::string& path, const double* local,
                std::uint64_t local_rows, std::uint64_t cols);
void write_rows(File& file, const std::string& path, const std::int64_t* local,
                std::uint64_t local_rows, std::uint64_t cols);
// Reads rows [row_begin, row_begin + nrows) of a 1-D or 2-D dataset (row-major result).
std::vector<double> read_rows(const File& file, const std::string& path,
                              std::uint64_t row_begin, std::uint64_t nrows);
std::vector<std::int64_t> read_rows_int64(const File& file, const std::string& path,
                                          std::uint64_t row_begin, std::uint64_t nrows);

// Attributes on an object (group or dataset; "/" is the root). Written by every rank with
// the same value (HDF5 requires attribute writes to be collective).
void set_attr(File& file, const std::string& object, const std::string& name, double value);
void set_attr(File& file, const std::string& object, const std::string& name, std::int64_t value);
void set_attr(File& file, const std::string& object, const std::string& name,
              const std::string& value);
void set_attr(File& file, const std::string& object, const std::string& name,
              const std::vector<double>& value);
void set_attr(File& file, const std::string& object, const std::string& name,
              const std::vector<std::int64_t>& value);
bool has_attr(const File& file, const std::string& object, const std::string& name);
double attr_double(const File& file, const std::string& object, const std::string& name);
std::int64_t attr_int(const File& file, const std::string& object, const std::string& name);
std::string attr_string(const File& file, const std::string& object, const std::string& name);
std::vector<double> attr_doubles(const File& file, const std::string& object,
                                 const std::string& name);
std::vector<std::int64_t> attr_int64s(const File& file, const std::string& object,
                                      const std::string& name);

// Creates a group (and any missing parents); a no-op when it exists.
void create_group(File& file, const std::string& path);

// An extendible 1-D float64 dataset that grows by appends (history columns).
void create_series(File& file, const std::string& path);
void append_series(File& file, const std::string& path, const std::vector<double>& values);

}  // namespace parasol::h5
