// kaizen/reward/math_parse.hpp - parse a final answer written in LaTeX or plain text into a small
// expression tree (no CAS here: reward/math_equal.hpp turns trees into GiNaC expressions), and
// print the tree back in one canonical text form (normalize_math).
//
// Lexing rules (each documented in docs/rewards.md, "Math verifier"):
//   dropped       `$`, whitespace, `\left` `\right` `\big..` `\displaystyle` `\textstyle`, LaTeX spaces
//                 (`\,` `\;` `\:` `\!` `\ ` `~` `\quad` `\qquad`), `\$`, `\boxed` (its braces group),
//                 degrees (`^\circ`, `^{\circ}`, U+00B0).
//   numbers       digits with thousands separators only at bracket depth 0 (`1,234` with groups of
//                 exactly three, `1{,}234`, `1\,234`, `1\ 234`), a decimal part, and scientific
//                 notation written `1.5e-3` / `1.5E3` (digits right after the e).
//                 Fullwidth digits U+FF10..FF19 read as ASCII digits; U+2212 and U+2013 as '-'.
//   operators     `\cdot` `\times` U+00D7 U+00B7 -> '*', `\div` U+00F7 -> '/', `\le` `\leq` U+2264,
//                 `\ge` `\geq` U+2265, `\ne` `\neq`, `\pm`, `\cup`, `%` `\%` and the word "percent".
//   text          `\text{}` `\textbf{}` `\mathrm{}` `\mbox{}` `\textrm{}` `\mathbf{}`: content made
//                 of letters (and spaces, '.', '-', '/': `\text{m/s}`) becomes words (lower case);
//                 other content is read as math.
//   words         a run of >= 2 letters after whitespace (or from `\text{}`) is a word; a run glued
//                 to what precedes it (`2xy`) is a product of one-letter symbols. Number words
//                 zero..twenty, thirty..ninety, and "twenty-one" forms are numbers. Words that
//                 follow a complete operand are units and dropped (`5 cm`, `12\text{ dollars}`);
//                 an answer of words only is one Word (`\text{Monday}`); "or" / "either" anywhere is
//                 a hedge (parse error "hedge"); "and" separates list items.
// Grammar (recursive descent, depth bounded by ParseOptions::max_depth, size by max_nodes):
//   top      := item (("," | ";" | "and") item)*             -> list when > 1 item
//   item     := expr (relop expr)*                           -> relation when a relop appears
//   expr     := term (("+" | "-" | "\pm") term)*
//   term     := unary (("*" | "/" | juxtaposition) unary)*   mixed numbers `2\frac12`, `2 1/2`
//   unary    := ("-" | "+") unary | postfix ("^" exponent)?
//   postfix  := primary ("!" | "%")*
//   primary  := number | symbol (`x`, `x_1`, `\alpha`) | `\pi` | `e` | `\infty` | `(`...`)` tuple,
//               interval or group | `[`...`]` | `\{`...`\}` set | `{`...`}` group | `|x|` |
//               `\frac` `\sqrt[n]` `\binom` | functions (`\sin` ... `\ln`, `\exp`) | matrices
//               (`\begin{pmatrix|bmatrix|matrix|array}` rows `\\`, cells `&`).
//   `(a, b)` is a tuple (equal to an open interval by option); `[a, b]`, `(a, b]`, `[a, b)` are
//   intervals; `A \cup B` a union.
// The printer writes every node with explicit brackets and operators, so that parsing what it
// prints gives the same tree; normalize_math repeats parse+print until nothing changes (at most 4
// passes, else ""), which makes it idempotent by construction. Everything is linear in the input:
// one lexer pass, one parser pass, node count bounded.
//
// References: the answer conventions of Hendrycks et al., MATH (2021, arXiv 2103.03874) and
// Cobbe et al., GSM8K (2021, arXiv 2110.14168).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kaizen::reward {

/// Node kinds of a parsed answer.
enum class MathKind : std::uint8_t {
  number,     ///< text: digits with an optional '.', optional "e<int>" (no sign)
  symbol,     ///< text: name (`x`, `x_1`, `alpha`, `i`)
  constant,   ///< text: "pi", "e" or "inf"
  word,       ///< text: lower-case words joined by single spaces
  add,        ///< kids: terms
  mul,        ///< kids: factors
  neg,        ///< kids: 1
  div,        ///< kids: numerator, denominator
  pow,        ///< kids: base, exponent
  func,       ///< text: function name; kids: 1 argument
  sqrt,       ///< kids: radicand
  root,       ///< kids: index, radicand
  factorial,  ///< kids: 1
  percent,    ///< kids: 1
  binom,      ///< kids: n, k
  abs,        ///< kids: 1
  pm,         ///< kids: a, b (a +- b)
  tuple,      ///< kids: >= 2, written (a, b, ...) or [a, b, c, ...]
  list,       ///< kids: >= 2, top-level items
  set,        ///< kids: >= 0, written \{a, b\}
  interval,   ///< kids: lower, upper; flags bit 0: lower closed, bit 1: upper closed
  set_union,  ///< kids: >= 2
  matrix,     ///< kids: cells row by row; flags: column count
  relation,   ///< kids: >= 2 operands; text: the operators joined by ' ' ("=", "<", "<=", ">", ">=", "!=")
};

