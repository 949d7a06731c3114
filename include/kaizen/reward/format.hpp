// kaizen/reward/format.hpp - format rewards over tagged completions, SSRL's format checker, and the
// information-masking hook (the spans between two tags, turned into a token mask).
//
// Rules (a tag `t` is the literal text `<t>` ... `</t>`; names are matched case-sensitively):
//   tags_present(text, tags)    every tag has an opening `<t>` and, after it, a closing `</t>`.
//   tags_in_order(text, tags)   the first `<t_k>` opens after the first `</t_{k-1}>` closes, for
//                               every k (each block complete before the next one starts).
//   matches_template(text, tags, opts)
//                               the whole text is `ws <t1>c1</t1> ws <t2>c2</t2> ... ws` (DeepSeek-R1
//                               style template): nothing outside the blocks but whitespace, each tag
//                               exactly once, in the order given, no nested `<t>` of the same name;
//                               opts.allow_empty = false also rejects a block whose content is
//                               whitespace only.
//   FormatReward{tags, strict}  1 when the text passes (strict: matches_template, else tags_in_order),
//                               otherwise 0.
//   ssrl_format_ok(text)        SSRL's checker (Fan et al., 2025, arXiv 2508.10874; rule list from the
//                               released reward manager): the trimmed text starts with `<think>` and
//                               ends with `</answer>`; every tag in it is one of think, search,
//                               information, answer, opened and closed in turn (no nesting, no stray
//                               closing tag); no block is empty (whitespace only); every `<search>`
//                               block is on one line; at least `min_tags` (default 4) blocks appear.
//   tag_spans(text, open, close, include_tags)
//                               byte ranges [begin, end) of every `open ... close` block, left to
//                               right, non-overlapping; an unclosed last block runs to the end of the
//                               text. include_tags = true covers the tags too.
//   span_token_mask(offsets, spans)
//                               SSRL's information mask: token i (its byte range offsets[i]) gets 0
//                               when it overlaps a span, 1 otherwise. A block of k tokens => k zeros.
//
// References: DeepSeek-R1 (arXiv 2501.12948) for the tag template; SSRL (arXiv 2508.10874) for the
// format checker, `0.9*EM + 0.1*format`, and information masking.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/types.hpp>

