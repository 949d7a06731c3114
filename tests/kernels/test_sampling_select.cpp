// Host tests of the sampler's selection and draw arithmetic (kaizen/torch/ops/sampling_select.hpp), the
// integers both the CPU path and the CUDA kernel (kernels/src/sampling.cu) compute:
//   - the radix thresholds equal brute-force definitions (sorted order) on rows with ties and masks;
//   - the kernel's parallel bin choice (suffix scan over the histogram, lowest qualifying bin) equals the
//     host's in-order walk;
//   - the kernel's draw (1024 contiguous segments, exclusive scan, one claiming segment, a walk inside it)
//     emulated step by step: >= 1e7 draws over rows with masked and NaN logits, uniforms at 0, at the top
//     and at every segment boundary, never give a token outside the kept set or a masked one, and equal
//     the host's serial draw;
//   - draw frequencies match the kept masses.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include <kaizen/torch/ops/sampling_select.hpp>

namespace sm = kaizen::ops::sampling;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

struct Row {
  std::vector<float> x;  // logits (−inf masked, NaN)
  std::vector<float> e;  // weights
};

Row make_row(std::mt19937_64& gen, std::int64_t v, double masked_fraction, bool quantise, bool mask_last) {
  Row r;
  r.x.resize(static_cast<std::size_t>(v));
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (auto& xv : r.x) {
    xv = normal(gen);
    if (quantise) xv = std::round(xv * 2.0f) / 2.0f;  // many ties
    const double c = unit(gen);
    if (c < masked_fraction) xv = -kInf;
    else if (c < masked_fraction * 1.05) xv = std::numeric_limits<float>::quiet_NaN();
  }
  if (mask_last) r.x.back() = -kInf;
  float m = -kInf;
  for (const float xv : r.x) m = std::max(m, sm::tempered(xv, 1.0f));
  r.e.resize(r.x.size());
  for (std::size_t j = 0; j < r.x.size(); ++j)
    r.e[j] = sm::weight_of(sm::tempered(r.x[j], 1.0f), m, [](float d) { return std::exp(d); });
  return r;
}

bool kept(float e, float tau) { return e >= tau && e > 0.0f; }

/// Brute force: k-th largest value of e.
float brute_kth(std::vector<float> e, std::int64_t k) {
  std::sort(e.begin(), e.end(), std::greater<float>());
  return e[static_cast<std::size_t>(k - 1)];
}

/// Brute force of the top-p rule: smallest survivor value whose strictly-larger survivors' mass A satisfies
/// A < T or A = 0.
float brute_top_p(const std::vector<float>& e, float tau, double top_p) {
  std::vector<float> s;
  std::uint64_t total = 0;
  for (const float x : e)
    if (kept(x, tau)) {
      s.push_back(x);
      total += sm::mass_of(x);
    }
  const std::uint64_t target = sm::topp_target(total, top_p);
  std::sort(s.begin(), s.end(), std::greater<float>());
  float best = s.front();
  std::uint64_t above = 0;
  for (std::size_t i = 0; i < s.size();) {
    std::size_t j = i;
    std::uint64_t group = 0;
    while (j < s.size() && s[j] == s[i]) group += sm::mass_of(s[j++]);
    if (!sm::topp_bin(above, target)) break;
    best = s[i];
    above += group;
    i = j;
  }
  return best;
}

