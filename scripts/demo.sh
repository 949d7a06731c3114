#!/usr/bin/env bash
# README command 1: set up, build the GRPO demo (only that target) and run it on CPU.
#   ./scripts/demo.sh [grpo_demo options...]     e.g. ./scripts/demo.sh --steps 30 --device cuda
# Uses the same build folder and options as scripts/test.sh, so one build serves both.
# Outputs go to out/grpo_demo/ (metrics.jsonl, curve.svg, checkpoint/); see docs/quickstart.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/configure.sh build
cmake --build build --target grpo_demo --parallel "${KAIZEN_JOBS:-$(nproc)}"
exec build/examples/grpo_demo/grpo_demo "$@"
