// kaizen/reward/math_screen.hpp - decide a scalar comparison of two parsed answers in double
// precision when the verdict of the GiNaC path (reward/math_equal.hpp) is certain, and say
// "undecided" otherwise; plus the exact 64-bit rationals both paths share.
//
// Why: a GiNaC comparison costs 10-30 us (symbol tables, CLN numbers, cold code); most scalar
// comparisons are settled by one evaluation. The screen returns the CAS path's verdict or nothing,
// never a different verdict (property-tested against the CAS path, tests/reward/math/).
//
// Rules (docs/rewards.md, "Math verifier", "Speed"):
//   values    every node evaluates to an exact rational p/q in 64 bits while it is plain rational
//             arithmetic (numbers, + - * /, %, |x|, integer powers, checked for overflow), else to a
//             double v with an absolute error bound err (running error analysis: each operation adds
//             8 units in the last place, kU = 2^-50, relative; functions add |f'| over [v-err, v+err]
//             times err). Free symbols take the values the CAS's numeric fallback gives them: the
//             names of the comparison's symbol table sorted, the k-th at points[round][k % 4] +
//             0.1 * (k / 4), rounds 0 and 1 (the same constants as math_equal.hpp).
//             \infty is the free symbol the CAS makes of it (named "\\infty").
//   undecided anything not modelled or not well conditioned: the symbol i, words, sets,
//             factorials, binomials, exponents above 64 in magnitude (or above max_exponent), bases
//             whose CAS digits could trip the max_digits guard, non-positive bases of non-integer
//             exponents, arguments within 100 error bounds of a pole or branch point (division,
//             tan, sec, csc, cot, log, sqrt, arcsin, arccos), |x| > 600 in exp, > 700 in sinh/cosh,
//             values under 1e-280 in magnitude (underflow),
//             numbers over 17 significant digits whose double is not finite, non-finite values.
//   refused   a power whose exponent is an exact rational above max_exponent in magnitude, or an
//             exact rational base b with |n| * max(1, digits(b)) > max_digits, and an exact zero
//             denominator: the CAS path throws for these ("exponent too large", "power too large",
//             "division by zero"), so the comparison is "not equal" with that reason.
//   equal     rel_tol > 0 and, at every round, |a - b| + 2 (ea + eb) <= rel_tol / 2 * (max(|a|, |b|)
//             - 2 max(ea, eb)); or both exact and the same rational. The CAS accepts: its exact test
//             or its numeric fallback at the same points (17 digits, closer than our bounds).
//   not equal at some round |a - b| - 2 (ea + eb) > 2 rel_tol (max(|a|, |b|) + 2 max(ea, eb)) and
//             > 0: the true values differ there, so no exact identity holds and the fallback's
//             values differ by more than the tolerance.
//   otherwise undecided.
//
// The arithmetic scan (arithmetic_value) reads an answer text written as plain rational arithmetic
// straight to its exact value, for MathVerifier's first step. Grammar (each token as the lexer of
// math_parse.hpp reads it): numbers (ASCII or fullwidth digits, thousands groups of three after a
// 1-3 digit head: `,` outside parentheses, `{,}`, `\,`, `\ `; a decimal part; `e[+-]digits`; no
// leading zero before another digit; <= 17 significant digits), number words (`five`, `Forty`,
// `twenty-one`), `+`, `-` (also U+2212, U+2013; unary minus), `* \cdot \times \ast` U+00D7 U+00B7,
// `/ \div` U+00F7, `n!` (0 <= n <= 20), `^` with an integer exponent (digits, `-digits` or a `{...}`
// of this grammar, |n| <= 64), `( )` and `{ }` groups, `\frac` `\dfrac` `\tfrac` with braced
// arguments; what the lexer drops between tokens (spaces, `$`, `\$`, LaTeX spaces, `\left`,
// `\right`, styles, degree marks). Anything else (juxtaposition such as `2\frac12`, `2(3)` or `5 cm`,
// percent, lists, a zero denominator, 0^0, a^b^c, 64-bit overflow, more than 8 nested groups or 200
// bytes) gives nothing and the full path runs. Within this grammar the parser builds the same
// arithmetic (the same precedence: unary minus looser than '^', '!' tighter; '/' and '*' left to
// right) and normalize_answer keeps the value, so two such texts are the same answer exactly when
// their values are equal or within rel_tol (MathVerifier decides alone only when the values are
// equal or further apart than twice the tolerance).
//
// References: N. J. Higham, "Accuracy and Stability of Numerical Algorithms" (2nd ed., SIAM 2002),
// ch. 3 (running error analysis).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <kaizen/reward/math_parse.hpp>

