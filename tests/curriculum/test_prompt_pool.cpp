// The prompt pool: per-arm shuffled passes, determinism under a seed, arms and prompts added while
// training, exact save/restore, and the SEC batch recipe (draw arms, pop one prompt per drawn arm).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <kaizen/curriculum/prompt_pool.hpp>
#include <kaizen/curriculum/sec.hpp>

namespace {

using kaizen::ArmId;
using kaizen::Prompt;
using kaizen::curriculum::PromptPool;

std::vector<Prompt> prompts(const std::string& prefix, int n) {
  std::vector<Prompt> out;
  for (int i = 0; i < n; ++i) {
    Prompt p;
    p.text = prefix + std::to_string(i);
    p.id = i;
    out.push_back(p);
  }
  return out;
}

std::vector<std::string> texts(const std::vector<Prompt>& ps) {
  std::vector<std::string> out;
  for (const auto& p : ps) out.push_back(p.text);
  return out;
}

}  // namespace

TEST_CASE("Each pass of an arm serves every prompt once, in a fresh order", "[curriculum][pool]") {
  PromptPool pool(7);
  REQUIRE(pool.add_arm(prompts("a", 5)) == 0);
  REQUIRE(pool.add_arm(prompts("b", 3)) == 1);
  const std::vector<ArmId> five_a(5, 0);
  std::vector<std::vector<std::string>> passes;
  for (int pass = 0; pass < 4; ++pass) {
    const auto batch = pool.draw(five_a);
    for (const auto& p : batch) CHECK(p.category == 0);
    auto t = texts(batch);
    passes.push_back(t);
    std::sort(t.begin(), t.end());
    CHECK(t == std::vector<std::string>{"a0", "a1", "a2", "a3", "a4"});
  }
  // 4 passes of 5 prompts: the shuffles differ (probability of 4 equal orders is 120^-3).
  CHECK(std::set<std::vector<std::string>>(passes.begin(), passes.end()).size() > 1);
  const Prompt b = pool.next(1);
  CHECK(b.category == 1);
  CHECK(b.text[0] == 'b');
}

TEST_CASE("The pool is deterministic under its seed", "[curriculum][pool]") {
  auto sequence = [](std::uint64_t seed) {
    PromptPool pool(seed);
    pool.add_arm(prompts("a", 4));
    pool.add_arm(prompts("b", 6));
    const std::vector<ArmId> arms{0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 1};
    return texts(pool.draw(arms));
  };
  CHECK(sequence(3) == sequence(3));
  CHECK(sequence(3) != sequence(4));
}

TEST_CASE("Arms and prompts can be added while training", "[curriculum][pool]") {
  PromptPool pool(1);
  pool.add_arm(prompts("a", 2));
  (void)pool.next(0);
  pool.add_prompts(0, prompts("new", 2));
  CHECK(pool.size(0) == 4);
  // The rest of the current pass: one old prompt, then the two appended ones.
  const std::vector<ArmId> three(3, 0);
  const auto rest = texts(pool.draw(three));
  CHECK(rest[0][0] == 'a');
  CHECK(rest[1] == "new0");
  CHECK(rest[2] == "new1");
  CHECK(pool.add_arm(prompts("c", 1)) == 1);
  const std::vector<ArmId> c{1, 1};
  CHECK(texts(pool.draw(c)) == std::vector<std::string>{"c0", "c0"});
  // Prompt ids are kept as given.
  CHECK(pool.next(1).id == 0);
}

TEST_CASE("Pool save, restore and continue serves the same prompts", "[curriculum][pool]") {
  auto make = [] {
    PromptPool pool(11);
    pool.add_arm(prompts("a", 5));
    pool.add_arm(prompts("b", 3));
    return pool;
  };
  PromptPool pool = make();
  const std::vector<ArmId> arms{0, 1, 1, 0, 1, 1, 0};
  (void)pool.draw(arms);
  const std::string saved = pool.state().dump();
  const auto uninterrupted = texts(pool.draw(arms));
  PromptPool other = make();
  other.restore(nlohmann::json::parse(saved));
  CHECK(texts(other.draw(arms)) == uninterrupted);

  PromptPool smaller(11);
  smaller.add_arm(prompts("a", 5));
  CHECK_THROWS_WITH(smaller.restore(nlohmann::json::parse(saved)),
                    Catch::StartsWith("PromptPool::restore: the state has 2 arms, the pool 1"));
  smaller.add_arm(prompts("b", 4));
  CHECK_THROWS_WITH(smaller.restore(nlohmann::json::parse(saved)),
                    Catch::StartsWith("PromptPool::restore: arm 1 had 3 prompts when saved, the pool has 4"));
}

TEST_CASE("The pool rejects unknown arms and empty arms", "[curriculum][pool]") {
  PromptPool pool;
  CHECK_THROWS_WITH(pool.add_arm({}),
                    Catch::StartsWith("PromptPool::add_arm: expected at least one prompt, got none"));
  pool.add_arm(prompts("a", 1));
  const std::vector<ArmId> bad{0, 1};
  CHECK_THROWS_WITH(pool.draw(bad),
                    Catch::StartsWith("PromptPool::draw: expected arm ids in [0, 1), got 1 at position 1"));
  CHECK_THROWS_WITH(pool.next(-1),
                    Catch::StartsWith("PromptPool::next: expected an arm id in [0, 1), got -1"));
  CHECK_THROWS_WITH(pool.add_prompts(3, prompts("x", 1)),
                    Catch::StartsWith("PromptPool::add_prompts: expected an arm id in [0, 1), got 3"));
}

TEST_CASE("SEC batches: draw arms from the curriculum, one prompt per drawn arm", "[curriculum][pool]") {
  kaizen::curriculum::SelfEvolvingCurriculum sec(3, {.alpha = 0.5, .tau = 0.3});
  PromptPool pool(5);
  for (const char* name : {"easy", "medium", "hard"}) pool.add_arm(prompts(name, 10));
  kaizen::Rng rng(9);
  for (int step = 0; step < 5; ++step) {
    const auto arms = sec.sample(8, rng);
    const auto batch = pool.draw(arms);
    REQUIRE(batch.size() == arms.size());
    std::vector<double> gains;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      CHECK(batch[i].category == arms[i]);
      gains.push_back(batch[i].category == 1 ? 0.8 : 0.0);
    }
    sec.update(arms, gains);
  }
  const auto p = sec.probabilities();
  CHECK(p[1] > p[0]);
  CHECK(p[1] > p[2]);
}
