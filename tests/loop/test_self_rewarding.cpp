// Self-Rewarding and Temporal Self-Rewarding on a tiny Llama model with the policy as its own judge:
// runs killed mid-iteration (in the provisional phase and in the final phase of temporal SR, and in plain
// SR whose judge keeps a call counter) resume bit for bit; every temporal pair's rejected answer comes from
// the anchor model; the loop's pairs follow the temporal rule recomputed from the reported scores; bad input.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/judges.hpp>
#include <kaizen/loop/self_rewarding.hpp>
#include <kaizen/tasks/arithmetic.hpp>
#include <kaizen/tasks/problem.hpp>
#include <kaizen/tasks/tokenizer.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>

#include "loop_test_support.hpp"
#include "preference_loop_support.hpp"

namespace {

namespace fs = std::filesystem;
using kaizen_test::check_same_parameters;
using kaizen_test::kOneThread;
using kaizen_test::same_parameters;
using kaizen_test::TempDir;
using kaizen::Completion;
using kaizen::Prompt;
using kaizen::lm::LlamaModel;

using kaizen_test::preference_loops::DigitFraction;
using kaizen_test::preference_loops::Setup;
using kaizen_test::preference_loops::Stop;

}  // namespace

namespace {

kaizen::loop::PreferenceLoopConfig base_config(const Setup& s) {
  kaizen::loop::PreferenceLoopConfig c;
  c.iterations = 2;
  c.prompts_per_iteration = 5;
  c.samples_per_prompt = 3;
  c.steps_per_iteration = 3;
  c.pairs_per_step = 3;
  c.optimizer = {.learning_rate = 3e-3};
  c.sampling = s.sampling();
  c.seed = 21;
  c.collate = s.collate();
  return c;
}

/// The policy as judge: the judge prompt is "<question><answer>=" and the judgement's score is the number
/// of digits the model writes (0..4 on a 4-point scale); a judgement with no digit is unparsable (0).
kaizen::loop::PolicyJudge<kaizen::lm::LlamaSampler> policy_judge(const Setup& s, kaizen::lm::LlamaSampler& sampler,
                                                                 std::uint64_t seed) {
  const kaizen::tasks::CharTokenizer* tok = &s.tokenizer;
  return kaizen::loop::PolicyJudge<kaizen::lm::LlamaSampler>(
      sampler, [tok](std::string_view t) { return tok->encode(t); },
      [tok](std::span<const kaizen::TokenId> ids) { return tok->decode(std::vector<kaizen::TokenId>(ids.begin(), ids.end())); },
      {.prompt_template = "{prompt}{response}=", .sampling = s.sampling(), .score = {.max_score = 4.0}, .seed = seed},
      [](std::string_view text) -> std::optional<double> {
        double digits = 0.0;
        for (char ch : text) digits += (ch >= '0' && ch <= '9') ? 1.0 : 0.0;
        if (digits == 0.0) return std::nullopt;
        return std::min(digits, 4.0);
      });
}

/// Records of `history` after the "dpo" record of step `step`.
std::vector<nlohmann::json> after_step(const std::vector<nlohmann::json>& history, std::int64_t step) {
  std::vector<nlohmann::json> out;
  bool after = false;
  for (const auto& m : history) {
    if (after) out.push_back(m);
    if (m["event"] == "dpo" && m["step"] == step) after = true;
  }
  return out;
}

}  // namespace

TEST_CASE("Temporal self-rewarding killed mid-iteration resumes exactly, in either DPO phase", "[loop][self_rewarding]") {
  REQUIRE(kOneThread);
  const Setup s;
  const auto pool = s.prompts(8, 3);
  auto config = base_config(s);
  config.checkpoint_every = 1;
  const kaizen::loop::TemporalConfig temporal{.provisional_steps = 2};
  // 5 DPO steps per iteration (2 provisional + 3 final): step 2 ends iteration 1's provisional phase (the
  // checkpoint holds the M_t snapshot), step 6 is iteration 2's first provisional step, step 8 its first final step.
  auto run = [&](const fs::path& dir, const fs::path& resume, std::uint64_t init, std::uint64_t seed, std::int64_t stop_after,
                 LlamaModel& policy, LlamaModel& reference) {
    LlamaModel anchor = s.model(5);  // M_0: a frozen copy of the initial model
    kaizen::lm::LlamaSampler sampler(policy, s.tokenizer.pad_id());
    kaizen::lm::LlamaSampler anchor_sampler(anchor, s.tokenizer.pad_id());
    auto judge = policy_judge(s, sampler, 3);
    auto c = config;
    c.seed = seed;
    c.checkpoint_dir = dir;
    c.resume_from = resume;
    (void)init;
    std::vector<nlohmann::json> seen;
    try {
      (void)kaizen::loop::temporal_self_rewarding(policy, reference, sampler, anchor_sampler, judge,
                                                  std::span<const Prompt>(pool), c, temporal, [&](const nlohmann::json& m) {
                                                    if (m["event"] == "dpo" && m["step"] == stop_after + 1) throw Stop{};
                                                    seen.push_back(m);
                                                  });
    } catch (const Stop&) {
    }
    return seen;
  };
  TempDir full_dir("tsr_full");
  LlamaModel full = s.model(5), full_ref = s.model(6);
  const auto full_history = run(full_dir.path, {}, 5, 21, 1000, full, full_ref);
  std::int64_t dpo_records = 0;
  for (const auto& m : full_history) {
    dpo_records += m["event"] == "dpo" ? 1 : 0;
    if (m["event"] == "temporal_pairs") {
      INFO(m.dump());
      CHECK(m["rejected_from_anchor"] == m["pairs"]);  // anchored rejection
      CHECK(m["chosen_from_current"].get<std::int64_t>() + m["chosen_from_future"].get<std::int64_t>() ==
            m["pairs"].get<std::int64_t>());
      if (m["stage"] == "anchored") CHECK(m["chosen_from_future"] == 0);
    }
  }
  REQUIRE(dpo_records == 10);
  LlamaModel initial = s.model(5);
  CHECK_FALSE(same_parameters(full, initial));  // training moved the policy
  for (std::int64_t stop : {2, 6, 8}) {
    INFO("stopped after step " << stop);
    TempDir part_dir("tsr_part"), resumed_dir("tsr_resumed");
    LlamaModel part = s.model(5), part_ref = s.model(6);
    (void)run(part_dir.path, {}, 5, 21, stop, part, part_ref);
    LlamaModel resumed = s.model(99), resumed_ref = s.model(98);
    const auto resumed_history = run(resumed_dir.path, part_dir.path, 99, 777, 1000, resumed, resumed_ref);
    CHECK(resumed_history == after_step(full_history, stop));
    check_same_parameters(full, resumed);
    check_same_parameters(full_ref, resumed_ref);
  }
}

