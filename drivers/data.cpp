// parasol-data: prepares input data sets in parasol's HDF5 layout (docs/input-format.md).
//   parasol-data <subcommand> [options]     (parasol-data <subcommand> -help lists them)
// The work is done by the library (include/parasol/data_tools.hpp); this file reads options,
// validates them before any work, calls the library and reports on rank 0.
#include <parasol/data_tools.hpp>
#include <parasol/driver.hpp>
#include <parasol/error.hpp>
#include <parasol/options.hpp>

#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace {

using namespace parasol;
using namespace parasol::data;

const char* kHelp =
    "parasol-data: prepare input data sets (HDF5: /X N x D, /y N; see docs/input-format.md)\n"
    "usage: parasol-data <subcommand> [options]; parasol-data <subcommand> -help\n"
    "subcommands:\n"
    "  convert      IDX (raw or gzip), LIBSVM or CSV to HDF5\n"
    "  split        seeded train/validation/test split\n"
    "  subset       keep some classes (+1/-1 labels for two), or the first rows\n"
    "  corrupt      replace labels at a rate with other classes, keep /y_true\n"
    "  standardize  zero mean, unit variance per feature\n"
    "  bars         synthetic bars images (sparse coding benchmark)\n"
    "  patches      random square patches cut from image rows\n"
    "  info         print shape, fields and checksum of a data set\n";

bool root(MPI_Comm comm) {
  int r = 0;
  MPI_Comm_rank(comm, &r);
  return r == 0;
}

void require(MPI_Comm comm, const std::string& value, const std::string& option) {
  check_all(comm, !value.empty(), "option -" + option + " is required (see -help)");
}

