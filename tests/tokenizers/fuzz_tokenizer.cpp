// tests/tokenizers/fuzz_tokenizer.cpp - fuzzes the tokenizer.json parser, the encoder and the decoders.
// Any exception other than kaizen::Error, any sanitizer report or crash is a finding.
//
// Input: the first byte picks the target, the rest is its data:
//   0..127    tokenizer.json text -> tokenizer_from_json; when it loads, the text also goes through
//             encode / decode / StreamDecoder with that tokenizer;
//   128..191  text -> encode / decode round trip with a fixed tokenizer (Llama 3 split, NFC, added tokens);
//   192..255  bytes read as token ids -> decode and StreamDecoder of the fixed tokenizer.
// Two drivers:
//   libFuzzer:  clang++-14 -fsanitize=fuzzer,address,undefined -DKAIZEN_LIBFUZZER ... ; ./fuzz corpus/ -max_total_time=60
//   standalone: any compiler with -fsanitize=address,undefined; ./fuzz_tokenizer <seconds> <seed files...>
//               mutates the seeds at random (flips, inserts, deletions, splices, JSON tokens) for <seconds>.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <kaizen/tokenizers/bpe.hpp>
#include <kaizen/tokenizers/tokenizer_json.hpp>

namespace tk = kaizen::tokenizers;

