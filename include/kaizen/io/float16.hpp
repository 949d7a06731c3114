// kaizen/io/float16.hpp - IEEE binary16 ("half", F16) and bfloat16 (BF16) <-> float32, bit-exact.
//
// Widening (F16 -> F32, BF16 -> F32) is exact: every half and bfloat16 value is a float.
//   F16 bits s eeeee mmmmmmmmmm: e = 0 -> (-1)^s * m * 2^-24 (zero and subnormals),
//   e = 31 -> inf (m = 0) or NaN (payload m << 13 kept), else (-1)^s * (1 + m/1024) * 2^(e-15).
//   BF16 is the upper 16 bits of a float32.
// Narrowing (F32 -> F16, F32 -> BF16) rounds to nearest, ties to even, as IEEE 754's default mode
// (numpy's astype(float16), torch's .to(torch.bfloat16)): finite values >= 65520 become inf in F16;
// values <= 2^-25 in magnitude become (signed) zero; between the two, F16 subnormals are rounded
// from the exact value. NaN stays NaN: F16 keeps the top payload bits (forced non-zero, as numpy),
// BF16 gives the canonical quiet NaN 0x7FC0 (as torch).
//
// Reference: IEEE 754-2019 §3.6 (binary16), Google Brain bfloat16 (the float32 upper half).
#pragma once

#include <bit>
#include <cstdint>

namespace kaizen::io {

/// The float32 whose value the half-precision bit pattern `h` encodes (exact).
[[nodiscard]] inline float half_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1Fu;
  std::uint32_t mantissa = h & 0x3FFu;
  std::uint32_t bits = 0;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal: normalise so the leading 1 sits at bit 10
      std::uint32_t e = 113;  // 127 - 15 + 1
      while ((mantissa & 0x400u) == 0) {
        mantissa <<= 1;
        --e;
      }
      bits = sign | (e << 23) | ((mantissa & 0x3FFu) << 13);
    }
  } else if (exponent == 31) {
    bits = sign | 0x7F800000u | (mantissa << 13);
  } else {
    bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  }
  return std::bit_cast<float>(bits);
}

/// The half-precision bit pattern nearest to `value` (ties to even; see the header comment).
[[nodiscard]] inline std::uint16_t float_to_half(float value) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(value);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t ax = x & 0x7FFFFFFFu;
  if (ax >= 0x7F800000u) {  // inf or NaN
    if (ax == 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7C00u);
    auto payload = static_cast<std::uint16_t>(0x7C00u | ((ax & 0x7FFFFFu) >> 13));
    if (payload == 0x7C00u) ++payload;  // keep it a NaN
    return static_cast<std::uint16_t>(sign | payload);
  }
  if (ax >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // >= 65520 -> inf
  if (ax < 0x38800000u) {                                                    // below 2^-14: subnormal
    if (ax <= 0x33000000u) return sign;                                      // <= 2^-25 -> zero
    const std::uint32_t e = ax >> 23;
    const std::uint32_t m = (ax & 0x7FFFFFu) | 0x800000u;
    const std::uint32_t shift = 126u - e;  // value / 2^-24 = m * 2^(e-126); 14 <= shift <= 24
    std::uint32_t result = m >> shift;
    const std::uint32_t dropped = m & ((1u << shift) - 1u);
    const std::uint32_t halfway = 1u << (shift - 1u);
    if (dropped > halfway || (dropped == halfway && (result & 1u) != 0)) ++result;
    return static_cast<std::uint16_t>(sign | result);
  }
  std::uint32_t r = ax - 0x38000000u;  // rebias the exponent: 127 -> 15
  r += 0xFFFu + ((r >> 13) & 1u);      // round to nearest even on the 13 dropped bits
  return static_cast<std::uint16_t>(sign | (r >> 13));
}

/// The float32 whose value the bfloat16 bit pattern `b` encodes (exact).
[[nodiscard]] inline float bfloat16_to_float(std::uint16_t b) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

/// The bfloat16 bit pattern nearest to `value` (ties to even; NaN -> 0x7FC0).
[[nodiscard]] inline std::uint16_t float_to_bfloat16(float value) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(value);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0u;
  return static_cast<std::uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

}  // namespace kaizen::io
