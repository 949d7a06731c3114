// kaizen/loop/checkpoint.hpp - save and restore everything a training loop needs to continue exactly:
// the policy's parameters, the optimiser's state, the loop's random engine, its step, and any JSON
// state (e.g. a curriculum's). A checkpoint is a directory:
//   parameters.pt   the policy's parameters() in order (torch::save of a tensor list)
//   optimizer.pt    the optimiser's state (torch::optim serialisation)
//   state.json      {"step", "rng", "extra"}
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/policy.hpp>
#include <kaizen/core/rng.hpp>

namespace kaizen::loop {

/// The loop-side state stored next to the tensors.
struct LoopState {
  std::int64_t step = 0;  ///< steps completed
  Rng rng;                ///< the loop's engine
  nlohmann::json extra;   ///< anything else (curriculum state, ...); null when unused
};

/// Writes a checkpoint of `policy`, `optimizer` and `state` into directory `dir` (created if needed).
/// Throws kaizen::Error when the files cannot be written.
template <Policy P>
void save_checkpoint(const std::filesystem::path& dir, P& policy, torch::optim::Optimizer& optimizer,
                     const LoopState& state) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  KAIZEN_CHECK(!ec, "save_checkpoint: cannot create the directory ", dir.string(), ": ", ec.message());
  std::vector<torch::Tensor> params;
  for (const torch::Tensor& p : std::vector<torch::Tensor>(policy.parameters())) params.push_back(p.detach().cpu());
  torch::save(params, (dir / "parameters.pt").string());
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  archive.save_to((dir / "optimizer.pt").string());
  const nlohmann::json meta = {{"step", state.step}, {"rng", save_rng(state.rng)}, {"extra", state.extra}};
  std::ofstream out(dir / "state.json");
  KAIZEN_CHECK(out.good(), "save_checkpoint: cannot write ", (dir / "state.json").string());
  out << meta.dump(2) << '\n';
  KAIZEN_CHECK(out.good(), "save_checkpoint: writing ", (dir / "state.json").string(), " failed");
}

/// Restores a checkpoint written by save_checkpoint into `policy` (same architecture) and `optimizer`
/// (built over policy.parameters()), and returns the loop state. Throws kaizen::Error on a missing
/// directory or file, or parameters whose count or shapes differ from the policy's.
template <Policy P>
[[nodiscard]] LoopState load_checkpoint(const std::filesystem::path& dir, P& policy, torch::optim::Optimizer& optimizer) {
  for (const char* name : {"parameters.pt", "optimizer.pt", "state.json"}) {
    KAIZEN_CHECK(std::filesystem::exists(dir / name), "load_checkpoint: ", (dir / name).string(), " does not exist");
  }
  std::vector<torch::Tensor> saved;
  torch::load(saved, (dir / "parameters.pt").string());
  std::vector<torch::Tensor> params = policy.parameters();
  KAIZEN_CHECK(saved.size() == params.size(), "load_checkpoint: the checkpoint has ", saved.size(),
               " parameter tensors but the policy has ", params.size());
  {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < params.size(); ++i) {
      KAIZEN_CHECK(saved[i].sizes() == params[i].sizes(), "load_checkpoint: parameter ", i, " has shape ",
                   saved[i].sizes(), " in the checkpoint but ", params[i].sizes(), " in the policy");
      params[i].copy_(saved[i]);
    }
  }
  torch::serialize::InputArchive archive;
  archive.load_from((dir / "optimizer.pt").string());
  optimizer.load(archive);
  std::ifstream in(dir / "state.json");
  nlohmann::json meta;
  try {
    in >> meta;
  } catch (const nlohmann::json::exception& e) {
    fail("load_checkpoint: ", (dir / "state.json").string(), " is not valid JSON: ", e.what());
  }
  LoopState state;
  state.step = meta.at("step").get<std::int64_t>();
  restore_rng(state.rng, meta.at("rng").get<std::string>());
  state.extra = meta.value("extra", nlohmann::json());
  return state;
}

}  // namespace kaizen::loop