namespace {

const tk::BpeTokenizer& fixed_tokenizer() {
  static const tk::BpeTokenizer tok = [] {
    const auto& alphabet = tk::ByteAlphabet::instance();
    tk::BpeConfig config;
    for (int b = 0; b < 256; ++b) config.vocab.emplace_back(alphabet.token_string(std::string(1, static_cast<char>(b))), b);
    const char* extra[] = {"Ġt", "he", "Ġthe", "in", "Ġa", "ĠĠ", "ĠĠĠĠ", "12", "ä¸", "ðŁ"};
    const std::pair<const char*, const char*> merges[] = {{"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"i", "n"},
                                                          {"Ġ", "a"}, {"Ġ", "Ġ"}, {"ĠĠ", "ĠĠ"}, {"1", "2"},
                                                          {"ä", "¸"}, {"ð", "Ł"}};
    for (std::size_t i = 0; i < std::size(extra); ++i) config.vocab.emplace_back(extra[i], 256 + static_cast<kaizen::TokenId>(i));
    for (const auto& [a, b] : merges) config.merges.emplace_back(a, b);
    config.added_tokens = {{"<|eot_id|>", 300, true, false, false}, {"<x>", 301, false, false, false}};
    config.pre_tokenizer = tk::family_pretokenizer("llama3");
    config.normalization = tk::Normalization::nfc;
    config.ignore_merges = true;
    config.eos_id = 300;
    config.source = "fuzz tokenizer";
    return tk::BpeTokenizer(std::move(config));
  }();
  return tok;
}

/// Encodes and decodes `text`. With `round_trip` (tokenizers that neither drop text nor strip white space
/// around added tokens) decode(encode(text)) must give the text back.
void exercise(const tk::BpeTokenizer& tok, std::string_view text, bool round_trip) {
  try {
    const auto ids = tok.encode(text, {.add_special_tokens = true});
    const auto plain = tok.encode(text);
    const std::string back = tok.decode(plain, {.skip_special_tokens = false});
    if (round_trip && back != text) {
      std::fprintf(stderr, "round trip failed for %zu bytes\n", text.size());
      std::abort();
    }
    tk::StreamDecoder stream(tok, {.skip_special_tokens = false});
    std::string streamed;
    for (const auto id : plain) streamed += stream.push(id);
    streamed += stream.finish();
    if (streamed != back) {
      std::fprintf(stderr, "stream decode differs from decode\n");
      std::abort();
    }
    (void)ids;
  } catch (const kaizen::Error&) {
  }
}

void decode_ids(const tk::BpeTokenizer& tok, const std::uint8_t* data, std::size_t size) {
  std::vector<kaizen::TokenId> ids;
  for (std::size_t i = 0; i + 1 < size; i += 2) ids.push_back((data[i] << 8 | data[i + 1]) % 320);
  try {
    const std::string all = tok.decode(ids, {.skip_special_tokens = false});
    tk::StreamDecoder stream(tok, {.skip_special_tokens = false});
    std::string streamed;
    for (const auto id : ids) {
      const std::string part = stream.push(id);
      if (tk::utf8::first_invalid(part)) std::abort();
      streamed += part;
    }
    streamed += stream.finish();
    if (streamed != all) std::abort();
  } catch (const kaizen::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if (mode < 128) {
    try {
      const auto tok = tk::tokenizer_from_json(rest, "fuzz.json");
      exercise(tok, rest.substr(0, 256), false);
      exercise(tok, "Hello world 123 <|im_end|> héllo 中文", false);
    } catch (const kaizen::Error&) {
    }
  } else if (mode < 192) {
    exercise(fixed_tokenizer(), rest, true);
  } else {
    decode_ids(fixed_tokenizer(), data + 1, size - 1);
  }
  return 0;
}

#ifndef KAIZEN_LIBFUZZER
namespace {

std::string mutate(std::string s, std::mt19937_64& rng, const std::vector<std::string>& pool) {
  static const char* tokens[] = {"\"", "{", "}", "[", "]", ",", ":", "null", "true", "0", "-1", "4294967296",
                                 "\\u0000", "\\ud800", "\"Sequence\"", "\"Split\"", "\"type\"", " ", "\xC3", "\xF0\x9F",
                                 "<|eot_id|>", "<x>", "\xCC\x81", "\t\n"};
  const int n = 1 + static_cast<int>(rng() % 8);
  for (int k = 0; k < n; ++k) {
    const std::size_t at = s.empty() ? 0 : rng() % (s.size() + 1);
    switch (rng() % 6) {
      case 0: if (!s.empty() && at < s.size()) s[at] = static_cast<char>(rng()); break;
      case 1: s.insert(at, tokens[rng() % std::size(tokens)]); break;
      case 2: if (at < s.size()) s.erase(at, 1 + rng() % 16); break;
      case 3: {  // splice a piece of another input
        const auto& o = pool[rng() % pool.size()];
        if (!o.empty()) {
          const std::size_t b = rng() % o.size();
          s.insert(at, o.substr(b, 1 + rng() % 64));
        }
        break;
      }
      case 4: if (at < s.size()) s.insert(at, s.substr(at, 1 + rng() % 32)); break;
      default: if (!s.empty() && at < s.size()) s[at] = static_cast<char>(s[at] ^ (1 << (rng() % 8))); break;
    }
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 60.0;
  std::vector<std::string> pool;
  for (int i = 2; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    pool.push_back(s.str());
  }
  pool.push_back(std::string("\x00", 1) + R"({"model": {"vocab": {}, "merges": []}, "decoder": {"type": "ByteLevel"}})");
  pool.push_back("\x80Hello world 123 <|eot_id|> h\xC3\xA9llo \xE4\xB8\xAD  <x>  \t\n");
  pool.push_back("\xC0\x01\x02\x01\x03\x00\xE2\x00\x82");
  std::mt19937_64 rng(12345);
  const auto start = std::chrono::steady_clock::now();
  std::size_t runs = 0;
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds) {
    const auto& seed = pool[rng() % pool.size()];
    std::string input = mutate(seed, rng, pool);
    if (rng() % 4 == 0 && !input.empty()) input[0] = static_cast<char>(rng());  // switch target
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
    if (rng() % 64 == 0 && pool.size() < 4096) pool.push_back(std::move(input));
    ++runs;
  }
  std::printf("fuzz_tokenizer: %zu inputs in %.0f s, no finding\n", runs, seconds);
  return 0;
}
#endif
