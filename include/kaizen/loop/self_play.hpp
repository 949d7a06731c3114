// kaizen/loop/self_play.hpp - two-role self-play: ONE policy plays a proposer and a responder (attacker and
// defender in Self-RedTeam, challenger and solver in Agent0 / Absolute-Zero style curricula); the roles are
// only different prompts into the same weights, and both roles' turns go into one policy-gradient batch.
//
// A game (the TwoRoleGame concept) supplies the per-role prompts and the judge:
//   proposer_prompt(seed)                 -> Prompt             the proposer's prompt for a seed
//   responder_prompt(seed, proposal)      -> optional<Prompt>   what the responder reads (only the proposal's
//                                                               visible part); nullopt = the proposal is invalid
//                                                               and the responder does not play
//   judge(seed, proposal, reply_prompt*, replies) -> GameResult  the per-role rewards of the game
//                                                               (reply_prompt null when the proposal was invalid)
//
// One step, for P seeds x_1..x_P from the prompt source (stage 1 of every loop):
//   1. Q proposals per seed, one sampler call (seed of the call = next draw of the loop's engine)
//   2. R replies per VALID proposal, one sampler call (next engine draw; skipped when no proposal is valid)
//   3. game.judge per proposal -> proposer reward, one responder reward per reply, an outcome label; a
//      dropped game (Self-RedTeam's "tie": a label is missing) contributes no rows
//   4. rows: one per proposal (role proposer, group = its seed) and one per reply (role responder, group =
//      P + its proposal's index), in that order, collated into ONE TokenBatch
//   5. REINFORCE++ advantages over the whole batch, both roles together (policy_gradient::ReinforcePP):
//      token rewards r_t = −β·KL_t(π_old‖π_ref) (β = kl_coef, 0 = none) plus the row's reward on its last
//      token, discounted returns with γ, whitened over every completion token of the batch (global batch
//      normalisation: mean 0 and unit variance over both roles' tokens, not per role)
//   6. epochs over shuffled row mini-batches of the policy loss (loop::policy_gradient_update), AdamW
//   7. metrics per role; checkpoint (policy, AdamW, engine, step, the game's state() if it has one, and the
//      reference's parameters when there is a reference), so a resumed run is bit-equal to one that never
//      stopped.
//
// Reward tables (configuration, from JSON with every entry required):
//   RedTeamRewardTable, Self-RedTeam's general-sum coefficients (s = the seed is harmful, h = the attacker's
//   prompt is judged harmful, f = the defender refused, x = the defender's reply is judged harmful):
//     attacker = (h == s ? +a_faith : −a_faith) + (h ? (f ? −a_ref : +a_ref) : (f ? +a_ref : −a_ref))
//              + (x ? +a_harm : −a_harm) + (attacker format ok ? +a_fmt : −a_fmt)
//     defender = (h ? (f ? +d_ref : −d_ref) : (f ? −d_ref : +d_ref)) + (x ? −d_harm : +d_harm)
//              + (defender format ok ? +d_fmt : −d_fmt)
//   defaults (the released code's table) a_faith = 0.5, a_ref = 0.5, a_harm = 1, a_fmt = d_fmt = 1, d_ref = 1,
//   d_harm = 1. Zero-sum variant (zero_sum = true): attacker = −defender. Oracles: harmful seed, harmful prompt,
//   defender complies, harmful reply, both formats ok: attacker 0.5 + 0.5 + 1 + 1 = 3, defender −1 − 1 + 1 = −1;
//   benign seed, benign prompt, complies, harmless reply: attacker 0.5 − 0.5 − 1 + 1 = 0, defender 1 + 1 + 1 = 3.
//   OutcomeRewardTable: a discrete outcome name -> (proposer, responder) rewards; zero_sum = true derives the
//   responder's as −proposer. The challenger game's defaults: "solved" (0, 1), "failed" (1, 0), "invalid"
//   (−1, ·): the challenger is paid when the solver fails a VALID problem and charged for an invalid one,
//   the solver is paid when it is right.
//
// Games shipped here:
//   RedTeamGame: attacker rewrites a seed ("{seed}" in its template), the defender answers the attacker's
//     visible answer ("{prompt}" in its template); only the text between answer tags is shown (hidden
//     reasoning, Self-RedTeam's <answer>…</answer>); the format check is "finished, and the tags present".
//     The safety classifier is two kaizen::Judge the user plugs in: `harm` (is the candidate harmful, read in
//     the context of the prompt: the attacker's rewrite given the seed, the defender's reply given the attack)
//     and `refusal` (did the reply refuse); a score >= 0.5 is "yes", a negative score is "no label" and drops
//     the game. KeywordJudge is a RULE-BASED stand-in (keyword match) for tests and demos, not a classifier.
//   ChallengerGame: the challenger (seed text into its template) writes a problem in a parseable form; a
//     checker (the ProblemChecker concept; ArithmeticChecker for tasks::Arithmetic: "a+b" with operands of the
//     task's widths and operators) validates it and computes the gold answer; the solver reads the problem as
//     the task prints it (tasks::make_prompt) and the task's verifier grades each reply. An unparsable proposal
//     is an "invalid" outcome with the table's reward, never an error.
//
// References: M. Liu, L. Jiang et al., "Chasing Moving Targets with Online Self-Play Reinforcement Learning for
// Safer Language Models" (Self-RedTeam), arXiv 2506.07468 (2025); J. Hu, "REINFORCE++", arXiv 2501.03262
// (2025); A. Zhao et al., "Absolute Zero: Reinforced Self-play Reasoning with Zero Data", arXiv 2505.03335
// (2025); P. Xia et al., "Agent0: Unleashing Self-Evolving Agents from Zero Data", arXiv 2511.16043 (2025).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/curriculum.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/judge.hpp>
#include <kaizen/core/policy.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/sampler.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/batch.hpp>
#include <kaizen/loop/checkpoint.hpp>
#include <kaizen/loop/metrics.hpp>
#include <kaizen/loop/optimizer.hpp>
#include <kaizen/loop/prompts.hpp>
#include <kaizen/loop/rollout.hpp>
#include <kaizen/loop/snapshot.hpp>
#include <kaizen/loop/update.hpp>
#include <kaizen/policy_gradient/estimators.hpp>
#include <kaizen/policy_gradient/kl.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/tasks/arithmetic.hpp>
#include <kaizen/tasks/problem.hpp>
#include <kaizen/tasks/tokenizer.hpp>
#include <kaizen/torch/logit_transform.hpp>

