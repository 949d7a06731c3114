// kaizen/io/gguf_quants.hpp - ggml tensor types: block sizes, and dequantisation to float32.
//
// A ggml tensor of n elements in a block-quantised type is n / block_size blocks of type_size bytes
// (the table below is ggml's, as in gguf-py's GGML_QUANT_SIZES; a test compares them). Values are
// reconstructed in float32 exactly as the `gguf` Python package's numpy dequantize does, operation
// for operation, so results are bit-equal (half scales widened exactly, one rounding per * or -):
//   F32: the bits;  F16: exact widening;  BF16: bits << 16.
//   Q8_0 (32 per block: f16 d, int8 q[32]):           x = q * d
//   Q4_0 (32: f16 d, 16 bytes):  q_i = nibble - 8;    x = d * q
//        nibble j < 16 is the low half of byte j, j >= 16 the high half of byte j - 16.
//   Q4_1 (32: f16 d, f16 m, 16 bytes): q_i = nibble;  x = (d * q) + m
//   Q5_0 / Q5_1: as Q4_0 / Q4_1 with a fifth bit from the 32-bit qh word (bit i) and offset 16.
//   Q4_K (256: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes): 8 sub-blocks of 32;
//        sub-block j has scale sc_j and min m_j (6-bit, packed as in ggml's get_scale_min_k4);
//        element l of sub-block j = 2c + s is nibble s of byte 32c + l;
//        x = (d * sc_j) * q - (dmin * m_j)
//   Q5_K: as Q4_K with a fifth bit: bit j of qh[l].
//   Q6_K (256: ql[128], qh[64], int8 scales[16], f16 d): element i (c = i / 128, r = i % 128):
//        q = ((ql[64c + r % 64] >> 4 * (r / 64)) & 15) | (((qh[32c + r % 32] >> 2 * (r / 32)) & 3) << 4)
//        x = (d * scale[i / 16]) * (q - 32)
//   Q2_K, Q3_K: as ggml's dequantize_row_q2_K / q3_K (formulas in the functions below).
//   I8 / I16 / I32: converted to float (I32 rounds to nearest above 2^24), F64: rounded to float.
// Types without a dequantiser here (IQ*, TQ*, MXFP4, NVFP4, Q8_1, Q8_K, Q1_0, I64) are refused by name.
//
// Products are written as separate statements; compile without FP contraction into FMA
// (GCC/Clang's default on x86-64 without -mfma; with -march=native pass -ffp-contract=off) to keep the
// bit-equality with numpy, which rounds each operation.
//
// References: ggml's ggml-quants.c block layouts; gguf-py (`gguf` on PyPI) quants.py.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/io/float16.hpp>

namespace kaizen::io {

/// ggml tensor types, numbered as in the GGUF file format.
enum class GgmlType : std::uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40, Q1_0 = 41,
};

/// Block geometry of a ggml type: `block_size` elements are stored in `type_size` bytes.
struct GgmlTypeTraits {
  GgmlType type;
  std::string_view name;
  std::uint32_t block_size;
  std::uint32_t type_size;
  bool dequantizable;  ///< dequantize() supports it
};

inline constexpr std::uint32_t kQkK = 256;  ///< super-block size of the K-quants

