// kaizen/io/safetensors.hpp - safetensors checkpoints: memory-mapped reading (single file or sharded
// with model.safetensors.index.json) and writing.
//
// Format: u64 little-endian N | N bytes of UTF-8 JSON header | data section.
//   header = { "<tensor name>": {"dtype": "F32", "shape": [d0, ...], "data_offsets": [begin, end]}, ...,
//              "__metadata__": {"<key>": "<string value>", ...} (optional) }
//   offsets are relative to the data section; tensors are row-major, little-endian, and must tile the
//   data section exactly: sorted by begin they are contiguous from 0 to its end (no gap, no overlap),
//   and end - begin = ∏ shape × dtype size. The writer pads the header with spaces so the data
//   section starts at a multiple of 8 bytes (as the reference implementation does).
// Sharded checkpoints: model.safetensors.index.json = {"metadata": {...}, "weight_map": {"<tensor>":
//   "<shard file name in the same folder>"}}; each listed tensor must be in its shard.
//
// Validation (kaizen::Error naming the file and the offending tensor/key/offset): file shorter than 8
// bytes, header length past the end of the file or above 100 MB, malformed JSON, duplicate names,
// unknown dtype, negative or overflowing shape, offsets not matching the shape, out of range,
// overlapping, leaving gaps or trailing bytes.
//
// dtypes: BOOL U8 I8 F8_E5M2 F8_E4M3 F8_E8M0 I16 U16 F16 BF16 I32 U32 F32 C64 F64 I64 U64 are read
// and written as bytes; to_float() converts F32/F16/BF16 (exact widening) and F64 (rounded).
// The sub-byte dtypes (F4, F6_E2M3, F6_E3M2) are refused by name.
//
// Reference: the safetensors format description (huggingface/safetensors README, "Format").
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <kaizen/core/error.hpp>
#include <kaizen/io/detail/checked.hpp>
#include <kaizen/io/float16.hpp>
#include <kaizen/io/mapped_file.hpp>

namespace kaizen::io {

/// Element types of safetensors files (byte-sized ones).
enum class DType { BOOL, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, I16, U16, F16, BF16, I32, U32, F32, C64, F64, I64, U64 };

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  std::size_t size;  ///< bytes per element
};

inline constexpr std::array<DTypeInfo, 17> kDTypes{{
    {DType::BOOL, "BOOL", 1}, {DType::U8, "U8", 1},   {DType::I8, "I8", 1},     {DType::F8_E5M2, "F8_E5M2", 1},
    {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E8M0, "F8_E8M0", 1}, {DType::I16, "I16", 2}, {DType::U16, "U16", 2},
    {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2}, {DType::I32, "I32", 4},   {DType::U32, "U32", 4},
    {DType::F32, "F32", 4}, {DType::C64, "C64", 8},   {DType::F64, "F64", 8},   {DType::I64, "I64", 8},
    {DType::U64, "U64", 8},
}};

[[nodiscard]] constexpr std::string_view dtype_name(DType d) noexcept {
  for (const auto& i : kDTypes)
    if (i.dtype == d) return i.name;
  return "?";
}
[[nodiscard]] constexpr std::size_t dtype_size(DType d) noexcept {
  for (const auto& i : kDTypes)
    if (i.dtype == d) return i.size;
  return 0;
}
/// The dtype spelled `name` in a safetensors header, or nullopt.
[[nodiscard]] constexpr std::optional<DType> parse_dtype(std::string_view name) noexcept {
  for (const auto& i : kDTypes)
    if (i.name == name) return i.dtype;
  return std::nullopt;
}

/// One tensor's entry in a safetensors header. Offsets are relative to the data section.
struct SafetensorsTensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0, end = 0;

  [[nodiscard]] std::uint64_t n_elements() const {
    std::uint64_t n = 1;
    for (auto d : shape) n *= static_cast<std::uint64_t>(d);  // validated not to overflow at parse time
    return n;
  }
};

/// A parsed, validated header: tensors sorted by offset, the __metadata__ map, and where data starts.
struct SafetensorsHeader {
  std::vector<SafetensorsTensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  std::uint64_t data_start = 0;  ///< absolute file offset: 8 + header length
};

inline constexpr std::uint64_t kSafetensorsMaxHeader = 100'000'000;

