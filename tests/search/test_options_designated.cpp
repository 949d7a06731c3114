// The search option aggregates with partial designated initialisers compile without
// -Wmissing-field-initializers warnings. The project adds -Wno-missing-field-initializers for GCC;
// this file turns the warning back on, as an error, so a member without a default member
// initializer (which GCC 12 reports for every designated initialiser that omits it) fails the build.
#pragma GCC diagnostic error "-Wmissing-field-initializers"

#include <catch2/catch.hpp>

#include <kaizen/search/beam.hpp>
#include <kaizen/search/iterative_deepening.hpp>
#include <kaizen/search/mcts.hpp>
#include <kaizen/search/merge.hpp>
#include <kaizen/search/process_reward_adapter.hpp>
#include <kaizen/search/trace.hpp>

using namespace kaizen::search;

TEST_CASE("search options accept partial designated initialisers under -Wmissing-field-initializers", "[search][options]") {
  const MctsOptions a{.c = 0.4};
  const MctsOptions b{.selection = Selection::uct, .unvisited = Unvisited::infinite, .evaluation = Evaluation::lazy,
                      .simulations = 1000, .branch = 9};
  const MctsOptions c{.end_gate = 0.9, .merge = {.enabled = true}};
  const MctsOptions d{.seed = 7};
  const MergeOptions m{.max_edit_distance = 2};
  const BeamOptions beam{.beam_width = 2};
  const ProcessRewardOptions prm{.value = StepValue::min};
  const IterativeDeepeningOptions deepening{.max_budget = 1024};
  const GrowingBudgetOptions growing{.confidence = 0.9};
  const StepPairOptions pairs{.min_margin = 0.1};
  CHECK(deepening.initial_budget == 256);
  CHECK(growing.max_samples == 64);
  CHECK(pairs.min_visits == 1);
  CHECK(a.c == 0.4);
  CHECK(a.simulations == 100);
  CHECK(b.evaluation == Evaluation::lazy);
  CHECK(b.zero_sum_total == 1.0);
  CHECK(*c.end_gate == 0.9);
  CHECK(c.merge.enabled);
  CHECK(c.merge.max_edit_distance == 0);
  CHECK(!d.end_gate);
  CHECK(!d.first_play_value);
  CHECK(m.max_edit_distance == 2);
  CHECK(beam.expansions_per_beam == 4);
  CHECK(prm.root_value == 0.0);
}
