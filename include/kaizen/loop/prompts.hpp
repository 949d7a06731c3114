// kaizen/loop/prompts.hpp - stage 1 of every loop: draw the prompts of a step.
//
// A prompt source is a callable `source(arm, rng) -> Prompt`. With a curriculum, the arms are the
// curriculum's n draws (`curriculum.sample(n, rng)`); without one, every arm is -1. The draws consume
// the loop's engine in a fixed order (curriculum first, then one source call per prompt), which is what
// makes a resumed run repeat the uninterrupted one.
#pragma once

#include <concepts>
#include <cstdint>
#include <utility>
#include <vector>

#include <kaizen/core/curriculum.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>

namespace kaizen::loop {

/// Where prompts come from: `source(arm, rng) -> Prompt`, arm = the curriculum's draw, or -1 without one.
template <class S>
concept PromptSource = requires(S& s, ArmId arm, Rng& rng) {
  { s(arm, rng) } -> std::convertible_to<Prompt>;
};

/// Stands in for "no curriculum".
struct NoCurriculum {};

/// The prompts of one step and the arm each came from (-1 without a curriculum).
struct DrawnPrompts {
  std::vector<Prompt> prompts;
  std::vector<ArmId> arms;
};

/// Draws `n` prompts: arms from `curriculum` when it is a kaizen::Curriculum and not null, else -1;
/// then `source(arm, rng)` once per arm. Throws kaizen::Error when n < 0.
template <PromptSource Src, class C = NoCurriculum>
[[nodiscard]] DrawnPrompts draw_prompts(Src& source, std::int64_t n, Rng& rng, C* curriculum = nullptr) {
  KAIZEN_CHECK(n >= 0, "draw_prompts: n must be >= 0, got ", n);
  DrawnPrompts out;
  out.arms.assign(static_cast<std::size_t>(n), ArmId{-1});
  if constexpr (Curriculum<C>) {
    if (curriculum != nullptr) out.arms = curriculum->sample(static_cast<std::size_t>(n), rng);
  }
  out.prompts.reserve(out.arms.size());
  for (ArmId arm : out.arms) out.prompts.push_back(source(arm, rng));
  return out;
}

/// A prompt source over a fixed pool: each call returns a uniformly drawn member (the arm is ignored).
/// Throws kaizen::Error when the pool is empty.
class PoolSource {
 public:
  explicit PoolSource(std::vector<Prompt> pool) : pool_(std::move(pool)) {
    KAIZEN_CHECK(!pool_.empty(), "PoolSource: expected at least one prompt, got an empty pool");
  }
  Prompt operator()(ArmId, Rng& rng) const { return pool_[uniform_index(rng, pool_.size())]; }
  [[nodiscard]] const std::vector<Prompt>& pool() const noexcept { return pool_; }

 private:
  std::vector<Prompt> pool_;
};

}  // namespace kaizen::loop
