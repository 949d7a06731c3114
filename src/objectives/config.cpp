// Names, checks and parsing of kaizen/objectives/config.hpp (torch-free).
#include <kaizen/objectives/config.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include <kaizen/core/error.hpp>

namespace kaizen::objectives {
namespace {

namespace pg = kaizen::policy_gradient;

constexpr std::array<std::string_view, 9> kPolicyLossTypes{"grpo", "bnpo", "dr_grpo", "dapo", "luspo",
                                                           "cispo", "sapo", "vespo", "gmpo"};
constexpr std::array<std::string_view, 20> kPreferenceLossTypes{
    "sigmoid", "sigmoid_norm", "hinge", "ipo", "robust", "exo_pair", "nca_pair", "bco_pair", "sppo_hard", "aot",
    "aot_unpaired", "apo_zero", "apo_down", "discopop", "simpo", "cpo", "rpo", "orpo", "kto", "apo_zero_unpaired"};

/// "a, b, c" for an error message.
template <class Names>
std::string list(const Names& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ", ";
    out += std::string(n);
  }
  return out;
}

template <std::size_t N>
bool one_of(std::string_view value, const std::array<std::string_view, N>& names) {
  return std::find(names.begin(), names.end(), value) != names.end();
}

bool in(std::string_view value, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), value) != names.end();
}

void check_finite(std::string_view key, double value) {
  KAIZEN_CHECK(std::isfinite(value), "objectives: expected a finite `", key, "`, got ", value);
}

// ------------------------------------------------------------------------------------------------------------
// Parsing: one table of keys per config; each key knows how to read a JSON value or a "key=value" string.
// ------------------------------------------------------------------------------------------------------------

struct Value {  // what a key receives: JSON (any type) or the text after '='
  const nlohmann::json* json = nullptr;
  std::string_view text;
};

[[noreturn]] void bad_value(std::string_view key, std::string_view expected, const Value& v) {
  fail("objectives: expected ", expected, " for `", key, "`, got ", v.json ? v.json->dump() : std::string(v.text));
}

bool is_null(const Value& v) {
  return v.json ? v.json->is_null() : (v.text == "none" || v.text == "null" || v.text == "None");
}

double read_double(std::string_view key, const Value& v) {
  if (v.json) {
    if (!v.json->is_number()) bad_value(key, "a number", v);
    return v.json->get<double>();
  }
  const std::string s(v.text);
  if (s == "inf" || s == "+inf" || s == "Infinity") return std::numeric_limits<double>::infinity();
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || errno == ERANGE) bad_value(key, "a number", v);
  return d;
}

bool read_bool(std::string_view key, const Value& v) {
  if (v.json) {
    if (!v.json->is_boolean()) bad_value(key, "true or false", v);
    return v.json->get<bool>();
  }
  if (v.text == "true" || v.text == "True" || v.text == "1") return true;
  if (v.text == "false" || v.text == "False" || v.text == "0") return false;
  bad_value(key, "true or false", v);
}

std::string read_string(std::string_view key, const Value& v) {
  if (v.json) {
    if (v.json->is_array() && key == "loss_type") {
      fail("objectives: expected one `loss_type` name, got the list ", v.json->dump(),
           " (TRL's [\"sigmoid\", \"sft\"] with loss_weights [1, a] is loss_type=rpo, rpo_alpha=a)");
    }
    if (!v.json->is_string()) bad_value(key, "a string", v);
    return v.json->get<std::string>();
  }
  return std::string(v.text);
}

template <class Config>
using Setter = std::function<void(Config&, std::string_view key, const Value&)>;

template <class Config>
struct Key {
  std::string_view name;
  Setter<Config> set;
};

