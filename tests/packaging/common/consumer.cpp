// A downstream program: includes kaizen, models a concept with its own type, collates a batch.
#include <iostream>
#include <vector>

#include <kaizen/kaizen.hpp>

namespace {
struct LengthReward {  // a user's outcome reward: shorter completions score higher
  double operator()(const kaizen::Prompt&, const kaizen::Completion& c) const { return 1.0 / c.tokens.size(); }
};
static_assert(kaizen::OutcomeReward<LengthReward>);
}  // namespace

int main() {
  std::vector<kaizen::Prompt> prompts{{.tokens = {1, 2, 3}}};
  std::vector<kaizen::Completion> completions{{.tokens = {4, 5}, .logprobs = {-0.5F, -1.0F}},
                                              {.tokens = {6}, .logprobs = {-0.1F}}};
  LengthReward reward;
  std::vector<kaizen::Prompt> repeated(2, prompts[0]);
  const std::vector<double> rewards = kaizen::score(reward, repeated, completions);
  const kaizen::TokenBatch batch = kaizen::collate(prompts, completions, rewards, /*group_size=*/2,
                                                   {.vocab_size = 8});
  std::cout << "kaizen " << kaizen::kVersion << " consumer: batch " << batch.input_ids.sizes()
            << ", completion tokens " << batch.completion_mask.sum().item<std::int64_t>()
            << ", cuda kernels " << (kaizen::kWithCudaKernels ? "linked" : "absent") << '\n';
  return batch.completion_mask.sum().item<std::int64_t>() == 3 ? 0 : 1;
}
