// prm_search - PRM-guided step search (beam search, MCTS) against best-of-N at equal generated-token
// budget, on step-wise Countdown with a tiny Llama model and a briefly trained process reward model.
//
//   task:   "3,5,7>22:" -> "3*5=15;15+7=22<eos>" (as examples/rest_mcts: ';' ends a step, EOS the solution)
//   1. warm start: SFT on generated step solutions until a probe reaches --warm-start-target pass@1
//   2. PRM: one ReST-MCTS* iteration with the policy frozen (loop::rest_mcts, sft_steps = 0): MCTS* on
//      --train-prompts training problems gives quality-value targets, the value model (a separate trunk
//      initialised from the policy) is regressed on them for --prm-steps steps. Its AUC on held-out steps
//      (correct = valid and the target still reachable, by brute force) is printed before and after.
//   3. on --eval-prompts held-out problems, each method picks ONE answer per problem, and a verifier checks it:
//        best-of-N: N samples, the one whose PRM value (at its last token) is highest;
//        beam:      loop::StepSearchProblem + search::beam_search (width W, W next steps per beam node), the
//                   finished node with the highest PRM value;
//        MCTS:      ReST-MCTS* search rules (UCT, eager PRM values, roll-out blend) with S simulations and
//                   b steps per expansion, the terminal node with the highest value (search::best_terminal).
//                   With 3 steps at most, the tree is small: the branch b, more than S, sets its token cost.
//      Every token the policy generates is counted (duplicates and dropped tails included). best-of-N is
//      run at several N (a curve of accuracy against tokens per problem) and, for every search setting, at
//      the N whose token count matches that setting's.
//   Outputs: metrics.jsonl and accuracy_vs_tokens.svg in --out.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <common/countdown_steps.hpp>
#include <common/svg_plot.hpp>
#include <common/tiny_setup.hpp>
#include <kaizen/loop.hpp>
#include <kaizen/loop/rest_mcts.hpp>
#include <kaizen/loop/steps.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>
#include <kaizen/models/value_head.hpp>
#include <kaizen/search/beam.hpp>
#include <kaizen/search/mcts.hpp>
#include <kaizen/tasks.hpp>

