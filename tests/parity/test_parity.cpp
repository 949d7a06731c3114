// Conformance with TRL 1.16 and Liger-Kernel 0.8.5: the same float64 inputs (ragged rows, junk in the
// padding: NaN / ±inf on kaizen's side, finite junk on the peers' side, which mask after the arithmetic)
// through kaizen and through the peers' own code (peers.py), loss and gradient with respect to the
// per-token log-probs compared at 1e-6 relative: |Δloss| ≤ 1e-6 |loss_peer| and
// max|Δgrad| ≤ 1e-6 max|grad_peer|. Each case names the kaizen option that reproduces the peer.
// The peers run once per build folder and input (outputs cached next to the inputs).
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <kaizen/policy_gradient/policy_loss.hpp>
#include <kaizen/policy_gradient/token_masks.hpp>
#include <kaizen/policy_gradient/vespo.hpp>
#include <kaizen/preference/aot.hpp>
#include <kaizen/preference/apo.hpp>
#include <kaizen/preference/bco.hpp>
#include <kaizen/preference/cpo.hpp>
#include <kaizen/preference/discopop.hpp>
#include <kaizen/preference/dpo.hpp>
#include <kaizen/preference/exo.hpp>
#include <kaizen/preference/hinge.hpp>
#include <kaizen/preference/ipo.hpp>
#include <kaizen/preference/kto.hpp>
#include <kaizen/preference/nca.hpp>
#include <kaizen/preference/rpo.hpp>
#include <kaizen/preference/sequence_logprobs.hpp>
#include <kaizen/preference/simpo.hpp>
#include <kaizen/preference/sppo.hpp>

namespace pg = kaizen::policy_gradient;
namespace pref = kaizen::preference;
namespace fs = std::filesystem;

namespace {

using Tensors = std::map<std::string, torch::Tensor>;
const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
constexpr std::int64_t kPgRows = 6, kPgCols = 9, kPairs = 4, kPrefCols = 10;

torch::Tensor ragged_mask(const std::vector<std::int64_t>& lengths, std::int64_t cols) {
  auto m = torch::zeros({static_cast<std::int64_t>(lengths.size()), cols}, f64);
  for (std::size_t i = 0; i < lengths.size(); ++i) m[static_cast<std::int64_t>(i)].narrow(0, 0, lengths[i]).fill_(1.0);
  return m;
}

/// The inputs, with finite junk (3.7) in the padding: what the peers get.
Tensors make_inputs() {
  auto gen = at::detail::createCPUGenerator(20261203);
  const auto randn = [&](std::int64_t r, std::int64_t c) { return at::randn({r, c}, gen, f64); };
  Tensors x;
  const auto pm = ragged_mask({9, 3, 7, 1, 5, 8}, kPgCols);
  const auto junk = [](const torch::Tensor& v, const torch::Tensor& m) { return torch::where(m > 0, v, torch::full_like(v, 3.7)); };
  const auto lp = -(randn(kPgRows, kPgCols) * 0.5 + 1.0).abs();
  x["pg.mask"] = pm;
  x["pg.logprobs"] = junk(lp, pm);
  x["pg.old"] = junk(lp + 0.3 * randn(kPgRows, kPgCols), pm);
  x["pg.ref"] = junk(lp + 0.5 * randn(kPgRows, kPgCols), pm);
  // Row 2 (A < 0) drifted: its mean log π_sampler − log π_θ is about 0.43, above the off-policy δ = 0.05.
  auto sampler = x["pg.old"] + 0.2 * randn(kPgRows, kPgCols);
  sampler[2] += 0.5;
  x["pg.sampler"] = junk(sampler, pm);
  x["pg.advantages"] = at::randn({kPgRows}, gen, f64);
  x["pg.entropy"] = junk(3.0 * at::rand({kPgRows, kPgCols}, gen, f64), pm);
  const auto qm = ragged_mask({10, 4, 7, 2, 9, 5, 6, 3}, kPrefCols);
  const auto qlp = -(randn(2 * kPairs, kPrefCols) * 0.5 + 1.0).abs();
  x["pref.mask"] = qm;
  x["pref.logprobs"] = junk(qlp, qm);
  x["pref.ref"] = junk(qlp + 0.3 * randn(2 * kPairs, kPrefCols), qm);
  x["kto.desirable"] = torch::tensor({1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0}, f64);
  x["kto.z0"] = torch::tensor(0.3, f64);
  return x;
}

/// The same tensor with NaN / ±inf where the mask is 0: what kaizen gets.
torch::Tensor poisoned(const torch::Tensor& v, const torch::Tensor& m, double junk) {
  return torch::where(m > 0, v, torch::full_like(v, junk));
}

std::string serialise(const Tensors& x) {
  std::ostringstream out;
  out << std::setprecision(17);
  for (const auto& [name, t] : x) {
    const auto c = t.contiguous();
    out << name << ' ' << c.dim();
    for (auto s : c.sizes()) out << ' ' << s;
    const double* p = c.data_ptr<double>();
    for (std::int64_t i = 0; i < c.numel(); ++i) out << ' ' << p[i];
    out << '\n';
  }
  return out.str();
}

Tensors parse(const fs::path& path) {
  Tensors out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream s(line);
    std::string name;
    std::int64_t dim = 0;
    s >> name >> dim;
    std::vector<std::int64_t> shape(static_cast<std::size_t>(dim));
    std::int64_t n = 1;
    for (auto& d : shape) s >> d, n *= d;
    std::vector<double> values(static_cast<std::size_t>(n));
    for (auto& v : values) s >> v;
    out[name] = torch::tensor(values, f64).reshape(shape);
  }
  return out;
}

