// kaizen/distributed/data_parallel.hpp - the pieces of data parallelism every loop uses, over any Communicator:
//
//   GradientBuckets     the gradients of a parameter list, all-reduced in buckets of about `bucket_bytes`: the
//                       parameters (in reverse order, as backward produces their gradients) are cut into
//                       buckets of one dtype and device; each bucket owns one persistent flat buffer and every
//                       member's .grad() is a view of it (PyTorch DDP's gradient_as_bucket_view), so a bucket is
//                       all-reduced as one collective in place, with no copy in or out.
//                       A parameter without a gradient on this rank contributes zeros (and receives the sum).
//                       Overlapped with backward: arm() before backward zeroes the buffers and sets the views as
//                       .grad(), so backward's gradient accumulation (in place into a defined .grad()) writes
//                       into the buckets; a hook after each parameter's accumulation (a post-hook on its
//                       AccumulateGrad node, as DDP's reducer registers) counts it, and a bucket's all-reduce
//                       starts (Communicator::start_all_reduce) once it and every earlier bucket are complete, so
//                       all ranks start the same collectives in the same order while backward goes on; finish()
//                       after backward starts the rest and waits: the sums are then in .grad().
//                       The buffers stay allocated for the object's life (one gradient-sized copy of memory, which
//                       the gradients themselves then use).
//   parameter_hash      FNV-1a 64 over the raw bytes of every parameter, in order
//   check_same_parameters  all-gathers the hash and throws kaizen::Error naming the ranks whose parameters
//                       differ from rank 0's (run after each step in debug builds; callable anywhere)
//   encode / decode     Completion, Prompt, double and int64 lists to CBOR bytes and back (exact for doubles
//                       and float log-probs), for all_gather of rollouts and metrics
//   concat_gathered     the tensors [n_r, ...] each rank holds, concatenated in rank order on every rank
//
// References: Li et al. 2020, "PyTorch Distributed: Experiences on Accelerating Data Parallel Training"
// (gradient bucketing, VLDB 13(12), arXiv 2006.15704); RFC 8949 (CBOR).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/distributed/communicator.hpp>

namespace kaizen::distributed {

/// Gradient all-reduce in buckets (see the top of the file).
class GradientBuckets {
 public:
  static constexpr std::int64_t kDefaultBucketBytes = 25LL << 20;  // as PyTorch DDP's default

  /// Buckets over `params` (kept by reference to their storage), each at most `bucket_bytes` unless one
  /// parameter alone is larger; allocates each bucket's flat buffer (the gradients' storage from then on).
  /// Throws kaizen::Error on bucket_bytes <= 0 or an undefined parameter.
  GradientBuckets(Communicator& comm, std::vector<torch::Tensor> params, std::int64_t bucket_bytes = kDefaultBucketBytes)
      : comm_(&comm), params_(std::move(params)), where_(params_.size()), views_(params_.size()),
        ready_(params_.size(), 0) {
    KAIZEN_CHECK(bucket_bytes > 0, "GradientBuckets: bucket_bytes must be > 0, got ", bucket_bytes);
    Bucket current;
    std::int64_t bytes = 0;
    for (std::size_t k = params_.size(); k-- > 0;) {
      const torch::Tensor& p = params_[k];
      KAIZEN_CHECK(p.defined(), "GradientBuckets: parameter ", k, " is undefined");
      const std::int64_t b = p.numel() * static_cast<std::int64_t>(p.element_size());
      const bool compatible = current.members.empty() ||
                              (params_[current.members.front()].scalar_type() == p.scalar_type() &&
                               params_[current.members.front()].device() == p.device());
      if (!current.members.empty() && (!compatible || bytes + b > bucket_bytes)) {
        buckets_.push_back(std::move(current));
        current = Bucket{};
        bytes = 0;
      }
      where_[k] = {buckets_.size(), current.numel};
      current.members.push_back(k);
      current.numel += p.numel();
      bytes += b;
    }
    if (!current.members.empty()) buckets_.push_back(std::move(current));
    torch::NoGradGuard no_grad;
    for (Bucket& bucket : buckets_) {
      const torch::Tensor& first = params_[bucket.members.front()];
      bucket.flat = torch::zeros({bucket.numel}, first.options().requires_grad(false));
      // Plain tensors over the buffer's memory (each holds the buffer alive), not autograd views: the optimisers'
      // zero_grad() detaches .grad() in place, which a view refuses.
      for (std::size_t k : bucket.members) {
        const std::int64_t offset = where_[k].offset * static_cast<std::int64_t>(bucket.flat.element_size());
        views_[k] = torch::from_blob(static_cast<char*>(bucket.flat.data_ptr()) + offset, params_[k].sizes(),
                                     [keep = bucket.flat](void*) { (void)keep; }, bucket.flat.options());
      }
    }
  }
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;
  ~GradientBuckets() {
    for (auto& [accumulator, key] : hooks_) accumulator->del_post_hook(key);
  }

