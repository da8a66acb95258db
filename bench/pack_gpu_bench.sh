#!/usr/bin/env bash
# Builds `--example gpu_bench` with CUDA on this (GPU-less) machine and packs what the GPU
# machine needs into an ignored, carried folder of the checkout that travels.
#
#   bench/pack_gpu_bench.sh [DEST] [FEATURES...]     default: DEST=.dist, FEATURES=cuda
#
# Needs the CUDA 13.0 toolchain of ../shared/tools/cuda-toolchain.sh (after `cargo fetch`).
# DEST must be ignored by git (e.g. listed in .git/info/exclude) and named in the device run's
# `carry`. Then, on the GPU machine: `bash DEST/gpu_bench.sh` (see docs/performance.md).
set -euo pipefail
DEST=${1:-.dist}
shift || true
FEATURES=("${@:-cuda}")
here=$(cd "$(dirname "$0")/.." && pwd)
export CUDA_HOME=${CUDA_HOME:-/opt/cuda13-pip/nvidia/cu13}
export CUDA_ROOT=$CUDA_HOME CUDA_PATH=$CUDA_HOME PATH=$CUDA_HOME/bin:$PATH
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} CUDAFORGE_THREADS=${CUDAFORGE_THREADS:-2}
export LIBRARY_PATH=$CUDA_HOME/lib/stubs:$CUDA_HOME/lib:${LIBRARY_PATH:-}
mkdir -p "$DEST"
for f in "${FEATURES[@]}"; do
  (cd "$here" && cargo build --release --features "$f" -p pixelgen-diffusion --example gpu_bench)
  strip -o "/tmp/gpu_bench-$f" "${CARGO_TARGET_DIR:-$here/target}/release/examples/gpu_bench"
  xz -6 -T2 -c "/tmp/gpu_bench-$f" > "$DEST/gpu_bench-$f.xz"
done
cp "$here/bench/gpu_bench.sh" "$DEST/"
shared_bench=${SHARED_BENCH:-$here/../shared/bench/diffusers_sdxl_bench.py}
[ -f "$shared_bench" ] || shared_bench=/work/shared/bench/diffusers_sdxl_bench.py
cp "$shared_bench" "$DEST/"
ls -la "$DEST"
