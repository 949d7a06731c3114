// curriculum_simulation - every bandit curriculum against uniform sampling on a synthetic training run.
//
// The world: kCategories problem categories. Category c has a difficulty d_c and the policy a skill s_c;
// a rollout succeeds with probability p_c = sigmoid(kSharpness (s_c - d_c)). A training step draws
// kBatch prompts from the curriculum, samples kGroup rollouts per prompt, computes GRPO advantages and
// learns: s_c grows by kLearningRate times the group's mean |advantage| (a group that is all right or
// all wrong teaches nothing), and a share kTransfer of it carries to the next level of the same ladder.
// Skills of categories not trained in a step are slowly forgotten (kForgetting).
//   - 3 ladders x 3 levels: level 1 learnable from the start, level 2 too hard at first, level 3
//     hopeless until the levels below it are learned (transfer);
//   - 2 categories already solved (no signal);
//   - 1 drifting category: solved at first, its difficulty rises every step.
// Learned skill = mean over categories of p_c. Each curriculum runs on the same kSeeds worlds as the
// uniform sampler (paired comparison); the table gives final skill, the margin over uniform with its
// spread, and on how many seeds the curriculum beat uniform.
//
// Usage: curriculum_simulation [table.md] [plot.svg]   (defaults: curriculum_simulation.md/.svg)
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

#include <kaizen/curriculum.hpp>
#include <kaizen/curriculum/linucb.hpp>

#include "common/svg_plot.hpp"

namespace {

using kaizen::ArmId;
using kaizen::Rng;
namespace cur = kaizen::curriculum;

constexpr int kSeeds = 24;               // paired runs per curriculum
constexpr int kSteps = 300;              // training steps per run
constexpr std::size_t kBatch = 16;       // prompts per step
constexpr int kGroup = 8;                // rollouts per prompt (GRPO group)
constexpr double kSharpness = 3.0;       // slope of success probability in skill - difficulty
constexpr double kLearningRate = 0.005;  // skill gained per unit of group mean |advantage|
constexpr double kTransfer = 0.5;        // share of a level's gain that reaches the next level
constexpr double kForgetting = 0.002;    // per-step relative skill loss of untrained categories
constexpr double kDrift = 0.008;         // per-step difficulty increase of the drifting category
constexpr int kLadders = 3, kLevels = 3;
constexpr std::size_t kCategories = kLadders * kLevels + 3;

struct World {
  std::vector<double> difficulty, skill;
  std::vector<bool> drifting;

  explicit World(std::uint64_t seed)
      : difficulty(kCategories), skill(kCategories, 0.0), drifting(kCategories, false) {
    Rng rng(seed);
    for (int l = 0; l < kLadders; ++l)
      for (int v = 0; v < kLevels; ++v)
        difficulty[static_cast<std::size_t>(l * kLevels + v)] =
            0.6 + 1.2 * v + 0.3 * (kaizen::uniform01(rng) - 0.5);
    difficulty[kLadders * kLevels] = -3.0;      // solved
    difficulty[kLadders * kLevels + 1] = -2.5;  // solved
    difficulty[kLadders * kLevels + 2] = -1.5;  // solved at first, drifts up
    drifting[kLadders * kLevels + 2] = true;
  }