namespace kaizen::reward::math_detail {

/// An exact rational p / q (q > 0, lowest terms) in 64 bits.
struct SmallRational {
  std::int64_t num = 0, den = 1;
  friend bool operator==(const SmallRational&, const SmallRational&) = default;
};

/// p / q in lowest terms with q > 0, or nothing when q == 0 or a value is INT64_MIN.
[[nodiscard]] inline std::optional<SmallRational> make_rational(std::int64_t p, std::int64_t q) {
  if (q == 0 || p == INT64_MIN || q == INT64_MIN) return std::nullopt;
  if (q < 0) {
    p = -p;
    q = -q;
  }
  const std::int64_t g = std::gcd(p < 0 ? -p : p, q);
  return SmallRational{p / g, q / g};
}

[[nodiscard]] inline std::optional<SmallRational> rational_times(const SmallRational& x, const SmallRational& y) {
  // cross-reduce first so that products stay small
  const std::int64_t g1 = std::gcd(x.num < 0 ? -x.num : x.num, y.den), g2 = std::gcd(y.num < 0 ? -y.num : y.num, x.den);
  std::int64_t p = 0, q = 0;
  if (__builtin_mul_overflow(g1 ? x.num / g1 : 0, g2 ? y.num / g2 : 0, &p) ||
      __builtin_mul_overflow(x.den / (g2 ? g2 : 1), y.den / (g1 ? g1 : 1), &q))
    return std::nullopt;
  return make_rational(p, q);
}

[[nodiscard]] inline std::optional<SmallRational> rational_plus(const SmallRational& x, const SmallRational& y) {
  const std::int64_t g = std::gcd(x.den, y.den);
  std::int64_t a = 0, b = 0, q = 0, p = 0;
  if (__builtin_mul_overflow(x.num, y.den / g, &a) || __builtin_mul_overflow(y.num, x.den / g, &b) ||
      __builtin_add_overflow(a, b, &p) || __builtin_mul_overflow(x.den / g, y.den, &q))
    return std::nullopt;
  return make_rational(p, q);
}

/// x^n for |n| <= 64 by repeated checked products; nothing on overflow or 0^-n.
[[nodiscard]] inline std::optional<SmallRational> rational_power(const SmallRational& x, std::int64_t n) {
  if (n > 64 || n < -64 || (n < 0 && x.num == 0)) return std::nullopt;
  SmallRational result{1, 1};
  for (std::int64_t k = 0; k < (n < 0 ? -n : n); ++k) {
    const auto r = rational_times(result, x);
    if (!r) return std::nullopt;
    result = *r;
  }
  if (n < 0) return make_rational(result.den, result.num);
  return result;
}

/// The exact value of a number node's text ("12", "0.25", "1.5e-3"), or nothing past 17
/// significant digits or 64 bits.
[[nodiscard]] inline std::optional<SmallRational> number_rational(std::string_view text) {
  std::int64_t digits = 0, scale = 0, exponent = 0;
  std::size_t k = 0;
  int count = 0;
  bool frac = false;
  for (; k < text.size() && text[k] != 'e'; ++k) {
    if (text[k] == '.') {
      frac = true;
      continue;
    }
    if (digits == 0 && text[k] == '0') {
      if (frac) ++scale;
      continue;
    }
    if (++count > 17) return std::nullopt;
    digits = digits * 10 + (text[k] - '0');
    if (frac) ++scale;
  }
  if (k < text.size()) {
    const std::string_view ex = text.substr(k + 1);
    if (ex.empty() || ex.size() > 3) return std::nullopt;
    const bool negative = ex[0] == '-';
    if (negative && ex.size() == 1) return std::nullopt;
    for (char c : ex.substr(negative ? 1 : 0)) {
      if (c < '0' || c > '9') return std::nullopt;
      exponent = exponent * 10 + (c - '0');
    }
    if (negative) exponent = -exponent;
  }
  exponent -= scale;
  std::int64_t p = digits, q = 1;
  for (; exponent > 0; --exponent)
    if (__builtin_mul_overflow(p, 10, &p)) return std::nullopt;
  for (; exponent < 0; ++exponent)
    if (__builtin_mul_overflow(q, 10, &q)) return std::nullopt;
  return make_rational(p, q);
}

/// A value of the screen: exact (`q`) or v +- err; `digits` bounds the decimal digits the CAS
/// would hold for it were it a rational (its power guard reads them).
struct Approx {
  double v = 0, err = 0;
  bool exact = false;
  SmallRational q;
  double digits = 0;
};

enum class ScreenVerdict : std::uint8_t { undecided, equal, not_equal };

/// The CAS reads \infty as a free symbol of this name (math_equal.hpp, ToGinac).
inline constexpr std::string_view kInfinityName = "\\infty";

/// The symbol names of subtree `i` (views into the tree), appended to `out` (nothing for "i").
inline void collect_symbols(const MathExpr& e, int i, std::vector<std::string_view>& out, int depth = 0) {
  if (depth > 300) return;
  const MathNode& n = e.at(i);
  if (n.kind == MathKind::symbol && n.text != "i") out.emplace_back(n.text);
  if (n.kind == MathKind::constant && n.text == "inf") out.emplace_back(kInfinityName);
  for (int k : n.kids) collect_symbols(e, k, out, depth + 1);
}

/// The double-precision evaluator (see the header comment). `names`: the comparison's symbol
/// table, sorted and unique.
class Screen {
 public:
  static constexpr double kU = 0x1p-50;

