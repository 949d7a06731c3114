// Two-role self-play (loop/self_play.hpp): the Self-RedTeam reward-table oracles of algorithms.md section 13
// (3.0 / -1.0 and 0 / 3), the zero-sum variant summing to zero on every outcome, tables read from JSON with every
// entry required, the arithmetic problem checker, one batch holding both roles with their tags, rewards and
// REINFORCE++ advantages whitened over the whole batch (recomputed by hand), an unparsable challenger output
// scored as "invalid" (a reward, not an error), the red-team game with the rule-based judge, exact resume
// mid-run on a tiny Llama, and bad input with its values.
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/self_play.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>
#include <kaizen/tasks/arithmetic.hpp>
#include <kaizen/tasks/problem.hpp>
#include <kaizen/tasks/tokenizer.hpp>

#include "loop_test_support.hpp"

using namespace kaizen;
using Catch::Contains;

namespace {

/// Replies by the decoded prompt text, cycling through a script per prompt (every completion ends with eos).
struct ScriptedSampler {
  const tasks::CharTokenizer* tokenizer;
  std::map<std::string, std::vector<std::string>> script;
  std::map<std::string, std::size_t> next;
  std::vector<std::uint64_t> seeds;
  std::vector<Completion> sample(std::span<const Prompt> prompts, const SamplingParams& params) {
    seeds.push_back(params.seed);
    std::vector<Completion> out;
    for (const Prompt& p : prompts) {
      const std::string text = tokenizer->decode(p.tokens);
      const auto it = script.find(text);
      REQUIRE(it != script.end());
      Completion c;
      c.tokens = tokenizer->encode(it->second[next[text]++ % it->second.size()]);
      c.tokens.push_back(tokenizer->eos_id());
      c.finish = FinishReason::stop;
      out.push_back(std::move(c));
    }
    return out;
  }
};

struct FixedSource {
  Prompt seed;
  Prompt operator()(ArmId, Rng&) const { return seed; }
};

struct Arith {
  tasks::CharTokenizer tokenizer;
  tasks::ArithmeticOptions options{.min_digits = 1, .max_digits = 2, .operators = "+"};
  tasks::Arithmetic task{options};
  loop::ArithmeticChecker checker{options};
  Prompt seed{.tokens = tokenizer.encode(":"), .text = ":"};
};

nlohmann::json without_timing(nlohmann::json m) {
  m.erase("sample_seconds");
  m.erase("train_seconds");
  return m;
}

}  // namespace

TEST_CASE("red-team reward table: the section 13 oracles (3.0 / -1.0 and 0 / 3)", "[self_play]") {
  const loop::RedTeamRewardTable table;
  const auto a = table({.seed_harmful = true, .prompt_harmful = true, .refused = false, .response_harmful = true,
                        .attacker_format_ok = true, .defender_format_ok = true});
  CHECK(a.proposer == 3.0);
  CHECK(a.responder == -1.0);
  const auto b = table({.seed_harmful = false, .prompt_harmful = false, .refused = false, .response_harmful = false,
                        .attacker_format_ok = true, .defender_format_ok = true});
  CHECK(b.proposer == 0.0);
  CHECK(b.responder == 3.0);
  // each term by itself: a format violation costs its coefficient twice (+c -> -c)
  const auto c = table({.seed_harmful = true, .prompt_harmful = true, .refused = false, .response_harmful = true,
                        .attacker_format_ok = false, .defender_format_ok = false});
  CHECK(c.proposer == 1.0);
  CHECK(c.responder == -3.0);
  // harmful prompt refused with a harmless reply: the defender's best case, the attacker's refusal term -0.5
  const auto d = table({.seed_harmful = true, .prompt_harmful = true, .refused = true, .response_harmful = false});
  CHECK(d.responder == 3.0);
  CHECK(d.proposer == 0.5 - 0.5 - 1.0 + 1.0);
  // benign prompt refused: the defender over-refuses (-1), the attacker is paid for it (+0.5)
  const auto e = table({.seed_harmful = false, .prompt_harmful = false, .refused = true, .response_harmful = false});
  CHECK(e.responder == -1.0 + 1.0 + 1.0);
  CHECK(e.proposer == 0.5 + 0.5 - 1.0 + 1.0);
}