/// Parses and validates the safetensors file held in `bytes`; `source` (its name) prefixes errors.
[[nodiscard]] inline SafetensorsHeader parse_safetensors(std::span<const std::byte> bytes, std::string_view source) {
  const std::string what = "safetensors '" + std::string(source) + "'";
  detail::ByteCursor cur(bytes, what);
  const auto n = cur.read<std::uint64_t>("the header length");
  if (n > cur.remaining())
    fail(what, ": header length ", n, " is past the end of the file (", bytes.size(), " bytes, so at most ",
         cur.remaining(), ")");
  if (n > kSafetensorsMaxHeader) fail(what, ": header length ", n, " exceeds the limit of ", kSafetensorsMaxHeader);
  const auto text_bytes = cur.take(n, "the header");
  const std::string_view text(reinterpret_cast<const char*>(text_bytes.data()), text_bytes.size());

  // Catch duplicate top-level keys (nlohmann keeps the last one silently).
  std::set<std::string, std::less<>> top_keys;
  std::string duplicate;
  const nlohmann::json::parser_callback_t on_event = [&](int depth, nlohmann::json::parse_event_t event,
                                                         nlohmann::json& parsed) {
    if (depth == 1 && event == nlohmann::json::parse_event_t::key && parsed.is_string()) {
      if (!top_keys.insert(parsed.get<std::string>()).second && duplicate.empty()) duplicate = parsed.get<std::string>();
    }
    return true;
  };
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text, on_event);
  } catch (const nlohmann::json::exception& e) {
    fail(what, ": malformed JSON header: ", e.what());
  }
  if (!duplicate.empty()) fail(what, ": duplicate key '", duplicate, "' in the header");
  if (!header.is_object()) fail(what, ": the header must be a JSON object, got ", header.type_name());

  SafetensorsHeader out;
  out.data_start = 8 + n;
  const std::uint64_t data_size = bytes.size() - out.data_start;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(what, ": __metadata__ must be an object of strings, got ", entry.type_name());
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) fail(what, ": __metadata__ key '", k, "' must be a string, got ", v.type_name());
        out.metadata.emplace(k, v.get<std::string>());
      }
      continue;
    }
    const std::string where = what + ": tensor '" + name + "'";
    if (!entry.is_object()) fail(where, " must be an object, got ", entry.type_name());
    const auto dt = entry.find("dtype");
    const auto sh = entry.find("shape");
    const auto off = entry.find("data_offsets");
    if (dt == entry.end() || !dt->is_string()) fail(where, ": missing or non-string \"dtype\"");
    if (sh == entry.end() || !sh->is_array()) fail(where, ": missing or non-array \"shape\"");
    if (off == entry.end() || !off->is_array() || off->size() != 2)
      fail(where, ": \"data_offsets\" must be an array [begin, end]");
    SafetensorsTensorInfo t;
    t.name = name;
    const auto dname = dt->get<std::string>();
    const auto d = parse_dtype(dname);
    if (!d) fail(where, ": unknown or unsupported dtype '", dname, "'");
    t.dtype = *d;
    std::uint64_t count = 1;
    if (sh->size() > 64) fail(where, ": ", sh->size(), " dimensions is more than 64");
    for (const auto& dim : *sh) {
      if (!dim.is_number_unsigned()) fail(where, ": shape entries must be non-negative integers, got ", dim.dump());
      const auto v = dim.get<std::uint64_t>();
      const auto prod = detail::checked_mul(count, v);
      if (!prod || *prod > static_cast<std::uint64_t>(INT64_MAX)) fail(where, ": shape ", sh->dump(), " overflows");
      count = *prod;
      t.shape.push_back(static_cast<std::int64_t>(v));
    }
    for (const auto& o : *off)
      if (!o.is_number_unsigned()) fail(where, ": data_offsets must be non-negative integers, got ", off->dump());
    t.begin = (*off)[0].get<std::uint64_t>();
    t.end = (*off)[1].get<std::uint64_t>();
    if (t.end < t.begin) fail(where, ": data_offsets [", t.begin, ", ", t.end, "] end before they begin");
    if (t.end > data_size)
      fail(where, ": data_offsets [", t.begin, ", ", t.end, "] are out of range: the data section holds ", data_size,
           " bytes (file offset ", out.data_start, " on)");
    const auto nbytes = detail::checked_mul(count, dtype_size(t.dtype));
    if (!nbytes || *nbytes != t.end - t.begin)
      fail(where, ": data_offsets [", t.begin, ", ", t.end, "] hold ", t.end - t.begin, " bytes, but dtype ", dname,
           " with shape ", sh->dump(), " needs ", count, " x ", dtype_size(t.dtype));
    out.tensors.push_back(std::move(t));
  }
  std::sort(out.tensors.begin(), out.tensors.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t expected = 0;
  const SafetensorsTensorInfo* prev = nullptr;
  for (const auto& t : out.tensors) {
    if (t.begin < expected)
      fail(what, ": tensor '", t.name, "' data_offsets [", t.begin, ", ", t.end, "] overlap tensor '", prev->name,
           "' [", prev->begin, ", ", prev->end, "]");
    if (t.begin > expected)
      fail(what, ": tensor '", t.name, "' begins at offset ", t.begin, ", leaving a gap after offset ", expected,
           " in the data section");
    expected = t.end;
    prev = &t;
  }
  if (expected != data_size)
    fail(what, ": the tensors end at data offset ", expected, ", but the data section holds ", data_size,
         " bytes (trailing bytes)");
  return out;
}

