// GRPO data-parallel over c10d Gloo on 127.0.0.1 against the one-process run: 2 ranks (this program started again
// as each rank) run 4 steps of GRPO with dynamic sampling and refills, two epochs of shuffled two-group
// mini-batches, a reference KL and a self-evolving curriculum; the one-process reference runs the same config
// with a SingleProcess communicator in the parent. Rollout-derived values (rewards, lengths, dropped groups) and
// the curriculum's state, which is a function of the group advantages, must match exactly; parameters within a
// measured tolerance (summation order); every rank's parameters identical. Then 3 ranks resume from rank 0's
// checkpoint written by a 2-rank run at step 2 and must continue the same run.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/curriculum/sec.hpp>
#include <kaizen/distributed/c10d.hpp>
#include <kaizen/distributed/data_parallel.hpp>
#include <kaizen/distributed/single_process.hpp>
#include <kaizen/loop/grpo.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>
#include <kaizen/policy_gradient/options.hpp>

#include "loop/preference_loop_support.hpp"
#include "spawn.hpp"

namespace {

namespace kd = kaizen::distributed;
namespace pg = kaizen::policy_gradient;
namespace fs = std::filesystem;
using kaizen::lm::LlamaModel;
using kaizen_test::preference_loops::DigitFraction;
using kaizen_test::preference_loops::Setup;

const kaizen::curriculum::SecOptions kSec{.alpha = 0.5, .tau = 0.3};

kaizen::loop::GrpoConfig base_config(const Setup& s) {
  kaizen::loop::GrpoConfig c{.steps = 4, .prompts_per_step = 4, .group_size = 3, .epochs = 2,
                             .minibatch_groups = 2, .learning_rate = 5e-3, .warmup_steps = 2, .weight_decay = 0.01,
                             .sampling = s.sampling(), .dynamic_sampling = true, .max_refill_rounds = 1, .seed = 17,
                             .collate = s.collate()};
  return c;
}

struct RunOutput {
  std::vector<torch::Tensor> params;
  std::vector<nlohmann::json> history;
  nlohmann::json curriculum;
};

/// One GRPO run of `steps` over `comm` (resuming from `resume` when non-empty, checkpointing to `ckpt` when
/// non-empty), from the same initial weights on every rank.
RunOutput run_grpo(kd::Communicator& comm, std::int64_t steps, const fs::path& resume, const fs::path& ckpt,
                   int victim = -1) {
  torch::set_num_threads(1);
  const Setup s;
  // The victim rank dies in the middle of a later step's rollouts: at its 7th reward call (it scores 3 per round).
  int calls = 0;
  auto reward = [&, digits = DigitFraction{&s.tokenizer}](const kaizen::Prompt& p, const kaizen::Completion& c) {
    if (comm.rank() == victim && ++calls == 7) ::_exit(9);
    return digits(p, c);
  };
  auto source = [&](kaizen::ArmId arm, kaizen::Rng& rng) {
    return kaizen::tasks::make_prompt(s.task.generate(arm, rng), s.tokenizer);
  };
  LlamaModel reference = s.model(3);
  LlamaModel policy = s.model(3);
  kaizen::lm::LlamaSampler sampler(policy, s.tokenizer.pad_id());
  kaizen::curriculum::SelfEvolvingCurriculum sec(2, kSec);
  kaizen::loop::GrpoConfig config = base_config(s);
  config.steps = steps;
  config.resume_from = resume;
  if (!ckpt.empty()) {
    config.checkpoint_every = 2;
    config.checkpoint_dir = ckpt;
  }
  config.communicator = &comm;
  const auto run = kaizen::loop::grpo(policy, sampler, reward, source, pg::kGrpo, config, {}, &reference, &sec);
  RunOutput out;
  for (const auto& p : policy.parameters()) out.params.push_back(p.detach().clone());
  out.history = run.history;
  out.curriculum = sec.state();
  return out;
}

/// The fields of a step that come from the rollouts and the advantages: equal exactly on any number of ranks.
const char* const kExactFields[] = {"step", "reward_mean", "sampled_groups", "dropped_groups", "kept_groups",
                                    "completion_length_mean", "sampled_tokens", "curriculum_probabilities",
                                    "learning_rate"};
/// The fields that depend on summation order.
const char* const kCloseFields[] = {"loss", "kl", "entropy", "grad_norm", "clip_fraction"};

double max_abs_diff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, (a[i] - b[i]).abs().max().item<double>());
  return m;
}