template <class Config>
Key<Config> number(std::string_view name, double Config::*member) {
  return {name, [member](Config& c, std::string_view k, const Value& v) {
            if (is_null(v)) bad_value(k, "a number", v);
            c.*member = read_double(k, v);
          }};
}
template <class Config>
Key<Config> optional_number(std::string_view name, std::optional<double> Config::*member) {
  return {name, [member](Config& c, std::string_view k, const Value& v) {
            if (is_null(v)) c.*member = std::nullopt;
            else c.*member = read_double(k, v);
          }};
}
template <class Config>
Key<Config> text(std::string_view name, std::string Config::*member) {
  return {name, [member](Config& c, std::string_view k, const Value& v) {
            if (is_null(v)) bad_value(k, "a string", v);
            c.*member = read_string(k, v);
          }};
}
template <class Config>
Key<Config> boolean(std::string_view name, bool Config::*member) {
  return {name, [member](Config& c, std::string_view k, const Value& v) {
            if (is_null(v)) bad_value(k, "true or false", v);
            c.*member = read_bool(k, v);
          }};
}
template <class Config>
Key<Config> optional_boolean(std::string_view name, std::optional<bool> Config::*member) {
  return {name, [member](Config& c, std::string_view k, const Value& v) {
            if (is_null(v)) c.*member = std::nullopt;
            else c.*member = read_bool(k, v);
          }};
}

const std::vector<Key<PolicyLossConfig>>& policy_keys() {
  using C = PolicyLossConfig;
  static const std::vector<Key<C>> keys{
      text("loss_type", &C::loss_type),
      text("importance_sampling_level", &C::importance_sampling_level),
      number("epsilon", &C::epsilon),
      optional_number("epsilon_high", &C::epsilon_high),
      number("beta", &C::beta),
      optional_number("delta", &C::delta),
      text("kl_estimator", &C::kl_estimator),
      optional_boolean("use_bias_correction_kl", &C::use_bias_correction_kl),
      number("kl_clamp", &C::kl_clamp),
      text("loss_aggregation", &C::loss_aggregation),
      number("max_completion_length", &C::max_completion_length),
      optional_number("dual_clip", &C::dual_clip),
      number("sapo_temperature_pos", &C::sapo_temperature_pos),
      number("sapo_temperature_neg", &C::sapo_temperature_neg),
      number("vespo_k_pos", &C::vespo_k_pos),
      number("vespo_lambda_pos", &C::vespo_lambda_pos),
      number("vespo_k_neg", &C::vespo_k_neg),
      number("vespo_lambda_neg", &C::vespo_lambda_neg),
      text("cispo_loss_value", &C::cispo_loss_value),
      number("entropy_coef", &C::entropy_coef),
      number("top_entropy_quantile", &C::top_entropy_quantile),
      optional_number("off_policy_mask_threshold", &C::off_policy_mask_threshold),
      boolean("vllm_importance_sampling_correction", &C::vllm_importance_sampling_correction),
      text("vllm_importance_sampling_mode", &C::vllm_importance_sampling_mode),
      number("vllm_importance_sampling_clip_max", &C::vllm_importance_sampling_clip_max),
  };
  return keys;
}

const std::vector<Key<PreferenceLossConfig>>& preference_keys() {
  using C = PreferenceLossConfig;
  static const std::vector<Key<C>> keys{
      text("loss_type", &C::loss_type),
      number("beta", &C::beta),
      number("label_smoothing", &C::label_smoothing),
      text("f_divergence_type", &C::f_divergence_type),
      number("f_alpha_divergence_coef", &C::f_alpha_divergence_coef),
      number("discopop_tau", &C::discopop_tau),
      number("simpo_gamma", &C::simpo_gamma),
      number("cpo_alpha", &C::cpo_alpha),
      number("rpo_alpha", &C::rpo_alpha),
      text("nll_normalisation", &C::nll_normalisation),
      boolean("ipo_length_normalize", &C::ipo_length_normalize),
      number("desirable_weight", &C::desirable_weight),
      number("undesirable_weight", &C::undesirable_weight),
  };
  return keys;
}

template <class Config>
void set_key(Config& config, const std::vector<Key<Config>>& keys, std::string_view what, std::string_view key,
             const Value& value) {
  const auto it = std::find_if(keys.begin(), keys.end(), [&](const Key<Config>& k) { return k.name == key; });
  if (it == keys.end()) {
    std::vector<std::string_view> names;
    for (const auto& k : keys) names.push_back(k.name);
    fail("objectives: unknown ", what, " key `", key, "`; accepted keys: ", list(names));
  }
  it->set(config, key, value);
}

template <class Config>
Config from_json(std::string_view text, const std::vector<Key<Config>>& keys, std::string_view what) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    fail("objectives: expected a JSON object for the ", what, ", got malformed JSON (", e.what(), ")");
  }
  KAIZEN_CHECK(j.is_object(), "objectives: expected a JSON object for the ", what, ", got ", j.dump());
  Config config;
  for (const auto& [key, value] : j.items()) set_key(config, keys, what, key, Value{.json = &value});
  return config;
}

