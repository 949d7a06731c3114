// kaizen/models/lora.hpp - low-rank adapters (LoRA) on the linear projections of an lm::LlamaModel,
// trained while the base stays frozen, and saved / loaded in PEFT's format.
//
// Rule (Hu et al. 2021): a targeted projection y = W x + b becomes
//   y = W x + b + s · B (A dropout(x)),   A [r, in], B [out, r],   s = α / r   (α / √r with use_rslora)
// A starts Kaiming-uniform (U(−1/√in, 1/√in), as PEFT's default), B starts at zero, so the adapted model
// equals the base until the first update. Only A and B are trained: LoraModel freezes every base parameter
// (requires_grad false) and its parameters() lists the adapters alone, so an optimiser built on it (every
// kaizen loop builds one from policy.parameters()) can change nothing else.
// Dropout (probability lora_dropout) acts on the adapter's input only in training mode with gradient
// recording on; without gradient (sampling, frozen log-probs) the adapted model is deterministic.
//
// Targets: the names PEFT uses for a Llama model, matched as PEFT does (a module path equal to the entry or
// ending with "." + entry): "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
// full paths such as "model.layers.3.self_attn.q_proj", or "all-linear" (every projection of the decoder
// layers; the output head is never adapted, as in PEFT). layers_to_transform restricts them to some layers.
// Each entry must match a projection: a misspelt name is an error, never an adapter-less run.
//
// Merge: W ← W + s · B A for every adapter (computed in float64, rounded once to W's dtype); unmerge()
// subtracts the same rounded product (from A and B as they were at merge time), which restores W to within
// one rounding of W + ΔW (≤ 1 ulp of W + ΔW; often bit-equal). While merged the forward adds nothing;
// a forward with adapters off, or with gradient into A and B, is then refused (unmerge() first).
//
// The frozen base for free: disable_adapters() (a scope guard) or reference() (a kaizen::HiddenStatePolicy
// view) runs the same module with the adapters off, so the reference log-probs of a KL term or of an
// estimator cost no second model. Decoding (LlamaSampler, the fused q/k/v and gate/up GEMMs of
// detail::FusedRows) adds the adapters' updates too, so sampling with adapters equals sampling the merged
// model up to rounding.
//
// PEFT files (save / load; peft's PeftModel.from_pretrained loads them onto the transformers model
// written by models::save_pretrained):
//   adapter_model.safetensors: base_model.model.model.layers.{i}.{self_attn|mlp}.{name}.lora_A.weight [r, in]
//                              and ...lora_B.weight [out, r], float32 or bfloat16, metadata {"format": "pt"}
//   adapter_config.json: {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r", "lora_alpha", "lora_dropout",
//                         "target_modules", "layers_to_transform", "use_rslora", "bias": "none",
//                         "fan_in_fan_out": false, "base_model_name_or_path", ...}
// Loading refuses (kaizen::Error naming the file and key or tensor): another peft_type, bias other than
// "none", fan_in_fan_out, DoRA, modules_to_save, rank/alpha patterns, layer replication, a regex
// target_modules, a missing, unexpected or wrongly shaped tensor.
//
// Usage:
//   kaizen::lm::LlamaModel base(config);                 // or models::from_pretrained(...)
//   kaizen::lm::LoraModel policy(base, {.r = 8, .lora_alpha = 16, .target_modules = {"all-linear"}});
//   kaizen::lm::LlamaSampler sampler(base, pad_id);      // samples with the adapters
//   auto reference = policy.reference();                 // the frozen base, same module
//   kaizen::loop::grpo(policy, sampler, reward, source, objective, config, {}, &reference);
//   policy.save("out/adapter");                          // PEFT files
//
// Limits: gradient checkpointing of the decoder layers (LlamaConfig::gradient_checkpointing) is refused
// with adapters until the checkpointed layer lists the adapter tensors among its parameters; the base
// must be on its final device and dtype before the adapters are attached (Module::to does not move them).
//
// References: Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models" (arXiv 2106.09685);
// Kalajdzievski 2023, "A Rank Stabilization Scaling Factor for Fine-Tuning with LoRA" (arXiv 2312.03732);
// the PEFT library's adapter file layout (adapter_config.json, adapter_model.safetensors).
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/token_batch.hpp>
#include <kaizen/io/safetensors.hpp>
#include <kaizen/models/llama.hpp>

