// The batched multi-threaded scorer: rewards under load with throwing and hanging judges, the
// failure records, batched-only rewards, and bad options.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <kaizen/reward/scorer.hpp>

using kaizen::Completion;
using kaizen::Prompt;
using namespace kaizen::reward;
using Catch::Contains;

namespace {

// Hanging calls wait here until the test releases them (so no thread outlives the test binary).
struct Gate {
  std::mutex m;
  std::condition_variable cv;
  bool open = false;
  void wait() {
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [&] { return open; });
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(m);
      open = true;
    }
    cv.notify_all();
  }
};

// text "v:<x>" -> x, "throw" -> throws, "hang" -> blocks on the gate, "nan" -> NaN.
struct Judge {
  std::shared_ptr<Gate> gate;
  double operator()(const Prompt&, const Completion& c) const {
    if (c.text == "throw") throw std::runtime_error("judge exploded");
    if (c.text == "hang") {
      gate->wait();
      return 123.0;  // dropped: the call was abandoned
    }
    if (c.text == "nan") return std::nan("");
    return std::stod(c.text.substr(2));
  }
};

Completion make(std::string s) {
  Completion c;
  c.text = std::move(s);
  return c;
}

template <class S>
bool wait_abandoned_zero(const S& scorer) {
  for (int i = 0; i < 500 && scorer.abandoned_running() != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return scorer.abandoned_running() == 0;
}

}  // namespace

TEST_CASE("scorer: 10000 items with 1 percent throwing and 1 percent hanging judges", "[scorer]") {
  const std::size_t n = 10000;
  std::vector<Prompt> prompts(n);
  std::vector<Completion> completions;
  std::vector<double> expected(n, 0.0);
  std::vector<std::size_t> throwing, hanging;
  for (std::size_t i = 0; i < n; ++i) {
    if (i % 100 == 7) {
      completions.push_back(make("throw"));
      throwing.push_back(i);
    } else if (i % 100 == 42) {
      completions.push_back(make("hang"));
      hanging.push_back(i);
    } else {
      expected[i] = static_cast<double>(i % 17) / 4.0;
      completions.push_back(make("v:" + std::to_string(expected[i])));
    }
  }
  auto gate = std::make_shared<Gate>();
  std::vector<ScoreFailure> logged;
  std::mutex log_mutex;
  ScorerOptions options;
  options.threads = 8;
  options.timeout_seconds = 0.2;
  options.on_failure = [&](const ScoreFailure& f) {
    std::lock_guard<std::mutex> lock(log_mutex);
    logged.push_back(f);
  };
  Scorer scorer(Judge{gate}, options);
  const auto t0 = std::chrono::steady_clock::now();
  const ScoreReport report = scorer.score(prompts, completions);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  WARN("10000 items, 100 throwing, 100 hanging (timeout 0.2 s, 8 threads): " << seconds << " s");

  CHECK(report.rewards == expected);
  CHECK(report.exceptions == throwing.size());
  CHECK(report.timeouts == hanging.size());
  CHECK(report.non_finite == 0);
  REQUIRE(report.failures.size() == throwing.size() + hanging.size());
  std::vector<std::size_t> thrown_at, hung_at;
  for (const ScoreFailure& f : report.failures) {
    if (f.kind == FailureKind::exception) {
      thrown_at.push_back(f.index);
      CHECK(f.message == "judge exploded");
    } else {
      CHECK(f.kind == FailureKind::timeout);
      hung_at.push_back(f.index);
      CHECK_THAT(f.message, Contains("did not return within 0.2 s"));
    }
  }
  CHECK(thrown_at == throwing);
  CHECK(hung_at == hanging);
  CHECK(logged.size() == report.failures.size());
  CHECK(scorer.total_failures() == 200);
  CHECK(scorer.abandoned_running() == hanging.size());
  // the batch did not wait for the hanging calls: 100 hangs x 0.2 s over 8 threads is ~2.5 s
  CHECK(seconds < 30.0);
  gate->release();
  CHECK(wait_abandoned_zero(scorer));
}

TEST_CASE("scorer: a hanging call blocks the batch only for its timeout", "[scorer]") {
  auto gate = std::make_shared<Gate>();
  Scorer scorer(Judge{gate}, {.threads = 2, .timeout_seconds = 0.1});
  std::vector<Prompt> prompts(3);
  const std::vector<Completion> completions{make("v:1"), make("hang"), make("v:2")};
  const auto t0 = std::chrono::steady_clock::now();
  const ScoreReport r = scorer.score(prompts, completions);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(r.rewards == std::vector<double>{1.0, 0.0, 2.0});
  CHECK(r.timeouts == 1);
  CHECK(s < 5.0);
  // the abandoned call is still running: the scorer stays usable
  CHECK(scorer.abandoned_running() == 1);
  const ScoreReport again = scorer.score(std::span<const Prompt>(prompts).first(1),
                                         std::span<const Completion>(completions).first(1));
  CHECK(again.rewards == std::vector<double>{1.0});
  gate->release();
  CHECK(wait_abandoned_zero(scorer));
}