  Screen(const std::vector<std::string_view>& names, int round, int max_exponent, double max_digits)
      : names_(names), round_(round), max_exponent_(max_exponent), max_digits_(max_digits) {}

  /// The value of subtree `i`, or nothing (undecided; refused() tells whether the CAS would throw).
  std::optional<Approx> eval(const MathExpr& e, int i, int depth = 0) {
    if (depth > 200 || refused_) return std::nullopt;
    const MathNode& n = e.at(i);
    auto kid = [&](std::size_t k) { return eval(e, n.kids[k], depth + 1); };
    switch (n.kind) {
      case MathKind::number: return number(n.text);
      case MathKind::symbol:
        if (n.text == "i") return std::nullopt;
        return symbol(n.text);
      case MathKind::constant:
        if (n.text == "pi") return inexact(3.14159265358979323846, kU * 3.2, 1.0);
        if (n.text == "e") return inexact(2.71828182845904523536, kU * 2.8, 1.0);
        if (n.text == "inf") return symbol(kInfinityName);
        return std::nullopt;
      case MathKind::add: {
        std::optional<Approx> sum = exact_value(SmallRational{0, 1});
        for (std::size_t k = 0; k < n.kids.size() && sum; ++k) {
          const auto x = kid(k);
          sum = x ? plus(*sum, *x) : std::nullopt;
        }
        return sum;
      }
      case MathKind::mul: {
        std::optional<Approx> product = exact_value(SmallRational{1, 1});
        for (std::size_t k = 0; k < n.kids.size() && product; ++k) {
          const auto x = kid(k);
          product = x ? times(*product, *x) : std::nullopt;
        }
        return product;
      }
      case MathKind::neg: {
        auto x = kid(0);
        if (!x) return std::nullopt;
        if (x->exact) {
          if (x->q.num == INT64_MIN) return std::nullopt;
          x->q.num = -x->q.num;
        }
        x->v = -x->v;
        return x;
      }
      case MathKind::div: {
        const auto den = kid(1);
        if (!den) return std::nullopt;
        if (den->exact && den->q.num == 0) return refuse("division by zero");
        const auto num = kid(0);
        if (!num) return std::nullopt;
        return divide(*num, *den);
      }
      case MathKind::percent: {
        const auto x = kid(0);
        if (!x) return std::nullopt;
        return divide(*x, *exact_value(SmallRational{100, 1}));
      }
      case MathKind::abs: {
        auto x = kid(0);
        if (!x) return std::nullopt;
        if (x->exact) {
          if (x->q.num == INT64_MIN) return std::nullopt;
          x->q.num = x->q.num < 0 ? -x->q.num : x->q.num;
        }
        x->v = std::fabs(x->v);
        return x;
      }
      case MathKind::pow: {
        const auto base = kid(0);
        const auto exponent = base ? kid(1) : std::nullopt;
        if (!base || !exponent) return std::nullopt;
        return power(*base, *exponent);
      }
      case MathKind::sqrt: {
        const auto x = kid(0);
        if (!x || !(x->v > 100 * (x->err + 1e-300))) return std::nullopt;
        const double v = std::sqrt(x->v);
        return inexact(v, x->err / (2 * std::sqrt(x->v - x->err)) + kU * v, x->digits);
      }
      case MathKind::root: {
        const auto index = kid(0);
        if (!index || !index->exact || index->q.den != 1 || index->q.num < 2 || index->q.num > 64) return std::nullopt;
        const auto x = kid(1);
        if (!x || !(x->v > 100 * (x->err + 1e-300)) || x->digits > 0.9 * max_digits_) return std::nullopt;
        const double n_root = static_cast<double>(index->q.num);
        const double v = std::pow(x->v, 1.0 / n_root);
        const double rho = std::log1p(x->err / (x->v - x->err)) / n_root;
        return inexact(v, v * std::expm1(rho) * 1.01 + 2 * kU * v, x->digits);
      }
      case MathKind::func: {
        const auto x = kid(0);
        if (!x) return std::nullopt;
        return function(n.text, *x);
      }
      default: return std::nullopt;  // factorial, binom, words, sets, tuples, ...: the CAS decides
    }
  }

