// GGUF: metadata of every value type, tensor infos, dequantisation bit-equal to the `gguf` Python
// package (small files it wrote, and every tensor of SmolLM2-135M-Instruct), and malformed input.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <kaizen/io/gguf.hpp>

#include "io_fixtures.hpp"

namespace fs = std::filesystem;
using namespace kaizen::io;
using Catch::Contains;

namespace {

// A minimal GGUF byte writer for malformed-input tests.
struct Bytes {
  std::vector<std::byte> b;
  template <class T>
  Bytes& put(T v) {
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
    return *this;
  }
  Bytes& str(const std::string& s) {
    put<std::uint64_t>(s.size());
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    b.insert(b.end(), p, p + s.size());
    return *this;
  }
  Bytes& pad_to(std::size_t align) {
    while (b.size() % align != 0) b.push_back(std::byte{0});
    return *this;
  }
  Bytes& zeros(std::size_t n) {
    b.insert(b.end(), n, std::byte{0});
    return *this;
  }
};

Bytes header(std::uint64_t n_tensors, std::uint64_t n_kv, std::uint32_t version = 3) {
  Bytes x;
  x.put<std::uint32_t>(kGgufMagic).put<std::uint32_t>(version).put<std::uint64_t>(n_tensors).put<std::uint64_t>(n_kv);
  return x;
}

// One F32 tensor info with the given dims/type/offset.
void tensor_info(Bytes& x, const std::string& name, std::vector<std::uint64_t> ne, std::uint32_t type, std::uint64_t offset) {
  x.str(name).put<std::uint32_t>(static_cast<std::uint32_t>(ne.size()));
  for (auto e : ne) x.put<std::uint64_t>(e);
  x.put<std::uint32_t>(type).put<std::uint64_t>(offset);
}

}  // namespace

TEST_CASE("ggml type table equals gguf-py's GGML_QUANT_SIZES", "[io][gguf]") {
  const auto dir = io_test::fixture("gguf_small");
  if (!dir) return;
  const auto m = nlohmann::json::parse(io_test::read_text(*dir / "manifest.json"))["__quant_sizes__"];
  std::size_t found = 0;
  for (const auto& t : kGgmlTypes) {
    INFO(t.name);
    REQUIRE(m.contains(std::string(t.name)));
    CHECK(m[std::string(t.name)][0].get<std::uint32_t>() == t.block_size);
    CHECK(m[std::string(t.name)][1].get<std::uint32_t>() == t.type_size);
    ++found;
  }
  CHECK(found == m.size());
}

TEST_CASE("small GGUF from GGUFWriter: metadata of every type and tensors bit-equal to gguf.quants.dequantize",
          "[io][gguf]") {
  const auto dir = io_test::fixture("gguf_small");
  if (!dir) return;
  GgufFile f(*dir / "small.gguf");
  CHECK(f.version() == 3);
  CHECK(f.alignment() == 32);
  CHECK(f.get_string("general.architecture") == "llama");
  CHECK(f.at("test.u8").type == GgufType::UINT8);
  CHECK(f.get_int("test.u8") == 200);
  CHECK(f.get_int("test.i8") == -100);
  CHECK(f.get_int("test.u16") == 60000);
  CHECK(f.get_int("test.i16") == -30000);
  CHECK(f.get_int("test.u32") == 4000000000LL);
  CHECK(f.get_int("test.i32") == -2000000000LL);
  CHECK(f.get_float("test.f32") == static_cast<double>(0.1f));
  CHECK(std::get<std::uint64_t>(f.at("test.u64").value) == (1ULL << 63) + 5);
  CHECK_THROWS_WITH(f.get_int("test.u64"), Contains("key 'test.u64'") && Contains("does not fit int64"));
  CHECK(f.get_int("test.i64") == -(1LL << 62));
  CHECK(f.get_float("test.f64") == 0.1);
  CHECK(f.get_bool("test.bool"));
  CHECK(f.get_string("test.str") == "h\xc3\xa9llo \xe2\x9c\x93");
  const auto& ai = f.get_array("test.arr_i32");
  CHECK(ai.element_type == GgufType::INT32);
  REQUIRE(ai.values.size() == 3);
  CHECK(std::get<std::int64_t>(ai.values[1].value) == -2);
  CHECK(f.get_string_array("test.arr_str") == std::vector<std::string>{"a", "", "ccc"});
  const auto& af = f.get_array("test.arr_f32");
  CHECK(af.element_type == GgufType::FLOAT32);
  CHECK(std::get<double>(af.values[1].value) == -1.25);
  const auto& nested = f.get_array("test.arr_nested");
  CHECK(nested.element_type == GgufType::ARRAY);
  REQUIRE(nested.values.size() == 2);
  CHECK(std::get<GgufArray>(nested.values[0].value).values.size() == 2);
  CHECK(std::get<GgufArray>(nested.values[1].value).values.size() == 1);
  CHECK_THROWS_WITH(f.get_string("test.u8"), Contains("small.gguf") && Contains("key 'test.u8' has type uint8, expected string"));
  CHECK_THROWS_WITH(f.at("no.such.key"), Contains("small.gguf") && Contains("missing metadata key 'no.such.key'"));
  CHECK_THROWS_WITH(f.tensor("nope"), Contains("small.gguf") && Contains("missing tensor 'nope'"));

  const auto manifest = nlohmann::json::parse(io_test::read_text(*dir / "manifest.json"));
  std::size_t compared = 0;
  for (const auto& t : f.tensors()) {
    INFO(t.name);
    const auto& m = manifest.at(t.name);
    CHECK(ggml_type_name(t.type) == m["type"].get<std::string>());
    CHECK(t.shape() == m["shape"].get<std::vector<std::int64_t>>());
    CHECK(f.contents().data_start + t.offset == m["offset"].get<std::uint64_t>());
    const auto got = f.dequantize(t);
    const auto want = io_test::read_f32(*dir / (t.name + ".f32"));
    REQUIRE(got.size() == want.size());
    CHECK(io_test::bit_equal(got, want));
    ++compared;
  }
  CHECK(compared == 13);  // F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K
}

