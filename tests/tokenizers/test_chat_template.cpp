// Chat templates against transformers' apply_chat_template (tokenize=False) on 28 conversations per
// family (system / no system, 1-4 turns, with and without the generation prompt, edge white space,
// Qwen3 thinking blocks, reasoning_content, tool messages and enable_thinking), plus hand-written cases.
#include <catch2/catch.hpp>

#include <map>
#include <span>
#include <string>
#include <vector>

#include <kaizen/tokenizers/chat_template.hpp>

#include "tokenizers/fixtures.hpp"

namespace tk = kaizen::tokenizers;

namespace {

std::vector<tk::ChatMessage> messages_of(const nlohmann::json& list) {
  std::vector<tk::ChatMessage> out;
  for (const auto& m : list) {
    tk::ChatMessage msg{m["role"].get<std::string>(), m["content"].get<std::string>(), std::nullopt};
    if (m.contains("reasoning_content")) msg.reasoning_content = m["reasoning_content"].get<std::string>();
    out.push_back(std::move(msg));
  }
  return out;
}

}  // namespace

TEST_CASE("chat templates are byte-equal to transformers for every family", "[tokenizers]") {
  const auto dir = kaizen_test::tokenizer_fixtures();
  if (!dir) return;
  const auto cases = kaizen_test::read_json(*dir + "/chat_reference.json");
  std::map<std::string, int> per_family;
  for (const auto& c : cases) {
    const std::string family = c["family"].get<std::string>();
    tk::ChatOptions options;
    options.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    if (!c["enable_thinking"].is_null()) options.enable_thinking = c["enable_thinking"].get<bool>();
    const auto messages = messages_of(c["messages"]);
    const std::string got = tk::apply_chat_template(tk::chat_family(family), messages, options);
    INFO(family << " case " << per_family[family] << ": " << c["messages"].dump());
    CHECK(got == c["text"].get<std::string>());
    ++per_family[family];
  }
  for (const char* family : {"smollm2", "qwen2", "llama3", "qwen3"}) {
    INFO(family);
    CHECK(per_family[family] >= 20);
  }
}

TEST_CASE("chat templates by hand", "[tokenizers]") {
  const std::vector<tk::ChatMessage> conv = {{"user", " Hi\n", std::nullopt}, {"assistant", "Hello", std::nullopt}};
  CHECK(tk::apply_chat_template(tk::ChatFamily::qwen2, conv, {.add_generation_prompt = true}) ==
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n Hi\n<|im_end|>\n"
        "<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>assistant\n");
  CHECK(tk::apply_chat_template(tk::ChatFamily::llama3, conv) ==
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>");
  const std::vector<tk::ChatMessage> think = {{"user", "q", std::nullopt},
                                              {"assistant", "<think>\nplan\n</think>\n\nA", std::nullopt}};
  CHECK(tk::apply_chat_template(tk::ChatFamily::qwen3, think) ==
        "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\nplan\n</think>\n\nA<|im_end|>\n");
  CHECK(tk::apply_chat_template(tk::ChatFamily::qwen3, std::span(think).first(1),
                                {.add_generation_prompt = true, .enable_thinking = false}) ==
        "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  CHECK(tk::detail::python_strip("\u3000\x1f a b \xc2\xa0\n") == "a b");
  CHECK(tk::detail::python_strip("\xff ") == "\xff");
}

TEST_CASE("chat template errors name the problem", "[tokenizers]") {
  CHECK_THROWS_WITH(tk::chat_family("mistral"), Catch::Contains("unknown chat template family \"mistral\""));
  CHECK_THROWS_WITH(tk::apply_chat_template(tk::ChatFamily::qwen3, std::span<const tk::ChatMessage>{}),
                    Catch::Contains("the conversation is empty"));
}
