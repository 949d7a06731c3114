// safetensors: files written by the Python package read back bit-equal, files kaizen writes load in
// Python bit-equal, sharded checkpoints, and every malformed-input error with its message.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <kaizen/io/safetensors.hpp>

#include "io_fixtures.hpp"

namespace fs = std::filesystem;
using namespace kaizen::io;
using Catch::Contains;

namespace {

// A safetensors file from a header string and a data section.
std::vector<std::byte> make_file(const std::string& header, std::size_t data_bytes) {
  std::vector<std::byte> out(8 + header.size() + data_bytes, std::byte{0x11});
  const std::uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

std::string dtype_of(const std::string& torch_name) {
  static const std::map<std::string, std::string> m{
      {"float32", "F32"}, {"float16", "F16"}, {"bfloat16", "BF16"}, {"float64", "F64"}, {"int64", "I64"},
      {"int32", "I32"},   {"int16", "I16"},   {"int8", "I8"},       {"uint8", "U8"},    {"bool", "BOOL"}};
  return m.at(torch_name);
}

fs::path scratch(const std::string& name) {
  auto p = io_test::fixtures_dir() / "scratch" / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

}  // namespace

TEST_CASE("safetensors written by the Python package read back bit-equal", "[io][safetensors]") {
  const auto dir = io_test::fixture("safetensors");
  if (!dir) return;
  const auto manifest = nlohmann::json::parse(io_test::read_text(*dir / "manifest.json"));
  SafetensorsFile f(*dir / "basic.safetensors");
  CHECK(f.metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"note", "written by safetensors"}});
  REQUIRE(f.tensors().size() == manifest.size());
  for (const auto& [name, spec] : manifest.items()) {
    INFO(name);
    const auto& t = f.at(name);
    CHECK(dtype_name(t.dtype) == dtype_of(spec["dtype"].get<std::string>()));
    CHECK(t.shape == spec["shape"].get<std::vector<std::int64_t>>());
    const auto want = io_test::read_bytes(*dir / (name + ".bin"));
    const auto got = f.data(t);
    REQUIRE(got.size() == want.size());
    CHECK((want.empty() || std::memcmp(got.data(), want.data(), want.size()) == 0));
    if (fs::exists(*dir / (name + ".f32"))) CHECK(io_test::bit_equal(f.to_float(name), io_test::read_f32(*dir / (name + ".f32"))));
  }
  CHECK_THROWS_WITH(f.to_float("i64"), Contains("tensor 'i64'") && Contains("I64 cannot be converted to float"));
  CHECK_THROWS_WITH(f.at("nope"), Contains("basic.safetensors") && Contains("missing tensor 'nope'"));
}

TEST_CASE("safetensors files kaizen writes load in Python bit-equal", "[io][safetensors]") {
  const auto folder = scratch("written");
  std::vector<float> src(4 * 9);
  for (std::size_t i = 0; i < src.size(); ++i) src[i] = std::ldexp(static_cast<float>(i * 7919 % 1000) - 500.0f, -7) + 1e-4f;
  src[3] = 65519.0f;  // rounds to inf in F16? no: 65504 (below the 65520 threshold)
  src[4] = 1.0f + 1.0f / 2048;  // F16 tie
  const auto f16 = encode_floats(src, DType::F16);
  const auto bf16 = encode_floats(src, DType::BF16);
  const auto f32 = encode_floats(src, DType::F32);
  std::vector<std::int64_t> ids{1, -2, 1LL << 40};
  std::vector<std::byte> ids_bytes(ids.size() * 8);
  std::memcpy(ids_bytes.data(), ids.data(), ids_bytes.size());
  const std::vector<TensorToWrite> tensors{
      {"w.f32", DType::F32, {4, 9}, f32},
      {"w.f16", DType::F16, {4, 9}, f16},
      {"w.bf16", DType::BF16, {36}, bf16},
      {"ids", DType::I64, {3}, ids_bytes},
      {"empty", DType::F32, {0, 5}, {}},
  };
  const std::map<std::string, std::string> metadata{{"format", "pt"}, {"writer", "kaizen"}};
  write_safetensors(folder / "kaizen.safetensors", tensors, metadata);

  // the header is padded so that the data section starts at a multiple of 8
  const auto bytes = io_test::read_bytes(folder / "kaizen.safetensors");
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  CHECK(n % 8 == 0);
  // kaizen reads its own file back
  SafetensorsFile back(folder / "kaizen.safetensors");
  CHECK(back.metadata() == metadata);
  CHECK(io_test::bit_equal(back.to_float("w.f32"), src));

  // and Python's safetensors reads it bit-equal, with kaizen's F16/BF16 rounding equal to numpy's/torch's
  nlohmann::json expected = {{"metadata", metadata}, {"tensors", nlohmann::json::object()}};
  const std::map<std::string, std::string> torch_names{{"w.f32", "float32"}, {"w.f16", "float16"},
                                                       {"w.bf16", "bfloat16"}, {"ids", "int64"}, {"empty", "float32"}};
  for (const auto& t : tensors) {
    expected["tensors"][t.name] = {{"dtype", torch_names.at(t.name)}, {"shape", t.shape}};
    io_test::write_bytes(folder / (t.name + ".bin"), t.data.data(), t.data.size());
  }
  io_test::write_bytes(folder / "w.f16.src.f32", src.data(), src.size() * 4);
  io_test::write_bytes(folder / "w.bf16.src.f32", src.data(), src.size() * 4);
  std::ofstream(folder / "expected.json") << expected.dump(1);
  const int rc = io_test::run_python("verify_written '" + folder.string() + "'");
  if (rc == 77) {
    std::cout << "KAIZEN_SKIP: python safetensors missing\n";
    return;
  }
  CHECK(rc == 0);
}

