#!/usr/bin/env bash
# Runs N copies of a program on this machine as the ranks of one data-parallel job, with the variables torchrun
# sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1, MASTER_PORT = a free port unless set), and prefixes
# each output line with its rank. When one rank fails, the others are stopped; the script exits with the first
# non-zero status (0 when every rank succeeded).
#   scripts/launch_local.sh N program [args...]
#   KAIZEN_LAUNCH_TIMEOUT=600 scripts/launch_local.sh 2 build/examples/grpo_demo/grpo_demo   # seconds, optional
# Each rank runs LibTorch on OMP_NUM_THREADS threads (default: the machine's cores divided by N, at least 1).
set -euo pipefail
if [ $# -lt 2 ] || ! [[ $1 =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 N program [args...]   (N >= 1 processes on 127.0.0.1)" >&2
  exit 2
fi
n=$1
shift
port=${MASTER_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
threads=${OMP_NUM_THREADS:-$(( $(nproc) / n > 0 ? $(nproc) / n : 1 ))}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || true; done
}
trap cleanup INT TERM
for ((r = 0; r < n; r++)); do
  # Each rank in its own process group (setsid), so stopping it stops the program and its output filter.
  RANK=$r WORLD_SIZE=$n LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$port OMP_NUM_THREADS=$threads \
    setsid bash -c 'set -o pipefail
      if [ -n "${KAIZEN_LAUNCH_TIMEOUT:-}" ]; then
        timeout --signal=KILL "$KAIZEN_LAUNCH_TIMEOUT" "$@" 2>&1 | sed -u "s/^/[rank $RANK] /"
      else
        "$@" 2>&1 | sed -u "s/^/[rank $RANK] /"
      fi' rank"$r" "$@" &
  pids+=($!)
done
status=0
# wait -n returns as soon as any rank ends; a failure stops the others.
for ((i = 0; i < n; i++)); do
  rc=0
  wait -n || rc=$?
  if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then
    status=$rc
    cleanup
  fi
done
exit "$status"