// The description attribute: what made the file.
std::string describe(const std::string& subcommand) {
  std::string text = "parasol-data " + subcommand + " ";
  for (char c : options_as_text()) text += c == '\n' ? ' ' : c;
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

std::string shape_text(const Rows& rows) {
  std::string s = std::to_string(rows.rows.global) + " x " + std::to_string(rows.cols);
  for (const auto& [name, values] : rows.fields) s += ", /" + name;
  for (const auto& [name, r] : rows.extras) s += ", /" + name;
  return s;
}

// Runs a transform; its errors (already collective) are prefixed with the input file.
template <class Work>
Rows on_file(const std::string& input, Work&& work) {
  try {
    return work();
  } catch (const Error& e) {
    throw Error(input + ": " + e.what());
  }
}

void report(MPI_Comm comm, const std::string& path, const Rows& rows) {
  if (root(comm)) std::printf("wrote %s: %s\n", path.c_str(), shape_text(rows).c_str());
}

int convert(MPI_Comm comm) {
  std::string input, labels, output, format;
  LibsvmOptions libsvm;
  CsvOptions csv;
  bool scale = false;
  {
    OptionReader r(comm, "", "parasol-data convert: IDX, LIBSVM or CSV to HDF5");
    input = r.string("input", "Input file (IDX raw or .gz, LIBSVM text, CSV; gzip allowed)", "");
    labels = r.string("labels", "Labels file (IDX 1-D or text, one per line)", "");
    output = r.string("output", "Output HDF5 file", "");
    format = r.choice("format", "Input format", {"auto", "idx", "libsvm", "csv"}, "auto");
    libsvm.features = r.integer("features", "LIBSVM: number of features D (0: largest index)", 0, 0);
    libsvm.zero_based = r.flag("zero_based", "LIBSVM: indices start at 0", false);
    libsvm.sparse = r.flag("sparse", "LIBSVM: write CSR instead of dense /X", false);
    csv.label_column = r.integer("label_column", "CSV: 0-based label column (-1: none)", -1, -1);
    scale = r.flag("scale", "Map values to [0,1] (byte images: /255; else min-max)", false);
  }
  if (finish_options(comm)) return 0;
  require(comm, input, "input");
  require(comm, output, "output");
  check_all(comm, !(csv.label_column >= 0 && !labels.empty()),
            "give either -label_column or -labels, not both");

  Table table;
  collective(comm, [&] {
    if (!root(comm)) return;  // one process parses; the others take part in the writing
    const std::string kind = format == "auto" ? detect_format(input) : format;
    if (kind == "idx") {
      table = read_idx_table(input, labels);
    } else {
      table = kind == "libsvm" ? read_libsvm(input, libsvm) : read_csv(input, csv);
      if (!labels.empty()) {
        table.y = read_labels(labels);
        if (table.y.size() != table.rows)
          throw Error(labels + ": " + std::to_string(table.y.size()) + " labels for " +
                      std::to_string(table.rows) + " rows in " + input);
      }
    }
    if (scale) scale_to_unit(table);
  });
  const std::string summary = std::to_string(table.rows) + " x " + std::to_string(table.cols) +
                              (table.sparse ? " (CSR)" : "") + (table.y.size() ? ", /y" : "");
  save_table(comm, output, std::move(table), describe("convert"));
  if (root(comm)) std::printf("wrote %s: %s\n", output.c_str(), summary.c_str());
  return 0;
}

int split_command(MPI_Comm comm) {
  std::string input, train, validation, test;
  std::vector<double> fractions;
  std::int64_t seed = 1;
  {
    OptionReader r(comm, "", "parasol-data split: seeded train/validation/test split");
    input = r.string("input", "Input HDF5 data set", "");
    train = r.string("train", "Output: training part", "");
    validation = r.string("validation", "Output: validation part (optional)", "");
    test = r.string("test", "Output: test part", "");
    fractions = r.reals("fractions",
                        "Fractions train,test or train,validation,test (adding up to 1)", {});
    seed = r.integer("seed", "Seed of the permutation", 1, 0);
  }
  if (finish_options(comm)) return 0;
  require(comm, input, "input");
  require(comm, train, "train");
  require(comm, test, "test");
  const std::size_t parts = validation.empty() ? 2 : 3;
  check_all(comm, fractions.size() == parts,
            "option -fractions needs " + std::to_string(parts) + " values (" +
                (parts == 2 ? "train,test" : "train,validation,test") + "), got " +
                std::to_string(fractions.size()));
  std::string why;
  try {
    split_sizes(100, fractions);
  } catch (const Error& e) {
    why = std::string("option -fractions: ") + e.what();
  }
  check_all(comm, why.empty(), why);

  Rows in = load_rows(comm, input);
  std::vector<Rows> out = split(comm, in, fractions, static_cast<std::uint64_t>(seed));
  std::vector<std::string> names = {train};
  if (!validation.empty()) names.push_back(validation);
  names.push_back(test);
  for (std::size_t k = 0; k < names.size(); ++k) {
    check_all(comm, out[k].rows.global > 0,
              names[k] + ": this part would be empty; change -fractions");
  }
  for (std::size_t k = 0; k < names.size(); ++k) {
    save_rows(comm, names[k], out[k], describe("split"));
    report(comm, names[k], out[k]);
  }
  return 0;
}

int subset_command(MPI_Comm comm) {
  std::string input, output, labels;
  SubsetOptions options;
  {
    OptionReader r(comm, "", "parasol-data subset: keep some classes or the first rows");
    input = r.string("input", "Input HDF5 data set", "");
    output = r.string("output", "Output HDF5 file", "");
    options.classes = r.reals("classes", "Classes to keep, e.g. 0,6 (empty: all rows)", {});
    labels = r.choice("labels",
                      "New labels: auto (+1/-1 for two classes, else original), pm1 (first "
                      "class +1, second -1), original, index (position in -classes)",
                      {"auto", "pm1", "original", "index"}, "auto");
    options.max_rows = r.integer("max", "Keep at most this many rows, the first ones (-1: all)",
                                 -1, -1);
  }
  if (finish_options(comm)) return 0;
  require(comm, input, "input");
  require(comm, output, "output");
  const std::map<std::string, LabelMode> modes = {{"auto", LabelMode::Auto},
                                                  {"pm1", LabelMode::PlusMinusOne},
                                                  {"original", LabelMode::Original},
                                                  {"index", LabelMode::Index}};
  options.labels = modes.at(labels);
  check_all(comm, options.labels != LabelMode::PlusMinusOne || options.classes.size() == 2,
            "option -labels pm1 needs exactly two -classes");
  check_all(comm, options.labels != LabelMode::Index || !options.classes.empty(),
            "option -labels index needs -classes");
  check_all(comm, !options.classes.empty() || options.max_rows >= 0,
            "give -classes, -max or both (otherwise the subset is the whole input)");
  std::set<double> distinct(options.classes.begin(), options.classes.end());
  check_all(comm, distinct.size() == options.classes.size(), "option -classes: repeated class");

  Rows in = load_rows(comm, input);
  Rows out = on_file(input, [&] { return subset(comm, in, options); });
  save_rows(comm, output, out, describe("subset"));
  report(comm, output, out);
  return 0;
}

int corrupt_command(MPI_Comm comm) {
  std::string input, output;
  double rate = 0;
  std::int64_t seed = 1, num_classes = 0;
  {
    OptionReader r(comm, "", "parasol-data corrupt: replace labels at a rate, keep /y_true");
    input = r.string("input", "Input HDF5 data set with /y", "");
    output = r.string("output", "Output HDF5 file", "");
    rate = r.real("rate", "Probability that a label is replaced by another class", 0.1, 0.0, 1.0);
    seed = r.integer("seed", "Seed (draws keyed by global row)", 1, 0);
    num_classes = r.integer("num_classes",
                            "Number of classes K, labels 0..K-1 (ignored for +1/-1 labels)", 10, 2);
  }
  if (finish_options(comm)) return 0;
  require(comm, input, "input");
  require(comm, output, "output");
  std::int64_t changed = 0;
  Rows in = load_rows(comm, input);
  Rows out = on_file(input, [&] {
    return corrupt_labels(comm, in, rate, static_cast<std::uint64_t>(seed), num_classes, &changed);
  });
  save_rows(comm, output, out, describe("corrupt"));
  report(comm, output, out);
  if (root(comm))
    std::printf("  %lld of %lld labels replaced (%.4f)\n", static_cast<long long>(changed),
                static_cast<long long>(out.rows.global),
                double(changed) / double(out.rows.global));
  return 0;
}

int standardize_command(MPI_Comm comm) {
  std::string input, output, reference;
  {
    OptionReader r(comm, "", "parasol-data standardize: zero mean, unit variance per feature");
    input = r.string("input", "Input HDF5 data set", "");
    output = r.string("output", "Output HDF5 file (stores /mean and /std)", "");
    reference = r.string("using",
                         "Take /mean and /std from this standardized file (e.g. the training set)",
                         "");
  }
  if (finish_options(comm)) return 0;
  require(comm, input, "input");
  require(comm, output, "output");
  Rows in = load_rows(comm, input);
  Rows out;
  if (reference.empty()) {
    out = standardize(comm, in);
  } else {
    Rows stats = load_rows(comm, reference);
    check_all(comm, stats.extras.count("mean") && stats.extras.count("std"),
              reference + ": no /mean and /std (not written by parasol-data standardize)");
    const auto& m = stats.extras.at("mean").values;
    const auto& s = stats.extras.at("std").values;
    Eigen::VectorXd mean = Eigen::Map<const Eigen::VectorXd>(m.data(), m.size());
    Eigen::VectorXd stddev = Eigen::Map<const Eigen::VectorXd>(s.data(), s.size());
    out = on_file(input, [&] { return standardize(comm, in, &mean, &stddev); });
  }
  save_rows(comm, output, out, describe("standardize"));
  report(comm, output, out);
  return 0;
}

int bars_command(MPI_Comm comm) {
  BarsOptions o;
  std::string output, signs;
  {
    OptionReader r(comm, "", "parasol-data bars: synthetic bars images");
    o.H = r.integer("H", "Number of bars (H/2 horizontal, H/2 vertical; image H/2 x H/2)", 10, 2);
    o.amplitude = r.real("amplitude", "Bar amplitude (W_true = amplitude * bars)", 10.0);
    o.sigma = r.real("sigma", "Noise standard deviation", 2.0, 0.0);
    o.pi = r.real("pi", "Probability that a bar is active", 0.2, 0.0, 1.0);
    o.N = r.integer("N", "Number of images", 1000, 1);
    o.seed = static_cast<std::uint64_t>(r.integer("seed", "Seed (draws keyed by image)", 1, 0));
    signs = r.choice("signs", "Signs of the bars", {"positive", "random"}, "positive");
    output = r.string("output", "Output HDF5 file (/X, /W_true)", "");
  }
  if (finish_options(comm)) return 0;
  require(comm, output, "output");
  check_all(comm, o.H % 2 == 0, "option -H must be even (H/2 bars each way)");
  o.random_signs = signs == "random";
  Rows out = make_bars(comm, o);
  save_rows(comm, output, out, describe("bars"));
  report(comm, output, out);
  return 0;
}

int patches_command(MPI_Comm comm) {
  PatchOptions o;
  std::string input, output;
  {
    OptionReader r(comm, "", "parasol-data patches: random patches of square images");
    input = r.string("input", "Input HDF5 data set of square images (D = side^2)", "");
    output = r.string("output", "Output HDF5 file", "");
    o.size = r.integer("size", "Patch side in pixels", 8, 1);
    o.count = r.integer("count", "Number of patches", 20000, 1);
    o.seed = static_cast<std::uint64_t>(r.integer("seed", "Seed (draws keyed by patch)", 1, 0));
    o.center = r.flag("center", "Remove each patch's mean", false);
  }
  if (finish_options(comm)) return 0;
  require(comm, input, "input");
  require(comm, output, "output");
  Rows in = load_rows(comm, input);
  Rows out = on_file(input, [&] { return cut_patches(comm, in, o); });
  save_rows(comm, output, out, describe("patches"));
  report(comm, output, out);
  return 0;
}

int info_command(MPI_Comm comm) {
  std::string input;
  {
    OptionReader r(comm, "", "parasol-data info: describe a data set");
    input = r.string("input", "Input HDF5 data set", "");
  }
  if (finish_options(comm)) return 0;
  require(comm, input, "input");
  Dataset ds = load_dataset(comm, input, LoadOptions{false, false});
  Rows rows = load_rows(comm, input);
  if (root(comm))
    std::printf("%s: %s%s, crc32 %u\n", input.c_str(), shape_text(rows).c_str(),
                ds.sparse ? " (CSR)" : "", static_cast<unsigned>(ds.crc32));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // The subcommand is the first argument; PETSc sees only the options after it.
  std::string subcommand;
  std::vector<char*> args(argv, argv + argc);
  if (argc > 1 && argv[1][0] != '-') {
    subcommand = argv[1];
    args.erase(args.begin() + 1);
  }
  int count = static_cast<int>(args.size());
  args.push_back(nullptr);
  const std::map<std::string, std::function<int(MPI_Comm)>> commands = {
      {"convert", convert},         {"split", split_command},
      {"subset", subset_command},   {"corrupt", corrupt_command},
      {"standardize", standardize_command}, {"bars", bars_command},
      {"patches", patches_command}, {"info", info_command}};
  return driver_main(count, args.data(), "parasol-data", kHelp, [&](Session& session) {
    MPI_Comm comm = session.comm();
    if (subcommand.empty()) {
      if (help_requested()) return 0;  // PETSc printed kHelp
      throw Error("missing subcommand; one of: convert, split, subset, corrupt, standardize, "
                  "bars, patches, info (parasol-data -help)");
    }
    auto it = commands.find(subcommand);
    if (it == commands.end())
      throw Error("unknown subcommand '" + subcommand +
                  "'; one of: convert, split, subset, corrupt, standardize, bars, patches, info");
    return it->second(comm);
  });
}