inline constexpr std::array<GgmlTypeTraits, 34> kGgmlTypes{{
    {GgmlType::F32, "F32", 1, 4, true},
    {GgmlType::F16, "F16", 1, 2, true},
    {GgmlType::Q4_0, "Q4_0", 32, 18, true},
    {GgmlType::Q4_1, "Q4_1", 32, 20, true},
    {GgmlType::Q5_0, "Q5_0", 32, 22, true},
    {GgmlType::Q5_1, "Q5_1", 32, 24, true},
    {GgmlType::Q8_0, "Q8_0", 32, 34, true},
    {GgmlType::Q8_1, "Q8_1", 32, 40, false},
    {GgmlType::Q2_K, "Q2_K", 256, 84, true},
    {GgmlType::Q3_K, "Q3_K", 256, 110, true},
    {GgmlType::Q4_K, "Q4_K", 256, 144, true},
    {GgmlType::Q5_K, "Q5_K", 256, 176, true},
    {GgmlType::Q6_K, "Q6_K", 256, 210, true},
    {GgmlType::Q8_K, "Q8_K", 256, 292, false},
    {GgmlType::IQ2_XXS, "IQ2_XXS", 256, 66, false},
    {GgmlType::IQ2_XS, "IQ2_XS", 256, 74, false},
    {GgmlType::IQ3_XXS, "IQ3_XXS", 256, 98, false},
    {GgmlType::IQ1_S, "IQ1_S", 256, 50, false},
    {GgmlType::IQ4_NL, "IQ4_NL", 32, 18, false},
    {GgmlType::IQ3_S, "IQ3_S", 256, 110, false},
    {GgmlType::IQ2_S, "IQ2_S", 256, 82, false},
    {GgmlType::IQ4_XS, "IQ4_XS", 256, 136, false},
    {GgmlType::I8, "I8", 1, 1, true},
    {GgmlType::I16, "I16", 1, 2, true},
    {GgmlType::I32, "I32", 1, 4, true},
    {GgmlType::I64, "I64", 1, 8, false},
    {GgmlType::F64, "F64", 1, 8, true},
    {GgmlType::IQ1_M, "IQ1_M", 256, 56, false},
    {GgmlType::BF16, "BF16", 1, 2, true},
    {GgmlType::TQ1_0, "TQ1_0", 256, 54, false},
    {GgmlType::TQ2_0, "TQ2_0", 256, 66, false},
    {GgmlType::MXFP4, "MXFP4", 32, 17, false},
    {GgmlType::NVFP4, "NVFP4", 64, 36, false},
    {GgmlType::Q1_0, "Q1_0", 128, 18, false},
}};

/// The traits of the type numbered `id` in a GGUF file, or nullopt for a number ggml does not define.
[[nodiscard]] constexpr std::optional<GgmlTypeTraits> ggml_type_traits(std::uint32_t id) noexcept {
  for (const auto& t : kGgmlTypes)
    if (static_cast<std::uint32_t>(t.type) == id) return t;
  return std::nullopt;
}

/// The traits of a known type (always found).
[[nodiscard]] constexpr GgmlTypeTraits ggml_type_traits(GgmlType type) noexcept {
  for (const auto& t : kGgmlTypes)
    if (t.type == type) return t;
  return {type, "?", 1, 1, false};  // unreachable for enumerators
}

[[nodiscard]] constexpr std::string_view ggml_type_name(GgmlType type) noexcept { return ggml_type_traits(type).name; }