/// The kernel's parallel bin choice for one top-p pass, emulated: 1024 threads own `per` bins each in
/// descending order, an exclusive scan over their masses, then the lowest non-empty bin passing topp_bin
/// (atomicMin) and its cumulative mass.
std::pair<int, std::uint64_t> parallel_topp_bin(const std::uint32_t* counts, const std::uint64_t* masses, int bins,
                                                std::uint64_t above, std::uint64_t target) {
  constexpr int threads = 1024;
  const int per = bins / threads;
  int chosen = bins;
  std::uint64_t excl = 0;
  std::vector<std::uint64_t> starts(threads);
  for (int t = 0; t < threads; ++t) {
    starts[static_cast<std::size_t>(t)] = excl;
    const int hi = bins - 1 - t * per;
    for (int i = 0; i < per; ++i) excl += masses[hi - i];
  }
  for (int t = 0; t < threads; ++t) {
    const int hi = bins - 1 - t * per;
    std::uint64_t cum = above + starts[static_cast<std::size_t>(t)];
    for (int i = 0; i < per; ++i) {
      if (counts[hi - i] != 0 && sm::topp_bin(cum, target)) chosen = std::min(chosen, hi - i);
      cum += masses[hi - i];
    }
  }
  std::uint64_t cum = above;
  for (int b = bins - 1; b > chosen; --b) cum += masses[b];
  return {chosen, cum};
}

/// The kernel's top-p passes with parallel_topp_bin: returns the threshold.
float kernel_top_p(const std::vector<float>& e, float tau, double top_p) {
  auto counts = std::make_unique<std::uint32_t[]>(sm::kMaxBins);
  auto masses = std::make_unique<std::uint64_t[]>(sm::kMaxBins);
  std::uint32_t prefix = 0;
  std::uint64_t above = 0;
  std::uint64_t target = 0;
  for (int pass = 0; pass < sm::kPasses; ++pass) {
    const int bins = sm::digit_bins(pass);
    std::fill(counts.get(), counts.get() + bins, 0u);
    std::fill(masses.get(), masses.get() + bins, 0ull);
    for (const float x : e) {
      if (!kept(x, tau)) continue;
      const std::uint32_t key = sm::key_of(x);
      if (!sm::in_prefix(key, prefix, pass)) continue;
      ++counts[sm::digit_of(key, pass)];
      masses[sm::digit_of(key, pass)] += sm::mass_of(x);
    }
    if (pass == 0) {
      std::uint64_t total = 0;
      for (int b = 0; b < bins; ++b) total += masses[b];
      target = sm::topp_target(total, top_p);
    }
    const auto [bin, cum] = parallel_topp_bin(counts.get(), masses.get(), bins, above, target);
    REQUIRE(bin < bins);
    prefix |= static_cast<std::uint32_t>(bin) << sm::digit_shift(pass);
    above = cum;
  }
  return sm::value_of(prefix);
}

/// The kernel's draw, per row: segment sums and starts of 1024 contiguous segments (computed once), then
/// per uniform the one claiming segment and the walk inside it.
struct KernelDraw {
  static constexpr int kThreads = 1024;
  std::int64_t v = 0;
  std::int64_t seg = 0;
  float tau = 0.0f;
  const std::vector<float>* e = nullptr;
  std::vector<std::uint64_t> mine, start;
  std::uint64_t total = 0;

  KernelDraw(const std::vector<float>& weights, float threshold) : v(static_cast<std::int64_t>(weights.size())) {
    e = &weights;
    tau = threshold;
    seg = (v + kThreads - 1) / kThreads;
    mine.assign(kThreads, 0);
    start.assign(kThreads, 0);
    for (int t = 0; t < kThreads; ++t) {
      const std::int64_t b = std::min<std::int64_t>(t * seg, v);
      const std::int64_t end = std::min<std::int64_t>(b + seg, v);
      for (std::int64_t j = b; j < end; ++j)
        if (kept(weights[static_cast<std::size_t>(j)], tau)) mine[static_cast<std::size_t>(t)] += sm::mass_of(weights[static_cast<std::size_t>(j)]);
      start[static_cast<std::size_t>(t)] = total;
      total += mine[static_cast<std::size_t>(t)];
    }
  }

