#include <petscsys.h>
#include <parasol/error.hpp>
#include <parasol/options.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <set>
#include <sstream>

namespace parasol {
namespace {

// Every option name read through an OptionReader, for "did you mean" suggestions.
std::set<std::string>& known_options() {
  static std::set<std::string> names;
  return names;
}

// The effective value of every option read (given or default), in the order read, for the
// run file's record of the full option set.
std::vector<std::pair<std::string, std::string>>& effective_options() {
  static std::vector<std::pair<std::string, std::string>> values;
  return values;
}

void record_effective(const std::string& name, const std::string& value) {
  auto& values = effective_options();
  for (auto& entry : values)
    if (entry.first == name) {
      entry.second = value;
      return;
    }
  values.emplace_back(name, value);
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// PETSc's own run-time options that are consulted late (at PetscFinalize) or by objects
// created after option validation; they are not "unknown".
bool is_petsc_runtime_option(const std::string& name) {
  static const char* prefixes[] = {"log", "malloc", "memory_view", "options_", "on_error",
                                   "fp_trap", "no_signal_handler", "info", "viewer_",
                                   "objects_dump", "check_pointer", "history", "mpi_",
                                   "debugger", "start_in_debugger", "stop_for_debugger",
                                   "skip_petscrc", "saws", "display", "use_gpu_aware_mpi",
                                   "help", "version", "petsc", "error_output",
                                   "nox", "x_virtual", "sf_", "vecscatter", "device_",
                                   "use_gpu"};
  for (const char* p : prefixes)
    if (name.rfind(p, 0) == 0) return true;
  return false;
}

std::string join(const std::vector<std::string>& items, const char* separator) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? separator : "") + items[i];
  return out;
}

std::string format_real(double x) {
  std::ostringstream s;
  s << x;
  return s.str();
}

}  // namespace

OptionReader::OptionReader(MPI_Comm comm, const std::string& prefix, const std::string& title)
    : comm_(comm), prefix_(prefix) {
  auto* items = new PetscOptionItems{};
  items->count = 1;  // a single pass: parasol does not publish options to a GUI
  items_ = items;
  PARASOL_PETSC(PetscOptionsBegin_Private(items, comm, prefix.empty() ? nullptr : prefix.c_str(),
                                          title.c_str(), nullptr));
}

OptionReader::~OptionReader() {
  auto* items = static_cast<PetscOptionItems*>(items_);
  PetscOptionsEnd_Private(items);
  delete items;
}

std::string OptionReader::full_name(const std::string& name) const {
  return "-" + prefix_ + name;
}

bool OptionReader::was_set(const std::string& name) const {
  return std::find(set_.begin(), set_.end(), name) != set_.end();
}

std::string OptionReader::string(const std::string& name, const std::string& help,
                                 const std::string& def) {
  known_options().insert(prefix_ + name);
  auto* items = static_cast<PetscOptionItems*>(items_);
  std::vector<char> buffer(4096, '\0');
  std::copy(def.begin(), def.end(), buffer.begin());
  PetscBool set = PETSC_FALSE;
  const std::string opt = "-" + name;
  PARASOL_PETSC(PetscOptionsString_Private(items, opt.c_str(), help.c_str(), nullptr,
                                           def.c_str(), buffer.data(), buffer.size(), &set));
  if (set) set_.push_back(name);
  const std::string value = set ? std::string(buffer.data()) : def;
  record_effective(prefix_ + name, value);
  return value;
}

std::int64_t OptionReader::integer(const std::string& name, const std::string& help,
                                   std::int64_t def, std::int64_t min, std::int64_t max) {
  const std::string text = string(name, help, std::to_string(def));
  errno = 0;
  char* end = nullptr;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE)
    throw Error("option " + full_name(name) + ": '" + text + "' is not an integer");
  if (value < min || value > max)
    throw Error("option " + full_name(name) + ": " + text + " is out of range [" +
                std::to_string(min) + ", " + std::to_string(max) + "]");
  return value;
}

double OptionReader::real(const std::string& name, const std::string& help, double def,
                          double min, double max) {
  const std::string text = string(name, help, format_real(def));
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0')
    throw Error("option " + full_name(name) + ": '" + text + "' is not a number");
  if (!std::isfinite(value))
    throw Error("option " + full_name(name) + ": value must be finite, got " + text);
  if (value < min || value > max)
    throw Error("option " + full_name(name) + ": " + text + " is out of range [" +
                format_real(min) + ", " + format_real(max) + "]");
  return value;
}

bool OptionReader::flag(const std::string& name, const std::string& help, bool def) {
  known_options().insert(prefix_ + name);
  auto* items = static_cast<PetscOptionItems*>(items_);
  PetscBool value = def ? PETSC_TRUE : PETSC_FALSE, set = PETSC_FALSE;
  const std::string opt = "-" + name;
  PARASOL_PETSC(
      PetscOptionsBool_Private(items, opt.c_str(), help.c_str(), nullptr, value, &value, &set));
  if (set) set_.push_back(name);
  record_effective(prefix_ + name, value == PETSC_TRUE ? "true" : "false");
  return value == PETSC_TRUE;
}

std::string OptionReader::choice(const std::string& name, const std::string& help,
                                 const std::vector<std::string>& choices,
                                 const std::string& def) {
  const std::string value = string(name, help + " (one of " + join(choices, ", ") + ")", def);
  if (std::find(choices.begin(), choices.end(), value) == choices.end())
    throw Error("option " + full_name(name) + ": unknown value '" + value +
                "'; valid choices are: " + join(choices, ", "));
  return value;
}

