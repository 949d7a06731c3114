#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include <kaizen/core/reward.hpp>

using namespace kaizen;

TEST_CASE("score calls per-sample and batched rewards", "[core][reward]") {
  const std::vector<Prompt> prompts(3, Prompt{.reference = "4"});
  const std::vector<Completion> completions{{.text = "4"}, {.text = "5"}, {.text = "4"}};
  auto exact = [](const Prompt& p, const Completion& c) { return c.text == p.reference; };
  CHECK(score(exact, prompts, completions) == std::vector<double>{1, 0, 1});
  auto batched = [](std::span<const Prompt>, std::span<const Completion> cs) {
    std::vector<double> out;
    for (const auto& c : cs) out.push_back(static_cast<double>(c.text.size()));
    return out;
  };
  CHECK(score(batched, prompts, completions) == std::vector<double>{1, 1, 1});
}

TEST_CASE("score rejects mismatched sizes and non-finite rewards", "[core][reward][errors]") {
  const std::vector<Prompt> prompts(2);
  const std::vector<Completion> completions(3);
  auto one = [](const Prompt&, const Completion&) { return 1.0; };
  CHECK_THROWS_WITH(score(one, prompts, completions), Catch::StartsWith("score: 2 prompts but 3 completions"));
  auto nan = [](const Prompt&, const Completion&) { return std::numeric_limits<double>::quiet_NaN(); };
  CHECK_THROWS_WITH(score(nan, prompts, std::span(completions).first(2)),
                    Catch::StartsWith("score: reward nan for completion 0 is not finite"));
  auto short_batch = [](std::span<const Prompt>, std::span<const Completion>) { return std::vector<double>{1.0}; };
  CHECK_THROWS_WITH(score(short_batch, prompts, std::span(completions).first(2)),
                    Catch::StartsWith("score: the batched reward returned 1 scores for 2 completions"));
}
