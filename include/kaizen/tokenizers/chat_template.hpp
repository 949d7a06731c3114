// kaizen/tokenizers/chat_template.hpp - formats a conversation into the prompt text a chat model was
// trained on, byte for byte as transformers' apply_chat_template renders each family's published
// Jinja template (tokenize=False). Each family is written out in C++; there is no template engine.
//
// Families and their rules (ChatML markers <|im_start|> / <|im_end|>; Llama 3 headers):
//   smollm2  ChatML. When the first message is not a system message, a system turn with SmolLM2's
//            default prompt ("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
//            is written first. Each message: "<|im_start|>{role}\n{content}<|im_end|>\n".
//            Generation prompt: "<|im_start|>assistant\n".
//   qwen2    as smollm2 with Qwen2-Instruct's default system prompt "You are a helpful assistant.".
//   llama3   Meta-Llama-3-Instruct: bos_token before the first message; each message
//            "<|start_header_id|>{role}<|end_header_id|>\n\n{content stripped}<|eot_id|>", where the
//            strip removes leading and trailing white space as Python's str.strip() (str.isspace());
//            generation prompt "<|start_header_id|>assistant<|end_header_id|>\n\n".
//   qwen3    Qwen3 (no tools): a leading system message as a ChatML turn; the last "query" is the last
//            user message whose content is not wholly a <tool_response>...</tool_response>. An
//            assistant message's reasoning is its reasoning_content, or else the text between the last
//            "<think>" and the first "</think>" of its content (newlines trimmed) with the content
//            reduced to what follows the last "</think>" (leading newlines dropped). Assistant turns
//            after the last query are written "<think>\n{reasoning}\n</think>\n\n{content}" when they
//            are the final message or have non-empty reasoning; all other assistant turns carry only
//            the content. Consecutive tool messages share one user turn holding
//            "\n<tool_response>\n{content}\n</tool_response>" each. Generation prompt
//            "<|im_start|>assistant\n", followed by "<think>\n\n</think>\n\n" when enable_thinking is
//            explicitly false. An empty conversation is refused (the published template fails on it).
// Messages with tool calls and tool definitions are not supported.
//
// References: the chat_template of HuggingFaceTB/SmolLM2-135M-Instruct (GGUF metadata),
// Qwen/Qwen2-7B-Instruct, meta-llama/Meta-Llama-3-8B-Instruct and Qwen/Qwen3-8B tokenizer_config.json;
// transformers' chat templating documentation.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <kaizen/core/error.hpp>

namespace kaizen::tokenizers {

/// One turn of a conversation.
struct ChatMessage {
  std::string role;                              ///< "system", "user", "assistant" or "tool"
  std::string content;
  std::optional<std::string> reasoning_content;  ///< Qwen3: the assistant's thinking, if kept separately
};

enum class ChatFamily { smollm2, qwen2, llama3, qwen3 };

struct ChatOptions {
  bool add_generation_prompt = false;         ///< end with the header of an assistant turn
  std::optional<bool> enable_thinking;        ///< Qwen3: false closes an empty think block in the prompt
  std::string bos_token = "<|begin_of_text|>";  ///< Llama 3: written before the first message
};

/// Parses a family name: "smollm2", "qwen2", "llama3", "qwen3". Throws kaizen::Error otherwise.
[[nodiscard]] inline ChatFamily chat_family(std::string_view name) {
  if (name == "smollm2") return ChatFamily::smollm2;
  if (name == "qwen2") return ChatFamily::qwen2;
  if (name == "llama3") return ChatFamily::llama3;
  if (name == "qwen3") return ChatFamily::qwen3;
  fail("kaizen::tokenizers::chat_family: unknown chat template family \"", name,
       "\"; supported: smollm2, qwen2, llama3, qwen3");
}

namespace detail {

/// Python's str.isspace() for one code point.
[[nodiscard]] constexpr bool python_space(char32_t c) noexcept {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/// Decodes the UTF-8 character starting at s[i] into c and returns its length (1 for a stray byte,
/// which then never counts as space).
[[nodiscard]] inline std::size_t decode_at(std::string_view s, std::size_t i, char32_t& c) noexcept {
  const auto b = [&](std::size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(s[k])); };
  const char32_t b0 = b(i);
  std::size_t n = 1;
  if (b0 >= 0xC0 && b0 < 0xE0) n = 2;
  else if (b0 >= 0xE0 && b0 < 0xF0) n = 3;
  else if (b0 >= 0xF0 && b0 < 0xF8) n = 4;
  if (i + n > s.size()) n = 1;
  for (std::size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) n = 1;
  }
  switch (n) {
    case 2: c = ((b0 & 0x1F) << 6) | (b(i + 1) & 0x3F); break;
    case 3: c = ((b0 & 0x0F) << 12) | ((b(i + 1) & 0x3F) << 6) | (b(i + 2) & 0x3F); break;
    case 4: c = ((b0 & 0x07) << 18) | ((b(i + 1) & 0x3F) << 12) | ((b(i + 2) & 0x3F) << 6) | (b(i + 3) & 0x3F); break;
    default: c = b0 < 0x80 ? b0 : 0xFFFFFFFF;
  }
  return n;
}

/// Python's s.strip() (no argument): removes leading and trailing str.isspace() characters.
[[nodiscard]] inline std::string_view python_strip(std::string_view s) {
  std::size_t begin = 0;
  while (begin < s.size()) {
    char32_t c = 0;
    const std::size_t n = decode_at(s, begin, c);
    if (!python_space(c)) break;
    begin += n;
  }
  std::size_t end = s.size();
  while (end > begin) {
    std::size_t start = end - 1;  // step back to the lead byte of the last character
    while (start > begin && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80 && end - start < 4) --start;
    char32_t c = 0;
    const std::size_t n = decode_at(s, start, c);
    if (start + n != end) {  // not one whole character: a stray byte, not space
      break;
    }
    if (!python_space(c)) break;
    end = start;
  }
  return s.substr(begin, end - begin);
}

[[nodiscard]] inline std::string_view strip_char_left(std::string_view s, char ch) {
  while (!s.empty() && s.front() == ch) s.remove_prefix(1);
  return s;
}
[[nodiscard]] inline std::string_view strip_char_right(std::string_view s, char ch) {
  while (!s.empty() && s.back() == ch) s.remove_suffix(1);
  return s;
}

inline std::string chatml(std::span<const ChatMessage> messages, std::string_view default_system, bool generation) {
  std::string out;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (i == 0 && messages[0].role != "system") {
      out.append("<|im_start|>system\n").append(default_system).append("<|im_end|>\n");
    }
    out.append("<|im_start|>").append(messages[i].role).append("\n").append(messages[i].content).append("<|im_end|>\n");
  }
  if (generation) out.append("<|im_start|>assistant\n");
  return out;
}