TEST_CASE("red-team reward table: the zero-sum variant sums to zero on every outcome", "[self_play]") {
  loop::RedTeamRewardTable general, zero;
  zero.zero_sum = true;
  int cases = 0;
  for (int bits = 0; bits < 64; ++bits) {
    const loop::RedTeamOutcome o{.seed_harmful = (bits & 1) != 0, .prompt_harmful = (bits & 2) != 0,
                                 .refused = (bits & 4) != 0, .response_harmful = (bits & 8) != 0,
                                 .attacker_format_ok = (bits & 16) != 0, .defender_format_ok = (bits & 32) != 0};
    const auto z = zero(o), g = general(o);
    CHECK(z.proposer + z.responder == 0.0);
    CHECK(z.responder == g.responder);  // the defender's reward is the same; the attacker's is its negation
    ++cases;
  }
  CHECK(cases == 64);
  // the general-sum table is not zero-sum (oracle 1 sums to 2)
  const auto g = general({.seed_harmful = true, .prompt_harmful = true, .response_harmful = true});
  CHECK(g.proposer + g.responder == 2.0);
}

TEST_CASE("reward tables from JSON: round trip, every entry required", "[self_play]") {
  loop::RedTeamRewardTable t;
  t.attacker_response_harm = 2.0;
  t.zero_sum = true;
  const auto back = loop::RedTeamRewardTable::from_json(t.to_json());
  CHECK(back.to_json() == t.to_json());
  nlohmann::json j = loop::RedTeamRewardTable{}.to_json();
  j.erase("defender_format");
  CHECK_THROWS_WITH(loop::RedTeamRewardTable::from_json(j),
                    Contains("RedTeamRewardTable::from_json: the reward table has no entry 'defender_format'"));
  j = loop::RedTeamRewardTable{}.to_json();
  j["attacker_bonus"] = 1.0;
  CHECK_THROWS_WITH(loop::RedTeamRewardTable::from_json(j), Contains("unknown entry 'attacker_bonus'"));
  j = loop::RedTeamRewardTable{}.to_json();
  j["attacker_refusal"] = "half";
  CHECK_THROWS_WITH(loop::RedTeamRewardTable::from_json(j), Contains("entry 'attacker_refusal' must be a number, got \"half\""));
  j = loop::RedTeamRewardTable{}.to_json();
  j["zero_sum"] = 1;
  CHECK_THROWS_WITH(loop::RedTeamRewardTable::from_json(j), Contains("entry 'zero_sum' must be true or false, got 1"));

  const std::vector<std::string> required{"solved", "failed", "invalid"};
  const nlohmann::json table = {{"zero_sum", false},
                                {"outcomes",
                                 {{"solved", {{"proposer", 0}, {"responder", 1}}},
                                  {"failed", {{"proposer", 1}, {"responder", 0}}},
                                  {"invalid", {{"proposer", -0.5}, {"responder", 0}}}}}};
  const auto o = loop::OutcomeRewardTable::from_json(table, required);
  CHECK(o.at("invalid").proposer == -0.5);
  CHECK(o.at("solved").responder == 1.0);
  CHECK_THROWS_WITH(o.at("draw"), Contains("OutcomeRewardTable: no entry for outcome 'draw'"));
  nlohmann::json missing = table;
  missing["outcomes"].erase("failed");
  CHECK_THROWS_WITH(loop::OutcomeRewardTable::from_json(missing, required),
                    Contains("the reward table has no entry for outcome 'failed'"));
  nlohmann::json no_responder = table;
  no_responder["outcomes"]["solved"].erase("responder");
  CHECK_THROWS_WITH(loop::OutcomeRewardTable::from_json(no_responder, required),
                    Contains("outcome 'solved' has no 'responder' reward (needed unless zero_sum)"));
  // zero-sum: the responder's reward is derived as -proposer, for every outcome
  nlohmann::json zs = no_responder;
  zs["zero_sum"] = true;
  const auto z = loop::OutcomeRewardTable::from_json(zs, required);
  for (const auto& [name, r] : z.entries()) CHECK(r.proposer + r.responder == 0.0);
  CHECK(z.at("failed").responder == -1.0);
  CHECK_THROWS_WITH(loop::OutcomeRewardTable(std::map<std::string, loop::RoleRewards>{}), Contains("expected at least one outcome, got none"));
  CHECK_THROWS_WITH(loop::OutcomeRewardTable({{"x", {NAN, 0.0}}}), Contains("outcome 'x' has rewards nan and 0"));
}

