// kaizen/torch.hpp - umbrella header: the Llama decoder, its KV-cache sampler, the sampling transform
// and the trainer's log-probs (namespace kaizen::lm), plus the LibTorch ops (kaizen::ops).
#pragma once

#include <kaizen/torch/llama.hpp>
#include <kaizen/torch/llama_sampler.hpp>
#include <kaizen/torch/logit_transform.hpp>
#include <kaizen/torch/ops.hpp>
#include <kaizen/torch/policy_logprobs.hpp>
