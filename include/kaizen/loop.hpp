// kaizen/loop.hpp - umbrella header: the loop stages (prompts, rollout, batch, optimizer, update, snapshot,
// checkpoint, metrics), the loops built from them (GRPO, SFT warm start, rejection-sampling fine-tuning:
// ReST-EM, STaR, B-STaR), and evaluation.
#pragma once

#include <kaizen/loop/balance.hpp>
#include <kaizen/loop/batch.hpp>
#include <kaizen/loop/bstar.hpp>
#include <kaizen/loop/checkpoint.hpp>
#include <kaizen/loop/evaluate.hpp>
#include <kaizen/loop/grpo.hpp>
#include <kaizen/loop/iterative_dpo.hpp>
#include <kaizen/loop/judges.hpp>
#include <kaizen/loop/metrics.hpp>
#include <kaizen/loop/multi_turn.hpp>
#include <kaizen/loop/offline_preference.hpp>
#include <kaizen/loop/policy_gradient.hpp>
#include <kaizen/loop/ppo.hpp>
#include <kaizen/loop/precision.hpp>
#include <kaizen/loop/optimizer.hpp>
#include <kaizen/loop/prompts.hpp>
#include <kaizen/loop/rejection_sampling.hpp>
#include <kaizen/loop/rest_em.hpp>
#include <kaizen/loop/rest_mcts.hpp>
#include <kaizen/loop/rollout.hpp>
#include <kaizen/loop/score.hpp>
#include <kaizen/loop/self_rewarding.hpp>
#include <kaizen/loop/self_play.hpp>
#include <kaizen/loop/self_training.hpp>
#include <kaizen/loop/sharpening.hpp>
#include <kaizen/loop/sft.hpp>
#include <kaizen/loop/snapshot.hpp>
#include <kaizen/loop/star.hpp>
#include <kaizen/loop/steps.hpp>
#include <kaizen/loop/tensorboard.hpp>
#include <kaizen/loop/update.hpp>