void compare(const RunOutput& reference, std::size_t first_step, const std::vector<nlohmann::json>& history,
             const std::vector<torch::Tensor>& params, const nlohmann::json& curriculum, double& worst) {
  REQUIRE(history.size() + first_step == reference.history.size());
  for (std::size_t i = 0; i < history.size(); ++i) {
    const nlohmann::json& want = reference.history[first_step + i];
    INFO("step " << want["step"]);
    for (const char* key : kExactFields) {
      INFO(key);
      REQUIRE(history[i].contains(key));
      CHECK(history[i][key] == want[key]);
    }
    for (const char* key : kCloseFields) {
      INFO(key << " " << history[i][key] << " vs " << want[key]);
      CHECK(std::abs(history[i][key].get<double>() - want[key].get<double>()) <=
            1e-4 * (1.0 + std::abs(want[key].get<double>())));
    }
  }
  CHECK(curriculum == reference.curriculum);
  const double d = max_abs_diff(params, reference.params);
  worst = std::max(worst, d);
  CHECK(d < 2e-6);  // measured: 2.4e-7 (one float32 ulp near 1) after 4 steps
}

}  // namespace

TEST_CASE("distributed grpo worker", "[.worker]") {
  kd::C10dOptions options;
  options.backend = "gloo";
  options.timeout = std::chrono::milliseconds(kaizen_test::env_int("KAIZEN_TEST_TIMEOUT_MS", 120000));
  options.diagnose_timeout = std::chrono::milliseconds(2000);
  kd::C10dCommunicator comm(kd::LaunchEnv::from_environment(), options);
  const fs::path dir = std::getenv("KAIZEN_TEST_DIR");
  if (const int victim = kaizen_test::env_int("KAIZEN_TEST_VICTIM", -1); victim >= 0) {
    std::string message;
    try {
      (void)run_grpo(comm, 4, {}, {}, victim);
    } catch (const kaizen::Error& e) {
      message = e.what();
    }
    std::cerr << "rank " << comm.rank() << ": " << message << "\n";
    REQUIRE_FALSE(message.empty());
    std::ofstream(dir / ("message" + std::to_string(comm.rank()))) << message;
    return;
  }
  const char* resume = std::getenv("KAIZEN_TEST_RESUME");
  const char* ckpt = std::getenv("KAIZEN_TEST_CHECKPOINT");
  const RunOutput out = run_grpo(comm, kaizen_test::env_int("KAIZEN_TEST_STEPS", 4), resume ? fs::path(resume) : fs::path(),
                                 ckpt ? fs::path(ckpt) : fs::path());
  const std::string r = std::to_string(comm.rank());
  torch::save(out.params, (dir / ("params" + r + ".pt")).string());
  std::ofstream(dir / ("history" + r + ".json")) << nlohmann::json(out.history).dump();
  std::ofstream(dir / ("curriculum" + r + ".json")) << out.curriculum.dump();
  // Every rank holds the same parameters, bit for bit.
  kd::check_same_parameters(comm, out.params, "grpo worker");
}

namespace {

struct RankOutput {
  std::vector<nlohmann::json> history;
  std::vector<torch::Tensor> params;
  nlohmann::json curriculum;
};

RankOutput read_rank(const fs::path& dir, int r) {
  RankOutput o;
  const std::string s = std::to_string(r);
  o.history = nlohmann::json::parse(kaizen_test::read_file(dir / ("history" + s + ".json"))).get<std::vector<nlohmann::json>>();
  torch::load(o.params, (dir / ("params" + s + ".pt")).string());
  o.curriculum = nlohmann::json::parse(kaizen_test::read_file(dir / ("curriculum" + s + ".json")));
  return o;
}

void require_job_ok(kaizen_test::Job& job, double deadline) {
  const auto results = job.wait_all(deadline);
  for (const auto& c : results) {
    INFO("rank " << c.rank << " log:\n" << c.log);
    REQUIRE_FALSE(c.timed_out);
    REQUIRE(c.status == 0);
  }
}

/// A folder per job, emptied file by file before and after.
struct JobDir {
  fs::path path;
  explicit JobDir(const std::string& name)
      : path(fs::temp_directory_path() / ("kaizen_dist_grpo_" + name + "_" + std::to_string(::getpid()))) {
    clear(path);
  }
  ~JobDir() { clear(path); }
  static void clear(const fs::path& p) {
    std::error_code ec;
    if (!fs::exists(p, ec)) return;
    for (const auto& e : fs::directory_iterator(p, ec)) {
      if (e.is_directory(ec)) clear(e.path());
      else fs::remove(e.path(), ec);
    }
    fs::remove(p, ec);
  }
};

}  // namespace

