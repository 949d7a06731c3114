// Runs kaizen's MathVerifier over a corpus (JSON lines: text, gold, label, finish) and prints one
// line per item, "id<TAB>verdict<TAB>label<TAB>reason", then the accuracy table. Used by
// compare_math_verify.py (ctest reward_math_vs_math_verify) and by hand.
#include <fstream>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include <kaizen/reward/math_verifier.hpp>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: math_corpus_eval corpus.jsonl\n";
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::cerr << "math_corpus_eval: cannot open " << argv[1] << "\n";
    return 2;
  }
  const kaizen::reward::MathVerifier verifier;
  int n = 0, right = 0, false_accepts = 0, false_rejects = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto item = nlohmann::json::parse(line);
    const bool label = item.at("label").get<bool>();
    const auto finish = item.value("finish", std::string("stop")) == "length" ? kaizen::FinishReason::length
                                                                              : kaizen::FinishReason::stop;
    const auto verdict = verifier.check(item.at("text").get<std::string>(), item.at("gold").get<std::string>(), finish);
    ++n;
    right += verdict.correct == label;
    false_accepts += verdict.correct && !label;
    false_rejects += !verdict.correct && label;
    std::cout << item.at("id").get<int>() << '\t' << (verdict.correct ? 1 : 0) << '\t' << (label ? 1 : 0) << '\t'
              << item.at("kind").get<std::string>() << '\t' << verdict.reason << '\n';
  }
  std::cout << "kaizen items=" << n << " accuracy=" << (n ? 100.0 * right / n : 0.0) << "% false_accepts=" << false_accepts
            << " false_rejects=" << false_rejects << '\n';
  return 0;
}
