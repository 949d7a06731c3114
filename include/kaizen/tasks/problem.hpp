// kaizen/tasks/problem.hpp - what every embedded task produces, the VerifiableTask concept, and the
// glue from tasks to the training step: Problem -> kaizen::Prompt (tokenized), the verifier reward,
// a held-out split that keeps evaluation problems out of training, and CheckedTask, which swaps a
// task's own answer check for another one (e.g. reward::MathVerifier).
//
// Dependency direction: tasks/ is part of the torch-free, GiNaC-free kaizen::core and never includes
// reward/. A task's built-in verify is a light exact check (arithmetic: the last number compared as an
// exact rational; countdown: an exact rational expression checker). The CAS-backed math verifier
// lives in reward/ (kaizen::reward) and is plugged in from the outside through the AnswerCheck
// concept: `CheckedTask<Arithmetic, reward::MathVerifier>`.
#pragma once

#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/tasks/tokenizer.hpp>

namespace kaizen::tasks {

/// One generated problem.
struct Problem {
  std::string prompt;         ///< what the model reads, e.g. "27+58="
  std::string answer;         ///< a correct answer (the reference for arithmetic; one solution for countdown)
  std::string reference;      ///< what the verifier checks against (the value, or the target)
  std::int64_t category = 0;  ///< difficulty / category label in [0, num_categories)
};

/// A family of verifiable problems.
///
/// Required expressions (t: const T&, rng: Rng&, category: std::int64_t, s: std::string_view):
/// @code
///   t.num_categories()               -> std::int64_t  // categories are 0 .. num_categories - 1
///   t.generate(category, rng)        -> Problem       // category < 0: any category, uniformly
///   t.verify(prompt, reference, s)   -> bool          // is completion text s a correct answer?
/// @endcode
/// Contract: generate depends only on (category, rng); every generated Problem's `answer` verifies.
template <class T>
concept VerifiableTask = requires(const T& t, Rng& rng, std::int64_t category, std::string_view s) {
  { t.num_categories() } -> std::convertible_to<std::int64_t>;
  { t.generate(category, rng) } -> std::same_as<Problem>;
  { t.verify(s, s, s) } -> std::same_as<bool>;
};

/// An answer check: `check(completion_text, reference) -> bool` (reward::MathVerifier models it).
template <class C>
concept AnswerCheck = requires(const C& c, std::string_view s) {
  { c(s, s) } -> std::convertible_to<bool>;
};

/// `Task`'s problems, verified by `Check` instead of the task's own verify: the completion text against
/// Problem::reference. A VerifiableTask; the task and the check are held by value.
template <VerifiableTask Task, AnswerCheck Check>
class CheckedTask {
 public:
  CheckedTask(Task task, Check check) : task_(std::move(task)), check_(std::move(check)) {}

  [[nodiscard]] std::int64_t num_categories() const { return task_.num_categories(); }
  [[nodiscard]] Problem generate(std::int64_t category, Rng& rng) const { return task_.generate(category, rng); }
  [[nodiscard]] bool verify(std::string_view /*prompt*/, std::string_view reference, std::string_view completion) const {
    return static_cast<bool>(check_(completion, reference));
  }

  [[nodiscard]] const Task& task() const noexcept { return task_; }
  [[nodiscard]] const Check& check() const noexcept { return check_; }

 private:
  Task task_;
  Check check_;
};

/// The Prompt a model reads for `problem`. Throws kaizen::Error when the text has characters the
/// tokenizer does not know.
template <Tokenizer Tok>
[[nodiscard]] Prompt make_prompt(const Problem& problem, const Tok& tokenizer, std::int64_t id = -1) {
  Prompt p;
  p.tokens = tokenizer.encode(problem.prompt);
  p.text = problem.prompt;
  p.reference = problem.reference;
  p.id = id;
  p.category = problem.category;
  return p;
}

/// The supervised target of `problem`: its answer's tokens followed by end-of-sequence.
template <Tokenizer Tok>
[[nodiscard]] std::vector<TokenId> answer_tokens(const Problem& problem, const Tok& tokenizer) {
  std::vector<TokenId> ids = tokenizer.encode(problem.answer);
  ids.push_back(tokenizer.eos_id());
  return ids;
}

/// The verifier as a kaizen::Verifier (and so an OutcomeReward): decodes the completion and asks the
/// task whether it answers the prompt. A truncated completion (no end-of-sequence) is wrong.
template <VerifiableTask Task, Tokenizer Tok>
struct TaskVerifier {
  const Task* task;
  const Tok* tokenizer;
  [[nodiscard]] bool operator()(const Prompt& prompt, const Completion& completion) const {
    if (completion.finish != FinishReason::stop) return false;
    return task->verify(prompt.text, prompt.reference, tokenizer->decode(completion.tokens));
  }
};

/// A fixed held-out set and a generator of training problems that never repeats one of its prompts.
template <VerifiableTask Task>
class HeldOutSplit {
 public:
  /// Draws `size` distinct held-out problems from `task` with its own engine seeded by `seed`.
  /// Throws kaizen::Error when the task cannot produce that many distinct prompts (after 100 x size draws).
  HeldOutSplit(const Task& task, std::size_t size, std::uint64_t seed) : task_(&task) {
    Rng rng(seed);
    std::size_t draws = 0;
    while (held_out_.size() < size) {
      KAIZEN_CHECK(draws++ < 100 * size + 100, "HeldOutSplit: could not draw ", size,
                   " distinct problems; the task has too few");
      Problem p = task.generate(-1, rng);
      if (prompts_.insert(p.prompt).second) held_out_.push_back(std::move(p));
    }
  }

  [[nodiscard]] std::span<const Problem> held_out() const { return held_out_; }

  /// A training problem of `category` (< 0: any) whose prompt is not held out.
  [[nodiscard]] Problem train(std::int64_t category, Rng& rng) const {
    for (int attempt = 0; attempt < 10000; ++attempt) {
      Problem p = task_->generate(category, rng);
      if (prompts_.count(p.prompt) == 0) return p;
    }
    fail("HeldOutSplit::train: every drawn problem of category ", category, " is held out");
  }

 private:
  const Task* task_;
  std::vector<Problem> held_out_;
  std::unordered_set<std::string> prompts_;
};

}  // namespace kaizen::tasks