TEST_CASE("GRPO on 2 ranks equals the one-process run, and 3 ranks resume a 2-rank checkpoint", "[distributed][grpo]") {
  if (!kd::kHasGloo) {
    std::cout << "KAIZEN_SKIP: built without c10d Gloo\n";
    return;
  }
  kd::SingleProcess one;
  const RunOutput reference = run_grpo(one, 4, {}, {});
  REQUIRE(reference.history.size() == 4);
  CHECK(reference.history[3]["kl"].get<double>() > 0.0);
  CHECK(reference.history[3]["grad_norm"].get<double>() > 0.0);
  double worst = 0.0;

  {  // 2 ranks, 4 steps.
    JobDir dir("two");
    kaizen_test::Job job("distributed grpo worker", 2, dir.path, {{"KAIZEN_TEST_STEPS", "4"}});
    require_job_ok(job, 240.0);
    for (int r = 0; r < 2; ++r) {
      INFO("rank " << r);
      const RankOutput o = read_rank(dir.path, r);
      compare(reference, 0, o.history, o.params, o.curriculum, worst);
    }
  }
  {  // 2 ranks, 2 steps, rank 0 checkpoints; then 3 ranks resume to 4.
    JobDir dir("part"), ckpt("ckpt"), dir3("resumed");
    {
      kaizen_test::Job job("distributed grpo worker", 2, dir.path,
                           {{"KAIZEN_TEST_STEPS", "2"}, {"KAIZEN_TEST_CHECKPOINT", ckpt.path.string()}});
      require_job_ok(job, 240.0);
    }
    REQUIRE(fs::exists(ckpt.path / "state.json"));
    kaizen_test::Job job("distributed grpo worker", 3, dir3.path,
                         {{"KAIZEN_TEST_STEPS", "4"}, {"KAIZEN_TEST_RESUME", ckpt.path.string()}});
    require_job_ok(job, 240.0);
    for (int r = 0; r < 3; ++r) {
      INFO("resumed rank " << r);
      const RankOutput o = read_rank(dir3.path, r);
      REQUIRE(o.history.size() == 2);
      CHECK(o.history[0]["step"] == 3);
      compare(reference, 2, o.history, o.params, o.curriculum, worst);
    }
  }
  std::cout << "GRPO data-parallel vs one process: max |parameter difference| = " << worst << "\n";
}

TEST_CASE("A rank killed in the middle of a GRPO step makes the others fail naming it, within the timeout",
          "[distributed][grpo]") {
  if (!kd::kHasGloo) {
    std::cout << "KAIZEN_SKIP: built without c10d Gloo\n";
    return;
  }
  JobDir dir("kill");
  kaizen_test::Job job("distributed grpo worker", 3, dir.path,
                       {{"KAIZEN_TEST_VICTIM", "2"}, {"KAIZEN_TEST_TIMEOUT_MS", "10000"}});
  const auto results = job.wait_all(120.0);
  for (const auto& c : results) {
    INFO("rank " << c.rank << " log:\n" << c.log);
    REQUIRE_FALSE(c.timed_out);
    if (c.rank == 2) {
      CHECK(c.status == 9);
      continue;
    }
    CHECK(c.status == 0);
    CHECK(c.seconds < 90.0);  // start-up, one step, then at most the 10 s collective timeout and 2 s of diagnosis
    const std::string message = kaizen_test::read_file(dir.path / ("message" + std::to_string(c.rank)));
    CHECK_THAT(message, Catch::Contains("rank 2 did not answer"));
  }
}
