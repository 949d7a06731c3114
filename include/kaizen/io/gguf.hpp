// kaizen/io/gguf.hpp - a reader for GGUF files (llama.cpp's checkpoint format), versions 2 and 3.
//
// Layout (all little-endian; string = u64 length + UTF-8 bytes, no terminator):
//   u32 magic "GGUF" | u32 version | u64 tensor_count | u64 metadata_kv_count
//   metadata_kv_count × { string key | u32 value_type | value }
//       value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool (1 byte, 0/1), 8 string,
//       9 array (u32 element_type, u64 count, count values), 10 u64, 11 i64, 12 f64
//   tensor_count × { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
//   padding to `general.alignment` (u32, a power of two; default 32), then the tensor data section.
// A tensor's bytes are [data_start + offset, + nbytes(type, ∏ ne)); ne[0] is the innermost
// (fastest) dimension, so the row-major shape is ne reversed. Offsets are multiples of the alignment.
//
// Validation (each failure a kaizen::Error naming the file and the key, tensor or offset): magic,
// version 2 or 3 (v1 and big-endian files refused), every length/count checked against the bytes left
// and against limits before anything is allocated, nesting of arrays ≤ 2 levels, total metadata values
// ≤ 2^24 (about 1 GB of parsed values at most), unique keys and tensor names, n_dims in 1..4, dims
// whose product fits 63 bits and is a whole number of blocks, known ggml type, aligned offsets,
// tensor data inside the file and not overlapping another tensor's.
//
// Reference: the GGUF specification (ggml repository, docs/gguf.md).
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/io/detail/checked.hpp>
#include <kaizen/io/gguf_quants.hpp>
#include <kaizen/io/mapped_file.hpp>

namespace kaizen::io {

/// GGUF metadata value types, numbered as in the file.
enum class GgufType : std::uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

[[nodiscard]] constexpr std::string_view gguf_type_name(GgufType t) noexcept {
  constexpr std::string_view names[] = {"uint8", "int8",  "uint16", "int16",  "uint32", "int32", "float32",
                                        "bool",  "string", "array", "uint64", "int64",  "float64"};
  const auto i = static_cast<std::uint32_t>(t);
  return i < 13 ? names[i] : std::string_view{"unknown"};
}

struct GgufValue;

/// An array value: its element type and elements (an element may itself be an array).
struct GgufArray {
  GgufType element_type = GgufType::UINT8;
  std::vector<GgufValue> values;
};

/// One metadata value. Unsigned integers are held as uint64, signed as int64, float32/float64 as
/// double (float32 widened exactly); `type` keeps the type written in the file.
struct GgufValue {
  GgufType type = GgufType::UINT8;
  std::variant<std::uint64_t, std::int64_t, double, bool, std::string, GgufArray> value;

  [[nodiscard]] bool is_integer() const noexcept {
    return std::holds_alternative<std::uint64_t>(value) || std::holds_alternative<std::int64_t>(value);
  }
};

/// One tensor's description from the header.
struct GgufTensorInfo {
  std::string name;
  std::vector<std::uint64_t> ne;  ///< ggml order: ne[0] innermost
  GgmlType type = GgmlType::F32;
  std::uint64_t offset = 0;      ///< from the start of the data section
  std::uint64_t n_elements = 0;
  std::uint64_t n_bytes = 0;

  /// The row-major shape (ne reversed), as numpy / PyTorch / safetensors write it.
  [[nodiscard]] std::vector<std::int64_t> shape() const {
    std::vector<std::int64_t> s(ne.rbegin(), ne.rend());
    return s;
  }
};

/// Everything a GGUF header says, with tensor offsets validated against the file size.
struct GgufContents {
  std::uint32_t version = 0;
  std::uint64_t alignment = 32;
  std::uint64_t data_start = 0;  ///< absolute file offset of the tensor data section
  std::vector<std::pair<std::string, GgufValue>> metadata;  ///< in file order
  std::vector<GgufTensorInfo> tensors;                      ///< in file order
};

inline constexpr std::uint32_t kGgufMagic = 0x46554747u;  // "GGUF" read as little-endian u32
inline constexpr std::uint64_t kGgufMaxMetadataValues = std::uint64_t{1} << 24;
inline constexpr int kGgufMaxArrayDepth = 2;

namespace detail {

struct GgufParser {
  ByteCursor cur;
  std::uint64_t values_read = 0;