std::vector<double> OptionReader::reals(const std::string& name, const std::string& help,
                                        const std::vector<double>& def) {
  std::vector<std::string> parts;
  for (double x : def) parts.push_back(format_real(x));
  const std::string text = string(name, help, join(parts, ","));
  std::vector<double> values;
  std::string token;
  std::istringstream in(text);
  while (std::getline(in, token, ',')) {
    std::istringstream pieces(token);
    std::string piece;
    while (std::getline(pieces, piece, ':')) {
      char* end = nullptr;
      const double value = std::strtod(piece.c_str(), &end);
      if (piece.empty() || *end != '\0' || !std::isfinite(value))
        throw Error("option " + full_name(name) + ": '" + piece + "' in '" + text +
                    "' is not a finite number");
      values.push_back(value);
    }
  }
  return values;
}

bool help_requested() {
  PetscBool help = PETSC_FALSE;
  PetscOptionsHasHelp(nullptr, &help);
  return help == PETSC_TRUE;
}

void reject_unknown_options(MPI_Comm comm) {
  PetscInt count = 0;
  char** names = nullptr;
  char** values = nullptr;
  PARASOL_PETSC(PetscOptionsLeftGet(nullptr, &count, &names, &values));
  std::vector<std::string> unknown;
  for (PetscInt i = 0; i < count; ++i) {
    const std::string name = names[i];
    if (is_petsc_runtime_option(name)) continue;
    std::string entry = "-" + name;
    std::string best;
    std::size_t best_distance = 3;  // suggest only close matches
    for (const auto& known : known_options()) {
      const std::size_t d = edit_distance(name, known);
      if (d < best_distance) best_distance = d, best = known;
    }
    if (!best.empty()) entry += " (did you mean -" + best + "?)";
    unknown.push_back(entry);
  }
  PetscOptionsLeftRestore(nullptr, &count, &names, &values);
  // The options database is identical on every rank, so every rank reaches the same verdict;
  // check_all keeps that true even if it ever is not.
  check_all(comm, unknown.empty(),
            "unknown option" + std::string(unknown.size() > 1 ? "s " : " ") +
                join(unknown, ", ") + " (see -help for the options this program takes)");
}

bool CommonOptions::IsValid(std::string* why) const {
  auto reject = [&](const std::string& text) {
    if (why) *why = text;
    return false;
  };
  if (output.empty()) return reject("-output must name a file");
  if (max_it < 0) return reject("-max_it must be >= 0");
  if (!(tol > 0.0)) return reject("-tol must be positive");
  if (checkpoint_every < 0) return reject("-checkpoint_every must be >= 0");
  if (checkpoint_every > 0 && checkpoint.empty())
    return reject("-checkpoint_every needs -checkpoint FILE");
  if (!restart.empty() && restart == output)
    return reject("-restart and -output name the same file");
  return true;
}

CommonOptions read_common_options(MPI_Comm comm, const std::string& solver,
                                  const CommonOptions& defaults) {
  CommonOptions o = defaults;
  {
    OptionReader r(comm, "", "Common options (every parasol driver)");
    o.data = r.string("data", "Input data set (HDF5, see docs/input-format.md)", defaults.data);
    const std::string default_output =
        defaults.output.empty() ? "parasol-" + solver + ".h5" : defaults.output;
    o.output = r.string("output", "Run file to write (HDF5, see docs/output-format.md)",
                        default_output);
    o.seed = r.integer("seed", "Random seed (results do not depend on the rank count)",
                       defaults.seed, 0);
    o.max_it = r.integer("max_it", "Maximum number of iterations", defaults.max_it, 0);
    o.tol = r.real("tol", "Convergence tolerance", defaults.tol, 0.0);
    o.checkpoint = r.string("checkpoint", "Checkpoint file (written atomically)",
                            defaults.checkpoint);
    o.checkpoint_every = r.integer(
        "checkpoint_every", "Checkpoint every N iterations (0: only on SIGUSR1 and at the end)",
        defaults.checkpoint_every, 0);
    o.restart = r.string("restart", "Resume from this checkpoint file", defaults.restart);
    o.monitor = r.flag("monitor", "Print one line per iteration on rank 0", defaults.monitor);
    o.history_flush_interval = r.real(
        "history_flush_interval",
        "Seconds between writes of /history rows to the run file (0: every iteration)",
        defaults.history_flush_interval, 0.0);
  }
  std::string why;
  check_all(comm, o.IsValid(&why), why);
  return o;
}

std::string options_as_text() {
  // Every option parasol read, with its effective value (defaults included), then anything
  // else that was given (PETSc's own, sub-solvers' such as -ksp_type), one per line.
  std::string out;
  std::set<std::string> listed;
  for (const auto& [name, value] : effective_options()) {
    out += "-" + name + (value.empty() ? "" : " " + value) + "\n";
    listed.insert(name);
  }
  char* text = nullptr;
  PARASOL_PETSC(PetscOptionsGetAll(nullptr, &text));
  std::istringstream given(text ? text : "");
  PetscFree(text);
  std::string token, pending;
  auto emit = [&] {
    if (!pending.empty() && !listed.count(pending.substr(1, pending.find(' ') - 1)))
      out += pending + "\n";
    pending.clear();
  };
  while (given >> token) {
    const bool is_name = token.size() > 1 && token[0] == '-' &&
                         std::isalpha(static_cast<unsigned char>(token[1]));
    if (is_name) {
      emit();
      pending = token;
    } else if (!pending.empty()) {
      pending += " " + token;
    }
  }
  emit();
  if (!out.empty()) out.pop_back();
  return out;
}

}  // namespace parasol