/// Child indices of a node: up to four inline (almost every node), more on the heap; the parser
/// builds its operand lists in the same type, so parsing allocates per long list, not per node.
class KidList {
 public:
  KidList() = default;
  KidList(std::initializer_list<int> kids) {
    for (int k : kids) push_back(k);
  }
  KidList(const KidList&) = default;
  KidList& operator=(const KidList&) = default;
  KidList(KidList&& other) noexcept : size_(other.size_), heap_(std::move(other.heap_)) {
    std::copy(other.inline_, other.inline_ + kInline, inline_);
    other.size_ = 0;
  }
  KidList& operator=(KidList&& other) noexcept {
    std::copy(other.inline_, other.inline_ + kInline, inline_);
    size_ = other.size_;
    heap_ = std::move(other.heap_);
    other.size_ = 0;
    return *this;
  }
  ~KidList() = default;
  void push_back(int k) {
    if (size_ < kInline) {
      inline_[size_++] = k;
      return;
    }
    if (size_ == kInline) heap_.assign(inline_, inline_ + kInline);
    heap_.push_back(k);
    ++size_;
  }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] const int* begin() const noexcept { return size_ > kInline ? heap_.data() : inline_; }
  [[nodiscard]] const int* end() const noexcept { return begin() + size_; }
  [[nodiscard]] int operator[](std::size_t i) const noexcept { return begin()[i]; }
  [[nodiscard]] int back() const noexcept { return begin()[size_ - 1]; }

 private:
  static constexpr std::size_t kInline = 4;
  int inline_[kInline] = {};
  std::size_t size_ = 0;
  std::vector<int> heap_;
};

struct MathNode {
  MathKind kind = MathKind::number;
  std::string text;
  KidList kids;
  int flags = 0;
};

/// A parsed answer: nodes in an arena, `root` indexes the top node.
struct MathExpr {
  std::vector<MathNode> nodes;
  int root = -1;
  [[nodiscard]] const MathNode& at(int i) const { return nodes[static_cast<std::size_t>(i)]; }
  [[nodiscard]] const MathNode& top() const { return at(root); }
};

struct ParseOptions {
  int max_depth = 256;       ///< parser frames (about 6 per bracket level); deeper is "too deep"
  int max_nodes = 2000;      ///< more nodes is an error "too large"
  std::size_t max_length = 20000;  ///< longer input is an error "too long"
};

/// A tree or the reason there is none ("hedge", "too deep", "too large", "too long", "syntax ...").
struct ParseResult {
  std::optional<MathExpr> expr;
  std::string error;
};

namespace math_detail {

enum class Tok : std::uint8_t {
  end, num, ident, word, cmd, op, lset, rset, rowsep, amp, begin_env, end_env, hedge, conj
};

struct Token {
  Tok type = Tok::end;
  std::string text;
  bool space_before = false;
};

[[nodiscard]] constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
[[nodiscard]] constexpr bool is_alpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
[[nodiscard]] constexpr bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || c == '~';
}

[[nodiscard]] inline std::optional<int> number_word(std::string_view w) {
  static constexpr std::string_view small[] = {"zero", "one", "two", "three", "four", "five", "six",
                                               "seven", "eight", "nine", "ten", "eleven", "twelve",
                                               "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
                                               "eighteen", "nineteen", "twenty"};
  static constexpr std::string_view tens[] = {"thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"};
  for (int i = 0; i <= 20; ++i)
    if (w == small[i]) return i;
  for (int i = 0; i < 7; ++i)
    if (w == tens[i]) return 30 + 10 * i;
  return std::nullopt;
}

[[nodiscard]] inline bool is_function_name(std::string_view w) {
  for (std::string_view f : {"sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan", "sinh", "cosh",
                             "tanh", "log", "ln", "exp", "lg"})
    if (w == f) return true;
  return false;
}

[[nodiscard]] inline bool is_greek(std::string_view w) {
  for (std::string_view g : {"alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta",
                             "vartheta", "iota", "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau",
                             "upsilon", "phi", "varphi", "chi", "psi", "omega", "Gamma", "Delta", "Theta",
                             "Lambda", "Xi", "Sigma", "Phi", "Psi", "Omega"})
    if (w == g) return true;
  return false;
}

/// The lexer: one pass over the bytes, `\text{}` content re-lexed in place (depth-bounded).
class Lexer {
 public:
  explicit Lexer(std::string_view s, const ParseOptions& options) : s_(s), options_(options) {}

  bool run(std::vector<Token>& out, std::string& error) {
    out_ = &out;
    lex(0, s_.size(), 0);
    if (!error_.empty()) error = error_;
    return error_.empty();
  }

 private:
  std::string_view s_;
  const ParseOptions& options_;
  std::vector<Token>* out_ = nullptr;
  std::string error_;
  bool space_ = false;
  int bracket_depth_ = 0;

