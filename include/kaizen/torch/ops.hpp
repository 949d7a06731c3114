// kaizen/torch/ops.hpp - autograd ops on the hot paths, dispatching CUDA tensors to kaizen::kernels
// and CPU tensors to fused CPU loops.
//
//   token_logprobs(logits, targets, {.temperature, .with_entropy, .inplace_backward})
//       logp = log softmax(x / T)[y], H = entropy of softmax(x / T); fwd and bwd in one pass each.
//   fused_linear_logprobs(hidden, weight, targets, {...})
//       the same from hidden [N, H] and the output embedding [V, H], chunked over tokens so the [N, V]
//       logits never exist in full; backward recomputes each chunk's logits (3 GEMMs per chunk).
//   group_stats(values, offsets, {...})
//       segmented mean / std over contiguous groups and the normalised advantages (GRPO).
//   sample_tokens(logits, params, rng)
//       temperature + top-k + top-p + min-p sampling without a full sort; returns the id, its log-prob
//       under the filtered distribution it was drawn from (`sampling_logprobs`: what a Sampler reports in
//       Completion::logprobs) and under softmax(x / T) alone (`tempered_logprobs`).
//
// Dispatch (DESIGN.md §5): a CUDA tensor goes to kaizen::kernels when kaizen was built with them
// (KAIZEN_WITH_CUDA, kaizen/config.hpp); without them a CUDA tensor is an error naming the fix. CPU
// tensors take the fused loops of kaizen/torch/ops/cpu_rows.hpp (token log-probs: AVX2 versions from
// cpu_avx2.hpp where the CPU has them, cpu_token_logprobs.hpp, split over threads by parallel_rows of
// cpu_parallel.hpp); every CPU op splits its rows over LibTorch's threads with parallel_rows.
// Math and derivations: cpu_rows.hpp and kernels/include/kaizen/kernels/token_logprobs.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <functional>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <kaizen/config.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/torch/ops/cpu_rows.hpp>
#include <kaizen/torch/ops/cpu_parallel.hpp>
#include <kaizen/torch/ops/cpu_token_logprobs.hpp>
#include <kaizen/torch/ops/policy_objective.hpp>
#include <kaizen/torch/ops/sampling_select.hpp>

#if KAIZEN_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <kaizen/kernels/group_stats.hpp>
#include <kaizen/kernels/sampling.hpp>
#include <kaizen/kernels/token_logprobs.hpp>
#endif