/// A view of one tensor's bytes in a mapped file (valid while the file object lives).
struct TensorView {
  const SafetensorsTensorInfo* info = nullptr;
  std::span<const std::byte> bytes;
};

/// The values of an F32/F16/BF16/F64 tensor as float32 (row-major). `what` names it in errors.
[[nodiscard]] inline std::vector<float> to_float(DType dtype, std::span<const std::byte> bytes, std::string_view what) {
  const std::size_t size = dtype_size(dtype);
  KAIZEN_CHECK(size > 0 && bytes.size() % size == 0, what, ": ", bytes.size(), " bytes is not a whole number of ",
               dtype_name(dtype), " values");
  const std::size_t n = bytes.size() / size;
  std::vector<float> out;
  const std::byte* p = bytes.data();
  switch (dtype) {
    case DType::F32:
      out.resize(n);
      if (n > 0) std::memcpy(out.data(), p, n * 4);
      break;
    case DType::F16:
    case DType::BF16:
      out.resize(n);
      for (std::size_t i = 0; i < n; ++i) {
        std::uint16_t h = 0;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = dtype == DType::F16 ? half_to_float(h) : bfloat16_to_float(h);
      }
      break;
    case DType::F64:
      out.resize(n);
      for (std::size_t i = 0; i < n; ++i) {
        double v = 0;
        std::memcpy(&v, p + 8 * i, 8);
        out[i] = static_cast<float>(v);
      }
      break;
    default: fail(what, ": dtype ", dtype_name(dtype), " cannot be converted to float (F32, F16, BF16, F64 can)");
  }
  return out;
}

