#!/usr/bin/env bash
# Runs each io/ fuzz target for N seconds (default 60) on a seed corpus built from tests/io fixtures.
#   fuzz/io/run.sh <fuzz build dir> [seconds] [test build dir holding tests/io/fixtures]
set -euo pipefail
build=$1
seconds=${2:-60}
fixtures=${3:-build}/tests/io/fixtures
here=$(cd "$(dirname "$0")" && pwd)
corpus=$build/corpus
mkdir -p "$corpus"/{safetensors,gguf,hf_config}
cp "$fixtures"/safetensors/basic.safetensors "$corpus"/safetensors/ 2>/dev/null || true
find "$fixtures"/hf_tiny -name 'model-00001-*.safetensors' -exec cp {} "$corpus"/safetensors/ \; 2>/dev/null || true
cp "$fixtures"/gguf_small/small.gguf "$corpus"/gguf/ 2>/dev/null || true
cp "$here"/../../tests/io/data/*.json "$corpus"/hf_config/
for t in safetensors gguf hf_config; do
  echo "== fuzz_$t: ${seconds}s"
  "$build"/fuzz_$t "$corpus"/$t -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$build/" 2>&1 | grep -E "INITED|DONE|stat::number_of_executed_units|ERROR|SUMMARY|crash-|leak" || true
done
