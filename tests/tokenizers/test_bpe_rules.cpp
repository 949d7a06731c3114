// Byte-level BPE rules on hand-built vocabularies (merge order, ignore_merges, added tokens, split
// behaviours, streaming decode of split characters) and every error path's message.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <kaizen/tokenizers/bpe.hpp>
#include <kaizen/tokenizers/pretokenize.hpp>
#include <kaizen/tokenizers/tokenizer_json.hpp>

namespace tk = kaizen::tokenizers;
using kaizen::TokenId;
using Catch::Contains;

namespace {

/// A byte-level config: ids 0..255 are the bytes, then `extra` tokens (byte-level strings) in order.
tk::BpeConfig byte_config(const std::vector<std::string>& extra, const std::vector<std::pair<std::string, std::string>>& merges) {
  const auto& alphabet = tk::ByteAlphabet::instance();
  tk::BpeConfig config;
  for (int b = 0; b < 256; ++b) config.vocab.emplace_back(alphabet.token_string(std::string(1, static_cast<char>(b))), b);
  for (std::size_t i = 0; i < extra.size(); ++i) config.vocab.emplace_back(extra[i], 256 + static_cast<TokenId>(i));
  config.merges = merges;
  config.source = "test vocabulary";
  return config;
}

/// A minimal tokenizer.json text with the given merges and pre_tokenizer.
std::string json_text(const std::string& merges, const std::string& pre = "null", const std::string& extra = "") {
  const auto& alphabet = tk::ByteAlphabet::instance();
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[alphabet.token_string(std::string(1, static_cast<char>(b)))] = b;
  vocab["ab"] = 256;
  return R"({"model": {"type": "BPE", "vocab": )" + vocab.dump() + R"(, "merges": )" + merges + R"(}, "pre_tokenizer": )" +
         pre + R"(, "decoder": {"type": "ByteLevel"})" + extra + "}";
}

}  // namespace

TEST_CASE("BPE merges by rank, leftmost first", "[tokenizers]") {
  // "abc": with (b c) ranked before (a b) the result is a + bc; the other order gives ab + c.
  const tk::BpeTokenizer bc_first(byte_config({"bc", "ab"}, {{"b", "c"}, {"a", "b"}}));
  CHECK(bc_first.encode("abc") == std::vector<TokenId>{'a', 256});
  const tk::BpeTokenizer ab_first(byte_config({"bc", "ab"}, {{"a", "b"}, {"b", "c"}}));
  CHECK(ab_first.encode("abc") == std::vector<TokenId>{257, 'c'});
  // "aaa" with (a a): the leftmost pair merges first -> aa + a
  const tk::BpeTokenizer aa(byte_config({"aa"}, {{"a", "a"}}));
  CHECK(aa.encode("aaa") == std::vector<TokenId>{256, 'a'});
  CHECK(aa.encode("aaaa") == std::vector<TokenId>{256, 256});
  // cached path gives the same ids again
  CHECK(aa.encode("aaaa") == std::vector<TokenId>{256, 256});
}

TEST_CASE("ignore_merges emits a piece found in the vocabulary whole", "[tokenizers]") {
  // "abc" is in the vocabulary but no merge chain builds it: plain BPE gives ab + c.
  auto config = byte_config({"ab", "abc"}, {{"a", "b"}});
  const tk::BpeTokenizer plain(byte_config({"ab", "abc"}, {{"a", "b"}}));
  CHECK(plain.encode("abc") == std::vector<TokenId>{256, 'c'});
  config.ignore_merges = true;
  const tk::BpeTokenizer whole(std::move(config));
  CHECK(whole.encode("abc") == std::vector<TokenId>{257});
}

TEST_CASE("added tokens are cut out first, longest match, with lstrip and rstrip", "[tokenizers]") {
  auto config = byte_config({}, {});
  config.added_tokens = {{"<s>", 300, true, false, false}, {"<s>x", 301, false, false, false}, {"[M]", 302, true, true, true}};
  const tk::BpeTokenizer tok(std::move(config));
  CHECK(tok.encode("a<s>b") == std::vector<TokenId>{'a', 300, 'b'});
  CHECK(tok.encode("<s>x<s>") == std::vector<TokenId>{301, 300});
  CHECK(tok.encode("a  [M]  b") == std::vector<TokenId>{'a', 302, 'b'});
  CHECK(tok.decode(std::vector<TokenId>{'a', 300, 301}) == "a<s>x");  // special dropped, added kept
  CHECK(tok.decode(std::vector<TokenId>{'a', 300}, {.skip_special_tokens = false}) == "a<s>");
}