namespace {

using kaizen::TokenId;

struct Options {
  std::string out_dir = "out/prm_search";
  int max_value = 6;
  int hidden_size = 64;
  int layers = 2;
  double warm_start_target = 0.15;
  int warm_start_steps = 3000;
  double warm_start_lr = 3e-3;
  int train_prompts = 192;
  int prm_simulations = 16;
  int prm_steps = 600;
  double prm_lr = 1e-3;
  int eval_prompts = 200;
  std::vector<int> beam_widths{2, 4};
  std::vector<std::string> mcts_settings{"8:2", "16:3", "32:6"};
  std::vector<int> best_of{1, 2, 4, 8, 16, 32};
  int threads = 1;
  std::uint64_t seed = 1;
};

using namespace countdown_steps;

/// One method's held-out result.
struct Result {
  std::string method;
  double tokens_per_problem = 0.0;
  double accuracy = 0.0;
  double seconds = 0.0;
  [[nodiscard]] nlohmann::json to_json() const {
    return {{"event", "method"}, {"method", method}, {"tokens_per_problem", tokens_per_problem}, {"accuracy", accuracy},
            {"seconds", seconds}};
  }
};

int run(const Options& o) {
  using namespace kaizen;
  const auto t_start = tiny::begin_run(o.out_dir, o.threads, o.seed);
  std::ofstream metrics_file(std::filesystem::path(o.out_dir) / "metrics.jsonl");
  const loop::JsonLinesWriter jsonl(metrics_file);

  const tasks::Countdown task({.min_numbers = 3, .max_numbers = 3, .max_value = o.max_value});
  const tasks::CharTokenizer tokenizer("0123456789+-*/()=>,: ;");
  const TokenId delimiter = tokenizer.encode(";").front();
  const tasks::HeldOutSplit<tasks::Countdown> split(task, static_cast<std::size_t>(o.eval_prompts), o.seed + 1000);
  const std::vector<Prompt> held_out = tiny::held_out_prompts(split, tokenizer);
  std::vector<Prompt> train;
  Rng data_rng(o.seed + 4000);
  for (int i = 0; i < o.train_prompts; ++i) train.push_back(tasks::make_prompt(split.train(-1, data_rng), tokenizer));

  const lm::LlamaConfig config = tiny::llama_config(tokenizer, {.hidden_size = o.hidden_size, .layers = o.layers, .context = 48});
  lm::LlamaModel model(config);
  lm::LlamaSampler sampler(model, tokenizer);
  StepVerifier verifier{&tokenizer};
  SamplingParams sampling;
  sampling.temperature = 1.0;
  sampling.max_new_tokens = 30;
  sampling.stop_tokens = {tokenizer.eos_id()};
  const CollateOptions collate{.pad_id = tokenizer.pad_id(), .vocab_size = config.vocab_size, .padding = Padding::right,
                               .max_length = config.max_position_embeddings};
  const loop::StepSegmenter segmenter{.delimiter = delimiter, .end_tokens = {tokenizer.eos_id()}, .max_step_tokens = 10,
                                      .max_steps = 3};

  // 1. Warm start.
  const std::int64_t warm_steps = tiny::warm_start(
      model, sampler, verifier, split, tokenizer, sampling, collate, o.warm_start_target, o.warm_start_steps,
      o.warm_start_lr, o.seed,
      [&](const tasks::Problem& p, Rng&) {
        std::vector<TokenId> ids = tokenizer.encode(answer_steps(p));
        ids.push_back(tokenizer.eos_id());
        return ids;
      },
      jsonl);
  SamplingParams eval_params = sampling;
  eval_params.seed = o.seed + 99;
  const tiny::HeldOut pass1 = tiny::measure(sampler, verifier, std::span<const Prompt>(held_out), 4, eval_params);
  std::fprintf(stderr, "kaizen prm_search: Countdown (3 numbers in [1, %d]) in steps, Llama %d x %d; warm start %lld "
               "steps, held-out pass@1 %.3f (mean length %.1f tokens)\n",
               o.max_value, o.layers, o.hidden_size, static_cast<long long>(warm_steps), pass1.pass_at_1, pass1.mean_length);
  jsonl({{"event", "warm_start"}, {"sft_steps", warm_steps}, {"held_out", pass1.to_json()}});

  // Held-out steps for the PRM's AUC: warm-start solutions of the held-out problems, split at ';'.
  std::vector<std::vector<TokenId>> auc_seq;
  std::vector<std::vector<std::int64_t>> auc_ends;
  std::vector<bool> auc_label;
  {
    std::vector<Prompt> rep;
    for (const Prompt& p : held_out)
      for (int k = 0; k < 4; ++k) rep.push_back(p);
    SamplingParams p = sampling;
    p.seed = o.seed + 555;
    const std::vector<Completion> c = sampler.sample(std::span<const Prompt>(rep), p);
    for (std::size_t i = 0; i < c.size(); ++i)
      label_steps(rep[i], c[i], segmenter, tokenizer, auc_seq, auc_ends, auc_label);
  }

  // 2. The PRM: one ReST-MCTS* iteration with the policy frozen.
  lm::ValueModel value(config);
  value.init_trunk_from(model);
  auto value_auc = [&] { return auc(lm::score_paths(value, auc_seq, auc_ends, 256, tokenizer.pad_id()), auc_label); };
  const double auc_before = value_auc();
  loop::RestMctsConfig rc;
  rc.iterations = 1;
  rc.search.simulations = static_cast<std::size_t>(o.prm_simulations);
  rc.search.leaves_per_round = 4;
  rc.steps.segmenter = segmenter;
  rc.steps.sampling = sampling;
  rc.steps.oversample = 2;
  rc.prm_steps = o.prm_steps;
  rc.prm_batch = 64;
  rc.prm_optimizer.learning_rate = o.prm_lr;
  rc.sft_steps = 0;  // the policy stays the warm start
  rc.pad_id = tokenizer.pad_id();
  rc.collate = collate;
  rc.seed = o.seed + 5;
  auto decode = [&](std::span<const TokenId> t) { return tokenizer.decode(t); };
  const auto t_prm = std::chrono::steady_clock::now();
  const loop::RestMctsResult prm_run =
      loop::rest_mcts(model, sampler, value, verifier, std::span<const Prompt>(train), rc, {}, {}, decode);
  const double auc_after = value_auc();
  const nlohmann::json& rec = prm_run.history.front();
  std::fprintf(stderr, "PRM: %lld targets from MCTS* on %d training problems (%lld tokens), %d steps, loss %.4f, %.0f s; "
               "held-out step AUC %.3f -> %.3f (%zu steps, %lld correct)\n",
               static_cast<long long>(rec.value("prm_examples", std::int64_t{0})), o.train_prompts,
               static_cast<long long>(rec["generated_tokens"].get<std::int64_t>()), o.prm_steps,
               rec.value("prm_final_loss", 0.0), tiny::seconds_since(t_prm), auc_before, auc_after, auc_label.size(),
               static_cast<long long>(std::count(auc_label.begin(), auc_label.end(), true)));
  jsonl({{"event", "prm"}, {"iteration", rec}, {"auc_before", auc_before}, {"auc_after", auc_after}});

  // 3. Held-out comparison.
  auto path_completion = [&](const search::Tree<loop::StepState>& tree, search::NodeId id) {
    Completion c;
    for (search::NodeId n : tree.path(id)) {
      const auto t = tree.tokens(n);
      c.tokens.insert(c.tokens.end(), t.begin(), t.end());
    }
    c.finish = !c.tokens.empty() && segmenter.is_end(c.tokens.back()) ? FinishReason::stop : FinishReason::length;
    return c;
  };
  const auto problems = static_cast<double>(held_out.size());
  std::vector<Result> results;

  // best-of-N, PRM-selected: N samples per problem in one sampler call, the PRM scores each at its last token.
  auto best_of = [&](int n) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<Prompt> rep = loop::repeat_prompts(std::span<const Prompt>(held_out), n);
    SamplingParams p = sampling;
    p.seed = o.seed * 31 + static_cast<std::uint64_t>(n);
    const std::vector<Completion> c = sampler.sample(std::span<const Prompt>(rep), p);
    std::vector<std::vector<TokenId>> seq;
    std::vector<std::vector<std::int64_t>> ends;
    std::int64_t tokens = 0;
    for (std::size_t i = 0; i < c.size(); ++i) {
      tokens += static_cast<std::int64_t>(c[i].tokens.size());
      std::vector<TokenId> s = rep[i].tokens;
      s.insert(s.end(), c[i].tokens.begin(), c[i].tokens.end());
      ends.push_back({static_cast<std::int64_t>(s.size())});
      seq.push_back(std::move(s));
    }
    const std::vector<double> v = lm::score_paths(value, seq, ends, 512, tokenizer.pad_id());
    double correct = 0.0;
    for (std::size_t q = 0; q < held_out.size(); ++q) {
      std::size_t best = q * static_cast<std::size_t>(n);
      for (std::size_t i = best; i < (q + 1) * static_cast<std::size_t>(n); ++i)
        if (v[i] > v[best]) best = i;
      correct += verifier(held_out[q], c[best]) ? 1.0 : 0.0;
    }
    return Result{"best-of-" + std::to_string(n), static_cast<double>(tokens) / problems, correct / problems,
                  tiny::seconds_since(t0)};
  };
  std::vector<double> bon_tokens, bon_accuracy;
  for (int n : o.best_of) {
    results.push_back(best_of(n));
    bon_tokens.push_back(results.back().tokens_per_problem);
    bon_accuracy.push_back(results.back().accuracy);
  }
  const double mean_len = results.front().tokens_per_problem / static_cast<double>(o.best_of.front());

