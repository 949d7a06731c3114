// kaizen/kaizen.hpp - umbrella header: includes every public part of kaizen.
// Prefer including the headers you use; this one exists for quick experiments.
#pragma once

#include <kaizen/config.hpp>
#include <kaizen/core.hpp>
#include <kaizen/version.hpp>