  std::string read_string(std::string_view field) {
    const auto n = cur.read<std::uint64_t>(field);
    const auto bytes = cur.take(n, field);  // checked against the bytes left before any allocation
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
  }

  static std::uint64_t min_encoded_size(GgufType t) {
    switch (t) {
      case GgufType::UINT8: case GgufType::INT8: case GgufType::BOOL: return 1;
      case GgufType::UINT16: case GgufType::INT16: return 2;
      case GgufType::UINT32: case GgufType::INT32: case GgufType::FLOAT32: return 4;
      case GgufType::UINT64: case GgufType::INT64: case GgufType::FLOAT64: case GgufType::STRING: return 8;
      case GgufType::ARRAY: return 12;
    }
    return 1;
  }

  GgufType read_type(const std::string& key) {
    const auto t = cur.read<std::uint32_t>("a value type");
    if (t > 12) fail(cur.what(), ": key '", key, "' has unknown value type ", t, " at offset ", cur.offset() - 4);
    return static_cast<GgufType>(t);
  }

  GgufValue read_value(GgufType type, const std::string& key, int depth) {
    if (++values_read > kGgufMaxMetadataValues)
      fail(cur.what(), ": more than ", kGgufMaxMetadataValues, " metadata values (at key '", key, "')");
    GgufValue v;
    v.type = type;
    switch (type) {
      case GgufType::UINT8: v.value = std::uint64_t{cur.read<std::uint8_t>(key)}; break;
      case GgufType::UINT16: v.value = std::uint64_t{cur.read<std::uint16_t>(key)}; break;
      case GgufType::UINT32: v.value = std::uint64_t{cur.read<std::uint32_t>(key)}; break;
      case GgufType::UINT64: v.value = cur.read<std::uint64_t>(key); break;
      case GgufType::INT8: v.value = std::int64_t{cur.read<std::int8_t>(key)}; break;
      case GgufType::INT16: v.value = std::int64_t{cur.read<std::int16_t>(key)}; break;
      case GgufType::INT32: v.value = std::int64_t{cur.read<std::int32_t>(key)}; break;
      case GgufType::INT64: v.value = cur.read<std::int64_t>(key); break;
      case GgufType::FLOAT32: v.value = static_cast<double>(cur.read<float>(key)); break;
      case GgufType::FLOAT64: v.value = cur.read<double>(key); break;
      case GgufType::BOOL: {
        const auto b = cur.read<std::uint8_t>(key);
        if (b > 1) fail(cur.what(), ": key '", key, "': bool byte ", int{b}, " at offset ", cur.offset() - 1, " is not 0 or 1");
        v.value = b == 1;
        break;
      }
      case GgufType::STRING: v.value = read_string(key); break;
      case GgufType::ARRAY: {
        if (depth >= kGgufMaxArrayDepth)
          fail(cur.what(), ": key '", key, "': arrays nested deeper than ", kGgufMaxArrayDepth, " levels");
        GgufArray a;
        a.element_type = read_type(key);
        const auto count = cur.read<std::uint64_t>(key);
        const auto need = checked_mul(count, min_encoded_size(a.element_type));
        if (!need || *need > cur.remaining())
          fail(cur.what(), ": truncated file: key '", key, "' declares an array of ", count, " ",
               gguf_type_name(a.element_type), " at offset ", cur.offset() - 8, ", more than the ", cur.remaining(),
               " bytes left hold");
        if (count > kGgufMaxMetadataValues)
          fail(cur.what(), ": key '", key, "': array of ", count, " values exceeds the limit of ", kGgufMaxMetadataValues);
        a.values.reserve(static_cast<std::size_t>(count));
        for (std::uint64_t i = 0; i < count; ++i) a.values.push_back(read_value(a.element_type, key, depth + 1));
        v.value = std::move(a);
        break;
      }
    }
    return v;
  }
};

}  // namespace detail

/// Parses and validates a whole GGUF file held in `bytes`; `source` (the file name) prefixes errors.
[[nodiscard]] inline GgufContents parse_gguf(std::span<const std::byte> bytes, std::string_view source) {
  const std::string what = "GGUF '" + std::string(source) + "'";
  detail::GgufParser p{detail::ByteCursor(bytes, what)};
  auto& cur = p.cur;
  GgufContents out;
  const auto magic = cur.read<std::uint32_t>("the magic");
  if (magic != kGgufMagic) fail(what, ": not a GGUF file (magic 0x", std::hex, magic, ", expected 0x46554747 \"GGUF\")");
  out.version = cur.read<std::uint32_t>("the version");
  if (out.version == 0x02000000u || out.version == 0x03000000u)
    fail(what, ": big-endian GGUF files are not supported");
  if (out.version != 2 && out.version != 3)
    fail(what, ": GGUF version ", out.version, " is not supported (2 and 3 are)");
  const auto n_tensors = cur.read<std::uint64_t>("the tensor count");
  const auto n_kv = cur.read<std::uint64_t>("the metadata count");
  // Each key/value takes >= 13 bytes and each tensor info >= 28: counts beyond that are lies.
  if (n_kv > cur.remaining() / 13)
    fail(what, ": truncated file: ", n_kv, " metadata entries declared, but only ", cur.remaining(), " bytes follow");
  out.metadata.reserve(static_cast<std::size_t>(n_kv));
  std::set<std::string, std::less<>> seen;
  for (std::uint64_t i = 0; i < n_kv; ++i) {
    std::string key = p.read_string("a metadata key");
    const auto type = p.read_type(key);
    if (!seen.insert(key).second) fail(what, ": duplicate metadata key '", key, "'");
    GgufValue value = p.read_value(type, key, 0);
    out.metadata.emplace_back(std::move(key), std::move(value));
  }
  for (const auto& [k, v] : out.metadata) {
    if (k != "general.alignment") continue;
    const auto* a = std::get_if<std::uint64_t>(&v.value);
    if (v.type != GgufType::UINT32 || a == nullptr || *a == 0 || (*a & (*a - 1)) != 0)
      fail(what, ": key 'general.alignment' must be a uint32 power of two, got type ", gguf_type_name(v.type));
    out.alignment = *a;
  }
  if (n_tensors > cur.remaining() / 28)
    fail(what, ": truncated file: ", n_tensors, " tensors declared, but only ", cur.remaining(), " bytes follow");
  out.tensors.reserve(static_cast<std::size_t>(n_tensors));
  seen.clear();
  for (std::uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = p.read_string("a tensor name");
    const auto n_dims = cur.read<std::uint32_t>("n_dims of tensor '" + t.name + "'");
    if (n_dims < 1 || n_dims > 4) fail(what, ": tensor '", t.name, "' has ", n_dims, " dimensions (1 to 4 allowed)");
    std::uint64_t n = 1;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      const auto e = cur.read<std::uint64_t>("the dimensions of tensor '" + t.name + "'");
      const auto prod = detail::checked_mul(n, e);
      if (!prod || *prod > static_cast<std::uint64_t>(INT64_MAX))
        fail(what, ": tensor '", t.name, "': element count overflows (dimension ", d, " = ", e, ")");
      n = *prod;
      t.ne.push_back(e);
    }
    const auto type_id = cur.read<std::uint32_t>("the type of tensor '" + t.name + "'");
    const auto traits = ggml_type_traits(type_id);
    if (!traits) fail(what, ": tensor '", t.name, "' has unknown quantisation type ", type_id);
    t.type = traits->type;
    if (t.ne[0] % traits->block_size != 0)
      fail(what, ": tensor '", t.name, "': row length ", t.ne[0], " is not a multiple of the ", traits->name,
           " block size ", traits->block_size);
    t.n_elements = n;
    t.n_bytes = ggml_nbytes(t.type, n, what + ": tensor '" + t.name + "'");
    t.offset = cur.read<std::uint64_t>("the offset of tensor '" + t.name + "'");
    if (t.offset % out.alignment != 0)
      fail(what, ": tensor '", t.name, "' offset ", t.offset, " is not a multiple of the alignment ", out.alignment);
    if (!seen.insert(t.name).second) fail(what, ": duplicate tensor name '", t.name, "'");
    out.tensors.push_back(std::move(t));
  }
  const std::uint64_t header_end = cur.offset();
  const std::uint64_t pad = (out.alignment - header_end % out.alignment) % out.alignment;
  out.data_start = header_end + pad;
  if (out.tensors.empty()) return out;
  if (out.data_start > bytes.size())
    fail(what, ": truncated file: the tensor data section would start at offset ", out.data_start,
         " past the end of the file (", bytes.size(), " bytes)");
  const std::uint64_t data_size = bytes.size() - out.data_start;
  std::vector<const GgufTensorInfo*> by_offset;
  by_offset.reserve(out.tensors.size());
  for (const auto& t : out.tensors) {
    const auto end = detail::checked_add(t.offset, t.n_bytes);
    if (!end || *end > data_size)
      fail(what, ": tensor '", t.name, "' data [", t.offset, ", ", t.offset, " + ", t.n_bytes,
           ") is out of range: the data section holds ", data_size, " bytes (from file offset ", out.data_start, ")");
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (std::size_t i = 1; i < by_offset.size(); ++i) {
    const auto* prev = by_offset[i - 1];
    const auto* t = by_offset[i];
    if (t->offset < prev->offset + prev->n_bytes)
      fail(what, ": tensor '", t->name, "' data at offset ", t->offset, " overlaps tensor '", prev->name, "' [",
           prev->offset, ", ", prev->offset + prev->n_bytes, ")");
  }
  return out;
}

/// A memory-mapped GGUF file: parsed header, typed metadata lookups, and tensor data / dequantisation.
class GgufFile {
 public:
  explicit GgufFile(const std::filesystem::path& path) : file_(path), contents_(parse_gguf(file_.bytes(), file_.path())) {}