  // A search method over every held-out problem: `search_one(problem) -> (chosen node or none)`.
  loop::StepSearchOptions so{.segmenter = segmenter, .sampling = sampling, .oversample = 1, .seed = 0};
  auto run_search = [&](const std::string& name, auto&& search_one) {
    const auto t0 = std::chrono::steady_clock::now();
    std::uint64_t tokens = 0;
    double correct = 0.0;
    for (std::size_t q = 0; q < held_out.size(); ++q) {
      lm::ValueModelEvaluator evaluator(value, held_out[q].tokens, 0.0, 0, tokenizer.pad_id());
      so.seed = o.seed * 1000003 + q;
      loop::StepSearchProblem problem(sampler, evaluator, held_out[q], so);
      search::Tree<loop::StepState> tree;
      const std::optional<search::NodeId> chosen = search_one(problem, tree);
      tokens += problem.generated_tokens();
      if (chosen) correct += verifier(held_out[q], path_completion(tree, *chosen)) ? 1.0 : 0.0;
    }
    return Result{name, static_cast<double>(tokens) / problems, correct / problems, tiny::seconds_since(t0)};
  };
  std::vector<Result> searches;
  for (int w : o.beam_widths) {
    searches.push_back(run_search("beam W=" + std::to_string(w), [&](auto& problem, search::Tree<loop::StepState>& tree) {
      const search::BeamResult r = search::beam_search(
          problem, tree, {.beam_width = static_cast<std::size_t>(w), .expansions_per_beam = static_cast<std::uint32_t>(w),
                          .max_depth = static_cast<std::size_t>(segmenter.max_steps)});
      return r.finished.empty() ? std::optional<search::NodeId>() : std::optional<search::NodeId>(r.finished.front());
    }));
  }
  for (const std::string& setting : o.mcts_settings) {
    const std::size_t colon = setting.find(':');
    KAIZEN_CHECK(colon != std::string::npos, "prm_search: --mcts expects SIMULATIONS:BRANCH, got ", setting);
    const int s = std::stoi(setting.substr(0, colon)), branch = std::stoi(setting.substr(colon + 1));
    searches.push_back(run_search("MCTS S=" + std::to_string(s) + " b=" + std::to_string(branch),
                                  [&](auto& problem, search::Tree<loop::StepState>& tree) {
      search::MctsOptions mo = loop::rest_mcts_search_defaults();
      mo.simulations = static_cast<std::size_t>(s);
      mo.branch = static_cast<std::uint32_t>(branch);
      mo.leaves_per_round = 4;
      search::Mcts mcts(problem, mo);
      mcts.search();
      const std::optional<search::NodeId> best = search::best_terminal(mcts.tree());
      tree = mcts.tree();
      return best;
    }));
  }
  // best-of-N at the token count of each search setting.
  std::vector<std::pair<Result, Result>> matched;
  for (const Result& s : searches) {
    const int n = std::max(1, static_cast<int>(std::lround(s.tokens_per_problem / mean_len)));
    matched.emplace_back(s, best_of(n));
  }