namespace kaizen::reward {

namespace detail {

[[nodiscard]] inline bool is_blank(std::string_view s) noexcept {
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v') return false;
  return true;
}

[[nodiscard]] inline std::string_view trim(std::string_view s) noexcept {
  std::size_t b = 0;
  std::size_t e = s.size();
  while (b < e && is_blank(s.substr(b, 1))) ++b;
  while (e > b && is_blank(s.substr(e - 1, 1))) --e;
  return s.substr(b, e - b);
}

inline void check_tag_name(std::string_view fn, std::string_view tag) {
  KAIZEN_CHECK(!tag.empty(), fn, ": a tag name must not be empty");
  for (char c : tag)
    KAIZEN_CHECK(c != '<' && c != '>' && c != '/' && !is_blank(std::string_view(&c, 1)), fn, ": tag name '", tag,
                 "' must not contain '<', '>', '/' or whitespace");
}

[[nodiscard]] inline std::string wrap_tag(std::string_view head, std::string_view t) {
  std::string out;
  out.reserve(t.size() + head.size() + 1);
  out.append(head).append(t).push_back('>');
  return out;
}
[[nodiscard]] inline std::string open_tag(std::string_view t) { return wrap_tag("<", t); }
[[nodiscard]] inline std::string close_tag(std::string_view t) { return wrap_tag("</", t); }

}  // namespace detail

/// True when every tag has `<t>` followed later by `</t>`.
[[nodiscard]] inline bool tags_present(std::string_view text, std::span<const std::string> tags) {
  for (const std::string& t : tags) {
    detail::check_tag_name("tags_present", t);
    const std::size_t open = text.find(detail::open_tag(t));
    if (open == std::string_view::npos) return false;
    if (text.find(detail::close_tag(t), open) == std::string_view::npos) return false;
  }
  return true;
}

/// True when each tag's first block closes before the next tag's first block opens.
[[nodiscard]] inline bool tags_in_order(std::string_view text, std::span<const std::string> tags) {
  std::size_t pos = 0;
  for (const std::string& t : tags) {
    detail::check_tag_name("tags_in_order", t);
    const std::size_t open = text.find(detail::open_tag(t), pos);
    if (open == std::string_view::npos) return false;
    const std::size_t close = text.find(detail::close_tag(t), open);
    if (close == std::string_view::npos) return false;
    pos = close + t.size() + 3;
  }
  return true;
}

/// Options of matches_template.
struct TemplateOptions {
  bool allow_empty = false;  ///< accept a block whose content is whitespace only
};

/// True when the whole text is `ws <t1>..</t1> ws <t2>..</t2> ... ws`, each tag once, in order.
[[nodiscard]] inline bool matches_template(std::string_view text, std::span<const std::string> tags,
                                           const TemplateOptions& options = {}) {
  KAIZEN_CHECK(!tags.empty(), "matches_template: give at least one tag");
  std::size_t pos = 0;
  for (const std::string& t : tags) {
    detail::check_tag_name("matches_template", t);
    const std::string open = detail::open_tag(t);
    const std::string close = detail::close_tag(t);
    const std::size_t at = text.find(open, pos);
    if (at == std::string_view::npos || !detail::is_blank(text.substr(pos, at - pos))) return false;
    const std::size_t body = at + open.size();
    const std::size_t end = text.find(close, body);
    if (end == std::string_view::npos) return false;
    const std::string_view content = text.substr(body, end - body);
    if (content.find(open) != std::string_view::npos) return false;
    if (!options.allow_empty && detail::is_blank(content)) return false;
    pos = end + close.size();
  }
  if (!detail::is_blank(text.substr(pos))) return false;
  // each tag exactly once: no second opening of any listed tag anywhere
  for (const std::string& t : tags) {
    const std::string open = detail::open_tag(t);
    const std::size_t first = text.find(open);
    if (text.find(open, first + open.size()) != std::string_view::npos) return false;
  }
  return true;
}

/// 1 when the completion's text has the tagged format, else 0. An OutcomeReward.
struct FormatReward {
  std::vector<std::string> tags{"think", "answer"};
  bool strict = true;  ///< true: matches_template; false: tags_in_order
  TemplateOptions template_options{};

