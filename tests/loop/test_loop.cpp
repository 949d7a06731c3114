// Tests of kaizen/loop/: GRPO resumes exactly from a checkpoint (with and without a curriculum and a
// reference KL), GRPO and SFT really learn on a tiny Llama model, evaluate() against oracles recomputed
// from the completions it drew, and the errors on bad input.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/curriculum/sec.hpp>
#include <kaizen/loop/evaluate.hpp>
#include <kaizen/loop/grpo.hpp>
#include <kaizen/loop/sft.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/tasks/arithmetic.hpp>
#include <kaizen/tasks/problem.hpp>
#include <kaizen/tasks/tokenizer.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>

#include "loop_test_support.hpp"

namespace {

namespace fs = std::filesystem;
using kaizen_test::check_same_parameters;
using kaizen_test::kOneThread;
using kaizen_test::remove_tree;
using kaizen_test::same_parameters;
using kaizen_test::TempDir;
namespace pg = kaizen::policy_gradient;
using kaizen::Completion;
using kaizen::Prompt;
using kaizen::lm::LlamaModel;

/// The pieces of the demo, at test size: character tokenizer, 1- and 2-digit addition (two categories
/// for the curriculum), a Llama decoder small enough to train in seconds.
struct Setup {
  kaizen::tasks::CharTokenizer tokenizer;
  kaizen::tasks::Arithmetic task{{.min_digits = 1, .max_digits = 2, .operators = "+"}};

  [[nodiscard]] kaizen::lm::LlamaConfig model_config() const {
    kaizen::lm::LlamaConfig c;
    c.vocab_size = tokenizer.vocab_size();
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.max_position_embeddings = 16;
    return c;
  }

  /// A model whose initial weights depend only on `seed`.
  [[nodiscard]] LlamaModel model(std::uint64_t seed) const {
    torch::manual_seed(seed);
    return LlamaModel(model_config());
  }

  [[nodiscard]] kaizen::SamplingParams sampling(std::int64_t max_new_tokens = 4) const {
    kaizen::SamplingParams p;
    p.temperature = 1.0;
    p.max_new_tokens = max_new_tokens;
    p.stop_tokens = {tokenizer.eos_id()};
    return p;
  }

  [[nodiscard]] kaizen::CollateOptions collate() const {
    return {.pad_id = tokenizer.pad_id(), .vocab_size = tokenizer.vocab_size(), .max_length = 16};
  }

  [[nodiscard]] Prompt prompt(kaizen::ArmId arm, kaizen::Rng& rng) const {
    return kaizen::tasks::make_prompt(task.generate(arm, rng), tokenizer);
  }
};

/// A dense reward that an untrained model already earns in varied amounts (so advantages, losses and
/// curriculum gains are non-zero from the first step): the fraction of completion tokens that are digits.
struct DigitFraction {
  const kaizen::tasks::CharTokenizer* tokenizer;
  double operator()(const Prompt&, const Completion& c) const {
    const std::string text = tokenizer->decode(c.tokens);
    double digits = 0.0;
    for (char ch : text) digits += (ch >= '0' && ch <= '9') ? 1.0 : 0.0;
    return digits / static_cast<double>(c.tokens.size());
  }
};

/// The metrics record without its wall-clock fields (the only ones allowed to differ between runs).
nlohmann::json without_timing(nlohmann::json m) {
  m.erase("sample_seconds");
  m.erase("train_seconds");
  return m;
}

/// Per-step metrics of the resumed run equal the uninterrupted run's; the fields that must be present
/// are checked by name so a metric that silently disappeared is noticed.
void check_same_history(const std::vector<nlohmann::json>& expected, const std::vector<nlohmann::json>& got) {
  REQUIRE(expected.size() == got.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO("step " << expected[i]["step"]);
    for (const char* key : {"reward_mean", "loss", "kl", "grad_norm", "entropy", "clip_fraction", "sampled_tokens",
                            "completion_length_mean", "learning_rate", "sampler_trainer_logprob_max_abs_diff"}) {
      INFO(key);
      REQUIRE(got[i].contains(key));
    }
    CHECK(without_timing(expected[i]) == without_timing(got[i]));
  }
}

std::vector<double> parameter_norms(LlamaModel& model) {
  std::vector<double> out;
  for (const auto& p : model.parameters()) out.push_back(p.norm().item<double>());
  return out;
}

}  // namespace