  void push(Tok type, std::string text) {
    if (static_cast<int>(out_->size()) > 4 * options_.max_nodes) {
      if (error_.empty()) error_ = "too large";
      return;
    }
    out_->push_back(Token{type, std::move(text), space_});
    space_ = false;
  }
  void fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
  }

  /// Index of the '}' closing the '{' at `open` within [open, end), or npos.
  [[nodiscard]] std::size_t closing(std::size_t open, std::size_t end) const {
    int depth = 0;
    for (std::size_t i = open; i < end; ++i) {
      if (s_[i] == '\\') {
        ++i;
        continue;
      }
      if (s_[i] == '{') ++depth;
      if (s_[i] == '}' && --depth == 0) return i;
    }
    return std::string_view::npos;
  }

  void word_or_letters(std::string w, bool from_text) {
    if (w == "or" || w == "either") return push(Tok::hedge, w);
    if (w == "and") return push(Tok::conj, w);
    if (w == "percent") return push(Tok::op, "%");
    if (w == "pi") return push(Tok::cmd, "pi");
    if (w == "inf" || w == "infty" || w == "infinity") return push(Tok::cmd, "infty");
    if (is_function_name(w) && !from_text) return push(Tok::cmd, w);
    if (auto n = number_word(w)) return push(Tok::num, std::to_string(*n));
    if (from_text || space_ || out_->empty()) return push(Tok::word, std::move(w));
    for (char c : w) push(Tok::ident, std::string(1, c));
  }

  void lex(std::size_t pos, std::size_t end, int depth) {
    if (depth > 8) return fail("too deep");
    std::size_t i = pos;
    while (i < end && error_.empty()) {
      const char c = s_[i];
      const auto u = static_cast<unsigned char>(c);
      if (is_space(c) || c == '$') {
        space_ = true;
        ++i;
        continue;
      }
      if (u >= 0x80) {
        i = unicode(i, end);
        continue;
      }
      if (is_digit(c) || (c == '.' && i + 1 < end && is_digit(s_[i + 1]))) {
        i = number(i, end);
        continue;
      }
      if (is_alpha(c)) {
        std::size_t j = i;
        while (j < end && is_alpha(s_[j])) ++j;
        std::string w(s_.substr(i, j - i));
        // "twenty-one": a tens word, a hyphen, a unit word.
        if (auto tens = number_word(w); tens && *tens >= 20 && j + 1 < end && s_[j] == '-' && is_alpha(s_[j + 1])) {
          std::size_t k = j + 1;
          while (k < end && is_alpha(s_[k])) ++k;
          if (auto unit = number_word(s_.substr(j + 1, k - j - 1)); unit && *unit >= 1 && *unit <= 9) {
            push(Tok::num, std::to_string(*tens + *unit));
            i = k;
            continue;
          }
        }
        if (w.size() == 1) {
          push(Tok::ident, w);
        } else {
          for (auto& ch : w)
            if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
          word_or_letters(std::move(w), false);
        }
        i = j;
        continue;
      }
      if (c == '\\') {
        i = command(i, end, depth);
        continue;
      }
      if (c == '^' && degree_at(i + 1, end) != 0) {  // ^\circ, ^{\circ}: degrees, dropped
        i = degree_at(i + 1, end);
        continue;
      }
      switch (c) {
        case '(': case '[': ++bracket_depth_; push(Tok::op, std::string(1, c)); break;
        case ')': case ']': --bracket_depth_; push(Tok::op, std::string(1, c)); break;
        case '+': case '-': case '*': case '/': case '^': case '_': case '{': case '}': case ',': case '=': case '!':
        case '|': case '%': case ';':
          push(Tok::op, std::string(1, c));
          break;
        case '<': case '>':
          if (i + 1 < end && s_[i + 1] == '=') {
            push(Tok::op, std::string(1, c) + "=");
            ++i;
          } else {
            push(Tok::op, std::string(1, c));
          }
          break;
        case '&': push(Tok::amp, "&"); break;
        default: fail(std::string("syntax: unexpected '") + c + "'");
      }
      ++i;
    }
  }

  /// After '^' at i-1: the end of `\circ` / `{\circ}` if that is what follows, else 0.
  [[nodiscard]] std::size_t degree_at(std::size_t i, std::size_t end) const {
    if (s_.substr(i, 5) == "\\circ" && i + 5 <= end) return i + 5;
    if (s_.substr(i, 7) == "{\\circ}" && i + 7 <= end) return i + 7;
    return 0;
  }

  std::size_t unicode(std::size_t i, std::size_t end) {
    auto is = [&](std::string_view bytes) { return s_.substr(i, bytes.size()) == bytes && i + bytes.size() <= end; };
    const auto u1 = i + 2 < end ? static_cast<unsigned char>(s_[i + 2]) : 0;
    if (is("\xE2\x88\x92") || is("\xE2\x80\x93")) return push(Tok::op, "-"), i + 3;
    if (is("\xC3\x97") || is("\xC2\xB7")) return push(Tok::op, "*"), i + 2;
    if (is("\xC3\xB7")) return push(Tok::op, "/"), i + 2;
    if (is("\xCF\x80")) return push(Tok::cmd, "pi"), i + 2;
    if (is("\xE2\x88\x9A")) return push(Tok::cmd, "sqrt"), i + 3;
    if (is("\xE2\x88\x9E")) return push(Tok::cmd, "infty"), i + 3;
    if (is("\xE2\x89\xA4")) return push(Tok::op, "<="), i + 3;
    if (is("\xE2\x89\xA5")) return push(Tok::op, ">="), i + 3;
    if (is("\xC2\xB0")) return i + 2;                                   // degree sign: dropped
    if (is("\xC2\xA0") || is("\xE2\x80\x89") || is("\xE2\x80\xAF")) {  // no-break / thin spaces
      space_ = true;
      return i + (s_[i] == '\xC2' ? 2 : 3);
    }
    if (is("\xEF\xBC") && u1 >= 0x90 && u1 <= 0x99) return number(i, end);  // fullwidth digits
    fail("syntax: unsupported character");
    return i + 1;
  }

  /// Reads one digit at i (ASCII or fullwidth); returns its width, 0 when none.
  [[nodiscard]] std::size_t digit_at(std::size_t i, std::size_t end, char& d) const {
    if (i < end && is_digit(s_[i])) {
      d = s_[i];
      return 1;
    }
    if (i + 2 < end && s_[i] == '\xEF' && s_[i + 1] == '\xBC') {
      const auto u = static_cast<unsigned char>(s_[i + 2]);
      if (u >= 0x90 && u <= 0x99) {
        d = static_cast<char>('0' + (u - 0x90));
        return 3;
      }
    }
    return 0;
  }

  /// Three digits (ASCII or fullwidth) at i, not followed by a fourth: their end, else 0.
  [[nodiscard]] std::size_t group_of_three(std::size_t i, std::size_t end, std::string& digits) const {
    std::string got;
    char d = 0;
    for (int k = 0; k < 3; ++k) {
      const auto w = digit_at(i, end, d);
      if (w == 0) return 0;
      got.push_back(d);
      i += w;
    }
    if (digit_at(i, end, d) != 0) return 0;
    digits += got;
    return i;
  }

  std::size_t number(std::size_t i, std::size_t end) {
    std::string text;
    char d = 0;
    std::size_t lead = 0;
    for (std::size_t w; (w = digit_at(i, end, d)) != 0; i += w, ++lead) text.push_back(d);
    if (lead >= 1 && lead <= 3) {
      for (;;) {
        std::size_t q = 0;
        if (s_.substr(i, 3) == "{,}") q = i + 3;
        else if (bracket_depth_ == 0 && i < end && s_[i] == ',') q = i + 1;
        else if (s_.substr(i, 2) == "\\," || s_.substr(i, 2) == "\\ ") q = i + 2;
        if (q == 0 || q > end) break;
        const auto after = group_of_three(q, end, text);
        if (after == 0) break;
        i = after;
      }
    }
    if (i + 1 < end && s_[i] == '.' && digit_at(i + 1, end, d) != 0) {
      text.push_back('.');
      ++i;
      for (std::size_t w; (w = digit_at(i, end, d)) != 0; i += w) text.push_back(d);
    }
    if (text.empty() || text == ".") {  // a lone '.' before a digit handled by the caller: ".5"
      text = "0";
    }
    if (text.front() == '.') text.insert(text.begin(), '0');
    // Scientific notation: e/E, optional sign, digits, right after the number.
    if (i + 1 < end && (s_[i] == 'e' || s_[i] == 'E')) {
      std::size_t q = i + 1;
      std::string exponent = "e";
      if (q < end && (s_[q] == '-' || s_[q] == '+')) exponent.push_back(s_[q++]);
      std::size_t digits = 0;
      while (q < end && is_digit(s_[q])) exponent.push_back(s_[q++]), ++digits;
      if (digits > 0 && digits <= 6 && !(q < end && is_alpha(s_[q]))) {
        if (exponent[1] == '+') exponent.erase(1, 1);
        text += exponent;
        i = q;
      }
    }
    push(Tok::num, std::move(text));
    return i;
  }

  std::size_t command(std::size_t i, std::size_t end, int depth) {
    if (i + 1 >= end) {
      fail("syntax: trailing backslash");
      return end;
    }
    const char next = s_[i + 1];
    if (!is_alpha(next)) {
      switch (next) {
        case ',': case ';': case ':': case '!': case ' ': case '\t': case '\n': space_ = true; break;
        case '{': ++bracket_depth_; push(Tok::lset, "\\{"); break;
        case '}': --bracket_depth_; push(Tok::rset, "\\}"); break;
        case '\\': push(Tok::rowsep, "\\\\"); break;
        case '%': push(Tok::op, "%"); break;
        case '$': break;
        default: fail(std::string("syntax: unknown escape \\") + next);
      }
      return i + 2;
    }
    std::size_t j = i + 1;
    while (j < end && is_alpha(s_[j])) ++j;
    const std::string name(s_.substr(i + 1, j - i - 1));
    for (std::string_view skip : {"left", "right", "displaystyle", "textstyle", "big", "Big", "bigl", "bigr", "Bigl",
                                  "Bigr", "bigg", "Bigg", "biggl", "biggr", "quad", "qquad", "boxed", "limits"}) {
      if (name == skip) {
        space_ = true;
        return j;
      }
    }
    if (name == "frac" || name == "dfrac" || name == "tfrac") return push(Tok::cmd, "frac"), j;
    if (name == "cdot" || name == "times" || name == "ast") return push(Tok::op, "*"), j;
    if (name == "div") return push(Tok::op, "/"), j;
    if (name == "le" || name == "leq" || name == "leqslant") return push(Tok::op, "<="), j;
    if (name == "ge" || name == "geq" || name == "geqslant") return push(Tok::op, ">="), j;
    if (name == "lt") return push(Tok::op, "<"), j;
    if (name == "gt") return push(Tok::op, ">"), j;
    if (name == "ne" || name == "neq") return push(Tok::op, "!="), j;
    if (name == "in") return push(Tok::op, "\\in"), j;
    if (name == "pm") return push(Tok::cmd, "pm"), j;
    if (name == "cup") return push(Tok::cmd, "cup"), j;
    if (name == "infty") return push(Tok::cmd, "infty"), j;
    if (name == "pi") return push(Tok::cmd, "pi"), j;
    if (name == "circ") return j;  // a bare degree mark
    if (name == "lbrace") return ++bracket_depth_, push(Tok::lset, "\\{"), j;
    if (name == "rbrace") return --bracket_depth_, push(Tok::rset, "\\}"), j;
    if (name == "sqrt" || name == "binom" || name == "dbinom" || name == "tbinom" || is_function_name(name))
      return push(Tok::cmd, name == "dbinom" || name == "tbinom" ? "binom" : name), j;
    if (is_greek(name)) return push(Tok::ident, name), j;
    if (name == "begin" || name == "end") {
      const std::size_t open = j;
      const std::size_t close = open < end && s_[open] == '{' ? closing(open, end) : std::string_view::npos;
      if (close == std::string_view::npos) {
        fail("syntax: \\" + name + " without an environment");
        return end;
      }
      std::string env(s_.substr(open + 1, close - open - 1));
      if (env.ends_with('*')) env.pop_back();
      if (env != "pmatrix" && env != "bmatrix" && env != "matrix" && env != "array" && env != "smallmatrix") {
        fail("syntax: environment " + env);
        return end;
      }
      push(name == "begin" ? Tok::begin_env : Tok::end_env, env);
      std::size_t after = close + 1;
      if (name == "begin" && env == "array" && after < end && s_[after] == '{') {  // column spec
        const std::size_t spec = closing(after, end);
        if (spec != std::string_view::npos) after = spec + 1;
      }
      return after;
    }
    if (name == "text" || name == "textbf" || name == "mathrm" || name == "mbox" || name == "textrm" ||
        name == "mathbf" || name == "textit" || name == "mathit" || name == "operatorname") {
      const std::size_t open = j;
      const std::size_t close = open < end && s_[open] == '{' ? closing(open, end) : std::string_view::npos;
      if (close == std::string_view::npos) {
        fail("syntax: \\" + name + " without its argument");
        return end;
      }
      const std::string_view inner = s_.substr(open + 1, close - open - 1);
      bool words_only = true;
      for (char c : inner)
        if (!is_alpha(c) && !is_space(c) && c != '.' && c != '-' && c != '/') words_only = false;  // "m/s"
      if (name == "operatorname" || name == "mathrm" || name == "mathbf" || name == "mathit") {
        // Upright single words inside math: a function name, else the letters as a word.
        std::string w(inner);
        if (words_only && is_function_name(w)) return push(Tok::cmd, w), close + 1;
      }
      if (words_only) {
        std::size_t k = 0;
        bool any = false;
        while (k < inner.size()) {
          while (k < inner.size() && !is_alpha(inner[k])) ++k;
          std::size_t e = k;
          while (e < inner.size() && is_alpha(inner[e])) ++e;
          if (e > k) {
            std::string w(inner.substr(k, e - k));
            for (auto& ch : w)
              if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
            if (!any) space_ = true;
            any = true;
            word_or_letters(std::move(w), true);
          }
          k = e;
        }
        space_ = true;
        return close + 1;
      }
      space_ = true;
      lex(open + 1, close, depth + 1);
      space_ = true;
      return close + 1;
    }
    fail("syntax: unknown command \\" + name);
    return end;
  }
};

