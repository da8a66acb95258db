#!/usr/bin/env bash
# Installs the part of the CUDA 13.0 toolkit that compiling and linting the `cuda`/`cudnn`
# features needs (nvcc, its crt/nvvm back ends, the runtime headers and CCCL/thrust), from
# NVIDIA's PyPI wheels: no GPU, no NVIDIA apt repository, no driver. `cargo clippy`/`cargo check`
# run the build scripts (nvcc compiles candle-kernels and our kernels/fused.cu) but link no final
# binary, so no libcuda/libcudnn link stubs are made; linking a binary needs the full toolkit.
#
# Usage: tools/cuda-toolchain.sh [PREFIX]   (default /opt/cuda13-pip; also $CUDA_PIP_PREFIX)
# Then:  export CUDA_HOME=PREFIX/nvidia/cu13 PATH=PREFIX/nvidia/cu13/bin:$PATH CUDA_COMPUTE_CAP=90
# Idempotent: does nothing when this exact set is already installed. Pinned to 13.0.x because the
# 580 driver of the GPU machines rejects PTX from a newer nvcc.
set -euo pipefail
PREFIX=${1:-${CUDA_PIP_PREFIX:-/opt/cuda13-pip}}
WHEELS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-cccl==13.0.85
)
STAMP="$PREFIX/.pixelgen-cuda-toolchain"
if [ -x "$PREFIX/nvidia/cu13/bin/nvcc" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "${WHEELS[*]}" ]; then
  echo "cuda-toolchain: present in $PREFIX"
  exit 0
fi
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
if ! python3 -m pip --version >/dev/null 2>&1; then
  # --target installs are exempt from PEP 668 (PIP_BREAK_SYSTEM_PACKAGES below for old pips): Debian's pip will do.
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip
fi
$sudo mkdir -p "$PREFIX"
$sudo env PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q --disable-pip-version-check --no-deps --upgrade --target "$PREFIX" "${WHEELS[@]}"
"$PREFIX/nvidia/cu13/bin/nvcc" --version | tail -2
echo "${WHEELS[*]}" | $sudo tee "$STAMP" >/dev/null
echo "cuda-toolchain: installed in $PREFIX"
