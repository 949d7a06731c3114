// libFuzzer target: the GGUF parser over arbitrary bytes, then dequantisation of every (small) tensor
// and the GGUF -> DecoderConfig / name-map path. Only kaizen::Error may escape the library.
#include <cstddef>
#include <cstdint>
#include <span>

#include <kaizen/io/gguf.hpp>
#include <kaizen/io/gguf_model.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    const auto c = kaizen::io::parse_gguf(bytes, "fuzz.gguf");
    for (const auto& t : c.tensors) {
      (void)kaizen::io::gguf_to_hf_name(t.name);
      if (t.n_elements > (1u << 20)) continue;  // keep each run small; sizes are validated already
      try {
        const auto d = bytes.subspan(static_cast<std::size_t>(c.data_start + t.offset), static_cast<std::size_t>(t.n_bytes));
        (void)kaizen::io::dequantize(t.type, d, t.n_elements, t.name);
      } catch (const kaizen::Error&) {
      }
    }
  } catch (const kaizen::Error&) {
  }
  return 0;
}