TEST_CASE("GRPO resumed from a checkpoint continues exactly like the uninterrupted run", "[loop][grpo]") {
  REQUIRE(kOneThread);
  const Setup s;
  DigitFraction reward{&s.tokenizer};
  auto source = [&](kaizen::ArmId arm, kaizen::Rng& rng) { return s.prompt(arm, rng); };
  // Two epochs over single-group mini-batches (shuffles draw from the engine), learning-rate warm-up,
  // dynamic sampling with refills: every piece of state the checkpoint must carry is exercised.
  const pg::Objective<pg::TokenRatio, pg::SymmetricClip, pg::NoKl, pg::SeqMeanTokenMean> objective{};
  kaizen::loop::GrpoConfig base{.steps = 4, .prompts_per_step = 3, .group_size = 4, .epochs = 2,
                                .minibatch_groups = 1, .learning_rate = 3e-3, .warmup_steps = 3,
                                .weight_decay = 0.01, .sampling = s.sampling(), .dynamic_sampling = true,
                                .max_refill_rounds = 1, .seed = 11, .collate = s.collate()};
  base.checkpoint_every = 2;

  TempDir full_dir("full"), part_dir("part"), resumed_dir("resumed");
  LlamaModel full = s.model(5);
  kaizen::lm::LlamaSampler full_sampler(full, s.tokenizer.pad_id());
  kaizen::loop::GrpoConfig full_config = base;
  full_config.checkpoint_dir = full_dir.path;
  std::vector<nlohmann::json> streamed;
  const auto full_run = kaizen::loop::grpo(full, full_sampler, reward, source, objective, full_config,
                                           [&](const nlohmann::json& m) { streamed.push_back(m); });
  REQUIRE(full_run.steps == 4);
  REQUIRE(full_run.history.size() == 4);
  CHECK(streamed == full_run.history);
  CHECK(full_run.history[3]["grad_norm"].get<double>() > 0.0);

  LlamaModel part = s.model(5);
  kaizen::lm::LlamaSampler part_sampler(part, s.tokenizer.pad_id());
  kaizen::loop::GrpoConfig part_config = base;
  part_config.steps = 2;
  part_config.checkpoint_dir = part_dir.path;
  const auto part_run = kaizen::loop::grpo(part, part_sampler, reward, source, objective, part_config);
  REQUIRE(part_run.steps == 2);

  // A model with other weights and a config with another seed: everything must come from the checkpoint.
  LlamaModel resumed = s.model(99);
  kaizen::lm::LlamaSampler resumed_sampler(resumed, s.tokenizer.pad_id());
  kaizen::loop::GrpoConfig resumed_config = base;
  resumed_config.seed = 12345;
  resumed_config.checkpoint_dir = resumed_dir.path;
  resumed_config.resume_from = part_dir.path;
  const auto resumed_run = kaizen::loop::grpo(resumed, resumed_sampler, reward, source, objective, resumed_config);
  REQUIRE(resumed_run.steps == 4);
  REQUIRE(resumed_run.history.size() == 2);
  CHECK(resumed_run.history[0]["step"] == 3);

  check_same_history(std::vector<nlohmann::json>(full_run.history.begin(), full_run.history.begin() + 2), part_run.history);
  check_same_history(std::vector<nlohmann::json>(full_run.history.begin() + 2, full_run.history.end()), resumed_run.history);
  check_same_parameters(full, resumed);
  // The parameters did move: the comparison above is not between two untouched initialisations.
  LlamaModel initial = s.model(5);
  CHECK(parameter_norms(full) != parameter_norms(initial));
  CHECK(fs::exists(resumed_dir.path / "state.json"));
}

