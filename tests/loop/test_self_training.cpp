// Tests of the rejection-sampling fine-tuning loops (kaizen/loop/self_training.hpp, rest_em.hpp, star.hpp,
// bstar.hpp): exact resume mid-iteration for each loop (parameters and metrics bit-equal to the run that
// never stopped), the kept set recomputed by hand with a scripted sampler (threshold, per-prompt cap,
// distinct, rationalisation stored without the hint), improvement from the base on a tiny Llama model, the
// restart-from-base rule, and the errors on bad input.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/bstar.hpp>
#include <kaizen/loop/rest_em.hpp>
#include <kaizen/loop/self_training.hpp>
#include <kaizen/loop/snapshot.hpp>
#include <kaizen/loop/star.hpp>
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
using kaizen_test::same_parameters;
using kaizen_test::TempDir;
using kaizen::Completion;
using kaizen::Prompt;
using kaizen::TokenId;
using kaizen::lm::LlamaModel;

struct Setup {
  kaizen::tasks::CharTokenizer tokenizer;
  kaizen::tasks::Arithmetic task{{.min_digits = 1, .max_digits = 1, .operators = "+"}};

  [[nodiscard]] LlamaModel model(std::uint64_t seed) const {
    kaizen::lm::LlamaConfig c;
    c.vocab_size = tokenizer.vocab_size();
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.max_position_embeddings = 16;
    torch::manual_seed(seed);
    return LlamaModel(c);
  }
  [[nodiscard]] kaizen::SamplingParams sampling() const {
    kaizen::SamplingParams p;
    p.temperature = 1.0;
    p.max_new_tokens = 3;
    p.stop_tokens = {tokenizer.eos_id()};
    return p;
  }
  [[nodiscard]] kaizen::CollateOptions collate() const {
    return {.pad_id = tokenizer.pad_id(), .vocab_size = tokenizer.vocab_size(), .max_length = 16};
  }
  [[nodiscard]] std::vector<Prompt> prompts(std::size_t n, std::uint64_t seed) const {
    kaizen::Rng rng(seed);
    std::vector<Prompt> out;
    for (std::size_t i = 0; i < n; ++i) out.push_back(kaizen::tasks::make_prompt(task.generate(-1, rng), tokenizer));
    return out;
  }
};

/// 1 when the completion's first token is a digit: an untrained model earns it about 10/vocab of the time.
struct FirstIsDigit {
  const kaizen::tasks::CharTokenizer* tokenizer;
  double operator()(const Prompt&, const Completion& c) const {
    if (c.tokens.empty()) return 0.0;
    const std::string text = tokenizer->decode(std::span<const kaizen::TokenId>(c.tokens).first(1));
    return text.size() == 1 && text[0] >= '0' && text[0] <= '9' ? 1.0 : 0.0;
  }
};

/// A graded score in [0, 1]: the fraction of digit tokens (B-STaR's selection score in the tests).
struct DigitFraction {
  const kaizen::tasks::CharTokenizer* tokenizer;
  double operator()(const Prompt&, const Completion& c) const {
    const std::string text = tokenizer->decode(c.tokens);
    double digits = 0.0;
    for (char ch : text) digits += (ch >= '0' && ch <= '9') ? 1.0 : 0.0;
    return c.tokens.empty() ? 0.0 : digits / static_cast<double>(c.tokens.size());
  }
};

nlohmann::json without_timing(nlohmann::json m) {
  m.erase("grow_seconds");
  m.erase("sft_seconds");
  return m;
}

kaizen::loop::SelfTrainingConfig engine(const Setup& s, const fs::path& dir) {
  kaizen::loop::SelfTrainingConfig c;
  c.sft_steps = 5;
  c.batch_size = 8;
  c.optimizer.learning_rate = 3e-3;
  c.sampling = s.sampling();
  c.collate = s.collate();
  c.seed = 11;
  c.prompts_per_sampler_call = 5;  // several sampler calls per grow phase
  c.checkpoint_every = 2;
  c.checkpoint_dir = dir;
  return c;
}

