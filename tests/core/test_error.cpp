#include <stdexcept>
#include <string>
#include <string_view>

#include <catch2/catch.hpp>

#include <kaizen/core/error.hpp>

namespace {
int checked_half(int x) {
  KAIZEN_CHECK(x % 2 == 0, "checked_half: expected an even number, got ", x);
  return x / 2;
}
}  // namespace

TEST_CASE("KAIZEN_CHECK passes through when the condition holds", "[core][error]") {
  CHECK(checked_half(8) == 4);
}

TEST_CASE("KAIZEN_CHECK throws kaizen::Error naming the values and the location", "[core][error]") {
  CHECK_THROWS_AS(checked_half(7), kaizen::Error);
  CHECK_THROWS_AS(checked_half(7), std::invalid_argument);
  try {
    (void)checked_half(7);
    FAIL("no exception");
  } catch (const kaizen::Error& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Catch::StartsWith("checked_half: expected an even number, got 7"));
    CHECK_THAT(what, Catch::Contains("x % 2 == 0"));
    CHECK_THAT(what, Catch::Contains("at test_error.cpp:"));
    CHECK_THAT(what, !Catch::Contains("/tests/core/"));   // the file's name, not the machine path
  }
}

TEST_CASE("error locations name headers below the include root, never a machine path", "[core][error]") {
  using kaizen::detail::source_path_for_messages;
  STATIC_REQUIRE(std::string_view(source_path_for_messages("/home/u/src/kaizen/include/kaizen/core/rng.hpp")) ==
                 "kaizen/core/rng.hpp");
  STATIC_REQUIRE(std::string_view(source_path_for_messages("/opt/x/include/include/kaizen/a.hpp")) == "kaizen/a.hpp");
  STATIC_REQUIRE(std::string_view(source_path_for_messages("C:\\dev\\include\\kaizen\\a.hpp")) == "a.hpp");
  STATIC_REQUIRE(std::string_view(source_path_for_messages("/tmp/my_include/x.cpp")) == "x.cpp");
  STATIC_REQUIRE(std::string_view(source_path_for_messages("x.cpp")) == "x.cpp");
  STATIC_REQUIRE(std::string_view(source_path_for_messages("")).empty());
}

TEST_CASE("kaizen::fail throws with the concatenated message", "[core][error]") {
  CHECK_THROWS_WITH(kaizen::fail("f: ", 3, " is not ", 4.5), "f: 3 is not 4.5");
}
