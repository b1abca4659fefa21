// Readers of foreign formats (IDX raw and gzip, LIBSVM, CSV) on small files written here,
// good and bad. Readers are local: every rank reads the file rank 0 wrote, and every rank
// must reach the same verdict.
#include <gtest/gtest.h>
#include <parasol/data_tools.hpp>

#include <cmath>
#include <cstring>
#include <limits>

#include "data_test_util.hpp"

using namespace parasol;
using namespace parasol::data;
using parasol::datatest::fails_everywhere_with;
using parasol::datatest::scratch_dir;
using parasol::datatest::write_file;

namespace {

void put_u32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

// An IDX file with `type` and `dims`; values encoded big-endian.
std::string make_idx(unsigned char type, const std::vector<std::uint32_t>& dims,
                     const std::vector<double>& values) {
  std::string out;
  out.push_back(0);
  out.push_back(0);
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(dims.size()));
  for (auto d : dims) put_u32(out, d);
  for (double v : values) {
    switch (type) {
      case 0x08: out.push_back(static_cast<char>(static_cast<unsigned char>(v))); break;
      case 0x0B: {
        auto s = static_cast<std::uint16_t>(static_cast<std::int16_t>(v));
        out.push_back(static_cast<char>(s >> 8));
        out.push_back(static_cast<char>(s & 0xff));
        break;
      }
      case 0x0D: {
        float f = static_cast<float>(v);
        std::uint32_t bits;
        std::memcpy(&bits, &f, 4);
        put_u32(out, bits);
        break;
      }
      default: ADD_FAILURE() << "type not supported by the test writer";
    }
  }
  return out;
}

std::vector<double> pixels(int n) {
  std::vector<double> v;
  for (int i = 0; i < n; ++i) v.push_back((i * 37) % 256);
  return v;
}

}  // namespace

TEST(Idx, RawAndGzipImagesWithLabelsGiveTheSameTable) {
  const std::string dir = scratch_dir();
  const std::vector<double> values = pixels(3 * 2 * 4);
  const std::string images = make_idx(0x08, {3, 2, 4}, values);
  const std::string labels = make_idx(0x08, {3}, {7, 0, 9});
  write_file(dir + "/img.idx", images);
  write_file(dir + "/img.idx.gz", images, true);
  write_file(dir + "/lab.idx.gz", labels, true);
  for (const std::string name : {"/img.idx", "/img.idx.gz"}) {
    Table t = read_idx_table(dir + name, dir + "/lab.idx.gz");
    ASSERT_EQ(t.rows, 3);
    ASSERT_EQ(t.cols, 8);
    EXPECT_TRUE(t.byte_images);
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 8; ++c) EXPECT_EQ(t.X(r, c), values[r * 8 + c]);
    EXPECT_EQ(t.y, Eigen::Vector3d(7, 0, 9));
    scale_to_unit(t);
    EXPECT_DOUBLE_EQ(t.X(0, 1), 37.0 / 255.0);
  }
  EXPECT_EQ(detect_format(dir + "/img.idx.gz"), "idx");
}

TEST(Idx, SignedAndFloatTypesDecodeBigEndian) {
  const std::string dir = scratch_dir();
  write_file(dir + "/s.idx", make_idx(0x0B, {2, 2}, {-300, 5, 32767, -1}));
  write_file(dir + "/f.idx", make_idx(0x0D, {2}, {1.5, -0.25}));
  IdxArray s = read_idx(dir + "/s.idx");
  EXPECT_EQ(s.values, (std::vector<double>{-300, 5, 32767, -1}));
  IdxArray f = read_idx(dir + "/f.idx");
  EXPECT_EQ(f.values, (std::vector<double>{1.5, -0.25}));
}

TEST(Idx, BadFilesAreRejectedNamingTheFile) {
  const std::string dir = scratch_dir();
  const std::string good = make_idx(0x08, {4, 3, 3}, pixels(36));
  std::string wrong_magic = good;
  wrong_magic[0] = 0x08;
  std::string bad_type = good;
  bad_type[2] = 0x07;
  write_file(dir + "/truncated.idx", good.substr(0, good.size() - 5));
  write_file(dir + "/truncated_header.idx", good.substr(0, 10));
  write_file(dir + "/long.idx", good + "xyz");
  write_file(dir + "/magic.idx", wrong_magic);
  write_file(dir + "/type.idx", bad_type);
  write_file(dir + "/nan.idx", make_idx(0x0D, {2}, {1.0, std::nan("")}));
  // A gzip stream cut short: the gzip layer must notice, not return a short file.
  write_file(dir + "/full.idx.gz", good + std::string(5000, '\x11'), true);
  const std::string gz = datatest::read_whole(dir + "/full.idx.gz");
  write_file(dir + "/truncated.idx.gz", gz.substr(0, gz.size() / 2));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"truncated.idx", "truncated IDX file"},
      {"truncated_header.idx", "truncated IDX header"},
      {"long.idx", "inconsistent dimensions"},
      {"magic.idx", "wrong magic number"},
      {"type.idx", "unknown IDX value type"},
      {"nan.idx", "non-finite"},
      {"truncated.idx.gz", "truncated gzip"},
      {"missing.idx", "cannot open"}};
  for (const auto& [name, problem] : cases) {
    const std::string path = dir + "/" + name;
    EXPECT_TRUE(fails_everywhere_with([&] { read_idx(path); }, {path, problem})) << name;
  }
  // Labels that do not match the number of images.
  write_file(dir + "/img.idx", good);
  write_file(dir + "/lab.idx", make_idx(0x08, {3}, {1, 2, 3}));
  EXPECT_TRUE(fails_everywhere_with([&] { read_idx_table(dir + "/img.idx", dir + "/lab.idx"); },
                                    {dir + "/lab.idx", "3 labels for 4 rows"}));
}