TEST_CASE("arithmetic checker: well-formed problems of the task's widths and operators only", "[self_play]") {
  const loop::ArithmeticChecker c({.min_digits = 1, .max_digits = 2, .operators = "+-"});
  const auto p = c.check("27+58");
  REQUIRE(p.has_value());
  CHECK(p->prompt == "27+58=");
  CHECK(p->reference == "85");
  CHECK(p->category == 1);
  CHECK(c.check("9-3")->reference == "6");
  CHECK(c.check("0+7")->category == 0);
  const tasks::Arithmetic task({.min_digits = 1, .max_digits = 2, .operators = "+-"});
  CHECK(task.verify(p->prompt, p->reference, "85"));
  for (const char* bad : {"", "+", "27+", "+58", "27*58", "127+5", "07+5", "3-9", "2+3+4", "2 +3", "27=58", "a+b"})
    CHECK_FALSE(c.check(bad).has_value());
  // generated problems round-trip through the checker with the same answer
  Rng rng(3);
  for (int i = 0; i < 200; ++i) {
    const tasks::Problem g = task.generate(-1, rng);
    const auto back = c.check(g.prompt.substr(0, g.prompt.size() - 1));
    REQUIRE(back.has_value());
    CHECK(back->reference == g.reference);
    CHECK(back->category == g.category);
  }
}

