// kaizen/loop/tensorboard.hpp - writes scalar metrics as TensorBoard event files, without TensorFlow or
// protobuf: a loop's metrics sink (loop/metrics.hpp's MetricsCallback) that TensorBoard reads.
//
// Format (one file per writer, <log_dir>/events.out.tfevents.<unix seconds>.<host>.<pid>.<n>):
//   records    TFRecord framing: uint64 length (little-endian), uint32 masked CRC32C of those 8 bytes,
//              the data, uint32 masked CRC32C of the data. masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8
//              (mod 2^32); CRC32C is the Castagnoli polynomial (reflected 0x82F63B78), init and final xor ~0.
//   first      an Event {wall_time = 1, file_version = 3: "brain.Event:2"}.
//   scalars    an Event {wall_time = 1 (double), step = 2 (varint int64), summary = 5 {value = 1 {tag = 1
//              (string), simple_value = 2 (float)}}}; field numbers and wire types are those of TensorFlow's
//              event.proto and summary.proto, encoded by hand (varint keys, length-delimited messages).
//   metrics    operator()(record) makes every number in a metrics record (nested objects flattened with "/";
//              booleans, strings and arrays skipped; "step" itself excluded) a scalar tagged
//              "<event>/<key>" at step record["step"]; a record without an integer "step" is a kaizen::Error.
// Records are flushed after every add_scalar / record, so TensorBoard sees a run while it trains.
//
// Usage:
//   kaizen::loop::TensorBoardWriter tb("runs/grpo");
//   tb.add_scalar("reward/mean", 0.42, 10);
//   loop_options.metrics = [&](const nlohmann::json& r) { jsonl(r); tb(r); };   // beside JSON Lines
//
// References: TensorFlow's event.proto / summary.proto (Event, Summary.Value), the TFRecord format
// (length + masked CRC32C framing), RFC 3720 appendix B.4 (CRC32C), the protobuf encoding guide.
#pragma once

#include <array>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <kaizen/core/error.hpp>

namespace kaizen::loop {

namespace tensorboard_detail {

[[nodiscard]] inline std::uint32_t crc32c(std::string_view data) noexcept {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1U) ? (c >> 1U) ^ 0x82F63B78U : c >> 1U;
      t[i] = c;
    }
    return t;
  }();
  std::uint32_t c = 0xFFFFFFFFU;
  for (unsigned char b : data) c = table[(c ^ b) & 0xFFU] ^ (c >> 8U);
  return c ^ 0xFFFFFFFFU;
}

[[nodiscard]] inline std::uint32_t masked_crc32c(std::string_view data) noexcept {
  const std::uint32_t c = crc32c(data);
  return ((c >> 15U) | (c << 17U)) + 0xa282ead8U;
}

inline void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80U) {
    out.push_back(static_cast<char>((v & 0x7FU) | 0x80U));
    v >>= 7U;
  }
  out.push_back(static_cast<char>(v));
}

template <class T>
inline void put_le(std::string& out, T v) {
  unsigned char bytes[sizeof(T)];
  std::memcpy(bytes, &v, sizeof(T));  // x86-64 and aarch64 are little-endian
  static_assert(std::endian::native == std::endian::little, "TensorBoardWriter assumes a little-endian machine");
  out.append(reinterpret_cast<const char*>(bytes), sizeof(T));
}

// Field key: (number << 3) | wire type (0 varint, 1 64-bit, 2 length-delimited, 5 32-bit).
inline void put_key(std::string& out, std::uint32_t field, std::uint32_t wire) { put_varint(out, (field << 3U) | wire); }

inline void put_bytes(std::string& out, std::uint32_t field, std::string_view bytes) {
  put_key(out, field, 2);
  put_varint(out, bytes.size());
  out.append(bytes);
}

