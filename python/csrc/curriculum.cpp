// python/csrc/curriculum.cpp - the module kaizen._curriculum behind kaizen.curriculum: SEC and the bandits of include/kaizen/curriculum/ bound for
// Python (pybind11, no LibTorch in this translation unit). Each Python object owns one curriculum and its
// kaizen::Rng (mt19937_64, seeded at construction); state_json() / restore_json() carry the curriculum's
// own state() (nlohmann::json, dumped as text) and rng_state() / set_rng_state() the engine's state in the
// standard library's textual form, so a restored object continues with bit-equal draws.
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/curriculum/discounted_ucb.hpp>
#include <kaizen/curriculum/epsilon_greedy.hpp>
#include <kaizen/curriculum/exp3.hpp>
#include <kaizen/curriculum/learnability.hpp>
#include <kaizen/curriculum/linucb.hpp>
#include <kaizen/curriculum/sec.hpp>
#include <kaizen/curriculum/sliding_window_ucb.hpp>
#include <kaizen/curriculum/thompson.hpp>
#include <kaizen/curriculum/ucb1.hpp>

namespace py = pybind11;

namespace kaizen::python {
namespace {

namespace cur = kaizen::curriculum;

/// One curriculum and its engine.
template <class C>
struct Bound {
  C curriculum;
  Rng rng;

  std::vector<ArmId> sample(std::int64_t n) {
    KAIZEN_CHECK(n >= 0, "curriculum.sample: expected n >= 0, got ", n);
    return curriculum.sample(static_cast<std::size_t>(n), rng);
  }
  void update(const std::vector<ArmId>& arms, const std::vector<double>& gains) { curriculum.update(arms, gains); }
  std::string state_json() const { return curriculum.state().dump(); }
  void restore_json(const std::string& text) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      fail("curriculum.load_state_dict: expected the JSON of a state, got a parse error: ", e.what());
    }
    curriculum.restore(j);
  }
  std::string rng_state() const {
    std::ostringstream os;
    os << rng;
    return os.str();
  }
  void set_rng_state(const std::string& text) {
    std::istringstream is(text);
    Rng r;
    is >> r;
    KAIZEN_CHECK(!is.fail(), "curriculum.load_state_dict: expected an mt19937_64 engine state in \"rng\"");
    rng = r;
  }
};

template <class C>
py::class_<Bound<C>> bind_common(py::module_& m, const char* name) {
  py::class_<Bound<C>> cls(m, name);
  cls.def("sample", &Bound<C>::sample, py::arg("n"))
      .def("update", &Bound<C>::update, py::arg("arms"), py::arg("gains"))
      .def("probabilities", [](const Bound<C>& b) { return b.curriculum.probabilities(); })
      .def("state_json", &Bound<C>::state_json)
      .def("restore_json", &Bound<C>::restore_json)
      .def("rng_state", &Bound<C>::rng_state)
      .def("set_rng_state", &Bound<C>::set_rng_state)
      .def_property_readonly("num_arms", [](const Bound<C>& b) { return b.curriculum.num_arms(); });
  if constexpr (requires(C& c) { c.add_arm(); }) {
    cls.def("add_arm", [](Bound<C>& b) { return b.curriculum.add_arm(); });
  }
  return cls;
}

std::size_t arms_of(std::int64_t n) {
  KAIZEN_CHECK(n >= 1, "curriculum: expected num_arms >= 1, got ", n);
  return static_cast<std::size_t>(n);
}

std::size_t count_of(const char* what, std::int64_t n) {
  KAIZEN_CHECK(n >= 1, "curriculum: expected ", what, " >= 1, got ", n);
  return static_cast<std::size_t>(n);
}

}  // namespace
}  // namespace kaizen::python