/// The parser over the token list.
class Parser {
 public:
  Parser(std::vector<Token> tokens, const ParseOptions& options) : t_(std::move(tokens)), options_(options) {
    t_.push_back(Token{});
  }

  ParseResult run() {
    ParseResult out;
    strip_units();
    for (const auto& tok : t_)
      if (tok.type == Tok::hedge) {
        out.error = "hedge";
        return out;
      }
    int root = -1;
    if (all_words()) {
      std::string joined;
      for (const auto& tok : t_)
        if (tok.type == Tok::word) joined += (joined.empty() ? "" : " ") + tok.text;
      root = leaf(MathKind::word, joined);
    } else {
      root = top();
      if (error_.empty() && peek().type != Tok::end) fail("syntax: unexpected '" + peek().text + "'");
    }
    if (!error_.empty() || root < 0) {
      out.error = error_.empty() ? "syntax: empty" : error_;
      return out;
    }
    out.expr = MathExpr{std::move(nodes_), root};
    return out;
  }

 private:
  std::vector<Token> t_;
  const ParseOptions& options_;
  std::size_t p_ = 0;
  std::vector<MathNode> nodes_;
  std::string error_;
  int depth_ = 0;

  struct DepthGuard {
    Parser& parser;
    explicit DepthGuard(Parser& p) : parser(p) {
      if (++parser.depth_ > parser.options_.max_depth) parser.fail("too deep");
    }
    ~DepthGuard() { --parser.depth_; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;
  };

