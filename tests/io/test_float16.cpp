// Half / bfloat16 conversions: exhaustive round trips and narrowing against independent oracles
// (GCC's _Float16 soft-float conversion; an exact nearest-candidate search in double for bfloat16).
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>

#include <catch2/catch.hpp>

#include <kaizen/io/float16.hpp>

using kaizen::io::bfloat16_to_float;
using kaizen::io::float_to_bfloat16;
using kaizen::io::float_to_half;
using kaizen::io::half_to_float;

namespace {

// Nearest bfloat16 to x (ties to even), found by comparing the two candidates' distances exactly.
std::uint16_t bf16_oracle(float x) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(x);
  const auto lo = static_cast<std::uint16_t>(bits >> 16);
  const auto hi = static_cast<std::uint16_t>(lo + 1);
  const double dx = x;
  const double dlo = bfloat16_to_float(lo);
  const double dhi = std::isinf(bfloat16_to_float(hi)) && !std::isinf(x)
                         ? std::ldexp(std::copysign(1.0, dx), 128)  // rounding past the largest finite goes to inf
                         : static_cast<double>(bfloat16_to_float(hi));
  const double elo = std::abs(dx - dlo), ehi = std::abs(dhi - dx);
  if (elo < ehi) return lo;
  if (ehi < elo) return hi;
  return (lo & 1) == 0 ? lo : hi;
}

}  // namespace

TEST_CASE("half to float to half is the identity on all 65536 patterns", "[io][float16]") {
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const float f = half_to_float(static_cast<std::uint16_t>(h));
    REQUIRE(float_to_half(f) == h);
    // the widening agrees with the compiler's own _Float16 (for non-NaN values)
    if (!std::isnan(f)) {
      _Float16 x;
      const auto h16 = static_cast<std::uint16_t>(h);
      std::memcpy(&x, &h16, 2);
      REQUIRE(std::bit_cast<std::uint32_t>(static_cast<float>(x)) == std::bit_cast<std::uint32_t>(f));
    }
  }
}

TEST_CASE("float to half rounds to nearest even like the compiler's _Float16", "[io][float16]") {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<std::uint32_t> any;
  // random bit patterns, plus patterns concentrated around the half range (exponents 100..145)
  for (int i = 0; i < 3'000'000; ++i) {
    std::uint32_t bits = any(rng);
    if (i % 2 == 1) bits = (bits & 0x807FFFFFu) | ((100u + bits % 46u) << 23);
    const float f = std::bit_cast<float>(bits);
    if (std::isnan(f)) continue;
    const auto x = static_cast<_Float16>(f);
    std::uint16_t want = 0;
    std::memcpy(&want, &x, 2);
    INFO("float bits " << bits);
    REQUIRE(float_to_half(f) == want);
  }
  // boundary cases by hand: the largest finite, the overflow threshold, ties, subnormals
  CHECK(float_to_half(65504.0f) == 0x7BFF);
  CHECK(float_to_half(65519.996f) == 0x7BFF);
  CHECK(float_to_half(65520.0f) == 0x7C00);
  CHECK(float_to_half(-std::numeric_limits<float>::infinity()) == 0xFC00);
  CHECK(float_to_half(1.0f + 1.0f / 2048) == 0x3C00);           // tie -> even (down)
  CHECK(float_to_half(1.0f + 3.0f / 2048) == 0x3C02);           // tie -> even (up)
  CHECK(float_to_half(std::ldexp(1.0f, -24)) == 0x0001);        // smallest subnormal
  CHECK(float_to_half(std::ldexp(1.0f, -25)) == 0x0000);        // half of it: tie -> 0
  CHECK(float_to_half(std::ldexp(1.5f, -25)) == 0x0001);
  CHECK(float_to_half(-0.0f) == 0x8000);
  CHECK((float_to_half(std::numeric_limits<float>::quiet_NaN()) & 0x7FFF) > 0x7C00);
}

TEST_CASE("bfloat16 narrowing rounds to nearest even and widening is exact", "[io][float16]") {
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const float f = bfloat16_to_float(static_cast<std::uint16_t>(b));
    if (std::isnan(f)) {
      REQUIRE(float_to_bfloat16(f) == 0x7FC0);
      continue;
    }
    REQUIRE(float_to_bfloat16(f) == b);
  }
  std::mt19937_64 rng(2);
  std::uniform_int_distribution<std::uint32_t> any;
  for (int i = 0; i < 2'000'000; ++i) {
    const float f = std::bit_cast<float>(any(rng));
    if (std::isnan(f)) continue;
    INFO("float bits " << std::bit_cast<std::uint32_t>(f));
    REQUIRE(float_to_bfloat16(f) == bf16_oracle(f));
  }
  CHECK(float_to_bfloat16(1.0f + std::ldexp(1.0f, -8)) == 0x3F80);   // tie -> even
  CHECK(float_to_bfloat16(std::numeric_limits<float>::max()) == 0x7F80);
}