  [[nodiscard]] const std::string& path() const noexcept { return file_.path(); }
  [[nodiscard]] const GgufContents& contents() const noexcept { return contents_; }
  [[nodiscard]] std::uint32_t version() const noexcept { return contents_.version; }
  [[nodiscard]] std::uint64_t alignment() const noexcept { return contents_.alignment; }
  [[nodiscard]] const std::vector<std::pair<std::string, GgufValue>>& metadata() const noexcept {
    return contents_.metadata;
  }
  [[nodiscard]] const std::vector<GgufTensorInfo>& tensors() const noexcept { return contents_.tensors; }

  /// The value of `key`, or nullptr.
  [[nodiscard]] const GgufValue* find(std::string_view key) const noexcept {
    for (const auto& [k, v] : contents_.metadata)
      if (k == key) return &v;
    return nullptr;
  }
  [[nodiscard]] bool contains(std::string_view key) const noexcept { return find(key) != nullptr; }

  /// The value of `key`; throws kaizen::Error naming the file and key when absent.
  [[nodiscard]] const GgufValue& at(std::string_view key) const {
    const auto* v = find(key);
    if (v == nullptr) fail(what(), ": missing metadata key '", key, "'");
    return *v;
  }

  /// An integer value (any integer type) as int64; throws when absent, not an integer, or out of range.
  [[nodiscard]] std::int64_t get_int(std::string_view key) const { return as_int(at(key), key); }
  /// A float32/float64 value, or an integer converted; throws when absent or of another type.
  [[nodiscard]] double get_float(std::string_view key) const { return as_float(at(key), key); }
  [[nodiscard]] bool get_bool(std::string_view key) const {
    const auto& v = at(key);
    if (const auto* b = std::get_if<bool>(&v.value)) return *b;
    fail(what(), ": key '", key, "' has type ", gguf_type_name(v.type), ", expected bool");
  }
  [[nodiscard]] const std::string& get_string(std::string_view key) const {
    const auto& v = at(key);
    if (const auto* s = std::get_if<std::string>(&v.value)) return *s;
    fail(what(), ": key '", key, "' has type ", gguf_type_name(v.type), ", expected string");
  }
  [[nodiscard]] const GgufArray& get_array(std::string_view key) const {
    const auto& v = at(key);
    if (const auto* a = std::get_if<GgufArray>(&v.value)) return *a;
    fail(what(), ": key '", key, "' has type ", gguf_type_name(v.type), ", expected array");
  }
  /// An array of strings (tokenizer.ggml.tokens, .merges) as a vector.
  [[nodiscard]] std::vector<std::string> get_string_array(std::string_view key) const {
    const auto& a = get_array(key);
    if (a.element_type != GgufType::STRING)
      fail(what(), ": key '", key, "' is an array of ", gguf_type_name(a.element_type), ", expected string");
    std::vector<std::string> out;
    out.reserve(a.values.size());
    for (const auto& v : a.values) out.push_back(std::get<std::string>(v.value));
    return out;
  }