std::string header_line(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

/// The peers' outputs for make_inputs(), or nullptr after printing KAIZEN_SKIP.
const Tensors* peers() {
  static const std::pair<bool, Tensors> cached = [] {
    const std::string python = KAIZEN_PARITY_PYTHON;
    if (python.empty() || !fs::exists(python)) return std::pair<bool, Tensors>{false, {}};
    const fs::path dir = KAIZEN_PARITY_DIR;
    const fs::path inputs = dir / "parity_inputs.txt", outputs = dir / "parity_outputs.txt";
    const std::string text = serialise(make_inputs());
    std::string previous;
    if (fs::exists(inputs)) {
      std::ifstream in(inputs);
      previous.assign(std::istreambuf_iterator<char>(in), {});
    }
    const bool fresh = previous == text && fs::exists(outputs) &&
                       fs::last_write_time(outputs) >= fs::last_write_time(KAIZEN_PARITY_SCRIPT);
    if (!fresh) {
      const fs::path tmp_in = dir / ("parity_inputs." + std::to_string(::getpid()));
      const fs::path tmp_out = dir / ("parity_outputs." + std::to_string(::getpid()));
      std::ofstream(tmp_in) << text;
      const std::string cmd = "\"" + python + "\" \"" KAIZEN_PARITY_SCRIPT "\" \"" + tmp_in.string() + "\" \"" +
                              tmp_out.string() + "\"";
      const int status = std::system(cmd.c_str());
      const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      if (rc == 77) {
        fs::remove(tmp_in);
        return std::pair<bool, Tensors>{false, {}};
      }
      REQUIRE(rc == 0);
      fs::rename(tmp_out, outputs);
      fs::rename(tmp_in, inputs);
    }
    std::cout << "peers: " << header_line(outputs) << '\n';
    return std::pair<bool, Tensors>{true, parse(outputs)};
  }();
  if (!cached.first) {
    std::cout << "KAIZEN_SKIP: the Python peers (torch, trl, liger_kernel in KAIZEN_PYTHON) are not available\n";
    return nullptr;
  }
  return &cached.second;
}

std::string decode_error(const torch::Tensor& codes) {
  std::string s;
  for (std::int64_t i = 0; i < codes.numel(); ++i) s.push_back(static_cast<char>(codes[i].item<double>()));
  return s;
}

/// Compares kaizen's loss and per-token gradient with the peer's case `name`; `tolerance` relative.
void compare(const Tensors& peer, const std::string& name, const torch::Tensor& loss, const torch::Tensor& logprobs,
             double tolerance = 1e-6) {
  INFO("case " << name);
  if (peer.count(name + ".error")) FAIL("the peer could not run it: " << decode_error(peer.at(name + ".error")));
  REQUIRE(peer.count(name + ".loss") == 1);
  const double expected = peer.at(name + ".loss").item<double>();
  const double got = loss.item<double>();
  REQUIRE(logprobs.grad().defined());
  const auto grad = logprobs.grad().to(torch::kFloat64);
  const auto& expected_grad = peer.at(name + ".grad");
  REQUIRE(grad.sizes() == expected_grad.sizes());
  const double loss_error = std::abs(got - expected) / std::max(std::abs(expected), 1e-300);
  const double scale = expected_grad.abs().max().item<double>();
  const double grad_error = (grad - expected_grad).abs().max().item<double>() / std::max(scale, 1e-300);
  std::cout << std::left << std::setw(34) << name << " loss " << std::setprecision(10) << std::setw(16) << got
            << " peer " << std::setw(16) << expected << " rel.err loss " << std::setprecision(2) << loss_error
            << " grad " << grad_error << '\n';
  CHECK(std::isfinite(got));
  CHECK(loss_error <= tolerance);
  CHECK(grad_error <= tolerance);
  CHECK(torch::isfinite(grad).all().item<bool>());
}

// --- policy gradient ----------------------------------------------------------------------------------

struct PgInputs {
  torch::Tensor logprobs, old, ref, sampler, advantages, mask, entropy;
};

PgInputs pg_inputs() {
  const auto x = make_inputs();
  const auto& m = x.at("pg.mask");
  PgInputs in;
  in.logprobs = poisoned(x.at("pg.logprobs"), m, -INFINITY).requires_grad_(true);
  in.old = poisoned(x.at("pg.old"), m, std::numeric_limits<double>::quiet_NaN());
  in.ref = poisoned(x.at("pg.ref"), m, INFINITY);
  in.sampler = poisoned(x.at("pg.sampler"), m, std::numeric_limits<double>::quiet_NaN());
  in.advantages = x.at("pg.advantages");
  in.mask = m.to(torch::kBool);
  in.entropy = poisoned(x.at("pg.entropy"), m, std::numeric_limits<double>::quiet_NaN());
  return in;
}

enum class PolicyMask { none, off_policy, high_entropy };

template <class Objective>
void check_pg(const Tensors& peer, const std::string& name, const Objective& objective,
              std::optional<double> normaliser = std::nullopt, bool with_sampler = false,
              PolicyMask policy_mask = PolicyMask::none) {
  auto in = pg_inputs();
  torch::Tensor keep;
  if (policy_mask == PolicyMask::off_policy) {
    keep = pg::off_policy_sequence_mask(in.advantages, in.logprobs, in.sampler, in.mask, 0.05);
    // The case means something only if the mask drops some rows and keeps others.
    CHECK(keep.sum().item<double>() > 0);
    CHECK(keep.sum().item<double>() < kPgRows);
  } else if (policy_mask == PolicyMask::high_entropy) {
    keep = pg::high_entropy_mask(in.entropy, in.mask, 0.3);
    CHECK(keep.sum().item<double>() > 0);
    CHECK(keep.sum().item<double>() < in.mask.sum().item<double>());
  }
  const auto out = pg::policy_loss(pg::PolicyLossInputs{.logprobs = in.logprobs, .old_logprobs = in.old,
                                                        .ref_logprobs = in.ref, .advantages = in.advantages,
                                                        .mask = in.mask,
                                                        .sampler_logprobs = with_sampler ? in.sampler : torch::Tensor{},
                                                        .policy_token_mask = keep},
                                   objective, normaliser);
  out.loss.backward();
  compare(peer, name, out.loss, in.logprobs);
}

// --- preference ---------------------------------------------------------------------------------------

struct PrefInputs {
  torch::Tensor logprobs;  ///< [2N, T] with -inf in the padding, requires grad
  pref::PairLogProbs pairs;
};

PrefInputs pref_inputs() {
  const auto x = make_inputs();
  const auto& m = x.at("pref.mask");
  PrefInputs in;
  in.logprobs = poisoned(x.at("pref.logprobs"), m, -INFINITY).requires_grad_(true);
  in.pairs = pref::pair_logprobs(in.logprobs, m.to(torch::kBool), poisoned(x.at("pref.ref"), m, INFINITY));
  return in;
}

void check_pref(const Tensors& peer, const std::string& name,
                const std::function<pref::PreferenceLoss(const pref::PairLogProbs&)>& loss, double tolerance = 1e-6) {
  auto in = pref_inputs();
  const auto out = loss(in.pairs);
  out.loss.backward();
  compare(peer, name, out.loss, in.logprobs, tolerance);
}

}  // namespace

