// libFuzzer target: config.json text -> DecoderConfig, then the derived tensor set and rope
// frequencies (which size allocations from config values, so validate() must bound them).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <kaizen/io/hf_config.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto c = kaizen::io::parse_hf_config_text(text, "fuzz.json");
    if (c.num_hidden_layers <= 64) (void)kaizen::io::expected_tensor_shapes(c);
    (void)kaizen::io::rope_inverse_frequencies(c, 4096);
  } catch (const kaizen::Error&) {
  }
  return 0;
}