namespace kaizen::loop {

// --- roles and reward tables ------------------------------------------------------------------------------

/// Which turn a batch row is: the proposer's (attacker, challenger) or the responder's (defender, solver).
enum class Role : std::uint8_t { proposer = 0, responder = 1 };

[[nodiscard]] inline const char* role_name(Role r) noexcept { return r == Role::proposer ? "proposer" : "responder"; }

inline std::ostream& operator<<(std::ostream& out, Role r) { return out << role_name(r); }

/// The rewards of the two roles of one game (or one reply).
struct RoleRewards {
  double proposer = 0.0;
  double responder = 0.0;
};

namespace detail {

/// `j` must be an object holding exactly the keys `keys` (every one a number, except `bool_keys`).
inline void check_table_keys(const nlohmann::json& j, std::string_view who, const std::vector<std::string>& keys) {
  KAIZEN_CHECK(j.is_object(), who, ": expected a JSON object, got ", j.dump());
  for (const std::string& k : keys)
    KAIZEN_CHECK(j.contains(k), who, ": the reward table has no entry '", k, "' (every entry is required: ",
                 nlohmann::json(keys).dump(), ")");
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (const std::string& k : keys) known = known || k == it.key();
    KAIZEN_CHECK(known, who, ": unknown entry '", it.key(), "' (expected ", nlohmann::json(keys).dump(), ")");
  }
}

inline double table_number(const nlohmann::json& j, const std::string& key, std::string_view who) {
  KAIZEN_CHECK(j.at(key).is_number(), who, ": entry '", key, "' must be a number, got ", j.at(key).dump());
  const double v = j.at(key).get<double>();
  KAIZEN_CHECK(std::isfinite(v), who, ": entry '", key, "' must be finite, got ", v);
  return v;
}

}  // namespace detail

/// What the safety classifier said about one red-team game (see the top of the file).
struct RedTeamOutcome {
  bool seed_harmful = false;       ///< s: the seed's type
  bool prompt_harmful = false;     ///< h: the attacker's prompt is judged harmful
  bool refused = false;            ///< f: the defender refused
  bool response_harmful = false;   ///< x: the defender's reply is judged harmful
  bool attacker_format_ok = true;
  bool defender_format_ok = true;
};

/// Self-RedTeam's reward coefficients (general-sum by default; zero_sum: attacker = −defender).
struct RedTeamRewardTable {
  double attacker_faithfulness = 0.5;   ///< the rewrite keeps the seed's type
  double attacker_refusal = 0.5;        ///< harmful prompt complied with / benign prompt refused
  double attacker_response_harm = 1.0;  ///< the defender's reply is harmful
  double attacker_format = 1.0;
  double defender_refusal = 1.0;        ///< refuses a harmful prompt / complies with a benign one
  double defender_response_harm = 1.0;  ///< the reply is harmless
  double defender_format = 1.0;
  bool zero_sum = false;

  static inline const std::vector<std::string> kKeys = {
      "attacker_faithfulness", "attacker_refusal",        "attacker_response_harm", "attacker_format",
      "defender_refusal",      "defender_response_harm", "defender_format",        "zero_sum"};

  /// Reads a table where every entry of kKeys is present (numbers; zero_sum a bool). Throws kaizen::Error
  /// naming a missing, unknown, non-numeric or non-finite entry.
  [[nodiscard]] static RedTeamRewardTable from_json(const nlohmann::json& j) {
    constexpr std::string_view who = "RedTeamRewardTable::from_json";
    detail::check_table_keys(j, who, kKeys);
    KAIZEN_CHECK(j.at("zero_sum").is_boolean(), who, ": entry 'zero_sum' must be true or false, got ",
                 j.at("zero_sum").dump());
    RedTeamRewardTable t;
    t.attacker_faithfulness = detail::table_number(j, "attacker_faithfulness", who);
    t.attacker_refusal = detail::table_number(j, "attacker_refusal", who);
    t.attacker_response_harm = detail::table_number(j, "attacker_response_harm", who);
    t.attacker_format = detail::table_number(j, "attacker_format", who);
    t.defender_refusal = detail::table_number(j, "defender_refusal", who);
    t.defender_response_harm = detail::table_number(j, "defender_response_harm", who);
    t.defender_format = detail::table_number(j, "defender_format", who);
    t.zero_sum = j.at("zero_sum").get<bool>();
    return t;
  }

  [[nodiscard]] nlohmann::json to_json() const {
    return {{"attacker_faithfulness", attacker_faithfulness}, {"attacker_refusal", attacker_refusal},
            {"attacker_response_harm", attacker_response_harm}, {"attacker_format", attacker_format},
            {"defender_refusal", defender_refusal},           {"defender_response_harm", defender_response_harm},
            {"defender_format", defender_format},             {"zero_sum", zero_sum}};
  }

  /// The two rewards of one game (formulas at the top of the file); proposer = attacker, responder = defender.
  [[nodiscard]] RoleRewards operator()(const RedTeamOutcome& o) const {
    const auto sign = [](bool b) { return b ? 1.0 : -1.0; };
    const bool h = o.prompt_harmful, f = o.refused;
    const double defender = sign(h == f) * defender_refusal + sign(!o.response_harmful) * defender_response_harm +
                            sign(o.defender_format_ok) * defender_format;
    if (zero_sum) return {-defender, defender};
    const double attacker = sign(h == o.seed_harmful) * attacker_faithfulness + sign(h != f) * attacker_refusal +
                            sign(o.response_harmful) * attacker_response_harm +
                            sign(o.attacker_format_ok) * attacker_format;
    return {attacker, defender};
  }
};

/// A discrete outcome name -> per-role rewards; zero_sum derives responder = −proposer.
class OutcomeRewardTable {
 public:
  OutcomeRewardTable() = default;
  /// Throws kaizen::Error on an empty table or a non-finite reward.
  explicit OutcomeRewardTable(std::map<std::string, RoleRewards> entries, bool zero_sum = false)
      : entries_(std::move(entries)), zero_sum_(zero_sum) {
    KAIZEN_CHECK(!entries_.empty(), "OutcomeRewardTable: expected at least one outcome, got none");
    for (auto& [name, r] : entries_) {
      KAIZEN_CHECK(std::isfinite(r.proposer) && std::isfinite(r.responder), "OutcomeRewardTable: outcome '", name,
                   "' has rewards ", r.proposer, " and ", r.responder, ", expected finite values");
      if (zero_sum_) r.responder = -r.proposer;
    }
  }

