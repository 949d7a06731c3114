// kaizen/search.hpp - tree search over reasoning steps: the arena tree, the SearchProblem concept,
// batched MCTS (PUCT/UCT, virtual loss, widening, ReST-MCTS* backup, state merging), trace export,
// process-reward beam search, best-of-N / sharpening, and iterative deepening.
#pragma once

#include <kaizen/search/beam.hpp>
#include <kaizen/search/games/connect_four.hpp>
#include <kaizen/search/games/game_problem.hpp>
#include <kaizen/search/games/tic_tac_toe.hpp>
#include <kaizen/search/best_of_n.hpp>
#include <kaizen/search/deepening_sampler.hpp>
#include <kaizen/search/iterative_deepening.hpp>
#include <kaizen/search/mcts.hpp>
#include <kaizen/search/merge.hpp>
#include <kaizen/search/problem.hpp>
#include <kaizen/search/process_reward_adapter.hpp>
#include <kaizen/search/self_prm.hpp>
#include <kaizen/search/trace.hpp>
#include <kaizen/search/tree.hpp>
