// Parsing of objective configs (JSON and key=value arguments) and every error path of resolve() / validate().
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <kaizen/objectives/config.hpp>

namespace obj = kaizen::objectives;
namespace pg = kaizen::policy_gradient;
using Catch::Contains;

TEST_CASE("a policy config parses the same from JSON and from key=value arguments", "[objectives][config]") {
  const auto from_json = obj::policy_loss_config_from_json(R"({
      "loss_type": "grpo", "importance_sampling_level": "sequence", "epsilon": 3e-4, "epsilon_high": 4e-4,
      "beta": 0.04, "delta": null, "use_bias_correction_kl": false, "kl_clamp": 10, "max_completion_length": 1024,
      "top_entropy_quantile": 0.2, "off_policy_mask_threshold": 0.5, "vllm_importance_sampling_correction": true,
      "vllm_importance_sampling_mode": "token_truncate", "vllm_importance_sampling_clip_max": 2})");
  const std::vector<std::string> args{"--loss_type=grpo", "importance_sampling_level=sequence", "--epsilon=3e-4",
                                      "epsilon_high=4e-4", "beta=0.04", "delta=none", "use_bias_correction_kl=false",
                                      "kl_clamp=10", "max_completion_length=1024", "top_entropy_quantile=0.2",
                                      "off_policy_mask_threshold=0.5", "vllm_importance_sampling_correction=1",
                                      "vllm_importance_sampling_mode=token_truncate",
                                      "vllm_importance_sampling_clip_max=2"};
  const auto from_args = obj::policy_loss_config_from_args(args);
  for (const auto& c : {from_json, from_args}) {
    CHECK(c.loss_type == "grpo");
    CHECK(c.importance_sampling_level == "sequence");
    CHECK(c.epsilon == 3e-4);
    CHECK(c.epsilon_high == 4e-4);
    CHECK(c.beta == 0.04);
    CHECK(!c.delta);
    CHECK(c.use_bias_correction_kl == false);
    CHECK(c.kl_clamp == 10);
    CHECK(c.max_completion_length == 1024);
    CHECK(c.top_entropy_quantile == 0.2);
    CHECK(c.off_policy_mask_threshold == 0.5);
    CHECK(c.vllm_importance_sampling_correction);
    CHECK(c.vllm_importance_sampling_mode == "token_truncate");
    CHECK(c.vllm_importance_sampling_clip_max == 2);
    // Keys not given keep their defaults.
    CHECK(c.sapo_temperature_neg == 1.05);
    CHECK(c.kl_estimator.empty());
    const auto plan = obj::resolve(c);
    CHECK(plan.describe() == "Objective<SequenceRatio, AsymmetricClip, KlLoss<KlEstimator::k3>, SeqMeanTokenMean>");
    CHECK(plan.kl_clamp == 10);
    CHECK(plan.kl_coefficient == 0.04);
    CHECK(plan.importance.action == pg::ImportanceAction::truncate);
    CHECK(plan.importance.level == pg::ImportanceLevel::token);
    CHECK(plan.importance.cap == 2);
    CHECK(plan.top_entropy_quantile == 0.2);
    CHECK(plan.off_policy_mask_threshold == 0.5);
  }
  // An empty config is TRL's GRPOConfig default: dapo, symmetric 0.2, no KL, token mean; max_completion_length 512.
  CHECK(obj::PolicyLossConfig{}.max_completion_length == 512);
  CHECK(obj::resolve(obj::policy_loss_config_from_json("{}")).describe() ==
        "Objective<TokenRatio, SymmetricClip, NoKl, TokenMean>");
  CHECK(obj::resolve(obj::policy_loss_config_from_args({})).describe() ==
        "Objective<TokenRatio, SymmetricClip, NoKl, TokenMean>");
  CHECK(std::isinf(obj::policy_loss_config_from_args(std::vector<std::string>{"kl_clamp=inf"}).kl_clamp));
}

