// A downstream program that uses only the torch-free families: a curriculum, a vote, answer extraction.
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <kaizen/consistency.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/curriculum.hpp>
#include <kaizen/search.hpp>
#include <kaizen/version.hpp>

int main() {
  kaizen::curriculum::SelfEvolvingCurriculum sec(3, {.alpha = 0.5, .tau = 0.5});
  kaizen::Rng rng(7);
  const std::vector<kaizen::ArmId> arms = sec.sample(8, rng);
  sec.update(arms, std::vector<double>(arms.size(), 0.5));
  const std::vector<std::optional<std::string>> answers{
      kaizen::consistency::extract_answer("so \\boxed{42}"), kaizen::consistency::extract_answer("it is 41"),
      kaizen::consistency::extract_answer("The answer is 42.")};
  const auto vote = kaizen::consistency::majority_vote(answers);
  std::cout << "kaizen " << kaizen::kVersion << " core consumer: vote " << (vote ? vote->answer : "none") << ", "
            << arms.size() << " arms drawn\n";
  return vote && vote->answer == "42" ? 0 : 1;
}
