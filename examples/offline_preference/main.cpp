// offline_preference - offline preference optimisation (DPO, IPO, KTO, ORPO, SimPO or CPO) on a preference set
// built from the embedded addition task, through a JSON Lines file, on a laptop CPU:
//   1. write one pair per one-digit addition problem (100) to <out>/preferences.jsonl: prompt "a+b=", chosen =
//      the sum, rejected = the two operands side by side (the answer of a model that copies its prompt)
//   2. read the file back (kaizen::loop::load_preference_jsonl), split off --eval-fraction as held-out pairs
//      (every problem appears once, so held-out problems are never trained on)
//   3. train a tiny Llama (reference = a frozen copy of the start) with --loss for --steps steps
//   4. print the held-out reward accuracy (chosen's implicit reward above rejected's) and margin before and
//      after; every metrics record goes to <out>/metrics.jsonl
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/loop/metrics.hpp>
#include <kaizen/loop/offline_preference.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/tasks/tokenizer.hpp>

int main(int argc, char** argv) {
  using namespace kaizen;
  std::string out_dir = "out/offline_preference", loss = "dpo";
  int steps = 60, batch = 16, hidden = 32, layers = 2;
  double eval_fraction = 0.2, lr = 2e-3;
  std::uint64_t seed = 1;
  CLI::App app{"Offline preference optimisation on addition pairs read from JSON Lines"};
  app.add_option("--out", out_dir, "output folder");
  app.add_option("--loss", loss, "dpo, ipo, kto, orpo, simpo or cpo");
  app.add_option("--eval-fraction", eval_fraction, "fraction held out for evaluation");
  app.add_option("--steps", steps, "optimiser steps");
  app.add_option("--batch", batch, "pairs per step");
  app.add_option("--lr", lr, "AdamW learning rate");
  app.add_option("--hidden", hidden, "hidden size of the tiny Llama");
  app.add_option("--layers", layers, "decoder layers");
  app.add_option("--seed", seed, "seed");
  CLI11_PARSE(app, argc, argv);
  torch::set_num_threads(1);
  torch::manual_seed(seed);
  std::filesystem::create_directories(out_dir);

  // 1. The dataset, as text.
  const tasks::CharTokenizer tokenizer;
  const std::filesystem::path data_path = std::filesystem::path(out_dir) / "preferences.jsonl";
  {
    std::ofstream out(data_path);
    for (int a = 0; a <= 9; ++a)
      for (int b = 0; b <= 9; ++b)
        out << nlohmann::json{{"prompt", std::to_string(a) + "+" + std::to_string(b) + "="},
                              {"chosen", std::to_string(a + b)},
                              {"rejected", std::to_string(a) + std::to_string(b)}}
                   .dump()
            << '\n';
  }
  // 2. Read it back; completions end with the end-of-sequence token.
  auto tokenize = [&](const std::string& text) { return tokenizer.encode(text); };
  loop::PreferenceDataset data = loop::load_preference_jsonl(data_path, tokenize);
  for (auto& e : data.pairs) {
    e.chosen.push_back(tokenizer.eos_id());
    e.rejected.push_back(tokenizer.eos_id());
  }
  const auto [train, eval] = loop::split_preference_dataset(std::move(data), eval_fraction, seed);

  // 3. Train.
  lm::LlamaConfig c;
  c.vocab_size = tokenizer.vocab_size();
  c.hidden_size = hidden;
  c.intermediate_size = 2 * hidden;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 32;
  lm::LlamaModel policy(c), reference(c);
  reference.copy_from(policy);
  std::ofstream metrics(std::filesystem::path(out_dir) / "metrics.jsonl");
  loop::OfflinePreferenceConfig config{.loss = loss, .steps = steps, .batch_size = batch, .learning_rate = lr,
                                       .eval_every = 20, .seed = seed,
                                       .collate = {.pad_id = tokenizer.pad_id(), .vocab_size = tokenizer.vocab_size(),
                                                   .max_length = 32}};
  const auto run = loop::offline_preference(policy, train, eval, config, loop::JsonLinesWriter(metrics), &reference);

  // 4. Report.
  std::printf("%s on %zu training pairs, %zu held-out pairs, %d steps\n", loss.c_str(), train.pairs.size(),
              eval.pairs.size(), steps);
  std::printf("held-out reward accuracy %.3f -> %.3f, margin %.3f -> %.3f, loss %.4f -> %.4f\n",
              run.initial_eval.reward_accuracy, run.final_eval.reward_accuracy, run.initial_eval.margin,
              run.final_eval.margin, run.initial_eval.loss, run.final_eval.loss);
  return 0;
}