namespace kaizen::lm {

/// The projections LoRA can target, in PEFT's names (module order within a decoder layer).
inline constexpr std::array<std::string_view, 7> kLoraProjections{"q_proj", "k_proj",  "v_proj",   "o_proj",
                                                                  "gate_proj", "up_proj", "down_proj"};

/// The adapter hyper-parameters, named as in PEFT's LoraConfig.
struct LoraConfig {
  std::int64_t r = 8;                                        ///< rank, > 0
  double lora_alpha = 8.0;                                   ///< α: the update is scaled by α / r, > 0
  double lora_dropout = 0.0;                                 ///< dropout on the adapter input, in [0, 1)
  std::vector<std::string> target_modules{"q_proj", "v_proj"};  ///< names, paths or {"all-linear"}
  std::vector<std::int64_t> layers_to_transform;             ///< decoder layers to adapt; empty = all
  bool use_rslora = false;                                   ///< scale α / √r instead of α / r
  std::string base_model_name_or_path;                       ///< written to adapter_config.json (may be empty)
  std::uint64_t seed = 0;                                    ///< seeds A's initialisation

  /// s = α / r, or α / √r with use_rslora.
  [[nodiscard]] double scale() const {
    return use_rslora ? lora_alpha / std::sqrt(static_cast<double>(r)) : lora_alpha / static_cast<double>(r);
  }

  /// Throws kaizen::Error naming the field unless the values are usable (targets are checked against a model
  /// by LoraModel).
  void validate() const {
    KAIZEN_CHECK(r > 0, "LoraConfig: r (the rank) must be > 0, got ", r);
    KAIZEN_CHECK(std::isfinite(lora_alpha) && lora_alpha > 0.0, "LoraConfig: lora_alpha must be finite and > 0, got ",
                 lora_alpha);
    KAIZEN_CHECK(lora_dropout >= 0.0 && lora_dropout < 1.0, "LoraConfig: lora_dropout must lie in [0, 1), got ",
                 lora_dropout);
    KAIZEN_CHECK(!target_modules.empty(), "LoraConfig: target_modules is empty (give names such as \"q_proj\", "
                 "\"v_proj\", or \"all-linear\")");
    for (const std::string& t : target_modules) {
      KAIZEN_CHECK(t != "all-linear" || target_modules.size() == 1,
                   "LoraConfig: \"all-linear\" must be the only entry of target_modules, got ", target_modules.size(),
                   " entries");
    }
  }
};

namespace detail {

/// One projection of a LlamaModel that LoRA may adapt.
struct LoraSite {
  std::string path;    ///< model.layers.{i}.{self_attn|mlp}.{name}
  std::string name;    ///< q_proj, ...
  std::int64_t layer;  ///< decoder layer index
  torch::nn::Linear linear;
  std::shared_ptr<LowRankAdapter>* slot;
};

/// Every projection of `m` in module order (layer by layer; q, k, v, o, gate, up, down).
[[nodiscard]] inline std::vector<LoraSite> lora_sites(LlamaModel& m) {
  std::vector<LoraSite> out;
  for (std::size_t l = 0; l < m.model->layers->size(); ++l) {
    auto layer = m.model->layers->ptr<DecoderLayerImpl>(l);
    const std::string prefix = "model.layers." + std::to_string(l) + ".";
    auto& a = layer->self_attn;
    auto& f = layer->mlp;
    const auto li = static_cast<std::int64_t>(l);
    out.push_back({prefix + "self_attn.q_proj", "q_proj", li, a->q_proj, &a->adapters.q_proj});
    out.push_back({prefix + "self_attn.k_proj", "k_proj", li, a->k_proj, &a->adapters.k_proj});
    out.push_back({prefix + "self_attn.v_proj", "v_proj", li, a->v_proj, &a->adapters.v_proj});
    out.push_back({prefix + "self_attn.o_proj", "o_proj", li, a->o_proj, &a->adapters.o_proj});
    out.push_back({prefix + "mlp.gate_proj", "gate_proj", li, f->gate_proj, &f->adapters.gate_proj});
    out.push_back({prefix + "mlp.up_proj", "up_proj", li, f->up_proj, &f->adapters.up_proj});
    out.push_back({prefix + "mlp.down_proj", "down_proj", li, f->down_proj, &f->adapters.down_proj});
  }
  return out;
}

/// Whether target entry `e` names the module at `path` (PEFT's rule: equal, or `path` ends with "." + e).
[[nodiscard]] inline bool lora_matches(std::string_view path, std::string_view e) {
  if (e == "all-linear") return true;
  return path == e || (path.size() > e.size() && path.ends_with(e) && path[path.size() - e.size() - 1] == '.');
}

[[nodiscard]] inline std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

inline void write_text(const std::filesystem::path& path, const std::string& text, std::string_view who) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail(who, ": cannot open '", path.string(), "' for writing");
  out << text;
  out.flush();
  if (!out) fail(who, ": writing '", path.string(), "' failed");
}

}  // namespace detail