  [[nodiscard]] std::int64_t as_int(const GgufValue& v, std::string_view key) const {
    if (const auto* u = std::get_if<std::uint64_t>(&v.value)) {
      if (*u > static_cast<std::uint64_t>(INT64_MAX)) fail(what(), ": key '", key, "' = ", *u, " does not fit int64");
      return static_cast<std::int64_t>(*u);
    }
    if (const auto* i = std::get_if<std::int64_t>(&v.value)) return *i;
    fail(what(), ": key '", key, "' has type ", gguf_type_name(v.type), ", expected an integer");
  }
  [[nodiscard]] double as_float(const GgufValue& v, std::string_view key) const {
    if (const auto* d = std::get_if<double>(&v.value)) return *d;
    if (v.is_integer()) return static_cast<double>(as_int(v, key));
    fail(what(), ": key '", key, "' has type ", gguf_type_name(v.type), ", expected a number");
  }

  /// The tensor named `name`, or nullptr.
  [[nodiscard]] const GgufTensorInfo* find_tensor(std::string_view name) const noexcept {
    for (const auto& t : contents_.tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
  /// The tensor named `name`; throws "missing tensor" naming the file when absent.
  [[nodiscard]] const GgufTensorInfo& tensor(std::string_view name) const {
    const auto* t = find_tensor(name);
    if (t == nullptr) fail(what(), ": missing tensor '", name, "'");
    return *t;
  }

  /// The stored bytes of a tensor (validated against the file size when the file was opened).
  [[nodiscard]] std::span<const std::byte> data(const GgufTensorInfo& t) const {
    return file_.bytes().subspan(static_cast<std::size_t>(contents_.data_start + t.offset),
                                 static_cast<std::size_t>(t.n_bytes));
  }

  /// The tensor's values as float32 in row-major order (see gguf_quants.hpp for the rules).
  [[nodiscard]] std::vector<float> dequantize(const GgufTensorInfo& t) const {
    return io::dequantize(t.type, data(t), t.n_elements, what() + ": tensor '" + t.name + "'");
  }
  [[nodiscard]] std::vector<float> dequantize(std::string_view name) const { return dequantize(tensor(name)); }

 private:
  [[nodiscard]] std::string what() const { return "GGUF '" + file_.path() + "'"; }

  MappedFile file_;
  GgufContents contents_;
};

}  // namespace kaizen::io