namespace kaizen::ops {

/// Options of token_logprobs / fused_linear_logprobs.
struct TokenLogprobOptions {
  double temperature = 1.0;       ///< > 0 and finite; logits are divided by it
  bool with_entropy = false;      ///< also return the entropy of softmax(logits / T) (differentiable)
  bool inplace_backward = false;  ///< token_logprobs: write grad_logits into the logits buffer (the
                                  ///< logits are garbage afterwards; only for a terminal use of them)
  std::int64_t chunk_size = 0;    ///< fused_linear_logprobs: tokens per chunk; 0 = chosen for the shape
  bool check_targets = true;      ///< check target ids against [0, V) on the host (on CUDA: one device
                                  ///< sync); false skips it on CUDA, where an out-of-range id then gives a
                                  ///< NaN log-prob and no out-of-bounds read (CPU tensors are always checked)
};

/// Per-token results, shaped like the targets; float32 (float64 for float64 inputs).
struct TokenLogprobs {
  torch::Tensor logprobs;  ///< log softmax(x / T)[y]
  torch::Tensor entropy;   ///< entropy of softmax(x / T); undefined unless with_entropy
};

namespace detail {

inline void check_device(std::string_view fn, const torch::Tensor& t) {
  if (t.is_cuda()) {
    KAIZEN_CHECK(kWithCudaKernels, fn, ": got a CUDA tensor (", t.device(),
                 ") but kaizen was built without its CUDA kernels (KAIZEN_WITH_CUDA=0); reconfigure with a CUDA "
                 "compiler and -DKAIZEN_ENABLE_CUDA=ON, or move the tensors to the CPU");
    return;
  }
  KAIZEN_CHECK(t.is_cpu(), fn, ": expected a CPU or CUDA tensor, got device ", t.device());
}

inline bool is_float_dtype(c10::ScalarType s) {
  return s == torch::kFloat32 || s == torch::kFloat64 || s == torch::kBFloat16 || s == torch::kFloat16;
}

inline c10::ScalarType stats_dtype(c10::ScalarType logits) {
  return logits == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

/// Checks targets (int64, on `device`, shaped `leading`, ids in [0, v)) and the temperature.
inline void check_targets(std::string_view fn, const torch::Tensor& targets, c10::Device device,
                          c10::IntArrayRef leading, std::string_view what, c10::IntArrayRef what_sizes, std::int64_t v,
                          double temperature, bool check_ids = true) {
  KAIZEN_CHECK(targets.device() == device, fn, ": expected targets on the ", what, "' device ", device, ", got ",
               targets.device());
  KAIZEN_CHECK(targets.scalar_type() == torch::kInt64, fn, ": expected int64 targets, got ", targets.scalar_type());
  KAIZEN_CHECK(targets.sizes() == leading, fn, ": expected targets of shape ", leading, " for ", what, " ",
               what_sizes, ", got ", targets.sizes());
  KAIZEN_CHECK(v >= 1, fn, ": expected a vocabulary of at least 1, got ", v);
  KAIZEN_CHECK(std::isfinite(temperature) && temperature > 0, fn, ": expected a finite temperature > 0, got ",
               temperature);
  if (targets.numel() > 0 && (check_ids || !targets.is_cuda())) {
    const auto [lo, hi] = torch::aminmax(targets);
    const torch::Tensor range = torch::stack({lo, hi}).to(torch::kCPU);  // one device sync, not two
    const auto min_id = range[0].item<std::int64_t>();
    const auto max_id = range[1].item<std::int64_t>();
    KAIZEN_CHECK(min_id >= 0 && max_id < v, fn, ": expected target ids in [0, ", v, "), got ids in [", min_id, ", ",
                 max_id, "]");
  }
}

/// Checks logits [N, V] / [B, T, V] against targets [N] / [B, T]; returns V.
inline std::int64_t check_logits_targets(std::string_view fn, const torch::Tensor& logits,
                                         const torch::Tensor& targets, double temperature, bool check_ids = true) {
  KAIZEN_CHECK(logits.defined() && targets.defined(), fn, ": expected defined logits and targets");
  check_device(fn, logits);
  KAIZEN_CHECK(is_float_dtype(logits.scalar_type()), fn,
               ": expected logits of dtype float32, float64, bfloat16 or float16, got ", logits.scalar_type());
  KAIZEN_CHECK(logits.dim() == 2 || logits.dim() == 3, fn, ": expected logits [N, V] or [B, T, V], got shape ",
               logits.sizes());
  const std::int64_t v = logits.size(-1);
  check_targets(fn, targets, logits.device(), logits.sizes().slice(0, logits.dim() - 1), "logits", logits.sizes(), v,
                temperature, check_ids);
  return v;
}

#if KAIZEN_WITH_CUDA
inline kernels::DType kernel_dtype(std::string_view fn, c10::ScalarType s) {
  switch (s) {
    case torch::kFloat32: return kernels::DType::f32;
    case torch::kBFloat16: return kernels::DType::bf16;
    case torch::kFloat16: return kernels::DType::f16;
    default: fail(fn, ": the CUDA kernels take float32, bfloat16 or float16 logits, got ", s);
  }
}
/// The current stream of the tensor's device (callers hold a CUDAGuard for that device).
inline void* current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }
#endif

/// Rows of logits [N, V] or [B, T, V] (last stride 1) as the kernels read them: row r starts at
/// (r / inner_rows)·outer_stride + (r % inner_rows)·row_stride elements.
struct RowLayout {
  std::int64_t n = 0;
  std::int64_t v = 0;
  std::int64_t row_stride = 0;
  std::int64_t inner_rows = 1;
  std::int64_t outer_stride = 0;
};

/// The layout when the kernels can read `logits` in place (rows of unit stride, no overlap), else nullopt.
inline std::optional<RowLayout> strided_layout(const torch::Tensor& logits) {
  const std::int64_t v = logits.size(-1);
  if (logits.stride(-1) != 1 && v > 1) return std::nullopt;
  RowLayout l;
  l.v = v;
  if (logits.dim() == 2) {
    l.n = logits.size(0);
    l.row_stride = l.n <= 1 ? v : logits.stride(0);  // a size-1 dimension may carry any stride
    l.inner_rows = std::max<std::int64_t>(l.n, 1);
    l.outer_stride = l.inner_rows * l.row_stride;
  } else {
    const std::int64_t b = logits.size(0);
    const std::int64_t t = logits.size(1);
    l.n = b * t;
    l.row_stride = t <= 1 ? v : logits.stride(1);
    l.inner_rows = std::max<std::int64_t>(t, 1);
    l.outer_stride = b <= 1 ? l.inner_rows * l.row_stride : logits.stride(0);
  }
  if (l.row_stride < v || l.outer_stride < l.inner_rows * l.row_stride) return std::nullopt;
  return l;
}

/// Forward on logits [N, V] (CPU: contiguous; CUDA: any layout strided_layout accepts, or [B, T, V] so)
/// and flat targets [N]: {logprobs, lse, entropy-or-undefined}, each [N].
inline std::vector<torch::Tensor> token_logprobs_forward(const torch::Tensor& logits, const torch::Tensor& targets,
                                                        double temperature, bool with_entropy) {
  const std::int64_t v = logits.size(-1);
  const std::int64_t n = logits.numel() / std::max<std::int64_t>(v, 1);
  const auto opts = logits.options().dtype(stats_dtype(logits.scalar_type()));
  torch::Tensor logp = torch::empty({n}, opts);
  torch::Tensor lse = torch::empty({n}, opts);
  torch::Tensor entropy = with_entropy ? torch::empty({n}, opts) : torch::Tensor();
  if (n == 0) return {logp, lse, entropy};
#if KAIZEN_WITH_CUDA
  if (logits.is_cuda()) {
    constexpr std::string_view fn = "ops::token_logprobs";
    const c10::cuda::CUDAGuard guard(logits.device());
    const auto layout = strided_layout(logits);
    KAIZEN_CHECK(layout.has_value(), fn, ": internal: logits of strides ", logits.strides(), " reached the kernel");
    kernels::token_logprobs_forward(logits.data_ptr(), kernel_dtype(fn, logits.scalar_type()),
                                    targets.data_ptr<std::int64_t>(), n, v, layout->row_stride, layout->inner_rows,
                                    layout->outer_stride, static_cast<float>(1.0 / temperature), logp.data_ptr<float>(),
                                    lse.data_ptr<float>(), with_entropy ? entropy.data_ptr<float>() : nullptr,
                                    current_stream());
    return {logp, lse, entropy};
  }
#endif
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, logits.scalar_type(), "kaizen_token_logprobs", [&] {
    using A = acc_t<scalar_t>;
    token_logprobs_rows(logits.data_ptr<scalar_t>(), targets.data_ptr<std::int64_t>(), n, v,
                        static_cast<A>(1.0 / temperature), logp.data_ptr<A>(), lse.data_ptr<A>(),
                        with_entropy ? entropy.data_ptr<A>() : nullptr);
  });
  return {logp, lse, entropy};
}

/// Backward on the forward's logits; grad_lp / grad_h may be undefined (= zero). Writes dense rows into
/// `out` (contiguous, logits' shape; may be the logits buffer when that is contiguous).
inline void token_logprobs_backward(const torch::Tensor& logits, const torch::Tensor& targets, double temperature,
                                    const torch::Tensor& lse, const torch::Tensor& entropy,
                                    const torch::Tensor& grad_lp, const torch::Tensor& grad_h, torch::Tensor& out) {
  const std::int64_t v = logits.size(-1);
  const std::int64_t n = logits.numel() / std::max<std::int64_t>(v, 1);
  if (n == 0) return;
  const bool use_h = grad_h.defined();
#if KAIZEN_WITH_CUDA
  if (logits.is_cuda()) {
    constexpr std::string_view fn = "ops::token_logprobs (backward)";
    const c10::cuda::CUDAGuard guard(logits.device());
    const auto layout = strided_layout(logits);
    KAIZEN_CHECK(layout.has_value(), fn, ": internal: logits of strides ", logits.strides(), " reached the kernel");
    kernels::token_logprobs_backward(logits.data_ptr(), kernel_dtype(fn, logits.scalar_type()),
                                     targets.data_ptr<std::int64_t>(), n, v, layout->row_stride, layout->inner_rows,
                                     layout->outer_stride, static_cast<float>(1.0 / temperature), lse.data_ptr<float>(),
                                     use_h ? entropy.data_ptr<float>() : nullptr,
                                     grad_lp.defined() ? grad_lp.data_ptr<float>() : nullptr,
                                     use_h ? grad_h.data_ptr<float>() : nullptr, out.data_ptr(), current_stream());
    return;
  }
#endif
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, logits.scalar_type(), "kaizen_token_logprobs_bwd", [&] {
    using A = acc_t<scalar_t>;
    token_logprobs_grad_rows(logits.data_ptr<scalar_t>(), targets.data_ptr<std::int64_t>(), n, v,
                             static_cast<A>(1.0 / temperature), lse.data_ptr<A>(),
                             use_h ? entropy.data_ptr<A>() : nullptr,
                             grad_lp.defined() ? grad_lp.data_ptr<A>() : nullptr,
                             use_h ? grad_h.data_ptr<A>() : nullptr, out.data_ptr<scalar_t>());
  });
}