TEST_CASE("Self-rewarding with the policy as judge resumes exactly, judge state included", "[loop][self_rewarding]") {
  REQUIRE(kOneThread);
  const Setup s;
  const auto pool = s.prompts(8, 3);
  auto config = base_config(s);
  config.checkpoint_every = 2;
  auto run = [&](const fs::path& dir, const fs::path& resume, std::uint64_t judge_seed, std::int64_t stop_after,
                 LlamaModel& policy, LlamaModel& reference) {
    kaizen::lm::LlamaSampler sampler(policy, s.tokenizer.pad_id());
    auto judge = policy_judge(s, sampler, judge_seed);
    auto c = config;
    c.checkpoint_dir = dir;
    c.resume_from = resume;
    std::vector<nlohmann::json> seen;
    try {
      (void)kaizen::loop::self_rewarding(policy, reference, sampler, judge, std::span<const Prompt>(pool), c,
                                         [&](const nlohmann::json& m) {
                                           if (m["event"] == "dpo" && m["step"] == stop_after + 1) throw Stop{};
                                           seen.push_back(m);
                                         });
    } catch (const Stop&) {
    }
    return std::make_pair(seen, judge.state());
  };
  TempDir full_dir("sr_full"), part_dir("sr_part"), resumed_dir("sr_resumed");
  LlamaModel full = s.model(5), full_ref = s.model(6);
  const auto [full_history, full_calls] = run(full_dir.path, {}, 3, 1000, full, full_ref);
  std::int64_t pairs = 0;
  for (const auto& m : full_history)
    if (m["event"] == "iterative_dpo_pairs") pairs += m["pairs"].get<std::int64_t>();
  REQUIRE(pairs > 0);  // the self-judge's scores vary, so DPO has pairs to learn from
  CHECK(full_calls == 10);  // one judge call per prompt per iteration
  LlamaModel part = s.model(5), part_ref = s.model(6);
  (void)run(part_dir.path, {}, 3, 4, part, part_ref);  // last checkpoint: step 4, mid iteration 2, after its judge calls
  LlamaModel resumed = s.model(99), resumed_ref = s.model(98);
  const auto [resumed_history, resumed_calls] = run(resumed_dir.path, part_dir.path, 3, 1000, resumed, resumed_ref);
  CHECK(resumed_history == after_step(full_history, 4));
  CHECK(resumed_calls == full_calls);  // the judge's counter came from the checkpoint
  check_same_parameters(full, resumed);
}

TEST_CASE("Temporal self-rewarding rejects bad input with the values", "[loop][self_rewarding][errors]") {
  REQUIRE(kOneThread);
  const Setup s;
  const auto pool = s.prompts(4, 3);
  LlamaModel policy = s.model(5), reference = s.model(6), anchor = s.model(5);
  kaizen::lm::LlamaSampler sampler(policy, s.tokenizer.pad_id()), anchor_sampler(anchor, s.tokenizer.pad_id());
  auto judge = policy_judge(s, sampler, 1);
  auto config = base_config(s);
  config.prompts_per_iteration = 2;
  using kaizen::loop::temporal_self_rewarding;
  CHECK_THROWS_WITH(temporal_self_rewarding(policy, reference, sampler, anchor_sampler, judge, std::span<const Prompt>(), config),
                    Catch::Contains("temporal_self_rewarding: expected a non-empty prompt set, got 0 prompts"));
  auto one = config;
  one.samples_per_prompt = 1;
  CHECK_THROWS_WITH(temporal_self_rewarding(policy, reference, sampler, anchor_sampler, judge, std::span<const Prompt>(pool), one),
                    Catch::Contains("temporal_self_rewarding: samples_per_prompt (N) must be >= 2 to form a pair, got 1"));
  CHECK_THROWS_WITH(temporal_self_rewarding(policy, reference, sampler, anchor_sampler, judge, std::span<const Prompt>(pool),
                                            config, {.future_samples = -1}),
                    Catch::Contains("expected provisional_steps, anchor_samples and future_samples >= 0 (0 = default), got 0, 0, -1"));
  auto wrong_count = [](const Prompt&, std::span<const Completion> c) { return std::vector<double>(c.size() + 1, 0.0); };
  CHECK_THROWS_WITH(temporal_self_rewarding(policy, reference, sampler, anchor_sampler, wrong_count,
                                            std::span<const Prompt>(pool), config),
                    Catch::Contains("judge_scores: the judge returned 4 scores for 3 candidates"));
}