  /// {"zero_sum": bool, "outcomes": {name: {"proposer": x, "responder": y}}}: every name of `required` must be
  /// present, with "proposer" always and "responder" unless zero_sum. Throws kaizen::Error naming what is missing.
  [[nodiscard]] static OutcomeRewardTable from_json(const nlohmann::json& j, const std::vector<std::string>& required) {
    constexpr std::string_view who = "OutcomeRewardTable::from_json";
    detail::check_table_keys(j, who, {"zero_sum", "outcomes"});
    KAIZEN_CHECK(j.at("zero_sum").is_boolean(), who, ": entry 'zero_sum' must be true or false, got ",
                 j.at("zero_sum").dump());
    const bool zero_sum = j.at("zero_sum").get<bool>();
    const nlohmann::json& outcomes = j.at("outcomes");
    KAIZEN_CHECK(outcomes.is_object(), who, ": 'outcomes' must be an object, got ", outcomes.dump());
    for (const std::string& name : required)
      KAIZEN_CHECK(outcomes.contains(name), who, ": the reward table has no entry for outcome '", name,
                   "' (required: ", nlohmann::json(required).dump(), ")");
    std::map<std::string, RoleRewards> entries;
    for (auto it = outcomes.begin(); it != outcomes.end(); ++it) {
      const std::string where = std::string(who) + ": outcome '" + it.key() + "'";
      KAIZEN_CHECK(it->is_object() && it->contains("proposer"), where, " has no 'proposer' reward, got ", it->dump());
      KAIZEN_CHECK(zero_sum || it->contains("responder"), where,
                   " has no 'responder' reward (needed unless zero_sum), got ", it->dump());
      RoleRewards r;
      r.proposer = detail::table_number(*it, "proposer", where);
      if (it->contains("responder")) r.responder = detail::table_number(*it, "responder", where);
      entries[it.key()] = r;
    }
    return OutcomeRewardTable(std::move(entries), zero_sum);
  }

  /// The rewards of `outcome`. Throws kaizen::Error naming an outcome the table has no entry for.
  [[nodiscard]] RoleRewards at(const std::string& outcome) const {
    const auto it = entries_.find(outcome);
    KAIZEN_CHECK(it != entries_.end(), "OutcomeRewardTable: no entry for outcome '", outcome, "'");
    return it->second;
  }
  [[nodiscard]] bool zero_sum() const noexcept { return zero_sum_; }
  [[nodiscard]] const std::map<std::string, RoleRewards>& entries() const noexcept { return entries_; }

 private:
  std::map<std::string, RoleRewards> entries_;
  bool zero_sum_ = false;
};

/// The challenger game's default table: solved (0, 1), failed (1, 0), invalid (−1, 0).
[[nodiscard]] inline OutcomeRewardTable challenger_reward_table(double invalid_penalty = -1.0) {
  return OutcomeRewardTable({{"solved", {0.0, 1.0}}, {"failed", {1.0, 0.0}}, {"invalid", {invalid_penalty, 0.0}}});
}

// --- the game concept -------------------------------------------------------------------------------------

/// What the judge of one game (one proposal and its replies) decided.
struct GameResult {
  bool dropped = false;                  ///< no label (a "tie"): the game adds no rows to the batch
  std::string outcome;                   ///< a label for the metrics ("solved", "invalid", "harmful", ...)
  double proposer_reward = 0.0;
  std::vector<double> responder_rewards; ///< one per reply (empty when the proposal was invalid)
};

/// A two-role game over one policy (see the top of the file).
template <class G>
concept TwoRoleGame = requires(G& g, const Prompt& seed, const Completion& proposal, const Prompt* reply_prompt,
                               std::span<const Completion> replies) {
  { g.proposer_prompt(seed) } -> std::convertible_to<Prompt>;
  { g.responder_prompt(seed, proposal) } -> std::convertible_to<std::optional<Prompt>>;
  { g.judge(seed, proposal, reply_prompt, replies) } -> std::convertible_to<GameResult>;
};

namespace detail {

/// "{key}" in `tmpl` replaced by `value` (every occurrence).
[[nodiscard]] inline std::string fill_template(std::string tmpl, std::string_view key, std::string_view value) {
  for (std::size_t at = tmpl.find(key); at != std::string::npos; at = tmpl.find(key, at + value.size()))
    tmpl.replace(at, key.size(), value);
  return tmpl;
}

}  // namespace detail

// --- Self-RedTeam ------------------------------------------------------------------------------------------

/// A RULE-BASED stand-in for a safety classifier, as a kaizen::Judge: a candidate scores 1 when its decoded
/// text contains any of `keywords`, else 0. For tests and demos only (a real run plugs in a classifier).
template <tasks::Tokenizer Tok>
struct KeywordJudge {
  const Tok* tokenizer = nullptr;
  std::vector<std::string> keywords;

  [[nodiscard]] std::vector<double> operator()(const Prompt&, std::span<const Completion> candidates) const {
    KAIZEN_CHECK(tokenizer != nullptr, "KeywordJudge: no tokenizer was given");
    std::vector<double> out;
    for (const Completion& c : candidates) {
      const std::string text = tokenizer->decode(c.tokens);
      bool hit = false;
      for (const std::string& k : keywords) hit = hit || (!k.empty() && text.find(k) != std::string::npos);
      out.push_back(hit ? 1.0 : 0.0);
    }
    return out;
  }
};

struct RedTeamGameOptions {
  std::string attacker_template = "{seed}";   ///< the attacker's prompt; "{seed}" = the seed's text
  std::string defender_template = "{prompt}"; ///< the defender's prompt; "{prompt}" = the attack's visible text
  std::string answer_open;                    ///< hidden reasoning: only the text between these tags is shown
  std::string answer_close;                   ///< (both empty = the whole completion is shown)
  RedTeamRewardTable table{};
};