  [[nodiscard]] double success(std::size_t c) const {
    return 1.0 / (1.0 + std::exp(-kSharpness * (skill[c] - difficulty[c])));
  }
  [[nodiscard]] double learned_skill() const {
    double total = 0.0;
    for (std::size_t c = 0; c < kCategories; ++c) total += success(c);
    return total / static_cast<double>(kCategories);
  }
};

// The baseline: every category equally likely, nothing learned.
struct UniformCurriculum {
  std::size_t arms;
  std::vector<ArmId> sample(std::size_t n, Rng& rng) const {
    std::vector<ArmId> out(n);
    for (auto& a : out) a = static_cast<ArmId>(kaizen::uniform_index(rng, arms));
    return out;
  }
  void update(std::span<const ArmId>, std::span<const double>) {}
  std::vector<double> probabilities() const {
    return std::vector<double>(arms, 1.0 / static_cast<double>(arms));
  }
  nlohmann::json state() const { return {{"kind", "uniform"}, {"arms", arms}}; }
  void restore(const nlohmann::json& s) { arms = s.at("arms").get<std::size_t>(); }
};
static_assert(kaizen::Curriculum<UniformCurriculum>);

// What the curriculum is fed, one gain per drawn prompt (so every (arm, gain) pair is one draw, as EXP3's
// importance weights assume): SEC and the bandits get the group's mean |advantage| (the learning signal,
// in [0, 1]); the learnability sampler gets the group's pass rate (it models p, not the signal).
enum class Signal { advantage, pass_rate };

// One training run; returns learned skill after each step (index 0 = before training).
template <class C>
std::vector<double> train(C curriculum, Signal signal, std::uint64_t seed) {
  World world(seed);
  Rng rng(seed * 7919 + 1), env(seed * 104729 + 2);
  std::vector<double> curve{world.learned_skill()};
  for (int step = 0; step < kSteps; ++step) {
    const std::vector<ArmId> arms = curriculum.sample(kBatch, rng);
    std::vector<ArmId> rollout_prompt, prompt_arms;
    std::vector<double> advantages, pass_rates;
    std::vector<double> gained(kCategories, 0.0);
    std::vector<bool> trained(kCategories, false);
    for (ArmId arm : arms) {
      const auto c = static_cast<std::size_t>(arm);
      const double p = world.success(c);
      std::vector<double> rewards(kGroup);
      double mean = 0.0;
      for (double& r : rewards) mean += (r = kaizen::uniform01(env) < p ? 1.0 : 0.0) / kGroup;
      double ss = 0.0;
      for (double r : rewards) ss += (r - mean) * (r - mean);
      const double sd = std::sqrt(ss / (kGroup - 1));
      double group_gain = 0.0;
      for (double r : rewards) {
        const double a = (r - mean) / (sd + 1e-6);  // GRPO advantage
        advantages.push_back(a);
        rollout_prompt.push_back(static_cast<ArmId>(prompt_arms.size()));
        group_gain += std::abs(a) / kGroup;
      }
      prompt_arms.push_back(arm);
      pass_rates.push_back(mean);
      gained[c] += kLearningRate * group_gain;
      trained[c] = true;
    }
    for (std::size_t c = 0; c < kCategories; ++c) {
      world.skill[c] += gained[c];
      if (c < static_cast<std::size_t>(kLadders * kLevels) && c % kLevels + 1 < kLevels)
        world.skill[c + 1] += kTransfer * gained[c];
      if (!trained[c]) world.skill[c] *= 1.0 - kForgetting;
      if (world.drifting[c]) world.difficulty[c] += kDrift;
    }
    if (signal == Signal::advantage) {
      // Keyed by prompt index, advantage_gains gives each prompt's mean |advantage|, in prompt order.
      const cur::ArmGains per_prompt = cur::advantage_gains(rollout_prompt, advantages);
      curriculum.update(prompt_arms, per_prompt.gains);
    } else {
      curriculum.update(prompt_arms, pass_rates);
    }
    curve.push_back(world.learned_skill());
  }
  return curve;
}

struct Entry {
  std::string name;
  std::function<std::vector<double>(std::uint64_t)> run;
  bool plotted;
};

double mean_of(const std::vector<double>& v) {
  double t = 0.0;
  for (double x : v) t += x;
  return t / static_cast<double>(v.size());
}
double std_of(const std::vector<double>& v) {
  const double m = mean_of(v);
  double ss = 0.0;
  for (double x : v) ss += (x - m) * (x - m);
  return std::sqrt(ss / static_cast<double>(v.size() - 1));
}

}  // namespace

