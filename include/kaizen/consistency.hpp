// kaizen/consistency.hpp - answer extraction and normalisation, majority / weighted votes,
// early-stopping and adaptive self-consistency, pass@k and maj@k.
#pragma once

#include <kaizen/consistency/early_stopping.hpp>
#include <kaizen/consistency/extract.hpp>
#include <kaizen/consistency/pass_at_k.hpp>
#include <kaizen/consistency/vote.hpp>
