// kaizen/kaizen.hpp - umbrella header: includes every public part of kaizen.
// Prefer including the headers you use; this one exists for quick experiments.
#pragma once

#include <kaizen/config.hpp>
#include <kaizen/consistency.hpp>
#include <kaizen/core.hpp>
#include <kaizen/curriculum.hpp>
#include <kaizen/curriculum/linucb.hpp>
#include <kaizen/curriculum/tensor_gains.hpp>
#include <kaizen/loop.hpp>
#include <kaizen/models.hpp>
#include <kaizen/policy_gradient.hpp>
#include <kaizen/preference.hpp>
#include <kaizen/search.hpp>
#include <kaizen/tasks.hpp>
#include <kaizen/torch.hpp>
#include <kaizen/version.hpp>