/// Runs `loop(model, config)` uninterrupted, then interrupted at each of `stops` SFT steps and resumed;
/// the resumed model and the iteration records after the stop equal the uninterrupted run's.
template <class Loop>
void check_exact_resume(const Setup& s, const std::string& name, std::vector<std::int64_t> stops, Loop loop) {
  TempDir full_dir(name + "_full");
  LlamaModel full = s.model(5);
  const kaizen::loop::SelfTrainingResult expected = loop(full, engine(s, full_dir.path));
  REQUIRE(expected.iterations == 2);
  REQUIRE(expected.history.size() == 2);
  for (std::int64_t stop : stops) {
    INFO("interrupted after SFT step " << stop);
    TempDir dir(name + "_stop");
    LlamaModel first = s.model(5);
    auto c = engine(s, dir.path);
    c.stop_after_sft_steps = stop;
    const auto stopped = loop(first, c);
    REQUIRE(stopped.stopped);
    CHECK(stopped.sft_steps == stop);
    LlamaModel resumed = s.model(99);  // different initial weights: everything must come from the checkpoint
    auto r = engine(s, dir.path);
    r.resume_from = dir.path;
    const auto rest = loop(resumed, r);
    CHECK_FALSE(rest.stopped);
    CHECK(rest.iterations == 2);
    CHECK(rest.sft_steps == expected.sft_steps);
    check_same_parameters(full, resumed);
    const std::vector<nlohmann::json> all = [&] {
      std::vector<nlohmann::json> h = stopped.history;
      h.insert(h.end(), rest.history.begin(), rest.history.end());
      return h;
    }();
    REQUIRE(all.size() == expected.history.size());
    for (std::size_t i = 0; i < all.size(); ++i) CHECK(without_timing(all[i]) == without_timing(expected.history[i]));
  }
}

/// Returns, for each prompt, a fixed list of completions (token ids), regardless of seed; with `hint_token`
/// at the end of the prompt it returns `hinted` instead.
struct ScriptedSampler {
  std::vector<std::vector<TokenId>> plain;
  std::vector<TokenId> hinted;
  TokenId hint_token = -1;
  std::size_t next = 0;  // index into plain, per call position within one prompt's group
  std::vector<Completion> sample(std::span<const Prompt> prompts, const kaizen::SamplingParams&) {
    std::vector<Completion> out;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      Completion c;
      c.tokens = (!prompts[i].tokens.empty() && prompts[i].tokens.back() == hint_token) ? hinted : plain[i % plain.size()];
      out.push_back(c);
    }
    return out;
  }
};

/// Score = the completion's first token id if it is one of `accepted`, else 0 (so several levels exist).
struct AcceptTokens {
  std::vector<TokenId> accepted;
  double operator()(const Prompt&, const Completion& c) const {
    for (TokenId t : accepted)
      if (!c.tokens.empty() && c.tokens.front() == t) return 1.0;
    return 0.0;
  }
};

/// The SFT dataset stored in a checkpoint, as (prompt, completion) token lists.
std::vector<std::pair<std::vector<TokenId>, std::vector<TokenId>>> stored_dataset(const fs::path& dir) {
  std::ifstream in(dir / "state.json");
  nlohmann::json j;
  in >> j;
  std::vector<std::pair<std::vector<TokenId>, std::vector<TokenId>>> out;
  for (const auto& row : j.at("extra").at("dataset"))
    out.emplace_back(row.at(0).get<std::vector<TokenId>>(), row.at(1).get<std::vector<TokenId>>());
  return out;
}

}  // namespace

TEST_CASE("ReST-EM resumed mid-iteration continues exactly like the uninterrupted run", "[loop][rest_em]") {
  const Setup s;
  const std::vector<Prompt> prompts = s.prompts(12, 3);
  FirstIsDigit verifier{&s.tokenizer};
  check_exact_resume(s, "rest_em", {3, 7}, [&](LlamaModel& model, kaizen::loop::SelfTrainingConfig c) {
    kaizen::lm::LlamaSampler sampler(model, s.tokenizer.pad_id());
    return kaizen::loop::rest_em(model, sampler, verifier, std::span<const Prompt>(prompts),
                                 {.iterations = 2, .samples_per_prompt = 4, .cap = 2, .engine = c});
  });
}

