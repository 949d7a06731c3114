// kaizen/core/error.hpp - the one exception type and the check macros every kaizen function uses.
//
// Broken preconditions throw kaizen::Error with a message a user can act on:
//   "<function>: <what was expected and what was given>  [check `<expr>` at <file>:<line>]"
// where <file> is the header's path below the include root (kaizen/policy_gradient/policy_loss.hpp), never
// the machine path it was compiled from.
// KAIZEN_CHECK is always on (bad input must never become a silent NaN); KAIZEN_ASSERT guards
// internal invariants and compiles away unless KAIZEN_DEBUG or !NDEBUG.
#pragma once

#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace kaizen {

/// Thrown for every invalid argument, shape, value or state kaizen detects.
/// Derives from std::invalid_argument (itself a std::logic_error) so generic handlers catch it.
class Error : public std::invalid_argument {
 public:
  explicit Error(const std::string& message) : std::invalid_argument(message) {}
};

namespace detail {

/// The part of a source path a reader can use: from the last "include/" on (so "kaizen/core/x.hpp"), else
/// the file's name. Evaluated at compile time where the path is a literal.
[[nodiscard]] constexpr const char* source_path_for_messages(const char* path) noexcept {
  const char* result = path;
  for (const char* p = path; *p != '\0'; ++p) {
    if (*p == '/' || *p == '\\') result = p + 1;
  }
  constexpr char marker[] = "include/";
  for (const char* p = path; *p != '\0'; ++p) {
    std::size_t k = 0;
    while (marker[k] != '\0' && p[k] == marker[k]) ++k;
    if (marker[k] == '\0' && (p == path || p[-1] == '/' || p[-1] == '\\')) result = p + k;
  }
  return result;
}

template <class... Parts>
[[nodiscard]] std::string concat(Parts&&... parts) {
  std::ostringstream out;
  ((out << std::forward<Parts>(parts)), ...);
  return out.str();
}

template <class... Parts>
[[noreturn]] void fail_check(const char* expression, const char* file, int line, Parts&&... parts) {
  std::ostringstream out;
  ((out << std::forward<Parts>(parts)), ...);
  out << "  [check `" << expression << "` at " << source_path_for_messages(file) << ':' << line << ']';
  throw Error(out.str());
}

}  // namespace detail

/// Throws kaizen::Error unconditionally; the message is the parts streamed together.
template <class... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  throw Error(detail::concat(std::forward<Parts>(parts)...));
}

}  // namespace kaizen

/// KAIZEN_CHECK(cond, parts...): throws kaizen::Error("parts..." + location) unless `cond`.
/// Write the parts as "<function>: <problem, with values>".
#define KAIZEN_CHECK(cond, ...)                                                     \
  do {                                                                              \
    if (!(cond)) [[unlikely]]                                                       \
      ::kaizen::detail::fail_check(#cond, __FILE__, __LINE__, __VA_ARGS__);         \
  } while (false)

#if defined(KAIZEN_DEBUG) || !defined(NDEBUG)
#define KAIZEN_ASSERT(cond, ...) KAIZEN_CHECK(cond, "internal invariant violated: ", __VA_ARGS__)
#else
#define KAIZEN_ASSERT(cond, ...) ((void)0)
#endif