  [[nodiscard]] bool refused() const noexcept { return refused_; }
  [[nodiscard]] const char* why() const noexcept { return why_; }

  /// The verdict for two values at one point (see the header comment).
  [[nodiscard]] static ScreenVerdict compare(const Approx& a, const Approx& b, double rel_tol) {
    if (a.exact && b.exact && a.q == b.q) return ScreenVerdict::equal;
    const double d = std::fabs(a.v - b.v), e = 2 * (a.err + b.err);
    const double m = std::max(std::fabs(a.v), std::fabs(b.v)), me = 2 * std::max(a.err, b.err);
    if (!std::isfinite(d) || !std::isfinite(e) || !std::isfinite(m)) return ScreenVerdict::undecided;
    if (d - e > 0 && d - e > 2 * std::max(rel_tol, 0.0) * (m + me)) return ScreenVerdict::not_equal;
    if (rel_tol > 0 && d + e <= 0.5 * rel_tol * (m - me)) return ScreenVerdict::equal;
    return ScreenVerdict::undecided;
  }

 private:
  static constexpr double kPoints[2][4] = {{0.5772156649, 1.3247179572, 2.7182818284, 0.9159655941},
                                           {1.6180339887, 0.7390851332, 1.2020569031, 2.6854520010}};
  const std::vector<std::string_view>& names_;
  int round_;
  int max_exponent_;
  double max_digits_;
  bool refused_ = false;
  const char* why_ = "";

  /// A free symbol: the value the CAS's numeric fallback substitutes at this round.
  [[nodiscard]] std::optional<Approx> symbol(std::string_view name) const {
    const auto it = std::lower_bound(names_.begin(), names_.end(), name);
    if (it == names_.end() || *it != name) return std::nullopt;
    const auto k = static_cast<std::size_t>(it - names_.begin());
    return inexact(kPoints[round_][k % 4] + 0.1 * static_cast<double>(k / 4), 0.0, 1.0);
  }

  std::optional<Approx> refuse(const char* why) {
    refused_ = true;
    why_ = why;
    return std::nullopt;
  }

  static std::optional<Approx> inexact(double v, double err, double digits) {
    if (!std::isfinite(v) || !std::isfinite(err)) return std::nullopt;
    if (v != 0 && std::fabs(v) < 1e-280) return std::nullopt;  // near underflow the relative bounds fail
    return Approx{v, err, false, {}, digits};
  }

  static std::optional<Approx> exact_value(const SmallRational& q) {
    const double v = static_cast<double>(q.num) / static_cast<double>(q.den);
    const auto bits = std::bit_width(static_cast<std::uint64_t>(std::max(q.num < 0 ? -q.num : q.num, q.den)));
    return Approx{v, 3 * kU * std::fabs(v), true, q, static_cast<double>(bits) * 0.30103 + 1};
  }

  static std::optional<Approx> number(const std::string& text) {
    double digits = 0, exponent = 0;
    std::size_t k = 0;
    for (; k < text.size() && text[k] != 'e'; ++k) digits += text[k] != '.';
    if (k < text.size()) exponent = std::fabs(std::strtod(text.c_str() + k + 1, nullptr));
    if (digits > 1000 || exponent > 1000) return std::nullopt;  // the CAS refuses or reads it slowly
    if (const auto q = number_rational(text)) return exact_value(*q);
    const double v = std::strtod(text.c_str(), nullptr);
    return inexact(v, 2 * kU * std::fabs(v), digits + exponent + 1);
  }

  static std::optional<Approx> plus(const Approx& a, const Approx& b) {
    if (a.exact && b.exact)
      if (const auto q = rational_plus(a.q, b.q)) return exact_value(*q);
    const double v = a.v + b.v;
    return inexact(v, a.err + b.err + kU * (std::fabs(a.v) + std::fabs(b.v)), a.digits + b.digits + 1);
  }

  static std::optional<Approx> times(const Approx& a, const Approx& b) {
    if (a.exact && b.exact)
      if (const auto q = rational_times(a.q, b.q)) return exact_value(*q);
    const double v = a.v * b.v;
    if (v == 0 && a.v != 0 && b.v != 0) return std::nullopt;  // underflow
    return inexact(v, std::fabs(a.v) * b.err + std::fabs(b.v) * a.err + a.err * b.err + kU * std::fabs(v), a.digits + b.digits);
  }

