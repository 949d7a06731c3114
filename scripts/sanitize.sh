#!/usr/bin/env bash
# Builds the tests with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/) and runs the CPU ones.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/configure.sh build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKAIZEN_SANITIZE=ON \
  -DKAIZEN_BUILD_BENCH=OFF -DKAIZEN_BUILD_EXAMPLES=OFF -DKAIZEN_ENABLE_CUDA=OFF
cmake --build build-asan --parallel "${KAIZEN_JOBS:-$(nproc)}"
# LibTorch is not instrumented: its allocations are not leaks we can act on, so leak checking is off.
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -L cpu -LE packaging --parallel "${KAIZEN_JOBS:-$(nproc)}"