  /// Words after a complete operand are units: dropped. Runs of them too ("meters per second").
  void strip_units() {
    std::size_t kept = 0;  // tokens are compacted in place
    bool after_operand = false;
    bool in_unit = false;  // after a dropped unit word: "km/h", "m / s^2", "cm^2" belong to it
    bool unit_caret = false;  // the last dropped unit token was '^': its exponent is dropped too
    for (auto& tok : t_) {
      if (tok.type == Tok::word && after_operand) {
        in_unit = true;
        unit_caret = false;
        continue;
      }
      if (in_unit && (tok.type == Tok::word || tok.type == Tok::ident || (tok.type == Tok::op && (tok.text == "/" || tok.text == "^")) ||
                      (tok.type == Tok::num && unit_caret))) {
        unit_caret = tok.type == Tok::op && tok.text == "^";
        continue;
      }
      in_unit = false;
      unit_caret = false;
      const bool operand_end = tok.type == Tok::num || tok.type == Tok::ident ||
                               (tok.type == Tok::op && (tok.text == ")" || tok.text == "]" || tok.text == "}" ||
                                                        tok.text == "%" || tok.text == "!")) ||
                               tok.type == Tok::rset || tok.type == Tok::end_env ||
                               (tok.type == Tok::cmd && (tok.text == "pi" || tok.text == "infty"));
      if (tok.type != Tok::end) after_operand = operand_end;
      if (&t_[kept] != &tok) t_[kept] = std::move(tok);
      ++kept;
    }
    t_.resize(kept);
  }

  [[nodiscard]] bool all_words() const {
    bool any = false;
    for (const auto& tok : t_) {
      if (tok.type == Tok::end) continue;
      if (tok.type != Tok::word) return false;
      any = true;
    }
    return any;
  }

  void fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
  }
  [[nodiscard]] const Token& peek(std::size_t ahead = 0) const {
    const std::size_t i = p_ + ahead;
    return i < t_.size() ? t_[i] : t_.back();
  }
  [[nodiscard]] bool is_op(std::string_view text, std::size_t ahead = 0) const {
    return peek(ahead).type == Tok::op && peek(ahead).text == text;
  }
  bool accept_op(std::string_view text) {
    if (!is_op(text)) return false;
    ++p_;
    return true;
  }
  void expect_op(std::string_view text) {
    if (!accept_op(text)) fail("syntax: expected '" + std::string(text) + "'");
  }

  int add_node(MathNode node) {
    if (static_cast<int>(nodes_.size()) >= options_.max_nodes) {
      fail("too large");
      return -1;
    }
    nodes_.push_back(std::move(node));
    return static_cast<int>(nodes_.size()) - 1;
  }
  int leaf(MathKind kind, std::string text) { return add_node(MathNode{kind, std::move(text), {}, 0}); }
  int node(MathKind kind, KidList kids, std::string text = {}, int flags = 0) {
    for (int k : kids)
      if (k < 0) return -1;
    return add_node(MathNode{kind, std::move(text), std::move(kids), flags});
  }

  [[nodiscard]] bool ok() const { return error_.empty(); }