  /// Returns the id, or −1 when no segment claims (a defect) / −2 when the kept mass is 0.
  std::int64_t draw(std::uint64_t w) const {
    if (total == 0) return -2;
    const std::uint64_t r = sm::draw_point(total, w);
    // The claiming thread: start ≤ r < start + mine (segments tile [0, total), so the last start ≤ r).
    const auto it = std::upper_bound(start.begin(), start.end(), r);
    auto t = static_cast<std::size_t>(it - start.begin()) - 1;
    while (mine[t] == 0) --t;  // empty segments share their start with the next non-empty one
    if (!(start[t] <= r && r - start[t] < mine[t])) return -1;
    const std::int64_t b = std::min<std::int64_t>(static_cast<std::int64_t>(t) * seg, v);
    const std::int64_t end = std::min<std::int64_t>(b + seg, v);
    std::uint64_t local = 0;
    for (std::int64_t j = b; j < end; ++j) {
      const float x = (*e)[static_cast<std::size_t>(j)];
      if (!kept(x, tau)) continue;
      local += sm::mass_of(x);
      if (local > r - start[t]) return j;
    }
    return -1;
  }
};

/// The smallest w with draw_point(total, w) ≥ b (b ≤ total).
std::uint64_t w_for(std::uint64_t total, std::uint64_t b) {
  __extension__ typedef unsigned __int128 u128;
  const u128 num = static_cast<u128>(b) << 64;
  const u128 w = (num + total - 1) / total;
  return w > ~std::uint64_t{0} ? ~std::uint64_t{0} : static_cast<std::uint64_t>(w);
}

}  // namespace

TEST_CASE("sampling_select radix thresholds equal the brute-force definitions, ties and masks included", "[sampling]") {
  std::mt19937_64 gen(7);
  sm::HostSelect sel;
  for (int trial = 0; trial < 60; ++trial) {
    const std::int64_t v = trial % 3 == 0 ? 5 : trial % 3 == 1 ? 1000 : 4099;
    const Row row = make_row(gen, v, trial % 2 == 0 ? 0.3 : 0.0, trial % 4 < 2, trial % 5 == 0);
    for (const std::int64_t k : {std::int64_t{1}, std::int64_t{2}, v / 3 + 1, v - 1}) {
      if (k < 1 || k >= v) continue;
      CHECK(sel.kth_largest(row.e.data(), v, k) == brute_kth(row.e, k));
    }
    for (const double p : {0.05, 0.5, 0.9, 0.999}) {
      for (const float tau0 : {0.0f, 0.01f}) {
        const float want = brute_top_p(row.e, tau0, p);
        CHECK(sel.top_p_threshold(row.e.data(), v, tau0, p) == want);
        CHECK(kernel_top_p(row.e, tau0, p) == want);
      }
    }
  }
}

