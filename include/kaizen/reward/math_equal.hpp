// kaizen/reward/math_equal.hpp - decide whether two parsed answers (reward/math_parse.hpp) are the
// same mathematical object, with the GiNaC computer-algebra system.
//
// Rules (docs/rewards.md, "Math verifier"), with `gold` the reference and `given` the answer:
//   scalars     exact first: GiNaC with exact rationals (decimals are exact: 0.5 == 1/2), equal when
//               normal(gold - given) == 0 (`\sqrt{18}` == `3\sqrt{2}`, `2^{10}` == 1024). Otherwise a
//               numeric fallback: both evaluated to floating point (free symbols substituted by two
//               fixed points), equal when |a - b| <= rel_tol * max(|a|, |b|) (default 1e-9, so a
//               rounded 0.3333333 is not 1/3; raise it to accept rounded decimals).
//   percent     `p%` against a plain number q: PercentRule::either (p == q or p/100 == q, default),
//               ::as_number (p == q), ::as_fraction (p/100 == q).
//   equations   `x = 3` against 3: the right side when the left one is a lone symbol; two
//               equations: same relation and (l1 - r1) / (l2 - r2) a nonzero constant for '=',
//               side by side for inequalities.
//   lists/sets  top-level lists and \{sets\}: same elements in any order (lists ordered by option);
//               tuples, matrices (same shape) element by element; intervals by endpoints and
//               closedness (`(a, b)` tuple == open interval by option); unions as sets of parts.
//   `a \pm b`   the set {a + b, a - b}.
//   words       equal ignoring case.
// Fast path: when both trees are plain rational arithmetic (numbers, + - * /, integer powers up to
// 64, factorials up to 20) they are evaluated in checked 64-bit rationals and compared without
// GiNaC (the same verdicts: exact equality, else the relative tolerance); overflow falls back to GiNaC.
// Numeric screen (`numeric_screen`, reward/math_screen.hpp): every scalar comparison (and the
// sides of equations, the percent rule) is first evaluated in double precision with error bounds
// at the fallback's points; a certain verdict is returned without GiNaC, anything else goes on to
// GiNaC. Symbols the screen met enter the CAS's table before its next use (flush_screened), so the
// fallback numbers its points as it would without the screen.
// Bounded work: before GiNaC sees a power, exponents are checked (integer exponents above
// `max_exponent`, results estimated above `max_digits` digits, non-numeric bases raised above 64
// are refused), factorials and binomials above 1000 are refused, and every GiNaC exception is
// caught: a refused or failed comparison is "not equal", never a hang or a crash. A deadline per
// comparison (`time_limit`) is checked between element comparisons and before the numeric fallback
// (GiNaC calls themselves are not interruptible; the guards above bound them).
//
// References: Bauer, Frink, Kreckel, "Introduction to the GiNaC Framework for Symbolic Computation
// within the C++ Programming Language" (J. Symbolic Computation 33, 2002).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ginac/ginac.h>

#include <kaizen/reward/math_parse.hpp>
#include <kaizen/reward/math_screen.hpp>

namespace kaizen::reward {

enum class PercentRule : std::uint8_t { either, as_number, as_fraction };

struct EqualOptions {
  double rel_tol = 1e-9;           ///< numeric fallback tolerance, relative; <= 0 turns the fallback off
  PercentRule percent = PercentRule::either;
  bool ordered_lists = false;      ///< top-level lists "1, 2" compared in order
  bool tuple_is_open_interval = true;  ///< (a, b) equals the open interval (a, b)
  bool equation_rhs = true;        ///< `x = 3` equals 3
  int max_exponent = 10000;        ///< larger integer exponents are refused before GiNaC
  double max_digits = 5000;        ///< larger estimated numeric results are refused
  std::chrono::microseconds time_limit{50000};  ///< per comparison (see the header comment)
  bool numeric_screen = true;      ///< settle scalar comparisons in double precision when the CAS's verdict is certain (math_screen.hpp)
};

namespace math_detail {

struct Refused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Turns trees into GiNaC expressions; one symbol table for both sides of a comparison.
class ToGinac {
 public:
  ToGinac(const EqualOptions& options) : options_(options) {}

  GiNaC::ex operator()(const MathExpr& e, int i) { return convert(e, i, 0); }

  [[nodiscard]] const std::map<std::string, GiNaC::symbol>& symbols() const { return symbols_; }

