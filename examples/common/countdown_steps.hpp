// countdown_steps.hpp - the step-wise Countdown checker shared by the examples that search over
// reasoning steps (rest_mcts, prm_search).
//
//   prompt "3,5,7>22:" -> completion "3*5=15;15+7=22<eos>": each step "x op y=z" takes two available
//   numbers (given, or results of earlier steps) and adds z = x op y (exact division only); ';' ends a
//   step; the solution is right when every step is valid and the last result is the target.
//   reachable() decides by brute force whether the target can still be made from what is left (a step
//   is "correct" when it is valid and the target stays reachable: the examples' PRM AUC labels).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <kaizen/core/types.hpp>
#include <kaizen/loop/steps.hpp>
#include <kaizen/tasks.hpp>

namespace countdown_steps {


struct Question {
  std::vector<std::int64_t> numbers;
  std::int64_t target = 0;
};

std::optional<Question> parse_question(std::string_view text) {
  Question q;
  std::int64_t cur = -1;
  bool after_gt = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      cur = (cur < 0 ? 0 : cur * 10) + (c - '0');
    } else {
      if (cur >= 0 && after_gt) q.target = cur;
      else if (cur >= 0) q.numbers.push_back(cur);
      if (c == '>') after_gt = true;
      cur = -1;
    }
  }
  if (!after_gt || q.numbers.empty()) return std::nullopt;
  return q;
}

std::optional<std::int64_t> apply_op(std::int64_t x, char op, std::int64_t y) {
  switch (op) {
    case '+': return x + y;
    case '-': return x - y;
    case '*': return x * y;
    case '/': if (y == 0 || x % y != 0) return std::nullopt; return x / y;
  }
  return std::nullopt;
}

/// Applies "x op y=z" to the available numbers: x and y are taken, z (= x op y exactly) is added.
std::optional<std::int64_t> apply_step(std::string_view step, std::vector<std::int64_t>& avail) {
  std::size_t i = 0;
  auto number = [&]() -> std::optional<std::int64_t> {
    const std::size_t start = i;
    bool neg = false;
    if (i < step.size() && step[i] == '-') neg = true, ++i;
    std::int64_t v = 0;
    while (i < step.size() && step[i] >= '0' && step[i] <= '9' && i - start < 7) v = v * 10 + (step[i++] - '0');
    if (i == start + (neg ? 1 : 0)) return std::nullopt;
    return neg ? -v : v;
  };
  const auto x = number();
  if (!x || i >= step.size()) return std::nullopt;
  const char op = step[i++];
  const auto y = number();
  if (!y || i >= step.size() || step[i++] != '=') return std::nullopt;
  const auto z = number();
  if (!z || i != step.size()) return std::nullopt;
  const auto v = apply_op(*x, op, *y);
  if (!v || *v != *z) return std::nullopt;
  auto take = [&](std::int64_t n) {
    const auto it = std::find(avail.begin(), avail.end(), n);
    if (it == avail.end()) return false;
    avail.erase(it);
    return true;
  };
  if (!take(*x) || !take(*y)) return std::nullopt;
  avail.push_back(*z);
  return z;
}

bool reachable(const std::vector<std::int64_t>& avail, std::int64_t target) {
  for (std::size_t a = 0; a < avail.size(); ++a)
    for (std::size_t b = 0; b < avail.size(); ++b) {
      if (a == b) continue;
      for (char op : {'+', '-', '*', '/'}) {
        const auto v = apply_op(avail[a], op, avail[b]);
        if (!v) continue;
        if (*v == target) return true;
        std::vector<std::int64_t> rest;
        for (std::size_t k = 0; k < avail.size(); ++k)
          if (k != a && k != b) rest.push_back(avail[k]);
        rest.push_back(*v);
        if (rest.size() >= 2 && reachable(rest, target)) return true;
      }
    }
  return false;
}