TEST_CASE("policy-gradient losses equal Liger-Kernel's ppo_loss_fn on ragged float64 batches", "[parity][policy_gradient]") {
  const Tensors* peer = peers();
  if (!peer) return;
  using pg::AsymmetricClip, pg::SymmetricClip, pg::TokenRatio, pg::SequenceRatio, pg::NoKl, pg::KlLoss, pg::KlEstimator;
  // GRPO: k3 in the loss, plain (no clamp, the default), per-sequence mean.
  check_pg(*peer, "liger.grpo",
           pg::Objective<TokenRatio, SymmetricClip, KlLoss<KlEstimator::k3>, pg::SeqMeanTokenMean>{.kl = {.coefficient = 0.04}});
  check_pg(*peer, "liger.bnpo", pg::Objective<TokenRatio, SymmetricClip, NoKl, pg::TokenMean>{});
  check_pg(*peer, "liger.dr_grpo",
           pg::Objective<TokenRatio, SymmetricClip, NoKl, pg::SeqMeanTokenSumNorm>{.aggregation = {.constant = kPgCols}});
  check_pg(*peer, "liger.dapo", pg::DapoObjective{});
  check_pg(*peer, "liger.dapo_num_items", pg::DapoObjective{}, /*normaliser = num_items_in_batch*/ 71.0);
  check_pg(*peer, "liger.gspo_seq_mean",
           pg::Objective<SequenceRatio, AsymmetricClip, NoKl, pg::SeqMeanTokenMean>{.clip = {3e-4, 4e-4}});
  check_pg(*peer, "liger.gspo_token_mean",
           pg::Objective<SequenceRatio, AsymmetricClip, NoKl, pg::TokenMean>{.clip = {3e-4, 4e-4}});
  check_pg(*peer, "liger.delta", pg::Objective<TokenRatio, SymmetricClip, NoKl, pg::TokenMean>{.ratio_cap = 1.3});
  check_pg(*peer, "liger.cispo", pg::CispoObjective{.clip = pg::cispo_cap(1.1)});
  check_pg(*peer, "liger.sapo", pg::SapoObjective{});
  check_pg(*peer, "liger.luspo", pg::LuspoObjective{.clip = {0.2, 0.2}});
  check_pg(*peer, "liger.k3_importance",
           pg::Objective<TokenRatio, SymmetricClip, KlLoss<KlEstimator::k3_importance>, pg::TokenMean>{
               .kl = {.coefficient = 0.04}});
  check_pg(*peer, "liger.tis",
           pg::Objective<TokenRatio, SymmetricClip, KlLoss<KlEstimator::k3>, pg::TokenMean>{
               .kl = {.coefficient = 0.04},
               .importance = {.action = pg::ImportanceAction::truncate, .level = pg::ImportanceLevel::token, .cap = 2.0}},
           std::nullopt, /*with_sampler=*/true);
  {
    auto in = pg_inputs();
    const auto loss = pg::vespo_loss(in.logprobs, in.old, in.advantages, in.mask);
    loss.backward();
    compare(*peer, "liger.vespo", loss, in.logprobs);
  }
}

