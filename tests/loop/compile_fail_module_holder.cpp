// Compile-fail test: passing a TORCH_MODULE holder where a Policy is expected must stop the build with a
// message that says to pass the module (`*net`), not a wall of unsatisfied constraints.
#include <vector>

#include <torch/torch.h>

#include <kaizen/core/token_batch.hpp>
#include <kaizen/torch/policy_logprobs.hpp>

struct NetImpl : torch::nn::Module {
  torch::Tensor logits(const kaizen::TokenBatch& batch) { return torch::zeros({batch.batch_size(), batch.length(), 4}); }
};
TORCH_MODULE(Net);
static_assert(kaizen::Policy<NetImpl>);
static_assert(kaizen::TorchModuleHolder<Net>);

int main() {
  Net net;
  kaizen::TokenBatch batch;
  return static_cast<int>(kaizen::lm::policy_logprobs(net, batch).numel());
}