TEST_CASE("a preference config parses the same from JSON and from key=value arguments", "[objectives][config]") {
  const auto a = obj::preference_loss_config_from_json(
      R"({"loss_type": "simpo", "beta": 2.0, "label_smoothing": 0.1, "simpo_gamma": 0.7})");
  const auto b = obj::preference_loss_config_from_args(
      std::vector<std::string>{"loss_type=simpo", "beta=2", "label_smoothing=0.1", "--simpo_gamma=0.7"});
  for (const auto& c : {a, b}) {
    CHECK(c.loss_type == "simpo");
    CHECK(c.beta == 2.0);
    CHECK(c.label_smoothing == 0.1);
    CHECK(c.simpo_gamma == 0.7);
    CHECK(c.f_divergence_type == "reverse_kl");
    CHECK_NOTHROW(obj::validate(c));
  }
  const auto k = obj::preference_loss_config_from_args(
      std::vector<std::string>{"loss_type=kto", "desirable_weight=1.5", "ipo_length_normalize=true"});
  CHECK(k.desirable_weight == 1.5);
  CHECK(obj::is_unpaired_preference_loss(k.loss_type));
  CHECK(!obj::is_unpaired_preference_loss("sigmoid"));
}

TEST_CASE("malformed configs are refused with the accepted keys or the expected type", "[objectives][config]") {
  CHECK_THROWS_WITH(obj::policy_loss_config_from_json(R"({"loss": "grpo"})"),
                    Contains("unknown policy loss config key `loss`; accepted keys: loss_type, importance_sampling_level"));
  CHECK_THROWS_WITH(obj::policy_loss_config_from_args(std::vector<std::string>{"epsilon_hi=0.3"}),
                    Contains("unknown policy loss config key `epsilon_hi`"));
  CHECK_THROWS_WITH(obj::preference_loss_config_from_json(R"({"rpo_alpha": 1, "alpha": 2})"),
                    Contains("unknown preference loss config key `alpha`; accepted keys: loss_type, beta"));
  CHECK_THROWS_WITH(obj::policy_loss_config_from_json(R"({"beta": "0.04"})"),
                    Contains("expected a number for `beta`, got \"0.04\""));
  CHECK_THROWS_WITH(obj::policy_loss_config_from_args(std::vector<std::string>{"beta=0.04x"}),
                    Contains("expected a number for `beta`, got 0.04x"));
  CHECK_THROWS_WITH(obj::policy_loss_config_from_json(R"({"beta": null})"), Contains("expected a number for `beta`, got null"));
  CHECK_THROWS_WITH(obj::policy_loss_config_from_json(R"({"loss_type": 3})"), Contains("expected a string for `loss_type`, got 3"));
  CHECK_THROWS_WITH(obj::policy_loss_config_from_args(std::vector<std::string>{"use_bias_correction_kl=yes"}),
                    Contains("expected true or false for `use_bias_correction_kl`, got yes"));
  CHECK_THROWS_WITH(obj::policy_loss_config_from_json(R"({"vllm_importance_sampling_correction": 1})"),
                    Contains("expected true or false for `vllm_importance_sampling_correction`, got 1"));
  CHECK_THROWS_WITH(obj::policy_loss_config_from_json(R"({"beta": 0.1)"), Contains("got malformed JSON"));
  CHECK_THROWS_WITH(obj::policy_loss_config_from_json(R"([1, 2])"), Contains("expected a JSON object for the policy loss config"));
  CHECK_THROWS_WITH(obj::policy_loss_config_from_args(std::vector<std::string>{"beta"}),
                    Contains("expected a key=value argument for the policy loss config, got `beta`"));
  CHECK_THROWS_WITH(obj::preference_loss_config_from_json(R"({"loss_type": ["sigmoid", "sft"]})"),
                    Contains("is loss_type=rpo, rpo_alpha=a"));
}

