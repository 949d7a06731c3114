#!/usr/bin/env bash
# Runs setup.sh, then configures a build folder (default: build/) with Ninja.
#   scripts/configure.sh [build-dir] [extra cmake arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
torch_prefix=$(scripts/setup.sh)
cuda_args=()
if [ -x /usr/local/cuda/bin/nvcc ] && ! command -v nvcc >/dev/null; then
  cuda_args+=(-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc)
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_PREFIX_PATH="$torch_prefix" "${cuda_args[@]}" "$@" >&2