/// Upstream gradient in the statistics dtype, contiguous, or undefined when absent.
inline torch::Tensor flat_grad(const torch::Tensor& g, std::int64_t n, c10::ScalarType dtype) {
  if (!g.defined()) return {};
  return g.reshape({n}).to(dtype).contiguous();
}

struct TokenLogprobFunction : torch::autograd::Function<TokenLogprobFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& logits,
                                                const torch::Tensor& targets, double temperature, bool with_entropy,
                                                bool inplace_backward) {
    auto outs = token_logprobs_forward(logits, targets, temperature, with_entropy);
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["inplace"] = inplace_backward;
    ctx->saved_data["with_entropy"] = with_entropy;
    ctx->save_for_backward({logits, targets, outs[1], with_entropy ? outs[2] : outs[1]});
    if (with_entropy) return {outs[0], outs[2]};
    return {outs[0]};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& logits = saved[0];
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const bool inplace = ctx->saved_data["inplace"].toBool();
    const bool with_entropy = ctx->saved_data["with_entropy"].toBool();
    const std::int64_t n = saved[1].numel();
    const auto sd = stats_dtype(logits.scalar_type());
    const torch::Tensor g_lp = flat_grad(grads[0], n, sd);
    const torch::Tensor g_h = with_entropy ? flat_grad(grads[1], n, sd) : torch::Tensor();
    torch::Tensor out = inplace ? logits : torch::empty(logits.sizes(), logits.options());
    token_logprobs_backward(logits, saved[1], temperature, saved[2], saved[3], g_lp, g_h, out);
    // The gradient overwrote the logits through a raw pointer: bump their version so a node that saved
    // them (e.g. exp or softmax producing them) raises instead of reading gradient values.
    if (inplace) out.unsafeGetTensorImpl()->bump_version();
    return {out, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace detail

/// Log-probability of each target id under softmax(logits / T), and optionally the entropy of that
/// distribution, differentiable with respect to the logits (fused backward, see cpu_rows.hpp).
///
/// logits: [N, V] or [B, T, V], float32/float64/bfloat16/float16, CPU or CUDA; targets: int64 [N] or
/// [B, T] on the same device with ids in [0, V). Returns tensors shaped like targets, float32 (float64
/// for float64 logits). On CUDA, strided rows (e.g. logits[:, :-1, :]) are read in place; other layouts, and any
/// non-contiguous CPU logits, are copied once; with inplace_backward the gradient is
/// written into the logits buffer, which callers must not read afterwards.
/// Throws kaizen::Error on a non-float logits dtype, non-int64 targets, mismatched shapes or devices,
/// target ids out of range, a temperature that is not finite and > 0, or a CUDA tensor in a build
/// without kernels.
[[nodiscard]] inline TokenLogprobs token_logprobs(const torch::Tensor& logits, const torch::Tensor& targets,
                                                 const TokenLogprobOptions& options = {}) {
  constexpr std::string_view fn = "ops::token_logprobs";
  const std::int64_t v =
      detail::check_logits_targets(fn, logits, targets, options.temperature, options.check_targets);
  KAIZEN_CHECK(!options.inplace_backward || logits.is_contiguous(), fn,
               ": inplace_backward needs contiguous logits (the gradient is written into their buffer)");
  // CUDA reads strided rows in place (e.g. logits[:, :-1, :]); the CPU loops take dense rows.
  const bool in_place_read = logits.is_cuda() && detail::strided_layout(logits).has_value();
  const torch::Tensor flat = in_place_read ? logits : logits.reshape({-1, v}).contiguous();
  const torch::Tensor ids = targets.reshape({-1}).contiguous();
  auto outs = detail::TokenLogprobFunction::apply(flat, ids, options.temperature, options.with_entropy,
                                                  options.inplace_backward);
  TokenLogprobs result;
  result.logprobs = outs[0].view(targets.sizes());
  if (options.with_entropy) result.entropy = outs[1].view(targets.sizes());
  return result;
}

/// Options of sample_tokens come from kaizen::SamplingParams (temperature, top_k, top_p, min_p).
/// Result of sample_tokens, one entry per row.
struct SampledTokens {
  torch::Tensor ids;                ///< int64 [B]: the sampled token ids
  torch::Tensor sampling_logprobs;  ///< float32 [B]: log-prob of id under the truncated, renormalised
                                    ///< distribution it was drawn from: what Completion::logprobs holds
                                    ///< (the Sampler contract) and what the trainer's LogitTransform gives
  torch::Tensor tempered_logprobs;  ///< float32 [B]: log softmax(x / T)[id], temperature only, no top-k/p,
                                    ///< min-p filtering (what token_logprobs returns at that temperature)
};

namespace detail {

/// Samples one row on the CPU with the shared arithmetic of sampling_select.hpp (the CUDA kernel runs the
/// same selection and draw on the same integers); `e` is scratch of size v. Returns {id, logprob, filtered
/// logprob}; a row with every logit −inf or NaN gives id 0 and NaN log-probs.
template <class T>
std::tuple<std::int64_t, float, float> sample_row(const T* x, std::int64_t v, float inv_t, std::int64_t top_k,
                                                  float top_p, float min_p, std::uint64_t uniform_bits,
                                                  std::vector<float>& e, sampling::HostSelect& sel) {
  namespace sm = sampling;
  float m = -std::numeric_limits<float>::infinity();
  for (std::int64_t j = 0; j < v; ++j) m = std::max(m, sm::tempered(static_cast<float>(x[j]), inv_t));
  const auto exp_f = [](float d) { return exp_approx(d); };
  std::uint64_t everything = 0;
  for (std::int64_t j = 0; j < v; ++j) {
    e[j] = sm::weight_of(sm::tempered(static_cast<float>(x[j]), inv_t), m, exp_f);
    everything += sm::mass_of(e[j]);
  }
  const float tau = sm::host_threshold(e.data(), v, top_k, static_cast<double>(top_p), min_p, sel);
  const auto [id, kept] = sm::host_draw(e.data(), v, tau, uniform_bits);
  if (id < 0) return {0, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::quiet_NaN()};
  const float u = sm::tempered(static_cast<float>(x[id]), inv_t);
  const double d = u == m ? 0.0 : static_cast<double>(u) - static_cast<double>(m);
  const double log_scale = 40.0 * 0.6931471805599453;
  return {id, static_cast<float>(d - (std::log(static_cast<double>(everything)) - log_scale)),
          static_cast<float>(d - (std::log(static_cast<double>(kept)) - log_scale))};
}

}  // namespace detail

/// Draws one token per row of `logits` [B, V] (or [V]) after temperature, top-k, top-p and min-p, in
/// that order, without sorting the vocabulary:
///   z = x / T;  p = softmax(z);  keep the top_k largest (ties at the k-th value are all kept);  among
///   those, keep token j iff the renormalised mass of strictly more probable kept tokens is < top_p;  keep
///   p_j ≥ min_p · max p;  draw by inverse CDF in vocabulary order with one kaizen::uniform01 per row. The
///   order is lm::LogitTransform's, so `sampling_logprobs` is the trainer's log-prob of the token.
/// The same definitions and integer arithmetic run on CPU and CUDA (kaizen/torch/ops/sampling_select.hpp:
/// radix select on the bit pattern of e, fixed-point masses; one CTA per row on CUDA). Masked (−inf) and
/// NaN logits are never drawn; a row with no finite logit gives id 0 and NaN log-probs.
/// `rng` advances by B draws. Returns ids int64 [B] and two float32 [B] log-probs (see SampledTokens).
/// Throws kaizen::Error on invalid params (kaizen::validate), a non-float dtype, a rank other than 1
/// or 2, an empty vocabulary, or a CUDA tensor in a build without kernels.
[[nodiscard]] inline SampledTokens sample_tokens(const torch::Tensor& logits, const SamplingParams& params, Rng& rng) {
  constexpr std::string_view fn = "ops::sample_tokens";
  validate(params);
  KAIZEN_CHECK(logits.defined(), fn, ": expected defined logits");
  detail::check_device(fn, logits);
  KAIZEN_CHECK(detail::is_float_dtype(logits.scalar_type()), fn,
               ": expected logits of dtype float32, float64, bfloat16 or float16, got ", logits.scalar_type());
  KAIZEN_CHECK(logits.dim() == 1 || logits.dim() == 2, fn, ": expected logits [B, V] or [V], got shape ",
               logits.sizes());
  const std::int64_t v = logits.size(-1);
  KAIZEN_CHECK(v >= 1, fn, ": expected a vocabulary of at least 1, got logits of shape ", logits.sizes());
  KAIZEN_CHECK(v <= sampling::kMaxVocab, fn,
               ": expected a vocabulary of at most 2^23 tokens (fixed-point masses), got logits of shape ",
               logits.sizes());
  const torch::Tensor x = logits.reshape({-1, v}).contiguous();
  const std::int64_t b = x.size(0);
  const auto float_opts = torch::TensorOptions().dtype(torch::kFloat32).device(x.device());
  SampledTokens out{torch::empty({b}, float_opts.dtype(torch::kInt64)), torch::empty({b}, float_opts),
                    torch::empty({b}, float_opts)};
  const float inv_t = static_cast<float>(1.0 / params.temperature);
  const auto top_p = static_cast<float>(params.top_p);
  const auto min_p = static_cast<float>(params.min_p);
#if KAIZEN_WITH_CUDA
  if (x.is_cuda()) {
    const c10::cuda::CUDAGuard guard(x.device());
    // One uniform per row as 64 uniform bits, staged in pinned memory and copied without a host sync.
    torch::Tensor host = torch::empty({b}, torch::TensorOptions().dtype(torch::kInt64).pinned_memory(true));
    auto* bits = reinterpret_cast<std::uint64_t*>(host.data_ptr<std::int64_t>());
    for (std::int64_t i = 0; i < b; ++i) bits[i] = sampling::uniform_bits(uniform01(rng));
    const torch::Tensor u = host.to(x.device(), /*non_blocking=*/true);
    const torch::Tensor xx = x.scalar_type() == torch::kFloat64 ? x.to(torch::kFloat32) : x;
    if (b > 0)
      kernels::sample_tokens(xx.data_ptr(), detail::kernel_dtype(fn, xx.scalar_type()), b, v, inv_t, params.top_k,
                             top_p, min_p, reinterpret_cast<const std::uint64_t*>(u.data_ptr<std::int64_t>()),
                             out.ids.data_ptr<std::int64_t>(), out.tempered_logprobs.data_ptr<float>(),
                             out.sampling_logprobs.data_ptr<float>(), detail::current_stream());
    if (logits.dim() == 1) return {out.ids.squeeze(0), out.sampling_logprobs.squeeze(0), out.tempered_logprobs.squeeze(0)};
    return out;
  }
#endif
  std::vector<std::uint64_t> uniforms(static_cast<std::size_t>(b));
  for (auto& u : uniforms) u = sampling::uniform_bits(uniform01(rng));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "kaizen_sample_tokens", [&] {
    const scalar_t* data = x.data_ptr<scalar_t>();
    auto* ids = out.ids.data_ptr<std::int64_t>();
    auto* lp = out.tempered_logprobs.data_ptr<float>();
    auto* flp = out.sampling_logprobs.data_ptr<float>();
    detail::parallel_rows(b, v, [&](std::int64_t begin, std::int64_t end) {
      std::vector<float> e(static_cast<std::size_t>(v));
      const auto sel = std::make_unique<sampling::HostSelect>();
      for (std::int64_t i = begin; i < end; ++i) {
        const auto [id, logp, filtered] = detail::sample_row(data + i * v, v, inv_t, params.top_k, top_p, min_p,
                                                             uniforms[static_cast<std::size_t>(i)], e, *sel);
        ids[i] = id;
        lp[i] = logp;
        flp[i] = filtered;
      }
    });
  });
  if (logits.dim() == 1) return {out.ids.squeeze(0), out.sampling_logprobs.squeeze(0), out.tempered_logprobs.squeeze(0)};
  return out;
}

namespace detail {

/// Tokens per chunk of fused_linear_logprobs: the chunk's logits stay under a budget (0.625 GiB on
/// CUDA, kernels.md §2c: C of 1-2K tokens amortises the weight-gradient traffic; 64 MiB on the CPU so
/// a chunk stays near the caches), rounded down to a multiple of 128 tokens when that is ≥ 128.
inline std::int64_t auto_chunk(std::int64_t n, std::int64_t v, const torch::Tensor& weight) {
  const double budget = weight.is_cuda() ? 0.625 * (1ULL << 30) : 64.0 * (1ULL << 20);
  auto c = static_cast<std::int64_t>(budget / (static_cast<double>(v) * static_cast<double>(weight.element_size())));
  if (c >= 128) c -= c % 128;
  return std::clamp<std::int64_t>(c, 1, std::max<std::int64_t>(n, 1));
}

struct FusedLinearFunction : torch::autograd::Function<FusedLinearFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& hidden,
                                                const torch::Tensor& weight, const torch::Tensor& targets,
                                                double temperature, bool with_entropy, std::int64_t chunk) {
    const std::int64_t n = hidden.size(0);
    const std::int64_t v = weight.size(0);
    const auto sd = stats_dtype(hidden.scalar_type());
    const auto opts = hidden.options().dtype(sd);
    torch::Tensor logp = torch::empty({n}, opts);
    torch::Tensor lse = torch::empty({n}, opts);
    torch::Tensor entropy = with_entropy ? torch::empty({n}, opts) : torch::Tensor();
    torch::Tensor buffer = torch::empty({std::min(chunk, n), v}, hidden.options());
    const torch::Tensor wt = weight.t();
    for (std::int64_t start = 0; start < n; start += chunk) {
      const std::int64_t rows = std::min(chunk, n - start);
      torch::Tensor logits = buffer.narrow(0, 0, rows);
      torch::mm_out(logits, hidden.narrow(0, start, rows), wt);
      const auto outs = token_logprobs_forward(logits, targets.narrow(0, start, rows), temperature, with_entropy);
      logp.narrow(0, start, rows).copy_(outs[0]);
      lse.narrow(0, start, rows).copy_(outs[1]);
      if (with_entropy) entropy.narrow(0, start, rows).copy_(outs[2]);
    }
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["with_entropy"] = with_entropy;
    ctx->saved_data["chunk"] = chunk;
    ctx->save_for_backward({hidden, weight, targets, lse, with_entropy ? entropy : lse});
    if (with_entropy) return {logp, entropy};
    return {logp};
  }

  /// Vocabulary-outer backward. With the saved lse (and entropy) each vocabulary slice of dlogits is
  /// elementwise, so for slices W_s = weight[v0 : v0 + vs]:
  ///   dlogits_s = ∂/∂(h·W_sᵀ) (recomputed logits, the token log-prob backward with the target shifted
  ///               by v0; rows whose target lies outside the slice get no δ term)
  ///   dW_s = dlogits_sᵀ · h   one GEMM over all N tokens: fp32 accumulation inside the GEMM, rounded once
  ///   dX  += dlogits_s · W_s  accumulated in fp32 for bf16/fp16 hidden states
  /// GEMMs whose input needs no gradient (ctx->needs_input_grad) are skipped.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& hidden = saved[0];
    const torch::Tensor& weight = saved[1];
    const torch::Tensor& targets = saved[2];
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const bool with_entropy = ctx->saved_data["with_entropy"].toBool();
    const std::int64_t chunk = ctx->saved_data["chunk"].toInt();
    const std::int64_t n = hidden.size(0);
    const std::int64_t v = weight.size(0);
    const bool need_h = ctx->needs_input_grad(0);
    const bool need_w = ctx->needs_input_grad(1);
    const torch::autograd::variable_list none = {torch::Tensor(), torch::Tensor(), torch::Tensor(),
                                                 torch::Tensor(), torch::Tensor(), torch::Tensor()};
    if ((!need_h && !need_w) || n == 0) {
      torch::autograd::variable_list out = none;
      if (need_h) out[0] = torch::zeros_like(hidden);
      if (need_w) out[1] = torch::zeros_like(weight);
      return out;
    }
    const auto sd = stats_dtype(hidden.scalar_type());
    const torch::Tensor g_lp = flat_grad(grads[0], n, sd);
    const torch::Tensor g_h = with_entropy ? flat_grad(grads[1], n, sd) : torch::Tensor();
    const std::int64_t slice = vocab_slice(n, v, chunk);
    const bool acc32 = hidden.scalar_type() == torch::kBFloat16 || hidden.scalar_type() == torch::kHalf;
    torch::Tensor flat_buffer = torch::empty({n * slice}, hidden.options());
    torch::Tensor grad_weight = need_w ? torch::empty_like(weight) : torch::Tensor();
    torch::Tensor dx = need_h ? torch::empty({n, hidden.size(1)}, hidden.options().dtype(acc32 ? torch::kFloat32
                                                                                              : hidden.scalar_type()))
                              : torch::Tensor();
    torch::Tensor partial = need_h && acc32 ? torch::empty_like(hidden) : torch::Tensor();
    for (std::int64_t v0 = 0; v0 < v; v0 += slice) {
      const std::int64_t vs = std::min(slice, v - v0);
      const torch::Tensor w_s = weight.narrow(0, v0, vs);
      torch::Tensor logits = flat_buffer.narrow(0, 0, n * vs).view({n, vs});
      torch::mm_out(logits, hidden, w_s.t());  // recompute this slice's logits
      const torch::Tensor shifted = v0 == 0 ? targets : targets - v0;
      token_logprobs_backward(logits, shifted, temperature, saved[3], saved[4], g_lp, g_h, logits);
      if (need_w) {
        torch::Tensor gw = grad_weight.narrow(0, v0, vs);
        torch::mm_out(gw, logits.t(), hidden);
      }
      if (need_h) {
        if (acc32) {
          torch::mm_out(partial, logits, w_s);
          if (v0 == 0) dx.copy_(partial);
          else dx.add_(partial);
        } else if (v0 == 0) {
          torch::mm_out(dx, logits, w_s);
        } else {
          dx.addmm_(logits, w_s);
        }
      }
    }
    torch::autograd::variable_list out = none;
    if (need_h) out[0] = acc32 ? dx.to(hidden.scalar_type()) : dx;
    if (need_w) out[1] = grad_weight;
    return out;
  }

  /// Vocabulary columns per backward slice: the forward's logits budget (chunk tokens × V elements)
  /// spread over all n tokens, rounded down to a multiple of 128 when that is ≥ 128.
  static std::int64_t vocab_slice(std::int64_t n, std::int64_t v, std::int64_t chunk) {
    const double elements = static_cast<double>(std::min(chunk, n)) * static_cast<double>(v);
    auto s = static_cast<std::int64_t>(elements / static_cast<double>(std::max<std::int64_t>(n, 1)));
    if (s >= 128) s -= s % 128;
    return std::clamp<std::int64_t>(s, 1, v);
  }

  static torch::Tensor targets_slice(const torch::Tensor& t, std::int64_t start, std::int64_t rows) {
    return t.narrow(0, start, rows);
  }
};

}  // namespace detail

