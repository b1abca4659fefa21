#include <parasol/random.hpp>

#include <cmath>

namespace parasol {
std::uint64_t mix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

Random::Random(std::uint64_t seed, std::uint64_t purpose, std::uint64_t index)
    : key_(mix64(mix64(mix64(seed) ^ purpose) ^ index)) {}

std::uint64_t Random::next_u64() { return mix64(key_ + 0x632be59bd9b4e019ull * ++counter_); }

double Random::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

double Random::normal() {
  if (have_spare_) {
    have_spare_ = false;
    return spare_;
  }
  double u1 = 0.0;
  while (u1 <= 0.0) u1 = uniform();
  const double u2 = uniform();
  const double radius = std::sqrt(-2.0 * std::log(u1));
  const double angle = 2.0 * M_PI * u2;
  spare_ = radius * std::sin(angle);
  have_spare_ = true;
  return radius * std::cos(angle);
}

std::uint64_t Random::below(std::uint64_t n) {
  // Rejection keeps the draw exactly uniform.
  const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  std::uint64_t x;
  do x = next_u64(); while (x >= limit);
  return x % n;
}

}  // namespace parasol