TEST_CASE("GRPO with a curriculum and a reference KL resumes exactly, curriculum state included", "[loop][grpo]") {
  REQUIRE(kOneThread);
  const Setup s;
  DigitFraction reward{&s.tokenizer};
  auto source = [&](kaizen::ArmId arm, kaizen::Rng& rng) {
    REQUIRE(arm >= 0);  // with a curriculum every prompt comes from one of its arms
    return s.prompt(arm, rng);
  };
  const kaizen::curriculum::SecOptions sec_options{.alpha = 0.5, .tau = 0.3};
  kaizen::loop::GrpoConfig base{.steps = 4, .prompts_per_step = 4, .group_size = 3, .epochs = 1,
                                .learning_rate = 5e-3, .sampling = s.sampling(), .seed = 21, .collate = s.collate()};
  base.checkpoint_every = 2;
  TempDir full_dir("cur_full"), part_dir("cur_part"), resumed_dir("cur_resumed");

  LlamaModel reference = s.model(3);  // frozen: never passed to an optimiser
  LlamaModel full = s.model(3);
  kaizen::lm::LlamaSampler full_sampler(full, s.tokenizer.pad_id());
  kaizen::curriculum::SelfEvolvingCurriculum full_sec(2, sec_options);
  kaizen::loop::GrpoConfig full_config = base;
  full_config.checkpoint_dir = full_dir.path;
  const auto full_run = kaizen::loop::grpo(full, full_sampler, reward, source, pg::kGrpo, full_config, {}, &reference,
                                           &full_sec);
  REQUIRE(full_run.history.size() == 4);
  CHECK(full_run.history[3]["kl"].get<double>() > 0.0);
  CHECK(full_run.history[3].contains("curriculum_probabilities"));

  LlamaModel part = s.model(3);
  kaizen::lm::LlamaSampler part_sampler(part, s.tokenizer.pad_id());
  kaizen::curriculum::SelfEvolvingCurriculum part_sec(2, sec_options);
  kaizen::loop::GrpoConfig part_config = base;
  part_config.steps = 2;
  part_config.checkpoint_dir = part_dir.path;
  const auto part_run = kaizen::loop::grpo(part, part_sampler, reward, source, pg::kGrpo, part_config, {}, &reference,
                                           &part_sec);
  REQUIRE(part_run.steps == 2);

  // Fresh model, fresh curriculum with other options and values: the checkpoint restores both.
  LlamaModel resumed = s.model(77);
  kaizen::lm::LlamaSampler resumed_sampler(resumed, s.tokenizer.pad_id());
  kaizen::curriculum::SelfEvolvingCurriculum resumed_sec(2, {.alpha = 0.9, .tau = 2.0});
  kaizen::loop::GrpoConfig resumed_config = base;
  resumed_config.checkpoint_dir = resumed_dir.path;
  resumed_config.resume_from = part_dir.path;
  const auto resumed_run = kaizen::loop::grpo(resumed, resumed_sampler, reward, source, pg::kGrpo, resumed_config, {},
                                              &reference, &resumed_sec);
  REQUIRE(resumed_run.history.size() == 2);

  check_same_history(std::vector<nlohmann::json>(full_run.history.begin(), full_run.history.begin() + 2), part_run.history);
  check_same_history(std::vector<nlohmann::json>(full_run.history.begin() + 2, full_run.history.end()), resumed_run.history);
  check_same_parameters(full, resumed);
  CHECK(full_sec.state() == resumed_sec.state());
  CHECK(full_sec.values() != std::vector<double>{0.0, 0.0});
}

TEST_CASE("GRPO raises the probability of the token its reward prefers", "[loop][grpo]") {
  REQUIRE(kOneThread);
  const Setup s;
  const kaizen::TokenId target = s.tokenizer.encode("7").front();
  // Reward 1 when the first completion token is '7'. An untrained model puts about 1/V on it, so a
  // group of 8 often has one success and the group-relative advantage pushes that token up.
  auto reward = [&](const Prompt&, const Completion& c) { return c.tokens.front() == target ? 1.0 : 0.0; };
  auto source = [&](kaizen::ArmId arm, kaizen::Rng& rng) { return s.prompt(arm, rng); };
  LlamaModel model = s.model(8);
  kaizen::lm::LlamaSampler sampler(model, s.tokenizer.pad_id());

  // Mean probability of `target` right after held-out prompts (one forward over each prompt).
  kaizen::Rng probe_rng(2024);
  std::vector<Prompt> probe;
  for (int i = 0; i < 32; ++i) probe.push_back(s.prompt(-1, probe_rng));
  auto target_probability = [&] {
    torch::NoGradGuard no_grad;
    double sum = 0.0;
    for (const Prompt& p : probe) {
      const auto n = static_cast<std::int64_t>(p.tokens.size());
      const torch::Tensor ids = torch::tensor(p.tokens, torch::kLong).unsqueeze(0);
      const torch::Tensor hidden =
          model.forward(ids, torch::arange(n, torch::kLong).unsqueeze(0), torch::ones({1, n}, torch::kBool));
      sum += torch::softmax(model.project(hidden.select(1, n - 1)), -1)[0][target].item<double>();
    }
    return sum / static_cast<double>(probe.size());
  };
  const double before = target_probability();
  CHECK(before < 0.2);

  kaizen::loop::GrpoConfig config{.steps = 15, .prompts_per_step = 8, .group_size = 8, .learning_rate = 1e-2,
                                  .sampling = s.sampling(1), .seed = 4, .collate = s.collate()};
  const auto run = kaizen::loop::grpo(model, sampler, reward, source, pg::kDapo, config);
  const double after = target_probability();
  INFO("p(target) before " << before << ", after " << after);
  CHECK(after > 0.8);
  CHECK(run.history.back()["reward_mean"].get<double>() > run.history.front()["reward_mean"].get<double>());
}