namespace detail {

[[nodiscard]] inline std::uint16_t load_u16(const std::byte* p) noexcept {
  std::uint16_t v = 0;
  std::memcpy(&v, p, 2);
  return v;
}
[[nodiscard]] inline float load_half(const std::byte* p) noexcept { return half_to_float(load_u16(p)); }
[[nodiscard]] inline std::uint8_t u8(const std::byte* p, std::size_t i) noexcept {
  return static_cast<std::uint8_t>(p[i]);
}

// One block each: `b` points at type_size bytes, `y` receives block_size floats.
inline void dequantize_block_q8_0(const std::byte* b, float* y) noexcept {
  const float d = load_half(b);
  for (int i = 0; i < 32; ++i) {
    const auto q = static_cast<float>(static_cast<std::int8_t>(u8(b, 2 + i)));
    y[i] = q * d;
  }
}

inline void dequantize_block_q4_0(const std::byte* b, float* y) noexcept {
  const float d = load_half(b);
  for (int s = 0; s < 2; ++s)
    for (int l = 0; l < 16; ++l) {
      const int q = ((u8(b, 2 + l) >> (4 * s)) & 0x0F) - 8;
      y[16 * s + l] = d * static_cast<float>(q);
    }
}

inline void dequantize_block_q4_1(const std::byte* b, float* y) noexcept {
  const float d = load_half(b), m = load_half(b + 2);
  for (int s = 0; s < 2; ++s)
    for (int l = 0; l < 16; ++l) {
      const float dq = d * static_cast<float>((u8(b, 4 + l) >> (4 * s)) & 0x0F);
      y[16 * s + l] = dq + m;
    }
}

inline void dequantize_block_q5_0(const std::byte* b, float* y) noexcept {
  const float d = load_half(b);
  std::uint32_t qh = 0;
  std::memcpy(&qh, b + 2, 4);
  for (int s = 0; s < 2; ++s)
    for (int l = 0; l < 16; ++l) {
      const int i = 16 * s + l;
      const int q = (((u8(b, 6 + l) >> (4 * s)) & 0x0F) | static_cast<int>(((qh >> i) & 1u) << 4)) - 16;
      y[i] = d * static_cast<float>(q);
    }
}

inline void dequantize_block_q5_1(const std::byte* b, float* y) noexcept {
  const float d = load_half(b), m = load_half(b + 2);
  std::uint32_t qh = 0;
  std::memcpy(&qh, b + 4, 4);
  for (int s = 0; s < 2; ++s)
    for (int l = 0; l < 16; ++l) {
      const int i = 16 * s + l;
      const int q = ((u8(b, 8 + l) >> (4 * s)) & 0x0F) | static_cast<int>(((qh >> i) & 1u) << 4);
      const float dq = d * static_cast<float>(q);
      y[i] = dq + m;
    }
}

// The 6-bit scale and min of sub-block j (0..7) from Q4_K/Q5_K's 12 packed bytes.
inline void q4k_scale_min(const std::byte* scales, int j, int& sc, int& m) noexcept {
  if (j < 4) {
    sc = u8(scales, j) & 0x3F;
    m = u8(scales, j + 4) & 0x3F;
  } else {
    sc = (u8(scales, j + 4) & 0x0F) | ((u8(scales, j - 4) >> 2) & 0x30);
    m = (u8(scales, j + 4) >> 4) | ((u8(scales, j) >> 2) & 0x30);
  }
}

inline void dequantize_block_q4_k(const std::byte* b, float* y) noexcept {
  const float d = load_half(b), dmin = load_half(b + 2);
  const std::byte* scales = b + 4;
  const std::byte* qs = b + 16;
  for (int j = 0; j < 8; ++j) {
    int sc = 0, m = 0;
    q4k_scale_min(scales, j, sc, m);
    const float dl = d * static_cast<float>(sc);
    const float ml = dmin * static_cast<float>(m);
    const int c = j / 2, s = j % 2;
    for (int l = 0; l < 32; ++l) {
      const float dq = dl * static_cast<float>((u8(qs, 32 * c + l) >> (4 * s)) & 0x0F);
      y[32 * j + l] = dq - ml;
    }
  }
}

inline void dequantize_block_q5_k(const std::byte* b, float* y) noexcept {
  const float d = load_half(b), dmin = load_half(b + 2);
  const std::byte* scales = b + 4;
  const std::byte* qh = b + 16;
  const std::byte* qs = b + 48;
  for (int j = 0; j < 8; ++j) {
    int sc = 0, m = 0;
    q4k_scale_min(scales, j, sc, m);
    const float dl = d * static_cast<float>(sc);
    const float ml = dmin * static_cast<float>(m);
    const int c = j / 2, s = j % 2;
    for (int l = 0; l < 32; ++l) {
      const int q = ((u8(qs, 32 * c + l) >> (4 * s)) & 0x0F) | (((u8(qh, l) >> j) & 1) << 4);
      const float dq = dl * static_cast<float>(q);
      y[32 * j + l] = dq - ml;
    }
  }
}

inline void dequantize_block_q6_k(const std::byte* b, float* y) noexcept {
  const std::byte* ql = b;
  const std::byte* qh = b + 128;
  const std::byte* scales = b + 192;
  const float d = load_half(b + 208);
  for (int i = 0; i < 256; ++i) {
    const int c = i / 128, r = i % 128;
    const int lo = (u8(ql, 64 * c + r % 64) >> (4 * (r / 64))) & 0x0F;
    const int hi = (u8(qh, 32 * c + r % 32) >> (2 * (r / 32))) & 0x03;
    const int q = (lo | (hi << 4)) - 32;
    const float dl = d * static_cast<float>(static_cast<std::int8_t>(u8(scales, i / 16)));
    y[i] = dl * static_cast<float>(q);
  }
}

// Q2_K (scales[16], qs[64], f16 d, f16 dmin): element i in 16-group g = i / 16 has scale nibble
// scales[g] & 15, min nibble scales[g] >> 4, and 2-bit q = (qs[32 * (i / 128) + i % 32] >> 2 * ((i / 32) % 4)) & 3;
// x = (d * sc) * q - (dmin * m).
inline void dequantize_block_q2_k(const std::byte* b, float* y) noexcept {
  const std::byte* scales = b;
  const std::byte* qs = b + 16;
  const float d = load_half(b + 80), dmin = load_half(b + 82);
  for (int i = 0; i < 256; ++i) {
    const int g = i / 16;
    const float dl = d * static_cast<float>(u8(scales, g) & 0x0F);
    const float ml = dmin * static_cast<float>(u8(scales, g) >> 4);
    const int q = (u8(qs, 32 * (i / 128) + i % 32) >> (2 * ((i / 32) % 4))) & 0x03;
    const float dq = dl * static_cast<float>(q);
    y[i] = dq - ml;
  }
}

// Q3_K (hmask[32], qs[64], scales[12], f16 d): 16 groups of 16 with 6-bit signed scales (offset 32),
// element i: low 2 bits (qs[32 * (i / 128) + i % 32] >> 2 * ((i / 32) % 4)) & 3, minus 4 when bit
// (i / 32) of hmask[i % 32] is clear; x = (d * scale) * q.
inline void dequantize_block_q3_k(const std::byte* b, float* y) noexcept {
  const std::byte* hmask = b;
  const std::byte* qs = b + 32;
  const std::byte* sc = b + 96;
  const float d = load_half(b + 108);
  for (int i = 0; i < 256; ++i) {
    const int g = i / 16;
    const int low = (u8(sc, g % 8) >> (4 * (g / 8))) & 0x0F;
    const int high = (u8(sc, 8 + g % 4) >> (2 * (g / 4))) & 0x03;
    const int scale = (low | (high << 4)) - 32;
    const float dl = d * static_cast<float>(scale);
    const int ql = (u8(qs, 32 * (i / 128) + i % 32) >> (2 * ((i / 32) % 4))) & 0x03;
    const int hbit = (u8(hmask, i % 32) >> (i / 32)) & 1;
    const int q = ql - ((hbit ^ 1) << 2);
    y[i] = dl * static_cast<float>(q);
  }
}

}  // namespace detail

