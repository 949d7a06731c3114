// bench/tokenizers/bench_tokenizers.cpp - byte-level BPE encode throughput (MB/s), kaizen against Hugging
// Face `tokenizers`, both single-threaded, on the same documents (4,000 corpus entries in 100 documents:
// prose, code, CJK, emoji, digit and white-space runs, special tokens) for SmolLM2's tokenizer and the
// Qwen2-/Llama-3-style ones. The peer runs from Python (hf_peer.py) at the start of this program; the
// ratio kaizen MB/s / tokenizers MB/s is printed per family (goal >= 1).
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>

#include <kaizen/tokenizers/tokenizer_json.hpp>
// figures.hpp names benchmark::CSVReporter, deprecated in Google Benchmark 1.7 (-Werror); reported to the lead.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <support/figures.hpp>
#pragma GCC diagnostic pop

namespace {

namespace tk = kaizen::tokenizers;

struct Family {
  std::string name;
  std::string file;
  tk::TokenizerJsonOptions options;
};

std::vector<std::string> g_docs;
std::size_t g_bytes = 0;
std::map<std::string, std::unique_ptr<tk::BpeTokenizer>> g_tokenizers;

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return nlohmann::json::parse(s.str());
}

void BM_kaizen_encode(benchmark::State& state, const std::string& family) {
  const auto& tok = *g_tokenizers.at(family);
  std::vector<kaizen::TokenId> ids;
  for (const auto& d : g_docs) tok.encode_into(d, ids);  // warm the cache, as the peer does
  std::size_t tokens = 0;
  for (auto _ : state) {
    tokens = 0;
    for (const auto& d : g_docs) {
      ids.clear();
      tok.encode_into(d, ids);
      tokens += ids.size();
    }
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * g_bytes));
  state.counters["tokens"] = static_cast<double>(tokens);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = KAIZEN_TOKENIZERS_BENCH_DIR;
  const std::string python = KAIZEN_TOKENIZERS_PYTHON;
  const std::string cmd = "\"" + python + "\" \"" + KAIZEN_TOKENIZERS_BENCH_SCRIPT + "\" \"" + dir + "\"";
  const int rc = python.empty() ? -1 : std::system(cmd.c_str());
  if (rc != 0) {
    std::printf("KAIZEN_SKIP: the Hugging Face peer (%s) did not run (status %d); nothing to compare\n", cmd.c_str(), rc);
    return 0;
  }
  const auto peer = read_json(dir + "/hf_peer.json");
  g_docs = read_json(dir + "/bench_docs.json").get<std::vector<std::string>>();
  for (const auto& d : g_docs) g_bytes += d.size();
  const std::vector<Family> families = {
      {"smollm2", dir + "/fixtures/smollm2/tokenizer.json", {.eos_token = "<|im_end|>"}},
      {"qwen2", dir + "/fixtures/qwen2.json", {.eos_token = "<|im_end|>"}},
      {"llama3", dir + "/fixtures/llama3.json", {.eos_token = "<|eot_id|>"}},
  };
  for (const auto& f : families) {
    g_tokenizers[f.name] = std::make_unique<tk::BpeTokenizer>(tk::load_tokenizer_json(f.file, f.options));
    benchmark::RegisterBenchmark(("BM_kaizen_encode/" + f.name).c_str(), BM_kaizen_encode, f.name)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  return kaizen::bench::run(argc, argv, [&](const kaizen::bench::Results& r, kaizen::bench::Figures& fig) {
    for (const auto& f : families) {
      const double seconds = r.real_seconds("BM_kaizen_encode/" + f.name + "/real_time");
      if (std::isnan(seconds)) continue;
      const double kaizen_mbps = static_cast<double>(g_bytes) / seconds / 1e6;
      const double hf_mbps = peer.at(f.name).get<double>();
      fig.figure("encode_MBps_kaizen_" + f.name, kaizen_mbps, "MB/s", "kaizen BpeTokenizer::encode, 1 thread");
      fig.figure("encode_MBps_hf_" + f.name, hf_mbps, "MB/s", "HF tokenizers Tokenizer.encode, 1 thread (Python)");
      fig.ratio("encode_kaizen_over_hf_" + f.name, kaizen_mbps / hf_mbps, "encode throughput kaizen / HF tokenizers (goal >= 1)");
      // CPU time on both sides: immune to other processes holding the core during one side's run.
      const double cpu_seconds = r.cpu_seconds("BM_kaizen_encode/" + f.name + "/real_time");
      if (!std::isnan(cpu_seconds) && peer.contains(f.name + "_cpu")) {
        const double kaizen_cpu = static_cast<double>(g_bytes) / cpu_seconds / 1e6;
        const double hf_cpu = peer.at(f.name + "_cpu").get<double>();
        fig.figure("encode_MBps_cpu_kaizen_" + f.name, kaizen_cpu, "MB/s", "kaizen encode, per CPU second");
        fig.figure("encode_MBps_cpu_hf_" + f.name, hf_cpu, "MB/s", "HF tokenizers encode, per CPU second of its thread");
        fig.ratio("encode_cpu_kaizen_over_hf_" + f.name, kaizen_cpu / hf_cpu,
                  "encode throughput per CPU second kaizen / HF tokenizers (goal >= 1)");
      }
    }
  });
}
