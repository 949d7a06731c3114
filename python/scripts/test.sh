#!/usr/bin/env bash
# python/scripts/test.sh - build kaizen's Python package, install it into a private venv, run its pytest suite.
#
#   python/scripts/test.sh [BUILD_DIR] [-- pytest args...]
#
# BUILD_DIR (default: python/build, ignored by git) holds the CMake build tree BUILD_DIR/pip (reused:
# incremental; at python/build/pip its compile commands match a python/build/<dir> developer build, so ccache
# shares their objects) and a venv (BUILD_DIR/venv) that sees the interpreter's packages through a .pth file, so nothing is
# downloaded and the shared venv is not modified. The interpreter is $KAIZEN_PYTHON, else the cache venv of
# scripts/setup.sh. Needs torch, scikit-build-core and pytest in that interpreter; when one is missing the
# script prints KAIZEN_SKIP and exits 0 (CI must not fail for a missing optional tool).
# ccache is used when installed (CCACHE_DIR as usual); -j from KAIZEN_JOBS (default 1).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"   # python/
build="$here/build"
if [[ $# -gt 0 && "$1" != "--" ]]; then build="$1"; shift; fi
if [[ "${1:-}" == "--" ]]; then shift; fi
py="${KAIZEN_PYTHON:-$HOME/.cache/kaizen/venv-torch-2.11.0/bin/python}"

if [[ ! -x "$py" ]] || ! "$py" -c "import torch, scikit_build_core, pytest" 2>/dev/null; then
  echo "KAIZEN_SKIP: $py lacks torch, scikit-build-core or pytest; the Python package is not tested"
  exit 0
fi
mkdir -p "$build"
build="$(cd "$build" && pwd)"
venv="$build/venv"
if [[ ! -x "$venv/bin/python" ]]; then
  "$py" -m venv --without-pip "$venv"
  site_new="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  "$py" -c 'import site, sysconfig; print(sysconfig.get_paths()["purelib"])' > "$site_new/kaizen_base_site.pth"
fi
site_new="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

# Build the wheel with the base interpreter's pip (no isolation: the extension must see the torch it runs
# with), into a persistent build folder so a rebuild only recompiles what changed.
export CMAKE_BUILD_PARALLEL_LEVEL="${KAIZEN_JOBS:-1}"
start=$(date +%s)
"$py" -m pip install --no-build-isolation --no-deps --no-index --quiet --target "$site_new" --upgrade \
  -Cbuild-dir="$build/pip" "$here"
echo "kaizen python package: built and installed in $(( $(date +%s) - start )) s (build folder $build)"

cd "$build"   # not python/: `import kaizen` must find the installed package, not the source folder
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$here/tests" "$@"