class LoraModel;

/// The frozen base of a LoraModel as a kaizen::HiddenStatePolicy: every call runs the same module with
/// the adapters off (the reference policy at no extra memory). Valid while the LoraModel lives.
class LoraReference {
 public:
  explicit LoraReference(LoraModel& lora) : lora_(&lora) {}
  [[nodiscard]] torch::Tensor hidden_states(const TokenBatch& batch);
  [[nodiscard]] torch::Tensor logits(const TokenBatch& batch);
  [[nodiscard]] torch::Tensor output_embedding();
  /// The base's parameters (frozen).
  [[nodiscard]] std::vector<torch::Tensor> parameters();

 private:
  LoraModel* lora_;
};

/// Low-rank adapters attached to a LlamaModel (held by reference: it must outlive this object). Models
/// kaizen::Policy and kaizen::HiddenStatePolicy with the adapters as its only parameters.
/// Destroying it detaches the adapters and restores the base parameters' requires_grad flags; the base
/// weights keep a merge that was not undone (merge() then destruction = PEFT's merge_and_unload).
class LoraModel {
 public:
  /// Attaches fresh adapters (A Kaiming-uniform from config.seed, B = 0) to the targeted projections of
  /// `base` and freezes every base parameter. Throws kaizen::Error on an invalid config, a target entry that
  /// matches no projection, a layer index out of range, or a projection that already has an adapter.
  LoraModel(LlamaModel& base, LoraConfig config) : base_(&base), config_(std::move(config)) {
    config_.validate();
    const std::int64_t L = base.config().num_hidden_layers;
    for (const std::int64_t l : config_.layers_to_transform)
      KAIZEN_CHECK(l >= 0 && l < L, "LoraModel: layers_to_transform holds ", l, ", outside the model's layers [0, ", L,
                   ")");
    std::vector<detail::LoraSite> sites = detail::lora_sites(base);
    auto wanted_layer = [&](std::int64_t l) {
      if (config_.layers_to_transform.empty()) return true;
      for (const std::int64_t x : config_.layers_to_transform)
        if (x == l) return true;
      return false;
    };
    std::vector<bool> used(config_.target_modules.size(), false);
    for (auto& site : sites) {
      bool hit = false;
      for (std::size_t e = 0; e < config_.target_modules.size(); ++e) {
        if (detail::lora_matches(site.path, config_.target_modules[e]) && wanted_layer(site.layer)) {
          used[e] = true;
          hit = true;
        }
      }
      if (hit) sites_.push_back(std::move(site));
    }
    for (std::size_t e = 0; e < used.size(); ++e) {
      KAIZEN_CHECK(used[e], "LoraModel: target module '", config_.target_modules[e],
                   "' matches no projection of the model", config_.layers_to_transform.empty() ? "" : " in layers_to_transform",
                   " (targets are q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, a path such as "
                   "model.layers.0.self_attn.q_proj, or all-linear; the embeddings and lm_head are not adapted)");
    }
    for (const auto& site : sites_) {
      KAIZEN_CHECK(!*site.slot, "LoraModel: ", site.path, " already has an adapter attached (one LoraModel per base "
                   "model at a time)");
    }

    state_ = std::make_shared<detail::AdapterSwitch>();
    auto gen = at::make_generator<at::CPUGeneratorImpl>(config_.seed);
    const double scale = config_.scale();
    for (auto& site : sites_) {
      const torch::Tensor& w = site.linear->weight;
      const std::int64_t out = w.size(0), in = w.size(1);
      const double bound = 1.0 / std::sqrt(static_cast<double>(in));
      torch::Tensor A = torch::rand({config_.r, in}, gen, torch::kDouble).mul_(2.0 * bound).sub_(bound);
      auto adapter = std::make_shared<detail::LowRankAdapter>();
      adapter->A = A.to(w.device(), w.scalar_type()).set_requires_grad(true);
      adapter->B = torch::zeros({out, config_.r}, w.options()).set_requires_grad(true);
      adapter->scale = scale;
      adapter->dropout = config_.lora_dropout;
      adapter->state = state_;
      *site.slot = adapter;
      adapters_.push_back(std::move(adapter));
    }
    for (auto& p : base.parameters()) {
      requires_grad_.push_back(p.requires_grad());
      p.set_requires_grad(false);
    }
  }