TEST_CASE("sharded checkpoints: transformers' index read, kaizen's written and read back", "[io][safetensors]") {
  const auto dir = io_test::fixture("hf_tiny");
  if (!dir) return;
  SafetensorsCheckpoint ckpt(*dir / "llama");
  CHECK(ckpt.shards().size() > 2);
  const auto names = ckpt.names();
  CHECK(std::find(names.begin(), names.end(), "model.layers.1.mlp.down_proj.weight") != names.end());
  CHECK(ckpt.index_metadata().contains("total_size"));
  std::vector<TensorToWrite> all;
  std::vector<std::vector<float>> keep;
  for (const auto& name : names) {
    INFO(name);
    keep.push_back(ckpt.to_float(name));
    CHECK(io_test::bit_equal(keep.back(), io_test::read_f32(*dir / "llama" / (name + ".f32"))));
  }
  // write kaizen's own sharded checkpoint of the same tensors and read it back
  std::vector<std::vector<std::byte>> encoded;
  for (std::size_t i = 0; i < names.size(); ++i) encoded.push_back(encode_floats(keep[i], DType::F32));
  for (std::size_t i = 0; i < names.size(); ++i)
    all.push_back({names[i], DType::F32, ckpt.info(names[i]).shape, encoded[i]});
  const auto out = scratch("sharded");
  const auto files = write_safetensors_checkpoint(out, all, 30'000);
  CHECK(files.size() > 3);
  CHECK(files.back() == "model.safetensors.index.json");
  SafetensorsCheckpoint again(out);
  CHECK(again.names() == names);
  for (std::size_t i = 0; i < names.size(); ++i) CHECK(io_test::bit_equal(again.to_float(names[i]), keep[i]));
  CHECK_THROWS_WITH(again.view("lm_head.bias"), Contains("model.safetensors.index.json") && Contains("missing tensor 'lm_head.bias'"));
}

TEST_CASE("safetensors index errors name the index and the tensor", "[io][safetensors]") {
  const auto out = scratch("bad_index");
  const std::vector<float> v{1, 2};
  const auto b = encode_floats(v, DType::F32);
  const std::vector<TensorToWrite> t{{"a", DType::F32, {2}, b}};
  write_safetensors(out / "shard.safetensors", t);
  std::ofstream(out / "model.safetensors.index.json") << R"({"weight_map": {"a": "shard.safetensors", "b": "shard.safetensors"}})";
  CHECK_THROWS_WITH(SafetensorsCheckpoint(out), Contains("model.safetensors.index.json") && Contains("tensor 'b'") &&
                                                    Contains("does not hold it"));
  std::ofstream(out / "model.safetensors.index.json") << R"({"weight_map": {"a": "../shard.safetensors"}})";
  CHECK_THROWS_WITH(SafetensorsCheckpoint(out), Contains("is not a plain file name"));
  std::ofstream(out / "model.safetensors.index.json") << R"({"weight_map": {"a": )";
  CHECK_THROWS_WITH(SafetensorsCheckpoint(out), Contains("model.safetensors.index.json") && Contains("malformed JSON"));
}

TEST_CASE("malformed safetensors files are refused with the file and offending tensor named", "[io][safetensors]") {
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[2],"data_offsets":[8,12]}})";
  CHECK_NOTHROW(parse_safetensors(make_file(ok, 12), "ok.safetensors"));

  std::vector<std::byte> tiny(5);
  CHECK_THROWS_WITH(parse_safetensors(tiny, "t.safetensors"),
                    Contains("safetensors 't.safetensors'") && Contains("truncated file") && Contains("header length"));

  auto past = make_file(ok, 12);
  const std::uint64_t huge = 1'000'000;
  std::memcpy(past.data(), &huge, 8);
  CHECK_THROWS_WITH(parse_safetensors(past, "p.safetensors"),
                    Contains("'p.safetensors'") && Contains("header length 1000000 is past the end of the file"));

  CHECK_THROWS_WITH(parse_safetensors(make_file(R"({"a":{"dtype":"F32",)", 0), "j.safetensors"),
                    Contains("'j.safetensors'") && Contains("malformed JSON header"));

  CHECK_THROWS_WITH(parse_safetensors(make_file(ok, 10), "short.safetensors"),
                    Contains("tensor 'b'") && Contains("[8, 12] are out of range") && Contains("holds 10 bytes"));

  const std::string overlap =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  CHECK_THROWS_WITH(parse_safetensors(make_file(overlap, 8), "o.safetensors"),
                    Contains("'o.safetensors'") && Contains("overlap tensor 'a'"));

  const std::string gap =
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  CHECK_THROWS_WITH(parse_safetensors(make_file(gap, 12), "g.safetensors"), Contains("tensor 'b'") && Contains("gap"));
  CHECK_THROWS_WITH(parse_safetensors(make_file(ok, 16), "trail.safetensors"), Contains("trailing bytes"));

  const std::string shape =
      R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})";
  CHECK_THROWS_WITH(parse_safetensors(make_file(shape, 8), "s.safetensors"),
                    Contains("tensor 'a'") && Contains("hold 8 bytes, but dtype F32 with shape [3] needs 3 x 4"));

  const std::string overflow =
      R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})";
  CHECK_THROWS_WITH(parse_safetensors(make_file(overflow, 8), "of.safetensors"), Contains("tensor 'a'") && Contains("overflows"));

  const std::string dtype = R"({"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})";
  CHECK_THROWS_WITH(parse_safetensors(make_file(dtype, 1), "d.safetensors"),
                    Contains("tensor 'a'") && Contains("unsupported dtype 'F4'"));

  const std::string dup =
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  CHECK_THROWS_WITH(parse_safetensors(make_file(dup, 8), "dup.safetensors"), Contains("duplicate key 'a'"));

  const std::string neg = R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})";
  CHECK_THROWS_WITH(parse_safetensors(make_file(neg, 4), "n.safetensors"), Contains("non-negative integers"));

  const std::string meta = R"({"__metadata__":{"k":1}})";
  CHECK_THROWS_WITH(parse_safetensors(make_file(meta, 0), "m.safetensors"), Contains("__metadata__ key 'k' must be a string"));

  CHECK_THROWS_WITH(SafetensorsFile("/nonexistent/x.safetensors"), Contains("cannot open '/nonexistent/x.safetensors'"));
  const auto empty = scratch("empty") / "empty.safetensors";
  std::ofstream{empty};
  CHECK_THROWS_WITH(SafetensorsFile(empty), Contains("empty.safetensors") && Contains("truncated file"));
}