TEST_CASE("STaR with rationalisation resumes exactly", "[loop][star]") {
  const Setup s;
  const std::vector<Prompt> prompts = s.prompts(10, 4);
  FirstIsDigit verifier{&s.tokenizer};
  const TokenId hint = s.tokenizer.encode("=").front();
  check_exact_resume(s, "star", {2, 6}, [&](LlamaModel& model, kaizen::loop::SelfTrainingConfig c) {
    kaizen::lm::LlamaSampler sampler(model, s.tokenizer.pad_id());
    return kaizen::loop::star(model, sampler, verifier, std::span<const Prompt>(prompts),
                              {.iterations = 2, .samples_per_prompt = 2, .cap = 1, .rationalisation_samples = 2, .engine = c},
                              [&](const Prompt& p) {
                                Prompt h = p;
                                h.tokens.push_back(hint);
                                return h;
                              });
  });
}

TEST_CASE("B-STaR resumes exactly, tuned temperature and threshold included", "[loop][bstar]") {
  const Setup s;
  const std::vector<Prompt> prompts = s.prompts(10, 5), tuning = s.prompts(4, 6);
  DigitFraction scorer{&s.tokenizer};
  FirstIsDigit verifier{&s.tokenizer};
  check_exact_resume(s, "bstar", {4}, [&](LlamaModel& model, kaizen::loop::SelfTrainingConfig c) {
    kaizen::lm::LlamaSampler sampler(model, s.tokenizer.pad_id());
    kaizen::loop::BStarConfig b{.iterations = 2, .samples_per_prompt = 4, .tuning_samples = 4,
                                .temperatures = {0.7, 1.3}, .thresholds = {0.0, 0.3, 0.6},
                                .balance = {.n_star = 2, .cap = 3}, .engine = c};
    return kaizen::loop::bstar(model, sampler, scorer, verifier, std::span<const Prompt>(prompts),
                               std::span<const Prompt>(tuning), b);
  });
}

TEST_CASE("B-STaR records its tuning table and monitors and uses the winning knobs", "[loop][bstar]") {
  const Setup s;
  const std::vector<Prompt> prompts = s.prompts(8, 5), tuning = s.prompts(4, 6);
  DigitFraction scorer{&s.tokenizer};
  FirstIsDigit verifier{&s.tokenizer};
  LlamaModel model = s.model(5);
  kaizen::lm::LlamaSampler sampler(model, s.tokenizer.pad_id());
  TempDir dir("bstar_table");
  auto c = engine(s, dir.path);
  c.checkpoint_every = 0;
  const auto result = kaizen::loop::bstar(model, sampler, scorer, verifier, std::span<const Prompt>(prompts),
                                          std::span<const Prompt>(tuning),
                                          {.iterations = 1, .samples_per_prompt = 4, .tuning_samples = 4,
                                           .temperatures = {0.7, 1.3}, .thresholds = {0.0, 0.5},
                                           .balance = {.n_star = 2, .cap = 3}, .engine = c});
  REQUIRE(result.history.size() == 1);
  const nlohmann::json& r = result.history[0];
  const auto& table = r.at("tuning").at("table");
  REQUIRE(table.size() == 4);
  double best = -1.0;
  for (const auto& row : table) best = std::max(best, row.at("balance_score").get<double>());
  CHECK(r.at("tuning").at("monitors").at("balance_score").get<double>() == best);
  CHECK(r.at("temperature") == r.at("tuning").at("temperature"));
  CHECK(r.at("threshold") == r.at("tuning").at("threshold"));
  for (const char* key : {"pass_at_k", "pass_at_k_s", "distinct_correct", "kept_precision", "balance_score"})
    CHECK(r.at("train_monitors").contains(key));
}