  [[nodiscard]] std::size_t bucket_count() const noexcept { return buckets_.size(); }
  /// Parameter indices of bucket `b`, in the order they are packed.
  [[nodiscard]] const std::vector<std::size_t>& bucket(std::size_t b) const { return buckets_.at(b).members; }
  /// The flat buffer of bucket `b` (every member's .grad() is a view of it once attached).
  [[nodiscard]] const torch::Tensor& buffer(std::size_t b) const { return buckets_.at(b).flat; }
  /// Whether parameter `k`'s .grad() is its view into its bucket's buffer.
  [[nodiscard]] bool attached(std::size_t k) const {
    const torch::Tensor& g = params_.at(k).grad();
    return g.defined() && g.data_ptr() == views_[k].data_ptr() && g.sizes() == views_[k].sizes();
  }

  /// All-reduces every parameter's .grad() with `op` (sum for a loss normalised over the global batch, mean
  /// for one normalised per rank), one collective per bucket, in place on the buffers; afterwards every rank
  /// holds the same gradients. A gradient that is not yet a view of its bucket is copied in once and replaced
  /// by the view (an undefined one by zeros); from then on this costs no copy.
  void all_reduce(ReduceOp op = ReduceOp::sum) {
    KAIZEN_CHECK(!armed_, "GradientBuckets::all_reduce: armed for backward; call finish() instead");
    torch::NoGradGuard no_grad;
    for (std::size_t k = 0; k < params_.size(); ++k) {
      if (attached(k)) continue;
      torch::Tensor& p = params_[k];
      if (p.grad().defined()) views_[k].copy_(p.grad());
      else views_[k].zero_();
      p.mutable_grad() = views_[k];
    }
    for (Bucket& bucket : buckets_) comm_->all_reduce(bucket.flat, op);
  }

  /// Overlap mode, step 1 (before backward): zeroes the buckets and makes every .grad() its view, so backward
  /// accumulates straight into the buffers; a hook after each parameter's accumulation starts a bucket's
  /// all-reduce once it and every earlier bucket are complete. A .grad() that is defined and not such a view
  /// (a gradient this object did not make) is an error: zero the gradients first (optimizer.zero_grad()).
  /// One backward per arm(): a second gradient for a parameter whose bucket was started throws.
  void arm(ReduceOp op = ReduceOp::sum) {
    KAIZEN_CHECK(!armed_, "GradientBuckets::arm: already armed; call finish() after backward");
    if (!hooked_) install_hooks();
    for (std::size_t k = 0; k < params_.size(); ++k)
      KAIZEN_CHECK(!params_[k].grad().defined() || attached(k), "GradientBuckets::arm: parameter ", k,
                   " already has a gradient; zero the gradients with set_to_none (optimizer.zero_grad()) before "
                   "backward");
    torch::NoGradGuard no_grad;
    for (Bucket& b : buckets_) {
      b.flat.zero_();
      b.ready = 0;
      b.started = false;
    }
    for (std::size_t k = 0; k < params_.size(); ++k) {
      ready_[k] = 0;
      params_[k].mutable_grad() = views_[k];
    }
    op_ = op;
    next_ = 0;
    waits_.clear();
    armed_ = true;
  }

