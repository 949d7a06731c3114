#!/usr/bin/env bash
# Installs everything kaizen needs on a Debian 12 machine; idempotent and safe to re-run.
#   - Debian packages (compilers' friends, Eigen, range-v3, Catch2, Google Benchmark, ccache, JSON, CLI11)
#   - LibTorch from PyPI's pinned `torch` wheel, in a virtual environment OUTSIDE the checkout
#     ($KAIZEN_CACHE, default ~/.cache/kaizen), so fresh clones reuse it.
# Prints nothing to stdout but the torch CMake prefix, so callers can capture it:
#   TORCH_PREFIX=$(scripts/setup.sh)
set -euo pipefail

KAIZEN_TORCH_VERSION=${KAIZEN_TORCH_VERSION:-2.11.0}
KAIZEN_CACHE=${KAIZEN_CACHE:-$HOME/.cache/kaizen}
venv="$KAIZEN_CACHE/venv-torch-$KAIZEN_TORCH_VERSION"
log() { echo "[kaizen setup] $*" >&2; }

debian_packages=(build-essential cmake ninja-build git python3 python3-venv python3-pip
                 libeigen3-dev librange-v3-dev catch2 libbenchmark-dev ccache
                 nlohmann-json3-dev libcli11-dev)
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

# Python for the venv: the system python3 or the one on PATH (pyenv etc.); both work.
python=${KAIZEN_PYTHON:-python3}
if ! "$venv/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$KAIZEN_TORCH_VERSION')" 2>/dev/null; then
  log "installing torch==$KAIZEN_TORCH_VERSION into $venv (first run only; a few GB)"
  mkdir -p "$KAIZEN_CACHE"
  "$python" -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --progress-bar off --upgrade pip >&2
  "$venv/bin/pip" install --quiet --progress-bar off "torch==$KAIZEN_TORCH_VERSION" >&2
fi
"$venv/bin/python" -W ignore -c 'import torch; print(torch.utils.cmake_prefix_path)'