/// token_logprobs(hidden · weightᵀ, targets, options) without materialising the [N, V] logits: the
/// tokens are processed in chunks of options.chunk_size (0 = chosen for the shape, see auto_chunk);
/// the backward runs over vocabulary slices of the same buffer size (FusedLinearFunction::backward):
/// grad_weight is one GEMM per slice over all tokens (rounded once), grad_hidden accumulates in fp32 for
/// bf16/fp16, and a GEMM is skipped when its input needs no gradient (a frozen lm_head or trunk).
/// Extra memory: one logits buffer of chunk·V elements in each pass, plus N·H fp32 + N·H in the
/// backward for bf16/fp16.
///
/// hidden: [N, H] or [B, T, H]; weight: [V, H] (the output embedding / lm_head), same dtype and device;
/// targets: int64 [N] or [B, T] in [0, V). Returns tensors shaped like targets (float32; float64 for
/// float64 inputs). Differentiable with respect to hidden and weight.
/// Throws kaizen::Error on mismatched dtypes, shapes or devices, targets out of range, a temperature that
/// is not finite and > 0, a negative chunk_size, or a CUDA tensor in a build without kernels.
[[nodiscard]] inline TokenLogprobs fused_linear_logprobs(const torch::Tensor& hidden, const torch::Tensor& weight,
                                                        const torch::Tensor& targets,
                                                        const TokenLogprobOptions& options = {}) {
  constexpr std::string_view fn = "ops::fused_linear_logprobs";
  KAIZEN_CHECK(hidden.defined() && weight.defined() && targets.defined(), fn,
               ": expected defined hidden, weight and targets");
  detail::check_device(fn, hidden);
  KAIZEN_CHECK(weight.device() == hidden.device(), fn, ": expected the weight on the hidden states' device ",
               hidden.device(), ", got ", weight.device());
  KAIZEN_CHECK(detail::is_float_dtype(hidden.scalar_type()), fn,
               ": expected hidden of dtype float32, float64, bfloat16 or float16, got ", hidden.scalar_type());
  KAIZEN_CHECK(weight.scalar_type() == hidden.scalar_type(), fn, ": expected the weight in the hidden dtype ",
               hidden.scalar_type(), ", got ", weight.scalar_type());
  KAIZEN_CHECK(hidden.dim() == 2 || hidden.dim() == 3, fn, ": expected hidden [N, H] or [B, T, H], got shape ",
               hidden.sizes());
  KAIZEN_CHECK(weight.dim() == 2 && weight.size(1) == hidden.size(-1), fn, ": expected weight [V, ",
               hidden.size(-1), "] for hidden ", hidden.sizes(), ", got ", weight.sizes());
  KAIZEN_CHECK(options.chunk_size >= 0, fn, ": expected chunk_size >= 0 (0 = automatic), got ", options.chunk_size);
  detail::check_targets(fn, targets, hidden.device(), hidden.sizes().slice(0, hidden.dim() - 1), "hidden",
                        hidden.sizes(), weight.size(0), options.temperature, options.check_targets);
  const torch::Tensor h = hidden.reshape({-1, hidden.size(-1)}).contiguous();
  const torch::Tensor w = weight.contiguous();
  const std::int64_t n = h.size(0);
  const std::int64_t chunk = options.chunk_size > 0 ? options.chunk_size : detail::auto_chunk(n, w.size(0), w);
  auto outs = detail::FusedLinearFunction::apply(h, w, targets.reshape({-1}).contiguous(), options.temperature,
                                                 options.with_entropy, chunk);
  TokenLogprobs result;
  result.logprobs = outs[0].view(targets.sizes());
  if (options.with_entropy) result.entropy = outs[1].view(targets.sizes());
  return result;
}

