#!/usr/bin/env bash
# SDXL on the GPU: pixelgen-diffusion (candle) against diffusers eager, same card, same call.
#
# Runs on the GPU machine from the repository root. Expects, in $DIST (default .dist, an ignored
# folder carried to the machine):
#   gpu_bench*.xz             release builds of `--example gpu_bench` (xz; one per feature set,
#                             e.g. gpu_bench-cuda.xz, gpu_bench-cudnn.xz), run one after another
#   diffusers_sdxl_bench.py   the PyTorch side (copied from ../shared/bench at packing time)
# and, in $WHL (default .whl), the diffusers wheel and its one missing dependency:
#   pip download --no-deps diffusers==0.42.1 importlib_metadata==8.7.0
# Writes logs and a RESULT summary under $OUT. See docs/performance.md, "SDXL on the GPU".
set -uo pipefail
DIST=${DIST:-.dist}
WHL=${WHL:-.whl}
OUT=${OUT:-/tmp/gpu_bench_out}
ITERS=${ITERS:-10}
# Implementations to time: the first runs every section (its kernels/profile sections compare
# all three), the others only the whole-model sections (UNet, VAE, pipelines).
KERNELS=${KERNELS:-fused reference}
# Settings to compare, each a comma-separated list of environment assignments ("default": none),
# e.g. CONVS="default PIXELGEN_CONV=gemm PIXELGEN_CUDNN_MIN_ROWS=0"; each runs with every
# implementation above, and again only the first runs every section.
CONVS=${CONVS:-default}
# SKIP_BASELINE=1 skips diffusers (only when its numbers from the same warm machine exist).
PY=${PY:-python3}
# The tiny fixture model (correctness check, tokenizers of the pipeline run), in the checkout.
FIXTURE=${FIXTURE:-crates/pixelgen-diffusion/tests/fixtures/tiny-sdxl}
mkdir -p "$OUT"
site=/opt/torch/.venv/lib/python3.12/site-packages/nvidia
export LD_LIBRARY_PATH=$site/cu13/lib:$site/cudnn/lib:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}

{
  date -u +%Y-%m-%dT%H:%MZ
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  nvidia-smi | head -12
} > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

status=0
for xz in "$DIST"/gpu_bench*.xz; do
  [ -e "$xz" ] || { echo "no $DIST/gpu_bench*.xz"; status=1; break; }
  name=$(basename "$xz" .xz)
  "$PY" -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))" "$xz" "/tmp/$name"
  chmod +x "/tmp/$name"
  only=check,kernels,profile,unet,clip,vae,pipe,throughput
  for k in $KERNELS; do
    for conv in $CONVS; do
      tag=$k; [ "$conv" = default ] || tag=$k-$(echo "$conv" | tr -c 'A-Za-z0-9\n' '-')
      echo "=== $name --kernels $k (settings: $conv)"
      ( if [ "$conv" != default ]; then IFS=, read -ra kv <<< "$conv"; export "${kv[@]}"; fi
        exec "/tmp/$name" --device cuda --iters "$ITERS" --fixture "$FIXTURE" --kernels "$k" --only "$only" ) \
        2>&1 | tee "$OUT/$name-$tag.log"
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
      only=unet,vae,pipe,throughput
    done
  done
done

if [ -n "${SKIP_BASELINE:-}" ]; then
  grep -h '^RESULT' "$OUT"/*.log > "$OUT/results.txt"
  echo "=== baseline skipped (SKIP_BASELINE); exit $status"
  exit $status
fi
echo "=== diffusers eager"
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHL"/*.whl
PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 "$PY" "$DIST/diffusers_sdxl_bench.py" --mode eager --iters "$ITERS" \
  --out "$OUT/diffusers_eager.json" 2>&1 | tee "$OUT/diffusers_eager.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

grep -h '^RESULT' "$OUT"/*.log > "$OUT/results.txt"
echo "=== summary ($(wc -l < "$OUT/results.txt") results), exit $status"
exit $status
