// libFuzzer target over the math verifier's text paths: extraction (reward/math_extract.hpp and
// consistency/extract.hpp), normalisation (normalize_answer, normalize_math, both checked
// idempotent) and the parser; the first byte picks whether the CAS comparison also runs (against a
// fixed gold). Build: fuzz/reward/build.sh; run: build-fuzz/fuzz_math -max_total_time=60.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <kaizen/consistency/extract.hpp>
#include <kaizen/reward/math_verifier.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool compare = data[0] & 1;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  (void)kaizen::consistency::extract_answer(text);
  (void)kaizen::consistency::extract_last_number(text);
  const std::string key = kaizen::consistency::normalize_answer(text);
  if (kaizen::consistency::normalize_answer(key) != key) std::abort();
  const auto extracted = kaizen::reward::extract_math_answer(text);
  const auto parsed = kaizen::reward::parse_math(text);
  const std::string normal = kaizen::reward::normalize_math(text);
  if (kaizen::reward::normalize_math(normal) != normal) std::abort();
  if (compare) {
    static const kaizen::reward::MathVerifier verifier;
    (void)verifier.check(text, "\\frac{1}{2}");
    (void)verifier.equivalent(text, "(x+1)^2");
  }
  (void)extracted;
  (void)parsed;
  return 0;
}