TEST_CASE("Supervised fine-tuning lowers the loss on addition", "[loop][sft]") {
  REQUIRE(kOneThread);
  const Setup s;
  LlamaModel model = s.model(6);
  auto examples = [&](kaizen::Rng& rng) {
    const kaizen::tasks::Problem p = s.task.generate(-1, rng);
    kaizen::Rollout r;
    r.prompt = s.tokenizer.encode(p.prompt);
    r.completion.tokens = kaizen::tasks::answer_tokens(p, s.tokenizer);
    return r;
  };
  std::vector<double> losses;
  const kaizen::loop::SftConfig config{.steps = 300, .batch_size = 16, .learning_rate = 3e-3, .seed = 9,
                                       .collate = s.collate()};
  const double last = kaizen::loop::supervised_finetune(model, examples, config, [&](const nlohmann::json& m) {
    CHECK(m["event"] == "sft");
    CHECK(m["tokens"].get<double>() > 0.0);
    losses.push_back(m["loss"].get<double>());
  });
  REQUIRE(losses.size() == 300);
  CHECK(last == losses.back());
  double first = 0.0, last20 = 0.0;
  for (std::size_t i = 0; i < 20; ++i) {
    first += losses[i] / 20.0;
    last20 += losses[losses.size() - 20 + i] / 20.0;
  }
  INFO("mean loss of the first 20 steps " << first << ", of the last 20 " << last20);
  CHECK(first > 2.0);           // the loss starts near log V = log 23 ≈ 3.1
  CHECK(last20 < 0.6 * first);   // answers (digits + end of sequence) are far from uniform after training

  // Early stop: the callback sees the step count and ends the run.
  LlamaModel other = s.model(6);
  std::vector<std::int64_t> checked;
  kaizen::loop::SftConfig stopping = config;
  stopping.stop_check_every = 5;
  stopping.stop_when = [&](std::int64_t done) {
    checked.push_back(done);
    return done >= 10;
  };
  std::int64_t steps = 0;
  kaizen::loop::supervised_finetune(other, examples, stopping, [&](const nlohmann::json&) { ++steps; });
  CHECK(steps == 10);
  CHECK(checked == std::vector<std::int64_t>{5, 10});
}

