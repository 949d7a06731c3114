// kaizen/core/policy.hpp - the Policy and HiddenStatePolicy concepts: what a trainable model must offer.
#pragma once

#include <concepts>
#include <vector>

#include <torch/types.h>

#include <kaizen/core/token_batch.hpp>

namespace kaizen {

/// A trainable language model.
///
/// Required expressions (p: P&, batch: const TokenBatch&):
/// @code
///   p.logits(batch)   -> torch::Tensor   // [B, T, V]: logits at column t predict input_ids[:, t + 1]
///   p.parameters()    -> a std::vector<torch::Tensor> (or convertible), the trainable parameters
/// @endcode
/// Not checkable by the compiler: logits depend only on input_ids, attention_mask and position_ids of
/// `batch` (padding never changes a real token's logits); parameters() returns the same tensors every
/// call, so an optimiser built once keeps working.
template <class P>
concept Policy = requires(P& p, const TokenBatch& batch) {
  { p.logits(batch) } -> std::convertible_to<torch::Tensor>;
  { p.parameters() } -> std::convertible_to<std::vector<torch::Tensor>>;
};

/// A LibTorch module holder, as `TORCH_MODULE(Net)` declares `Net` around `NetImpl`: a shared pointer to
/// the module, which is not itself a Policy (its members are reached through `->`). kaizen's entry points
/// that take a Policy reject a holder with a static_assert that says to pass the module: `*net`.
template <class H>
concept TorchModuleHolder = !Policy<H> && requires(H& h) {
  typename H::ContainedType;
  { h.get() } -> std::convertible_to<const typename H::ContainedType*>;
  *h;
};

namespace detail {
template <class>
inline constexpr bool dependent_false = false;
}  // namespace detail

/// A Policy that exposes its last hidden states and output embedding, so losses can use the fused
/// linear + log-prob path and never materialise [B, T, V] logits. Algorithms pick that path with
/// `if constexpr (HiddenStatePolicy<P>)`.
///
/// Required expressions, in addition to Policy's:
/// @code
///   p.hidden_states(batch) -> torch::Tensor   // [B, T, H], so that logits = hidden @ output_embedding^T
///   p.output_embedding()   -> torch::Tensor   // [V, H]
/// @endcode
template <class P>
concept HiddenStatePolicy = Policy<P> && requires(P& p, const TokenBatch& batch) {
  { p.hidden_states(batch) } -> std::convertible_to<torch::Tensor>;
  { p.output_embedding() } -> std::convertible_to<torch::Tensor>;
};

}  // namespace kaizen