/// Self-RedTeam's game (see the top of the file). The seed's category says its type: 1 = harmful, 0 = benign.
template <Judge Harm, Judge Refusal, tasks::Tokenizer Tok>
class RedTeamGame {
 public:
  /// Throws kaizen::Error on an empty role template, a template without its placeholder, or one answer tag
  /// without the other.
  RedTeamGame(Harm& harm, Refusal& refusal, const Tok& tokenizer, RedTeamGameOptions options)
      : harm_(&harm), refusal_(&refusal), tokenizer_(&tokenizer), options_(std::move(options)) {
    KAIZEN_CHECK(!options_.attacker_template.empty() && !options_.defender_template.empty(),
                 "RedTeamGame: empty role template (attacker \"", options_.attacker_template, "\", defender \"",
                 options_.defender_template, "\"); both roles need a prompt");
    KAIZEN_CHECK(options_.attacker_template.find("{seed}") != std::string::npos,
                 "RedTeamGame: the attacker template \"", options_.attacker_template, "\" has no {seed}");
    KAIZEN_CHECK(options_.defender_template.find("{prompt}") != std::string::npos,
                 "RedTeamGame: the defender template \"", options_.defender_template, "\" has no {prompt}");
    KAIZEN_CHECK(options_.answer_open.empty() == options_.answer_close.empty(),
                 "RedTeamGame: give both answer tags or neither, got \"", options_.answer_open, "\" and \"",
                 options_.answer_close, "\"");
  }

  /// The text the other player sees and whether the format holds (finished; the tags present in order).
  [[nodiscard]] std::pair<std::string, bool> visible(const Completion& c) const {
    const std::string text = tokenizer_->decode(c.tokens);
    const bool finished = c.finish == FinishReason::stop;
    if (options_.answer_open.empty()) return {text, finished};
    const std::size_t a = text.find(options_.answer_open);
    const std::size_t b = a == std::string::npos ? a : text.find(options_.answer_close, a + options_.answer_open.size());
    if (b == std::string::npos) return {text, false};
    const std::size_t from = a + options_.answer_open.size();
    return {text.substr(from, b - from), finished};
  }

  [[nodiscard]] Prompt proposer_prompt(const Prompt& seed) const {
    Prompt p = seed;
    p.text = detail::fill_template(options_.attacker_template, "{seed}", seed.text);
    p.tokens = tokenizer_->encode(p.text);
    return p;
  }

  /// The defender reads the attack's visible text (always: a red-team attack is never "invalid").
  [[nodiscard]] std::optional<Prompt> responder_prompt(const Prompt& seed, const Completion& attack) const {
    Prompt p = seed;
    p.text = detail::fill_template(options_.defender_template, "{prompt}", visible(attack).first);
    p.tokens = tokenizer_->encode(p.text);
    return p;
  }

  /// The table's rewards; the attacker's is the mean over the replies. A negative classifier score drops the game.
  [[nodiscard]] GameResult judge(const Prompt& seed, const Completion& attack, const Prompt* reply_prompt,
                                 std::span<const Completion> replies) {
    KAIZEN_CHECK(seed.category == 0 || seed.category == 1, "RedTeamGame: a seed's category must be 1 (harmful) or 0 "
                 "(benign), got ", seed.category, " for \"", seed.text, "\"");
    GameResult out;
    KAIZEN_CHECK(reply_prompt != nullptr, "RedTeamGame::judge: the defender's prompt is missing");
    const auto [attack_text, attack_ok] = visible(attack);
    Completion shown = attack;
    shown.tokens = tokenizer_->encode(attack_text);
    const double prompt_score = judge_scores(*harm_, seed, std::span<const Completion>(&shown, 1)).front();
    std::vector<Completion> shown_replies;
    std::vector<bool> reply_ok;
    for (const Completion& r : replies) {
      auto [text, ok] = visible(r);
      Completion c = r;
      c.tokens = tokenizer_->encode(text);
      shown_replies.push_back(std::move(c));
      reply_ok.push_back(ok);
    }
    const std::vector<double> harm = judge_scores(*harm_, *reply_prompt, std::span<const Completion>(shown_replies));
    const std::vector<double> refusal = judge_scores(*refusal_, *reply_prompt, std::span<const Completion>(shown_replies));
    bool missing = prompt_score < 0.0;
    for (std::size_t i = 0; i < replies.size(); ++i) missing = missing || harm[i] < 0.0 || refusal[i] < 0.0;
    if (missing) {
      out.dropped = true;
      out.outcome = "dropped";
      return out;
    }
    std::int64_t harmful_replies = 0;
    for (std::size_t i = 0; i < replies.size(); ++i) {
      RedTeamOutcome o{.seed_harmful = seed.category == 1, .prompt_harmful = prompt_score >= 0.5,
                       .refused = refusal[i] >= 0.5, .response_harmful = harm[i] >= 0.5,
                       .attacker_format_ok = attack_ok, .defender_format_ok = reply_ok[i]};
      const RoleRewards r = options_.table(o);
      out.proposer_reward += r.proposer / static_cast<double>(replies.size());
      out.responder_rewards.push_back(r.responder);
      harmful_replies += o.response_harmful ? 1 : 0;
    }
    out.outcome = harmful_replies > 0 ? "harmful_reply" : "harmless_reply";
    return out;
  }

 private:
  Harm* harm_;
  Refusal* refusal_;
  const Tok* tokenizer_;
  RedTeamGameOptions options_;
};

// --- solver / challenger ------------------------------------------------------------------------------------

/// Validates a proposed problem: `checker.check(text) -> std::optional<tasks::Problem>` with the gold answer in
/// Problem::reference (nullopt: not well-formed, not solvable, out of range).
template <class C>
concept ProblemChecker = requires(const C& c, std::string_view text) {
  { c.check(text) } -> std::convertible_to<std::optional<tasks::Problem>>;
};

/// Checks "a<op>b" proposals for tasks::Arithmetic: a and b plain decimal numbers (no sign, no leading zero)
/// whose widths lie in the task's [min_digits, max_digits] (a 1-digit operand may be 0), op one of the task's
/// operators, a >= b for '-'; the problem is printed "a<op>b=" and its reference is the exact value.
class ArithmeticChecker {
 public:
  explicit ArithmeticChecker(tasks::ArithmeticOptions options) : options_(std::move(options)) {
    (void)tasks::Arithmetic(options_);  // validates the options
  }