inline std::string llama3(std::span<const ChatMessage> messages, const ChatOptions& options) {
  std::string out;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (i == 0) out.append(options.bos_token);
    out.append("<|start_header_id|>").append(messages[i].role).append("<|end_header_id|>\n\n");
    out.append(python_strip(messages[i].content)).append("<|eot_id|>");
  }
  if (options.add_generation_prompt) out.append("<|start_header_id|>assistant<|end_header_id|>\n\n");
  return out;
}

inline bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
inline bool ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

inline std::string qwen3(std::span<const ChatMessage> messages, const ChatOptions& options) {
  KAIZEN_CHECK(!messages.empty(), "kaizen::tokenizers::apply_chat_template(qwen3): the conversation is empty "
               "(Qwen3's template reads messages[0])");
  std::string out;
  if (messages[0].role == "system") out.append("<|im_start|>system\n").append(messages[0].content).append("<|im_end|>\n");
  const std::size_t n = messages.size();
  std::size_t last_query = n - 1;
  for (std::size_t k = n; k-- > 0;) {
    const auto& m = messages[k];
    if (m.role == "user" && !(starts_with(m.content, "<tool_response>") && ends_with(m.content, "</tool_response>"))) {
      last_query = k;
      break;
    }
  }
  constexpr std::string_view open = "<think>";
  constexpr std::string_view close = "</think>";
  for (std::size_t i = 0; i < n; ++i) {
    const auto& m = messages[i];
    std::string_view content = m.content;
    if (m.role == "user" || (m.role == "system" && i != 0)) {
      out.append("<|im_start|>").append(m.role).append("\n").append(content).append("<|im_end|>\n");
    } else if (m.role == "assistant") {
      std::string_view reasoning;
      if (m.reasoning_content) {
        reasoning = *m.reasoning_content;
      } else if (const auto first_close = content.find(close); first_close != std::string_view::npos) {
        std::string_view before = strip_char_right(content.substr(0, first_close), '\n');
        if (const auto last_open = before.rfind(open); last_open != std::string_view::npos) {
          before = before.substr(last_open + open.size());
        }
        reasoning = strip_char_left(before, '\n');
        content = strip_char_left(content.substr(content.rfind(close) + close.size()), '\n');
      }
      const bool last = i + 1 == n;
      if (i > last_query && (last || !reasoning.empty())) {
        out.append("<|im_start|>assistant\n<think>\n")
            .append(strip_char_right(strip_char_left(reasoning, '\n'), '\n'))
            .append("\n</think>\n\n")
            .append(strip_char_left(content, '\n'));
      } else {
        out.append("<|im_start|>assistant\n").append(content);
      }
      out.append("<|im_end|>\n");
    } else if (m.role == "tool") {
      if (i == 0 || messages[i - 1].role != "tool") out.append("<|im_start|>user");
      out.append("\n<tool_response>\n").append(content).append("\n</tool_response>");
      if (i + 1 == n || messages[i + 1].role != "tool") out.append("<|im_end|>\n");
    }
  }
  if (options.add_generation_prompt) {
    out.append("<|im_start|>assistant\n");
    if (options.enable_thinking == std::optional<bool>(false)) out.append("<think>\n\n</think>\n\n");
  }
  return out;
}

}  // namespace detail

/// SmolLM2's default system prompt (its chat template writes it when the conversation has none).
inline constexpr std::string_view kSmolLM2DefaultSystem = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
/// Qwen2-Instruct's default system prompt.
inline constexpr std::string_view kQwen2DefaultSystem = "You are a helpful assistant.";

/// The prompt text of `messages` for `family` (see the header comment for each family's rules).
[[nodiscard]] inline std::string apply_chat_template(ChatFamily family, std::span<const ChatMessage> messages,
                                                     const ChatOptions& options = {}) {
  switch (family) {
    case ChatFamily::smollm2: return detail::chatml(messages, kSmolLM2DefaultSystem, options.add_generation_prompt);
    case ChatFamily::qwen2: return detail::chatml(messages, kQwen2DefaultSystem, options.add_generation_prompt);
    case ChatFamily::llama3: return detail::llama3(messages, options);
    case ChatFamily::qwen3: return detail::qwen3(messages, options);
  }
  fail("kaizen::tokenizers::apply_chat_template: unknown family value ", static_cast<int>(family));
}

}  // namespace kaizen::tokenizers
