#pragma once
// Helpers for the data tests: scratch directories agreed over ranks, files written by rank 0,
// and a check that an expression throws parasol::Error on every rank with a message that
// names the file and the problem.
#include <gtest/gtest.h>
#include <mpi.h>
#include <parasol/error.hpp>

#include "parasol_test.hpp"

#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace parasol::datatest {

// rank(), size() and scratch_dir() are the shared ones.
using parasol::test::rank;
using parasol::test::scratch_dir;
using parasol::test::size;

// Rank 0 writes `bytes` to `path` (gzip-compressed when `gzip`); every rank waits for it.
inline void write_file(const std::string& path, const std::string& bytes, bool gzip = false) {
  if (rank() == 0) {
    if (gzip) {
      gzFile f = gzopen(path.c_str(), "wb");
      gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
      gzclose(f);
    } else {
      std::ofstream(path, std::ios::binary) << bytes;
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

inline std::string read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Rank 0 cuts `path` to its first `keep` bytes.
inline void truncate_file(const std::string& path, std::size_t keep) {
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank() == 0) std::filesystem::resize_file(path, keep);
  MPI_Barrier(MPI_COMM_WORLD);
}

// True on every rank when `work` threw parasol::Error on every rank with a message holding
// every one of `needles`; prints the message otherwise.
template <class Work>
bool fails_everywhere_with(Work&& work, const std::vector<std::string>& needles) {
  std::string message;
  bool threw = false;
  try {
    work();
  } catch (const Error& e) {
    threw = true;
    message = e.what();
  }
  int ok = threw ? 1 : 0;
  for (const auto& n : needles)
    if (message.find(n) == std::string::npos) ok = 0;
  if (!ok)
    ADD_FAILURE() << "rank " << rank() << ": " << (threw ? "message '" + message + "'" : "no Error")
                  << " lacks an expected part";
  int all = 0;
  MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return all == 1;
}

}  // namespace parasol::datatest
