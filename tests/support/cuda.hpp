// tests/support/cuda.hpp - KAIZEN_REQUIRE_GPU(): ends a test as Skipped where no GPU is present.
// Catch2 v2 has no SKIP(); ctest's SKIP_REGULAR_EXPRESSION turns the printed marker into "Skipped".
#pragma once

#include <iostream>

#include <torch/torch.h>

#define KAIZEN_REQUIRE_GPU()                                                          \
  do {                                                                                \
    if (!torch::cuda::is_available()) {                                               \
      std::cout << "KAIZEN_SKIP: no CUDA device is available on this machine\n";      \
      return;                                                                         \
    }                                                                                 \
  } while (false)