TEST(Libsvm, DenseAndSparseReadTheSameValues) {
  const std::string dir = scratch_dir();
  write_file(dir + "/a.svm",
             "+1 1:0.5 3:-2 # comment\n"
             "-1 2:1e-3\n"
             "\n"
             "3 1:1 2:2 3:3 5:4\n");
  Table dense = read_libsvm(dir + "/a.svm", {});
  ASSERT_EQ(dense.rows, 3);
  ASSERT_EQ(dense.cols, 5);
  RowMatrix expected = RowMatrix::Zero(3, 5);
  expected(0, 0) = 0.5, expected(0, 2) = -2, expected(1, 1) = 1e-3;
  expected.row(2) << 1, 2, 3, 0, 4;
  EXPECT_EQ(dense.X, expected);
  EXPECT_EQ(dense.y, Eigen::Vector3d(1, -1, 3));
  EXPECT_EQ(detect_format(dir + "/a.svm"), "libsvm");

  LibsvmOptions o;
  o.sparse = true;
  o.features = 7;
  Table sparse = read_libsvm(dir + "/a.svm", o);
  EXPECT_TRUE(sparse.sparse);
  EXPECT_EQ(sparse.cols, 7);
  EXPECT_EQ(sparse.csr.indptr, (std::vector<std::int64_t>{0, 2, 3, 7}));
  EXPECT_EQ(sparse.csr.indices, (std::vector<std::int64_t>{0, 2, 1, 0, 1, 2, 4}));
}

TEST(Libsvm, BadLinesAreRejectedWithFileAndLine) {
  const std::string dir = scratch_dir();
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"zero.svm", "1 0:1\n", "line 1"},
      {"order.svm", "1 1:1\n2 3:1 2:1\n", "strictly increasing"},
      {"token.svm", "1 1:1\n1 2=4\n", "expected index:value"},
      {"label.svm", "1:3 2:4\n", "expected a label"},
      {"value.svm", "1 1:abc\n", "bad feature value"},
      {"nan.svm", "1 1:nan\n", "non-finite"},
      {"empty.svm", "# nothing\n", "no data lines"}};
  for (const auto& [name, text, problem] : cases) {
    const std::string path = dir + "/" + name;
    write_file(path, text);
    EXPECT_TRUE(fails_everywhere_with([&] { read_libsvm(path, {}); }, {path, problem})) << name;
  }
  LibsvmOptions narrow;
  narrow.features = 2;
  write_file(dir + "/wide.svm", "1 3:1\n");
  EXPECT_TRUE(fails_everywhere_with([&] { read_libsvm(dir + "/wide.svm", narrow); },
                                    {dir + "/wide.svm", "exceeds -features 2"}));
}

TEST(Csv, HeaderLabelColumnAndGzip) {
  const std::string dir = scratch_dir();
  const std::string text = "label,a,b\n1,0.5,2\n0,-1,3e2\n\n2, 4 ,5\n";
  write_file(dir + "/a.csv", text);
  write_file(dir + "/a.csv.gz", text, true);
  CsvOptions o;
  o.label_column = 0;
  for (const std::string name : {"/a.csv", "/a.csv.gz"}) {
    Table t = read_csv(dir + name, o);
    ASSERT_EQ(t.rows, 3);
    ASSERT_EQ(t.cols, 2);
    RowMatrix expected(3, 2);
    expected << 0.5, 2, -1, 300, 4, 5;
    EXPECT_EQ(t.X, expected);
    EXPECT_EQ(t.y, Eigen::Vector3d(1, 0, 2));
  }
  EXPECT_EQ(detect_format(dir + "/a.csv"), "csv");
  // Without a label column every field is a feature.
  Table all = read_csv(dir + "/a.csv", {});
  EXPECT_EQ(all.cols, 3);
  EXPECT_EQ(all.y.size(), 0);
}

TEST(Csv, BadRowsAreRejectedWithFileAndLine) {
  const std::string dir = scratch_dir();
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"ragged.csv", "1,2,3\n4,5\n", "line 2: 2 fields, expected 3"},
      {"word.csv", "1,2\n3,x\n", "is not a number"},
      {"nan.csv", "1,2\nnan,1\n", "not finite"},
      {"empty_field.csv", "1,2\n3,\n", "line 2"},
      {"binary.csv", std::string("1,2\n\0\0", 6), "not a text file"}};
  for (const auto& [name, text, problem] : cases) {
    const std::string path = dir + "/" + name;
    write_file(path, text);
    EXPECT_TRUE(fails_everywhere_with([&] { read_csv(path, {}); }, {path, problem})) << name;
  }
}

TEST(Labels, TextLabelsOnePerLine) {
  const std::string dir = scratch_dir();
  write_file(dir + "/l.txt", "1\n-1\n\n1\n");
  EXPECT_EQ(read_labels(dir + "/l.txt"), Eigen::Vector3d(1, -1, 1));
  write_file(dir + "/bad.txt", "1\ntwo\n");
  EXPECT_TRUE(fails_everywhere_with([&] { read_labels(dir + "/bad.txt"); },
                                    {dir + "/bad.txt", "line 2"}));
}