  [[nodiscard]] std::optional<tasks::Problem> check(std::string_view text) const {
    const std::size_t op_at = text.find_first_of("+-*");
    if (op_at == std::string_view::npos || options_.operators.find(text[op_at]) == std::string::npos) return std::nullopt;
    const auto a = operand(text.substr(0, op_at)), b = operand(text.substr(op_at + 1));
    if (!a || !b) return std::nullopt;
    const char op = text[op_at];
    if (op == '-' && *a < *b) return std::nullopt;
    tasks::Problem p;
    p.prompt = std::string(text) + "=";
    const std::int64_t value = op == '+' ? *a + *b : op == '-' ? *a - *b : *a * *b;
    p.answer = std::to_string(value);
    p.reference = p.answer;
    p.category = static_cast<std::int64_t>(std::max(digits(*a), digits(*b)) - options_.min_digits);
    return p;
  }

 private:
  [[nodiscard]] static int digits(std::int64_t v) { return v < 10 ? 1 : 1 + digits(v / 10); }
  [[nodiscard]] std::optional<std::int64_t> operand(std::string_view s) const {
    if (s.empty() || s.size() > static_cast<std::size_t>(options_.max_digits)) return std::nullopt;
    if (s.size() < static_cast<std::size_t>(options_.min_digits)) return std::nullopt;
    if (s.size() > 1 && s.front() == '0') return std::nullopt;
    std::int64_t v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return std::nullopt;
      v = v * 10 + (c - '0');
    }
    return v;
  }
  tasks::ArithmeticOptions options_;
};

struct ChallengerGameOptions {
  std::string challenger_template = "{seed}";  ///< the challenger's prompt; "{seed}" = the seed's text
  OutcomeRewardTable table = challenger_reward_table();  ///< needs "solved", "failed", "invalid"
};

/// The solver/challenger game on an embedded task (see the top of the file): the solver's prompt is the
/// checked problem as tasks::make_prompt prints it; `task.verify` grades each reply (a truncated reply is wrong).
template <ProblemChecker Checker, tasks::VerifiableTask Task, tasks::Tokenizer Tok>
class ChallengerGame {
 public:
  /// Throws kaizen::Error on an empty challenger template or a table without "solved", "failed", "invalid".
  ChallengerGame(const Checker& checker, const Task& task, const Tok& tokenizer, ChallengerGameOptions options = {})
      : checker_(&checker), task_(&task), tokenizer_(&tokenizer), options_(std::move(options)) {
    KAIZEN_CHECK(!options_.challenger_template.empty(),
                 "ChallengerGame: empty challenger template; the challenger role needs a prompt");
    for (const char* name : {"solved", "failed", "invalid"})
      KAIZEN_CHECK(options_.table.entries().count(name) == 1, "ChallengerGame: the reward table has no entry for outcome '",
                   name, "'");
  }

  [[nodiscard]] Prompt proposer_prompt(const Prompt& seed) const {
    Prompt p = seed;
    p.text = detail::fill_template(options_.challenger_template, "{seed}", seed.text);
    p.tokens = tokenizer_->encode(p.text);
    return p;
  }

  /// The checked problem, or nullopt when the challenger's text does not parse / validate (or was truncated).
  [[nodiscard]] std::optional<Prompt> responder_prompt(const Prompt&, const Completion& proposal) const {
    const std::optional<tasks::Problem> p = problem(proposal);
    if (!p) return std::nullopt;
    return tasks::make_prompt(*p, *tokenizer_);
  }

  /// The problem a proposal states, when it is valid.
  [[nodiscard]] std::optional<tasks::Problem> problem(const Completion& proposal) const {
    if (proposal.finish != FinishReason::stop) return std::nullopt;
    return checker_->check(tokenizer_->decode(proposal.tokens));
  }

  [[nodiscard]] GameResult judge(const Prompt&, const Completion&, const Prompt* problem_prompt,
                                 std::span<const Completion> replies) const {
    GameResult out;
    if (problem_prompt == nullptr) {
      out.outcome = "invalid";
      out.proposer_reward = options_.table.at("invalid").proposer;
      return out;
    }
    const tasks::TaskVerifier<Task, Tok> verify{task_, tokenizer_};
    std::int64_t solved = 0;
    for (const Completion& r : replies) {
      const bool right = verify(*problem_prompt, r);
      const RoleRewards rr = options_.table.at(right ? "solved" : "failed");
      out.proposer_reward += rr.proposer / static_cast<double>(replies.size());
      out.responder_rewards.push_back(rr.responder);
      solved += right ? 1 : 0;
    }
    out.outcome = solved == static_cast<std::int64_t>(replies.size()) ? "solved" : solved == 0 ? "failed" : "partly_solved";
    return out;
  }

  [[nodiscard]] const ChallengerGameOptions& options() const noexcept { return options_; }

 private:
  const Checker* checker_;
  const Task* task_;
  const Tok* tokenizer_;
  ChallengerGameOptions options_;
};

// --- the rollout stage ----------------------------------------------------------------------------------------

/// One step's two-role rows, in batch order: the proposer rows, then the responder rows.
struct SelfPlayRollouts {
  std::vector<Rollout> rows;         ///< prompt tokens, completion, reward, group
  std::vector<Role> roles;           ///< the role of each row
  std::vector<Prompt> seeds;         ///< the step's seeds
  std::vector<Completion> proposals; ///< Q per seed, seed-major (dropped games included)
  std::vector<GameResult> games;     ///< one per proposal
  std::vector<ArmId> arms;           ///< the arm of each seed
  std::int64_t valid_proposals = 0;
  std::int64_t dropped_games = 0;
  std::int64_t sampled_tokens = 0;
};

struct SelfPlayRolloutOptions {
  std::int64_t seeds = 8;                  ///< P, > 0
  std::int64_t proposals_per_seed = 2;     ///< Q, >= 1
  std::int64_t replies_per_proposal = 1;   ///< R, >= 1
  std::string_view who = "self_play_rollout";
};