TEST_CASE("meaningless policy configs are refused naming the accepted values", "[objectives][config]") {
  using C = obj::PolicyLossConfig;
  const auto refuses = [](const C& c, const std::string& message) {
    INFO(message);
    CHECK_THROWS_WITH(obj::resolve(c), Contains(message));
  };
  refuses({.loss_type = "ppo"},
          "unknown loss_type `ppo`; accepted: grpo, bnpo, dr_grpo, dapo, luspo, cispo, sapo, vespo, gmpo");
  refuses({.loss_type = "grpo", .importance_sampling_level = "seq"},
          "unknown importance_sampling_level `seq`; accepted: token, sequence");
  refuses({.loss_type = "cispo", .importance_sampling_level = "sequence"}, "cispo weights each token by its own ratio");
  refuses({.loss_type = "sapo", .importance_sampling_level = "sequence"}, "accepts importance_sampling_level = token only");
  refuses({.loss_type = "vespo", .importance_sampling_level = "sequence"}, "vespo weights each token");
  refuses({.loss_type = "luspo", .importance_sampling_level = "token"}, "luspo is defined on the sequence ratio");
  refuses({.loss_type = "gmpo", .importance_sampling_level = "token"}, "gmpo has its own geometric-mean ratio");
  refuses({.loss_type = "dapo", .epsilon = -0.1}, "expected epsilon >= 0, got -0.1");
  refuses({.loss_type = "dapo", .epsilon = 0.3, .epsilon_high = 0.2},
          "expected epsilon_high >= epsilon (clip-higher raises the upper bound), got epsilon = 0.3, epsilon_high = 0.2");
  refuses({.loss_type = "grpo", .delta = 1.1}, "expected delta > 1 + epsilon_high = 1.2");
  refuses({.loss_type = "dapo", .epsilon_high = 0.28, .delta = 1.25}, "expected delta > 1 + epsilon_high = 1.28");
  refuses({.loss_type = "cispo", .delta = 4.0}, "delta caps the unclipped ratio of the clipped losses");
  refuses({.loss_type = "sapo", .delta = 4.0}, "it does not apply to sapo");
  refuses({.loss_type = "cispo", .epsilon_high = 0.28}, "cispo reads epsilon_high as the absolute cap");
  refuses({.loss_type = "cispo", .epsilon = 0.1}, "cispo has no lower bound");
  refuses({.loss_type = "cispo", .cispo_loss_value = "value"}, "unknown cispo_loss_value `value`; accepted: log_prob, weight");
  refuses({.loss_type = "grpo", .cispo_loss_value = "weight"}, "cispo_loss_value applies to cispo only");
  refuses({.loss_type = "sapo", .epsilon = 0.3}, "sapo has no clip; leave epsilon and epsilon_high unset");
  refuses({.loss_type = "vespo", .epsilon_high = 0.3}, "vespo has no clip");
  refuses({.loss_type = "grpo", .sapo_temperature_pos = 2}, "sapo_temperature_pos / _neg apply to sapo only");
  refuses({.loss_type = "sapo", .sapo_temperature_neg = 0}, "expected sapo temperatures > 0");
  refuses({.loss_type = "grpo", .vespo_k_pos = 1}, "vespo_k_* / vespo_lambda_* apply to vespo only");
  refuses({.loss_type = "vespo", .vespo_lambda_pos = 0}, "expected finite vespo_k_* and vespo_lambda_* > 0");
  refuses({.loss_type = "vespo", .beta = 0.1}, "vespo has no KL term in kaizen");
  refuses({.loss_type = "vespo", .entropy_coef = 0.1}, "vespo (vespo_loss) takes no entropy_coef");
  refuses({.loss_type = "grpo", .beta = -0.1}, "expected beta >= 0, got -0.1");
  refuses({.loss_type = "grpo", .beta = 0.1, .kl_estimator = "k4"}, "unknown kl_estimator `k4`; accepted: k1, k2, k3, k3_importance");
  refuses({.loss_type = "grpo", .beta = 0.1, .kl_estimator = "k1", .use_bias_correction_kl = true},
          "use_bias_correction_kl = true contradicts kl_estimator = k1");
  refuses({.loss_type = "grpo", .beta = 0.1, .kl_estimator = "k3_importance", .use_bias_correction_kl = false},
          "use_bias_correction_kl = false contradicts kl_estimator = k3_importance");
  refuses({.loss_type = "grpo", .kl_estimator = "k3"}, "need a KL term; set beta > 0");
  refuses({.loss_type = "grpo", .beta = 0.1, .kl_clamp = 0}, "expected kl_clamp > 0");
  refuses({.loss_type = "grpo", .beta = 0.1, .kl_estimator = "k2", .kl_clamp = 10}, "kl_clamp applies to k3 and k3_importance, not k2");
  refuses({.loss_type = "grpo", .loss_aggregation = "mean"},
          "unknown loss_aggregation `mean`; accepted: token_mean, seq_mean_token_mean, seq_mean_token_sum, "
          "seq_mean_token_sum_norm");
  refuses({.loss_type = "dr_grpo", .max_completion_length = 0}, "expected max_completion_length > 0");
  refuses({.loss_type = "grpo", .dual_clip = 1.0}, "expected the dual-clip constant dual_clip > 1, got 1");
  refuses({.loss_type = "gmpo", .dual_clip = 3.0}, "dual_clip does not apply to gmpo");
  refuses({.loss_type = "cispo", .dual_clip = 3.0}, "dual_clip applies to the clipped losses");
  refuses({.loss_type = "grpo", .top_entropy_quantile = 0}, "expected top_entropy_quantile in (0, 1]");
  refuses({.loss_type = "grpo", .off_policy_mask_threshold = -1}, "expected off_policy_mask_threshold >= 0");
  refuses({.loss_type = "grpo", .vllm_importance_sampling_mode = "token"},
          "unknown vllm_importance_sampling_mode `token`; accepted: token_truncate, token_mask, sequence_truncate, "
          "sequence_mask");
  refuses({.loss_type = "grpo", .vllm_importance_sampling_clip_max = 0}, "expected vllm_importance_sampling_clip_max > 0");
  refuses({.loss_type = "grpo", .epsilon = std::numeric_limits<double>::quiet_NaN()}, "expected a finite `epsilon`");
}