  int top() {
    KidList items{item()};
    while (ok() && (is_op(",") || is_op(";") || peek().type == Tok::conj)) {
      ++p_;
      if (peek().type == Tok::end) break;  // "1, 2," trailing separator
      items.push_back(item());
    }
    if (!ok()) return -1;
    return items.size() == 1 ? items[0] : node(MathKind::list, std::move(items));
  }

  /// Items separated by ',' until a closing token (not consumed).
  KidList items_until(bool allow_conj) {
    KidList items;
    if (is_op(")") || is_op("]") || peek().type == Tok::rset) return items;
    items.push_back(item());
    while (ok() && (is_op(",") || is_op(";") || (allow_conj && peek().type == Tok::conj))) {
      ++p_;
      items.push_back(item());
    }
    return items;
  }

  [[nodiscard]] static std::string_view relop(const Token& tok) {
    if (tok.type != Tok::op) return {};
    for (std::string_view r : {"=", "<", ">", "<=", ">=", "!=", "\\in"})
      if (tok.text == r) return r;
    return {};
  }

  int item() {
    DepthGuard guard(*this);
    if (!ok()) return -1;
    KidList operands{expr()};
    std::string ops;
    while (ok() && !relop(peek()).empty()) {
      if (!ops.empty()) ops += ' ';
      ops += relop(peek());
      ++p_;
      operands.push_back(expr());
    }
    if (!ok()) return -1;
    if (operands.size() == 1) return operands[0];
    int left = operands[0];
    // `A \cup B` lives inside expr; relations collect operands.
    (void)left;
    return node(MathKind::relation, std::move(operands), std::move(ops));
  }

  int expr() {
    DepthGuard guard(*this);
    if (!ok()) return -1;
    KidList terms;
    int first = -1;
    if (peek().type == Tok::cmd && peek().text == "pm") {  // leading \pm b
      ++p_;
      first = node(MathKind::pm, {leaf(MathKind::number, "0"), term()});
    } else {
      first = term();
    }
    terms.push_back(first);
    bool unions = false;
    while (ok()) {
      if (accept_op("+")) {
        terms.push_back(term());
      } else if (accept_op("-")) {
        terms.push_back(node(MathKind::neg, {term()}));
      } else if (peek().type == Tok::cmd && peek().text == "pm") {
        ++p_;
        const int sum = terms.size() == 1 ? terms[0] : node(MathKind::add, terms);
        terms = {node(MathKind::pm, {sum, term()})};
      } else if (peek().type == Tok::cmd && peek().text == "cup") {
        ++p_;
        unions = true;
        const int sum = terms.size() == 1 ? terms[0] : node(MathKind::add, terms);
        terms = {sum, term()};
        while (ok() && peek().type == Tok::cmd && peek().text == "cup") {
          ++p_;
          terms.push_back(term());
        }
        break;
      } else {
        break;
      }
    }
    if (!ok()) return -1;
    if (unions) return node(MathKind::set_union, std::move(terms));
    return terms.size() == 1 ? terms[0] : node(MathKind::add, std::move(terms));
  }

  [[nodiscard]] bool starts_primary(const Token& tok) const {
    switch (tok.type) {
      case Tok::num: case Tok::ident: case Tok::lset: case Tok::begin_env: return true;
      case Tok::cmd: return tok.text != "pm" && tok.text != "cup";
      case Tok::op: return tok.text == "(" || tok.text == "[" || tok.text == "{";
      default: return false;
    }
  }

  [[nodiscard]] static bool is_integer_text(const std::string& s) {
    if (s.empty()) return false;
    for (char c : s)
      if (!is_digit(c)) return false;
    return true;
  }

  int term() {
    DepthGuard guard(*this);
    if (!ok()) return -1;
    KidList factors{unary()};
    while (ok()) {
      if (accept_op("*")) {
        factors.push_back(unary());
      } else if (accept_op("/")) {
        const int den = unary();
        const int num = factors.size() == 1 ? factors[0] : node(MathKind::mul, factors);
        factors = {node(MathKind::div, {num, den})};
      } else if (starts_primary(peek())) {
        // Mixed number "2 1/2": an integer, then after a space integer '/' integer.
        const int last = factors.back();
        const bool whole = factors.size() == 1 && last >= 0 && nodes_[static_cast<std::size_t>(last)].kind == MathKind::number &&
                           is_integer_text(nodes_[static_cast<std::size_t>(last)].text);
        if (whole && peek().type == Tok::num && peek().space_before && is_integer_text(peek().text) && is_op("/", 1) &&
            peek(2).type == Tok::num && is_integer_text(peek(2).text)) {
          const int n = leaf(MathKind::number, peek().text);
          const int d = leaf(MathKind::number, peek(2).text);
          p_ += 3;
          factors = {node(MathKind::add, {last, node(MathKind::div, {n, d})})};
          continue;
        }
        if (peek().type == Tok::num && last >= 0 && nodes_[static_cast<std::size_t>(last)].kind == MathKind::number) {
          fail("syntax: two numbers in a row");
          return -1;
        }
        factors.push_back(unary());
      } else {
        break;
      }
    }
    if (!ok()) return -1;
    return factors.size() == 1 ? factors[0] : node(MathKind::mul, std::move(factors));
  }

  int unary() {
    DepthGuard guard(*this);
    if (!ok()) return -1;
    if (accept_op("-")) return node(MathKind::neg, {unary()});
    if (accept_op("+")) return unary();
    const int base = postfix();
    if (accept_op("^")) {
      int exponent = -1;
      if (accept_op("-")) exponent = node(MathKind::neg, {postfix()});
      else exponent = postfix();
      return node(MathKind::pow, {base, exponent});
    }
    return base;
  }