TEST_CASE("split behaviours", "[tokenizers]") {
  using B = tk::SplitBehavior;
  const auto pieces = [](B b, std::string_view text) {
    tk::PreTokenizer pre;
    pre.add({tk::Regex("-", "test"), b});
    std::vector<std::string> out;
    for (auto p : pre.split(text)) out.emplace_back(p);
    return out;
  };
  using V = std::vector<std::string>;
  CHECK(pieces(B::isolated, "a-b--c") == V{"a", "-", "b", "-", "-", "c"});
  CHECK(pieces(B::removed, "a-b--c") == V{"a", "b", "c"});
  CHECK(pieces(B::merged_with_previous, "a-b--c") == V{"a-", "b-", "-", "c"});
  CHECK(pieces(B::merged_with_next, "a-b--c") == V{"a", "-b", "-", "-c"});
  CHECK(pieces(B::contiguous, "a-b--c") == V{"a", "-", "b", "--", "c"});
  // the family patterns
  const auto gpt2 = tk::family_pretokenizer("gpt2").split("Hello world's 123  x");
  CHECK(std::vector<std::string>(gpt2.begin(), gpt2.end()) == V{"Hello", " world", "'s", " 123", " ", " x"});
  const auto smol = tk::family_pretokenizer("smollm").split("a 123");
  CHECK(std::vector<std::string>(smol.begin(), smol.end()) == V{"a", " ", "1", "2", "3"});
  const auto llama = tk::family_pretokenizer("llama3").split("12345 IT'S");
  CHECK(std::vector<std::string>(llama.begin(), llama.end()) == V{"123", "45", " IT", "'S"});
  const auto qwen = tk::family_pretokenizer("qwen2").split("123");
  CHECK(std::vector<std::string>(qwen.begin(), qwen.end()) == V{"1", "2", "3"});
}

TEST_CASE("streaming decode holds back a split UTF-8 character", "[tokenizers]") {
  const tk::BpeTokenizer tok(byte_config({}, {}));
  const std::string euro = "\xE2\x82\xAC";  // U+20AC, three bytes, three byte tokens
  const auto ids = tok.encode("a" + euro + "b");
  REQUIRE(ids.size() == 5);
  tk::StreamDecoder stream(tok);
  CHECK(stream.push(ids[0]) == "a");
  CHECK(stream.push(ids[1]).empty());
  CHECK(stream.pending_bytes() == 1);
  CHECK(stream.push(ids[2]).empty());
  CHECK(stream.push(ids[3]) == euro);
  CHECK(stream.push(ids[4]) == "b");
  // a character cut short by an invalid byte becomes U+FFFD, as decode() does
  const std::vector<TokenId> broken = {0xE2, 0x82, 'x'};
  tk::StreamDecoder s2(tok);
  std::string out;
  for (const TokenId id : broken) out += s2.push(id);
  out += s2.finish();
  CHECK(out == "\xEF\xBF\xBDx");
  CHECK(tok.decode(broken) == out);
  // a stream ending inside a character flushes U+FFFD
  tk::StreamDecoder s3(tok);
  CHECK(s3.push(0xF0).empty());
  CHECK(s3.finish() == "\xEF\xBF\xBD");
}

TEST_CASE("a number literal too large for a double is a kaizen::Error, not a crash (fuzz finding)", "[tokenizers]") {
  // The libFuzzer input crash-67124b9f (tests/tokenizers/fuzz_tokenizer.cpp, first byte 0x34 = tokenizer.json
  // mode) after its mode byte: nlohmann threw out_of_range.406 "number overflow", which escaped the parser.
  const std::string crash("4e444444.\xCC\xEC\xCB\xD1" "4422222222\x80", 24);
  CHECK_THROWS_WITH(tk::tokenizer_from_json(crash, "crash.json"), Contains("crash.json: malformed JSON") &&
                                                                     Contains("number overflow"));
  CHECK_THROWS_WITH(tk::tokenizer_from_json(R"({"model": {"vocab": {"a": 1e999}}})", "big.json"),
                    Contains("big.json: malformed JSON") && Contains("number overflow"));
  CHECK_THROWS_AS(tk::tokenizer_from_json(R"({"model": {"vocab": {"a": 1e999}}})", "big.json"), kaizen::Error);
}

