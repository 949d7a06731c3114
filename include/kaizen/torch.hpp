// kaizen/torch.hpp - umbrella header: the sampling transform and the trainer's log-probs (namespace
// kaizen::lm), plus the LibTorch autograd ops over the kernels (kaizen::ops). The models are in
// <kaizen/models.hpp>.
#pragma once

#include <kaizen/torch/logit_transform.hpp>
#include <kaizen/torch/ops.hpp>
#include <kaizen/torch/policy_logprobs.hpp>
