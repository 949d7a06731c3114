// kaizen/policy_gradient/detail/checks.hpp - input validation shared by the policy-gradient headers.
// Every check throws kaizen::Error "<function>: expected ..., got ..." naming shapes, dtypes, devices,
// or the first offending row/column and value. Private: not part of the public API.
#pragma once

#include <cstdint>
#include <string_view>

#include <torch/types.h>

#include <kaizen/core/error.hpp>

namespace kaizen::policy_gradient::detail {

[[nodiscard]] inline bool is_real(const torch::Tensor& t) {
  return t.scalar_type() == torch::kFloat32 || t.scalar_type() == torch::kFloat64;
}

/// A defined float32/float64 tensor.
inline void check_real(std::string_view fn, std::string_view name, const torch::Tensor& t) {
  KAIZEN_CHECK(t.defined(), fn, ": expected a tensor for `", name, "`, got an undefined tensor");
  KAIZEN_CHECK(is_real(t), fn, ": expected `", name, "` to be float32 or float64, got ", t.scalar_type());
}

/// `t` is defined, has exactly `sizes`, the dtype and the device of `like`.
inline void check_like(std::string_view fn, std::string_view name, const torch::Tensor& t,
                       const torch::Tensor& like, std::string_view like_name) {
  check_real(fn, name, t);
  KAIZEN_CHECK(t.sizes() == like.sizes(), fn, ": expected `", name, "` of shape ", like.sizes(), " (as `",
               like_name, "`), got ", t.sizes());
  KAIZEN_CHECK(t.scalar_type() == like.scalar_type(), fn, ": expected `", name, "` of dtype ",
               like.scalar_type(), " (as `", like_name, "`), got ", t.scalar_type());
  KAIZEN_CHECK(t.device() == like.device(), fn, ": expected `", name, "` on ", like.device(), " (as `",
               like_name, "`), got ", t.device());
}

/// A [B, T] mask (bool or floating) matching `like`'s shape and device, returned as `like`'s dtype.
[[nodiscard]] inline torch::Tensor mask_as(std::string_view fn, const torch::Tensor& mask, const torch::Tensor& like) {
  KAIZEN_CHECK(mask.defined(), fn, ": expected a mask, got an undefined tensor");
  KAIZEN_CHECK(mask.scalar_type() == torch::kBool || torch::isFloatingType(mask.scalar_type()), fn,
               ": expected `mask` to be bool or floating, got ", mask.scalar_type());
  KAIZEN_CHECK(mask.sizes() == like.sizes(), fn, ": expected `mask` of shape ", like.sizes(), ", got ",
               mask.sizes());
  KAIZEN_CHECK(mask.device() == like.device(), fn, ": expected `mask` on ", like.device(), ", got ",
               mask.device());
  return mask.to(like.scalar_type());
}

/// Every row of a [B, T] mask has at least one valid token.
inline void check_rows_nonempty(std::string_view fn, const torch::Tensor& mask) {
  const torch::Tensor empty = mask.sum(1) <= 0;
  if (empty.any().item<bool>()) {
    const auto row = empty.nonzero()[0][0].item<std::int64_t>();
    fail(fn, ": expected every row to have a valid token, got row ", row, " with none (of ", mask.size(0),
         " rows; drop such rows before the loss)");
  }
}

/// `t` is finite wherever `valid` (same shape, or undefined meaning everywhere) is non-zero.
inline void check_finite(std::string_view fn, std::string_view name, const torch::Tensor& t,
                         const torch::Tensor& valid = {}) {
  torch::Tensor bad = torch::isfinite(t).logical_not();
  if (valid.defined()) bad = bad.logical_and(valid != 0);
  if (bad.any().item<bool>()) {
    const torch::Tensor where = bad.nonzero()[0];
    const torch::Tensor detached = t.detach();
    if (t.dim() == 2) {
      const auto r = where[0].item<std::int64_t>(), c = where[1].item<std::int64_t>();
      fail(fn, ": expected finite `", name, "`, got ", detached[r][c].item<double>(), " at row ", r, ", column ", c);
    }
    const auto i = where[0].item<std::int64_t>();
    fail(fn, ": expected finite `", name, "`, got ", detached.reshape({-1})[i].item<double>(), " at index ", i);
  }
}

}  // namespace kaizen::policy_gradient::detail
