// kaizen/core/concepts.hpp - every core concept in one include:
// Policy, HiddenStatePolicy (policy.hpp), Sampler (sampler.hpp), OutcomeReward, Verifier,
// ProcessReward (reward.hpp), Curriculum (curriculum.hpp), Judge (judge.hpp). SearchProblem lives with
// search/.
#pragma once

#include <kaizen/core/curriculum.hpp>
#include <kaizen/core/judge.hpp>
#include <kaizen/core/policy.hpp>
#include <kaizen/core/reward.hpp>
#include <kaizen/core/sampler.hpp>