  /// Enters a symbol into the table as converting it would (the screen's symbols, see Comparator).
  void declare(std::string_view name) { (void)symbol(std::string(name)); }

 private:
  const EqualOptions& options_;
  std::map<std::string, GiNaC::symbol> symbols_;

  GiNaC::ex number(const std::string& text) {
    std::string digits;
    long exponent = 0;
    long frac = 0;
    bool in_frac = false;
    std::size_t k = 0;
    for (; k < text.size() && text[k] != 'e'; ++k) {
      if (text[k] == '.') {
        in_frac = true;
        continue;
      }
      digits.push_back(text[k]);
      if (in_frac) ++frac;
    }
    if (k < text.size()) exponent = std::stol(text.substr(k + 1));
    if (digits.size() > 1000 || std::labs(exponent) > 1000) throw Refused("number too long");
    const auto first = digits.find_first_not_of('0');
    digits = first == std::string::npos ? "0" : digits.substr(first);
    const long shift = exponent - frac;
    GiNaC::numeric value(digits.c_str());
    if (shift > 0) value = value * GiNaC::numeric(10).power(GiNaC::numeric(shift));
    if (shift < 0) value = value / GiNaC::numeric(10).power(GiNaC::numeric(-shift));
    return value;
  }

  GiNaC::ex symbol(const std::string& name) {
    if (name == "i") return GiNaC::I;
    auto it = symbols_.find(name);
    if (it == symbols_.end()) it = symbols_.emplace(name, GiNaC::symbol(name)).first;
    return it->second;
  }

  /// Estimated decimal digits of |x| for a numeric x (numerator or denominator, whichever is larger).
  static double digits_of(const GiNaC::numeric& x) {
    const GiNaC::numeric a = GiNaC::abs(x);
    const GiNaC::numeric top = a.numer(), bottom = a.denom();
    const GiNaC::numeric big = top > bottom ? top : bottom;
    if (big.is_zero()) return 0;
    // log10 through the bit length, safe for any size
    return static_cast<double>(big.int_length()) * 0.30103;
  }

  GiNaC::ex power(const GiNaC::ex& base, const GiNaC::ex& exponent) {
    if (GiNaC::is_a<GiNaC::numeric>(exponent)) {
      const auto n = GiNaC::ex_to<GiNaC::numeric>(exponent);
      if (!n.is_real()) throw Refused("complex exponent");
      const double magnitude = std::fabs(n.to_double());
      if (magnitude > options_.max_exponent) throw Refused("exponent too large");
      if (GiNaC::is_a<GiNaC::numeric>(base)) {
        const auto b = GiNaC::ex_to<GiNaC::numeric>(base);
        if (b.is_real() && magnitude * std::max(1.0, digits_of(b)) > options_.max_digits) throw Refused("power too large");
      } else if (n.is_integer() && magnitude > 64) {
        throw Refused("symbolic power too large");
      }
    }
    return GiNaC::pow(base, exponent);
  }