/// `values` encoded as `dtype` (F32, F16 or BF16; narrowing rounds to nearest even) as raw bytes.
[[nodiscard]] inline std::vector<std::byte> encode_floats(std::span<const float> values, DType dtype) {
  std::vector<std::byte> out;
  switch (dtype) {
    case DType::F32:
      out.resize(values.size() * 4);
      if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
      break;
    case DType::F16:
    case DType::BF16:
      out.resize(values.size() * 2);
      for (std::size_t i = 0; i < values.size(); ++i) {
        const std::uint16_t h = dtype == DType::F16 ? float_to_half(values[i]) : float_to_bfloat16(values[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
      }
      break;
    default: fail("encode_floats: dtype ", dtype_name(dtype), " is not a float type (F32, F16, BF16)");
  }
  return out;
}

/// A memory-mapped safetensors file.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path)
      : file_(path), header_(parse_safetensors(file_.bytes(), file_.path())) {
    for (std::size_t i = 0; i < header_.tensors.size(); ++i) index_.emplace(header_.tensors[i].name, i);
  }

  [[nodiscard]] const std::string& path() const noexcept { return file_.path(); }
  /// Tensors in data-offset order.
  [[nodiscard]] const std::vector<SafetensorsTensorInfo>& tensors() const noexcept { return header_.tensors; }
  [[nodiscard]] const std::map<std::string, std::string>& metadata() const noexcept { return header_.metadata; }

  [[nodiscard]] const SafetensorsTensorInfo* find(std::string_view name) const {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &header_.tensors[it->second];
  }
  /// Throws "missing tensor" naming the file when absent.
  [[nodiscard]] const SafetensorsTensorInfo& at(std::string_view name) const {
    const auto* t = find(name);
    if (t == nullptr) fail("safetensors '", path(), "': missing tensor '", name, "'");
    return *t;
  }
  [[nodiscard]] std::span<const std::byte> data(const SafetensorsTensorInfo& t) const {
    return file_.bytes().subspan(static_cast<std::size_t>(header_.data_start + t.begin),
                                 static_cast<std::size_t>(t.end - t.begin));
  }
  [[nodiscard]] TensorView view(std::string_view name) const {
    const auto& t = at(name);
    return {&t, data(t)};
  }
  [[nodiscard]] std::vector<float> to_float(std::string_view name) const {
    const auto& t = at(name);
    return io::to_float(t.dtype, data(t), "safetensors '" + path() + "': tensor '" + t.name + "'");
  }

 private:
  MappedFile file_;
  SafetensorsHeader header_;
  std::map<std::string, std::size_t, std::less<>> index_;
};

/// A checkpoint folder: `model.safetensors`, or shards listed by `model.safetensors.index.json`
/// (or a single .safetensors file given directly). Looks tensors up across shards.
class SafetensorsCheckpoint {
 public:
  explicit SafetensorsCheckpoint(const std::filesystem::path& path) {
    namespace fs = std::filesystem;
    fs::path index;
    if (fs::is_directory(path)) {
      if (fs::exists(path / "model.safetensors.index.json")) {
        index = path / "model.safetensors.index.json";
      } else if (fs::exists(path / "model.safetensors")) {
        add_single(path / "model.safetensors");
        return;
      } else {
        fail("SafetensorsCheckpoint: '", path.string(), "' holds neither model.safetensors nor model.safetensors.index.json");
      }
    } else if (path.string().ends_with(".json")) {
      index = path;
    } else {
      add_single(path);
      return;
    }
    load_index(index);
  }

  /// Every tensor name, sorted.
  [[nodiscard]] std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [n, loc] : where_) out.push_back(n);
    return out;
  }
  [[nodiscard]] bool contains(std::string_view name) const { return where_.find(name) != where_.end(); }
  [[nodiscard]] const std::vector<std::unique_ptr<SafetensorsFile>>& shards() const noexcept { return shards_; }
  /// The index's "metadata" object (empty for a single file).
  [[nodiscard]] const nlohmann::json& index_metadata() const noexcept { return index_metadata_; }

  /// The shard holding `name` and its entry; throws "missing tensor" naming the checkpoint.
  [[nodiscard]] std::pair<const SafetensorsFile*, const SafetensorsTensorInfo*> locate(std::string_view name) const {
    const auto it = where_.find(name);
    if (it == where_.end()) fail("safetensors checkpoint '", source_, "': missing tensor '", name, "'");
    const auto* shard = shards_[it->second].get();
    return {shard, &shard->at(name)};
  }
  [[nodiscard]] const SafetensorsTensorInfo& info(std::string_view name) const { return *locate(name).second; }
  [[nodiscard]] TensorView view(std::string_view name) const {
    const auto [shard, t] = locate(name);
    return {t, shard->data(*t)};
  }
  [[nodiscard]] std::vector<float> to_float(std::string_view name) const { return locate(name).first->to_float(name); }

 private:
  void add_single(const std::filesystem::path& file) {
    source_ = file.string();
    shards_.push_back(std::make_unique<SafetensorsFile>(file));
    for (const auto& t : shards_.back()->tensors()) where_.emplace(t.name, 0);
  }

  void load_index(const std::filesystem::path& index) {
    source_ = index.string();
    const std::string what = "safetensors index '" + source_ + "'";
    MappedFile f(index);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(std::string_view(reinterpret_cast<const char*>(f.data()), f.size()));
    } catch (const nlohmann::json::exception& e) {
      fail(what, ": malformed JSON: ", e.what());
    }
    if (!j.is_object()) fail(what, ": expected a JSON object");
    if (j.contains("metadata")) index_metadata_ = j["metadata"];
    const auto wm = j.find("weight_map");
    if (wm == j.end() || !wm->is_object()) fail(what, ": missing or non-object key 'weight_map'");
    std::map<std::string, std::size_t> shard_of_file;
    for (const auto& [name, file] : wm->items()) {
      if (!file.is_string()) fail(what, ": weight_map['", name, "'] must be a file name string");
      const auto fname = file.get<std::string>();
      if (fname.empty() || fname.find('/') != std::string::npos || fname.find('\\') != std::string::npos ||
          fname == "." || fname == "..")
        fail(what, ": weight_map['", name, "'] = '", fname, "' is not a plain file name in the checkpoint folder");
      auto [it, inserted] = shard_of_file.emplace(fname, shards_.size());
      if (inserted) shards_.push_back(std::make_unique<SafetensorsFile>(index.parent_path() / fname));
      if (shards_[it->second]->find(name) == nullptr)
        fail(what, ": weight_map names tensor '", name, "' in shard '", fname, "', which does not hold it");
      where_.emplace(name, it->second);
    }
  }

  std::string source_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, std::size_t, std::less<>> where_;
  nlohmann::json index_metadata_ = nlohmann::json::object();
};