TEST_CASE("write_safetensors refuses inconsistent input", "[io][safetensors]") {
  const std::vector<float> v{1, 2, 3};
  const auto b = encode_floats(v, DType::F32);
  const std::vector<TensorToWrite> wrong{{"a", DType::F32, {2}, b}};
  CHECK_THROWS_WITH(safetensors_header(wrong, {}), Contains("tensor 'a' has 12 bytes, but dtype F32 with 2 elements needs 8"));
  const std::vector<TensorToWrite> dup{{"a", DType::F32, {3}, b}, {"a", DType::F32, {3}, b}};
  CHECK_THROWS_WITH(safetensors_header(dup, {}), Contains("duplicate tensor name 'a'"));
  CHECK_THROWS_WITH(encode_floats(v, DType::I32), Contains("not a float type"));
}

TEST_CASE("MappedFile maps a whole file read-only and moves", "[io][mapped_file]") {
  const auto p = scratch("mapped") / "bytes.bin";
  const std::string text = "kaizen mapped file";
  io_test::write_bytes(p, text.data(), text.size());
  MappedFile a(p);
  REQUIRE(a.size() == text.size());
  CHECK(std::memcmp(a.data(), text.data(), text.size()) == 0);
  MappedFile b(std::move(a));
  CHECK(b.size() == text.size());
  CHECK(a.size() == 0);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  CHECK(b.path() == p.string());
  CHECK_THROWS_WITH(MappedFile(p.parent_path()), Contains("is not a regular file"));
}
