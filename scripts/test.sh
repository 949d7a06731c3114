#!/usr/bin/env bash
# README command 2: set up, build and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/configure.sh build
cmake --build build --parallel "${KAIZEN_JOBS:-$(nproc)}"
ctest --test-dir build --output-on-failure --parallel "${KAIZEN_JOBS:-$(nproc)}"