  GiNaC::ex convert(const MathExpr& e, int i, int depth) {
    if (depth > 200) throw Refused("too deep");
    const MathNode& n = e.at(i);
    auto kid = [&](std::size_t k) { return convert(e, n.kids[k], depth + 1); };
    switch (n.kind) {
      case MathKind::number: return number(n.text);
      case MathKind::symbol: return symbol(n.text);
      case MathKind::constant:
        if (n.text == "pi") return GiNaC::Pi;
        if (n.text == "e") return GiNaC::exp(GiNaC::ex(1));
        return symbol("\\infty");
      case MathKind::add: {
        GiNaC::ex sum = 0;
        for (std::size_t k = 0; k < n.kids.size(); ++k) sum += kid(k);
        return sum;
      }
      case MathKind::mul: {
        GiNaC::ex product = 1;
        for (std::size_t k = 0; k < n.kids.size(); ++k) product *= kid(k);
        return product;
      }
      case MathKind::neg: return -kid(0);
      case MathKind::div: {
        const GiNaC::ex den = kid(1);
        if (den.is_zero()) throw Refused("division by zero");
        return kid(0) / den;
      }
      case MathKind::pow: return power(kid(0), kid(1));
      case MathKind::sqrt: return GiNaC::sqrt(kid(0));
      case MathKind::root: {
        const GiNaC::ex index = kid(0);
        if (index.is_zero()) throw Refused("zeroth root");
        return power(kid(1), 1 / index);
      }
      case MathKind::percent: return kid(0) / 100;
      case MathKind::abs: return GiNaC::abs(kid(0));
      case MathKind::factorial:
      case MathKind::binom: {
        std::vector<GiNaC::numeric> args;
        for (std::size_t k = 0; k < n.kids.size(); ++k) {
          const GiNaC::ex x = kid(k);
          if (!GiNaC::is_a<GiNaC::numeric>(x) || !GiNaC::ex_to<GiNaC::numeric>(x).is_nonneg_integer() ||
              GiNaC::ex_to<GiNaC::numeric>(x) > 1000)
            throw Refused("factorial or binomial of a non-integer or a large number");
          args.push_back(GiNaC::ex_to<GiNaC::numeric>(x));
        }
        if (n.kind == MathKind::factorial) return GiNaC::factorial(args[0]);
        return GiNaC::binomial(args[0], args[1]);
      }
      case MathKind::func: {
        const GiNaC::ex x = kid(0);
        const std::string& f = n.text;
        if (f == "sin") return GiNaC::sin(x);
        if (f == "cos") return GiNaC::cos(x);
        if (f == "tan") return GiNaC::tan(x);
        if (f == "sec") return 1 / GiNaC::cos(x);
        if (f == "csc") return 1 / GiNaC::sin(x);
        if (f == "cot") return GiNaC::cos(x) / GiNaC::sin(x);
        if (f == "arcsin") return GiNaC::asin(x);
        if (f == "arccos") return GiNaC::acos(x);
        if (f == "arctan") return GiNaC::atan(x);
        if (f == "sinh") return GiNaC::sinh(x);
        if (f == "cosh") return GiNaC::cosh(x);
        if (f == "tanh") return GiNaC::tanh(x);
        if (f == "ln" || f == "log") return GiNaC::log(x);
        if (f == "log10") return GiNaC::log(x) / GiNaC::log(GiNaC::ex(10));
        if (f == "exp") return GiNaC::exp(x);
        throw Refused("unknown function");
      }
      default: throw Refused("not a scalar");
    }
  }
};

[[nodiscard]] inline bool is_scalar(MathKind k) {
  switch (k) {
    case MathKind::word: case MathKind::pm: case MathKind::tuple: case MathKind::list: case MathKind::set:
    case MathKind::interval: case MathKind::set_union: case MathKind::matrix: case MathKind::relation:
      return false;
    default: return true;
  }
}

/// The exact value of a tree made only of numbers, +, -, *, /, integer powers (|exponent| <= 64)
/// and factorials (n <= 20), in 64-bit rationals; nothing when the tree has anything else
/// (symbols, constants, roots, percents, sets, ...) or a value overflows (checked at every step).
/// Used as a fast path before GiNaC: on such trees GiNaC computes the same exact rationals.
[[nodiscard]] inline std::optional<SmallRational> small_rational(const MathExpr& e, int i, int depth = 0) {
  if (depth > 64) return std::nullopt;
  const MathNode& n = e.at(i);
  switch (n.kind) {
    case MathKind::number: return number_rational(n.text);
    case MathKind::neg: {
      auto x = small_rational(e, n.kids[0], depth + 1);
      if (!x || x->num == INT64_MIN) return std::nullopt;
      return SmallRational{-x->num, x->den};
    }
    case MathKind::add: {
      SmallRational sum{0, 1};
      for (int kid : n.kids) {
        const auto x = small_rational(e, kid, depth + 1);
        const auto r = x ? rational_plus(sum, *x) : std::nullopt;
        if (!r) return std::nullopt;
        sum = *r;
      }
      return sum;
    }
    case MathKind::mul: {
      SmallRational product{1, 1};
      for (int kid : n.kids) {
        const auto x = small_rational(e, kid, depth + 1);
        const auto r = x ? rational_times(product, *x) : std::nullopt;
        if (!r) return std::nullopt;
        product = *r;
      }
      return product;
    }
    case MathKind::div: {
      const auto x = small_rational(e, n.kids[0], depth + 1), y = small_rational(e, n.kids[1], depth + 1);
      if (!x || !y || y->num == 0) return std::nullopt;
      const auto inverse = make_rational(y->den, y->num);
      if (!inverse) return std::nullopt;
      return rational_times(*x, *inverse);
    }
    case MathKind::pow: {
      const auto x = small_rational(e, n.kids[0], depth + 1), y = small_rational(e, n.kids[1], depth + 1);
      if (!x || !y || y->den != 1) return std::nullopt;
      return rational_power(*x, y->num);
    }
    case MathKind::factorial: {
      const auto x = small_rational(e, n.kids[0], depth + 1);
      if (!x || x->den != 1 || x->num < 0 || x->num > 20) return std::nullopt;
      std::int64_t f = 1;
      for (std::int64_t k = 2; k <= x->num; ++k) f *= k;
      return SmallRational{f, 1};
    }
    default: return std::nullopt;
  }
}

/// The comparison of two trees under options; owns the symbol table and the deadline.
class Comparator {
 public:
  Comparator(const MathExpr& gold, const MathExpr& given, const EqualOptions& options)
      : gold_(gold), given_(given), options_(options), to_ginac_(options),
        deadline_(std::chrono::steady_clock::now() + options.time_limit) {}