  [[nodiscard]] double operator()(const Prompt& /*prompt*/, const Completion& completion) const {
    KAIZEN_CHECK(!tags.empty(), "FormatReward: give at least one tag");
    const bool ok = strict ? matches_template(completion.text, tags, template_options)
                           : tags_in_order(completion.text, tags);
    return ok ? 1.0 : 0.0;
  }
};

/// Options of ssrl_format_ok.
struct SsrlFormatOptions {
  std::vector<std::string> allowed{"think", "search", "information", "answer"};
  std::string first = "think";        ///< the text must start with this block
  std::string last = "answer";        ///< and end with this block
  std::string one_line = "search";    ///< blocks of this tag must not contain a newline ("" = off)
  std::size_t min_tags = 4;           ///< at least this many blocks
};

/// SSRL's format checker (see the header comment for the rules).
[[nodiscard]] inline bool ssrl_format_ok(std::string_view text, const SsrlFormatOptions& options = {}) {
  KAIZEN_CHECK(!options.allowed.empty(), "ssrl_format_ok: the allowed tag list is empty");
  const std::string_view s = detail::trim(text);
  if (s.substr(0, options.first.size() + 2) != detail::open_tag(options.first)) return false;
  const std::string last_close = detail::close_tag(options.last);
  if (s.size() < last_close.size() || s.substr(s.size() - last_close.size()) != last_close) return false;
  std::size_t blocks = 0;
  std::size_t pos = 0;
  std::string current;  // the open tag's name, "" outside a block
  std::size_t body = 0;
  while (true) {
    const std::size_t lt = s.find('<', pos);
    if (lt == std::string_view::npos) break;
    const std::size_t gt = s.find('>', lt + 1);
    if (gt == std::string_view::npos) break;
    std::string_view inner = s.substr(lt + 1, gt - lt - 1);
    const bool closing = !inner.empty() && inner.front() == '/';
    if (closing) inner.remove_prefix(1);
    bool known = false;
    for (const std::string& t : options.allowed) known = known || inner == t;
    if (!known) {
      // a '<' that does not start a tag (e.g. "a < b") is text; a tag-like name we do not allow is not
      bool tag_like = !inner.empty();
      for (char c : inner) tag_like = tag_like && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_');
      if (tag_like) return false;
      pos = lt + 1;
      continue;
    }
    if (!closing) {
      if (!current.empty()) return false;  // nesting
      current = std::string(inner);
      body = gt + 1;
    } else {
      if (current != inner) return false;  // stray or mismatched closing tag
      const std::string_view content = s.substr(body, lt - body);
      if (detail::is_blank(content)) return false;
      if (!options.one_line.empty() && current == options.one_line && content.find('\n') != std::string_view::npos)
        return false;
      ++blocks;
      current.clear();
    }
    pos = gt + 1;
  }
  return current.empty() && blocks >= options.min_tags;
}

/// Byte ranges [begin, end) of the blocks between `open` and `close` (see the header comment).
[[nodiscard]] inline std::vector<std::pair<std::size_t, std::size_t>> tag_spans(std::string_view text,
                                                                                std::string_view open,
                                                                                std::string_view close,
                                                                                bool include_tags = true) {
  KAIZEN_CHECK(!open.empty() && !close.empty(), "tag_spans: the open and close markers must not be empty (open '",
               open, "', close '", close, "')");
  std::vector<std::pair<std::size_t, std::size_t>> out;
  std::size_t pos = 0;
  while (true) {
    const std::size_t at = text.find(open, pos);
    if (at == std::string_view::npos) break;
    const std::size_t body = at + open.size();
    const std::size_t end = text.find(close, body);
    if (end == std::string_view::npos) {
      out.emplace_back(include_tags ? at : body, text.size());
      break;
    }
    out.emplace_back(include_tags ? at : body, include_tags ? end + close.size() : end);
    pos = end + close.size();
  }
  return out;
}

/// Token mask (1 = trained, 0 = masked) from each token's byte range and the spans to mask.
/// offsets[i] = {begin, end} of token i in the decoded text, non-decreasing.
[[nodiscard]] inline std::vector<std::uint8_t> span_token_mask(
    std::span<const std::pair<std::size_t, std::size_t>> offsets,
    std::span<const std::pair<std::size_t, std::size_t>> spans) {
  std::vector<std::uint8_t> mask(offsets.size(), 1);
  for (std::size_t i = 0; i < offsets.size(); ++i) {
    KAIZEN_CHECK(offsets[i].first <= offsets[i].second, "span_token_mask: token ", i, " has begin ",
                 offsets[i].first, " > end ", offsets[i].second);
    if (i > 0)
      KAIZEN_CHECK(offsets[i].first >= offsets[i - 1].first, "span_token_mask: token offsets must be non-decreasing, token ",
                   i, " begins at ", offsets[i].first, " before token ", i - 1, " at ", offsets[i - 1].first);
  }
  for (std::size_t k = 0; k < spans.size(); ++k) {
    KAIZEN_CHECK(spans[k].first <= spans[k].second, "span_token_mask: span ", k, " has begin ", spans[k].first,
                 " > end ", spans[k].second);
    if (k > 0)
      KAIZEN_CHECK(spans[k].first >= spans[k - 1].second, "span_token_mask: spans must be sorted and disjoint, span ",
                   k, " begins at ", spans[k].first, " before span ", k - 1, " ends at ", spans[k - 1].second);
  }
  // both lists are sorted: one merge pass. A token overlaps span [sb, se) when sb < e and b < se
  // (an empty token at b counts when sb <= b < se).
  std::size_t s = 0;
  for (std::size_t i = 0; i < offsets.size(); ++i) {
    const auto [b, e] = offsets[i];
    while (s < spans.size() && spans[s].second <= b) ++s;
    if (s < spans.size() && (e > b ? spans[s].first < e : spans[s].first <= b)) mask[i] = 0;
  }
  return mask;
}

}  // namespace kaizen::reward
