// kaizen/torch/ops/cpu_avx2.hpp - AVX2 + FMA + F16C versions of the row loops of cpu_rows.hpp (no
// LibTorch types). Compiled with a function-level target attribute, so they build under the baseline
// flags and run only where detected_cpu_isa() (cpu_isa.hpp) found those extensions.
//
// Same math as cpu_rows.hpp, one logits row x[0..V), temperature T, d_j = (x_j − m)/T clamped ≥ −87:
//   forward  lse = m/T + log s, s = Σ e^{d_j};  H = log s − t/s, t = Σ e^{d_j} d_j;  logp = (x_y − m)/T − log s
//   backward g_j = p_j (−(g_lp + g_h H) − g_h d'_j) / T with d'_j = x_j/T − lse, p_j = e^{d'_j};
//            then g_y += g_lp / T.
// The forward is one pass over memory: the row is walked in blocks of kBlock elements (8 KiB of fp32,
// in L1), each block read twice from L1 (block max, then the exponential sums). When a block raises
// the running max m → m' (δ = (m' − m)/T > 0) the sums are rescaled exactly: s' = e^{−δ} s,
// t' = e^{−δ} (t − δ s). Eight lanes × four accumulators sum each block; exp is the Cephes polynomial
// of exp_approx with FMA (≤ 2 ulp on [−87, 0]). Inputs: fp32, bf16 (bits << 16), fp16 (F16C);
// gradients are written in the input dtype, bf16 rounded to nearest even like c10::BFloat16.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include <kaizen/torch/ops/cpu_isa.hpp>
#include <kaizen/torch/ops/cpu_rows.hpp>

#if KAIZEN_CPU_X86_AVX2
#include <immintrin.h>

// Every function touching a __m256 carries the target (helpers also always_inline, so they fold into
// the row loops; a lambda would not inherit the target, hence none below).
#define KAIZEN_AVX2_FN __attribute__((target("avx2,fma,f16c")))
#define KAIZEN_AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) inline

namespace kaizen::ops::detail::avx2 {

/// Element formats of the logits rows (fp32, bfloat16 and IEEE half as raw 16-bit patterns).
enum class Format { f32, bf16, f16 };

inline constexpr std::int64_t kBlock = 2048;  ///< forward block: 8 KiB of fp32, stays in L1

template <Format F>
using element_t = std::conditional_t<F == Format::f32, float, std::uint16_t>;

template <Format F>
KAIZEN_AVX2_INLINE __m256 load8(const element_t<F>* p) {
  if constexpr (F == Format::f32) {
    return _mm256_loadu_ps(p);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    if constexpr (F == Format::bf16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    else return _mm256_cvtph_ps(h);
  }
}

template <Format F>
KAIZEN_AVX2_INLINE float load1(const element_t<F>* p) {
  if constexpr (F == Format::f32) return *p;
  else if constexpr (F == Format::bf16) return std::bit_cast<float>(static_cast<std::uint32_t>(*p) << 16);
  else return _cvtsh_ss(*p);
}

/// The first `count` (< 8) elements at p, the other lanes `fill`.
template <Format F>
KAIZEN_AVX2_INLINE __m256 load_partial(const element_t<F>* p, std::int64_t count, float fill) {
  alignas(32) float buf[8];
  for (int k = 0; k < 8; ++k) buf[k] = k < count ? load1<F>(p + k) : fill;
  return _mm256_load_ps(buf);
}

/// fp32 → bf16 bit patterns, round to nearest even, NaN → 0x7FC0 (as c10::BFloat16), in the low 16 bits.
KAIZEN_AVX2_INLINE __m256i to_bf16_bits(__m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i bias = _mm256_add_epi32(_mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1)),
                                        _mm256_set1_epi32(0x7FFF));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, bias), 16);
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  return _mm256_blendv_epi8(rounded, _mm256_set1_epi32(0x7FC0), nan);
}

KAIZEN_AVX2_INLINE std::uint16_t to_bf16_bits(float f) {
  if (f != f) return 0x7FC0;
  const auto u = std::bit_cast<std::uint32_t>(f);
  return static_cast<std::uint16_t>((u + ((u >> 16) & 1U) + 0x7FFFU) >> 16);
}