  int postfix() {
    DepthGuard guard(*this);
    if (!ok()) return -1;
    int x = primary();
    while (ok()) {
      if (accept_op("!")) x = node(MathKind::factorial, {x});
      else if (accept_op("%")) x = node(MathKind::percent, {x});
      else break;
    }
    return x;
  }

  /// A macro argument: `{...}` or a single token (`\frac12`: one digit each).
  int argument() {
    DepthGuard guard(*this);
    if (!ok()) return -1;
    if (accept_op("{")) {
      const int x = item();
      expect_op("}");
      return x;
    }
    if (peek().type == Tok::num) {  // \frac12: the first digit only, the rest stays for the next argument
      Token& tok = t_[p_];
      if (tok.text.size() >= 2 && is_integer_text(tok.text)) {
        const int x = leaf(MathKind::number, tok.text.substr(0, 1));
        tok.text.erase(0, 1);
        tok.space_before = false;
        return x;
      }
    }
    return primary();
  }

  int primary() {
    DepthGuard guard(*this);
    if (!ok()) return -1;
    const Token tok = peek();
    switch (tok.type) {
      case Tok::num: {
        ++p_;
        const int n = leaf(MathKind::number, tok.text);
        // Mixed number 2\frac{1}{2}: an integer glued to a fraction of integers below one.
        if (is_integer_text(tok.text) && peek().type == Tok::cmd && peek().text == "frac") {
          const std::size_t save = p_;
          const std::size_t node_count = nodes_.size();
          ++p_;
          const int a = argument();
          const int b = argument();
          if (ok() && a >= 0 && b >= 0 && nodes_[static_cast<std::size_t>(a)].kind == MathKind::number &&
              nodes_[static_cast<std::size_t>(b)].kind == MathKind::number &&
              is_integer_text(nodes_[static_cast<std::size_t>(a)].text) &&
              is_integer_text(nodes_[static_cast<std::size_t>(b)].text) &&
              std::stod(nodes_[static_cast<std::size_t>(a)].text) < std::stod(nodes_[static_cast<std::size_t>(b)].text))
            return node(MathKind::add, {n, node(MathKind::div, {a, b})});
          p_ = save;  // not a mixed number: the fraction multiplies
          nodes_.resize(node_count);
          error_.clear();
        }
        return n;
      }
      case Tok::ident: {
        ++p_;
        std::string name = tok.text;
        if (accept_op("_")) {
          if (accept_op("{")) {
            while (ok() && peek().type != Tok::end && !is_op("}")) name += "_" + t_[p_++].text;
            expect_op("}");
          } else if (peek().type == Tok::num || peek().type == Tok::ident) {
            name += "_" + t_[p_++].text;
          } else {
            fail("syntax: bad subscript");
          }
        }
        if (name == "e") return leaf(MathKind::constant, "e");
        return leaf(MathKind::symbol, name);
      }
      case Tok::lset: {
        ++p_;
        auto items = items_until(true);
        if (peek().type != Tok::rset) {
          fail("syntax: unclosed set");
          return -1;
        }
        ++p_;
        return node(MathKind::set, std::move(items));
      }
      case Tok::begin_env: return matrix();
      case Tok::cmd: return command();
      case Tok::op: break;
      default: fail("syntax: unexpected token"); return -1;
    }
    if (tok.text == "(" || tok.text == "[") {
      ++p_;
      auto items = items_until(false);
      const bool close_paren = is_op(")"), close_bracket = is_op("]");
      if (!close_paren && !close_bracket) {
        fail("syntax: unclosed bracket");
        return -1;
      }
      ++p_;
      if (!ok()) return -1;
      const bool open_closed = tok.text == "[";
      if (items.size() == 1 && tok.text == "(" && close_paren) return items[0];
      if (items.size() == 2 && (open_closed || close_bracket))
        return node(MathKind::interval, std::move(items), {}, (open_closed ? 1 : 0) | (close_bracket ? 2 : 0));
      if (items.size() >= 2 && ((tok.text == "(" && close_paren) || (open_closed && close_bracket)))
        return node(MathKind::tuple, std::move(items));
      if (items.size() == 1 && open_closed && close_bracket) return items[0];
      fail("syntax: bad bracket");
      return -1;
    }
    if (tok.text == "{") {
      ++p_;
      auto items = items_until(false);
      if (!accept_op("}")) {
        fail("syntax: unclosed brace");
        return -1;
      }
      if (items.empty()) {
        fail("syntax: empty group");
        return -1;
      }
      return items.size() == 1 ? items[0] : node(MathKind::list, std::move(items));
    }
    if (tok.text == "|") {
      ++p_;
      const int x = expr();
      expect_op("|");
      return node(MathKind::abs, {x});
    }
    fail("syntax: unexpected '" + tok.text + "'");
    return -1;
  }

  int command() {
    const std::string name = t_[p_++].text;
    if (name == "pi") return leaf(MathKind::constant, "pi");
    if (name == "infty") return leaf(MathKind::constant, "inf");
    if (name == "frac") {
      const int a = argument();
      const int b = argument();
      return node(MathKind::div, {a, b});
    }
    if (name == "binom") {
      const int a = argument();
      const int b = argument();
      return node(MathKind::binom, {a, b});
    }
    if (name == "sqrt") {
      if (accept_op("[")) {
        const int index = expr();
        expect_op("]");
        return node(MathKind::root, {index, argument()});
      }
      return node(MathKind::sqrt, {argument()});
    }
    // Functions: optional power (\sin^2 x), then (arg), {arg} or a factor.
    int power = -1;
    if (accept_op("^")) power = argument();
    int arg = -1;
    if (is_op("(")) {
      ++p_;
      arg = item();
      expect_op(")");
    } else {
      arg = (is_op("{")) ? argument() : postfix();
    }
    const int call = node(MathKind::func, {arg}, name == "lg" ? "log10" : name);
    return power >= 0 ? node(MathKind::pow, {call, power}) : call;
  }