TEST_CASE("meaningless preference configs are refused naming the accepted values", "[objectives][config]") {
  using C = obj::PreferenceLossConfig;
  const auto refuses = [](const C& c, const std::string& message) {
    INFO(message);
    CHECK_THROWS_WITH(obj::validate(c), Contains(message));
  };
  refuses({.loss_type = "dpo"}, "unknown preference loss_type `dpo`; accepted: sigmoid, sigmoid_norm, hinge, ipo");
  refuses({.beta = 0}, "expected beta > 0, got 0");
  refuses({.f_divergence_type = "kl"},
          "unknown f_divergence_type `kl`; accepted: reverse_kl, forward_kl, js_divergence, alpha_divergence");
  refuses({.loss_type = "hinge", .f_divergence_type = "js_divergence"}, "f_divergence_type applies to sigmoid and sigmoid_norm");
  refuses({.f_alpha_divergence_coef = 0.3}, "f_alpha_divergence_coef applies to f_divergence_type = alpha_divergence only");
  refuses({.loss_type = "hinge", .label_smoothing = 0.1}, "label_smoothing applies to sigmoid, robust, exo_pair");
  refuses({.loss_type = "exo_pair"}, "exo_pair reads label_smoothing as its epsilon in (0, 1)");
  refuses({.loss_type = "sigmoid", .discopop_tau = 0.1}, "discopop_tau applies to discopop only");
  refuses({.loss_type = "sigmoid", .simpo_gamma = 1}, "simpo_gamma applies to simpo only");
  refuses({.loss_type = "rpo", .cpo_alpha = 0.5}, "cpo_alpha applies to cpo only");
  refuses({.loss_type = "cpo", .rpo_alpha = 0.5}, "rpo_alpha applies to rpo only");
  refuses({.loss_type = "cpo", .nll_normalisation = "tokens"}, "unknown nll_normalisation `tokens`; accepted: batch_tokens, per_sequence");
  refuses({.loss_type = "sigmoid", .nll_normalisation = "per_sequence"}, "nll_normalisation applies to cpo, rpo and orpo only");
  refuses({.loss_type = "sigmoid", .ipo_length_normalize = false}, "ipo_length_normalize applies to ipo only");
  refuses({.loss_type = "sigmoid", .desirable_weight = 2}, "desirable_weight / undesirable_weight apply to kto and apo_zero_unpaired");
  CHECK_THROWS_WITH(obj::is_unpaired_preference_loss("ktoo"), Contains("unknown preference loss_type `ktoo`"));
}