TEST_CASE("policy-gradient losses equal TRL's GRPOTrainer._compute_loss on ragged float64 batches",
          "[parity][policy_gradient]") {
  const Tensors* peer = peers();
  if (!peer) return;
  using pg::AsymmetricClip, pg::SymmetricClip, pg::TokenRatio, pg::SequenceRatio, pg::NoKl, pg::KlLoss, pg::KlEstimator;
  using K3 = KlLoss<KlEstimator::k3>;
  check_pg(*peer, "trl.grpo", pg::Objective<TokenRatio, SymmetricClip, K3, pg::SeqMeanTokenMean>{.kl = {.coefficient = 0.04}});
  check_pg(*peer, "trl.bnpo", pg::Objective<TokenRatio, SymmetricClip, NoKl, pg::TokenMean>{});
  check_pg(*peer, "trl.dr_grpo",
           pg::Objective<TokenRatio, SymmetricClip, NoKl, pg::SeqMeanTokenSumNorm>{.aggregation = {.constant = kPgCols}});
  check_pg(*peer, "trl.dapo_num_items", pg::DapoObjective{}, 71.0);
  check_pg(*peer, "trl.gspo", pg::Objective<SequenceRatio, AsymmetricClip, NoKl, pg::SeqMeanTokenMean>{.clip = {3e-4, 4e-4}});
  check_pg(*peer, "trl.delta", pg::Objective<TokenRatio, SymmetricClip, NoKl, pg::TokenMean>{.ratio_cap = 1.3});
  check_pg(*peer, "trl.cispo", pg::CispoObjective{.clip = pg::cispo_cap(1.1)});
  check_pg(*peer, "trl.sapo", pg::SapoObjective{});
  check_pg(*peer, "trl.luspo", pg::LuspoObjective{.clip = {0.2, 0.2}});
  check_pg(*peer, "trl.k3_importance",
           pg::Objective<TokenRatio, SymmetricClip, KlLoss<KlEstimator::k3_importance>, pg::TokenMean>{
               .kl = {.coefficient = 0.04}});
  check_pg(*peer, "trl.off_policy_mask", pg::Objective<TokenRatio, SymmetricClip, K3, pg::TokenMean>{.kl = {.coefficient = 0.04}},
           std::nullopt, /*with_sampler=*/true, PolicyMask::off_policy);
  check_pg(*peer, "trl.entropy_mask", pg::Objective<TokenRatio, SymmetricClip, K3, pg::TokenMean>{.kl = {.coefficient = 0.04}},
           std::nullopt, false, PolicyMask::high_entropy);
  {
    auto in = pg_inputs();
    const auto loss = pg::vespo_loss(in.logprobs, in.old, in.advantages, in.mask);
    loss.backward();
    compare(*peer, "trl.vespo", loss, in.logprobs);
  }
}