  bool equal() { return same(gold_.root, given_.root); }

  [[nodiscard]] const std::string& why() const { return why_; }

 private:
  const MathExpr& gold_;
  const MathExpr& given_;
  const EqualOptions& options_;
  ToGinac to_ginac_;
  std::chrono::steady_clock::time_point deadline_;
  std::string why_;
  std::vector<std::string> screened_;  ///< symbols the screen met that the CAS table has not entered yet
  std::vector<std::string_view> names_;  ///< scratch: the symbol table of one screened comparison

  [[nodiscard]] const MathNode& g(int i) const { return gold_.at(i); }
  [[nodiscard]] const MathNode& a(int i) const { return given_.at(i); }

  bool out_of_time() {
    if (std::chrono::steady_clock::now() <= deadline_) return false;
    why_ = "time limit";
    return true;
  }

  /// Elements of a set-like node: a list/set's kids, a \pm's two values are handled by caller.
  bool unordered(const KidList& x, const KidList& y) {
    if (x.size() != y.size()) return false;
    std::vector<bool> used(y.size(), false);
    for (int xi : x) {
      bool found = false;
      for (std::size_t j = 0; j < y.size() && !found; ++j) {
        if (used[j]) continue;
        if (out_of_time()) return false;
        if (same(xi, y[j])) used[j] = found = true;
      }
      if (!found) return false;
    }
    return true;
  }

  bool ordered(const KidList& x, const KidList& y) {
    if (x.size() != y.size()) return false;
    for (std::size_t k = 0; k < x.size(); ++k) {
      if (out_of_time()) return false;
      if (!same(x[k], y[k])) return false;
    }
    return true;
  }

  [[nodiscard]] static bool lone_symbol(const MathExpr& e, int i) { return e.at(i).kind == MathKind::symbol; }

  bool same(int gi, int ai) {
    const MathNode& G = g(gi);
    const MathNode& A = a(ai);
    // Equations against values: `x = 3` vs 3 (either side).
    if (options_.equation_rhs) {
      if (A.kind == MathKind::relation && A.text == "\\in" && A.kids.size() == 2 && lone_symbol(given_, A.kids[0]))
        return same(gi, A.kids[1]);
      if (G.kind == MathKind::relation && G.text == "\\in" && G.kids.size() == 2 && lone_symbol(gold_, G.kids[0]))
        return same(G.kids[1], ai);
      if (A.kind == MathKind::relation && A.text == "=" && A.kids.size() == 2 && G.kind != MathKind::relation &&
          lone_symbol(given_, A.kids[0]))
        return same(gi, A.kids[1]);
      if (G.kind == MathKind::relation && G.text == "=" && G.kids.size() == 2 && A.kind != MathKind::relation &&
          lone_symbol(gold_, G.kids[0]))
        return same(G.kids[1], ai);
    }
    const bool g_setlike = G.kind == MathKind::list || G.kind == MathKind::set || G.kind == MathKind::pm;
    const bool a_setlike = A.kind == MathKind::list || A.kind == MathKind::set || A.kind == MathKind::pm;
    if (G.kind == MathKind::pm || A.kind == MathKind::pm) return plus_minus(gi, ai);
    if (g_setlike && a_setlike) {
      if (G.kind == MathKind::list && A.kind == MathKind::list && options_.ordered_lists) return ordered(G.kids, A.kids);
      return unordered(G.kids, A.kids);
    }
    if (g_setlike != a_setlike) {
      // A one-element set vs its element is not the same answer; a list never is a scalar.
      return false;
    }
    if (G.kind == MathKind::word || A.kind == MathKind::word) {
      if (G.kind != A.kind) return false;
      return G.text == A.text;
    }
    if (G.kind == MathKind::tuple || A.kind == MathKind::tuple) {
      if (G.kind == A.kind) return ordered(G.kids, A.kids);
      const bool mixed_interval = (G.kind == MathKind::interval && G.flags == 0) || (A.kind == MathKind::interval && A.flags == 0);
      if (options_.tuple_is_open_interval && mixed_interval) return ordered(G.kids, A.kids);
      return false;
    }
    if (G.kind == MathKind::interval || A.kind == MathKind::interval) {
      if (G.kind != A.kind || G.flags != A.flags) return false;
      return ordered(G.kids, A.kids);
    }
    if (G.kind == MathKind::set_union || A.kind == MathKind::set_union) {
      if (G.kind != A.kind) return false;
      return unordered(G.kids, A.kids);
    }
    if (G.kind == MathKind::matrix || A.kind == MathKind::matrix) {
      if (G.kind != A.kind || G.flags != A.flags) return false;
      return ordered(G.kids, A.kids);
    }
    if (G.kind == MathKind::relation || A.kind == MathKind::relation) {
      if (G.kind != A.kind || G.text != A.text || G.kids.size() != A.kids.size()) return false;
      if (G.text == "=" && G.kids.size() == 2) return equation(G, A);
      return ordered(G.kids, A.kids);
    }
    // Percent against a plain value.
    if (A.kind == MathKind::percent && G.kind != MathKind::percent) return percent(gi, A.kids[0], false);
    if (G.kind == MathKind::percent && A.kind != MathKind::percent) return percent(ai, G.kids[0], true);
    return scalar(gi, ai);
  }