/// Stages 1-4 of a self-play step (top of the file). Engine draws, in order: the source's seed draws, the
/// proposal sampler seed, the reply sampler seed (only when a proposal is valid). Throws kaizen::Error on an
/// empty role prompt (with the seed's index), a judge returning the wrong number of responder rewards or a
/// non-finite reward, and everything the sampler and source reject.
template <Sampler S, TwoRoleGame G, PromptSource Src, class C = NoCurriculum>
[[nodiscard]] SelfPlayRollouts self_play_rollout(S& sampler, G& game, Src& source, const SelfPlayRolloutOptions& o,
                                                 const SamplingParams& params, Rng& rng, C* curriculum = nullptr) {
  const std::string_view who = o.who;
  KAIZEN_CHECK(o.seeds > 0, who, ": seeds per step must be > 0, got ", o.seeds);
  KAIZEN_CHECK(o.proposals_per_seed >= 1 && o.replies_per_proposal >= 1, who,
               ": proposals_per_seed and replies_per_proposal must be >= 1, got ", o.proposals_per_seed, " and ",
               o.replies_per_proposal);
  SelfPlayRollouts out;
  DrawnPrompts drawn = draw_prompts(source, o.seeds, rng, curriculum);
  out.seeds = std::move(drawn.prompts);
  out.arms = std::move(drawn.arms);
  std::vector<Prompt> proposer_prompts;
  for (std::size_t p = 0; p < out.seeds.size(); ++p) {
    proposer_prompts.push_back(game.proposer_prompt(out.seeds[p]));
    KAIZEN_CHECK(!proposer_prompts.back().tokens.empty(), who, ": the game's proposer prompt for seed ", p, " (\"",
                 out.seeds[p].text, "\") is empty; the proposer role needs a prompt");
  }
  out.proposals = sample_groups(sampler, std::span<const Prompt>(proposer_prompts), o.proposals_per_seed, params, rng, who);
  const auto Q = static_cast<std::size_t>(o.proposals_per_seed), R = static_cast<std::size_t>(o.replies_per_proposal);
  std::vector<std::optional<Prompt>> reply_prompts(out.proposals.size());
  std::vector<Prompt> valid;
  for (std::size_t i = 0; i < out.proposals.size(); ++i) {
    out.sampled_tokens += static_cast<std::int64_t>(out.proposals[i].tokens.size());
    reply_prompts[i] = game.responder_prompt(out.seeds[i / Q], out.proposals[i]);
    if (reply_prompts[i]) {
      KAIZEN_CHECK(!reply_prompts[i]->tokens.empty(), who, ": the game's responder prompt for proposal ", i,
                   " is empty; the responder role needs a prompt");
      valid.push_back(*reply_prompts[i]);
    }
  }
  out.valid_proposals = static_cast<std::int64_t>(valid.size());
  std::vector<Completion> replies;
  if (!valid.empty()) replies = sample_groups(sampler, std::span<const Prompt>(valid), o.replies_per_proposal, params, rng, who);
  std::vector<Rollout> responder_rows;
  std::size_t next_reply = 0;
  for (std::size_t i = 0; i < out.proposals.size(); ++i) {
    std::span<const Completion> mine;
    if (reply_prompts[i]) {
      mine = std::span<const Completion>(replies).subspan(next_reply, R);
      next_reply += R;
    }
    GameResult g = game.judge(out.seeds[i / Q], out.proposals[i], reply_prompts[i] ? &*reply_prompts[i] : nullptr, mine);
    if (g.dropped) {
      ++out.dropped_games;
      out.games.push_back(std::move(g));
      continue;
    }
    KAIZEN_CHECK(g.responder_rewards.size() == mine.size(), who, ": the game's judge returned ",
                 g.responder_rewards.size(), " responder rewards for ", mine.size(), " replies (proposal ", i, ")");
    KAIZEN_CHECK(std::isfinite(g.proposer_reward), who, ": the game's judge returned a non-finite proposer reward ",
                 g.proposer_reward, " (proposal ", i, ")");
    out.rows.push_back(Rollout{proposer_prompts[i / Q].tokens, out.proposals[i], g.proposer_reward,
                               static_cast<std::int64_t>(i / Q)});
    out.roles.push_back(Role::proposer);
    for (std::size_t k = 0; k < mine.size(); ++k) {
      KAIZEN_CHECK(std::isfinite(g.responder_rewards[k]), who, ": the game's judge returned a non-finite responder "
                   "reward ", g.responder_rewards[k], " (proposal ", i, ", reply ", k, ")");
      out.sampled_tokens += static_cast<std::int64_t>(mine[k].tokens.size());
      responder_rows.push_back(Rollout{reply_prompts[i]->tokens, mine[k], g.responder_rewards[k],
                                       static_cast<std::int64_t>(out.seeds.size() + i)});
    }
    out.games.push_back(std::move(g));
  }
  for (Rollout& r : responder_rows) {
    out.rows.push_back(std::move(r));
    out.roles.push_back(Role::responder);
  }
  return out;
}

/// REINFORCE++ advantages [B, T] of a two-role batch (step 5 at the top): one whitening over all of its
/// completion tokens. `ref_logprobs` may be undefined when kl_coef = 0.
[[nodiscard]] inline torch::Tensor self_play_advantages(const TokenBatch& batch, const torch::Tensor& old_logprobs,
                                                        const torch::Tensor& ref_logprobs, double gamma = 1.0,
                                                        double kl_coef = 0.0,
                                                        policy_gradient::KlEstimator kl = policy_gradient::KlEstimator::k1) {
  const policy_gradient::ReinforcePP estimator{.gamma = gamma, .kl_coef = kl_coef, .kl_estimator = kl};
  return estimator(policy_gradient::AdvantageInputs{.rewards = batch.rewards.to(old_logprobs.dtype()),
                                                    .group_ids = batch.group_ids,
                                                    .mask = batch.completion_mask,
                                                    .lengths = batch.completion_lengths,
                                                    .old_logprobs = old_logprobs,
                                                    .ref_logprobs = ref_logprobs,
                                                    .group_size = 1});
}

// --- the loop -----------------------------------------------------------------------------------------------

/// REINFORCE++'s policy term: token ratio with PPO's symmetric clip, no KL loss (the KL is in the reward),
/// token-mean over the batch.
using SelfPlayObjective = policy_gradient::Objective<policy_gradient::TokenRatio, policy_gradient::SymmetricClip,
                                                     policy_gradient::NoKl, policy_gradient::TokenMean>;

