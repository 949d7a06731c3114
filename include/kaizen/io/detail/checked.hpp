// kaizen/io/detail/checked.hpp - overflow-checked size arithmetic and a bounds-checked little-endian
// cursor over file bytes, shared by the checkpoint readers (safetensors, GGUF).
//
// Every length, count and offset read from a file passes through these before it sizes an
// allocation or indexes memory: the cursor refuses to read past the end and names the file and the
// byte offset; checked_add / checked_mul refuse a result that does not fit in 64 bits.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <kaizen/core/error.hpp>

namespace kaizen::io::detail {

static_assert(std::endian::native == std::endian::little,
              "kaizen/io reads little-endian files by memcpy: a big-endian host needs byte swaps here");

/// a + b, or nullopt when it overflows 64 bits.
[[nodiscard]] inline std::optional<std::uint64_t> checked_add(std::uint64_t a, std::uint64_t b) noexcept {
  std::uint64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

/// a * b, or nullopt when it overflows 64 bits.
[[nodiscard]] inline std::optional<std::uint64_t> checked_mul(std::uint64_t a, std::uint64_t b) noexcept {
  std::uint64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

/// Reads little-endian scalars and length-prefixed strings from a byte span, refusing to read past
/// its end; errors name `what` (the reader and file) and the offset.
class ByteCursor {
 public:
  ByteCursor(std::span<const std::byte> bytes, std::string_view what) : bytes_(bytes), what_(what) {}

  [[nodiscard]] std::uint64_t offset() const noexcept { return pos_; }
  [[nodiscard]] std::uint64_t remaining() const noexcept { return bytes_.size() - pos_; }
  [[nodiscard]] std::uint64_t size() const noexcept { return bytes_.size(); }

  /// Throws unless `n` more bytes are available; `field` names what was being read.
  void require(std::uint64_t n, std::string_view field) const {
    if (n > remaining())
      fail(what_, ": truncated file: reading ", field, " needs ", n, " bytes at offset ", pos_, ", but the file has ",
           bytes_.size(), " bytes");
  }

  template <class T>
  [[nodiscard]] T read(std::string_view field) {
    require(sizeof(T), field);
    T value{};
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));  // little-endian hosts only (x86-64, aarch64)
    pos_ += sizeof(T);
    return value;
  }

  /// The next `n` bytes as a view (checked), advancing past them.
  [[nodiscard]] std::span<const std::byte> take(std::uint64_t n, std::string_view field) {
    require(n, field);
    auto out = bytes_.subspan(static_cast<std::size_t>(pos_), static_cast<std::size_t>(n));
    pos_ += n;
    return out;
  }

  void seek(std::uint64_t pos, std::string_view field) {
    if (pos > bytes_.size())
      fail(what_, ": truncated file: ", field, " at offset ", pos, " is past the end of the file (", bytes_.size(),
           " bytes)");
    pos_ = pos;
  }

  [[nodiscard]] const std::string& what() const noexcept { return what_; }

 private:
  std::span<const std::byte> bytes_;
  std::string what_;
  std::uint64_t pos_ = 0;
};

}  // namespace kaizen::io::detail
