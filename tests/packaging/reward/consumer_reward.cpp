// A downstream program that checks answers with kaizen's math verifier (kaizen::reward, no LibTorch).
#include <iostream>

#include <kaizen/reward/math_verifier.hpp>

int main() {
  const kaizen::reward::MathVerifier verify;
  const bool equal = verify.check("so the side is \\boxed{3\\sqrt{2}}", "\\sqrt{18}").correct;
  const bool hedge = verify.check("it is 2 or 3", "3").correct;
  std::cout << "kaizen reward consumer: 3*sqrt(2) == sqrt(18): " << equal << ", hedge accepted: " << hedge << '\n';
  return equal && !hedge ? 0 : 1;
}