template <class Config>
Config from_args(std::span<const std::string> args, const std::vector<Key<Config>>& keys, std::string_view what) {
  Config config;
  for (const std::string& arg : args) {
    std::string_view a = arg;
    if (a.starts_with("--")) a.remove_prefix(2);
    const auto eq = a.find('=');
    KAIZEN_CHECK(eq != std::string_view::npos && eq > 0, "objectives: expected a key=value argument for the ", what,
                 ", got `", arg, "`");
    set_key(config, keys, what, a.substr(0, eq), Value{.text = a.substr(eq + 1)});
  }
  return config;
}

}  // namespace

std::span<const std::string_view> policy_loss_types() { return kPolicyLossTypes; }
std::span<const std::string_view> preference_loss_types() { return kPreferenceLossTypes; }

PolicyLossConfig policy_loss_config_from_json(std::string_view json) {
  return from_json(json, policy_keys(), "policy loss config");
}
PolicyLossConfig policy_loss_config_from_args(std::span<const std::string> args) {
  return from_args(args, policy_keys(), "policy loss config");
}
PreferenceLossConfig preference_loss_config_from_json(std::string_view json) {
  return from_json(json, preference_keys(), "preference loss config");
}
PreferenceLossConfig preference_loss_config_from_args(std::span<const std::string> args) {
  return from_args(args, preference_keys(), "preference loss config");
}

// ------------------------------------------------------------------------------------------------------------
// Policy gradient: config → plan.
// ------------------------------------------------------------------------------------------------------------