TEST_CASE("evaluate computes pass@1, maj@k and mean length from the completions it draws", "[loop][evaluate]") {
  REQUIRE(kOneThread);
  const Setup s;
  LlamaModel model = s.model(10);
  kaizen::lm::LlamaSampler sampler(model, s.tokenizer.pad_id());
  kaizen::Rng rng(31);
  std::vector<Prompt> prompts;
  for (int i = 0; i < 6; ++i) prompts.push_back(s.prompt(-1, rng));
  kaizen::SamplingParams params = s.sampling(5);
  params.seed = 17;
  const std::int64_t k = 4;
  auto text = [&](const Prompt&, const Completion& c) -> std::optional<std::string> {
    return s.tokenizer.decode(c.tokens);
  };

  SECTION("a verifier that accepts everything scores 1, one that rejects everything 0") {
    auto accept = [](const Prompt&, const Completion&) { return true; };
    auto reject = [](const Prompt&, const Completion&) { return false; };
    const auto yes = kaizen::loop::evaluate(sampler, accept, std::span<const Prompt>(prompts), k, params, text);
    const auto no = kaizen::loop::evaluate(sampler, reject, std::span<const Prompt>(prompts), k, params, text);
    CHECK(yes.pass_at_1 == 1.0);
    CHECK(yes.maj_at_k == 1.0);
    CHECK(no.pass_at_1 == 0.0);
    CHECK(no.maj_at_k == 0.0);
    CHECK(yes.prompts == 6);
    CHECK(yes.samples_per_prompt == k);
    CHECK(yes.to_json()["pass_at_1"] == 1.0);
  }

  SECTION("oracle: rewards and lengths recorded in the reward, identical answers make maj@k the first sample's") {
    // Reward: the fraction of digit tokens (graded, varies by sample). The reward records what it saw.
    std::vector<double> seen_rewards;
    std::vector<std::size_t> seen_lengths;
    std::vector<std::int64_t> seen_categories;
    DigitFraction digits{&s.tokenizer};
    auto recording = [&](const Prompt& p, const Completion& c) {
      seen_rewards.push_back(digits(p, c));
      seen_lengths.push_back(c.tokens.size());
      seen_categories.push_back(p.category);
      return seen_rewards.back();
    };
    auto same = [](const Prompt&, const Completion&) -> std::optional<std::string> { return std::string("42"); };
    const auto r = kaizen::loop::evaluate(sampler, recording, std::span<const Prompt>(prompts), k, params, same);
    const auto K = static_cast<std::size_t>(k);
    REQUIRE(seen_rewards.size() == prompts.size() * K);
    double pass = 0.0, maj = 0.0, length = 0.0;
    std::map<std::int64_t, std::pair<double, double>> by_category;
    for (std::size_t p = 0; p < prompts.size(); ++p) {
      double mean = 0.0;
      for (std::size_t i = 0; i < K; ++i) {
        CHECK(seen_categories[p * K + i] == prompts[p].category);
        mean += seen_rewards[p * K + i] / static_cast<double>(k);
        length += static_cast<double>(seen_lengths[p * K + i]);
      }
      pass += mean / static_cast<double>(prompts.size());
      maj += seen_rewards[p * K] / static_cast<double>(prompts.size());  // identical answers: sample 0 wins
      by_category[prompts[p].category].first += mean;
      by_category[prompts[p].category].second += 1.0;
    }
    CHECK(r.pass_at_1 == Approx(pass).epsilon(1e-12));
    CHECK(r.maj_at_k == Approx(maj).epsilon(1e-12));
    CHECK(r.mean_length == Approx(length / static_cast<double>(seen_lengths.size())).epsilon(1e-12));
    REQUIRE(r.pass_at_1_by_category.size() == by_category.size());
    for (const auto& [c, v] : by_category) CHECK(r.pass_at_1_by_category.at(c) == Approx(v.first / v.second));
    CHECK(pass > 0.0);
    CHECK(pass < 1.0);

    // Every sample abstains: no vote, maj@k = 0 while pass@1 is unchanged (same seed, same samples).
    seen_rewards.clear();
    seen_lengths.clear();
    seen_categories.clear();
    auto abstain = [](const Prompt&, const Completion&) -> std::optional<std::string> { return std::nullopt; };
    const auto none = kaizen::loop::evaluate(sampler, recording, std::span<const Prompt>(prompts), k, params, abstain);
    CHECK(none.maj_at_k == 0.0);
    CHECK(none.pass_at_1 == Approx(pass).epsilon(1e-12));
  }
}