/// A tensor to write: bytes in row-major order, exactly ∏ shape × dtype size of them.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> data;
};

/// The header JSON (padded with spaces to a multiple of 8 bytes) for `tensors` laid out in the given
/// order, and the validated total data size. Throws on duplicate/reserved names or size mismatches.
[[nodiscard]] inline std::string safetensors_header(std::span<const TensorToWrite> tensors,
                                                    const std::map<std::string, std::string>& metadata,
                                                    std::uint64_t* data_size = nullptr) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  std::set<std::string, std::less<>> names;
  for (const auto& t : tensors) {
    KAIZEN_CHECK(!t.name.empty() && t.name != "__metadata__", "write_safetensors: invalid tensor name '", t.name, "'");
    KAIZEN_CHECK(names.insert(t.name).second, "write_safetensors: duplicate tensor name '", t.name, "'");
    std::uint64_t count = 1;
    for (auto d : t.shape) {
      KAIZEN_CHECK(d >= 0, "write_safetensors: tensor '", t.name, "' has negative dimension ", d);
      count *= static_cast<std::uint64_t>(d);
    }
    KAIZEN_CHECK(count * dtype_size(t.dtype) == t.data.size(), "write_safetensors: tensor '", t.name, "' has ",
                 t.data.size(), " bytes, but dtype ", dtype_name(t.dtype), " with ", count, " elements needs ",
                 count * dtype_size(t.dtype));
    h[t.name] = {{"dtype", dtype_name(t.dtype)},
                 {"shape", t.shape},
                 {"data_offsets", {offset, offset + t.data.size()}}};
    offset += t.data.size();
  }
  std::string text = h.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  if (data_size != nullptr) *data_size = offset;
  return text;
}

/// Writes a safetensors file at `path` (tensors in the order given, metadata as __metadata__).
/// Throws kaizen::Error naming the path when the file cannot be written.
inline void write_safetensors(const std::filesystem::path& path, std::span<const TensorToWrite> tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  const std::string header = safetensors_header(tensors, metadata);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail("write_safetensors: cannot open '", path.string(), "' for writing");
  const std::uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (const auto& t : tensors)
    out.write(reinterpret_cast<const char*>(t.data.data()), static_cast<std::streamsize>(t.data.size()));
  out.flush();
  if (!out) fail("write_safetensors: writing '", path.string(), "' failed");
}

/// Writes `tensors` as shards of at most `max_shard_bytes` of data each (a tensor larger than that
/// gets a shard of its own) named model-0000i-of-0000N.safetensors in `folder`, plus
/// model.safetensors.index.json; with one shard, writes model.safetensors and no index.
/// Returns the file names written.
inline std::vector<std::string> write_safetensors_checkpoint(const std::filesystem::path& folder,
                                                             std::span<const TensorToWrite> tensors,
                                                             std::uint64_t max_shard_bytes,
                                                             const std::map<std::string, std::string>& metadata = {}) {
  KAIZEN_CHECK(max_shard_bytes > 0, "write_safetensors_checkpoint: max_shard_bytes must be positive");
  std::vector<std::vector<TensorToWrite>> shards(1);
  std::uint64_t current = 0, total = 0;
  for (const auto& t : tensors) {
    if (!shards.back().empty() && current + t.data.size() > max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(t);
    current += t.data.size();
    total += t.data.size();
  }
  std::filesystem::create_directories(folder);
  std::vector<std::string> files;
  if (shards.size() == 1) {
    write_safetensors(folder / "model.safetensors", shards[0], metadata);
    files.push_back("model.safetensors");
    return files;
  }
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  const auto count = shards.size();
  for (std::size_t i = 0; i < count; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, count);
    write_safetensors(folder / name, shards[i], metadata);
    files.emplace_back(name);
    for (const auto& t : shards[i]) weight_map[t.name] = name;
  }
  nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  std::ofstream out(folder / "model.safetensors.index.json", std::ios::trunc);
  out << index.dump(2) << '\n';
  if (!out) fail("write_safetensors_checkpoint: writing the index in '", folder.string(), "' failed");
  files.emplace_back("model.safetensors.index.json");
  return files;
}

}  // namespace kaizen::io