  bool plus_minus(int gi, int ai) {
    flush_screened();
    // a \pm b is {a + b, a - b}: compare value sets.
    auto values = [&](const MathExpr& e, int i, bool gold_side) -> std::optional<std::vector<GiNaC::ex>> {
      std::vector<GiNaC::ex> out;
      const MathNode& n = e.at(i);
      try {
        auto add_one = [&](int k) {
          const MathNode& m = e.at(k);
          if (m.kind == MathKind::pm) {
            const GiNaC::ex x = to_ginac_(e, m.kids[0]), y = to_ginac_(e, m.kids[1]);
            out.push_back(x + y);
            out.push_back(x - y);
          } else if (m.kind == MathKind::relation && m.text == "=" && m.kids.size() == 2 && lone_symbol(e, m.kids[0]) &&
                     options_.equation_rhs) {
            const MathNode& r = e.at(m.kids[1]);
            if (r.kind == MathKind::pm) {
              const GiNaC::ex x = to_ginac_(e, r.kids[0]), y = to_ginac_(e, r.kids[1]);
              out.push_back(x + y);
              out.push_back(x - y);
            } else {
              out.push_back(to_ginac_(e, m.kids[1]));
            }
          } else if (is_scalar(m.kind)) {
            out.push_back(to_ginac_(e, k));
          } else {
            throw Refused("not a value");
          }
        };
        if (n.kind == MathKind::list || n.kind == MathKind::set) {
          for (int k : n.kids) add_one(k);
        } else {
          add_one(i);
        }
      } catch (const std::exception&) {
        return std::nullopt;
      }
      (void)gold_side;
      return out;
    };
    auto x = values(gold_, gi, true);
    auto y = values(given_, ai, false);
    if (!x || !y || x->size() != y->size()) return false;
    std::vector<bool> used(y->size(), false);
    for (const auto& xv : *x) {
      bool found = false;
      for (std::size_t j = 0; j < y->size() && !found; ++j)
        if (!used[j] && scalar_ex(xv, (*y)[j])) used[j] = found = true;
      if (!found) return false;
    }
    return true;
  }

