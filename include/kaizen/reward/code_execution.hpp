// kaizen/reward/code_execution.hpp - the pass-rate reward of a Python program against unit tests,
// every test run in its own sandbox (reward/code_sandbox.hpp).
//
// Rules:
//   - The program is read from the completion text: the last fenced block (```python, ```py or a
//     bare ```) when there is one, else the whole text (extract_code).
//   - A CodeTest is one sandboxed run of `program + "\n\n" + test.code` with stdin `test.input`. It
//     passes when the run exits with status 0 (no signal, no timeout, no output overflow) and, when
//     `expected_output` is set, stdout equals it after normalisation: "\r\n" -> "\n", trailing spaces
//     and tabs of every line dropped, trailing empty lines dropped. `code` holds assertion-style
//     tests (`assert f(2) == 4`); `expected_output` stdin/stdout tests; both may be used together.
//   - reward = passed / total (or 1/0 with all_or_nothing); an empty program scores 0 without a run.
//   - The tests of a prompt come from a caller-given `tests(prompt)`; no tests is a kaizen::Error.
//   - Construction runs check_sandbox(options) once: a sandbox that cannot start is an error at
//     construction, never a silent reward of 0 (nor an unsandboxed run).
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/reward/code_sandbox.hpp>

namespace kaizen::reward {

/// One unit test (see the header comment).
struct CodeTest {
  std::string code;                            ///< appended to the program (assertions), may be empty
  std::string input;                           ///< stdin
  std::optional<std::string> expected_output;  ///< compared with stdout after normalisation
};

/// The outcome of running a program against its tests.
struct CodeReport {
  std::size_t passed = 0;
  std::size_t total = 0;
  std::vector<RunResult> runs;  ///< one per test run (fewer with stop_at_first_failure)
  [[nodiscard]] double pass_rate() const noexcept {
    return total == 0 ? 0.0 : static_cast<double>(passed) / static_cast<double>(total);
  }
};

/// The program in a completion: the last fenced block, else the whole text, trimmed of blank lines.
[[nodiscard]] inline std::string extract_code(std::string_view text) {
  std::string_view s = text;
  const std::size_t close = s.rfind("```");
  if (close != std::string_view::npos) {
    const std::size_t open = s.substr(0, close).rfind("```");
    if (open != std::string_view::npos) {
      std::string_view body = s.substr(open + 3, close - open - 3);
      const std::size_t nl = body.find('\n');
      if (nl != std::string_view::npos &&
          body.substr(0, nl).find_first_of(" \t(=") == std::string_view::npos)  // a language tag line
        body.remove_prefix(nl + 1);
      s = body;
    }
  }
  while (!s.empty() && (s.front() == '\n' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.remove_suffix(1);
  return std::string(s);
}

/// stdout normalisation used by the comparison (see the header comment).
[[nodiscard]] inline std::string normalize_output(std::string_view text) {
  std::string out;
  std::string line;
  std::vector<std::string> lines;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == '\n') {
      while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) line.pop_back();
      lines.push_back(line);
      line.clear();
    } else {
      line += text[i];
    }
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += '\n';
    out += lines[i];
  }
  return out;
}

/// Runs `program` against every test, each in its own sandbox.
[[nodiscard]] inline CodeReport run_tests(std::string_view program, std::span<const CodeTest> tests,
                                          const SandboxOptions& options = {}, bool stop_at_first_failure = false) {
  KAIZEN_CHECK(!tests.empty(), "run_tests: no tests were given");
  CodeReport report;
  report.total = tests.size();
  if (program.find_first_not_of(" \t\r\n") == std::string_view::npos) return report;
  for (const CodeTest& test : tests) {
    std::string source(program);
    if (!test.code.empty()) source += "\n\n" + test.code + "\n";
    RunResult run = run_python(source, test.input, options);
    bool ok = run.clean_exit();
    if (ok && test.expected_output)
      ok = normalize_output(run.stdout_text) == normalize_output(*test.expected_output);
    report.passed += ok ? 1 : 0;
    report.runs.push_back(std::move(run));
    if (!ok && stop_at_first_failure) break;
  }
  return report;
}

/// Pass-rate reward over sandboxed unit tests. Thread-safe (each call runs its own processes).
class CodeExecutionReward {
 public:
  CodeExecutionReward(std::function<std::vector<CodeTest>(const Prompt&)> tests, SandboxOptions options = {},
                      bool all_or_nothing = false)
      : tests_(std::move(tests)), options_(std::move(options)), all_or_nothing_(all_or_nothing) {
    KAIZEN_CHECK(static_cast<bool>(tests_), "CodeExecutionReward: no tests callable was given");
    check_sandbox(options_);
  }

  [[nodiscard]] const SandboxOptions& options() const noexcept { return options_; }

  [[nodiscard]] CodeReport report(const Prompt& prompt, const Completion& completion) const {
    const std::vector<CodeTest> tests = tests_(prompt);
    KAIZEN_CHECK(!tests.empty(), "CodeExecutionReward: no tests for prompt id ", prompt.id);
    return run_tests(extract_code(completion.text), tests, options_, all_or_nothing_);
  }

  [[nodiscard]] double operator()(const Prompt& prompt, const Completion& completion) const {
    const CodeReport r = report(prompt, completion);
    if (all_or_nothing_) return r.passed == r.total ? 1.0 : 0.0;
    return r.pass_rate();
  }

 private:
  std::function<std::vector<CodeTest>(const Prompt&)> tests_;
  SandboxOptions options_;
  bool all_or_nothing_;
};

}  // namespace kaizen::reward