  static std::optional<Approx> divide(const Approx& a, const Approx& b) {
    if (a.exact && b.exact && b.q.num != 0)
      if (const auto inverse = make_rational(b.q.den, b.q.num))
        if (const auto q = rational_times(a.q, *inverse)) return exact_value(*q);
    if (!(std::fabs(b.v) > 100 * (b.err + 1e-300))) return std::nullopt;
    const double v = a.v / b.v;
    if (v == 0 && a.v != 0) return std::nullopt;  // underflow
    return inexact(v, (a.err + std::fabs(v) * b.err) / (std::fabs(b.v) - b.err) + kU * std::fabs(v), a.digits + b.digits);
  }

  std::optional<Approx> power(const Approx& base, const Approx& exponent) {
    const double magnitude = std::fabs(exponent.v);
    if (exponent.exact) {
      if (magnitude > max_exponent_) return refuse("exponent too large");
      if (base.exact) {  // the CAS's guard on a numeric base, computed as it does
        const auto bits = std::bit_width(static_cast<std::uint64_t>(std::max(base.q.num < 0 ? -base.q.num : base.q.num, base.q.den)));
        const double digits = base.q.num == 0 ? 0.0 : static_cast<double>(bits) * 0.30103;
        if (magnitude * std::max(1.0, digits) > max_digits_ * 0.999) {
          if (magnitude * std::max(1.0, digits) > max_digits_ * 1.001) return refuse("power too large");
          return std::nullopt;
        }
      }
    }
    if (magnitude + exponent.err > std::min(64.0, static_cast<double>(max_exponent_))) return std::nullopt;
    if (base.digits * std::max(1.0, magnitude + exponent.err) > 0.9 * max_digits_) return std::nullopt;
    const bool integer = exponent.exact && exponent.q.den == 1;
    if (exponent.exact && exponent.q.num == 0 && !(std::fabs(base.v) > 100 * (base.err + 1e-300)))
      return std::nullopt;  // 0^0: the CAS throws
    if (integer && base.exact)
      if (const auto q = rational_power(base.q, exponent.q.num)) return exact_value(*q);
    const double digits = base.digits * std::max(1.0, magnitude + exponent.err);
    const double b = std::fabs(base.v);
    if (!(b > 100 * (base.err + 1e-300))) return std::nullopt;
    if (base.v < 0 && !integer) return std::nullopt;  // complex in the CAS
    const double rho = std::log1p(base.err / (b - base.err));
    if (magnitude * std::fabs(std::log10(b)) > 280) return std::nullopt;  // over- or underflow
    if (exponent.exact) {
      const double v = std::pow(base.v, exponent.v);
      const double spread = magnitude * rho;
      return inexact(v, std::fabs(v) * std::expm1(spread) * 1.01 + 2 * kU * std::fabs(v), digits);
    }
    const double v = std::exp(exponent.v * std::log(b));
    const double spread = magnitude * rho + exponent.err * (std::fabs(std::log(b)) + rho);
    if (spread > 1e-3) return std::nullopt;
    return inexact(v, v * std::expm1(spread) * 1.01 + 4 * kU * v, digits);
  }

  static std::optional<Approx> function(const std::string& f, const Approx& x) {
    const double a = x.v, e = x.err, guard = 100 * (e + kU);
    const double digits = x.digits + 20;
    auto out = [&](double v, double err) { return inexact(v, err + 2 * kU * std::fabs(v) + kU, digits); };
    if (f == "sin") return out(std::sin(a), e);
    if (f == "cos") return out(std::cos(a), e);
    if (f == "arctan") return out(std::atan(a), e);
    if (f == "tanh") return out(std::tanh(a), e);
    if (f == "tan" || f == "sec") {
      const double c = std::cos(a);
      if (!(std::fabs(c) > guard)) return std::nullopt;
      const double slope = 1 / ((std::fabs(c) - e) * (std::fabs(c) - e));
      return out(f == "tan" ? std::tan(a) : 1 / c, e * slope * 1.01);
    }
    if (f == "csc" || f == "cot") {
      const double s = std::sin(a);
      if (!(std::fabs(s) > guard)) return std::nullopt;
      const double slope = 1 / ((std::fabs(s) - e) * (std::fabs(s) - e));
      return out(f == "csc" ? 1 / s : std::cos(a) / s, e * slope * 1.01);
    }
    if (f == "arcsin" || f == "arccos") {
      const double reach = std::fabs(a) + e;
      if (!(reach < 1 - 1e-6)) return std::nullopt;
      const double slope = 1 / std::sqrt(1 - reach * reach);
      return out(f == "arcsin" ? std::asin(a) : std::acos(a), e * slope * 1.01);
    }
    if (f == "sinh" || f == "cosh") {
      if (!(std::fabs(a) + e < 700)) return std::nullopt;
      return out(f == "sinh" ? std::sinh(a) : std::cosh(a), e * std::cosh(std::fabs(a) + e) * 1.01);
    }
    if (f == "exp") {
      if (!(std::fabs(a) + e < 600) || e > 1e-3) return std::nullopt;
      const double v = std::exp(a);
      return out(v, v * std::expm1(e) * 1.01);
    }
    if (f == "ln" || f == "log" || f == "log10") {
      if (!(a > guard)) return std::nullopt;
      const double err = e / (a - e) * 1.01;
      if (f == "log10") return out(std::log10(a), err / 2.302585092994046 + kU);
      return out(std::log(a), err);
    }
    return std::nullopt;
  }
};

/// The arithmetic scan (see the header comment).
class ArithmeticScan {
 public:
  explicit ArithmeticScan(std::string_view s) : s_(s) {}