PolicyObjectivePlan resolve(const PolicyLossConfig& c) {
  constexpr std::string_view fn = "objectives::resolve";
  const std::string& type = c.loss_type;
  KAIZEN_CHECK(one_of(type, kPolicyLossTypes), fn, ": unknown loss_type `", type, "`; accepted: ",
               list(kPolicyLossTypes));
  const PolicyLossConfig defaults{};
  PolicyObjectivePlan p;

  // --- ratio level ------------------------------------------------------------------------------------------
  const std::string& level = c.importance_sampling_level;
  KAIZEN_CHECK(level.empty() || level == "token" || level == "sequence", fn, ": unknown importance_sampling_level `",
               level, "`; accepted: token, sequence");
  if (type == "gmpo") {
    KAIZEN_CHECK(level.empty(), fn, ": gmpo has its own geometric-mean ratio; leave importance_sampling_level unset (got `",
                 level, "`)");
    p.ratio = pg::RatioLevel::geometric;
  } else if (type == "luspo") {
    KAIZEN_CHECK(level.empty() || level == "sequence", fn,
                 ": luspo is defined on the sequence ratio (importance_sampling_level = sequence), got `", level, "`");
    p.ratio = pg::RatioLevel::sequence;
  } else if (in(type, {"cispo", "sapo", "vespo"})) {
    KAIZEN_CHECK(level.empty() || level == "token", fn, ": ", type,
                 " weights each token by its own ratio (vespo: computes its sequence weight itself); it accepts "
                 "importance_sampling_level = token only, got `", level, "`");
    p.ratio = pg::RatioLevel::token;
  } else {
    p.ratio = level == "sequence" ? pg::RatioLevel::sequence : pg::RatioLevel::token;
  }

  // --- clip -------------------------------------------------------------------------------------------------
  check_finite("epsilon", c.epsilon);
  KAIZEN_CHECK(c.epsilon >= 0, fn, ": expected epsilon >= 0, got ", c.epsilon);
  const bool ppo_clip = in(type, {"grpo", "bnpo", "dr_grpo", "dapo", "luspo", "gmpo"});
  if (c.epsilon_high) check_finite("epsilon_high", *c.epsilon_high);
  if (type == "cispo") {
    const double cap = c.epsilon_high.value_or(5.0);
    KAIZEN_CHECK(cap >= 1, fn, ": cispo reads epsilon_high as the absolute cap of the weight min(r, epsilon_high) "
                 "(TRL, Liger; ScaleRL uses 5); expected >= 1, got ", cap);
    KAIZEN_CHECK(c.cispo_loss_value == "log_prob" || c.cispo_loss_value == "weight", fn,
                 ": unknown cispo_loss_value `", c.cispo_loss_value, "`; accepted: log_prob, weight");
    const auto clip = pg::cispo_cap(cap, c.cispo_loss_value == "log_prob" ? pg::CispoLossValue::log_prob
                                                                           : pg::CispoLossValue::weight);
    p.clip = pg::ClipMode::cispo;
    p.epsilon_low = clip.epsilon_low;
    p.epsilon_high = clip.epsilon_high;
    p.cispo_value = clip.value;
    KAIZEN_CHECK(c.epsilon == defaults.epsilon, fn,
                 ": cispo has no lower bound (weight min(r, epsilon_high)); leave epsilon at its default, got ", c.epsilon);
  } else {
    KAIZEN_CHECK(c.cispo_loss_value == defaults.cispo_loss_value, fn, ": cispo_loss_value applies to cispo only, got `",
                 c.cispo_loss_value, "` with loss_type ", type);
  }
  if (ppo_clip) {
    const double high = c.epsilon_high.value_or(c.epsilon);
    KAIZEN_CHECK(high >= c.epsilon, fn, ": expected epsilon_high >= epsilon (clip-higher raises the upper bound), got "
                 "epsilon = ", c.epsilon, ", epsilon_high = ", high);
    p.epsilon_low = c.epsilon;
    p.epsilon_high = high;
    if (c.dual_clip) {
      KAIZEN_CHECK(type != "gmpo", fn, ": dual_clip does not apply to gmpo (its clip acts on log-ratios)");
      check_finite("dual_clip", *c.dual_clip);
      KAIZEN_CHECK(*c.dual_clip > 1, fn, ": expected the dual-clip constant dual_clip > 1, got ", *c.dual_clip);
      p.clip = pg::ClipMode::dual;
      p.dual_clip_c = *c.dual_clip;
    } else {
      p.clip = high == c.epsilon ? pg::ClipMode::symmetric : pg::ClipMode::asymmetric;
    }
  } else {
    KAIZEN_CHECK(!c.dual_clip, fn, ": dual_clip applies to the clipped losses (grpo, bnpo, dr_grpo, dapo, luspo), not ",
                 type);
  }
  if (type == "sapo") {
    check_finite("sapo_temperature_pos", c.sapo_temperature_pos);
    check_finite("sapo_temperature_neg", c.sapo_temperature_neg);
    KAIZEN_CHECK(c.sapo_temperature_pos > 0 && c.sapo_temperature_neg > 0, fn,
                 ": expected sapo temperatures > 0, got sapo_temperature_pos = ", c.sapo_temperature_pos,
                 ", sapo_temperature_neg = ", c.sapo_temperature_neg);
    p.clip = pg::ClipMode::sapo;
    p.tau_positive = c.sapo_temperature_pos;
    p.tau_negative = c.sapo_temperature_neg;
  } else {
    KAIZEN_CHECK(c.sapo_temperature_pos == defaults.sapo_temperature_pos &&
                     c.sapo_temperature_neg == defaults.sapo_temperature_neg,
                 fn, ": sapo_temperature_pos / _neg apply to sapo only (loss_type ", type, ")");
  }
  if (in(type, {"sapo", "vespo"})) {
    KAIZEN_CHECK(c.epsilon == defaults.epsilon && !c.epsilon_high, fn, ": ", type,
                 " has no clip; leave epsilon and epsilon_high unset (got epsilon = ", c.epsilon, ", epsilon_high = ",
                 c.epsilon_high ? std::to_string(*c.epsilon_high) : std::string("unset"), ")");
  }
  const bool vespo_keys_default = c.vespo_k_pos == defaults.vespo_k_pos && c.vespo_lambda_pos == defaults.vespo_lambda_pos &&
                                  c.vespo_k_neg == defaults.vespo_k_neg && c.vespo_lambda_neg == defaults.vespo_lambda_neg;
  if (type == "vespo") {
    p.vespo = true;
    p.vespo_k_positive = c.vespo_k_pos;
    p.vespo_lambda_positive = c.vespo_lambda_pos;
    p.vespo_k_negative = c.vespo_k_neg;
    p.vespo_lambda_negative = c.vespo_lambda_neg;
    KAIZEN_CHECK(std::isfinite(c.vespo_k_pos) && std::isfinite(c.vespo_k_neg) && c.vespo_lambda_pos > 0 &&
                     c.vespo_lambda_neg > 0 && std::isfinite(c.vespo_lambda_pos) && std::isfinite(c.vespo_lambda_neg),
                 fn, ": expected finite vespo_k_* and vespo_lambda_* > 0, got k_pos = ", c.vespo_k_pos, ", lambda_pos = ",
                 c.vespo_lambda_pos, ", k_neg = ", c.vespo_k_neg, ", lambda_neg = ", c.vespo_lambda_neg);
  } else {
    KAIZEN_CHECK(vespo_keys_default, fn, ": vespo_k_* / vespo_lambda_* apply to vespo only (loss_type ", type, ")");
  }

  // --- delta (two-sided clip) ---------------------------------------------------------------------------------
  if (c.delta) {
    KAIZEN_CHECK(in(type, {"grpo", "bnpo", "dr_grpo", "dapo", "luspo"}), fn,
                 ": delta caps the unclipped ratio of the clipped losses (grpo, bnpo, dr_grpo, dapo, luspo); it does not "
                 "apply to ", type);
    check_finite("delta", *c.delta);
    KAIZEN_CHECK(*c.delta > 1 + p.epsilon_high, fn, ": expected delta > 1 + epsilon_high = ", 1 + p.epsilon_high,
                 " (a smaller cap cuts into the clip range), got ", *c.delta);
    p.ratio_cap = *c.delta;
  }

  // --- KL -----------------------------------------------------------------------------------------------------
  check_finite("beta", c.beta);
  KAIZEN_CHECK(c.beta >= 0, fn, ": expected beta >= 0, got ", c.beta);
  const std::string& est = c.kl_estimator;
  KAIZEN_CHECK(est.empty() || in(est, {"k1", "k2", "k3", "k3_importance"}), fn, ": unknown kl_estimator `", est,
               "`; accepted: k1, k2, k3, k3_importance");
  if (c.use_bias_correction_kl && !est.empty()) {
    const bool importance = est == "k3_importance";
    KAIZEN_CHECK(*c.use_bias_correction_kl == importance, fn, ": use_bias_correction_kl = ",
                 *c.use_bias_correction_kl ? "true" : "false", " contradicts kl_estimator = ", est,
                 " (use_bias_correction_kl = true is kl_estimator = k3_importance)");
  }
  KAIZEN_CHECK(c.kl_clamp > 0, fn, ": expected kl_clamp > 0 (+inf: none), got ", c.kl_clamp);
  if (c.beta > 0) {
    KAIZEN_CHECK(type != "vespo", fn, ": vespo has no KL term in kaizen (vespo_loss); expected beta = 0, got ", c.beta);
    p.kl = est == "k1"   ? pg::KlEstimator::k1
           : est == "k2" ? pg::KlEstimator::k2
           : est == "k3" ? pg::KlEstimator::k3
           : est == "k3_importance" || c.use_bias_correction_kl.value_or(true) ? pg::KlEstimator::k3_importance
                                                                               : pg::KlEstimator::k3;
    p.kl_coefficient = c.beta;
    KAIZEN_CHECK(std::isinf(c.kl_clamp) || p.kl == pg::KlEstimator::k3 || p.kl == pg::KlEstimator::k3_importance, fn,
                 ": kl_clamp applies to k3 and k3_importance, not ", est);
    p.kl_clamp = c.kl_clamp;
  } else {
    KAIZEN_CHECK(est.empty() && !c.use_bias_correction_kl && std::isinf(c.kl_clamp), fn,
                 ": kl_estimator, use_bias_correction_kl and kl_clamp need a KL term; set beta > 0 (got beta = 0)");
    p.kl = pg::KlEstimator::none;
  }

  // --- aggregation --------------------------------------------------------------------------------------------
  const std::string agg = !c.loss_aggregation.empty()           ? c.loss_aggregation
                          : in(type, {"grpo", "sapo", "gmpo"})  ? "seq_mean_token_mean"
                          : type == "dr_grpo"                   ? "seq_mean_token_sum_norm"
                          : type == "luspo"                     ? "seq_mean_token_sum"
                                                                : "token_mean";
  KAIZEN_CHECK(in(agg, {"token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm"}), fn,
               ": unknown loss_aggregation `", agg,
               "`; accepted: token_mean, seq_mean_token_mean, seq_mean_token_sum, seq_mean_token_sum_norm");
  p.aggregation = agg == "token_mean"            ? pg::AggregationMode::token_mean
                  : agg == "seq_mean_token_mean" ? pg::AggregationMode::seq_mean_token_mean
                  : agg == "seq_mean_token_sum"  ? pg::AggregationMode::seq_mean_token_sum
                                                 : pg::AggregationMode::seq_mean_token_sum_norm;
  if (p.aggregation == pg::AggregationMode::seq_mean_token_sum_norm) {
    KAIZEN_CHECK(c.max_completion_length > 0 && std::isfinite(c.max_completion_length), fn,
                 ": expected max_completion_length > 0 (the constant of seq_mean_token_sum_norm), got ",
                 c.max_completion_length);
  }
  p.aggregation_constant = c.max_completion_length;

  // --- entropy, token masks, truncated importance sampling ----------------------------------------------------
  check_finite("entropy_coef", c.entropy_coef);
  p.entropy_coefficient = c.entropy_coef;
  KAIZEN_CHECK(c.top_entropy_quantile > 0 && c.top_entropy_quantile <= 1, fn,
               ": expected top_entropy_quantile in (0, 1] (1: off), got ", c.top_entropy_quantile);
  p.top_entropy_quantile = c.top_entropy_quantile;
  if (c.off_policy_mask_threshold) {
    KAIZEN_CHECK(*c.off_policy_mask_threshold >= 0 && std::isfinite(*c.off_policy_mask_threshold), fn,
                 ": expected off_policy_mask_threshold >= 0, got ", *c.off_policy_mask_threshold);
  }
  p.off_policy_mask_threshold = c.off_policy_mask_threshold;
  const std::string& mode = c.vllm_importance_sampling_mode;
  KAIZEN_CHECK(in(mode, {"token_truncate", "token_mask", "sequence_truncate", "sequence_mask"}), fn,
               ": unknown vllm_importance_sampling_mode `", mode,
               "`; accepted: token_truncate, token_mask, sequence_truncate, sequence_mask");
  KAIZEN_CHECK(c.vllm_importance_sampling_clip_max > 0, fn, ": expected vllm_importance_sampling_clip_max > 0, got ",
               c.vllm_importance_sampling_clip_max);
  if (c.vllm_importance_sampling_correction) {
    p.importance.action = mode.ends_with("truncate") ? pg::ImportanceAction::truncate : pg::ImportanceAction::mask;
    p.importance.level = mode.starts_with("token") ? pg::ImportanceLevel::token : pg::ImportanceLevel::sequence;
    p.importance.cap = c.vllm_importance_sampling_clip_max;
  }
  if (p.vespo) {
    KAIZEN_CHECK(c.entropy_coef == 0 && c.top_entropy_quantile == 1 && !c.off_policy_mask_threshold &&
                     !c.vllm_importance_sampling_correction,
                 fn, ": vespo (vespo_loss) takes no entropy_coef, top_entropy_quantile, off_policy_mask_threshold or "
                 "vllm_importance_sampling_correction in kaizen");
  }
  return p;
}

