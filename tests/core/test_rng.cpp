#include <cmath>
#include <vector>

#include <catch2/catch.hpp>

#include <kaizen/core/rng.hpp>

TEST_CASE("uniform01 lies in the half-open unit interval with mean 1/2", "[core][rng]") {
  kaizen::Rng rng(42);
  double sum = 0;
  for (int i = 0; i < 100000; ++i) {
    const double u = kaizen::uniform01(rng);
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
    sum += u;
  }
  CHECK(sum / 100000 == Approx(0.5).margin(0.01));
}

TEST_CASE("uniform_index is unbiased and in range", "[core][rng]") {
  kaizen::Rng rng(7);
  std::vector<int> counts(3, 0);
  for (int i = 0; i < 30000; ++i) ++counts[kaizen::uniform_index(rng, 3)];
  for (int c : counts) CHECK(c == Approx(10000).margin(400));
  CHECK_THROWS_WITH(kaizen::uniform_index(rng, 0), Catch::StartsWith("uniform_index: the range must be non-empty"));
}

TEST_CASE("normal, gamma and beta draws have the right moments", "[core][rng]") {
  kaizen::Rng rng(1);
  constexpr int n = 50000;
  double normal_sum = 0, normal_sq = 0, gamma_sum = 0, small_gamma_sum = 0, beta_sum = 0;
  for (int i = 0; i < n; ++i) {
    const double z = kaizen::normal01(rng);
    normal_sum += z;
    normal_sq += z * z;
    gamma_sum += kaizen::gamma_draw(rng, 3.0);
    small_gamma_sum += kaizen::gamma_draw(rng, 0.5);
    beta_sum += kaizen::beta_draw(rng, 2.0, 6.0);
  }
  CHECK(normal_sum / n == Approx(0.0).margin(0.02));
  CHECK(normal_sq / n == Approx(1.0).margin(0.03));
  CHECK(gamma_sum / n == Approx(3.0).margin(0.05));
  CHECK(small_gamma_sum / n == Approx(0.5).margin(0.02));
  CHECK(beta_sum / n == Approx(0.25).margin(0.01));
  CHECK_THROWS_WITH(kaizen::gamma_draw(rng, 0.0), Catch::StartsWith("gamma_draw: shape must be positive"));
}

TEST_CASE("an engine saved and restored continues with the same numbers", "[core][rng]") {
  kaizen::Rng rng(123);
  for (int i = 0; i < 10; ++i) (void)rng();
  const std::string saved = kaizen::save_rng(rng);
  std::vector<std::uint64_t> expected;
  for (int i = 0; i < 5; ++i) expected.push_back(rng());
  kaizen::Rng restored;
  kaizen::restore_rng(restored, saved);
  for (std::uint64_t e : expected) CHECK(restored() == e);
  CHECK_THROWS_WITH(kaizen::restore_rng(restored, "not a state"), Catch::StartsWith("restore_rng: the text is not"));
}
