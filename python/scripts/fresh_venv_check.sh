#!/usr/bin/env bash
# python/scripts/fresh_venv_check.sh - the install check of issue 16: an empty venv, torch from pip, then
# `pip install ./python`, an import and a smoke test; then an sdist of the package (scikit-build-core's build_sdist,
# the hook `python -m build --sdist` calls) that builds and imports.
#
#   python/scripts/fresh_venv_check.sh [WORK_DIR]        (default: a new folder under ${TMPDIR:-/tmp})
#
# Slow (it downloads torch unless pip's cache has the wheel, and compiles the extension from scratch:
# minutes to tens of minutes): a manual / release check, deliberately not part of scripts/test.sh.
# Environment:
#   KAIZEN_BASE_PYTHON  interpreter that creates the venv (default: python3)
#   KAIZEN_TORCH_SPEC   the torch requirement (default: the version of the cache venv's torch, without its local
#                       "+cuXXX" tag, i.e. the PyPI wheel of that version)
#   KAIZEN_PIP_ARGS     extra pip arguments for the torch install (e.g. an --index-url of CPU wheels)
#   KAIZEN_JOBS         compile jobs (default 1)
# Prints the seconds each stage took and exits non-zero on the first failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"   # python/
root="$(cd "$here/.." && pwd)"
work="${1:-$(mktemp -d "${TMPDIR:-/tmp}/kaizen-fresh.XXXXXX")}"
mkdir -p "$work"
base_py="${KAIZEN_BASE_PYTHON:-python3}"
cache_py="$HOME/.cache/kaizen/venv-torch-2.11.0/bin/python"
if [[ -z "${KAIZEN_TORCH_SPEC:-}" ]]; then
  if [[ -x "$cache_py" ]]; then
    KAIZEN_TORCH_SPEC="torch==$("$cache_py" -c 'import torch; print(torch.__version__.split("+")[0])')"
  else
    KAIZEN_TORCH_SPEC="torch"
  fi
fi
export CMAKE_BUILD_PARALLEL_LEVEL="${KAIZEN_JOBS:-1}"
stage() { echo "== $1: $(( $(date +%s) - t0 )) s"; t0=$(date +%s); }
t_all=$(date +%s); t0=$t_all

venv="$work/venv"
"$base_py" -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install --quiet --upgrade pip
stage "empty venv"
# shellcheck disable=SC2086
"$py" -m pip install --quiet ${KAIZEN_PIP_ARGS:-} "$KAIZEN_TORCH_SPEC"
"$py" -m pip install --quiet "scikit-build-core>=0.10" pytest
stage "torch ($KAIZEN_TORCH_SPEC), scikit-build-core, pytest"

smoke='
import torch, kaizen
from kaizen import ops, curriculum
x = torch.randn(4, 10, dtype=torch.float64, requires_grad=True)
t = torch.tensor([1, 2, 3, 4])
lp = ops.token_logprobs(x, t)
ref = torch.log_softmax(x, -1).gather(-1, t[:, None]).squeeze(-1)
assert torch.allclose(lp, ref, atol=1e-12), (lp, ref)
lp.sum().backward()
h, w = torch.randn(4, 6), torch.randn(10, 6)
assert torch.allclose(ops.fused_linear_logprobs(h, w, t), ops.token_logprobs(h @ w.t(), t), atol=1e-5)
print("ids", ops.sample_tokens(x.detach(), top_k=3, seed=1)[0].tolist())
print("group_stats", ops.group_stats(torch.tensor([1., 0., 1., 1.]), group_size=2)[2].tolist())
sec = curriculum.SelfEvolvingCurriculum(3, seed=0); sec.update(sec.sample(4), [0.5] * 4)
print("sec", sec.probabilities())
try:
    ops.token_logprobs(x, torch.tensor([0, 1, 2, 99]))
except ValueError as e:
    assert "ops::token_logprobs" in str(e)
print("kaizen", kaizen.__version__, "OK with torch", torch.__version__)
'
"$py" -m pip install --quiet --no-build-isolation "$here"
stage "pip install ./python (compiles the extension)"
(cd "$work" && "$py" -c "$smoke")
stage "import + smoke test"

# sdist: the package needs kaizen's headers, which live beside python/, not in it. Stage a copy of python/ with
# include/ copied into it (CMakeLists.txt prefers ./kaizen-include when present), build the sdist from that.
staged="$work/src/kaizen-python"
rm -rf "$work/src" && mkdir -p "$staged"
(cd "$here" && tar --exclude=./build --exclude='*.egg-info' -cf - .) | (cd "$staged" && tar -xf -)
cp -r "$root/include" "$staged/kaizen-include"
mkdir -p "$work/dist"
(cd "$staged" && "$py" -c 'import sys; from scikit_build_core.build import build_sdist; print(build_sdist(sys.argv[1]))' \
  "$work/dist") > "$work/sdist.log"
sdist="$(ls "$work"/dist/kaizen-*.tar.gz)"
stage "sdist $(basename "$sdist") ($(du -h "$sdist" | cut -f1))"
"$py" -m pip uninstall --quiet -y kaizen
"$py" -m pip install --quiet --no-build-isolation "$sdist"
(cd "$work" && "$py" -c "$smoke")
stage "pip install of the sdist + smoke test"
echo "fresh venv check passed in $(( $(date +%s) - t_all )) s (work folder $work)"