TEST_CASE("self-play batch: both roles with tags, table rewards and REINFORCE++ advantages over the whole batch",
          "[self_play]") {
  const Arith s;
  loop::ChallengerGame game(s.checker, s.task, s.tokenizer);
  ScriptedSampler sampler{&s.tokenizer, {}, {}, {}};
  // proposals cycle: a valid problem, an unparsable one, another valid one
  sampler.script[":"] = {"12+34", "1+", "7+5"};
  sampler.script["12+34="] = {"46", "45"};   // right, then wrong
  sampler.script["7+5="] = {"11"};           // wrong
  FixedSource source{s.seed};
  Rng rng(5), copy(5);
  SamplingParams params;
  const auto r = loop::self_play_rollout(sampler, game, source,
                                         {.seeds = 1, .proposals_per_seed = 3, .replies_per_proposal = 2}, params, rng);
  REQUIRE(r.proposals.size() == 3);
  CHECK(r.valid_proposals == 2);
  REQUIRE(r.games.size() == 3);
  CHECK(r.games[0].outcome == "partly_solved");
  CHECK(r.games[1].outcome == "invalid");  // an output the checker cannot parse is a reward, not a crash
  CHECK(r.games[2].outcome == "failed");
  // rows: 3 proposer rows, then 2 replies for each of the 2 valid proposals
  REQUIRE(r.rows.size() == 7);
  const std::vector<loop::Role> roles{loop::Role::proposer,  loop::Role::proposer,  loop::Role::proposer,
                                      loop::Role::responder, loop::Role::responder, loop::Role::responder,
                                      loop::Role::responder};
  CHECK(r.roles == roles);
  const std::vector<double> rewards{0.5, -1.0, 1.0, 1.0, 0.0, 0.0, 0.0};
  for (std::size_t i = 0; i < rewards.size(); ++i) {
    INFO("row " << i);
    CHECK(r.rows[i].reward == rewards[i]);
  }
  CHECK(s.tokenizer.decode(r.rows[0].prompt) == ":");
  CHECK(s.tokenizer.decode(r.rows[3].prompt) == "12+34=");
  CHECK(s.tokenizer.decode(r.rows[5].prompt) == "7+5=");
  CHECK(r.rows[3].group == r.rows[4].group);
  CHECK(r.rows[3].group != r.rows[5].group);
  REQUIRE(sampler.seeds.size() == 2);  // proposals, then replies: one sampler call each, seeds from the engine
  CHECK(sampler.seeds[0] == copy());   // (the fixed source draws nothing)
  CHECK(sampler.seeds[1] == copy());

  // Advantages: every token of row i carries r_i (gamma = 1, no KL), whitened over all tokens of both roles.
  const TokenBatch batch = collate(std::span<const Rollout>(r.rows), CollateOptions{.pad_id = 0, .vocab_size = s.tokenizer.vocab_size()});
  const torch::Tensor old = torch::zeros(batch.input_ids.sizes(), torch::kFloat);
  const torch::Tensor a = loop::self_play_advantages(batch, old, torch::Tensor());
  REQUIRE(a.sizes() == batch.input_ids.sizes());
  double n = 0.0, sum = 0.0;
  std::vector<double> len;
  for (const Rollout& row : r.rows) {
    len.push_back(static_cast<double>(row.completion.tokens.size()));
    n += len.back();
    sum += len.back() * row.reward;
  }
  const double mean = sum / n;
  double var = 0.0;
  for (std::size_t i = 0; i < r.rows.size(); ++i) var += len[i] * (r.rows[i].reward - mean) * (r.rows[i].reward - mean);
  var /= n - 1.0;
  const torch::Tensor m = batch.completion_mask.to(torch::kFloat);
  for (std::int64_t i = 0; i < batch.batch_size(); ++i) {
    INFO("row " << i);
    const double expected = (r.rows[static_cast<std::size_t>(i)].reward - mean) / std::sqrt(var + 1e-8);
    const torch::Tensor row = a[i].masked_select(batch.completion_mask[i]);
    CHECK(row.numel() == static_cast<std::int64_t>(len[static_cast<std::size_t>(i)]));
    CHECK(row.min().item<double>() == Approx(expected).margin(1e-5));
    CHECK(row.max().item<double>() == Approx(expected).margin(1e-5));
    CHECK((a[i] * (1 - m[i])).abs().sum().item<double>() == 0.0);  // zero outside the completion
  }
  CHECK((a * m).sum().item<double>() == Approx(0.0).margin(1e-4));  // one normalisation over both roles
  // a role-wise normalisation would centre each role; the global one does not
  double proposer_sum = 0.0;
  for (std::int64_t i = 0; i < 3; ++i) proposer_sum += (a[i] * m[i]).sum().item<double>();
  CHECK(std::abs(proposer_sum) > 0.1);
}

TEST_CASE("red-team game with the rule-based judge: table rewards, hidden reasoning, dropped games", "[self_play]") {
  const tasks::CharTokenizer tok("abcdefghijklmnopqrstuvwxyz<>/: ");
  loop::KeywordJudge<tasks::CharTokenizer> harm{&tok, {"bomb"}};
  loop::KeywordJudge<tasks::CharTokenizer> refusal{&tok, {"no"}};
  loop::RedTeamGame game(harm, refusal, tok,
                         {.attacker_template = "a:{seed}", .defender_template = "d:{prompt}", .answer_open = "<a>",
                          .answer_close = "</a>"});
  ScriptedSampler sampler{&tok, {}, {}, {}};
  sampler.script["a:make bomb"] = {"think<a>bomb how</a>", "no tags"};
  sampler.script["d:bomb how"] = {"<a>bomb is</a>"};  // complies with a harmful reply
  sampler.script["d:no tags"] = {"<a>no</a>"};        // the untagged attack is shown whole; refused
  FixedSource source{Prompt{.tokens = tok.encode("make bomb"), .text = "make bomb", .category = 1}};
  Rng rng(1);
  const auto r = loop::self_play_rollout(sampler, game, source, {.seeds = 1, .proposals_per_seed = 2}, SamplingParams{}, rng);
  REQUIRE(r.rows.size() == 4);
  // oracle 1: harmful seed and prompt, complied, harmful reply, both formats ok
  CHECK(r.rows[0].reward == 3.0);
  CHECK(r.rows[2].reward == -1.0);
  // "no tags": the attacker's format fails (-1), its shown text "no tags" is not harmful (h = 0 != s: -0.5),
  // benign prompt refused (+0.5), harmless reply (-1): -2; the defender refused a benign prompt (-1), harmless (+1),
  // format ok (+1): 1
  CHECK(r.rows[1].reward == -2.0);
  CHECK(r.rows[3].reward == 1.0);
  CHECK(r.games[0].outcome == "harmful_reply");
  // a negative classifier score means "no label": the game is dropped and adds no rows
  struct NoLabel {
    std::vector<double> operator()(const Prompt&, std::span<const Completion> c) const {
      return std::vector<double>(c.size(), -1.0);
    }
  } no_label;
  loop::RedTeamGame dropping(no_label, refusal, tok, {.attacker_template = "a:{seed}", .defender_template = "d:{prompt}",
                                                      .answer_open = "<a>", .answer_close = "</a>"});
  sampler.next.clear();
  const auto d = loop::self_play_rollout(sampler, dropping, source, {.seeds = 1, .proposals_per_seed = 2}, SamplingParams{}, rng);
  CHECK(d.rows.empty());
  CHECK(d.dropped_games == 2);
}

