// kaizen/reward.hpp - umbrella header: verifiers and rewards (target kaizen::reward: GiNaC + SQLite3).
// The math verifier, SQL and sandboxed-code execution rewards, format / length / self-judge shapes, weighted
// composites, and the multi-threaded scorer. See docs/rewards.md.
#pragma once

#include <kaizen/reward/code_execution.hpp>
#include <kaizen/reward/code_sandbox.hpp>
#include <kaizen/reward/composite.hpp>
#include <kaizen/reward/format.hpp>
#include <kaizen/reward/length.hpp>
#include <kaizen/reward/math_equal.hpp>
#include <kaizen/reward/math_extract.hpp>
#include <kaizen/reward/math_parse.hpp>
#include <kaizen/reward/math_verifier.hpp>
#include <kaizen/reward/scorer.hpp>
#include <kaizen/reward/self_judge.hpp>
#include <kaizen/reward/sql.hpp>