std::string PolicyObjectivePlan::describe() const {
  std::ostringstream out;
  const char* agg = aggregation == pg::AggregationMode::token_mean            ? "TokenMean"
                    : aggregation == pg::AggregationMode::seq_mean_token_mean ? "SeqMeanTokenMean"
                    : aggregation == pg::AggregationMode::seq_mean_token_sum  ? "SeqMeanTokenSum"
                                                                              : "SeqMeanTokenSumNorm";
  if (vespo) {
    out << "vespo_loss<" << agg << ">";
    return out.str();
  }
  const char* r = ratio == pg::RatioLevel::token ? "TokenRatio" : ratio == pg::RatioLevel::sequence ? "SequenceRatio"
                                                                                                     : "GeometricRatio";
  const char* cl = clip == pg::ClipMode::none         ? "NoClip"
                   : clip == pg::ClipMode::symmetric  ? "SymmetricClip"
                   : clip == pg::ClipMode::asymmetric ? "AsymmetricClip"
                   : clip == pg::ClipMode::dual       ? "DualClip"
                   : clip == pg::ClipMode::cispo      ? "CispoClip"
                                                      : "SapoGate";
  const char* k = kl == pg::KlEstimator::none ? "NoKl"
                  : kl == pg::KlEstimator::k1 ? "KlLoss<KlEstimator::k1>"
                  : kl == pg::KlEstimator::k2 ? "KlLoss<KlEstimator::k2>"
                  : kl == pg::KlEstimator::k3 ? "KlLoss<KlEstimator::k3>"
                                              : "KlLoss<KlEstimator::k3_importance>";
  out << "Objective<" << r << ", " << cl << ", " << k << ", " << agg << ">";
  return out.str();
}

