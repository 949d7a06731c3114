// kaizen/torch/logit_transform.hpp - the sampling transform (temperature, top-k, top-p, min-p) as
// log-probabilities, shared by the sampler and the trainer so both score a token under the same
// distribution.
//
// For logits z [N, V] and a transform (τ, k, p, m), applied in this order (as Hugging Face's
// logits processors):
//   z' = z / τ
//   top-k:  keep the k largest z' (ties with the k-th value are kept)
//   top-p:  over the kept tokens sorted by probability, keep each token whose preceding mass is < p
//           (the smallest prefix with mass >= p; the most likely token is always kept)
//   min-p:  keep tokens with π_i >= m · max_j π_j (π renormalised over the tokens kept so far)
//   log π̃ = log_softmax(z' with dropped tokens at −∞)
// Which tokens are kept is decided on detached values (it is a selection, not a function to
// differentiate); the gradient flows through log_softmax of the kept logits. The trainer may force
// the scored tokens into the kept set (`always_keep`): after a policy update a sampled token can fall
// outside the top-p set of the new logits, and its log-prob must stay finite. At the sampling
// parameters the sampled token is already kept, so forcing it changes nothing there.
//
// References: Fan et al. 2018 (top-k, arXiv 1805.04833); Holtzman et al. 2020 (nucleus / top-p,
// arXiv 1904.09751); Nguyen et al. 2024 (min-p, arXiv 2407.01082).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/types.hpp>

namespace kaizen::lm {

/// The four knobs of SamplingParams that shape the distribution.
struct LogitTransform {
  double temperature = 1.0;  ///< > 0
  std::int64_t top_k = 0;    ///< 0 = off
  double top_p = 1.0;        ///< (0, 1]; 1 = off
  double min_p = 0.0;        ///< [0, 1); 0 = off

  [[nodiscard]] static LogitTransform from(const SamplingParams& p) {
    validate(p);
    return {p.temperature, p.top_k, p.top_p, p.min_p};
  }
  [[nodiscard]] bool filters() const { return top_k > 0 || top_p < 1.0 || min_p > 0.0; }
};

/// Log-probabilities [N, V] (float32, or float64 for float64 logits) of the transformed distribution;
/// dropped tokens get −∞. `logits` [N, V] floating; `always_keep` (optional) [N] int64 token ids that
/// stay in the kept set. Throws kaizen::Error on bad shapes or an invalid transform.
[[nodiscard]] inline torch::Tensor transformed_log_softmax(const torch::Tensor& logits, const LogitTransform& t,
                                                           const torch::Tensor& always_keep = {}) {
  KAIZEN_CHECK(logits.defined() && logits.dim() == 2 && logits.is_floating_point(),
               "transformed_log_softmax: expected floating logits [N, V], got ",
               logits.defined() ? logits.sizes() : torch::IntArrayRef{});
  KAIZEN_CHECK(t.temperature > 0.0 && t.top_k >= 0 && t.top_p > 0.0 && t.top_p <= 1.0 && t.min_p >= 0.0 && t.min_p < 1.0,
               "transformed_log_softmax: expected temperature > 0, top_k >= 0, top_p in (0, 1], min_p in [0, 1), got ",
               t.temperature, ", ", t.top_k, ", ", t.top_p, ", ", t.min_p);
  const auto compute = logits.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const torch::Tensor z = logits.to(compute) / t.temperature;
  if (!t.filters()) return torch::log_softmax(z, -1);

  const double neg_inf = -std::numeric_limits<double>::infinity();
  const std::int64_t V = z.size(1);
  torch::Tensor keep = torch::ones_like(z, torch::kBool);
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor zd = z.detach();
    if (t.top_k > 0 && t.top_k < V) {
      const torch::Tensor kth = std::get<0>(zd.topk(t.top_k, -1)).narrow(1, t.top_k - 1, 1);
      keep = keep & (zd >= kth);
    }
    if (t.top_p < 1.0) {
      const torch::Tensor probs = torch::softmax(zd.masked_fill(keep.logical_not(), neg_inf), -1);
      const auto [sorted, order] = probs.sort(-1, /*descending=*/true);
      const torch::Tensor before = sorted.cumsum(-1) - sorted;  // mass of the more likely tokens
      const torch::Tensor keep_sorted = before < t.top_p;
      keep = keep & torch::zeros_like(keep).scatter(1, order, keep_sorted);
    }
    if (t.min_p > 0.0) {
      const torch::Tensor logp = torch::log_softmax(zd.masked_fill(keep.logical_not(), neg_inf), -1);
      const torch::Tensor top = std::get<0>(logp.max(-1, /*keepdim=*/true));
      keep = keep & (logp >= top + std::log(t.min_p));
    }
    if (always_keep.defined()) {
      KAIZEN_CHECK(always_keep.dim() == 1 && always_keep.size(0) == z.size(0) && always_keep.scalar_type() == torch::kLong,
                   "transformed_log_softmax: always_keep must be [N] int64 with N = ", z.size(0), ", got ",
                   always_keep.sizes());
      keep = keep.scatter(1, always_keep.unsqueeze(1), true);
    }
  }
  return torch::log_softmax(z.masked_fill(keep.logical_not(), neg_inf), -1);
}

}  // namespace kaizen::lm
