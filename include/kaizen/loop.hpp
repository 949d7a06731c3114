// kaizen/loop.hpp - umbrella header: training loops (GRPO, SFT warm start), evaluation, checkpoints.
#pragma once

#include <kaizen/loop/checkpoint.hpp>
#include <kaizen/loop/evaluate.hpp>
#include <kaizen/loop/grpo.hpp>
#include <kaizen/loop/metrics.hpp>
#include <kaizen/loop/sft.hpp>