  /// Reads a PEFT adapter folder (adapter_config.json + adapter_model.safetensors) onto `base`.
  [[nodiscard]] static LoraModel load(LlamaModel& base, const std::filesystem::path& dir) {
    LoraModel m(base, read_adapter_config(dir));
    m.load_weights(dir);
    return m;
  }

  LoraModel(const LoraModel&) = delete;
  LoraModel& operator=(const LoraModel&) = delete;
  LoraModel& operator=(LoraModel&&) = delete;
  LoraModel(LoraModel&& other) noexcept
      : base_(other.base_),
        config_(std::move(other.config_)),
        sites_(std::move(other.sites_)),
        adapters_(std::move(other.adapters_)),
        state_(std::move(other.state_)),
        requires_grad_(std::move(other.requires_grad_)),
        merged_with_(std::move(other.merged_with_)) {
    other.state_.reset();
  }

  ~LoraModel() {
    if (!state_) return;  // moved from
    for (auto& site : sites_) site.slot->reset();
    auto params = base_->parameters();
    for (std::size_t i = 0; i < params.size() && i < requires_grad_.size(); ++i) params[i].set_requires_grad(requires_grad_[i]);
  }

  // --- Policy / HiddenStatePolicy -------------------------------------------------------------------
  [[nodiscard]] torch::Tensor hidden_states(const TokenBatch& batch) {
    return base_->hidden_states(batch);
  }
  [[nodiscard]] torch::Tensor logits(const TokenBatch& batch) {
    return base_->logits(batch);
  }
  [[nodiscard]] torch::Tensor output_embedding() { return base_->output_embedding(); }
  /// The adapters' A and B of every targeted projection, in module order: the only trainable tensors.
  [[nodiscard]] std::vector<torch::Tensor> parameters() const {
    std::vector<torch::Tensor> out;
    for (const auto& a : adapters_) out.insert(out.end(), {a->A, a->B});
    return out;
  }
  /// (PEFT name, tensor) for every adapter tensor, in parameters() order.
  [[nodiscard]] std::vector<std::pair<std::string, torch::Tensor>> named_parameters() const {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (std::size_t i = 0; i < sites_.size(); ++i) {
      out.emplace_back(peft_name(sites_[i], "A"), adapters_[i]->A);
      out.emplace_back(peft_name(sites_[i], "B"), adapters_[i]->B);
    }
    return out;
  }

  [[nodiscard]] LlamaModel& base() { return *base_; }
  [[nodiscard]] const LoraConfig& config() const { return config_; }
  /// The module paths that carry an adapter (model.layers.0.self_attn.q_proj, ...).
  [[nodiscard]] std::vector<std::string> targets() const {
    std::vector<std::string> out;
    for (const auto& s : sites_) out.push_back(s.path);
    return out;
  }

