// Must NOT compile: GeometricRatio applies its own log-space clip, so a CISPO weight on top of it has
// no meaning; Objective's static_assert says so (see CMakeLists.txt: the test expects the message).
#include <kaizen/policy_gradient/options.hpp>

int main() {
  const kaizen::policy_gradient::Objective<kaizen::policy_gradient::GeometricRatio,
                                           kaizen::policy_gradient::CispoClip> invalid{};
  return static_cast<int>(invalid.entropy_coefficient);
}
