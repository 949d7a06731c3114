#!/usr/bin/env bash
# One short GPU call for kaizen's kernels, from binaries built elsewhere (bench/gpu/bundle.sh → the
# git-ignored build-gpu-bundle/, carried to the GPU machine): CUDA tests, compute-sanitizer (memcheck,
# racecheck, initcheck, with PYTORCH_NO_CUDA_MEMORY_CACHING=1 so out-of-bounds accesses inside cached
# blocks are seen), then kaizen's timings and the peers' (torch eager, torch.compile, Liger when importable)
# at N=8192, H=4096, V=151936 and 32000 (bf16). Nothing is built on the GPU machine.
#
#   bench/gpu/run.sh                      # from the repository root, with build-gpu-bundle/ present
# Environment: BUNDLE (default build-gpu-bundle), OUT_DIR (default $OUT, else bench/gpu/results),
# BUDGET_S (default 450: optional steps are skipped when they would not fit), SKIP_SANITIZER=1, SKIP_PEERS=1,
# PYTHON (default python3), LIGER_WHEEL (a liger-kernel wheel to install --no-deps into a temp dir).
# Every step's exit status is checked and summarised at the end; the script exits non-zero when a test or a
# sanitizer found an error (a timeout counts as a failure of that step). Without a GPU (a dry run) the
# tests print KAIZEN_SKIP and pass, the sanitizer and peer steps are skipped, and the script still ends.
set -uo pipefail
cd "$(dirname "$0")/../.."
BUNDLE=${BUNDLE:-build-gpu-bundle}
OUT_DIR=${OUT_DIR:-${OUT:-bench/gpu/results}}
BUDGET_S=${BUDGET_S:-450}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT_DIR"
log="$OUT_DIR/summary.txt"      # four files come back from a device call (its limit is 8):
results="$OUT_DIR/results.jsonl"  # summary.txt, results.jsonl, table.md and logs.txt (every test and
logs="$OUT_DIR/logs.txt"          # sanitizer log, 4 MB of each at most)
: > "$results"
: > "$log"
: > "$logs"
keep_log() {  # keep_log TITLE FILE: appends FILE (capped) to logs.txt, then removes it
  { echo "===== $1"; head -c 4000000 "$2"; echo; } >> "$logs"
  rm -f "$2"
}
exec > >(tee -a "$log") 2>&1
t0=$(date +%s)
elapsed() { echo $(( $(date +%s) - t0 )); }
left() { echo $(( BUDGET_S - $(elapsed) )); }
step() { echo; echo "=== $* (t=$(elapsed)s)"; }
declare -a status_lines=()
failed=0
record() {  # record NAME RC [note]
  local verdict=ok
  if [ "$2" = 124 ] || [ "$2" = 137 ]; then verdict="TIMEOUT"; failed=1
  elif [ "$2" != 0 ]; then verdict="FAILED (exit $2)"; failed=1; fi
  status_lines+=("$(printf '%-44s %s %s' "$1" "$verdict" "${3:-}")")
}

step "device"
gpu=0
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv
  gpu=1
else
  echo "no GPU here: dry run (tests skip, sanitizers and peers are skipped)"
fi
date -u

