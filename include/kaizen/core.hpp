// kaizen/core.hpp - the core: error handling, RNG, value types, concepts and collation.
#pragma once

#include <kaizen/core/collate.hpp>
#include <kaizen/core/concepts.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/token_batch.hpp>
#include <kaizen/core/types.hpp>