  // --- adapters off / the reference -------------------------------------------------------------------
  /// Scope guard: while it lives, the base runs without the adapters (restores the previous state after).
  class Disabled {
   public:
    explicit Disabled(std::shared_ptr<detail::AdapterSwitch> s) : s_(std::move(s)), was_(s_->enabled) { s_->enabled = false; }
    ~Disabled() { s_->enabled = was_; }
    Disabled(const Disabled&) = delete;
    Disabled& operator=(const Disabled&) = delete;

   private:
    std::shared_ptr<detail::AdapterSwitch> s_;
    bool was_;
  };
  [[nodiscard]] Disabled disable_adapters() { return Disabled(state_); }
  [[nodiscard]] bool adapters_enabled() const { return state_->enabled; }
  /// The frozen base as a Policy (same module, adapters off for each call).
  [[nodiscard]] LoraReference reference() { return LoraReference(*this); }

  // --- merge / unmerge --------------------------------------------------------------------------------
  /// W ← W + s · B A for every adapter (float64 product, rounded once to W's dtype). Throws when merged.
  void merge() {
    KAIZEN_CHECK(!state_->merged, "LoraModel::merge: the adapters are already merged");
    torch::NoGradGuard no_grad;
    merged_with_.clear();
    for (std::size_t i = 0; i < sites_.size(); ++i) {
      const auto& a = adapters_[i];
      merged_with_.emplace_back(a->A.detach().clone(), a->B.detach().clone());
      torch::Tensor w = sites_[i].linear->weight;
      w.add_(delta(merged_with_.back().first, merged_with_.back().second, a->scale, w));
    }
    state_->merged = true;
  }
  /// Subtracts what merge() added (from A and B as they were then). Throws unless merged.
  void unmerge() {
    KAIZEN_CHECK(state_->merged, "LoraModel::unmerge: the adapters are not merged");
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < sites_.size(); ++i) {
      torch::Tensor w = sites_[i].linear->weight;
      w.sub_(delta(merged_with_[i].first, merged_with_[i].second, adapters_[i]->scale, w));
    }
    merged_with_.clear();
    state_->merged = false;
  }
  [[nodiscard]] bool merged() const { return state_->merged; }

  // --- PEFT files -------------------------------------------------------------------------------------
  /// adapter_config.json as PEFT writes it for this configuration ("all-linear" spelled out as the seven names).
  [[nodiscard]] nlohmann::ordered_json adapter_config_json() const {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    std::vector<std::string> targets = config_.target_modules;
    if (targets.size() == 1 && targets[0] == "all-linear") targets.assign(kLoraProjections.begin(), kLoraProjections.end());
    j["peft_type"] = "LORA";
    j["task_type"] = "CAUSAL_LM";
    j["base_model_name_or_path"] =
        config_.base_model_name_or_path.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(config_.base_model_name_or_path);
    j["r"] = config_.r;
    if (config_.lora_alpha == std::floor(config_.lora_alpha) && std::abs(config_.lora_alpha) < 1e15)
      j["lora_alpha"] = static_cast<std::int64_t>(config_.lora_alpha);
    else
      j["lora_alpha"] = config_.lora_alpha;
    j["lora_dropout"] = config_.lora_dropout;
    j["target_modules"] = targets;
    j["layers_to_transform"] =
        config_.layers_to_transform.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(config_.layers_to_transform);
    j["use_rslora"] = config_.use_rslora;
    j["bias"] = "none";
    j["fan_in_fan_out"] = false;
    j["use_dora"] = false;
    j["lora_bias"] = false;
    j["modules_to_save"] = nullptr;
    j["rank_pattern"] = nlohmann::ordered_json::object();
    j["alpha_pattern"] = nlohmann::ordered_json::object();
    j["init_lora_weights"] = true;
    j["inference_mode"] = true;
    j["revision"] = nullptr;
    return j;
  }

  /// Writes adapter_model.safetensors (in `dtype`: float32 or bfloat16) and adapter_config.json into `dir`
  /// (created if needed). Throws kaizen::Error on another dtype or a folder/file that cannot be written.
  void save(const std::filesystem::path& dir, torch::ScalarType dtype = torch::kFloat) const {
    KAIZEN_CHECK(dtype == torch::kFloat || dtype == torch::kBFloat16, "LoraModel::save: dtype must be float32 or "
                 "bfloat16, got ", c10::toString(dtype));
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec || !std::filesystem::is_directory(dir))
      fail("LoraModel::save: cannot create the folder '", dir.string(), "'", ec ? ": " + ec.message() : std::string());
    std::vector<torch::Tensor> keep;
    std::vector<io::TensorToWrite> tensors;
    {
      torch::NoGradGuard no_grad;
      for (const auto& [name, t] : named_parameters()) {
        torch::Tensor c = t.detach().to(torch::kCPU, dtype).contiguous();
        keep.push_back(c);
        io::TensorToWrite w;
        w.name = name;
        w.dtype = dtype == torch::kBFloat16 ? io::DType::BF16 : io::DType::F32;
        w.shape.assign(c.sizes().begin(), c.sizes().end());
        w.data = std::span<const std::byte>(static_cast<const std::byte*>(c.data_ptr()), c.nbytes());
        tensors.push_back(std::move(w));
      }
    }
    io::write_safetensors(dir / "adapter_model.safetensors", tensors, {{"format", "pt"}});
    detail::write_text(dir / "adapter_config.json", adapter_config_json().dump(2) + "\n", "LoraModel::save");
  }

  /// Reads `dir`/adapter_config.json into a LoraConfig (see the header comment for what is refused).
  [[nodiscard]] static LoraConfig read_adapter_config(const std::filesystem::path& dir) {
    const std::filesystem::path file = dir / "adapter_config.json";
    const std::string what = "LoraModel: '" + file.string() + "'";
    std::ifstream in(file, std::ios::binary);
    if (!in) fail(what, ": cannot open the file");
    std::ostringstream text;
    text << in.rdbuf();
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text.str());
    } catch (const nlohmann::json::exception& e) {
      fail(what, ": malformed JSON: ", e.what());
    }
    if (!j.is_object()) fail(what, ": expected a JSON object");
    auto has = [&](const char* key) { return j.contains(key) && !j.at(key).is_null(); };
    auto get = [&]<class T>(const char* key, T& field) {
      if (!has(key)) return;
      try {
        j.at(key).get_to(field);
      } catch (const nlohmann::json::exception& e) {
        fail(what, ": key \"", key, "\" has the wrong type: ", e.what());
      }
    };
    std::string peft_type;
    get("peft_type", peft_type);
    KAIZEN_CHECK(peft_type == "LORA", what, ": peft_type must be \"LORA\", got \"", peft_type, "\"");
    if (has("task_type")) {
      std::string task;
      get("task_type", task);
      KAIZEN_CHECK(task == "CAUSAL_LM", what, ": task_type must be \"CAUSAL_LM\", got \"", task, "\"");
    }
    LoraConfig c;
    KAIZEN_CHECK(has("r"), what, ": the key \"r\" is missing");
    get("r", c.r);
    get("lora_alpha", c.lora_alpha);
    get("lora_dropout", c.lora_dropout);
    get("use_rslora", c.use_rslora);
    get("base_model_name_or_path", c.base_model_name_or_path);
    KAIZEN_CHECK(has("target_modules"), what, ": the key \"target_modules\" is missing");
    const auto& t = j.at("target_modules");
    if (t.is_string()) {
      const auto s = t.get<std::string>();
      KAIZEN_CHECK(s == "all-linear", what, ": target_modules \"", s, "\" is a regular expression; only a list of "
                   "names or \"all-linear\" is supported");
      c.target_modules = {s};
    } else {
      get("target_modules", c.target_modules);
    }
    if (has("layers_to_transform")) {
      if (j.at("layers_to_transform").is_number_integer()) {
        c.layers_to_transform = {j.at("layers_to_transform").get<std::int64_t>()};
      } else {
        get("layers_to_transform", c.layers_to_transform);
      }
    }
    auto refuse_true = [&](const char* key, const char* meaning) {
      bool v = false;
      get(key, v);
      KAIZEN_CHECK(!v, what, ": ", key, " is true (", meaning, "), which kaizen's LoRA does not support");
    };
    if (has("bias")) {
      std::string bias;
      get("bias", bias);
      KAIZEN_CHECK(bias == "none", what, ": bias must be \"none\", got \"", bias, "\" (trained biases are not supported)");
    }
    refuse_true("fan_in_fan_out", "weights stored transposed");
    refuse_true("use_dora", "DoRA");
    refuse_true("lora_bias", "a bias on lora_B");
    for (const char* key : {"modules_to_save", "rank_pattern", "alpha_pattern", "layer_replication", "exclude_modules", "target_parameters", "trainable_token_indices"}) {
      if (has(key)) {
        const auto& v = j.at(key);
        KAIZEN_CHECK(v.empty(), what, ": ", key, " is set (", v.dump(), "), which kaizen's LoRA does not support");
      }
    }
    try {
      c.validate();
    } catch (const Error& e) {
      fail(what, ": ", e.what());
    }
    return c;
  }

  /// Copies the tensors of `dir`/adapter_model.safetensors into the adapters. Every adapter's lora_A and
  /// lora_B must be there with shapes [r, in] and [out, r], and nothing else; F32/F16/BF16/F64 are
  /// converted to the adapters' dtype. Throws kaizen::Error naming the tensor otherwise, or when merged.
  void load_weights(const std::filesystem::path& dir) {
    KAIZEN_CHECK(!state_->merged, "LoraModel::load_weights: the adapters are merged; unmerge() first");
    const io::SafetensorsFile file(dir / "adapter_model.safetensors");
    const std::string what = "LoraModel: '" + file.path() + "'";
    std::set<std::string, std::less<>> expected;
    for (const auto& [name, t] : named_parameters()) expected.insert(name);
    for (const auto& info : file.tensors()) {
      KAIZEN_CHECK(expected.count(info.name) == 1, what, ": unexpected tensor '", info.name, "' (this configuration "
                   "adapts ", detail::joined(targets()), ")");
    }
    torch::NoGradGuard no_grad;
    for (const auto& [name, t] : named_parameters()) {
      const io::SafetensorsTensorInfo* info = file.find(name);
      KAIZEN_CHECK(info != nullptr, what, ": missing tensor '", name, "'");
      const std::vector<std::int64_t> want(t.sizes().begin(), t.sizes().end());
      KAIZEN_CHECK(info->shape == want, what, ": tensor '", name, "' has shape ", shape_text(info->shape),
                   ", expected ", shape_text(want));
      std::vector<float> values = file.to_float(name);
      t.copy_(torch::from_blob(values.data(), t.sizes(), torch::kFloat).to(t.device(), t.scalar_type()));
    }
  }

 private:
  [[nodiscard]] static torch::Tensor delta(const torch::Tensor& A, const torch::Tensor& B, double scale,
                                           const torch::Tensor& w) {
    return (B.to(torch::kDouble).matmul(A.to(torch::kDouble)) * scale).to(w.scalar_type());
  }
  [[nodiscard]] static std::string peft_name(const detail::LoraSite& s, std::string_view which) {
    return "base_model.model." + s.path + ".lora_" + std::string(which) + ".weight";
  }
  [[nodiscard]] static std::string shape_text(const std::vector<std::int64_t>& s) {
    std::string out = "[";
    for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
  }

  LlamaModel* base_;
  LoraConfig config_;
  std::vector<detail::LoraSite> sites_;
  std::vector<std::shared_ptr<detail::LowRankAdapter>> adapters_;
  std::shared_ptr<detail::AdapterSwitch> state_;
  std::vector<bool> requires_grad_;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> merged_with_;
};

inline torch::Tensor LoraReference::hidden_states(const TokenBatch& batch) {
  const auto off = lora_->disable_adapters();
  return lora_->base().hidden_states(batch);
}
inline torch::Tensor LoraReference::logits(const TokenBatch& batch) {
  const auto off = lora_->disable_adapters();
  return lora_->base().logits(batch);
}
inline torch::Tensor LoraReference::output_embedding() { return lora_->base().output_embedding(); }
inline std::vector<torch::Tensor> LoraReference::parameters() { return lora_->base().parameters(); }

}  // namespace kaizen::lm