int main(int argc, char** argv) {
  const std::string table_path = argc > 1 ? argv[1] : "curriculum_simulation.md";
  const std::string plot_path = argc > 2 ? argv[2] : "curriculum_simulation.svg";
  const std::size_t k = kCategories;
  // LinUCB features: the category's one-hot plus its level's one-hot (solved and drifting categories share
  // a fourth "level"), so the level effect is shared and each category keeps its own term. (Arms with
  // identical features would be indistinguishable to LinUCB.)
  const auto kc = static_cast<Eigen::Index>(k);
  Eigen::MatrixXd features = Eigen::MatrixXd::Zero(kc, kc + kLevels + 1);
  for (Eigen::Index c = 0; c < kc; ++c) {
    features(c, c) = 1.0;
    features(c, kc + (c < kLadders * kLevels ? c % kLevels : kLevels)) = 1.0;
  }
  const std::vector<Entry> entries{
      {"uniform", [&](std::uint64_t s) { return train(UniformCurriculum{k}, Signal::advantage, s); }, true},
      {"SEC (tau = 0.2)",
       [&](std::uint64_t s) {
         return train(cur::SelfEvolvingCurriculum(k, {.alpha = 0.5, .tau = 0.2}), Signal::advantage, s);
       },
       true},
      {"SEC (defaults: tau = 1)",
       [&](std::uint64_t s) { return train(cur::SelfEvolvingCurriculum(k), Signal::advantage, s); }, false},
      {"SEC (tau = 0.2, sampled arms only)",
       [&](std::uint64_t s) {
         return train(cur::SelfEvolvingCurriculum(k, {.alpha = 0.5, .tau = 0.2, .decay_unsampled = false}),
                      Signal::advantage, s);
       },
       false},
      {"UCB1", [&](std::uint64_t s) { return train(cur::Ucb1(k), Signal::advantage, s); }, true},
      {"discounted UCB",
       [&](std::uint64_t s) { return train(cur::DiscountedUcb(k, {.gamma = 0.95}), Signal::advantage, s); },
       true},
      {"sliding-window UCB",
       [&](std::uint64_t s) {
         return train(cur::SlidingWindowUcb(k, {.window = 320}), Signal::advantage, s);
       },
       false},
      {"EXP3", [&](std::uint64_t s) { return train(cur::Exp3(k, {.gamma = 0.1}), Signal::advantage, s); },
       false},
      {"EXP3.S",
       [&](std::uint64_t s) {
         return train(cur::Exp3(k, {.gamma = 0.1, .alpha = 0.001}), Signal::advantage, s);
       },
       true},
      {"Thompson (Beta)", [&](std::uint64_t s) { return train(cur::BetaThompson(k), Signal::advantage, s); },
       true},
      {"Thompson (Gaussian)",
       [&](std::uint64_t s) { return train(cur::GaussianThompson(k), Signal::advantage, s); }, false},
      {"epsilon-greedy", [&](std::uint64_t s) { return train(cur::EpsilonGreedy(k), Signal::advantage, s); },
       false},
      {"LinUCB", [&](std::uint64_t s) { return train(cur::LinUcb(features), Signal::advantage, s); }, true},
      {"learnability p(1-p)",
       [&](std::uint64_t s) {
         return train(cur::LearnabilitySampler(k, {.rate = 0.3}), Signal::pass_rate, s);
       },
       true},
  };

  std::vector<std::vector<std::vector<double>>> curves(entries.size());  // [entry][seed][step]
  for (std::size_t e = 0; e < entries.size(); ++e)
    for (int s = 0; s < kSeeds; ++s) curves[e].push_back(entries[e].run(static_cast<std::uint64_t>(s)));

  std::ostringstream table;
  table << std::fixed << std::setprecision(3);
  table
      << "| curriculum | final skill (mean ± std) | margin over uniform (mean ± std) | std. error | wins |\n"
      << "|---|---|---|---|---|\n";
  std::vector<double> uniform_final;
  for (const auto& c : curves[0]) uniform_final.push_back(c.back());
  for (std::size_t e = 0; e < entries.size(); ++e) {
    std::vector<double> final, margin;
    int wins = 0;
    for (int s = 0; s < kSeeds; ++s) {
      final.push_back(curves[e][static_cast<std::size_t>(s)].back());
      margin.push_back(final.back() - uniform_final[static_cast<std::size_t>(s)]);
      wins += margin.back() > 0.0 ? 1 : 0;
    }
    table << "| " << entries[e].name << " | " << mean_of(final) << " ± " << std_of(final) << " | ";
    if (e == 0) {
      table << "— | — | — |\n";
    } else {
      table << std::showpos << mean_of(margin) << std::noshowpos << " ± " << std_of(margin) << " | "
            << std_of(margin) / std::sqrt(static_cast<double>(kSeeds)) << " | " << wins << "/" << kSeeds
            << " |\n";
    }
  }
  std::cout << "Learned skill (mean success probability over " << kCategories << " categories) after "
            << kSteps << " steps of " << kBatch << " prompts x " << kGroup << " rollouts, " << kSeeds
            << " seeds:\n\n"
            << table.str();
  std::ofstream md(table_path);
  md << table.str();
  if (!md) {
    std::cerr << "cannot write " << table_path << "\n";
    return 1;
  }

  kaizen::plot::LinePlot plot(
      {.title = "Learned skill vs step (mean over " + std::to_string(kSeeds) + " seeds)",
       .x_label = "training step",
       .y_label = "mean success probability"});
  std::vector<double> xs;
  for (int t = 0; t <= kSteps; ++t) xs.push_back(t);
  for (std::size_t e = 0; e < entries.size(); ++e) {
    if (!entries[e].plotted) continue;
    std::vector<double> mean(xs.size()), lo(xs.size()), hi(xs.size());
    for (std::size_t t = 0; t < xs.size(); ++t) {
      std::vector<double> at;
      for (const auto& c : curves[e]) at.push_back(c[t]);
      mean[t] = mean_of(at);
      const double sd = std_of(at);
      lo[t] = mean[t] - sd, hi[t] = mean[t] + sd;
    }
    if (e <= 1)
      plot.add_series(entries[e].name, xs, mean, lo, hi);  // bands (± std) for uniform and SEC
    else
      plot.add_series(entries[e].name, xs, mean);
  }
  plot.write(plot_path);
  std::cout << "\nwrote " << table_path << " and " << plot_path << "\n";
  return 0;
}
