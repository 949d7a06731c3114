#!/usr/bin/env bash
# Builds the math verifier fuzz target with clang's libFuzzer, ASan and UBSan:
#   fuzz/reward/build.sh [out-dir]      (default build-fuzz/)
#   build-fuzz/fuzz_math -max_total_time=60 -timeout=5 -max_len=4096 fuzz/reward/corpus
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-build-fuzz}
mkdir -p "$out"
cxx=${CXX_FUZZ:-clang++-14}
"$cxx" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Iinclude $(pkg-config --cflags ginac) fuzz/reward/fuzz_math.cpp -o "$out/fuzz_math" $(pkg-config --libs ginac)
echo "$out/fuzz_math"