TEST_CASE("preference losses equal Liger-Kernel's preference_loss_fn", "[parity][preference]") {
  const Tensors* peer = peers();
  if (!peer) return;
  check_pref(*peer, "liger.sigmoid", [](const auto& p) { return pref::dpo_loss(p); });
  check_pref(*peer, "liger.hinge", [](const auto& p) { return pref::hinge_loss(p); });
  check_pref(*peer, "liger.exo_pair", [](const auto& p) { return pref::exo_loss(p, {.beta = 0.1, .epsilon = 1e-3}); });
  check_pref(*peer, "liger.nca_pair", [](const auto& p) { return pref::nca_loss(p); });
  check_pref(*peer, "liger.robust",
             [](const auto& p) { return pref::robust_dpo_loss(p, {.beta = 0.1, .label_smoothing = 0.1}); });
  check_pref(*peer, "liger.bco_pair", [](const auto& p) { return pref::bco_pair_loss(p); });
  check_pref(*peer, "liger.sppo_hard", [](const auto& p) { return pref::sppo_hard_loss(p); });
  check_pref(*peer, "liger.apo_zero", [](const auto& p) { return pref::apo_loss(p); });
  check_pref(*peer, "liger.apo_down", [](const auto& p) { return pref::apo_loss(p, {.anchor = pref::ApoAnchor::down}); });
  check_pref(*peer, "liger.discopop", [](const auto& p) { return pref::discopop_loss(p); });
  check_pref(*peer, "liger.simpo", [](const auto& p) { return pref::simpo_loss(p, {.beta = 2.0, .gamma = 0.5}); });
  check_pref(*peer, "liger.simpo_smoothed",
             [](const auto& p) { return pref::simpo_loss(p, {.beta = 2.0, .gamma = 0.5, .label_smoothing = 0.1}); });
  check_pref(*peer, "liger.cpo_alpha0", [](const auto& p) { return pref::cpo_loss(p, {.beta = 0.1, .alpha = 0.0}); });
  {
    const auto x = make_inputs();
    const auto& m = x.at("pref.mask");
    auto lp = poisoned(x.at("pref.logprobs"), m, -INFINITY).requires_grad_(true);
    const pref::UnpairedLogProbs batch{
        .policy = pref::sequence_logprobs(lp, m.to(torch::kBool)),
        .reference = pref::sequence_logprobs(poisoned(x.at("pref.ref"), m, INFINITY), m.to(torch::kBool)),
        .desirable = x.at("kto.desirable") > 0.5};
    const auto out = pref::kto_loss(batch, x.at("kto.z0"));
    out.loss.backward();
    compare(*peer, "liger.kto", out.loss, lp);
  }
}