/// Options of group_stats.
struct GroupStatsOptions {
  bool unbiased = true;   ///< σ divides by n − 1 (torch.std, verl/TRL GRPO) instead of n
  double epsilon = 1e-6;  ///< added to σ before dividing (≥ 0)
  bool scale = true;      ///< advantages (x − μ) / (σ + ε); false: x − μ (Dr. GRPO)
};

/// Per-group statistics and the group-normalised values.
struct GroupStats {
  torch::Tensor mean;        ///< float32 [G]
  torch::Tensor std;         ///< float32 [G]
  torch::Tensor advantages;  ///< float32 like values
};

/// Segmented mean / std of `values` [M] over contiguous groups [offsets[g], offsets[g+1]) and the
/// normalised advantages (formulas: kaizen/kernels/group_stats.hpp); float64 accumulation on both devices.
/// offsets: int64 [G + 1] on the values' device, offsets[0] = 0, non-decreasing, offsets[G] = M.
/// Throws kaizen::Error on a non-floating or non-1-D `values`, malformed offsets, an empty group, a
/// group of one member with the unbiased std, non-finite values, epsilon < 0, or a CUDA tensor in a
/// build without kernels.
[[nodiscard]] inline GroupStats group_stats(const torch::Tensor& values, const torch::Tensor& offsets,
                                            const GroupStatsOptions& options = {}) {
  constexpr std::string_view fn = "ops::group_stats";
  KAIZEN_CHECK(values.defined() && offsets.defined(), fn, ": expected defined values and offsets");
  detail::check_device(fn, values);
  KAIZEN_CHECK(offsets.device() == values.device(), fn, ": expected offsets on the values' device ", values.device(),
               ", got ", offsets.device());
  KAIZEN_CHECK(values.dim() == 1 && detail::is_float_dtype(values.scalar_type()), fn,
               ": expected 1-D floating values, got ", values.scalar_type(), " of shape ", values.sizes());
  KAIZEN_CHECK(offsets.dim() == 1 && offsets.scalar_type() == torch::kInt64 && offsets.numel() >= 1, fn,
               ": expected int64 offsets [G + 1], got ", offsets.scalar_type(), " of shape ", offsets.sizes());
  KAIZEN_CHECK(options.epsilon >= 0, fn, ": expected epsilon >= 0, got ", options.epsilon);
  const torch::Tensor off = offsets.to(torch::kCPU).contiguous();
  const std::int64_t g = off.numel() - 1;
  const std::int64_t* o = off.data_ptr<std::int64_t>();
  KAIZEN_CHECK(o[0] == 0 && o[g] == values.numel(), fn, ": expected offsets from 0 to ", values.numel(),
               " (the number of values), got ", o[0], " to ", o[g]);
  const std::int64_t min_size = options.unbiased ? 2 : 1;
  for (std::int64_t k = 0; k < g; ++k)
    KAIZEN_CHECK(o[k + 1] - o[k] >= min_size, fn, ": expected every group to have at least ", min_size,
                 options.unbiased ? " members (the unbiased std divides by n - 1)" : " member", ", group ", k,
                 " has ", o[k + 1] - o[k]);
  KAIZEN_CHECK(torch::isfinite(values).all().item<bool>(), fn, ": expected finite values");
  const torch::Tensor x = values.to(torch::kFloat32).contiguous();
  const auto opts = x.options();
  GroupStats out{torch::empty({g}, opts), torch::empty({g}, opts), torch::empty_like(x)};
#if KAIZEN_WITH_CUDA
  if (x.is_cuda()) {
    const c10::cuda::CUDAGuard guard(x.device());
    const torch::Tensor od = offsets.contiguous();
    kernels::group_stats(x.data_ptr<float>(), od.data_ptr<std::int64_t>(), g, options.unbiased,
                         static_cast<float>(options.epsilon), options.scale, out.mean.data_ptr<float>(),
                         out.std.data_ptr<float>(), out.advantages.data_ptr<float>(), detail::current_stream());
    return out;
  }
#endif
  const float* xv = x.data_ptr<float>();
  float* mean = out.mean.data_ptr<float>();
  float* sd = out.std.data_ptr<float>();
  float* adv = out.advantages.data_ptr<float>();
  detail::parallel_rows(g, std::max<std::int64_t>(1, x.numel() / std::max<std::int64_t>(g, 1)),
                        [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t k = begin; k < end; ++k) {
      const double n = static_cast<double>(o[k + 1] - o[k]);
      double sum = 0.0;
      for (std::int64_t i = o[k]; i < o[k + 1]; ++i) sum += xv[i];
      const double mu = sum / n;
      double sq = 0.0;
      for (std::int64_t i = o[k]; i < o[k + 1]; ++i) sq += (xv[i] - mu) * (xv[i] - mu);
      const double sigma = std::sqrt(sq / (options.unbiased ? n - 1.0 : n));
      mean[k] = static_cast<float>(mu);
      sd[k] = static_cast<float>(sigma);
      const double denom = options.scale ? sigma + options.epsilon : 1.0;
      for (std::int64_t i = o[k]; i < o[k + 1]; ++i) adv[i] = static_cast<float>((xv[i] - mu) / denom);
    }
  });
  return out;
}

}  // namespace kaizen::ops