  [[nodiscard]] std::optional<SmallRational> run() {
    if (s_.empty() || s_.size() > 200) return std::nullopt;
    auto value = expr(0);
    skip_blanks();
    if (!value || p_ != s_.size()) return std::nullopt;
    return value;
  }

 private:
  std::string_view s_;
  std::size_t p_ = 0;
  int parens_ = 0;  ///< open '(' (the lexer reads ',' as a thousands separator only outside them)

  static bool is_digit(char c) { return c >= '0' && c <= '9'; }
  static bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
  [[nodiscard]] bool at(std::string_view word) const {
    if (s_.size() - p_ < word.size()) return false;
    for (std::size_t k = 0; k < word.size(); ++k)
      if (s_[p_ + k] != word[k]) return false;
    return true;
  }
  /// The next byte after blanks ('\0' at the end).
  char peek() {
    skip_blanks();
    return p_ < s_.size() ? s_[p_] : '\0';
  }
  /// A command `word` (starting with '\') at p_ that does not run on into letters.
  [[nodiscard]] bool at_command(std::string_view word) const {
    return at(word) && !(p_ + word.size() < s_.size() && is_letter(s_[p_ + word.size()]));
  }
  /// What the lexer drops: whitespace, '~', '$', `\$`, LaTeX spaces, `\left` `\right`, styles,
  /// degree marks (`^\circ`, `^{\circ}`, `\circ`, U+00B0) and no-break / thin spaces.
  void skip_blanks() {
    while (p_ < s_.size()) {
      const char c = s_[p_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || c == '~' || c == '$') {
        ++p_;
        continue;
      }
      if (c == '\\') {
        if (p_ + 1 >= s_.size()) return;
        const char next = s_[p_ + 1];
        if (next == '$' || next == ',' || next == ';' || next == ':' || next == '!' || next == ' ' || next == '\t' || next == '\n') {
          p_ += 2;
          continue;
        }
        std::size_t j = p_ + 1;
        while (j < s_.size() && is_letter(s_[j])) ++j;
        const std::string_view name = s_.substr(p_ + 1, j - p_ - 1);
        if (name == "left" || name == "right" || name == "displaystyle" || name == "textstyle" || name == "quad" ||
            name == "qquad" || name == "circ") {
          p_ = j;
          continue;
        }
        return;
      }
      if (c == '^') {
        if (at("^\\circ")) p_ += 6;
        else if (at("^{\\circ}")) p_ += 8;
        else return;
        continue;
      }
      if (static_cast<unsigned char>(c) < 0x80) return;
      if (at("\xC2\xB0") || at("\xC2\xA0")) p_ += 2;
      else if (at("\xE2\x80\x89") || at("\xE2\x80\xAF")) p_ += 3;
      else return;
    }
  }
  /// Consumes `word` (after blanks) when it is next; a command must not run on into letters.
  bool accept(std::string_view word) {
    skip_blanks();
    if (p_ >= s_.size() || s_[p_] != word.front()) return false;
    if (word.front() == '\\' ? !at_command(word) : !at(word)) return false;
    p_ += word.size();
    return true;
  }
  bool accept_minus() {
    const char c = peek();
    if (c == '-') return ++p_, true;
    return c == '\xE2' && (accept("\xE2\x88\x92") || accept("\xE2\x80\x93"));
  }
  bool accept_times() {
    switch (peek()) {
      case '*': return ++p_, true;
      case '\\': return accept("\\cdot") || accept("\\times") || accept("\\ast");
      case '\xC3': return accept("\xC3\x97");
      case '\xC2': return accept("\xC2\xB7");
      default: return false;
    }
  }
  bool accept_divide() {
    switch (peek()) {
      case '/': return ++p_, true;
      case '\\': return accept("\\div");
      case '\xC3': return accept("\xC3\xB7");
      default: return false;
    }
  }
  /// Whether an operand starts here (then two operands would be juxtaposed: not this grammar).
  bool operand_next() {
    skip_blanks();
    if (p_ >= s_.size() || at("\xE2\x88\x92") || at("\xE2\x80\x93")) return false;  // a minus: the sum goes on
    const char c = s_[p_];
    return is_digit(c) || is_letter(c) || c == '.' || c == '(' || c == '{' || c == '[' || c == '|' || c == '\\' ||
           static_cast<unsigned char>(c) >= 0x80;
  }