TEST_CASE("scorer: max_abandoned stops a scorer whose reward keeps hanging", "[scorer]") {
  auto gate = std::make_shared<Gate>();
  Scorer scorer(Judge{gate}, {.threads = 1, .timeout_seconds = 0.05, .max_abandoned = 1});
  std::vector<Prompt> prompts(1);
  const std::vector<Completion> hang{make("hang")};
  CHECK(scorer.score(prompts, hang).timeouts == 1);
  REQUIRE_THROWS_WITH(scorer.score(prompts, hang), Contains("1 timed-out calls are still running (max_abandoned = 1)"));
  gate->release();
  REQUIRE(wait_abandoned_zero(scorer));
  CHECK(scorer.score(prompts, std::vector<Completion>{make("v:3")}).rewards == std::vector<double>{3.0});
}

namespace {

struct BatchedOnly {  // value = text length; a chunk holding "boom" throws; "short" returns one too few
  std::vector<double> operator()(std::span<const Prompt>, std::span<const Completion> cs) const {
    std::vector<double> out;
    for (const Completion& c : cs) {
      if (c.text == "boom") throw std::runtime_error("batch failed");
      out.push_back(static_cast<double>(c.text.size()));
    }
    for (const Completion& c : cs)
      if (c.text == "short") out.pop_back();
    return out;
  }
};

}  // namespace

TEST_CASE("scorer: batched-only rewards are called per chunk, failures fail their chunk", "[scorer]") {
  Scorer scorer(BatchedOnly{}, {.threads = 3, .chunk_size = 4});
  std::vector<Prompt> prompts(10);
  std::vector<Completion> cs;
  for (int i = 0; i < 10; ++i) cs.push_back(make(std::string(static_cast<std::size_t>(i + 1), 'x')));
  cs[5] = make("boom");   // chunk 1 = items 4..7
  cs[9] = make("short");  // chunk 2 = items 8..9
  const ScoreReport r = scorer.score(prompts, cs);
  CHECK(r.rewards == std::vector<double>{1, 2, 3, 4, 0, 0, 0, 0, 0, 0});
  CHECK(r.exceptions == 4);
  CHECK(r.wrong_count == 2);
  CHECK(r.failures[4].message == "the batched reward returned 1 scores for 2 items");

  Scorer nan_scorer(Judge{std::make_shared<Gate>()}, {.threads = 2});
  const std::vector<Completion> mixed{make("v:1.5"), make("nan")};
  const ScoreReport m = nan_scorer.score(std::vector<Prompt>(2), mixed);
  CHECK(m.rewards == std::vector<double>{1.5, 0.0});
  CHECK(m.non_finite == 1);
  CHECK(m.failures.at(0).index == 1);
  // the scorer is itself an OutcomeReward (batched form)
  static_assert(kaizen::BatchedReward<Scorer<Judge>>);
  CHECK(kaizen::score(nan_scorer, std::vector<Prompt>(1), std::vector<Completion>{make("v:4")}) ==
        std::vector<double>{4.0});
  // empty batch
  CHECK(nan_scorer.score({}, {}).rewards.empty());
}

TEST_CASE("scorer: bad options and inputs throw kaizen::Error with the values", "[scorer]") {
  auto gate = std::make_shared<Gate>();
  REQUIRE_THROWS_WITH(Scorer(Judge{gate}, {.timeout_seconds = 0.0}),
                      Contains("timeout_seconds must be finite and > 0, got 0"));
  REQUIRE_THROWS_WITH(Scorer(Judge{gate}, {.timeout_seconds = -2.0}), Contains("got -2"));
  REQUIRE_THROWS_WITH(Scorer(Judge{gate}, {.failure_reward = INFINITY}), Contains("failure_reward must be finite"));
  REQUIRE_THROWS_WITH(Scorer(Judge{gate}, {.chunk_size = 0}), Contains("chunk_size must be > 0, got 0"));
  REQUIRE_THROWS_WITH(Scorer(Judge{gate}, {.max_abandoned = 0}), Contains("max_abandoned must be > 0"));
  REQUIRE_THROWS_WITH(Scorer<Judge>(std::shared_ptr<Judge>{}), Contains("the reward pointer is null"));
  Scorer scorer(Judge{gate}, {.threads = 1});
  REQUIRE_THROWS_WITH(scorer.score(std::vector<Prompt>(2), std::vector<Completion>{make("v:1")}),
                      Contains("2 prompts but 1 completions"));
}