PYBIND11_MODULE(_curriculum, m) {
  using namespace kaizen::python;
  using namespace kaizen;
  m.doc() = "kaizen::curriculum bound for Python (see the kaizen.curriculum module for the documented API)";
  using std::uint64_t;
  bind_common<cur::SelfEvolvingCurriculum>(m, "SelfEvolvingCurriculum")
      .def(py::init([](std::int64_t n, double alpha, double tau, bool decay, uint64_t seed) {
             return Bound<cur::SelfEvolvingCurriculum>{
                 cur::SelfEvolvingCurriculum(arms_of(n), {.alpha = alpha, .tau = tau, .decay_unsampled = decay}),
                 Rng(seed)};
           }),
           py::arg("num_arms"), py::arg("alpha"), py::arg("tau"), py::arg("decay_unsampled"), py::arg("seed"))
      .def("values", [](const Bound<cur::SelfEvolvingCurriculum>& b) { return b.curriculum.values(); });
  bind_common<cur::Ucb1>(m, "Ucb1").def(
      py::init([](std::int64_t n, double c, uint64_t seed) {
        return Bound<cur::Ucb1>{cur::Ucb1(arms_of(n), {.exploration = c}), Rng(seed)};
      }),
      py::arg("num_arms"), py::arg("exploration"), py::arg("seed"));
  bind_common<cur::DiscountedUcb>(m, "DiscountedUcb").def(
      py::init([](std::int64_t n, double gamma, double c, uint64_t seed) {
        return Bound<cur::DiscountedUcb>{cur::DiscountedUcb(arms_of(n), {.gamma = gamma, .exploration = c}),
                                         Rng(seed)};
      }),
      py::arg("num_arms"), py::arg("gamma"), py::arg("exploration"), py::arg("seed"));
  bind_common<cur::SlidingWindowUcb>(m, "SlidingWindowUcb").def(
      py::init([](std::int64_t n, std::int64_t window, double c, uint64_t seed) {
        return Bound<cur::SlidingWindowUcb>{
            cur::SlidingWindowUcb(arms_of(n), {.window = count_of("window", window), .exploration = c}), Rng(seed)};
      }),
      py::arg("num_arms"), py::arg("window"), py::arg("exploration"), py::arg("seed"));
  bind_common<cur::EpsilonGreedy>(m, "EpsilonGreedy").def(
      py::init([](std::int64_t n, double epsilon, double decay, uint64_t seed) {
        return Bound<cur::EpsilonGreedy>{cur::EpsilonGreedy(arms_of(n), {.epsilon = epsilon, .decay = decay}),
                                         Rng(seed)};
      }),
      py::arg("num_arms"), py::arg("epsilon"), py::arg("decay"), py::arg("seed"));
  bind_common<cur::Exp3>(m, "Exp3").def(
      py::init([](std::int64_t n, double gamma, double alpha, uint64_t seed) {
        return Bound<cur::Exp3>{cur::Exp3(arms_of(n), {.gamma = gamma, .alpha = alpha}), Rng(seed)};
      }),
      py::arg("num_arms"), py::arg("gamma"), py::arg("alpha"), py::arg("seed"));
  bind_common<cur::LearnabilitySampler>(m, "LearnabilitySampler").def(
      py::init([](std::int64_t n, double rate, double prior, double floor, uint64_t seed) {
        return Bound<cur::LearnabilitySampler>{
            cur::LearnabilitySampler(arms_of(n), {.rate = rate, .prior = prior, .floor = floor}), Rng(seed)};
      }),
      py::arg("num_arms"), py::arg("rate"), py::arg("prior"), py::arg("floor"), py::arg("seed"));
  bind_common<cur::BetaThompson>(m, "BetaThompson").def(
      py::init([](std::int64_t n, double a, double b, std::int64_t trials, uint64_t seed) {
        return Bound<cur::BetaThompson>{
            cur::BetaThompson(arms_of(n), {.prior_alpha = a, .prior_beta = b,
                                           .probability_trials = count_of("probability_trials", trials)}),
            Rng(seed)};
      }),
      py::arg("num_arms"), py::arg("prior_alpha"), py::arg("prior_beta"), py::arg("probability_trials"),
      py::arg("seed"));
  bind_common<cur::GaussianThompson>(m, "GaussianThompson").def(
      py::init([](std::int64_t n, double mean, double var, double noise, std::int64_t trials, uint64_t seed) {
        return Bound<cur::GaussianThompson>{
            cur::GaussianThompson(arms_of(n), {.prior_mean = mean, .prior_variance = var, .noise_variance = noise,
                                               .probability_trials = count_of("probability_trials", trials)}),
            Rng(seed)};
      }),
      py::arg("num_arms"), py::arg("prior_mean"), py::arg("prior_variance"), py::arg("noise_variance"),
      py::arg("probability_trials"), py::arg("seed"));
  bind_common<cur::LinUcb>(m, "LinUcb").def(
      py::init([](const std::vector<std::vector<double>>& features, double alpha, double lambda, uint64_t seed) {
        KAIZEN_CHECK(!features.empty(), "LinUcb: expected features [K, d] with K >= 1, got no rows");
        const auto d = static_cast<Eigen::Index>(features[0].size());
        Eigen::MatrixXd f(static_cast<Eigen::Index>(features.size()), d);
        for (std::size_t i = 0; i < features.size(); ++i) {
          KAIZEN_CHECK(static_cast<Eigen::Index>(features[i].size()) == d, "LinUcb: expected every feature row of ",
                       d, " values, row ", i, " has ", features[i].size());
          for (Eigen::Index j = 0; j < d; ++j) f(static_cast<Eigen::Index>(i), j) = features[i][static_cast<std::size_t>(j)];
        }
        return Bound<cur::LinUcb>{cur::LinUcb(std::move(f), {.alpha = alpha, .lambda = lambda}), Rng(seed)};
      }),
      py::arg("features"), py::arg("alpha"), py::arg("lambda_"), py::arg("seed"));
}