TEST_CASE("every prefix of a GGUF file is refused with a kaizen::Error, never a crash", "[io][gguf]") {
  const auto dir = io_test::fixture("gguf_small");
  if (!dir) return;
  const auto bytes = io_test::read_bytes(*dir / "small.gguf");
  GgufContents full = parse_gguf(bytes, "small.gguf");
  std::size_t last_needed = full.data_start;
  for (const auto& t : full.tensors) last_needed = std::max<std::size_t>(last_needed, full.data_start + t.offset + t.n_bytes);
  for (std::size_t n = 0; n < last_needed; n += (n < 2048 ? 1 : 97)) {
    INFO("prefix " << n);
    CHECK_THROWS_AS(parse_gguf(std::span(bytes).first(n), "cut.gguf"), kaizen::Error);
  }
  CHECK_THROWS_WITH(parse_gguf(std::span(bytes).first(100), "cut.gguf"), Contains("GGUF 'cut.gguf'") && Contains("truncated file"));
}

TEST_CASE("SmolLM2-135M-Instruct GGUF: metadata, and every tensor bit-equal to gguf.quants.dequantize", "[io][gguf][smollm2]") {
  const auto dir = io_test::fixture("gguf_smollm2");
  if (!dir) return;
  const auto manifest = nlohmann::json::parse(io_test::read_text(*dir / "manifest.json"));
  GgufFile f(manifest["path"].get<std::string>());
  CHECK(f.version() == 3);
  CHECK(f.get_string("general.architecture") == "llama");
  CHECK(f.get_int("llama.block_count") == 30);
  CHECK(f.get_int("llama.embedding_length") == 576);
  CHECK(f.get_int("llama.feed_forward_length") == 1536);
  CHECK(f.get_int("llama.attention.head_count") == 9);
  CHECK(f.get_int("llama.attention.head_count_kv") == 3);
  CHECK(f.get_int("llama.rope.dimension_count") == 64);
  CHECK(f.get_int("llama.vocab_size") == 49152);
  CHECK(f.get_int("llama.context_length") == 8192);
  CHECK(f.get_float("llama.rope.freq_base") == 100000.0);
  CHECK(f.get_float("llama.attention.layer_norm_rms_epsilon") == static_cast<double>(1e-5f));
  CHECK(f.get_string("tokenizer.ggml.model") == "gpt2");
  CHECK(f.get_string("tokenizer.ggml.pre") == "smollm");
  CHECK(f.get_array("tokenizer.ggml.tokens").values.size() == 49152);
  CHECK(f.get_array("tokenizer.ggml.merges").values.size() == 48900);
  CHECK(f.get_int("tokenizer.ggml.bos_token_id") == 1);
  CHECK(f.get_int("tokenizer.ggml.eos_token_id") == 2);
  CHECK(f.get_int("tokenizer.ggml.padding_token_id") == 2);
  CHECK_FALSE(f.get_bool("tokenizer.ggml.add_bos_token"));
  CHECK_THAT(f.get_string("tokenizer.chat_template"), Contains("<|im_start|>"));
  std::map<std::string, int> types;
  for (const auto& t : f.tensors()) ++types[std::string(ggml_type_name(t.type))];
  CHECK(types == std::map<std::string, int>{{"F32", 61}, {"Q4_1", 210}, {"Q8_0", 1}});

  const auto& tensors = manifest["tensors"];
  REQUIRE(f.tensors().size() == tensors.size());
  std::size_t equal = 0;
  for (const auto& t : f.tensors()) {
    INFO(t.name);
    const auto& m = tensors.at(t.name);
    CHECK(t.shape() == m["shape"].get<std::vector<std::int64_t>>());
    const auto values = f.dequantize(t);
    const bool same = io_test::sha256_hex(values.data(), values.size() * 4) == m["sha256"].get<std::string>();
    CHECK(same);
    equal += same ? 1 : 0;
  }
  CHECK(equal == 272);
}

