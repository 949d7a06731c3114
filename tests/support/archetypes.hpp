// tests/support/archetypes.hpp - the least a user type must provide to model each kaizen concept
// (an archetype), and a near miss that must NOT model it. tests/core/test_concepts.cpp checks both
// at compile time, so a concept that silently grows or shrinks its requirements breaks a test.
#pragma once

#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/concepts.hpp>

namespace kaizen::test {

// --- Policy ----------------------------------------------------------------------------------
struct PolicyArchetype {
  torch::Tensor weight = torch::zeros({4, 3});
  torch::Tensor logits(const TokenBatch& batch) { return weight.index({batch.input_ids}); }
  std::vector<torch::Tensor> parameters() { return {weight}; }
};
struct PolicyNearMiss {  // logits() takes a raw tensor, not a TokenBatch
  torch::Tensor logits(const torch::Tensor& ids) { return ids; }
  std::vector<torch::Tensor> parameters() { return {}; }
};

// --- HiddenStatePolicy -----------------------------------------------------------------------
struct HiddenStatePolicyArchetype : PolicyArchetype {
  torch::Tensor hidden_states(const TokenBatch& batch) { return torch::zeros({batch.batch_size(), batch.length(), 3}); }
  torch::Tensor output_embedding() { return weight; }
};
struct HiddenStatePolicyNearMiss : PolicyArchetype {  // no output_embedding()
  torch::Tensor hidden_states(const TokenBatch& batch) { return torch::zeros({batch.batch_size(), batch.length(), 3}); }
};

// --- Sampler ---------------------------------------------------------------------------------
struct SamplerArchetype {
  std::vector<Completion> sample(std::span<const Prompt> prompts, const SamplingParams&) {
    return std::vector<Completion>(prompts.size(), Completion{.tokens = {1}, .logprobs = {0.0F}});
  }
};
struct SamplerNearMiss {  // returns one completion, not one per prompt
  Completion sample(std::span<const Prompt>, const SamplingParams&) { return {}; }
};

// --- Rewards ---------------------------------------------------------------------------------
struct OutcomeRewardArchetype {
  double operator()(const Prompt&, const Completion& c) const { return static_cast<double>(c.tokens.size()); }
};
struct BatchedRewardArchetype {
  std::vector<double> operator()(std::span<const Prompt>, std::span<const Completion> cs) const {
    return std::vector<double>(cs.size(), 1.0);
  }
};
struct OutcomeRewardNearMiss {  // scores text, not (prompt, completion)
  double operator()(const std::string& text) const { return static_cast<double>(text.size()); }
};
struct VerifierArchetype {
  bool operator()(const Prompt& p, const Completion& c) const { return c.text == p.reference; }
};
struct VerifierNearMiss {  // returns a score, not a verdict
  double operator()(const Prompt&, const Completion&) const { return 1.0; }
};
struct ProcessRewardArchetype {
  std::vector<double> operator()(const Prompt&, std::span<const std::string> steps) const {
    return std::vector<double>(steps.size(), 0.5);
  }
};
struct ProcessRewardNearMiss {  // one score for the whole trace
  double operator()(const Prompt&, std::span<const std::string>) const { return 0.5; }
};

// --- Curriculum ------------------------------------------------------------------------------
struct CurriculumArchetype {
  std::vector<ArmId> sample(std::size_t n, Rng&) { return std::vector<ArmId>(n, 0); }
  void update(std::span<const ArmId>, std::span<const double>) {}
  std::vector<double> probabilities() const { return {1.0}; }
  nlohmann::json state() const { return nlohmann::json::object(); }
  void restore(const nlohmann::json&) {}
};
struct CurriculumNearMiss {  // cannot be saved and restored
  std::vector<ArmId> sample(std::size_t n, Rng&) { return std::vector<ArmId>(n, 0); }
  void update(std::span<const ArmId>, std::span<const double>) {}
  std::vector<double> probabilities() const { return {1.0}; }
};

}  // namespace kaizen::test