  bool equation(const MathNode& G, const MathNode& A) {
    if (options_.numeric_screen) {
      // Sides first (both equal: true); then the CAS's proportionality test can only be refuted
      // numerically: l - r clearly nonzero on both sides and the ratio clearly different at the
      // two rounds means "not proportional". Anything else: the CAS decides.
      ScreenVerdict left = ScreenVerdict::equal, right = ScreenVerdict::equal;
      bool gold_nonzero = false, given_nonzero = false;
      std::optional<Approx> ratio[2];
      int round = 0;
      auto fold = [](ScreenVerdict& into, ScreenVerdict v) {
        if (into == ScreenVerdict::not_equal || v == ScreenVerdict::equal) return;
        into = v;
      };
      auto difference = [](const Approx& l, const Approx& r) {
        return Approx{l.v - r.v, l.err + r.err + Screen::kU * (std::fabs(l.v) + std::fabs(r.v)), false, {}, 0};
      };
      auto nonzero = [](const Approx& d) { return std::fabs(d.v) - 2 * d.err > 0; };
      const ScreenVerdict v = screened({Part{&gold_, G.kids[0]}, Part{&gold_, G.kids[1]}, Part{&given_, A.kids[0]}, Part{&given_, A.kids[1]}},
                                       [&](const Approx* x) {
                                         fold(left, Screen::compare(x[0], x[2], options_.rel_tol));
                                         fold(right, Screen::compare(x[1], x[3], options_.rel_tol));
                                         const Approx dg = difference(x[0], x[1]), da = difference(x[2], x[3]);
                                         gold_nonzero = gold_nonzero || nonzero(dg);
                                         given_nonzero = given_nonzero || nonzero(da);
                                         if (nonzero(da)) {
                                           const double q = dg.v / da.v;
                                           const double err = (dg.err + std::fabs(q) * da.err) / (std::fabs(da.v) - da.err) + Screen::kU * std::fabs(q);
                                           ratio[round] = Approx{q, err, false, {}, 0};
                                         }
                                         ++round;
                                         return ScreenVerdict::equal;
                                       });
      if (v == ScreenVerdict::not_equal) return false;  // refused
      if (v == ScreenVerdict::equal) {
        if (left == ScreenVerdict::equal && right == ScreenVerdict::equal) return true;
        const bool sides_differ = left == ScreenVerdict::not_equal || (left == ScreenVerdict::equal && right == ScreenVerdict::not_equal);
        if (sides_differ && gold_nonzero && given_nonzero && round == 2 && ratio[0] && ratio[1] &&
            std::fabs(ratio[0]->v - ratio[1]->v) - 2 * (ratio[0]->err + ratio[1]->err) > 0)
          return false;
      }
    }
    flush_screened();
    try {
      const GiNaC::ex lg = to_ginac_(gold_, G.kids[0]), rg = to_ginac_(gold_, G.kids[1]);
      const GiNaC::ex la = to_ginac_(given_, A.kids[0]), ra = to_ginac_(given_, A.kids[1]);
      if (scalar_ex(lg, la) && scalar_ex(rg, ra)) return true;
      const GiNaC::ex dg = (lg - rg).expand(), da = (la - ra).expand();
      if (dg.is_zero() || da.is_zero()) return false;
      const GiNaC::ex ratio = (dg / da).normal();
      return GiNaC::is_a<GiNaC::numeric>(ratio) && !ratio.is_zero();
    } catch (const std::exception& error) {
      why_ = error.what();
      return false;
    }
  }

  bool percent(int plain_index, int percent_kid, bool plain_is_given) {
    if (options_.numeric_screen) {
      const Part plain{plain_is_given ? &given_ : &gold_, plain_index}, p{plain_is_given ? &gold_ : &given_, percent_kid};
      const bool number_rule = options_.percent != PercentRule::as_fraction, fraction_rule = options_.percent != PercentRule::as_number;
      // Two verdicts (p == plain, p / 100 == plain), each combined over the rounds.
      ScreenVerdict as_number = ScreenVerdict::equal, as_fraction = ScreenVerdict::equal;
      auto fold = [](ScreenVerdict& into, ScreenVerdict v) {
        if (into == ScreenVerdict::not_equal || v == ScreenVerdict::equal) return;
        into = v;
      };
      const ScreenVerdict v = screened({plain, p}, [&](const Approx* x) {
        fold(as_number, Screen::compare(x[0], x[1], options_.rel_tol));
        Approx hundredth = x[1];
        hundredth.v /= 100;
        hundredth.err = hundredth.err / 100 + Screen::kU * std::fabs(hundredth.v);
        hundredth.exact = false;
        if (x[1].exact)
          if (const auto q = rational_times(x[1].q, SmallRational{1, 100})) hundredth.q = *q, hundredth.exact = true;
        fold(as_fraction, Screen::compare(x[0], hundredth, options_.rel_tol));
        return ScreenVerdict::equal;  // the rounds' verdicts are folded above
      });
      if (v == ScreenVerdict::not_equal) return false;  // refused
      if (v == ScreenVerdict::equal && (!number_rule || as_number != ScreenVerdict::undecided) &&
          (!fraction_rule || as_fraction != ScreenVerdict::undecided))
        return (number_rule && as_number == ScreenVerdict::equal) || (fraction_rule && as_fraction == ScreenVerdict::equal);
    }
    flush_screened();
    try {
      const GiNaC::ex plain = plain_is_given ? to_ginac_(given_, plain_index) : to_ginac_(gold_, plain_index);
      const GiNaC::ex p = plain_is_given ? to_ginac_(gold_, percent_kid) : to_ginac_(given_, percent_kid);
      const bool as_number = options_.percent != PercentRule::as_fraction && scalar_ex(plain, p);
      const bool as_fraction = options_.percent != PercentRule::as_number && scalar_ex(plain, p / 100);
      return as_number || as_fraction;
    } catch (const std::exception& error) {
      why_ = error.what();
      return false;
    }
  }