template <Format F>
KAIZEN_AVX2_INLINE void store8(element_t<F>* p, __m256 v) {
  if constexpr (F == Format::f32) {
    _mm256_storeu_ps(p, v);
  } else if constexpr (F == Format::f16) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  } else {
    const __m256i packed = _mm256_packus_epi32(to_bf16_bits(v), _mm256_setzero_si256());  // per 128-bit lane
    const __m256i ordered = _mm256_permute4x64_epi64(packed, 0b00001000);                   // qwords 0, 2
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(ordered));
  }
}

template <Format F>
KAIZEN_AVX2_INLINE void store1(element_t<F>* p, float f) {
  if constexpr (F == Format::f32) *p = f;
  else if constexpr (F == Format::bf16) *p = to_bf16_bits(f);
  else *p = static_cast<std::uint16_t>(_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(f), _MM_FROUND_TO_NEAREST_INT), 0));
}

/// exp(x) on 8 lanes for −87 ≤ x ≤ 88 (callers clamp below); NaN stays NaN. n = round(x / ln 2) comes
/// from adding 1.5·2²³ + 127: the sum's low mantissa bits then hold n + 127, the biased exponent of 2ⁿ.
KAIZEN_AVX2_INLINE __m256 exp8(__m256 x) {
  const __m256 shifter = _mm256_set1_ps(12582912.0f + 127.0f);
  const __m256 k = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), shifter);
  const __m256 n = _mm256_sub_ps(k, shifter);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // Cody-Waite split of ln 2
  r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  return _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(k), 23)));
}

KAIZEN_AVX2_INLINE float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/// Largest lane; a NaN lane may or may not win (the sums turn NaN logits into a NaN result either way).
KAIZEN_AVX2_INLINE float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/// The clamped exponent max(−87, (x − m)/T), NaN-propagating (maxps returns its second operand on NaN).
KAIZEN_AVX2_INLINE __m256 exponent(__m256 x, __m256 m, __m256 inv_t) {
  return _mm256_max_ps(_mm256_set1_ps(kMinExponent<float>), _mm256_mul_ps(_mm256_sub_ps(x, m), inv_t));
}

/// Forward statistics of one row (see the header comment); x points at V elements of format F.
template <Format F, bool WithEntropy>
KAIZEN_AVX2_FN inline RowStats<float> row_forward(const element_t<F>* x, std::int64_t v, std::int64_t y,
                                                  float inv_t) noexcept {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const __m256 vinv_t = _mm256_set1_ps(inv_t);
  __m256 s[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  __m256 t[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  float m = kNegInf;
  for (std::int64_t b = 0; b < v; b += kBlock) {
    const element_t<F>* xb = x + b;
    const std::int64_t len = std::min(kBlock, v - b);
    const std::int64_t full = len - len % 8;
    __m256 mx[4] = {_mm256_set1_ps(kNegInf), _mm256_set1_ps(kNegInf), _mm256_set1_ps(kNegInf),
                    _mm256_set1_ps(kNegInf)};
    std::int64_t j = 0;
    for (; j + 32 <= full; j += 32)
      for (int k = 0; k < 4; ++k) mx[k] = _mm256_max_ps(mx[k], load8<F>(xb + j + 8 * k));
    for (; j < full; j += 8) mx[0] = _mm256_max_ps(mx[0], load8<F>(xb + j));
    if (full < len) mx[1] = _mm256_max_ps(mx[1], load_partial<F>(xb + full, len - full, kNegInf));
    const float block_max = hmax(_mm256_max_ps(_mm256_max_ps(mx[0], mx[1]), _mm256_max_ps(mx[2], mx[3])));
    if (block_max > m) {
      if (m != kNegInf) {
        const float delta = (block_max - m) * inv_t;
        const __m256 scale = _mm256_set1_ps(exp_approx(-delta));
        const __m256 vdelta = _mm256_set1_ps(delta);
        for (int k = 0; k < 4; ++k) {
          if constexpr (WithEntropy) t[k] = _mm256_mul_ps(scale, _mm256_fnmadd_ps(vdelta, s[k], t[k]));
          s[k] = _mm256_mul_ps(scale, s[k]);
        }
      }
      m = block_max;
    }
    // A block (or row prefix) of −inf only: nothing to add, and (x − m) would be −inf − (−inf).
    if (m == kNegInf) continue;
    const __m256 vm = _mm256_set1_ps(m);
    j = 0;
    for (; j + 32 <= full; j += 32) {
      for (int k = 0; k < 4; ++k) {
        const __m256 d = exponent(load8<F>(xb + j + 8 * k), vm, vinv_t);
        const __m256 e = exp8(d);
        s[k] = _mm256_add_ps(s[k], e);
        if constexpr (WithEntropy) t[k] = _mm256_fmadd_ps(e, d, t[k]);
      }
    }
    for (; j < full; j += 8) {
      const __m256 d = exponent(load8<F>(xb + j), vm, vinv_t);
      const __m256 e = exp8(d);
      s[0] = _mm256_add_ps(s[0], e);
      if constexpr (WithEntropy) t[0] = _mm256_fmadd_ps(e, d, t[0]);
    }
    if (full < len) {
      const __m256 live = _mm256_castsi256_ps(
          _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(len - full)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
      // Dead lanes get d = 0 and e = 0, so they add nothing (and no 0 · inf).
      const __m256 d = _mm256_and_ps(live, exponent(load_partial<F>(xb + full, len - full, 0.0f), vm, vinv_t));
      const __m256 e = _mm256_and_ps(live, exp8(d));
      s[1] = _mm256_add_ps(s[1], e);
      if constexpr (WithEntropy) t[1] = _mm256_fmadd_ps(e, d, t[1]);
    }
  }
  const float sum = hsum(_mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3])));
  const float log_s = std::log(sum);
  RowStats<float> out{};
  out.lse = m * inv_t + log_s;
  if constexpr (WithEntropy) {
    const float tilt = hsum(_mm256_add_ps(_mm256_add_ps(t[0], t[1]), _mm256_add_ps(t[2], t[3])));
    out.entropy = log_s - tilt / sum;
  }
  out.logprob = (load1<F>(x + y) - m) * inv_t - log_s;
  return out;
}