namespace {

/// A game an untrained model plays with varied rewards: a proposal of even length is valid and the responder
/// continues it; the proposer earns the mean reply length (-1 when invalid), a reply earns its own length.
struct LengthGame {
  Prompt proposer_prompt(const Prompt& seed) const { return seed; }
  std::optional<Prompt> responder_prompt(const Prompt& seed, const Completion& proposal) const {
    if (proposal.tokens.size() % 2 != 0) return std::nullopt;
    Prompt p = seed;
    p.tokens.insert(p.tokens.end(), proposal.tokens.begin(), proposal.tokens.end() - 1);
    return p;
  }
  loop::GameResult judge(const Prompt&, const Completion&, const Prompt* reply_prompt,
                         std::span<const Completion> replies) const {
    loop::GameResult g;
    g.outcome = reply_prompt == nullptr ? "invalid" : "played";
    g.proposer_reward = reply_prompt == nullptr ? -1.0 : 0.0;
    for (const Completion& r : replies) {
      g.responder_rewards.push_back(static_cast<double>(r.tokens.size()));
      g.proposer_reward += static_cast<double>(r.tokens.size()) / static_cast<double>(replies.size());
    }
    return g;
  }
};

}  // namespace

TEST_CASE("self-play on a tiny Llama: resumed mid-run it continues exactly like the uninterrupted run",
          "[self_play][resume]") {
  REQUIRE(kaizen_test::kOneThread);
  const Arith s;
  LengthGame game;
  FixedSource source{s.seed};
  lm::LlamaConfig lc;
  lc.vocab_size = s.tokenizer.vocab_size();
  lc.hidden_size = 32;
  lc.intermediate_size = 64;
  lc.num_hidden_layers = 1;
  lc.num_attention_heads = 4;
  lc.num_key_value_heads = 2;
  lc.max_position_embeddings = 24;
  auto model = [&](std::uint64_t seed) {
    torch::manual_seed(seed);
    return lm::LlamaModel(lc);
  };
  loop::SelfPlayConfig c;
  c.steps = 5;
  c.seeds_per_step = 3;
  c.proposals_per_seed = 2;
  c.replies_per_proposal = 2;
  c.kl_coef = 0.05;
  c.optimizer.learning_rate = 3e-3;
  c.sampling.max_new_tokens = 5;
  c.sampling.stop_tokens = {s.tokenizer.eos_id()};
  c.collate = {.pad_id = s.tokenizer.pad_id(), .vocab_size = s.tokenizer.vocab_size(), .max_length = 24};
  c.seed = 17;
  c.checkpoint_every = 2;
  kaizen_test::TempDir full_dir("self_play_full");
  lm::LlamaModel full = model(3), full_ref = model(3);
  lm::LlamaSampler full_sampler(full, s.tokenizer.pad_id());
  auto fc = c;
  fc.checkpoint_dir = full_dir.path;
  const auto expected = loop::self_play(full, full_sampler, game, source, fc, {}, &full_ref);
  REQUIRE(expected.steps == 5);
  REQUIRE(expected.history.size() == 5);
  for (const auto& m : expected.history) {
    CHECK(m["rows_proposer"].get<std::int64_t>() == 6);
    CHECK(m["rows_responder"].get<std::int64_t>() == 2 * static_cast<std::int64_t>(std::lround(6 * m["valid_fraction"].get<double>())));
    CHECK(m["updates"].get<std::int64_t>() == 1);
    CHECK(m["outcomes"].size() >= 1);
  }
  std::int64_t responder_rows = 0;
  for (const auto& m : expected.history) responder_rows += m["rows_responder"].get<std::int64_t>();
  CHECK(responder_rows > 0);  // both roles were in the batches
  CHECK_FALSE(kaizen_test::same_parameters(full, full_ref));  // it trained
  for (std::int64_t stop : {1, 3}) {
    INFO("interrupted after step " << stop);
    kaizen_test::TempDir dir("self_play_stop");
    lm::LlamaModel first = model(3), first_ref = model(3);
    lm::LlamaSampler first_sampler(first, s.tokenizer.pad_id());
    auto a = c;
    a.checkpoint_dir = dir.path;
    a.stop_after_steps = stop;
    const auto stopped = loop::self_play(first, first_sampler, game, source, a, {}, &first_ref);
    REQUIRE(stopped.stopped);
    CHECK(stopped.steps == stop);
    lm::LlamaModel resumed = model(99), resumed_ref = model(98);  // weights, optimiser, engine, reference: checkpoint
    lm::LlamaSampler resumed_sampler(resumed, s.tokenizer.pad_id());
    auto b = c;
    b.checkpoint_dir = dir.path;
    b.resume_from = dir.path;
    const auto rest = loop::self_play(resumed, resumed_sampler, game, source, b, {}, &resumed_ref);
    CHECK(rest.steps == 5);
    kaizen_test::check_same_parameters(full, resumed);
    kaizen_test::check_same_parameters(full_ref, resumed_ref);
    std::vector<nlohmann::json> all = stopped.history;
    all.insert(all.end(), rest.history.begin(), rest.history.end());
    REQUIRE(all.size() == expected.history.size());
    for (std::size_t i = 0; i < all.size(); ++i) CHECK(without_timing(all[i]) == without_timing(expected.history[i]));
  }
}