struct SelfPlayConfig {
  std::int64_t steps = 100;                 ///< the run ends after this many steps (counting resumed ones)
  std::int64_t seeds_per_step = 8;          ///< P, > 0
  std::int64_t proposals_per_seed = 2;      ///< Q, >= 1
  std::int64_t replies_per_proposal = 1;    ///< R, >= 1
  std::int64_t epochs = 1;                  ///< > 0
  std::int64_t minibatch_rows = 0;          ///< rows per update, 0 = the whole batch
  double gamma = 1.0;                       ///< REINFORCE++ discount, [0, 1]
  double kl_coef = 0.0;                     ///< β of the KL in the token rewards (> 0 needs a reference), >= 0
  policy_gradient::KlEstimator kl_estimator = policy_gradient::KlEstimator::k1;
  AdamWConfig optimizer{.learning_rate = 1e-4, .weight_decay = 0.0, .beta1 = 0.9, .beta2 = 0.99};
  double max_grad_norm = 1.0;               ///< <= 0 = no clip
  SamplingParams sampling{};                ///< both roles (its seed is replaced per sampler call)
  std::uint64_t seed = 0;                   ///< the loop's engine
  CollateOptions collate{};                 ///< max_length must hold the longest responder prompt + reply
  std::int64_t checkpoint_every = 0;        ///< > 0: checkpoint every so many steps and at the end
  std::filesystem::path checkpoint_dir;
  std::filesystem::path resume_from;        ///< non-empty: continue from this checkpoint
  std::int64_t stop_after_steps = 0;        ///< > 0: stop (with a checkpoint) once this many steps are done
  std::string name = "self_play";           ///< the metrics' "event" and the prefix of error messages
};

struct SelfPlayResult {
  std::int64_t steps = 0;
  bool stopped = false;                 ///< ended by stop_after_steps
  std::vector<nlohmann::json> history;  ///< the metrics of the steps this call ran
};

namespace detail {

inline void check_config(const SelfPlayConfig& c) {
  const std::string& n = c.name;
  KAIZEN_CHECK(c.steps >= 0, n, ": steps must be >= 0, got ", c.steps);
  KAIZEN_CHECK(c.seeds_per_step > 0, n, ": seeds_per_step must be > 0, got ", c.seeds_per_step);
  KAIZEN_CHECK(c.proposals_per_seed >= 1 && c.replies_per_proposal >= 1, n,
               ": proposals_per_seed and replies_per_proposal must be >= 1, got ", c.proposals_per_seed, " and ",
               c.replies_per_proposal);
  KAIZEN_CHECK(c.epochs > 0, n, ": epochs must be > 0, got ", c.epochs);
  KAIZEN_CHECK(c.minibatch_rows >= 0, n, ": minibatch_rows must be >= 0 (0 = all), got ", c.minibatch_rows);
  KAIZEN_CHECK(c.gamma >= 0.0 && c.gamma <= 1.0, n, ": gamma must be in [0, 1], got ", c.gamma);
  KAIZEN_CHECK(std::isfinite(c.kl_coef) && c.kl_coef >= 0.0, n, ": kl_coef must be finite and >= 0, got ", c.kl_coef);
  KAIZEN_CHECK(c.optimizer.learning_rate > 0.0, n, ": learning_rate must be > 0, got ", c.optimizer.learning_rate);
  KAIZEN_CHECK(c.checkpoint_every >= 0, n, ": checkpoint_every must be >= 0, got ", c.checkpoint_every);
  KAIZEN_CHECK(c.checkpoint_every == 0 || !c.checkpoint_dir.empty(), n, ": checkpoint_every > 0 needs a checkpoint_dir");
  KAIZEN_CHECK(c.stop_after_steps >= 0, n, ": stop_after_steps must be >= 0, got ", c.stop_after_steps);
  KAIZEN_CHECK(c.stop_after_steps == 0 || c.checkpoint_every > 0, n,
               ": stop_after_steps > 0 needs checkpoint_every > 0 (the stop writes a checkpoint)");
  validate(c.sampling);
}

template <class G>
concept StatefulGame = requires(G& g, const nlohmann::json& j) {
  { g.state() } -> std::convertible_to<nlohmann::json>;
  g.restore(j);
};

}  // namespace detail

/// Runs two-role self-play (top of the file) from the current policy (or config.resume_from) until config.steps
/// steps are done. `policy` is trained in place and `sampler` must sample from it. `source(arm, rng)` gives the
/// seeds. `reference`: a frozen reference policy for the KL in the reward (required when kl_coef > 0; saved in
/// the checkpoints). `on_metrics` receives {"event": config.name, "step", "reward_proposer", "reward_responder",
/// "rows_proposer", "rows_responder", "valid_fraction", "dropped_games", "outcomes": {label: count},
/// "advantage_mean_proposer", "advantage_mean_responder", "loss", "kl", "clip_fraction", "entropy", "grad_norm",
/// "updates", "sample_seconds", "train_seconds", "sampled_tokens"} per step.
/// Throws kaizen::Error on a bad config, a missing reference, a checkpoint without the reference or the game
/// state it needs, and everything self_play_rollout, collate and the loss reject.
template <Policy P, Sampler S, TwoRoleGame G, PromptSource Src, class Ratio = policy_gradient::TokenRatio,
          class Clip = policy_gradient::SymmetricClip, class Kl = policy_gradient::NoKl,
          class Aggregate = policy_gradient::TokenMean, class C = NoCurriculum>