TEST_CASE("sampling_select emulated kernel draws never leave the kept set nor hit a masked token, 1e7 draws",
          "[sampling]") {
  std::mt19937_64 gen(2026);
  sm::HostSelect sel;
  struct Params {
    std::int64_t top_k;
    double top_p;
    float min_p;
  };
  const Params params[] = {{0, 1.0, 0.0f}, {50, 1.0, 0.0f}, {0, 0.9, 0.0f}, {0, 1.0, 0.05f}, {40, 0.8, 0.02f}};
  std::int64_t draws = 0;
  std::int64_t boundary_draws = 0;
  std::int64_t compared = 0;
  for (int r = 0; r < 20; ++r) {
    const std::int64_t v = r % 2 == 0 ? 151936 : 32000;
    const Row row = make_row(gen, v, r % 4 == 0 ? 0.5 : 0.02, r % 3 == 0, true);
    for (const Params& p : params) {
      const float tau = sm::host_threshold(row.e.data(), v, p.top_k, p.top_p, p.min_p, sel);
      const KernelDraw kd(row.e, tau);
      REQUIRE(kd.total > 0);
      const auto check = [&](std::uint64_t w) {
        const std::int64_t id = kd.draw(w);
        REQUIRE(id >= 0);
        const auto j = static_cast<std::size_t>(id);
        REQUIRE(kept(row.e[j], tau));
        REQUIRE(std::isfinite(row.x[j]));
        ++draws;
      };
      // Every segment boundary, from both sides, and the extremes of the uniform.
      for (std::size_t t = 0; t < kd.start.size(); ++t) {
        for (const std::uint64_t b : {kd.start[t], kd.start[t] + kd.mine[t]}) {
          if (b >= kd.total) continue;
          const std::uint64_t w = w_for(kd.total, b);
          check(w);
          if (w > 0) check(w - 1);
          boundary_draws += 2;
        }
      }
      check(0);
      check(~std::uint64_t{0});
      check(~std::uint64_t{0} - 1);
      for (int i = 0; i < 100000; ++i) check(gen());
      // The emulated kernel draw equals the host's serial draw (ops.hpp's CPU path).
      for (int i = 0; i < 200; ++i) {
        const std::uint64_t w = i == 0 ? ~std::uint64_t{0} : gen();
        const auto [id, mass] = sm::host_draw(row.e.data(), v, tau, w);
        REQUIRE(mass == kd.total);
        REQUIRE(kd.draw(w) == id);
        ++compared;
      }
    }
  }
  INFO("draws " << draws << ", at boundaries " << boundary_draws << ", compared with the serial draw " << compared);
  REQUIRE(draws >= 10000000);
}

TEST_CASE("sampling_select draw frequencies follow the kept masses, an all-masked row has no mass", "[sampling]") {
  std::vector<float> x = {0.0f, 1.0f, -kInf, 2.0f, std::numeric_limits<float>::quiet_NaN(), 1.0f, -kInf};
  float m = -kInf;
  for (const float xv : x) m = std::max(m, sm::tempered(xv, 1.0f));
  std::vector<float> e(x.size());
  for (std::size_t j = 0; j < x.size(); ++j)
    e[j] = sm::weight_of(sm::tempered(x[j], 1.0f), m, [](float d) { return std::exp(d); });
  CHECK(e[2] == 0.0f);
  CHECK(e[4] == 0.0f);
  CHECK(e[6] == 0.0f);
  std::mt19937_64 gen(11);
  std::vector<std::int64_t> hist(x.size(), 0);
  constexpr int n = 1000000;
  for (int i = 0; i < n; ++i) ++hist[static_cast<std::size_t>(sm::host_draw(e.data(), 7, 0.0f, gen()).first)];
  double total = 0.0;
  for (const float w : e) total += w;
  for (std::size_t j = 0; j < x.size(); ++j) {
    const double p = e[j] / total;
    const double sigma = std::sqrt(n * p * (1 - p)) + 1e-9;
    INFO("token " << j << " count " << hist[j] << " expected " << n * p);
    CHECK(std::abs(static_cast<double>(hist[j]) - n * p) <= 5 * sigma + (p == 0 ? 0 : 1));
  }
  const std::vector<float> none(5, 0.0f);
  CHECK(sm::host_draw(none.data(), 5, 0.0f, 123).first == -1);
  // uniform_bits: [0, 1) onto [0, 2^64), monotone, the top of the double range below 2^64.
  CHECK(sm::uniform_bits(0.0) == 0);
  CHECK(sm::uniform_bits(0.5) == (std::uint64_t{1} << 63));
  CHECK(sm::uniform_bits(std::nextafter(1.0, 0.0)) == ~std::uint64_t{0} - 2047);
  // draw_point is the high word of the 128-bit product (checked against the compiler's 128-bit type).
  __extension__ typedef unsigned __int128 u128;
  std::mt19937_64 g2(5);
  for (int i = 0; i < 100000; ++i) {
    const std::uint64_t a = g2() >> (i % 40), b = g2();
    REQUIRE(sm::draw_point(a, b) == static_cast<std::uint64_t>((static_cast<u128>(a) * b) >> 64));
  }
}