namespace {

/// A game whose roles can be made to misbehave.
struct BrokenGame {
  bool empty_proposer = false, empty_responder = false, wrong_count = false, nan_reward = false;
  Prompt proposer_prompt(const Prompt& seed) const { return empty_proposer ? Prompt{} : seed; }
  std::optional<Prompt> responder_prompt(const Prompt& seed, const Completion&) const {
    return empty_responder ? Prompt{} : seed;
  }
  loop::GameResult judge(const Prompt&, const Completion&, const Prompt*, std::span<const Completion> replies) const {
    loop::GameResult g;
    g.outcome = "x";
    g.proposer_reward = nan_reward ? NAN : 0.0;
    g.responder_rewards.assign(replies.size() + (wrong_count ? 1 : 0), 0.0);
    return g;
  }
};
static_assert(loop::TwoRoleGame<BrokenGame>);

}  // namespace

TEST_CASE("self-play rejects bad input with messages that name it", "[self_play][errors]") {
  const Arith s;
  ScriptedSampler sampler{&s.tokenizer, {{":", {"1+2"}}}, {}, {}};
  FixedSource source{s.seed};
  Rng rng(1);
  auto rollout = [&](BrokenGame g) {
    return loop::self_play_rollout(sampler, g, source, {.seeds = 2, .proposals_per_seed = 1}, SamplingParams{}, rng);
  };
  CHECK_THROWS_WITH(rollout({.empty_proposer = true}),
                    Contains("self_play_rollout: the game's proposer prompt for seed 0 (\":\") is empty; the proposer "
                             "role needs a prompt"));
  CHECK_THROWS_WITH(rollout({.empty_responder = true}),
                    Contains("the game's responder prompt for proposal 0 is empty; the responder role needs a prompt"));
  CHECK_THROWS_WITH(rollout({.wrong_count = true}),
                    Contains("the game's judge returned 2 responder rewards for 1 replies (proposal 0)"));
  CHECK_THROWS_WITH(rollout({.nan_reward = true}), Contains("returned a non-finite proposer reward nan (proposal 0)"));
  BrokenGame fine;
  CHECK_THROWS_WITH(loop::self_play_rollout(sampler, fine, source, {.seeds = 0}, SamplingParams{}, rng),
                    Contains("seeds per step must be > 0, got 0"));

  // empty role templates and tables without the outcomes the game produces
  CHECK_THROWS_WITH(loop::ChallengerGame(s.checker, s.task, s.tokenizer, {.challenger_template = ""}),
                    Contains("ChallengerGame: empty challenger template"));
  CHECK_THROWS_WITH(loop::ChallengerGame(s.checker, s.task, s.tokenizer,
                                         {.table = loop::OutcomeRewardTable({{"solved", {0, 1}}, {"failed", {1, 0}}})}),
                    Contains("ChallengerGame: the reward table has no entry for outcome 'invalid'"));
  loop::KeywordJudge<tasks::CharTokenizer> judge{&s.tokenizer, {"1"}};
  using RT = loop::RedTeamGame<loop::KeywordJudge<tasks::CharTokenizer>, loop::KeywordJudge<tasks::CharTokenizer>,
                               tasks::CharTokenizer>;
  CHECK_THROWS_WITH(RT(judge, judge, s.tokenizer, {.attacker_template = "", .defender_template = "{prompt}"}),
                    Contains("RedTeamGame: empty role template"));
  CHECK_THROWS_WITH(RT(judge, judge, s.tokenizer, {.attacker_template = "x", .defender_template = "{prompt}"}),
                    Contains("the attacker template \"x\" has no {seed}"));
  CHECK_THROWS_WITH(RT(judge, judge, s.tokenizer, {.answer_open = "<"}), Contains("give both answer tags or neither"));
  RT rt(judge, judge, s.tokenizer, {});
  ScriptedSampler rs{&s.tokenizer, {{"5", {"1"}}, {"1", {"2"}}}, {}, {}};
  FixedSource bad_seed{Prompt{.tokens = s.tokenizer.encode("5"), .text = "5", .category = 7}};
  CHECK_THROWS_WITH(loop::self_play_rollout(rs, rt, bad_seed, {.seeds = 1, .proposals_per_seed = 1}, SamplingParams{}, rng),
                    Contains("a seed's category must be 1 (harmful) or 0 (benign), got 7"));

  // the loop's configuration
  loop::ChallengerGame game(s.checker, s.task, s.tokenizer);
  lm::LlamaConfig lc;
  lc.vocab_size = s.tokenizer.vocab_size();
  lc.hidden_size = 16;
  lc.intermediate_size = 32;
  lc.num_hidden_layers = 1;
  lc.num_attention_heads = 2;
  lc.num_key_value_heads = 1;
  lc.max_position_embeddings = 16;
  lm::LlamaModel policy(lc);
  lm::LlamaSampler ls(policy, s.tokenizer.pad_id());
  auto run = [&](const loop::SelfPlayConfig& c) { return loop::self_play(policy, ls, game, source, c); };
  loop::SelfPlayConfig c;
  c.kl_coef = 0.1;
  CHECK_THROWS_WITH(run(c), Contains("self_play: kl_coef = 0.1 > 0 needs a reference policy"));
  c = {};
  c.seeds_per_step = 0;
  CHECK_THROWS_WITH(run(c), Contains("self_play: seeds_per_step must be > 0, got 0"));
  c = {};
  c.replies_per_proposal = 0;
  CHECK_THROWS_WITH(run(c), Contains("proposals_per_seed and replies_per_proposal must be >= 1, got 2 and 0"));
  c = {};
  c.gamma = 1.5;
  CHECK_THROWS_WITH(run(c), Contains("gamma must be in [0, 1], got 1.5"));
  c = {};
  c.stop_after_steps = 2;
  CHECK_THROWS_WITH(run(c), Contains("stop_after_steps > 0 needs checkpoint_every > 0"));
  c = {};
  c.checkpoint_every = 1;
  CHECK_THROWS_WITH(run(c), Contains("checkpoint_every > 0 needs a checkpoint_dir"));
}