  int matrix() {
    const std::string env = t_[p_++].text;
    KidList cells;
    int columns = -1, current = 0;
    for (;;) {
      if (!ok()) return -1;
      if (peek().type == Tok::end_env) {
        ++p_;
        if (current > 0) {
          if (columns >= 0 && current != columns) fail("syntax: ragged matrix");
          columns = current;
        }
        break;
      }
      if (peek().type == Tok::end) {
        fail("syntax: unclosed matrix");
        return -1;
      }
      cells.push_back(expr());
      ++current;
      if (peek().type == Tok::amp) {
        ++p_;
      } else if (peek().type == Tok::rowsep) {
        ++p_;
        if (columns >= 0 && current != columns) fail("syntax: ragged matrix");
        columns = current;
        current = 0;
      } else if (peek().type != Tok::end_env) {
        fail("syntax: bad matrix cell");
        return -1;
      }
    }
    if (!ok() || cells.empty() || columns <= 0) {
      fail("syntax: empty matrix");
      return -1;
    }
    return node(MathKind::matrix, std::move(cells), {}, columns);
  }
};

}  // namespace math_detail

/// Parses one answer (already extracted from the completion).
[[nodiscard]] inline ParseResult parse_math(std::string_view text, const ParseOptions& options = {}) {
  ParseResult out;
  if (text.size() > options.max_length) {
    out.error = "too long";
    return out;
  }
  std::vector<math_detail::Token> tokens;
  tokens.reserve(text.size() + 2);  // at most one token per byte, and the end token
  math_detail::Lexer lexer(text, options);
  if (!lexer.run(tokens, out.error)) return out;
  return math_detail::Parser(std::move(tokens), options).run();
}

namespace math_detail {

inline void print(const MathExpr& e, int i, std::string& out, int depth) {
  if (depth > 256) return;  // trees come from parse_math, whose depth is bounded below this
  const MathNode& n = e.at(i);
  auto list = [&](std::string_view open, std::string_view sep, std::string_view close) {
    out += open;
    for (std::size_t k = 0; k < n.kids.size(); ++k) {
      if (k) out += sep;
      print(e, n.kids[k], out, depth + 1);
    }
    out += close;
  };
  switch (n.kind) {
    case MathKind::number: out += n.text; break;
    case MathKind::symbol: out += n.text.size() == 1 || n.text.find('_') != std::string::npos ? n.text : "\\" + n.text; break;
    case MathKind::constant: out += n.text == "pi" ? "\\pi" : n.text == "inf" ? "\\infty" : "e"; break;
    case MathKind::word: out += "\\text{" + n.text + "}"; break;
    case MathKind::add: list("(", "+", ")"); break;
    case MathKind::mul: list("(", "*", ")"); break;
    case MathKind::neg: list("(-", "", ")"); break;
    case MathKind::div: list("\\frac{", "}{", "}"); break;
    case MathKind::pow: list("{(", ")^{", "}}"); break;
    case MathKind::func: out += "\\" + n.text; list("(", "", ")"); break;
    case MathKind::sqrt: list("\\sqrt{", "", "}"); break;
    case MathKind::root: list("\\sqrt[", "]{", "}"); break;
    case MathKind::factorial: list("(", "", ")!"); break;
    case MathKind::percent: list("(", "", ")\\%"); break;
    case MathKind::binom: list("\\binom{", "}{", "}"); break;
    case MathKind::abs: list("|", "", "|"); break;
    case MathKind::pm: list("(", "\\pm ", ")"); break;
    case MathKind::tuple: list("(", ",", ")"); break;
    case MathKind::list: list("", ",", ""); break;
    case MathKind::set: list("\\{", ",", "\\}"); break;
    case MathKind::interval: list((n.flags & 1) ? "[" : "(", ",", (n.flags & 2) ? "]" : ")"); break;
    case MathKind::set_union: list("", "\\cup ", ""); break;
    case MathKind::matrix: {
      out += "\\begin{pmatrix}";
      for (std::size_t k = 0; k < n.kids.size(); ++k) {
        if (k) out += (static_cast<int>(k) % n.flags == 0) ? "\\\\" : "&";
        print(e, n.kids[k], out, depth + 1);
      }
      out += "\\end{pmatrix}";
      break;
    }
    case MathKind::relation: {
      std::size_t op_at = 0;
      for (std::size_t k = 0; k < n.kids.size(); ++k) {
        if (k) {
          const std::size_t space = n.text.find(' ', op_at);
          out += n.text.substr(op_at, space == std::string::npos ? std::string::npos : space - op_at);
          out += ' ';
          op_at = space == std::string::npos ? n.text.size() : space + 1;
        }
        print(e, n.kids[k], out, depth + 1);
      }
      break;
    }
  }
}

}  // namespace math_detail

/// The canonical text of a parsed answer (explicit brackets and operators; parses back to the
/// same tree).
[[nodiscard]] inline std::string print_math(const MathExpr& e) {
  std::string out;
  if (e.root >= 0) math_detail::print(e, e.root, out, 0);
  return out;
}

/// The normal form of an answer text: parse and print until a pass changes nothing (at most 4
/// passes; otherwise ""). Text that does not parse keeps its non-space characters as they are.
/// Idempotent by construction: what is returned is a fixed point of one pass.
[[nodiscard]] inline std::string normalize_math(std::string_view text, const ParseOptions& options = {}) {
  auto pass = [&](std::string_view s) {
    auto parsed = parse_math(s, options);
    if (parsed.expr) return print_math(*parsed.expr);
    std::string out;
    out.reserve(s.size());
    for (char c : s)
      if (!math_detail::is_space(c)) out.push_back(c);
    return out;
  };
  std::string current = pass(text);
  for (int i = 0; i < 4; ++i) {
    std::string next = pass(current);
    if (next == current) return current;
    current = std::move(next);
  }
  return std::string();
}

}  // namespace kaizen::reward
