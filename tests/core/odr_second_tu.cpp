// A second translation unit including every public header: a non-inline definition in a header makes
// test_core fail to link (multiple definitions), which is the ODR check.
#include <kaizen/kaizen.hpp>

namespace kaizen::test {
int odr_second_tu_marker() { return 1; }
}  // namespace kaizen::test