TEST_CASE("the kept set: verified samples, best first, capped per prompt, distinct, and rationales stored without the hint",
          "[loop][star]") {
  const Setup s;
  LlamaModel model = s.model(1);
  std::vector<Prompt> prompts(2);
  prompts[0].tokens = {3, 4};
  prompts[1].tokens = {5, 6};
  TempDir dir("kept");
  auto c = engine(s, dir.path);
  c.stop_after_sft_steps = 1;  // stop at once, with the grown dataset in the checkpoint
  c.checkpoint_every = 1;
  SECTION("ReST-EM") {
    // Every prompt gets [7], [7], [8], [9]; the verifier accepts 7 and 9; cap 3, distinct → {7, 9} per prompt.
    ScriptedSampler sampler{.plain = {{7, 1}, {7, 1}, {8, 1}, {9, 1}}};
    AcceptTokens verifier{{7, 9}};
    kaizen::loop::rest_em(model, sampler, verifier, std::span<const Prompt>(prompts),
                          {.iterations = 1, .samples_per_prompt = 4, .cap = 3, .engine = c});
    const auto d = stored_dataset(dir.path);
    REQUIRE(d.size() == 4);
    CHECK(d[0] == std::make_pair(std::vector<TokenId>{3, 4}, std::vector<TokenId>{7, 1}));
    CHECK(d[1] == std::make_pair(std::vector<TokenId>{3, 4}, std::vector<TokenId>{9, 1}));
    CHECK(d[2].first == std::vector<TokenId>{5, 6});
    CHECK(d[3].second == std::vector<TokenId>{9, 1});
  }
  SECTION("ReST-EM with cap 1") {
    ScriptedSampler sampler{.plain = {{8, 1}, {9, 1}, {7, 1}, {9, 1}}};
    AcceptTokens verifier{{7, 9}};
    kaizen::loop::rest_em(model, sampler, verifier, std::span<const Prompt>(prompts),
                          {.iterations = 1, .samples_per_prompt = 4, .cap = 1, .engine = c});
    const auto d = stored_dataset(dir.path);
    REQUIRE(d.size() == 2);
    CHECK(d[0].second == std::vector<TokenId>{9, 1});  // the first of the tied best
  }
  SECTION("STaR rationalisation") {
    // Plain samples are all wrong ([8]); with the hint token 2 appended the sampler answers [7] (right).
    ScriptedSampler sampler{.plain = {{8, 1}}, .hinted = {7, 1}, .hint_token = 2};
    AcceptTokens verifier{{7}};
    kaizen::loop::star(
        model, sampler, verifier, std::span<const Prompt>(prompts),
        {.iterations = 1, .samples_per_prompt = 3, .cap = 1, .rationalisation_samples = 2, .engine = c},
        [](const Prompt& p) {
          Prompt h = p;
          h.tokens.push_back(2);
          return h;
        });
    const auto d = stored_dataset(dir.path);
    REQUIRE(d.size() == 2);
    CHECK(d[0] == std::make_pair(std::vector<TokenId>{3, 4}, std::vector<TokenId>{7, 1}));  // no hint token in the prompt
    CHECK(d[1] == std::make_pair(std::vector<TokenId>{5, 6}, std::vector<TokenId>{7, 1}));
  }
  SECTION("STaR without rationalisation keeps nothing and leaves the base") {
    ScriptedSampler sampler{.plain = {{8, 1}}, .hinted = {7, 1}, .hint_token = 2};
    AcceptTokens verifier{{7}};
    LlamaModel base = s.model(1);
    auto c2 = c;
    c2.stop_after_sft_steps = 0;
    c2.checkpoint_every = 0;
    const auto r = kaizen::loop::star(model, sampler, verifier, std::span<const Prompt>(prompts),
                                      {.iterations = 1, .samples_per_prompt = 3, .rationalise = false, .engine = c2}, {});
    REQUIRE(r.history.size() == 1);
    CHECK(r.history[0].at("kept") == 0);
    CHECK(r.history[0].at("sft_steps") == 0);
    check_same_parameters(base, model);
  }
}