TEST_CASE("malformed GGUF files are refused with the file and offending key/tensor/offset named", "[io][gguf]") {
  {  // a valid file to start from: one key, two tensors
    Bytes x = header(2, 1);
    x.str("general.architecture").put<std::uint32_t>(8).str("llama");
    tensor_info(x, "a", {4}, 0, 0);
    tensor_info(x, "b", {32}, 8, 32);
    x.pad_to(32).zeros(32 + 34);
    const auto c = parse_gguf(x.b, "ok.gguf");
    CHECK(c.tensors.size() == 2);
    CHECK(c.data_start % 32 == 0);
    Bytes v2 = x;  // version 2 has the same layout
    const std::uint32_t two = 2;
    std::memcpy(v2.b.data() + 4, &two, 4);
    CHECK(parse_gguf(v2.b, "v2.gguf").version == 2);
    CHECK(c.tensors[1].n_bytes == 34);
  }
  {
    Bytes x;
    x.put<std::uint32_t>(0x12345678).put<std::uint32_t>(3).put<std::uint64_t>(0).put<std::uint64_t>(0);
    CHECK_THROWS_WITH(parse_gguf(x.b, "m.gguf"), Contains("GGUF 'm.gguf'") && Contains("not a GGUF file"));
  }
  CHECK_THROWS_WITH(parse_gguf(header(0, 0, 1).b, "v1.gguf"), Contains("'v1.gguf'") && Contains("version 1 is not supported"));
  CHECK_THROWS_WITH(parse_gguf(header(0, 0, 0x03000000).b, "be.gguf"), Contains("big-endian"));
  {
    Bytes x = header(1, 0);
    tensor_info(x, "w", {32}, 99, 0);
    x.pad_to(32).zeros(64);
    CHECK_THROWS_WITH(parse_gguf(x.b, "q.gguf"), Contains("'q.gguf'") && Contains("tensor 'w' has unknown quantisation type 99"));
  }
  {
    Bytes x = header(1, 0);
    tensor_info(x, "w", {64}, 0, 0);  // needs 256 bytes
    x.pad_to(32).zeros(100);
    CHECK_THROWS_WITH(parse_gguf(x.b, "r.gguf"), Contains("'r.gguf'") && Contains("tensor 'w' data [0, 0 + 256) is out of range") &&
                                                      Contains("holds 100 bytes"));
  }
  {
    Bytes x = header(1, 0);
    tensor_info(x, "w", {4}, 0, std::uint64_t{1} << 63);
    x.pad_to(32).zeros(16);
    CHECK_THROWS_WITH(parse_gguf(x.b, "r2.gguf"), Contains("tensor 'w'") && Contains("out of range"));
  }
  {
    Bytes x = header(2, 0);
    tensor_info(x, "a", {16}, 0, 0);
    tensor_info(x, "b", {4}, 0, 32);  // a covers [0, 64)
    x.pad_to(32).zeros(64);
    CHECK_THROWS_WITH(parse_gguf(x.b, "o.gguf"), Contains("'o.gguf'") && Contains("tensor 'b' data at offset 32 overlaps tensor 'a' [0, 64)"));
  }
  {
    Bytes x = header(1, 0);
    tensor_info(x, "a", {4}, 0, 8);
    x.pad_to(32).zeros(64);
    CHECK_THROWS_WITH(parse_gguf(x.b, "al.gguf"), Contains("tensor 'a' offset 8 is not a multiple of the alignment 32"));
  }
  {
    Bytes x = header(1, 0);
    tensor_info(x, "a", {33}, 8, 0);
    x.pad_to(32).zeros(64);
    CHECK_THROWS_WITH(parse_gguf(x.b, "blk.gguf"), Contains("tensor 'a': row length 33 is not a multiple of the Q8_0 block size 32"));
  }
  {
    Bytes x = header(1, 0);
    tensor_info(x, "a", {1ULL << 32, 1ULL << 32}, 0, 0);
    CHECK_THROWS_WITH(parse_gguf(x.b, "ov.gguf"), Contains("tensor 'a': element count overflows"));
  }
  {
    Bytes x = header(0, 1);
    x.str("big").put<std::uint32_t>(9).put<std::uint32_t>(4).put<std::uint64_t>(1ULL << 60);
    CHECK_THROWS_WITH(parse_gguf(x.b, "arr.gguf"), Contains("'arr.gguf'") && Contains("key 'big' declares an array of 1152921504606846976 uint32"));
  }
  {
    Bytes x = header(0, 1);
    x.put<std::uint64_t>(1ULL << 40).zeros(16);  // key length far past the end
    CHECK_THROWS_WITH(parse_gguf(x.b, "s.gguf"), Contains("truncated file: reading a metadata key needs 1099511627776 bytes at offset 32"));
  }
  {  // an empty array is legal
    Bytes x = header(0, 1);
    x.str("e").put<std::uint32_t>(9).put<std::uint32_t>(8).put<std::uint64_t>(0);
    const auto c = parse_gguf(x.b, "empty.gguf");
    CHECK(std::get<GgufArray>(c.metadata.at(0).second.value).values.empty());
    CHECK(std::get<GgufArray>(c.metadata.at(0).second.value).element_type == GgufType::STRING);
  }
  {
    Bytes x = header(0, 2);
    x.str("k").put<std::uint32_t>(4).put<std::uint32_t>(1);
    x.str("k").put<std::uint32_t>(4).put<std::uint32_t>(2);
    CHECK_THROWS_WITH(parse_gguf(x.b, "d.gguf"), Contains("duplicate metadata key 'k'"));
  }
  {
    Bytes x = header(0, 1);
    x.str("k").put<std::uint32_t>(13);
    CHECK_THROWS_WITH(parse_gguf(x.b, "t.gguf"), Contains("key 'k' has unknown value type 13"));
  }
  {
    Bytes x = header(0, 1);
    x.str("general.alignment").put<std::uint32_t>(4).put<std::uint32_t>(24);
    CHECK_THROWS_WITH(parse_gguf(x.b, "a.gguf"), Contains("'general.alignment' must be a uint32 power of two"));
  }
  {
    Bytes x = header(std::uint64_t{1} << 40, 0);
    CHECK_THROWS_WITH(parse_gguf(x.b, "n.gguf"), Contains("truncated file") && Contains("tensors declared"));
  }
  {
    Bytes x = header(0, 1);
    // arrays nested three deep
    x.str("deep").put<std::uint32_t>(9).put<std::uint32_t>(9).put<std::uint64_t>(1).put<std::uint32_t>(9).put<std::uint64_t>(1);
    x.put<std::uint32_t>(4).put<std::uint64_t>(1).put<std::uint32_t>(0);
    CHECK_THROWS_WITH(parse_gguf(x.b, "deep.gguf"), Contains("key 'deep': arrays nested deeper than 2 levels"));
  }
  // dequantisation of a type without a dequantiser here, and of a wrong byte count
  std::vector<std::byte> block(66);
  CHECK_THROWS_WITH(dequantize(GgmlType::IQ2_XXS, block, 256, "t"), Contains("ggml type IQ2_XXS is not supported"));
  CHECK_THROWS_WITH(dequantize(GgmlType::Q8_0, block, 32, "t"), Contains("32 Q8_0 elements need 34 bytes, got 66"));
}

