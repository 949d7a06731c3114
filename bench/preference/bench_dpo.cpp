// DPO loss forward + backward at batch 256: kaizen::preference::dpo_loss (input checks, metrics)
// against the same loss composed from plain LibTorch ops, measured in the same run. Also the path
// from token log-probs [2N, T] (mask reduction + split + loss). Figures: kaizen / plain time ratios
// (dpo_over_plain, dpo_from_tokens_over_plain; real and CPU time) and each side's time.
#include <benchmark/benchmark.h>

#include <string>

#include <torch/torch.h>

#include <kaizen/preference/dpo.hpp>
#include <kaizen/preference/sequence_logprobs.hpp>

#include <support/figures.hpp>

namespace {

constexpr double kBeta = 0.1;

struct Inputs {
  torch::Tensor chosen, rejected, reference_chosen, reference_rejected;
  explicit Inputs(std::int64_t n) {
    torch::manual_seed(0);
    chosen = (-50 * torch::rand({n})).requires_grad_();
    rejected = (-50 * torch::rand({n})).requires_grad_();
    reference_chosen = -50 * torch::rand({n});
    reference_rejected = -50 * torch::rand({n});
  }
  void clear_grads() {
    chosen.mutable_grad() = torch::Tensor();
    rejected.mutable_grad() = torch::Tensor();
  }
};

void BM_kaizen_dpo(benchmark::State& state) {
  Inputs in(state.range(0));
  for (auto _ : state) {
    const auto out = kaizen::preference::dpo_loss(
        {in.chosen, in.rejected, in.reference_chosen, in.reference_rejected}, {.beta = kBeta});
    out.loss.backward();
    benchmark::DoNotOptimize(out.metrics.accuracy.data_ptr());
    in.clear_grads();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_plain_dpo(benchmark::State& state) {
  Inputs in(state.range(0));
  for (auto _ : state) {
    const auto h = (in.chosen - in.reference_chosen) - (in.rejected - in.reference_rejected);
    const auto loss = -torch::log_sigmoid(kBeta * h).mean();
    // The same metrics TRL logs, so both sides compute the same things.
    const auto cr = kBeta * (in.chosen - in.reference_chosen).detach();
    const auto rr = kBeta * (in.rejected - in.reference_rejected).detach();
    const auto accuracy = cr.gt(rr).to(torch::kFloat32).mean();
    const auto margin = (cr - rr).mean();
    loss.backward();
    benchmark::DoNotOptimize(accuracy.data_ptr());
    benchmark::DoNotOptimize(margin.data_ptr());
    in.clear_grads();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

struct TokenInputs {
  torch::Tensor policy, reference, mask;
  TokenInputs(std::int64_t n, std::int64_t t) {
    torch::manual_seed(1);
    policy = (-torch::rand({2 * n, t})).requires_grad_();
    reference = -torch::rand({2 * n, t});
    mask = torch::rand({2 * n, t}).gt(0.3);
    mask.select(1, 0).fill_(true);
  }
};

void BM_kaizen_dpo_from_tokens(benchmark::State& state) {
  TokenInputs in(state.range(0), state.range(1));
  for (auto _ : state) {
    const auto pairs = kaizen::preference::pair_logprobs(in.policy, in.mask, in.reference);
    const auto out = kaizen::preference::dpo_loss(pairs, {.beta = kBeta});
    out.loss.backward();
    in.policy.mutable_grad() = torch::Tensor();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_plain_dpo_from_tokens(benchmark::State& state) {
  TokenInputs in(state.range(0), state.range(1));
  const std::int64_t n = state.range(0);
  for (auto _ : state) {
    const auto m = in.mask.to(in.policy.scalar_type());
    const auto policy = (in.policy * m).sum(1);
    const auto reference = (in.reference * m).sum(1);
    const auto h = (policy.narrow(0, 0, n) - reference.narrow(0, 0, n)) - (policy.narrow(0, n, n) - reference.narrow(0, n, n));
    const auto loss = -torch::log_sigmoid(kBeta * h).mean();
    loss.backward();
    in.policy.mutable_grad() = torch::Tensor();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

BENCHMARK(BM_kaizen_dpo)->Arg(256);
BENCHMARK(BM_plain_dpo)->Arg(256);
BENCHMARK(BM_kaizen_dpo_from_tokens)->Args({256, 512});
BENCHMARK(BM_plain_dpo_from_tokens)->Args({256, 512});

}  // namespace

int main(int argc, char** argv) {
  torch::set_num_threads(1);  // a shared machine: single-threaded numbers are the stable ones
  using kaizen::bench::Figures;
  using kaizen::bench::Results;
  return kaizen::bench::run(argc, argv, [](const Results& r, Figures& f) {
    const auto report = [&](const std::string& name, const std::string& ours, const std::string& baseline,
                            const std::string& what) {
      f.figure(name + "_kaizen_us", r.real_seconds(ours) * 1e6, "us", "kaizen " + what + ", real time");
      f.figure(name + "_plain_us", r.real_seconds(baseline) * 1e6, "us", "plain LibTorch " + what + ", real time");
      f.ratio(name + "_over_plain", r.real_seconds(ours) / r.real_seconds(baseline),
              "kaizen / plain LibTorch, " + what + ", real time (lower is better)");
      f.ratio(name + "_over_plain_cpu", r.cpu_seconds(ours) / r.cpu_seconds(baseline),
              "kaizen / plain LibTorch, " + what + ", CPU time (lower is better)");
    };
    report("dpo", "BM_kaizen_dpo/256", "BM_plain_dpo/256", "dpo_loss fwd+bwd, 256 pairs");
    report("dpo_from_tokens", "BM_kaizen_dpo_from_tokens/256/512", "BM_plain_dpo_from_tokens/256/512",
           "token log-probs [512 x 512] -> pair sums -> dpo_loss fwd+bwd");
  });
}