  /// Overlap mode, step 2 (after backward, or instead of it on a rank with nothing to back-propagate): starts the
  /// buckets not yet started (missing gradients are the zeros arm() wrote) and waits for all; the sums are then in
  /// every parameter's .grad() (views of the buffers), with no copy.
  void finish() {
    KAIZEN_CHECK(armed_, "GradientBuckets::finish: not armed; call arm() before backward");
    armed_ = false;
    while (next_ < buckets_.size()) start(next_++);
    for (auto& w : waits_) w();
    waits_.clear();
    for (std::size_t k = 0; k < params_.size(); ++k)
      KAIZEN_CHECK(attached(k), "GradientBuckets::finish: the .grad() of parameter ", k, " was replaced during "
                   "backward (a hook or a gradient that does not accumulate in place); its sum is lost");
  }

 private:
  struct Bucket {
    std::vector<std::size_t> members;
    std::int64_t numel = 0;
    torch::Tensor flat;      // the bucket's buffer: its members' gradients are views of it
    std::size_t ready = 0;   // overlap mode: members whose gradient was accumulated
    bool started = false;    // overlap mode: its all-reduce was started
  };
  struct Place {
    std::size_t bucket = 0;
    std::int64_t offset = 0;
  };

  void install_hooks() {
    hooked_ = true;
    for (std::size_t k = 0; k < params_.size(); ++k) {
      if (!params_[k].requires_grad()) continue;
      std::shared_ptr<torch::autograd::Node> accumulator = torch::autograd::impl::grad_accumulator(params_[k]);
      KAIZEN_CHECK(accumulator != nullptr, "GradientBuckets: parameter ", k, " is not a leaf tensor that requires "
                   "grad; bucket the parameters of a model");
      const std::uintptr_t key = accumulator->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
          [this, k](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
            on_accumulated(k);
            return outputs;
          }));
      hooks_.emplace_back(std::move(accumulator), key);  // kept alive, so every graph uses this accumulator
    }
  }
  void on_accumulated(std::size_t k) {
    if (!armed_) return;
    Bucket& b = buckets_[where_[k].bucket];
    KAIZEN_CHECK(!b.started, "GradientBuckets: parameter ", k, " received a gradient after its bucket's all-reduce "
                 "started; run one backward between arm() and finish()");
    if (ready_[k]++ == 0) ++b.ready;
    while (next_ < buckets_.size() && buckets_[next_].ready == buckets_[next_].members.size()) start(next_++);
  }
  void start(std::size_t b) {
    buckets_[b].started = true;
    waits_.push_back(comm_->start_all_reduce(buckets_[b].flat, op_));
  }

  Communicator* comm_;
  std::vector<torch::Tensor> params_;
  std::vector<Place> where_;
  std::vector<torch::Tensor> views_;  // per parameter: its gradient's place in its bucket's buffer
  std::vector<std::uint8_t> ready_;   // overlap mode: per parameter, accumulated in this backward
  std::vector<Bucket> buckets_;
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, std::uintptr_t>> hooks_;
  std::vector<std::function<void()>> waits_;
  ReduceOp op_ = ReduceOp::sum;
  std::size_t next_ = 0;
  bool armed_ = false;
  bool hooked_ = false;
};

/// FNV-1a 64 of the raw bytes of every tensor, in order (CPU copies of device tensors).
[[nodiscard]] inline std::uint64_t parameter_hash(std::span<const torch::Tensor> params) {
  std::uint64_t h = 1469598103934665603ULL;
  for (const torch::Tensor& p : params) {
    const torch::Tensor t = p.detach().cpu().contiguous();
    const auto* bytes = static_cast<const std::uint8_t*>(t.data_ptr());
    const auto n = static_cast<std::size_t>(t.numel()) * t.element_size();
    for (std::size_t i = 0; i < n; ++i) {
      h ^= bytes[i];
      h *= 1099511628211ULL;
    }
  }
  return h;
}

