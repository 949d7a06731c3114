#!/usr/bin/env bash
# README command 2: set up, build and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/configure.sh build
cmake --build build --parallel "${KAIZEN_JOBS:-$(nproc)}"
ctest --test-dir build --output-on-failure --parallel "${KAIZEN_JOBS:-$(nproc)}"
# The Python package: built against the same venv's torch (c++ as the C++ build, so ccache shares objects), pytest.
KAIZEN_PYTHON="$(sed -n 's/^KAIZEN_PYTHON:[A-Z]*=//p' build/CMakeCache.txt)" CXX="${CXX:-c++}" \
  KAIZEN_JOBS="${KAIZEN_JOBS:-$(nproc)}" python/scripts/test.sh