step "libraries: LibTorch and CUDA from this machine's torch"
torch_lib=$("$PYTHON" -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))' 2>/dev/null)
site=$(dirname "$(dirname "$torch_lib")")
extra=$(ls -d "$site"/nvidia/*/lib 2>/dev/null | tr '\n' ':')
export LD_LIBRARY_PATH="$PWD/$BUNDLE/lib:$torch_lib:${extra}/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
"$PYTHON" -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda)' || true
for b in "$BUNDLE"/bin/*; do
  missing=$(ldd "$b" | grep "not found" || true)
  if [ -n "$missing" ]; then echo "$b: missing libraries:"; echo "$missing"; record "libraries of $(basename "$b")" 1; fi
done
[ "$failed" = 0 ] || { printf '%s\n' "${status_lines[@]}"; exit 1; }
echo "all libraries resolve"
tk="$BUNDLE/bin/test_kernels_cuda"
tp="$BUNDLE/bin/test_policy_objective_cuda"

step "CUDA tests (all, heavy ones included)"
for exe in "$tk" "$tp"; do
  f="$OUT_DIR/$(basename "$exe").log"
  timeout 200 "$exe" --reporter compact --durations yes > "$f" 2>&1; rc=$?
  grep -E "FAILED|failed|passed" "$f" | tail -6
  record "$(basename "$exe")" $rc "($(grep -c KAIZEN_SKIP "$f") skips)"
  keep_log "$(basename "$exe")" "$f"
done

sanitize() {  # sanitize TOOL TIMEOUT EXE SPEC
  local tool=$1 limit=$2 exe=$3 spec=$4 name
  name="$tool $(basename "$exe") $spec"
  if [ "$(left)" -lt $(( limit + 150 )) ]; then record "$name" 0 "skipped: $(left)s left"; return; fi
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout "$limit" compute-sanitizer --tool "$tool" --error-exitcode 9 \
    "$exe" "$spec" > "$OUT_DIR/sanitizer_${tool}_$(basename "$exe").log" 2>&1
  local rc=$? f="$OUT_DIR/sanitizer_${tool}_$(basename "$exe").log"
  tail -3 "$f"
  if [ $rc = 124 ]; then  # inconclusive, not an error found: said so, and the run goes on
    record "$name" 0 "TIMEOUT after ${limit}s: inconclusive"
  else
    record "$name" $rc "$(grep -m1 -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$f")"
  fi
  keep_log "$name" "$f"
}
if [ "$gpu" = 1 ] && [ "${SKIP_SANITIZER:-0}" != 1 ] && command -v compute-sanitizer >/dev/null; then
  step "compute-sanitizer (PYTORCH_NO_CUDA_MEMORY_CACHING=1; the [heavy] cases are left out)"
  sanitize memcheck 100 "$tk" '~[heavy]'
  sanitize racecheck 60 "$tk" '[sample_tokens]~[heavy]'
  sanitize initcheck 60 "$tk" '[token_logprobs]~[heavy]'
  sanitize memcheck 45 "$tp" '*'
else
  record "compute-sanitizer" 0 "skipped (no GPU, SKIP_SANITIZER or no compute-sanitizer)"
fi

step "kaizen kernels (C++), V=151936 then V=32000"
for v in 151936 32000; do
  timeout 150 "$BUNDLE/bin/bench_kernels_gpu" 8192 "$v" 4096 "$results"; rc=$?
  record "bench_kernels_gpu V=$v" $rc
done

if [ "$gpu" = 1 ] && [ "${SKIP_PEERS:-0}" != 1 ] && [ "$(left)" -gt 60 ]; then
  step "peers (Python): torch eager, torch.compile, Liger-Kernel"
  if [ -n "${LIGER_WHEEL:-}" ] && [ -f "$LIGER_WHEEL" ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --target /tmp/liger "$LIGER_WHEEL" && export PYTHONPATH=/tmp/liger
  fi
  PYTHONUNBUFFERED=1 timeout $(( $(left) - 20 )) "$PYTHON" bench/gpu/peers.py --vocab 151936 32000 --out "$results"
  record "peers.py" $?
else
  record "peers.py" 0 "skipped (no GPU, SKIP_PEERS or $(left)s left)"
fi

step "table (all records in $results)"
"$PYTHON" - "$results" > "$OUT_DIR/table.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for shape in dict.fromkeys(r["shape"] for r in rows):
    print(f"\n{shape}\n")
    print("| implementation | ms | extra GiB | floor ms | fraction of floor |\n|---|---|---|---|---|")
    for r in rows:
        if r["shape"] == shape:
            frac = f'{r["fraction"]:.2f}' if r["fraction"] else "-"
            print(f'| {r["name"]} | {r["ms"]:.3f} | {r["extra_gib"]:.2f} | {r["floor_ms"]:.3f} | {frac} |')
PY
record "table" $?
cat "$OUT_DIR/table.md"

step "summary ($(elapsed)s)"
printf '%s\n' "${status_lines[@]}"
exit $failed
