// kaizen/curriculum/linucb.hpp - LinUCB: a UCB bandit whose arms are described by feature vectors and
// whose mean gain is modelled as linear in them, so what is learned on one arm carries to similar arms
// (a difficulty level, a topic embedding, a one-hot of several categorical features, ...).
//
//   A = lambda I + sum x x^T,  b = sum g x      over observed (arm features x, gain g)
//   theta = A^{-1} b
//   index(a) = theta^T x_a + alpha * sqrt(x_a^T A^{-1} x_a)
//
// One shared theta for all arms (with one-hot features this is K independent ridge estimates, i.e. the
// "disjoint" model). Batches: sample(n) picks the arm with the highest index, then counts the pick as a
// "hallucinated" observation of that arm (its own bonus shrinks exactly as adding x x^T to A would,
// theta stays) before the next pick, so a batch spreads over arms that are still uncertain. The effect
// of a pick on the bonus of *other* arms with similar features is ignored, which keeps a step at
// O(K d^2 + n log K). Arms with identical features have identical indices: give each arm an identity
// feature (a one-hot) when they must be told apart. Draws are deterministic (ties go to the lower arm
// id); `rng` is unused. Defaults alpha = 1, lambda = 1. Small dense algebra is Eigen.
//
// References: L. Li, W. Chu, J. Langford, R. E. Schapire, "A Contextual-Bandit Approach to
// Personalized News Article Recommendation", WWW 2010 (arXiv 1003.0146). T. Desautels, A. Krause,
// J. Burdick, "Parallelizing Exploration-Exploitation Tradeoffs in Gaussian Process Bandit
// Optimization", JMLR 2014 (hallucinated batch updates).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

#include <kaizen/core/curriculum.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/curriculum/detail/common.hpp>

namespace kaizen::curriculum {

/// LinUCB settings.
struct LinUcbOptions {
  double alpha = 1.0;   ///< width of the confidence bonus, >= 0
  double lambda = 1.0;  ///< ridge regulariser (prior precision), > 0
};

/// LinUCB over arms given by the rows of `features` ([K, d], K >= 1, d >= 1, finite). Models
/// kaizen::Curriculum. probabilities() is one-hot on the highest index (split among exact ties).
/// Throws kaizen::Error on: no arms, d = 0, non-finite features, alpha < 0, lambda <= 0, unknown arm
/// ids, non-finite gains, size mismatch, add_arm with d' != d, a state of another kind.
class LinUcb {
 public:
  LinUcb(Eigen::MatrixXd features, LinUcbOptions options = {})
      : options_(options), features_(std::move(features)) {
    detail::check_arm_count("LinUcb", static_cast<std::size_t>(features_.rows()));
    KAIZEN_CHECK(features_.cols() > 0, "LinUcb: expected at least one feature per arm, got ",
                 features_.cols());
    KAIZEN_CHECK(features_.allFinite(), "LinUcb: expected finite arm features");
    check_options(options_);
    const auto d = features_.cols();
    gram_ = options_.lambda * Eigen::MatrixXd::Identity(d, d);
    moment_ = Eigen::VectorXd::Zero(d);
  }

  [[nodiscard]] std::vector<ArmId> sample(std::size_t n, Rng& /*rng*/) const {
    const Eigen::MatrixXd inverse = gram_.ldlt().solve(Eigen::MatrixXd::Identity(gram_.rows(), gram_.cols()));
    const Eigen::VectorXd theta = inverse * moment_;
    std::vector<double> means(num_arms()), widths(num_arms());
    for (Eigen::Index a = 0; a < features_.rows(); ++a) {
      const auto x = features_.row(a).transpose();
      means[static_cast<std::size_t>(a)] = theta.dot(x);
      widths[static_cast<std::size_t>(a)] = std::max(x.dot(inverse * x), 0.0);
    }
    // v virtual draws of arm a: x^T (A + v x x^T)^{-1} x = s / (1 + v s) with s = x^T A^{-1} x.
    return detail::optimistic_batch(num_arms(), n, [&](std::size_t a, double v) {
      return means[a] + options_.alpha * std::sqrt(widths[a] / (1.0 + v * widths[a]));
    });
  }

  void update(std::span<const ArmId> arms, std::span<const double> gains) {
    detail::check_update("LinUcb::update", arms, gains, static_cast<std::size_t>(features_.rows()));
    for (std::size_t i = 0; i < arms.size(); ++i) {
      const auto x = features_.row(static_cast<Eigen::Index>(arms[i])).transpose();
      gram_.noalias() += x * x.transpose();
      moment_.noalias() += gains[i] * x;
    }
  }