/// Throws kaizen::Error naming every rank whose parameter hash differs from rank 0's (`who` names the caller).
inline void check_same_parameters(Communicator& comm, std::span<const torch::Tensor> params,
                                  std::string_view who = "check_same_parameters") {
  const std::uint64_t mine = parameter_hash(params);
  std::vector<std::uint8_t> blob(sizeof mine);
  std::memcpy(blob.data(), &mine, sizeof mine);
  const Blobs all = comm.all_gather(std::span<const std::uint8_t>(blob));
  std::string differ;
  std::uint64_t root = 0;
  std::memcpy(&root, all.at(0).data(), sizeof root);
  for (std::size_t r = 1; r < all.size(); ++r) {
    std::uint64_t h = 0;
    KAIZEN_CHECK(all[r].size() == sizeof h, who, ": rank ", r, " sent a ", all[r].size(), "-byte hash");
    std::memcpy(&h, all[r].data(), sizeof h);
    if (h != root) differ += (differ.empty() ? "" : ", ") + std::to_string(r);
  }
  KAIZEN_CHECK(differ.empty(), who, ": the parameters of rank ", differ, " differ from rank 0's (hash ", root,
               ") after the same updates; the ranks no longer train one model");
}

// --- bytes for all_gather --------------------------------------------------------------------------------------

[[nodiscard]] inline nlohmann::json to_json(const Completion& c) {
  return {{"t", c.tokens}, {"l", c.logprobs}, {"f", static_cast<int>(c.finish)}, {"x", c.text}};
}
[[nodiscard]] inline Completion completion_from_json(const nlohmann::json& j) {
  Completion c;
  c.tokens = j.at("t").get<std::vector<TokenId>>();
  c.logprobs = j.at("l").get<std::vector<float>>();
  c.finish = static_cast<FinishReason>(j.at("f").get<int>());
  c.text = j.at("x").get<std::string>();
  return c;
}

/// CBOR bytes of a JSON value (doubles and floats round-trip exactly).
[[nodiscard]] inline std::vector<std::uint8_t> encode(const nlohmann::json& j) { return nlohmann::json::to_cbor(j); }
[[nodiscard]] inline nlohmann::json decode(std::span<const std::uint8_t> bytes) {
  try {
    return nlohmann::json::from_cbor(bytes.begin(), bytes.end());
  } catch (const nlohmann::json::exception& e) {
    fail("distributed::decode: a gathered blob of ", bytes.size(), " bytes is not valid CBOR: ", e.what());
  }
}

/// Every rank's JSON value, in rank order.
[[nodiscard]] inline std::vector<nlohmann::json> all_gather_json(Communicator& comm, const nlohmann::json& mine) {
  const std::vector<std::uint8_t> bytes = encode(mine);
  const Blobs all = comm.all_gather(std::span<const std::uint8_t>(bytes));
  std::vector<nlohmann::json> out;
  out.reserve(all.size());
  for (const auto& b : all) out.push_back(decode(std::span<const std::uint8_t>(b)));
  return out;
}

/// Concatenates along dim 0 the tensor each rank holds (same dtype and trailing shape on every rank; the first
/// dimension may differ, 0 included). Every rank gets the whole, on `mine`'s device.
[[nodiscard]] inline torch::Tensor concat_gathered(Communicator& comm, const torch::Tensor& mine) {
  KAIZEN_CHECK(mine.defined() && mine.dim() >= 1, "concat_gathered: expected a tensor with at least one dimension");
  const torch::Tensor cpu = mine.detach().cpu().contiguous();
  const auto* p = static_cast<const std::uint8_t*>(cpu.data_ptr());
  const Blobs all = comm.all_gather(
      std::span<const std::uint8_t>(p, static_cast<std::size_t>(cpu.numel()) * cpu.element_size()));
  std::int64_t row = cpu.element_size();
  for (std::int64_t d = 1; d < cpu.dim(); ++d) row *= cpu.size(d);
  std::vector<torch::Tensor> parts;
  for (std::size_t r = 0; r < all.size(); ++r) {
    const auto bytes = static_cast<std::int64_t>(all[r].size());
    KAIZEN_CHECK(row == 0 || bytes % row == 0, "concat_gathered: rank ", r, " sent ", bytes,
                 " bytes, not a whole number of rows of ", row, " bytes");
    std::vector<std::int64_t> shape = cpu.sizes().vec();
    shape[0] = row == 0 ? 0 : bytes / row;
    torch::Tensor t = torch::empty(shape, cpu.options());
    if (bytes > 0) std::memcpy(t.data_ptr(), all[r].data(), static_cast<std::size_t>(bytes));
    parts.push_back(t);
  }
  return torch::cat(parts).to(mine.device());
}

}  // namespace kaizen::distributed
