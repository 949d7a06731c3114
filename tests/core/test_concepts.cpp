// Each concept is modelled by its archetype and rejects its near miss (tests/support/archetypes.hpp).
#include <catch2/catch.hpp>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/concepts.hpp>

#include "support/archetypes.hpp"

using namespace kaizen;
using namespace kaizen::test;

TEST_CASE("archetypes model the core concepts and near misses do not", "[core][concepts]") {
  STATIC_REQUIRE(Policy<PolicyArchetype>);
  STATIC_REQUIRE_FALSE(Policy<PolicyNearMiss>);
  STATIC_REQUIRE(HiddenStatePolicy<HiddenStatePolicyArchetype>);
  STATIC_REQUIRE_FALSE(HiddenStatePolicy<HiddenStatePolicyNearMiss>);
  STATIC_REQUIRE_FALSE(HiddenStatePolicy<PolicyArchetype>);
  STATIC_REQUIRE(Sampler<SamplerArchetype>);
  STATIC_REQUIRE_FALSE(Sampler<SamplerNearMiss>);
  STATIC_REQUIRE(OutcomeReward<OutcomeRewardArchetype>);
  STATIC_REQUIRE(OutcomeReward<BatchedRewardArchetype>);
  STATIC_REQUIRE_FALSE(OutcomeReward<OutcomeRewardNearMiss>);
  STATIC_REQUIRE(Verifier<VerifierArchetype>);
  STATIC_REQUIRE(OutcomeReward<VerifierArchetype>);
  STATIC_REQUIRE_FALSE(Verifier<VerifierNearMiss>);
  STATIC_REQUIRE(ProcessReward<ProcessRewardArchetype>);
  STATIC_REQUIRE_FALSE(ProcessReward<ProcessRewardNearMiss>);
  STATIC_REQUIRE(Curriculum<CurriculumArchetype>);
  STATIC_REQUIRE_FALSE(Curriculum<CurriculumNearMiss>);
}

TEST_CASE("lambdas model the reward concepts", "[core][concepts]") {
  auto length = [](const Prompt&, const Completion& c) { return static_cast<double>(c.tokens.size()); };
  auto exact = [](const Prompt& p, const Completion& c) { return c.text == p.reference; };
  STATIC_REQUIRE(OutcomeReward<decltype(length)>);
  STATIC_REQUIRE(Verifier<decltype(exact)>);
  STATIC_REQUIRE_FALSE(Verifier<decltype(length)>);
}

TEST_CASE("the policy archetype runs on a collated batch", "[core][concepts]") {
  PolicyArchetype policy;
  const std::vector<Rollout> rollouts{{.prompt = {1, 2}, .completion = {.tokens = {3}}}};
  const TokenBatch batch = collate(rollouts, {.vocab_size = 4});
  CHECK(policy.logits(batch).sizes() == torch::IntArrayRef({1, 3, 3}));
}

#include <kaizen/kaizen.hpp>  // the whole library in this TU as well (see odr_second_tu.cpp)

namespace kaizen::test {
int odr_second_tu_marker();
}

TEST_CASE("two translation units include the whole library and link", "[core][odr]") {
  CHECK(kaizen::test::odr_second_tu_marker() == 1);
}