  [[nodiscard]] std::vector<double> probabilities() const {
    const Eigen::MatrixXd inverse = gram_.ldlt().solve(Eigen::MatrixXd::Identity(gram_.rows(), gram_.cols()));
    const Eigen::VectorXd theta = inverse * moment_;
    std::vector<double> scores(static_cast<std::size_t>(features_.rows()));
    for (Eigen::Index a = 0; a < features_.rows(); ++a) {
      const auto x = features_.row(a).transpose();
      scores[static_cast<std::size_t>(a)] =
          theta.dot(x) + options_.alpha * std::sqrt(std::max(x.dot(inverse * x), 0.0));
    }
    return detail::argmax_distribution(scores);
  }

  /// theta = A^{-1} b, the current linear model of the mean gain.
  [[nodiscard]] Eigen::VectorXd theta() const { return gram_.ldlt().solve(moment_); }
  [[nodiscard]] const Eigen::MatrixXd& features() const noexcept { return features_; }
  [[nodiscard]] std::size_t num_arms() const noexcept { return static_cast<std::size_t>(features_.rows()); }

  /// Appends an arm with the given features (length d) and returns its id.
  ArmId add_arm(std::span<const double> x) {
    KAIZEN_CHECK(static_cast<Eigen::Index>(x.size()) == features_.cols(), "LinUcb::add_arm: expected ",
                 features_.cols(), " features, got ", x.size());
    for (double v : x) KAIZEN_CHECK(std::isfinite(v), "LinUcb::add_arm: expected finite features, got ", v);
    features_.conservativeResize(features_.rows() + 1, Eigen::NoChange);
    for (std::size_t j = 0; j < x.size(); ++j)
      features_(features_.rows() - 1, static_cast<Eigen::Index>(j)) = x[j];
    return static_cast<ArmId>(features_.rows() - 1);
  }

  [[nodiscard]] nlohmann::json state() const {
    auto flat = [](const Eigen::MatrixXd& m) {
      std::vector<double> v(static_cast<std::size_t>(m.size()));
      Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(v.data(), m.rows(),
                                                                                         m.cols()) = m;
      return v;
    };
    return {{"kind", "linucb"},
            {"alpha", options_.alpha},
            {"lambda", options_.lambda},
            {"dimension", features_.cols()},
            {"features", flat(features_)},
            {"gram", flat(gram_)},
            {"moment", std::vector<double>(moment_.data(), moment_.data() + moment_.size())}};
  }

  void restore(const nlohmann::json& state) {
    constexpr const char* fn = "LinUcb::restore";
    detail::check_kind(fn, state, "linucb");
    LinUcbOptions options{detail::number_field(fn, state, "alpha"),
                          detail::number_field(fn, state, "lambda")};
    check_options(options);
    const double dim = detail::number_field(fn, state, "dimension");
    KAIZEN_CHECK(dim >= 1.0 && dim == std::floor(dim), fn, ": expected a positive integer dimension, got ",
                 dim);
    const auto d = static_cast<Eigen::Index>(dim);
    const std::vector<double> features = detail::vector_field(fn, state, "features");
    KAIZEN_CHECK(!features.empty() && static_cast<Eigen::Index>(features.size()) % d == 0, fn,
                 ": expected a non-empty [K, ", d, "] feature matrix, got ", features.size(), " values");
    const std::vector<double> gram = detail::vector_field(fn, state, "gram", d * d);
    const std::vector<double> moment = detail::vector_field(fn, state, "moment", d);
    using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    options_ = options;
    features_ =
        Eigen::Map<const RowMajor>(features.data(), static_cast<Eigen::Index>(features.size()) / d, d);
    gram_ = Eigen::Map<const RowMajor>(gram.data(), d, d);
    moment_ = Eigen::Map<const Eigen::VectorXd>(moment.data(), d);
  }

 private:
  static void check_options(const LinUcbOptions& o) {
    KAIZEN_CHECK(o.alpha >= 0.0 && std::isfinite(o.alpha), "LinUcb: expected alpha >= 0, got ", o.alpha);
    KAIZEN_CHECK(o.lambda > 0.0 && std::isfinite(o.lambda), "LinUcb: expected a ridge lambda > 0, got ",
                 o.lambda);
  }

  LinUcbOptions options_;
  Eigen::MatrixXd features_;
  Eigen::MatrixXd gram_;    // A
  Eigen::VectorXd moment_;  // b
};

}  // namespace kaizen::curriculum
