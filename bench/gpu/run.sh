#!/usr/bin/env bash
# One-shot GPU session for kaizen's kernels: build, correctness (ctest label cuda + the CPU op tests),
# compute-sanitizer, then timings of every kernel and of the peers at the reference shape
# (N=8192, V=151936, H=4096, bf16) and at V=32000. Results: $OUT_DIR/results.jsonl and summary.txt.
#
#   bench/gpu/run.sh                  # from the repository root; ~10 minutes on an H100/H200
# Everything it builds is in this repository: the tests test_kernels_cuda, test_kernels_ops,
# test_policy_objective, test_policy_objective_cuda (tests/kernels/), the program bench_kernels_gpu
# (bench/kernels/; not a Google Benchmark program: `bench_kernels_gpu N V H OUT.jsonl`) and the peers script
# bench/gpu/peers.py. The CPU benchmark suite is scripts/bench.sh (it runs bench_kernels_gpu once too, at
# V=32000, when a GPU is present).
# Environment: TORCH_PREFIX (default: from the python torch), DEPS (optional: a prefix holding the Debian
# build dependencies scripts/setup.sh installs — Eigen, range-v3, Catch2, Google Benchmark, nlohmann-json —
# for a GPU host with no package registry, e.g. the packages unpacked with `apt-get download` +
# `dpkg-deb -x` into .deps/; default $PWD/.deps/usr when it exists, else the system's), OUT_DIR (default:
# $OUT if set, else bench/gpu/results),
# LIGER_WHEEL (optional path of a liger-kernel wheel to install with --no-deps when not importable),
# SKIP_SANITIZER=1, JOBS (default: nproc).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
OUT_DIR=${OUT_DIR:-${OUT:-$root/bench/gpu/results}}
mkdir -p "$OUT_DIR"
log="$OUT_DIR/summary.txt"
results="$OUT_DIR/results.jsonl"
: > "$results"
exec > >(tee -a "$log") 2>&1
step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

step "device"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem --format=csv || true
TORCH_PREFIX=${TORCH_PREFIX:-$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')}
DEPS=${DEPS:-$root/.deps/usr}
[ -d "$DEPS" ] || DEPS=/usr
JOBS=${JOBS:-$(nproc)}
echo "torch prefix: $TORCH_PREFIX; deps: $DEPS"

step "configure + build (sm_90 only)"
catch_dir=$(dirname "$(find "$DEPS" /usr/lib /usr/share -name Catch.cmake 2>/dev/null | head -1)")
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$DEPS;$TORCH_PREFIX" \
  -DCMAKE_CUDA_COMPILER="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)" -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DCMAKE_MODULE_PATH="$catch_dir" -DKAIZEN_BUILD_EXAMPLES=OFF > "$OUT_DIR/configure.log" 2>&1 \
  || { tail -30 "$OUT_DIR/configure.log"; exit 1; }
cmake --build build-gpu --target test_kernels_cuda test_kernels_ops test_policy_objective test_policy_objective_cuda bench_kernels_gpu --parallel "$JOBS" \
  > "$OUT_DIR/build.log" 2>&1 || { grep -E "error" -A5 "$OUT_DIR/build.log" | head -60; exit 1; }
echo "built"

step "tests: label cuda and the CPU ops"
ctest --test-dir build-gpu -R 'test_kernels_(cuda|ops)|test_policy_objective' --output-on-failure --timeout 300 | tail -40

if [ "${SKIP_SANITIZER:-0}" != 1 ] && command -v compute-sanitizer >/dev/null; then
  step "compute-sanitizer memcheck + racecheck (the 2^31 test is left out: it is slow under memcheck)"
  exe=build-gpu/tests/kernels/test_kernels_cuda
  timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 "$exe" \
    '~CUDA token_logprobs with N times V above 2^31 uses 64-bit offsets' 2>&1 | tail -8
  echo "memcheck exit: ${PIPESTATUS[0]}"
  timeout 120 compute-sanitizer --tool racecheck --error-exitcode 9 "$exe" '[sample_tokens]' 2>&1 | tail -5
  echo "racecheck (sampling) exit: ${PIPESTATUS[0]}"
  timeout 120 compute-sanitizer --tool racecheck --error-exitcode 9 "$exe" \
    'CUDA token_logprobs in place, misaligned rows and a CPU-equal result' 2>&1 | tail -5
  echo "racecheck (token log-prob) exit: ${PIPESTATUS[0]}"
fi

step "kaizen kernels (C++), V=151936 then V=32000"
build-gpu/bench/kernels/bench_kernels_gpu 8192 151936 4096 "$results"
build-gpu/bench/kernels/bench_kernels_gpu 8192 32000 4096 "$results"

step "peers (Python): torch eager, torch.compile, Liger-Kernel"
if ! python3 -c 'import liger_kernel' 2>/dev/null && [ -n "${LIGER_WHEEL:-}" ] && [ -f "$LIGER_WHEEL" ]; then
  python3 -m pip install --no-deps --quiet "$LIGER_WHEEL" || echo "could not install $LIGER_WHEEL"
fi
timeout 400 python3 bench/gpu/peers.py --vocab 151936 32000 --out "$results"

step "table (all records in $results)"
python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for shape in dict.fromkeys(r["shape"] for r in rows):
    print(f"\n{shape}")
    print(f"| implementation | ms | extra GiB | floor ms | fraction of floor |\n|---|---|---|---|---|")
    for r in rows:
        if r["shape"] == shape:
            frac = f'{r["fraction"]:.2f}' if r["fraction"] else "-"
            print(f'| {r["name"]} | {r["ms"]:.3f} | {r["extra_gib"]:.2f} | {r["floor_ms"]:.3f} | {frac} |')
PY
echo "done: $log"