// An Event with wall_time and step, and either file_version or one scalar summary value.
[[nodiscard]] inline std::string event(double wall_time, std::int64_t step, std::string_view file_version,
                                       std::string_view tag, float value, bool scalar) {
  std::string e;
  put_key(e, 1, 1);
  put_le(e, wall_time);
  if (step != 0) {
    put_key(e, 2, 0);
    put_varint(e, static_cast<std::uint64_t>(step));  // int64: two's complement as a 10-byte varint when negative
  }
  if (scalar) {
    std::string v;
    put_bytes(v, 1, tag);
    put_key(v, 2, 5);
    put_le(v, value);
    std::string summary;
    put_bytes(summary, 1, v);
    put_bytes(e, 5, summary);
  } else {
    put_bytes(e, 3, file_version);
  }
  return e;
}

// TFRecord framing of one record.
[[nodiscard]] inline std::string frame(std::string_view data) {
  std::string out;
  std::string length;
  put_le(length, static_cast<std::uint64_t>(data.size()));
  out += length;
  put_le(out, masked_crc32c(length));
  out.append(data);
  put_le(out, masked_crc32c(data));
  return out;
}

}  // namespace tensorboard_detail

/// Writes one TensorBoard event file of scalar summaries (see the file comment). Not copyable; movable.
class TensorBoardWriter {
 public:
  /// Creates `log_dir` if needed and a new event file in it. Throws kaizen::Error when it cannot.
  explicit TensorBoardWriter(const std::filesystem::path& log_dir) {
    std::error_code ec;
    std::filesystem::create_directories(log_dir, ec);
    KAIZEN_CHECK(!ec && std::filesystem::is_directory(log_dir), "TensorBoardWriter: cannot create the folder '",
                 log_dir.string(), "': ", ec ? ec.message() : std::string("not a folder"));
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
    const auto seconds = static_cast<std::int64_t>(now());
    for (int n = 0;; ++n) {  // a fresh name even for several writers in one second
      path_ = log_dir / ("events.out.tfevents." + std::to_string(seconds) + "." + host + "." +
                         std::to_string(::getpid()) + "." + std::to_string(n));
      if (!std::filesystem::exists(path_)) break;
    }
    out_.open(path_, std::ios::binary | std::ios::trunc);
    KAIZEN_CHECK(out_.good(), "TensorBoardWriter: cannot open '", path_.string(), "' for writing");
    write(tensorboard_detail::event(now(), 0, "brain.Event:2", {}, 0.0F, false));
  }

  /// The event file being written.
  [[nodiscard]] const std::filesystem::path& file() const noexcept { return path_; }

  /// One scalar: `tag` at `step`, stamped with the current time or `wall_time` (Unix seconds).
  void add_scalar(std::string_view tag, double value, std::int64_t step, std::optional<double> wall_time = std::nullopt) {
    KAIZEN_CHECK(!tag.empty(), "TensorBoardWriter::add_scalar: the tag is empty (step ", step, ")");
    write(tensorboard_detail::event(wall_time.value_or(now()), step, {}, tag, static_cast<float>(value), true));
  }

  /// Metrics sink: every number of `record` as "<event>/<key>" at record["step"] (see the file comment).
  void operator()(const nlohmann::json& record) {
    KAIZEN_CHECK(record.is_object() && record.contains("step") && record["step"].is_number_integer(),
                 "TensorBoardWriter: a metrics record needs an integer \"step\", got ", record.dump().substr(0, 200));
    const std::int64_t step = record["step"].get<std::int64_t>();
    std::string prefix = record.contains("event") && record["event"].is_string() ? record["event"].get<std::string>() + "/" : "";
    const double t = now();
    add_numbers(record, prefix, step, t, true);
  }

 private:
  static double now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  }

  void add_numbers(const nlohmann::json& object, const std::string& prefix, std::int64_t step, double t, bool top) {
    for (const auto& [key, value] : object.items()) {
      if (top && (key == "step" || key == "event")) continue;
      if (value.is_number()) {
        add_scalar(prefix + key, value.get<double>(), step, t);
      } else if (value.is_object()) {
        add_numbers(value, prefix + key + "/", step, t, false);
      }
    }
  }

  void write(const std::string& event) {
    out_ << tensorboard_detail::frame(event);
    out_.flush();
    KAIZEN_CHECK(out_.good(), "TensorBoardWriter: writing '", path_.string(), "' failed");
  }

  std::filesystem::path path_;
  std::ofstream out_;
};

}  // namespace kaizen::loop
