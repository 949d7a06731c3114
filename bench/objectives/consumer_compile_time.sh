#!/usr/bin/env bash
# Times the compilation of a consumer's translation unit that computes one policy-gradient loss (GRPO) and one
# preference loss (DPO):
#   (a) compile_time_consumer.cpp  includes kaizen/policy_gradient/policy_loss.hpp and kaizen/preference/dpo.hpp
#       and instantiates the objective in the TU (the header-only way);
#   (b) runtime_consumer.cpp       includes only kaizen/objectives/runtime.hpp and calls the precompiled entry.
# Flags: those CMake uses for the tests of this build folder (defines, include paths, warnings, -std), read from
# <build>/compile_commands.json, with the optimisation level forced to -O2 and no precompiled header (a consumer
# has none). Prints wall and user+sys CPU seconds of each run and the best of N runs (default 3) per TU.
#   bench/objectives/consumer_compile_time.sh [build-dir] [runs] [extra include dir searched first]
# The third argument lets one time another version of the headers (e.g. a `git archive HEAD include` copy).
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
runs=${2:-3}
first_include=${3:-}
[ -f "$build/compile_commands.json" ] || { echo "no $build/compile_commands.json (configure first)" >&2; exit 1; }
# One argument a line: the compiler, then its flags.
mapfile -t command < <(python3 - "$build/compile_commands.json" <<'PY'
import json, shlex, sys
for c in json.load(open(sys.argv[1])):
    if c["file"].endswith("tests/policy_gradient/test_policy_loss.cpp"):
        args = shlex.split(c["command"])
        out, skip = [args[0]], False
        for a in args[1:]:
            if skip: skip = False; continue
            if a in ("-o", "-c", "-include"): skip = True; continue
            if a.startswith("-O") or a.endswith(".cpp") or a == "-Winvalid-pch" or a.startswith("-DKAIZEN_PCH_BUILD_DIR"):
                continue
            out.append(a)
        print("\n".join(out + ["-O2"]))
        break
else:
    sys.exit("tests/policy_gradient/test_policy_loss.cpp is not in compile_commands.json")
PY
)
compiler=${command[0]}
flags=("${command[@]:1}")
if [ -n "$first_include" ]; then flags=(-I"$first_include" "${flags[@]}"); fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "compiler: $compiler $($compiler -dumpversion); flags: ${flags[*]}"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
for tu in compile_time_consumer runtime_consumer; do
  [ -f "bench/objectives/$tu.cpp" ] || continue
  best_wall="" best_cpu=""
  for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e %U %S" -o "$out/time" "$compiler" "${flags[@]}" -c "bench/objectives/$tu.cpp" -o "$out/$tu.o"
    read -r wall user sys < "$out/time"
    cpu=$(python3 -c "print(f'{$user + $sys:.2f}')")
    echo "  $tu: wall $wall s, cpu $cpu s"
    best_wall=$(python3 -c "print(min([$wall${best_wall:+, $best_wall}]))")
    best_cpu=$(python3 -c "print(min([$cpu${best_cpu:+, $best_cpu}]))")
  done
  echo "$tu: best of $runs: wall $best_wall s, cpu $best_cpu s"
done