TEST_CASE("Loops reject bad input with messages that name it", "[loop][errors]") {
  REQUIRE(kOneThread);
  const Setup s;
  LlamaModel model = s.model(12);
  kaizen::lm::LlamaSampler sampler(model, s.tokenizer.pad_id());
  DigitFraction reward{&s.tokenizer};
  auto source = [&](kaizen::ArmId arm, kaizen::Rng& rng) { return s.prompt(arm, rng); };
  kaizen::loop::GrpoConfig config{.steps = 1, .prompts_per_step = 2, .group_size = 2, .sampling = s.sampling(),
                                  .collate = s.collate()};
  const auto run = [&](const kaizen::loop::GrpoConfig& c) {
    return kaizen::loop::grpo(model, sampler, reward, source, pg::kDapo, c);
  };

  SECTION("group size below 2") {
    config.group_size = 1;
    CHECK_THROWS_WITH(run(config), Catch::StartsWith("grpo: group_size must be >= 2") && Catch::Contains("got 1"));
  }
  SECTION("no prompts per step") {
    config.prompts_per_step = 0;
    CHECK_THROWS_WITH(run(config), Catch::StartsWith("grpo: prompts_per_step must be > 0, got 0"));
  }
  SECTION("a negative learning-rate warm-up") {
    config.warmup_steps = -1;
    CHECK_THROWS_WITH(run(config), Catch::StartsWith("grpo: warmup_steps must be >= 0, got -1"));
  }
  SECTION("checkpointing without a directory") {
    config.checkpoint_every = 1;
    CHECK_THROWS_WITH(run(config), Catch::StartsWith("grpo: checkpoint_every > 0 needs a checkpoint_dir"));
  }
  SECTION("a KL objective without a reference policy") {
    CHECK_THROWS_WITH(kaizen::loop::grpo(model, sampler, reward, source, pg::kGrpo, config),
                      Catch::StartsWith("grpo: the objective has a KL term, so a reference policy is required"));
  }
  SECTION("resuming from a missing checkpoint directory") {
    config.resume_from = fs::temp_directory_path() / "kaizen_test_loop_no_such_checkpoint";
    remove_tree(config.resume_from);
    CHECK_THROWS_WITH(run(config), Catch::StartsWith("load_checkpoint: " + (config.resume_from / "parameters.pt").string() +
                                                     " does not exist"));
  }
  SECTION("resuming with a curriculum from a checkpoint that has no curriculum state") {
    TempDir dir("no_curriculum");
    config.checkpoint_every = 1;
    config.checkpoint_dir = dir.path;
    run(config);
    config.resume_from = dir.path;
    config.steps = 2;
    kaizen::curriculum::SelfEvolvingCurriculum sec(2);
    CHECK_THROWS_WITH(kaizen::loop::grpo(model, sampler, reward, source, pg::kDapo, config, {},
                                         static_cast<LlamaModel*>(nullptr), &sec),
                      Catch::StartsWith("grpo: resuming with a curriculum needs the curriculum state"));
  }
  SECTION("a checkpoint of another architecture") {
    TempDir dir("other_model");
    config.checkpoint_every = 1;
    config.checkpoint_dir = dir.path;
    run(config);
    kaizen::lm::LlamaConfig wider = s.model_config();
    wider.num_hidden_layers = 1;
    LlamaModel other(wider);
    kaizen::lm::LlamaSampler other_sampler(other, s.tokenizer.pad_id());
    config.resume_from = dir.path;
    config.steps = 2;
    CHECK_THROWS_WITH(kaizen::loop::grpo(other, other_sampler, reward, source, pg::kDapo, config),
                      Catch::StartsWith("load_checkpoint: the checkpoint has "));
  }
  SECTION("SFT config") {
    auto examples = [&](kaizen::Rng& rng) {
      const kaizen::tasks::Problem p = s.task.generate(-1, rng);
      return kaizen::Rollout{.prompt = s.tokenizer.encode(p.prompt),
                             .completion = {.tokens = kaizen::tasks::answer_tokens(p, s.tokenizer)}};
    };
    CHECK_THROWS_WITH(kaizen::loop::supervised_finetune(model, examples, {.steps = 1, .batch_size = 0}),
                      Catch::StartsWith("supervised_finetune: batch_size must be > 0, got 0"));
    CHECK_THROWS_WITH(kaizen::loop::supervised_finetune(model, examples, {.steps = 1, .learning_rate = 0.0}),
                      Catch::StartsWith("supervised_finetune: learning_rate must be > 0, got 0"));
    kaizen::loop::SftConfig early{.steps = 1};
    early.stop_when = [](std::int64_t) { return true; };
    early.stop_check_every = 0;
    CHECK_THROWS_WITH(kaizen::loop::supervised_finetune(model, examples, early),
                      Catch::StartsWith("supervised_finetune: stop_check_every must be > 0 when stop_when is set, got 0"));
  }
  SECTION("evaluate with no prompts or k < 1") {
    auto accept = [](const Prompt&, const Completion&) { return true; };
    auto text = [](const Prompt&, const Completion&) -> std::optional<std::string> { return std::nullopt; };
    const std::vector<Prompt> none;
    CHECK_THROWS_WITH(kaizen::loop::evaluate(sampler, accept, std::span<const Prompt>(none), 2, s.sampling(), text),
                      Catch::StartsWith("evaluate: expected at least one prompt"));
    kaizen::Rng rng(1);
    const std::vector<Prompt> one{s.prompt(-1, rng)};
    CHECK_THROWS_WITH(kaizen::loop::evaluate(sampler, accept, std::span<const Prompt>(one), 0, s.sampling(), text),
                      Catch::StartsWith("evaluate: k (samples per prompt) must be >= 1, got 0"));
  }
}