/// Bytes taken by `n_elements` values of `type`; throws unless n_elements is a whole number of
/// blocks or on 64-bit overflow. `what` names the tensor for the message.
[[nodiscard]] inline std::uint64_t ggml_nbytes(GgmlType type, std::uint64_t n_elements, std::string_view what) {
  const auto t = ggml_type_traits(type);
  KAIZEN_CHECK(n_elements % t.block_size == 0, what, ": ", n_elements, " elements are not a whole number of ", t.name,
               " blocks of ", t.block_size);
  const std::uint64_t blocks = n_elements / t.block_size;
  std::uint64_t bytes = 0;
  if (__builtin_mul_overflow(blocks, static_cast<std::uint64_t>(t.type_size), &bytes))
    fail(what, ": size of ", n_elements, " ", t.name, " elements overflows 64 bits");
  return bytes;
}

/// Writes the float32 values of `n_elements` elements of `type` stored in `data` to `out`.
/// Throws kaizen::Error (naming `what`) when `type` has no dequantiser here, when n_elements is not a
/// whole number of blocks, or when `data` / `out` are not exactly the sizes that requires.
inline void dequantize(GgmlType type, std::span<const std::byte> data, std::span<float> out, std::string_view what) {
  const auto t = ggml_type_traits(type);
  KAIZEN_CHECK(t.dequantizable, what, ": dequantisation of ggml type ", t.name,
               " is not supported (supported: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K I8 I16 "
               "I32 F64)");
  const std::uint64_t n = out.size();
  const std::uint64_t bytes = ggml_nbytes(type, n, what);
  KAIZEN_CHECK(data.size() == bytes, what, ": ", n, " ", t.name, " elements need ", bytes, " bytes, got ", data.size());
  const std::byte* p = data.data();
  float* y = out.data();
  const std::uint64_t blocks = n / t.block_size;
  auto each_block = [&](auto&& fn) {
    for (std::uint64_t i = 0; i < blocks; ++i) fn(p + i * t.type_size, y + i * t.block_size);
  };
  switch (type) {
    case GgmlType::F32: if (n > 0) std::memcpy(y, p, n * 4); break;
    case GgmlType::F16: for (std::uint64_t i = 0; i < n; ++i) y[i] = detail::load_half(p + 2 * i); break;
    case GgmlType::BF16: for (std::uint64_t i = 0; i < n; ++i) y[i] = bfloat16_to_float(detail::load_u16(p + 2 * i)); break;
    case GgmlType::I8: for (std::uint64_t i = 0; i < n; ++i) y[i] = static_cast<float>(static_cast<std::int8_t>(p[i])); break;
    case GgmlType::I16:
      for (std::uint64_t i = 0; i < n; ++i) {
        std::int16_t v = 0;
        std::memcpy(&v, p + 2 * i, 2);
        y[i] = static_cast<float>(v);
      }
      break;
    case GgmlType::I32:
      for (std::uint64_t i = 0; i < n; ++i) {
        std::int32_t v = 0;
        std::memcpy(&v, p + 4 * i, 4);
        y[i] = static_cast<float>(v);
      }
      break;
    case GgmlType::F64:
      for (std::uint64_t i = 0; i < n; ++i) {
        double v = 0;
        std::memcpy(&v, p + 8 * i, 8);
        y[i] = static_cast<float>(v);
      }
      break;
    case GgmlType::Q8_0: each_block(detail::dequantize_block_q8_0); break;
    case GgmlType::Q4_0: each_block(detail::dequantize_block_q4_0); break;
    case GgmlType::Q4_1: each_block(detail::dequantize_block_q4_1); break;
    case GgmlType::Q5_0: each_block(detail::dequantize_block_q5_0); break;
    case GgmlType::Q5_1: each_block(detail::dequantize_block_q5_1); break;
    case GgmlType::Q2_K: each_block(detail::dequantize_block_q2_k); break;
    case GgmlType::Q3_K: each_block(detail::dequantize_block_q3_k); break;
    case GgmlType::Q4_K: each_block(detail::dequantize_block_q4_k); break;
    case GgmlType::Q5_K: each_block(detail::dequantize_block_q5_k); break;
    case GgmlType::Q6_K: each_block(detail::dequantize_block_q6_k); break;
    default: fail(what, ": dequantisation of ggml type ", t.name, " is not supported");
  }
}

/// As above, returning a new vector of `n_elements` floats (n_elements is checked against the data
/// size before anything is allocated).
[[nodiscard]] inline std::vector<float> dequantize(GgmlType type, std::span<const std::byte> data,
                                                   std::uint64_t n_elements, std::string_view what) {
  const std::uint64_t bytes = ggml_nbytes(type, n_elements, what);
  KAIZEN_CHECK(data.size() == bytes, what, ": ", n_elements, " ", ggml_type_name(type), " elements need ", bytes,
               " bytes, got ", data.size());
  std::vector<float> out(static_cast<std::size_t>(n_elements));
  dequantize(type, data, out, what);
  return out;
}

}  // namespace kaizen::io