TEST_CASE("tokenizer.json and encode errors name the file, key and entry", "[tokenizers]") {
  CHECK_THROWS_WITH(tk::tokenizer_from_json("{\"model\": ", "bad.json"), Contains("bad.json: malformed JSON at byte"));
  CHECK_THROWS_WITH(tk::tokenizer_from_json("[]", "x.json"), Contains("x.json: (root): expected a JSON object"));
  CHECK_THROWS_WITH(tk::tokenizer_from_json("{}", "x.json"), Contains("x.json: (root).model: missing"));
  CHECK_THROWS_WITH(tk::tokenizer_from_json(json_text(R"(["a q"])"), "m.json"),
                    Contains("m.json: merges[0] \"a q\": the merged token \"aq\" is not in the vocabulary"));
  CHECK_THROWS_WITH(tk::tokenizer_from_json(json_text(R"(["a b", ["zz", "b"]])"), "m.json"),
                    Contains("m.json: merges[1] \"zz b\": \"zz\" is not in the vocabulary"));
  CHECK_THROWS_WITH(tk::tokenizer_from_json(json_text(R"(["ab"])"), "m.json"),
                    Contains("model.merges[0]: \"ab\" is not two tokens separated by one space"));
  CHECK_THROWS_WITH(tk::tokenizer_from_json(json_text("[]", R"({"type": "Whitespace"})"), "p.json"),
                    Contains("p.json: pre_tokenizer.type: unsupported pre-tokenizer \"Whitespace\""));
  CHECK_THROWS_WITH(tk::tokenizer_from_json(json_text("[]", R"({"type": "Split", "pattern": {"Regex": "(("}, "behavior": "Isolated"})"), "p.json"),
                    Contains("p.json: pre_tokenizer.pattern: the pattern \"((\" does not compile"));
  CHECK_THROWS_WITH(tk::tokenizer_from_json(json_text("[]", "null", R"(, "normalizer": {"type": "NFKC"})"), "n.json"),
                    Contains("n.json: normalizer.type: unsupported normalizer \"NFKC\""));
  CHECK_THROWS_WITH(tk::tokenizer_from_json(json_text("[]", "null", R"(, "added_tokens": [{"id": 99999999, "content": "x"}])"), "a.json"),
                    Contains("a.json: added_tokens[0].id: id 99999999 is out of range"));
  CHECK_THROWS_WITH(tk::tokenizer_from_json(json_text("[]", "null", R"(, "added_tokens": [{"id": 5000000, "content": "x"}])"), "a.json"),
                    Contains("a.json: the largest id 5000000 is far past"));
  CHECK_THROWS_WITH(tk::load_tokenizer_json("/nonexistent/tokenizer.json"), Contains("cannot open \"/nonexistent/tokenizer.json\""));
  CHECK_THROWS_WITH(tk::tokenizer_from_json(json_text("[]"), "e.json", {.eos_token = "</s>"}),
                    Contains("e.json: the token \"</s>\" named in TokenizerJsonOptions is not in the vocabulary"));

  const auto tok = tk::tokenizer_from_json(json_text(R"(["a b"])"), "ok.json");
  CHECK(tok.encode("ab") == std::vector<TokenId>{256});
  CHECK_THROWS_WITH(tok.encode("a\xC3("), Contains("the text is not valid UTF-8 at byte 1 (0xC3)"));
  CHECK_THROWS_WITH(tok.decode(std::vector<TokenId>{1, 400}), Contains("token id 400 at position 1 is not in the vocabulary of ok.json"));
  CHECK_THROWS_WITH(tok.eos_id(), Contains("ok.json: BpeTokenizer::eos_id: no end-of-sequence token was configured"));
}

TEST_CASE("vocabulary, byte and normalisation errors", "[tokenizers]") {
  auto missing = byte_config({}, {});
  missing.vocab.erase(missing.vocab.begin() + 4);  // no token for byte 0x04
  const tk::BpeTokenizer tok(std::move(missing));
  CHECK_THROWS_WITH(tok.encode("a\x04"), Contains("byte 0x04 (in \"a\x04\") has no token in the vocabulary of test vocabulary"));

  auto dup = byte_config({"xy"}, {});
  dup.vocab.emplace_back("zz", 256);
  CHECK_THROWS_WITH(tk::BpeTokenizer(std::move(dup)), Contains("test vocabulary: id 256 is given to both \"xy\" and \"zz\""));

  auto nfc = byte_config({}, {});
  nfc.normalization = tk::Normalization::nfc;
  const tk::BpeTokenizer norm(std::move(nfc));
  CHECK(norm.decode(norm.encode("café 中文 😀"), {}) == "café 中文 😀");
  CHECK_THROWS_WITH(norm.encode("cafe\xCC\x81"), Contains("normalizer NFC: U+0301 at byte 4"));

  tk::GgufVocab g;
  g.tokens = {"a"};
  g.token_types = {1, 1};
  CHECK_THROWS_WITH(tk::tokenizer_from_gguf(g), Contains("GGUF: tokenizer.ggml.token_type has 2 entries for 1 tokens"));
  g.token_types = {9};
  CHECK_THROWS_WITH(tk::tokenizer_from_gguf(g), Contains("tokenizer.ggml.token_type[0] = 9 is not a token type"));
  const auto& alphabet = tk::ByteAlphabet::instance();
  g.tokens.clear();
  for (int b = 0; b < 256; ++b) g.tokens.push_back(alphabet.token_string(std::string(1, static_cast<char>(b))));
  g.token_types.clear();
  g.merges = {"a"};
  CHECK_THROWS_WITH(tk::tokenizer_from_gguf(g), Contains("tokenizer.ggml.merges[0] \"a\" is not two tokens"));
  g.merges = {"a b"};
  g.pre = "falcon";
  CHECK_THROWS_WITH(tk::tokenizer_from_gguf(g), Contains("tokenizer.ggml.pre: kaizen::tokenizers::family_pretokenizer: unknown pre-tokenizer \"falcon\""));
}
