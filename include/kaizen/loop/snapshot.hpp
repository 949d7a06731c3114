// kaizen/loop/snapshot.hpp - a frozen copy of a policy's parameters (the base model that ReST-EM and STaR
// restart from every iteration, a reference or judge snapshot), restorable into the same architecture and
// saved next to a checkpoint so a resumed run restarts from the same base.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/policy.hpp>

namespace kaizen::loop {

/// Detached copies of parameters, in policy.parameters() order.
struct ParameterSnapshot {
  std::vector<torch::Tensor> tensors;
  [[nodiscard]] bool empty() const noexcept { return tensors.empty(); }
};

/// Copies `policy`'s parameters (detached, cloned, on their device).
template <Policy P>
[[nodiscard]] ParameterSnapshot take_snapshot(P& policy) {
  ParameterSnapshot s;
  for (const torch::Tensor& p : std::vector<torch::Tensor>(policy.parameters())) s.tensors.push_back(p.detach().clone());
  return s;
}

/// Writes the snapshot's values into `policy`'s parameters. Throws kaizen::Error when the count or a shape
/// differs (`who` names the caller).
template <Policy P>
void restore_snapshot(P& policy, const ParameterSnapshot& snapshot, const char* who = "restore_snapshot") {
  std::vector<torch::Tensor> params = policy.parameters();
  KAIZEN_CHECK(snapshot.tensors.size() == params.size(), who, ": the snapshot has ", snapshot.tensors.size(),
               " parameter tensors but the policy has ", params.size());
  torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < params.size(); ++i) {
    KAIZEN_CHECK(snapshot.tensors[i].sizes() == params[i].sizes(), who, ": parameter ", i, " has shape ",
                 snapshot.tensors[i].sizes(), " in the snapshot but ", params[i].sizes(), " in the policy");
    params[i].copy_(snapshot.tensors[i]);
  }
}

/// Saves the snapshot to `file` (torch::save of a CPU tensor list); creates the parent directory.
inline void save_snapshot(const std::filesystem::path& file, const ParameterSnapshot& snapshot) {
  std::error_code ec;
  if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path(), ec);
  KAIZEN_CHECK(!ec, "save_snapshot: cannot create ", file.parent_path().string(), ": ", ec.message());
  std::vector<torch::Tensor> cpu;
  for (const torch::Tensor& t : snapshot.tensors) cpu.push_back(t.cpu());
  torch::save(cpu, file.string());
}

/// Loads a snapshot written by save_snapshot, moved to `device`. Throws kaizen::Error when the file is missing.
[[nodiscard]] inline ParameterSnapshot load_snapshot(const std::filesystem::path& file, torch::Device device = torch::kCPU) {
  KAIZEN_CHECK(std::filesystem::exists(file), "load_snapshot: ", file.string(), " does not exist");
  ParameterSnapshot s;
  torch::load(s.tensors, file.string());
  for (torch::Tensor& t : s.tensors) t = t.to(device);
  return s;
}

}  // namespace kaizen::loop