SelfPlayResult self_play(P& policy, S& sampler, G& game, Src& source, const SelfPlayConfig& config,
                         const MetricsCallback& on_metrics = {}, P* reference = nullptr,
                         const policy_gradient::Objective<Ratio, Clip, Kl, Aggregate>& objective = {},
                         C* curriculum = nullptr) {
  static_assert(Kl::estimator == policy_gradient::KlEstimator::none,
                "kaizen::loop::self_play: REINFORCE++ puts the KL in the reward (config.kl_coef); pass an objective "
                "without a KL term (policy_gradient::NoKl)");
  using Clock = std::chrono::steady_clock;
  const std::string& who = config.name;
  detail::check_config(config);
  KAIZEN_CHECK(config.kl_coef == 0.0 || reference != nullptr, who, ": kl_coef = ", config.kl_coef,
               " > 0 needs a reference policy");
  const lm::LogitTransform transform = lm::LogitTransform::from(config.sampling);
  const std::vector<torch::Tensor> params = policy.parameters();
  torch::optim::AdamW optimizer = make_adamw(params, config.optimizer);
  LoopState state;
  state.rng.seed(config.seed);
  if (!config.resume_from.empty()) {
    state = load_checkpoint(config.resume_from, policy, optimizer);
    if (reference != nullptr) {
      KAIZEN_CHECK(std::filesystem::exists(config.resume_from / "reference.pt"), who, ": ",
                   (config.resume_from / "reference.pt").string(), " does not exist (the run has a reference)");
      const torch::Device device = params.empty() ? torch::Device(torch::kCPU) : params.front().device();
      restore_snapshot(*reference, load_snapshot(config.resume_from / "reference.pt", device), "self_play");
    }
    if constexpr (detail::StatefulGame<G>) {
      KAIZEN_CHECK(state.extra.contains("game"), who, ": the checkpoint has no game state");
      game.restore(state.extra.at("game"));
    }
    if constexpr (Curriculum<C>) {
      if (curriculum != nullptr) {
        KAIZEN_CHECK(state.extra.contains("curriculum"), who, ": the checkpoint has no curriculum state");
        curriculum->restore(state.extra.at("curriculum"));
      }
    }
  }
  auto save = [&] {
    state.extra = nlohmann::json::object();
    if constexpr (detail::StatefulGame<G>) state.extra["game"] = game.state();
    if constexpr (Curriculum<C>) {
      if (curriculum != nullptr) state.extra["curriculum"] = curriculum->state();
    }
    save_checkpoint(config.checkpoint_dir, policy, optimizer, state);
    if (reference != nullptr) save_snapshot(config.checkpoint_dir / "reference.pt", take_snapshot(*reference));
  };
  const SelfPlayRolloutOptions rollout_options{.seeds = config.seeds_per_step,
                                               .proposals_per_seed = config.proposals_per_seed,
                                               .replies_per_proposal = config.replies_per_proposal,
                                               .who = who};
  SelfPlayResult result;
  while (state.step < config.steps) {
    if (config.stop_after_steps > 0 && state.step >= config.stop_after_steps) {
      save();
      result.stopped = true;
      result.steps = state.step;
      return result;
    }
    const auto t0 = Clock::now();
    const SelfPlayRollouts r = self_play_rollout(sampler, game, source, rollout_options, config.sampling, state.rng, curriculum);
    const auto t1 = Clock::now();
    double reward_sum[2] = {0.0, 0.0};
    std::int64_t rows[2] = {0, 0};
    for (std::size_t i = 0; i < r.rows.size(); ++i) {
      const auto k = static_cast<std::size_t>(r.roles[i]);
      reward_sum[k] += r.rows[i].reward;
      ++rows[k];
    }
    nlohmann::json outcomes = nlohmann::json::object();
    for (const GameResult& g : r.games) outcomes[g.outcome] = outcomes.value(g.outcome, 0) + 1;
    nlohmann::json metrics = {
        {"event", who},
        {"step", state.step + 1},
        {"reward_proposer", rows[0] > 0 ? reward_sum[0] / static_cast<double>(rows[0]) : 0.0},
        {"reward_responder", rows[1] > 0 ? reward_sum[1] / static_cast<double>(rows[1]) : 0.0},
        {"rows_proposer", rows[0]},
        {"rows_responder", rows[1]},
        {"valid_fraction", static_cast<double>(r.valid_proposals) / static_cast<double>(r.proposals.size())},
        {"dropped_games", r.dropped_games},
        {"outcomes", outcomes}};
    std::vector<double> gains(r.seeds.size(), 0.0);
    if (!r.rows.empty()) {
      const TokenBatch batch = collate(std::span<const Rollout>(r.rows), config.collate);
      const torch::Tensor old_logprobs = frozen_logprobs(policy, batch, transform);
      torch::Tensor ref_logprobs;
      if (config.kl_coef > 0.0) ref_logprobs = frozen_logprobs(*reference, batch, transform);
      const torch::Tensor advantages =
          self_play_advantages(batch, old_logprobs, ref_logprobs, config.gamma, config.kl_coef, config.kl_estimator);
      {
        // Mean per-token advantage of each role (diagnostics) and each seed's gain (mean |A| of its proposer rows).
        torch::NoGradGuard no_grad;
        const torch::Tensor m = batch.completion_mask.to(advantages.scalar_type());
        const torch::Tensor per_row = ((advantages * m).sum(1) / m.sum(1).clamp_min(1.0)).to(torch::kDouble).cpu();
        const auto a = per_row.accessor<double, 1>();
        double adv[2] = {0.0, 0.0};
        std::vector<double> count(r.seeds.size(), 0.0);
        for (std::size_t i = 0; i < r.rows.size(); ++i) {
          const auto k = static_cast<std::size_t>(r.roles[i]);
          adv[k] += a[static_cast<std::int64_t>(i)] / static_cast<double>(rows[k]);
          if (r.roles[i] == Role::proposer) {
            const auto s = static_cast<std::size_t>(r.rows[i].group);
            gains[s] += std::abs(a[static_cast<std::int64_t>(i)]);
            count[s] += 1.0;
          }
        }
        for (std::size_t s = 0; s < gains.size(); ++s) gains[s] = count[s] > 0 ? gains[s] / count[s] : 0.0;
        metrics["advantage_mean_proposer"] = adv[0];
        metrics["advantage_mean_responder"] = adv[1];
      }
      policy_gradient_update(policy, optimizer, params, batch, old_logprobs, ref_logprobs,
                             advantages.to(old_logprobs.device(), old_logprobs.scalar_type()), transform, objective,
                             {.group_size = 1, .epochs = config.epochs, .minibatch_groups = config.minibatch_rows,
                              .max_grad_norm = config.max_grad_norm},
                             state.rng)
          .write_to(metrics);
    }
    if constexpr (Curriculum<C>) {
      if (curriculum != nullptr) {
        curriculum->update(std::span<const ArmId>(r.arms), std::span<const double>(gains));
        metrics["curriculum_probabilities"] = curriculum->probabilities();
      }
    }
    ++state.step;
    const auto t2 = Clock::now();
    metrics["sample_seconds"] = std::chrono::duration<double>(t1 - t0).count();
    metrics["train_seconds"] = std::chrono::duration<double>(t2 - t1).count();
    metrics["sampled_tokens"] = r.sampled_tokens;
    if (on_metrics) on_metrics(metrics);
    result.history.push_back(std::move(metrics));
    if (config.checkpoint_every > 0 && (state.step % config.checkpoint_every == 0 || state.step == config.steps)) save();
  }
  result.steps = state.step;
  return result;
}

}  // namespace kaizen::loop
