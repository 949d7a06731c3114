#!/usr/bin/env bash
# Builds and runs kaizen's benchmark suite, then merges every program's figures into one JSON document.
#
#   scripts/bench.sh [build-dir]          # default build dir: build; results in out/bench/
#
# Steps: scripts/configure.sh <build-dir>; build the target kaizen_benchmarks; run every benchmark program
# listed in <build-dir>/bench/benchmarks.txt (bench_kernels_gpu only when `nvidia-smi -L` finds a GPU) with
# --kaizen_json=out/bench/<program>.json (its console output in out/bench/<program>.log); merge into
# out/bench/results.json:
#   {"header": {date, cpu_model, cores, load_before, load_after, git_commit, git_dirty, min_time, ...},
#    "figures": {"<program>.<figure>": value, ...},           every ratio and derived figure
#    "figure_details": {"<program>.<figure>": {unit, what}},
#    "programs": {"<program>": {status, exit_code, seconds, benchmarks: [...]}}}
# and print the figures as a plain-text table, then the wall time. Exit status 1 if a program failed.
#
# Environment: BENCH_MIN_TIME (--benchmark_min_time, default 0.5 s: the runs then take about 3 minutes on
# 2 cores, plus the build), BENCH_FILTER (a regex of program names to run, default all), JOBS (build jobs, default nproc),
# OMP_WAIT_POLICY (default passive: LibTorch's OpenMP threads otherwise spin, which on a shared machine
# makes the multi-thread runs many times slower), OUT_DIR (default out/bench).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start=$(date +%s)
build=${1:-build}
out=${OUT_DIR:-$root/out/bench}
min_time=${BENCH_MIN_TIME:-0.5}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

echo "== configure $build"
mkdir -p "$build"
scripts/configure.sh "$build" > "$build/bench-configure.log" 2>&1 || {
  tail -30 "$build/bench-configure.log"
  echo "configure failed: $build/bench-configure.log"
  exit 1
}
echo "== build kaizen_benchmarks"
cmake --build "$build" --target kaizen_benchmarks -j "${JOBS:-$(nproc)}" > "$build/bench-build.log" 2>&1 || {
  grep -E "error|FAILED" -A3 "$build/bench-build.log" | head -40
  echo "build failed: $build/bench-build.log"
  exit 1
}

mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.jsonl "$out"/*.log
gpu=0
if command -v nvidia-smi > /dev/null && nvidia-smi -L 2> /dev/null | grep -q '^GPU'; then gpu=1; fi
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
status_file="$out/status.tsv"
: > "$status_file"

echo "== run (--benchmark_min_time=$min_time, OMP_WAIT_POLICY=$OMP_WAIT_POLICY)"
while IFS= read -r exe; do
  [ -n "$exe" ] || continue
  name=$(basename "$exe")
  if [ -n "${BENCH_FILTER:-}" ] && ! [[ $name =~ $BENCH_FILTER ]]; then continue; fi
  t0=$(date +%s.%N)
  rc=0
  if [ "$name" = bench_kernels_gpu ]; then
    # Not a Google Benchmark program: N V H OUT.jsonl (bench/gpu/run.sh runs it at two shapes, with peers).
    if [ "$gpu" != 1 ]; then
      printf '%s\tskipped\t0\t0\n' "$name" >> "$status_file"
      printf '  %-28s skipped (no GPU)\n' "$name"
      continue
    fi
    "$exe" 8192 32000 4096 "$out/$name.jsonl" > "$out/$name.log" 2>&1 || rc=$?
  elif grep -aq -- '--kaizen_json=' "$exe"; then
    "$exe" --benchmark_min_time="$min_time" --kaizen_json="$out/$name.json" > "$out/$name.log" 2>&1 || rc=$?
  else
    # A program not (yet) on bench/support/figures.hpp: Google Benchmark's JSON only, no figures.
    "$exe" --benchmark_min_time="$min_time" --benchmark_out="$out/$name.gbench.json" --benchmark_out_format=json \
      > "$out/$name.log" 2>&1 || rc=$?
  fi
  seconds=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  printf '%s\t%s\t%s\t%s\n' "$name" "$([ $rc = 0 ] && echo ok || echo failed)" "$rc" "$seconds" >> "$status_file"
  printf '  %-28s %s %7.1f s\n' "$name" "$([ $rc = 0 ] && echo "ok    " || echo "FAILED (exit $rc, see $out/$name.log)")" "$seconds"
done < "$build/bench/benchmarks.txt"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

rc=0
python3 - "$out" "$status_file" "$load_before" "$load_after" "$min_time" "$root" <<'PY' || rc=$?
import datetime, json, os, re, subprocess, sys

out, status_file, load_before, load_after, min_time, root = sys.argv[1:7]

def git(*args):
    try:
        return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, check=True).stdout.strip()
    except Exception:  # noqa: BLE001 - not a git checkout
        return None

cpu_model = "unknown"
with open("/proc/cpuinfo") as f:
    for line in f:
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
header = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "cpu_model": cpu_model,
    "cores": os.cpu_count(),
    "load_before": [float(x) for x in load_before.split()],
    "load_after": [float(x) for x in load_after.split()],
    "git_commit": git("rev-parse", "HEAD"),
    "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    "benchmark_min_time": float(min_time),
    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
}
figures, details, programs = {}, {}, {}
for line in open(status_file):
    name, status, rc, seconds = line.rstrip("\n").split("\t")
    entry = {"status": status, "exit_code": int(rc), "seconds": round(float(seconds), 2), "benchmarks": []}
    doc = os.path.join(out, name + ".json")
    gbench = os.path.join(out, name + ".gbench.json")
    records = os.path.join(out, name + ".jsonl")
    if os.path.exists(doc):
        d = json.load(open(doc))
        entry["benchmarks"] = d["benchmarks"]
        for key, fig in d["figures"].items():
            figures[f"{name}.{key}"] = fig["value"]
            details[f"{name}.{key}"] = {"unit": fig["unit"], "what": fig["what"]}
    elif os.path.exists(gbench):
        d = json.load(open(gbench))
        entry["benchmarks"] = d.get("benchmarks", [])
        entry["note"] = "not on bench/support/figures.hpp: its x_* counters (time / baseline time) are the figures"
        # Its kaizen/baseline ratios are user counters named x_<baseline>: one figure per benchmark and counter.
        for b in entry["benchmarks"]:
            if b.get("run_type", "iteration") != "iteration":
                continue
            base = re.sub(r"[^a-z0-9]+", "_", re.sub(r"^BM_", "", b["name"]).lower()).strip("_")
            for counter, value in b.items():
                if counter.startswith("x_") and isinstance(value, (int, float)):
                    key = f"{name}.{base}_{counter}"
                    figures[key] = value
                    details[key] = {"unit": "ratio", "what": f"counter {counter} of {b['name']} (time / baseline time)"}
    elif os.path.exists(records):  # bench_kernels_gpu: {shape, name, ms, extra_gib, floor_ms, fraction}
        for line in open(records):
            if not line.strip():
                continue
            r = json.loads(line)
            entry["benchmarks"].append(r)
            key = re.sub(r"[^a-z0-9]+", "_", r["name"].lower()).strip("_")
            figures[f"{name}.{key}_ms"] = r["ms"]
            details[f"{name}.{key}_ms"] = {"unit": "ms", "what": r["shape"]}
            if r.get("fraction"):
                figures[f"{name}.{key}_fraction_of_floor"] = r["fraction"]
                details[f"{name}.{key}_fraction_of_floor"] = {"unit": "ratio", "what": "floor time / time, " + r["shape"]}
    programs[name] = entry
result = {"header": header, "figures": figures, "figure_details": details, "programs": programs}
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")

print(f"\n{header['date']}  {cpu_model}, {header['cores']} cores, load {load_before} -> {load_after}, "
      f"commit {(header['git_commit'] or '?')[:12]}{' (dirty)' if header['git_dirty'] else ''}")
width = max((len(k) for k in figures), default=10)
print(f"\n{'figure':<{width}}  {'value':>12}  unit")
for key, value in figures.items():
    print(f"{key:<{width}}  {value:>12.4g}  {details[key]['unit']}")
failed = [n for n, e in programs.items() if e["status"] == "failed"]
print(f"\n{len(figures)} figures from {sum(e['status'] == 'ok' for e in programs.values())} programs"
      f"{'; FAILED: ' + ', '.join(failed) if failed else ''}; {os.path.join(out, 'results.json')}")
sys.exit(1 if failed else 0)
PY
echo "wall time: $(( $(date +%s) - start )) s"
exit $rc