// ------------------------------------------------------------------------------------------------------------
// Preference: checks of the names and of keys the chosen loss does not read.
// ------------------------------------------------------------------------------------------------------------

bool is_unpaired_preference_loss(std::string_view loss_type) {
  KAIZEN_CHECK(one_of(loss_type, kPreferenceLossTypes), "objectives: unknown preference loss_type `", loss_type,
               "`; accepted: ", list(kPreferenceLossTypes));
  return loss_type == "kto" || loss_type == "apo_zero_unpaired";
}

void validate(const PreferenceLossConfig& c) {
  constexpr std::string_view fn = "objectives::validate";
  const std::string& t = c.loss_type;
  (void)is_unpaired_preference_loss(t);
  const PreferenceLossConfig d{};
  check_finite("beta", c.beta);
  KAIZEN_CHECK(c.beta > 0, fn, ": expected beta > 0, got ", c.beta);
  KAIZEN_CHECK(in(c.f_divergence_type, {"reverse_kl", "forward_kl", "js_divergence", "alpha_divergence"}), fn,
               ": unknown f_divergence_type `", c.f_divergence_type,
               "`; accepted: reverse_kl, forward_kl, js_divergence, alpha_divergence");
  KAIZEN_CHECK(c.f_divergence_type == d.f_divergence_type || in(t, {"sigmoid", "sigmoid_norm"}), fn,
               ": f_divergence_type applies to sigmoid and sigmoid_norm in kaizen, got ", c.f_divergence_type,
               " with loss_type ", t);
  KAIZEN_CHECK(c.f_alpha_divergence_coef == d.f_alpha_divergence_coef || c.f_divergence_type == "alpha_divergence", fn,
               ": f_alpha_divergence_coef applies to f_divergence_type = alpha_divergence only");
  KAIZEN_CHECK(c.label_smoothing == d.label_smoothing ||
                   in(t, {"sigmoid", "robust", "exo_pair", "aot", "aot_unpaired", "simpo"}),
               fn, ": label_smoothing applies to sigmoid, robust, exo_pair, aot, aot_unpaired and simpo, got ",
               c.label_smoothing, " with loss_type ", t);
  if (t == "exo_pair") {
    KAIZEN_CHECK(c.label_smoothing > 0 && c.label_smoothing < 1, fn,
                 ": exo_pair reads label_smoothing as its epsilon in (0, 1) (the paper uses 1e-3), got ", c.label_smoothing);
  }
  KAIZEN_CHECK(c.discopop_tau == d.discopop_tau || t == "discopop", fn, ": discopop_tau applies to discopop only");
  KAIZEN_CHECK(c.simpo_gamma == d.simpo_gamma || t == "simpo", fn, ": simpo_gamma applies to simpo only");
  KAIZEN_CHECK(c.cpo_alpha == d.cpo_alpha || t == "cpo", fn, ": cpo_alpha applies to cpo only");
  KAIZEN_CHECK(c.rpo_alpha == d.rpo_alpha || t == "rpo", fn, ": rpo_alpha applies to rpo only");
  KAIZEN_CHECK(in(c.nll_normalisation, {"batch_tokens", "per_sequence"}), fn, ": unknown nll_normalisation `",
               c.nll_normalisation, "`; accepted: batch_tokens, per_sequence");
  KAIZEN_CHECK(c.nll_normalisation == d.nll_normalisation || in(t, {"cpo", "rpo", "orpo"}), fn,
               ": nll_normalisation applies to cpo, rpo and orpo only");
  KAIZEN_CHECK(c.ipo_length_normalize == d.ipo_length_normalize || t == "ipo", fn,
               ": ipo_length_normalize applies to ipo only");
  KAIZEN_CHECK((c.desirable_weight == d.desirable_weight && c.undesirable_weight == d.undesirable_weight) ||
                   is_unpaired_preference_loss(t),
               fn, ": desirable_weight / undesirable_weight apply to kto and apo_zero_unpaired only");
}

}  // namespace kaizen::objectives