TEST_CASE("hand-built blocks dequantise to hand-computed values", "[io][gguf]") {
  // Q8_0: d = 0.5 (half 0x3800), q = -3 .. 28
  std::vector<std::byte> q8(34);
  const std::uint16_t half_05 = 0x3800;
  std::memcpy(q8.data(), &half_05, 2);
  for (int i = 0; i < 32; ++i) q8[2 + i] = static_cast<std::byte>(static_cast<std::int8_t>(i - 3));
  const auto v8 = dequantize(GgmlType::Q8_0, q8, 32, "q8");
  for (int i = 0; i < 32; ++i) CHECK(v8[i] == 0.5f * static_cast<float>(i - 3));
  // Q4_1: d = 0.5, m = -1 (0xBC00); byte j = (hi << 4) | lo with lo = j % 16, hi = 15 - j % 16
  std::vector<std::byte> q41(20);
  const std::uint16_t half_m1 = 0xBC00;
  std::memcpy(q41.data(), &half_05, 2);
  std::memcpy(q41.data() + 2, &half_m1, 2);
  for (int j = 0; j < 16; ++j) q41[4 + j] = static_cast<std::byte>(((15 - j) << 4) | j);
  const auto v41 = dequantize(GgmlType::Q4_1, q41, 32, "q41");
  for (int j = 0; j < 16; ++j) {
    CHECK(v41[j] == 0.5f * static_cast<float>(j) - 1.0f);
    CHECK(v41[16 + j] == 0.5f * static_cast<float>(15 - j) - 1.0f);
  }
}