bool solves(const Question& q, std::string_view text) {
  std::vector<std::int64_t> avail = q.numbers;
  std::optional<std::int64_t> last;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = text.find(';', start);
    last = apply_step(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start), avail);
    if (!last) return false;
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return last && *last == q.target;
}

struct StepVerifier {
  const kaizen::tasks::CharTokenizer* tokenizer;
  bool operator()(const kaizen::Prompt& p, const kaizen::Completion& c) const {
    if (c.finish != kaizen::FinishReason::stop) return false;
    const auto q = parse_question(p.text);
    return q && solves(*q, tokenizer->decode(c.tokens));
  }
};

/// The step-by-step form of a Countdown answer ("(3+5)*7" -> "3+5=8;8*7=56"): left to right.
std::string answer_steps(const kaizen::tasks::Problem& p) {
  std::string flat;
  for (char c : p.answer)
    if (c != '(' && c != ')') flat.push_back(c);
  std::vector<std::int64_t> nums;
  std::vector<char> ops;
  std::int64_t cur = 0;
  for (char c : flat) {
    if (c >= '0' && c <= '9') cur = cur * 10 + (c - '0');
    else nums.push_back(cur), cur = 0, ops.push_back(c);
  }
  nums.push_back(cur);
  std::string out;
  std::int64_t v = nums[0];
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const std::int64_t r = *apply_op(v, ops[i], nums[i + 1]);
    if (i > 0) out.push_back(';');
    out += std::to_string(v) + ops[i] + std::to_string(nums[i + 1]) + "=" + std::to_string(r);
    v = r;
  }
  return out;
}

/// Mann-Whitney AUC (positives above negatives; ties count one half).
double auc(const std::vector<double>& scores, const std::vector<bool>& positive) {
  double pairs = 0.0, wins = 0.0;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    if (!positive[i]) continue;
    for (std::size_t j = 0; j < scores.size(); ++j) {
      if (positive[j]) continue;
      pairs += 1.0;
      wins += scores[i] > scores[j] ? 1.0 : scores[i] == scores[j] ? 0.5 : 0.0;
    }
  }
  return pairs > 0.0 ? wins / pairs : 0.5;
}

/// Labels every step of a sampled solution for a step-level AUC: appends the prompt + completion tokens to
/// `sequences`, the position after each step's last token to `ends`, and one label per step to `labels`
/// (the step and every earlier one are valid, and the target is reached or still reachable). A completion
/// without steps adds nothing.
inline void label_steps(const kaizen::Prompt& prompt, const kaizen::Completion& completion,
                        const kaizen::loop::StepSegmenter& segmenter, const kaizen::tasks::CharTokenizer& tokenizer,
                        std::vector<std::vector<kaizen::TokenId>>& sequences,
                        std::vector<std::vector<std::int64_t>>& ends, std::vector<bool>& labels) {
  const Question q = *parse_question(prompt.text);
  std::vector<std::int64_t> avail = q.numbers;
  std::vector<kaizen::TokenId> seq = prompt.tokens;
  std::vector<std::int64_t> step_ends;
  bool valid = true;
  std::size_t pos = 0;
  for (std::size_t len : kaizen::loop::split_steps(completion.tokens, segmenter)) {
    const std::span<const kaizen::TokenId> step = std::span<const kaizen::TokenId>(completion.tokens).subspan(pos, len);
    pos += len;
    seq.insert(seq.end(), step.begin(), step.end());
    step_ends.push_back(static_cast<std::int64_t>(seq.size()));
    std::string text = tokenizer.decode(step);
    if (!text.empty() && text.back() == ';') text.pop_back();
    const auto r = valid ? apply_step(text, avail) : std::nullopt;
    valid = valid && r.has_value();
    labels.push_back(valid && (*r == q.target || reachable(avail, q.target)));
  }
  if (step_ends.empty()) return;
  sequences.push_back(std::move(seq));
  ends.push_back(std::move(step_ends));
}

}  // namespace countdown_steps