  // ---- the numeric screen (math_screen.hpp): the CAS's verdict without the CAS, or nothing ----

  using Part = std::pair<const MathExpr*, int>;

  /// Symbols the CAS path would have entered into its table by now: the screened ones, entered
  /// before the CAS is used again, so that its numeric fallback numbers symbols as without the screen.
  void flush_screened() {
    for (const auto& name : screened_) to_ginac_.declare(name);
    screened_.clear();
  }

  /// names_ := the table a CAS comparison of `parts` would see (table so far, screened names, the
  /// parts' symbols), sorted and unique; returns whether the parts hold any symbol.
  bool screen_names(std::initializer_list<Part> parts) {
    names_.clear();
    for (const auto& entry : to_ginac_.symbols()) names_.emplace_back(entry.first);
    for (const auto& name : screened_) names_.emplace_back(name);
    const std::size_t before = names_.size();
    for (const auto& [tree, index] : parts) collect_symbols(*tree, index, names_);
    const bool any = names_.size() > before;
    std::sort(names_.begin(), names_.end());
    names_.erase(std::unique(names_.begin(), names_.end()), names_.end());
    return any;
  }

  /// After a screened verdict: the parts' symbols count as entered (see flush_screened).
  void screen_commit(std::initializer_list<Part> parts) {
    std::vector<std::string_view> found;
    for (const auto& [tree, index] : parts) collect_symbols(*tree, index, found);
    for (std::string_view name : found) {
      if (to_ginac_.symbols().count(std::string(name)) != 0) continue;
      if (std::find(screened_.begin(), screened_.end(), name) != screened_.end()) continue;
      screened_.emplace_back(name);
    }
  }

  /// Evaluates `parts` at every round the CAS's numeric fallback would use and asks `decide` per
  /// round (values in the order of `parts`); the verdict is not_equal when a round says so, equal
  /// when all do, else undecided. A part the CAS would refuse: not_equal (only when no part has a
  /// symbol, so the CAS table stays as the CAS path leaves it).
  template <class Decide>
  ScreenVerdict screened(std::initializer_list<Part> parts, Decide&& decide) {
    const bool symbolic = screen_names(parts);
    ScreenVerdict verdict = ScreenVerdict::equal;
    Approx values[4];
    for (int round = 0; round < (symbolic ? 2 : 1); ++round) {
      Screen screen(names_, round, options_.max_exponent, options_.max_digits);
      std::size_t k = 0;
      for (const auto& [tree, index] : parts) {
        const auto value = screen.eval(*tree, index);
        if (!value) {
          if (!screen.refused() || symbolic) return ScreenVerdict::undecided;
          why_ = screen.why();
          return ScreenVerdict::not_equal;
        }
        values[k++] = *value;
      }
      const ScreenVerdict v = decide(static_cast<const Approx*>(values));
      if (v == ScreenVerdict::not_equal) {
        verdict = v;
        break;
      }
      if (v == ScreenVerdict::undecided) verdict = v;
    }
    if (verdict != ScreenVerdict::undecided) screen_commit(parts);
    return verdict;
  }

  bool scalar(int gi, int ai) {
    if (options_.numeric_screen) {
      const ScreenVerdict v = screened({Part{&gold_, gi}, Part{&given_, ai}},
                                       [&](const Approx* x) { return Screen::compare(x[0], x[1], options_.rel_tol); });
      if (v != ScreenVerdict::undecided) return v == ScreenVerdict::equal;
    }
    flush_screened();
    try {
      return scalar_ex(to_ginac_(gold_, gi), to_ginac_(given_, ai));
    } catch (const std::exception& error) {
      why_ = error.what();
      return false;
    }
  }

