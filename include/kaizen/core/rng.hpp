// kaizen/core/rng.hpp - the random engine kaizen uses, and distributions that give the same numbers
// under every standard library (std:: distributions are implementation-defined, which would break
// "same seed, same run" across GCC/Clang and make saved curricula non-portable).
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>

#include <kaizen/core/error.hpp>

namespace kaizen {

/// The engine: 64-bit Mersenne twister. Its state round-trips exactly through save/restore below.
using Rng = std::mt19937_64;

/// Uniform double in [0, 1) from the top 53 bits of one draw.
[[nodiscard]] inline double uniform01(Rng& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

/// Uniform integer in [0, n) without modulo bias (rejects the short tail of the 64-bit range).
[[nodiscard]] inline std::uint64_t uniform_index(Rng& rng, std::uint64_t n) {
  KAIZEN_CHECK(n > 0, "uniform_index: the range must be non-empty, got n = ", n);
  const std::uint64_t threshold = (0 - n) % n;  // 2^64 mod n
  std::uint64_t x = rng();
  while (x < threshold) x = rng();
  return x % n;
}

/// Standard normal draw (Box-Muller on uniform01; one value per call, deterministic).
[[nodiscard]] inline double normal01(Rng& rng) {
  double u1 = uniform01(rng);
  while (u1 <= 0.0) u1 = uniform01(rng);
  const double u2 = uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * 3.14159265358979323846 * u2);
}

/// Gamma(shape, 1) draw (Marsaglia-Tsang), shape > 0. Used for Beta and Dirichlet draws.
[[nodiscard]] inline double gamma_draw(Rng& rng, double shape) {
  KAIZEN_CHECK(shape > 0.0 && std::isfinite(shape), "gamma_draw: shape must be positive and finite, got ",
               shape);
  if (shape < 1.0) {
    const double u = uniform01(rng);
    return gamma_draw(rng, shape + 1.0) * std::pow(u > 0.0 ? u : 0x1.0p-53, 1.0 / shape);
  }
  const double d = shape - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  while (true) {
    double x = 0.0, v = 0.0;
    do {
      x = normal01(rng);
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    const double u = uniform01(rng);
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
    if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
  }
}

/// Beta(a, b) draw from two gamma draws.
[[nodiscard]] inline double beta_draw(Rng& rng, double a, double b) {
  const double x = gamma_draw(rng, a);
  const double y = gamma_draw(rng, b);
  return x / (x + y);
}

/// The engine's full state as text (std::mt19937_64's stream format); restores exactly.
[[nodiscard]] inline std::string save_rng(const Rng& rng) {
  std::ostringstream out;
  out << rng;
  return out.str();
}

/// Restores an engine saved by save_rng; throws kaizen::Error on malformed text.
inline void restore_rng(Rng& rng, const std::string& state) {
  std::istringstream in(state);
  Rng restored;
  in >> restored;
  KAIZEN_CHECK(!in.fail(), "restore_rng: the text is not a saved std::mt19937_64 state (",
               state.size(), " characters)");
  rng = restored;
}

}  // namespace kaizen
