#!/usr/bin/env bash
# Builds, HERE (a machine without a GPU), what bench/gpu/run.sh runs on a GPU machine, and gathers it in one
# git-ignored folder to carry: build-gpu-bundle/ (matches /build*/ in .gitignore).
#
#   bench/gpu/bundle.sh [build-dir]        # default build-kernels; configured by scripts/configure.sh
#
# Contents: bin/test_kernels_cuda, bin/test_policy_objective_cuda, bin/bench_kernels_gpu (stripped), and
# lib/ with the shared libraries they need that are neither LibTorch's nor CUDA's nor glibc/libstdc++ (ldd
# decides; usually none: kaizen::kaizen's GiNaC/SQLite/PCRE2 are dropped by --as-needed). LibTorch and the
# CUDA runtime come from the GPU machine's own torch 2.11 (+cu130) wheel, the same ABI as the venv the
# binaries were linked against here (run.sh sets LD_LIBRARY_PATH). Set NO_BUILD=1 to only gather binaries
# already built.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-kernels}
out=build-gpu-bundle
targets=(test_kernels_cuda test_policy_objective_cuda bench_kernels_gpu)
if [ "${NO_BUILD:-0}" != 1 ]; then
  nice cmake --build "$build" --target "${targets[@]}" -j1
fi
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
for t in test_kernels_cuda test_policy_objective_cuda; do
  cp "$build/tests/kernels/$t" "$out/bin/$t"
done
cp "$build/bench/kernels/bench_kernels_gpu" "$out/bin/bench_kernels_gpu"
strip --strip-unneeded "$out"/bin/*
# Shared libraries outside LibTorch, CUDA and the C/C++ runtime: carried.
for b in "$out"/bin/*; do
  ldd "$b" | awk '/=>/ {print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
      libtorch*|libc10*|libcuda*|libcublas*|libcudnn*|libcufft*|libcufile*|libcurand*|libcusparse*|libcusolver*|\
      libnccl*|libnvshmem*|libnvJitLink*|libnvrtc*|libcupti*|libgomp*|libc.so*|libm.so*|libstdc++*|libgcc_s*|\
      libpthread*|librt*|libdl*|libutil*|ld-linux*) ;;
      *) cp -Ln "$lib" "$out/lib/" ;;
    esac
  done
done
cp bench/gpu/peers.py "$out/"
du -sh "$out" "$out"/bin/* "$out"/lib 2>/dev/null
echo "carry: $out   (device run: bench/gpu/run.sh)"