  std::optional<SmallRational> expr(int depth) {
    if (depth > 8) return std::nullopt;
    auto value = term(depth);
    while (value) {
      if (accept("+")) {
        const auto x = term(depth);
        value = x ? rational_plus(*value, *x) : std::nullopt;
      } else if (accept_minus()) {
        const auto x = term(depth);
        value = x ? rational_plus(*value, SmallRational{-x->num, x->den}) : std::nullopt;
      } else {
        break;
      }
    }
    return value;
  }

  std::optional<SmallRational> term(int depth) {
    auto value = unary(depth);
    while (value) {
      if (accept_times()) {
        const auto x = unary(depth);
        value = x ? rational_times(*value, *x) : std::nullopt;
      } else if (accept_divide()) {
        const auto x = unary(depth);
        if (!x || x->num == 0) return std::nullopt;
        const auto inverse = make_rational(x->den, x->num);
        value = inverse ? rational_times(*value, *inverse) : std::nullopt;
      } else if (operand_next()) {
        return std::nullopt;
      } else {
        break;
      }
    }
    return value;
  }

  std::optional<SmallRational> unary(int depth) {
    if (accept_minus()) {
      const auto x = unary(depth);
      if (!x) return std::nullopt;
      return SmallRational{-x->num, x->den};
    }
    auto base = atom(depth);
    while (base && accept("!")) {  // n! for 0 <= n <= 20 (what the exact path computes)
      if (base->den != 1 || base->num < 0 || base->num > 20) return std::nullopt;
      std::int64_t f = 1;
      for (std::int64_t k = 2; k <= base->num; ++k) f *= k;
      base = SmallRational{f, 1};
    }
    if (!base || !accept("^")) return base;
    std::optional<SmallRational> exponent;
    if (accept("{")) {
      exponent = expr(depth + 1);
      if (!accept("}")) return std::nullopt;
    } else {
      const bool negative = accept_minus();
      skip_blanks();
      if (p_ >= s_.size() || !is_digit(s_[p_])) return std::nullopt;
      exponent = number();
      if (exponent && negative) exponent->num = -exponent->num;
    }
    if (!exponent || exponent->den != 1 || (exponent->num == 0 && base->num == 0)) return std::nullopt;
    skip_blanks();
    if (p_ < s_.size() && (s_[p_] == '^' || s_[p_] == '!')) return std::nullopt;  // a^b^c: the parser refuses it
    return rational_power(*base, exponent->num);
  }

  std::optional<SmallRational> atom(int depth) {
    skip_blanks();
    if (p_ >= s_.size()) return std::nullopt;
    const char c = s_[p_];
    if (is_digit(c) || (c == '.' && p_ + 1 < s_.size() && is_digit(s_[p_ + 1])) || digit_at(p_) != 0) return number();
    if (is_letter(c)) return word();
    if (accept("(")) {
      ++parens_;
      const auto x = expr(depth + 1);
      --parens_;
      if (!accept(")")) return std::nullopt;
      return x;
    }
    if (accept("{")) {
      const auto x = expr(depth + 1);
      if (!accept("}")) return std::nullopt;
      return x;
    }
    if (accept("\\frac") || accept("\\dfrac") || accept("\\tfrac")) {
      if (!accept("{")) return std::nullopt;
      const auto a = expr(depth + 1);
      if (!a || !accept("}") || !accept("{")) return std::nullopt;
      const auto b = expr(depth + 1);
      if (!b || !accept("}") || b->num == 0) return std::nullopt;
      const auto inverse = make_rational(b->den, b->num);
      return inverse ? rational_times(*a, *inverse) : std::nullopt;
    }
    return std::nullopt;
  }

  /// One digit at i, ASCII or fullwidth (U+FF10..FF19, as the lexer reads them): its width, or 0.
  [[nodiscard]] std::size_t digit_at(std::size_t i, char* d = nullptr) const {
    if (i < s_.size() && is_digit(s_[i])) {
      if (d) *d = s_[i];
      return 1;
    }
    if (i + 2 < s_.size() && s_[i] == '\xEF' && s_[i + 1] == '\xBC') {
      const auto u = static_cast<unsigned char>(s_[i + 2]);
      if (u >= 0x90 && u <= 0x99) {
        if (d) *d = static_cast<char>('0' + (u - 0x90));
        return 3;
      }
    }
    return 0;
  }