TEST_CASE("preference losses equal TRL's DPOTrainer._compute_loss", "[parity][preference]") {
  const Tensors* peer = peers();
  if (!peer) return;
  check_pref(*peer, "trl.sigmoid", [](const auto& p) { return pref::dpo_loss(p); });
  check_pref(*peer, "trl.hinge", [](const auto& p) { return pref::hinge_loss(p); });
  check_pref(*peer, "trl.ipo", [](const auto& p) { return pref::ipo_loss(p, {.tau = 0.1, .length_normalize = true}); });
  check_pref(*peer, "trl.exo_pair", [](const auto& p) { return pref::exo_loss(p); });
  check_pref(*peer, "trl.nca_pair", [](const auto& p) { return pref::nca_loss(p); });
  check_pref(*peer, "trl.robust",
             [](const auto& p) { return pref::robust_dpo_loss(p, {.beta = 0.1, .label_smoothing = 0.1}); });
  check_pref(*peer, "trl.bco_pair", [](const auto& p) { return pref::bco_pair_loss(p); });
  check_pref(*peer, "trl.sppo_hard", [](const auto& p) { return pref::sppo_hard_loss(p); });
  check_pref(*peer, "trl.aot", [](const auto& p) { return pref::aot_loss(p, {.beta = 0.1, .label_smoothing = 0.1}); });
  check_pref(*peer, "trl.aot_unpaired", [](const auto& p) {
    return pref::aot_loss(p, {.beta = 0.1, .label_smoothing = 0.1, .variant = pref::AotVariant::unpaired});
  });
  check_pref(*peer, "trl.apo_zero", [](const auto& p) { return pref::apo_loss(p); });
  check_pref(*peer, "trl.apo_down", [](const auto& p) { return pref::apo_loss(p, {.anchor = pref::ApoAnchor::down}); });
  check_pref(*peer, "trl.discopop", [](const auto& p) { return pref::discopop_loss(p); });
  check_pref(*peer, "trl.sigmoid_norm", [](const auto& p) { return pref::dpo_norm_loss(p); });
  // RPO in TRL 1.16: loss_type ["sigmoid", "sft"], loss_weights [1, α]: the NLL is the batch token mean.
  check_pref(*peer, "trl.rpo", [](const auto& p) {
    return pref::rpo_loss(p, {.beta = 0.1, .alpha = 0.7, .nll = {.normalisation = pref::NllNormalisation::batch_tokens}});
  });
  check_pref(*peer, "trl.sigmoid_forward_kl", [](const auto& p) {
    return pref::dpo_loss(p, {.beta = 0.1, .divergence = {.kind = pref::FDivergence::forward_kl}});
  });
  check_pref(*peer, "trl.sigmoid_js_divergence", [](const auto& p) {
    return pref::dpo_loss(p, {.beta = 0.1, .divergence = {.kind = pref::FDivergence::js}});
  });
  check_pref(*peer, "trl.sigmoid_norm_js_divergence", [](const auto& p) {
    return pref::dpo_norm_loss(p, {.beta = 0.1, .divergence = {.kind = pref::FDivergence::js}});
  });
  // KTOTrainer on the 2N rows as unpaired examples: the paper's loss (z0 = 0.3) and apo_zero_unpaired.
  for (const auto variant : {pref::KtoVariant::kto, pref::KtoVariant::apo_zero_unpaired}) {
    const auto x = make_inputs();
    const auto& m = x.at("pref.mask");
    auto lp = poisoned(x.at("pref.logprobs"), m, -INFINITY).requires_grad_(true);
    const pref::UnpairedLogProbs batch{
        .policy = pref::sequence_logprobs(lp, m.to(torch::kBool)),
        .reference = pref::sequence_logprobs(poisoned(x.at("pref.ref"), m, INFINITY), m.to(torch::kBool)),
        .desirable = x.at("kto.desirable") > 0.5};
    const pref::KtoOptions options{.beta = 0.1, .desirable_weight = 1.5, .undesirable_weight = 0.8, .loss = variant};
    const auto out = variant == pref::KtoVariant::kto ? pref::kto_loss(batch, x.at("kto.z0"), options)
                                                      : pref::kto_loss(batch, options);
    out.loss.backward();
    compare(*peer, variant == pref::KtoVariant::kto ? "trl.kto" : "trl.kto_apo_zero_unpaired", out.loss, lp);
  }
  // TRL's alpha-divergence has no float64 entry in its clamp table (KeyError): compared with its float32 run.
  CHECK(peer->count("trl.sigmoid_alpha_divergence.error") == 1);
  check_pref(
      *peer, "trl.sigmoid_alpha_divergence_f32",
      [](const auto& p) {
        return pref::dpo_loss(p, {.beta = 0.1, .divergence = {.kind = pref::FDivergence::alpha, .alpha = 0.3}});
      },
      1e-5);
}