  // 4. Summary.
  std::printf("held-out accuracy of the chosen answer (%zu problems; warm-start pass@1 %.3f; PRM AUC %.3f -> %.3f)\n",
              held_out.size(), pass1.pass_at_1, auc_before, auc_after);
  std::printf("  %-16s %12s %9s %8s\n", "method", "tokens/prob", "accuracy", "seconds");
  for (const Result& r : results) {
    std::printf("  %-16s %12.1f %9.3f %8.1f\n", r.method.c_str(), r.tokens_per_problem, r.accuracy, r.seconds);
    jsonl(r.to_json());
  }
  std::printf("equal generated-token budget (PRM-guided search vs PRM-selected best-of-N):\n");
  std::vector<double> beam_t, beam_a, mcts_t, mcts_a;
  for (const auto& [s, b] : matched) {
    std::printf("  %-14s %7.1f tokens  accuracy %.3f  |  %-12s %7.1f tokens  accuracy %.3f  |  difference %+.3f\n",
                s.method.c_str(), s.tokens_per_problem, s.accuracy, b.method.c_str(), b.tokens_per_problem, b.accuracy,
                s.accuracy - b.accuracy);
    jsonl(s.to_json());
    nlohmann::json m = b.to_json();
    m["matched_to"] = s.method;
    jsonl(m);
    (s.method.rfind("beam", 0) == 0 ? beam_t : mcts_t).push_back(s.tokens_per_problem);
    (s.method.rfind("beam", 0) == 0 ? beam_a : mcts_a).push_back(s.accuracy);
  }
  plot::LinePlot fig({.title = "Held-out accuracy at equal generated tokens", .x_label = "generated tokens per problem",
                      .y_label = "accuracy of the chosen answer"});
  fig.add_series("best-of-N (PRM-selected)", bon_tokens, bon_accuracy);
  if (!beam_t.empty()) fig.add_series("PRM beam search", beam_t, beam_a);
  if (!mcts_t.empty()) fig.add_series("PRM MCTS", mcts_t, mcts_a);
  const std::string plot_path = (std::filesystem::path(o.out_dir) / "accuracy_vs_tokens.svg").string();
  fig.write(plot_path);
  tiny::print_outputs(tiny::seconds_since(t_start), o.out_dir, plot_path);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"kaizen PRM-guided beam search and MCTS vs best-of-N at equal token budget on step-wise Countdown"};
  app.add_option("--out", o.out_dir, "output folder (metrics.jsonl, accuracy_vs_tokens.svg)");
  app.add_option("--max-value", o.max_value, "numbers lie in [1, max-value]");
  app.add_option("--hidden-size", o.hidden_size, "model width");
  app.add_option("--layers", o.layers, "decoder layers");
  app.add_option("--warm-start-target", o.warm_start_target, "warm start stops at this probe pass@1");
  app.add_option("--warm-start-steps", o.warm_start_steps, "most warm-start steps");
  app.add_option("--train-prompts", o.train_prompts, "training problems searched for PRM targets");
  app.add_option("--prm-simulations", o.prm_simulations, "MCTS* simulations per training problem");
  app.add_option("--prm-steps", o.prm_steps, "PRM training steps");
  app.add_option("--prm-lr", o.prm_lr, "PRM learning rate");
  app.add_option("--eval-prompts", o.eval_prompts, "held-out problems");
  app.add_option("--beam-widths", o.beam_widths, "beam widths W (W next steps per beam node)");
  app.add_option("--mcts", o.mcts_settings, "MCTS settings SIMULATIONS:BRANCH (steps proposed per expansion)");
  app.add_option("--best-of", o.best_of, "N of the best-of-N curve");
  app.add_option("--threads", o.threads, "LibTorch threads");
  app.add_option("--seed", o.seed, "seed");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prm_search: %s\n", e.what());
    return 1;
  }
}