  /// A number as the lexer reads it: digits (thousands groups of exactly three after a 1-3 digit
  /// head: `,` outside parentheses, `{,}`, `\,`, `\ `), a decimal part, scientific `e[+-]digits`.
  std::optional<SmallRational> number() {
    char text[64];
    std::size_t n = 0;
    char d = 0;
    auto push = [&](char c) {
      if (n + 1 >= sizeof text) return false;
      text[n++] = c;
      return true;
    };
    std::size_t lead = 0;
    for (std::size_t w; (w = digit_at(p_, &d)) != 0; p_ += w, ++lead)
      if (!push(d)) return std::nullopt;
    if (lead >= 1 && lead <= 3) {
      for (;;) {
        std::size_t q = 0;
        if (at("{,}")) q = p_ + 3;
        else if (parens_ == 0 && p_ < s_.size() && s_[p_] == ',') q = p_ + 1;
        else if (at("\\,") || at("\\ ")) q = p_ + 2;
        if (q == 0) break;
        std::size_t i = q, got = 0;
        char group[3];
        for (std::size_t w; got < 3 && (w = digit_at(i, &group[got])) != 0; i += w) ++got;
        if (got < 3 || digit_at(i) != 0) break;
        for (char g : group)
          if (!push(g)) return std::nullopt;
        p_ = i;
      }
    }
    if (p_ + 1 < s_.size() && s_[p_] == '.' && digit_at(p_ + 1) != 0) {
      if (!push('.')) return std::nullopt;
      ++p_;
      for (std::size_t w; (w = digit_at(p_, &d)) != 0; p_ += w)
        if (!push(d)) return std::nullopt;
    }
    if (lead >= 2 && text[0] == '0') return std::nullopt;  // "007": not this grammar
    if (p_ + 1 < s_.size() && (s_[p_] == 'e' || s_[p_] == 'E')) {
      std::size_t q = p_ + 1;
      std::string_view sign;
      if (s_[q] == '-' || s_[q] == '+') sign = s_.substr(q++, 1);
      const std::size_t digits_start = q;
      while (q < s_.size() && is_digit(s_[q])) ++q;
      const std::size_t digits = q - digits_start;
      if (digits > 0 && digits <= 6 && !(q < s_.size() && is_letter(s_[q]))) {
        if (!push('e') || (sign == "-" && !push('-'))) return std::nullopt;
        for (std::size_t k = digits_start; k < q; ++k)
          if (!push(s_[k])) return std::nullopt;
        p_ = q;
      }
    }
    if (p_ < s_.size() && (s_[p_] == '.' || s_[p_] == ',' || s_[p_] == 'e' || s_[p_] == 'E')) return std::nullopt;
    const std::string_view digits(text, n);
    if (digits.front() == '.') return std::nullopt;
    return number_rational(digits);
  }

  /// A number word as the lexer reads it: zero..twenty, thirty..ninety (any case), or a lower-case
  /// tens word, '-', a unit word ("twenty-one"); any other word is not this grammar.
  std::optional<SmallRational> word() {
    const std::size_t start = p_;
    while (p_ < s_.size() && is_letter(s_[p_])) ++p_;
    const std::string_view raw = s_.substr(start, p_ - start);
    if (raw.size() < 2 || raw.size() > 12) return std::nullopt;
    if (p_ + 1 < s_.size() && s_[p_] == '-' && is_letter(s_[p_ + 1])) {
      const auto tens = math_detail::number_word(raw);
      if (!tens || *tens < 20) return std::nullopt;
      std::size_t k = p_ + 1;
      while (k < s_.size() && is_letter(s_[k])) ++k;
      const auto unit = math_detail::number_word(s_.substr(p_ + 1, k - p_ - 1));
      if (!unit || *unit < 1 || *unit > 9) return std::nullopt;
      p_ = k;
      return SmallRational{*tens + *unit, 1};
    }
    char lower[12];
    for (std::size_t k = 0; k < raw.size(); ++k) lower[k] = raw[k] >= 'A' && raw[k] <= 'Z' ? static_cast<char>(raw[k] - 'A' + 'a') : raw[k];
    const auto value = math_detail::number_word(std::string_view(lower, raw.size()));
    if (!value) return std::nullopt;
    return SmallRational{*value, 1};
  }
};

/// The exact value of `text` when it is plain rational arithmetic (see the header comment).
[[nodiscard]] inline std::optional<SmallRational> arithmetic_value(std::string_view text) { return ArithmeticScan(text).run(); }

}  // namespace kaizen::reward::math_detail