/// Gradient of g_lp·logp + g_h·H with respect to one row, written to g (which may alias x).
template <Format F, bool WithEntropy>
KAIZEN_AVX2_FN inline void row_backward(const element_t<F>* x, std::int64_t v, std::int64_t y, float inv_t, float lse,
                                        float entropy, float g_lp, float g_h, element_t<F>* g) noexcept {
  const float x_y = load1<F>(x + y);  // read before an in-place write overwrites it
  const __m256 vinv_t = _mm256_set1_ps(inv_t);
  const __m256 vlse = _mm256_set1_ps(lse);
  const __m256 lo = _mm256_set1_ps(kMinExponent<float>);
  // g_j = p_j (a + b d_j): a = −(g_lp + g_h H)/T, b = −g_h/T.
  const __m256 a = _mm256_set1_ps(-(g_lp + (WithEntropy ? g_h * entropy : 0.0f)) * inv_t);
  const __m256 b = _mm256_set1_ps(-g_h * inv_t);
  const std::int64_t full = v - v % 8;
  std::int64_t j = 0;
  for (; j < full; j += 8) {
    const __m256 d = _mm256_max_ps(lo, _mm256_fmsub_ps(load8<F>(x + j), vinv_t, vlse));
    const __m256 p = exp8(d);
    store8<F>(g + j, _mm256_mul_ps(p, WithEntropy ? _mm256_fmadd_ps(b, d, a) : a));
  }
  if (full < v) {
    const __m256 d = _mm256_max_ps(lo, _mm256_fmsub_ps(load_partial<F>(x + full, v - full, 0.0f), vinv_t, vlse));
    const __m256 p = exp8(d);
    alignas(32) float buf[8];
    _mm256_store_ps(buf, _mm256_mul_ps(p, WithEntropy ? _mm256_fmadd_ps(b, d, a) : a));
    for (std::int64_t k = 0; k < v - full; ++k) store1<F>(g + full + k, buf[k]);
  }
  const float d_y = clamp_low(x_y * inv_t - lse, kMinExponent<float>);
  const float p_y = exp_approx(d_y);
  float grad_y = g_lp * (1.0f - p_y);
  if constexpr (WithEntropy) grad_y -= g_h * p_y * (d_y + entropy);
  store1<F>(g + y, grad_y * inv_t);
}

}  // namespace kaizen::ops::detail::avx2

#undef KAIZEN_AVX2_FN
#undef KAIZEN_AVX2_INLINE

#endif  // KAIZEN_CPU_X86_AVX2