TEST_CASE("ReST-EM improves from the base every iteration and raises the verified rate", "[loop][rest_em]") {
  const Setup s;
  const std::vector<Prompt> prompts = s.prompts(16, 8);
  FirstIsDigit verifier{&s.tokenizer};
  LlamaModel model = s.model(2);
  kaizen::lm::LlamaSampler sampler(model, s.tokenizer.pad_id());
  auto rate = [&](std::uint64_t seed) {
    kaizen::SamplingParams p = s.sampling();
    p.seed = seed;
    std::vector<Prompt> many;
    for (int r = 0; r < 8; ++r) many.insert(many.end(), prompts.begin(), prompts.end());
    const auto cs = sampler.sample(std::span<const Prompt>(many), p);
    double hits = 0.0;
    for (std::size_t i = 0; i < cs.size(); ++i) hits += verifier(many[i], cs[i]);
    return hits / static_cast<double>(cs.size());
  };
  const double before = rate(77);
  TempDir dir("improve");
  auto c = engine(s, dir.path);
  c.checkpoint_every = 0;
  c.sft_steps = 30;
  std::vector<double> kept;
  kaizen::loop::SelfTrainingHooks hooks;
  hooks.on_grown = [&](std::span<const kaizen::Group>, const kaizen::loop::SelectionRule&, nlohmann::json& m) {
    kept.push_back(m.at("kept").get<double>());
  };
  const auto result = kaizen::loop::rest_em(model, sampler, verifier, std::span<const Prompt>(prompts),
                                            {.iterations = 2, .samples_per_prompt = 8, .cap = 4, .engine = c}, {}, hooks);
  const double after = rate(77);
  INFO("verified rate before " << before << ", after " << after << ", kept " << kept[0] << ", " << kept[1]);
  REQUIRE(result.iterations == 2);
  CHECK(kept[1] > kept[0]);
  CHECK(after > before + 0.2);
}

TEST_CASE("restart_from_base: with no kept samples the iterate is the base, without it the previous iterate",
          "[loop][rest_em]") {
  const Setup s;
  LlamaModel model = s.model(3);
  LlamaModel base = s.model(3);
  std::vector<Prompt> prompts(1);
  prompts[0].tokens = {3, 4};
  TempDir dir("restart");
  auto c = engine(s, dir.path);
  c.checkpoint_every = 0;
  c.sft_steps = 3;
  // The first `good_calls` sampler calls answer [7] (kept: iteration 1 trains away from the base), later
  // ones [8] (iteration 2 keeps nothing). B-STaR calls the sampler twice per iteration (tuning, then grow).
  struct TwoPhase {
    int good_calls = 1;
    int calls = 0;
    std::vector<Completion> sample(std::span<const Prompt> prompts, const kaizen::SamplingParams&) {
      ++calls;
      std::vector<Completion> out(prompts.size());
      for (auto& comp : out) comp.tokens = {static_cast<TokenId>(calls <= good_calls ? 7 : 8), 1};
      return out;
    }
  };
  AcceptTokens verifier{{7}};
  SECTION("ReST-EM restarts from the base") {
    TwoPhase sampler;
    kaizen::loop::rest_em(model, sampler, verifier, std::span<const Prompt>(prompts),
                          {.iterations = 2, .samples_per_prompt = 2, .cap = 1, .engine = c});
    check_same_parameters(base, model);
  }
  SECTION("B-STaR by default continues from the previous iterate") {
    TwoPhase sampler{.good_calls = 2};
    kaizen::loop::bstar(model, sampler, verifier, verifier, std::span<const Prompt>(prompts),
                        std::span<const Prompt>(prompts),
                        {.iterations = 2, .samples_per_prompt = 2, .tuning_samples = 1, .temperatures = {1.0},
                         .thresholds = {0.5}, .balance = {.n_star = 1, .cap = 1}, .engine = c});
    CHECK_FALSE(same_parameters(base, model));
  }
}

