// libFuzzer target: the safetensors header parser and float conversion over arbitrary bytes.
// Any exception other than kaizen::Error, any sanitizer report or leak is a finding.
#include <cstddef>
#include <cstdint>
#include <span>

#include <kaizen/io/safetensors.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    const auto h = kaizen::io::parse_safetensors(bytes, "fuzz.safetensors");
    for (const auto& t : h.tensors) {
      const auto d = bytes.subspan(static_cast<std::size_t>(h.data_start + t.begin), static_cast<std::size_t>(t.end - t.begin));
      try {
        (void)kaizen::io::to_float(t.dtype, d, t.name);
      } catch (const kaizen::Error&) {
      }
    }
  } catch (const kaizen::Error&) {
  }
  return 0;
}
