#pragma once
// Counter-based random numbers keyed by (seed, purpose, index). A stream for global row i
// is the same whichever rank owns row i, so results do not depend on the number of ranks.
// Never seed by rank.
#include <cstdint>
#include <string_view>

namespace parasol {

// A stable 64-bit id for a purpose string ("sparsecode.init", "relu.gates").
constexpr std::uint64_t purpose_id(std::string_view purpose) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (char c : purpose) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

// SplitMix64's finalizer: a bijective 64-bit mix with full avalanche. Random is built on it;
// use it directly to hash keys (pattern signatures, stream keys).
std::uint64_t mix64(std::uint64_t z);

class Random {
 public:
  Random(std::uint64_t seed, std::uint64_t purpose, std::uint64_t index = 0);
  Random(std::uint64_t seed, std::string_view purpose, std::uint64_t index = 0)
      : Random(seed, purpose_id(purpose), index) {}

  std::uint64_t next_u64();
  double uniform();                     // [0, 1)
  double normal();                      // standard normal
  std::uint64_t below(std::uint64_t n);  // uniform integer in [0, n)

 private:
  std::uint64_t key_;
  std::uint64_t counter_ = 0;
  bool have_spare_ = false;
  double spare_ = 0.0;
};

}  // namespace parasol
