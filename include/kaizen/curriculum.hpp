// kaizen/curriculum.hpp - umbrella header: the bandit curricula and the prompt pool.
// All of them model kaizen::Curriculum (kaizen/core/curriculum.hpp) and need no LibTorch. LinUCB, the one
// curriculum that needs Eigen, is not included here: include <kaizen/curriculum/linucb.hpp> for it.
#pragma once

#include <kaizen/core/curriculum.hpp>
#include <kaizen/curriculum/discounted_ucb.hpp>
#include <kaizen/curriculum/epsilon_greedy.hpp>
#include <kaizen/curriculum/exp3.hpp>
#include <kaizen/curriculum/learnability.hpp>
#include <kaizen/curriculum/prompt_pool.hpp>
#include <kaizen/curriculum/sec.hpp>
#include <kaizen/curriculum/sliding_window_ucb.hpp>
#include <kaizen/curriculum/thompson.hpp>
#include <kaizen/curriculum/ucb1.hpp>