  /// exact, then numeric with rel_tol; exceptions propagate to the callers above (all catch).
  bool scalar_ex(const GiNaC::ex& x, const GiNaC::ex& y) {
    const GiNaC::ex difference = x - y;
    if (difference.is_zero()) return true;
    if (GiNaC::is_a<GiNaC::numeric>(difference) && GiNaC::is_a<GiNaC::numeric>(x) && GiNaC::is_a<GiNaC::numeric>(y)) {
      // two distinct exact numbers: equal only within the tolerance
      const auto xn = GiNaC::ex_to<GiNaC::numeric>(x), yn = GiNaC::ex_to<GiNaC::numeric>(y);
      const std::complex<double> xd(GiNaC::real(xn).to_double(), GiNaC::imag(xn).to_double());
      const std::complex<double> yd(GiNaC::real(yn).to_double(), GiNaC::imag(yn).to_double());
      const double scale = std::max(std::abs(xd), std::abs(yd));
      return options_.rel_tol > 0 && std::isfinite(scale) && std::abs(xd - yd) <= options_.rel_tol * scale;
    }
    if (out_of_time()) return false;
    if (difference.normal().is_zero()) return true;
    if (options_.rel_tol <= 0 || out_of_time()) return false;
    // Numeric fallback: free symbols at two fixed points.
    const double points[2][4] = {{0.5772156649, 1.3247179572, 2.7182818284, 0.9159655941},
                                 {1.6180339887, 0.7390851332, 1.2020569031, 2.6854520010}};
    const int rounds = to_ginac_.symbols().empty() ? 1 : 2;
    for (int round = 0; round < rounds; ++round) {
      GiNaC::exmap at;
      std::size_t k = 0;
      for (const auto& [name, sym] : to_ginac_.symbols()) {
        at[sym] = GiNaC::numeric(points[round][k % 4] + 0.1 * static_cast<double>(k / 4));
        ++k;
      }
      const GiNaC::ex xv = x.subs(at).evalf(), yv = y.subs(at).evalf();
      if (!GiNaC::is_a<GiNaC::numeric>(xv) || !GiNaC::is_a<GiNaC::numeric>(yv)) return false;
      const auto xn = GiNaC::ex_to<GiNaC::numeric>(xv), yn = GiNaC::ex_to<GiNaC::numeric>(yv);
      const std::complex<double> xc(GiNaC::real(xn).to_double(), GiNaC::imag(xn).to_double());
      const std::complex<double> yc(GiNaC::real(yn).to_double(), GiNaC::imag(yn).to_double());
      const double scale = std::max(std::abs(xc), std::abs(yc));
      if (!std::isfinite(scale)) return false;
      if (std::abs(xc - yc) > options_.rel_tol * scale) return false;
    }
    return true;
  }
};

}  // namespace math_detail

/// Outcome of a comparison: equal or not, and why not when a guard or an error decided it.
struct EqualResult {
  bool equal = false;
  std::string why;
};

/// Whether `given` is the same answer as `gold` under `options` (see the header comment).
/// Never throws: refused and failed comparisons are "not equal" with `why` set.
[[nodiscard]] inline EqualResult math_equal_explained(const MathExpr& gold, const MathExpr& given, const EqualOptions& options = {}) {
  EqualResult out;
  // Fast path: two plain rational values (numbers, + - * /, integer powers, small factorials) are
  // compared exactly without GiNaC, with the same tolerance rule as the CAS path for distinct values.
  if (const auto x = math_detail::small_rational(gold, gold.root)) {
    if (const auto y = math_detail::small_rational(given, given.root)) {
      if (x->num == y->num && x->den == y->den) {
        out.equal = true;
        return out;
      }
      const double xd = static_cast<double>(x->num) / static_cast<double>(x->den);
      const double yd = static_cast<double>(y->num) / static_cast<double>(y->den);
      out.equal = options.rel_tol > 0 && std::fabs(xd - yd) <= options.rel_tol * std::max(std::fabs(xd), std::fabs(yd));
      return out;
    }
  }
  try {
    math_detail::Comparator comparator(gold, given, options);
    out.equal = comparator.equal();
    out.why = comparator.why();
  } catch (const std::exception& error) {
    out.equal = false;
    out.why = error.what();
  }
  return out;
}

[[nodiscard]] inline bool math_equal(const MathExpr& gold, const MathExpr& given, const EqualOptions& options = {}) {
  return math_equal_explained(gold, given, options).equal;
}

}  // namespace kaizen::reward