TEST_CASE("Self-training loops reject bad input with messages that name it", "[loop][errors]") {
  using Catch::Contains;
  const Setup s;
  LlamaModel model = s.model(1);
  kaizen::lm::LlamaSampler sampler(model, s.tokenizer.pad_id());
  FirstIsDigit verifier{&s.tokenizer};
  const std::vector<Prompt> prompts = s.prompts(2, 1), none;
  kaizen::loop::SelfTrainingConfig c;
  c.sampling = s.sampling();
  c.collate = s.collate();
  auto rest = [&](std::span<const Prompt> ps, kaizen::loop::RestEmConfig r) {
    r.engine = c;
    return kaizen::loop::rest_em(model, sampler, verifier, ps, r);
  };
  REQUIRE_THROWS_WITH(rest(std::span<const Prompt>(none), {}), Contains("rest_em: the prompt set is empty"));
  REQUIRE_THROWS_WITH(rest(std::span<const Prompt>(prompts), {.samples_per_prompt = 0}),
                      Contains("samples_per_prompt (N) must be >= 1, got 0"));
  REQUIRE_THROWS_WITH(rest(std::span<const Prompt>(prompts), {.cap = 0}), Contains("cap must be > 0, got 0"));
  REQUIRE_THROWS_WITH(rest(std::span<const Prompt>(prompts), {.cap = -2}), Contains("cap must be > 0, got -2"));
  c.batch_size = 0;
  REQUIRE_THROWS_WITH(rest(std::span<const Prompt>(prompts), {}), Contains("batch_size must be > 0, got 0"));
  c.batch_size = 4;
  c.stop_after_sft_steps = 3;
  REQUIRE_THROWS_WITH(rest(std::span<const Prompt>(prompts), {}), Contains("stop_after_sft_steps > 0 needs checkpoint_every"));
  c.stop_after_sft_steps = 0;
  c.resume_from = fs::temp_directory_path() / "kaizen_no_such_checkpoint_dir";
  REQUIRE_THROWS_WITH(rest(std::span<const Prompt>(prompts), {}), Contains("does not exist"));
  c.resume_from.clear();

  REQUIRE_THROWS_WITH(kaizen::loop::star(model, sampler, verifier, std::span<const Prompt>(prompts), {.engine = c}, {}),
                      Contains("star: rationalise is on but no hint function was given"));
  REQUIRE_THROWS_WITH(kaizen::loop::star(model, sampler, verifier, std::span<const Prompt>(prompts),
                                         {.rationalisation_samples = 0, .engine = c}, [](const Prompt& p) { return p; }),
                      Contains("rationalisation_samples must be >= 1, got 0"));

  auto bst = [&](std::span<const Prompt> tuning, kaizen::loop::BStarConfig b) {
    b.engine = c;
    return kaizen::loop::bstar(model, sampler, verifier, verifier, std::span<const Prompt>(prompts), tuning, b);
  };
  const std::span<const Prompt> t(prompts);
  REQUIRE_THROWS_WITH(bst(t, {.temperatures = {}, .thresholds = {0.5}}), Contains("bstar: the temperature grid is empty"));
  REQUIRE_THROWS_WITH(bst(t, {.temperatures = {1.0}, .thresholds = {}}), Contains("bstar: the reward-threshold grid is empty"));
  REQUIRE_THROWS_WITH(bst(t, {.temperatures = {1.0, 0.0}, .thresholds = {0.5}}), Contains("grid temperature must be > 0, got 0"));
  REQUIRE_THROWS_WITH(bst(std::span<const Prompt>(none), {.temperatures = {1.0}, .thresholds = {0.5}}),
                      Contains("bstar: the tuning (held-out query) set is empty"));
  REQUIRE_THROWS_WITH(bst(t, {.tuning_samples = 0, .temperatures = {1.0}, .thresholds = {0.5}}),
                      Contains("tuning_samples (K) must be >= 1, got 0"));
  REQUIRE_THROWS_WITH(bst(t, {.temperatures = {1.0}, .thresholds = {0.5}, .balance = {.cap = 0}}),
                      Contains("per-query cap must be > 0, got 0"));

  // A base snapshot that does not fit the policy.
  kaizen::loop::ParameterSnapshot wrong;
  wrong.tensors = {torch::zeros({2})};
  REQUIRE_THROWS_WITH(kaizen::loop::restore_snapshot(model, wrong), Contains("the snapshot has 1 parameter tensors"));
}
