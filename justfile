# DGX-Pixels task runner. `./bootstrap.sh` installs `just` itself and runs `just setup`.

# Debian/Ubuntu packages the recipes need (grows with the Bevy crates).
# xvfb, mesa-vulkan-drivers (lavapipe), libvulkan1 and xauth: the editor runs in a real window
# under Xvfb without a GPU (`just editor-shot`).
apt_packages := "pkg-config xvfb mesa-vulkan-drivers libvulkan1 xauth"

# List the recipes.
default:
    @just --list

# Install the system packages (apt) the build and tests need; skips what is already there.
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    missing=()
    for p in {{apt_packages}}; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ]; then
      sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
      $sudo apt-get update -qq
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
    if command -v rustup >/dev/null 2>&1; then rustup component add rustfmt clippy >/dev/null 2>&1 || true; fi
    # CUDA 13.0 compiler and headers from PyPI wheels (no GPU needed): `just lint` checks the cuda/cudnn code.
    tools/cuda-toolchain.sh "/opt/cuda13-pip"
    echo "setup: system packages present ({{apt_packages}}), CUDA toolchain in /opt/cuda13-pip"

# Plain `cargo test` also builds the examples as programs: tests/example_windows.rs runs them.
# (A recipe's `just --list` text is the one comment line right above it.)

# Everything CI checks: formatting, lints (benches included), then all tests and doc examples.
test: lint
    cargo test --workspace

# The `cudnn` and `cuda` builds are linted with the toolchain from `just setup`, in their own
# target dir (nvcc runs in build scripts; nothing is linked).

# Formatting and clippy with warnings as errors, the CUDA/cuDNN builds included.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    for f in cudnn cuda; do CUDA_HOME="/opt/cuda13-pip/nvidia/cu13" PATH="/opt/cuda13-pip/nvidia/cu13/bin:$PATH" CUDA_COMPUTE_CAP=90 CUDAFORGE_THREADS="$(nproc)" CARGO_TARGET_DIR=target/cuda cargo clippy -p pixelgen-diffusion -p pixelgen --features $f --all-targets -- -D warnings || exit 1; done

# Criterion benchmarks (results go to target/criterion; record them in docs/performance.md).
bench:
    cargo bench -p pixelgen-pixel

# `just demo` runs the lean `pixelgen` build (pixel pipeline only: neither candle nor Bevy is compiled).

# The demo: turn an AI-style upscaled sprite into true pixel art, before/after side by side.
demo:
    mkdir -p target/demo
    cargo run --release -p pixelgen-cli --no-default-features -- pixelize assets/examples/potion_ai.png target/demo/potion.png --transparent --colors auto --preview target/demo/potion_before_after.png
    @echo "demo: wrote target/demo/potion.png and target/demo/potion_before_after.png"

# Pixelize any image: `just pixelize IN.png OUT.png --colors 16 --palette pico-8` (lean build).
pixelize *ARGS:
    cargo run --release -p pixelgen-cli --no-default-features -- pixelize {{ARGS}}

# The `pixelgen` command line (full build): `just pixelgen generate "red potion" -o potion.png --model pixel-art-fast`.
pixelgen *ARGS:
    cargo run --release -p pixelgen-cli -- {{ARGS}}

# Build every asset of a manifest, skipping what is up to date: `just pack assets.pack.ron --dry-run`.
pack MANIFEST *ARGS:
    cargo run --release -p pixelgen-cli -- pack '{{MANIFEST}}' {{ARGS}}

# Registry models: `just models list`, `just models fetch pixel-art-fast` (into the hub cache).
models *ARGS:
    cargo run --release -p pixelgen-cli -- models {{ARGS}}

# What is installed and what is missing (build features, device, hub cache, models).
doctor:
    cargo run --release -p pixelgen-cli -- doctor

# Install the `pixelgen` binary into ~/.cargo/bin (`--features cuda` for an NVIDIA GPU).
install-cli *ARGS:
    cargo install --path crates/pixelgen-cli {{ARGS}}

# A diffusers SDXL folder: see docs/models.md. `just generate-tiny` runs the same code on the tiny
# random test model (random weights: it proves the pipeline runs, the picture is noise).

# Text to image with SDXL: `just generate MODEL_DIR "prompt" OUT.png`.
generate MODEL PROMPT OUT="target/demo/txt2img.png" *ARGS="":
    mkdir -p "$(dirname '{{OUT}}')"
    cargo run --release -p pixelgen-diffusion --example txt2img -- --model '{{MODEL}}' --prompt '{{PROMPT}}' --out '{{OUT}}' {{ARGS}}

# The txt2img pipeline on the tiny random SDXL test model (CPU, seconds; the image is noise).
generate-tiny:
    just generate crates/pixelgen-diffusion/tests/fixtures/tiny-sdxl "pixel art red potion" target/demo/tiny_txt2img.png --width 64 --height 64 --steps 4

# The editor panel in a window (procedural demo engine; pass a diffusers SDXL folder for the real model).
editor *ARGS:
    cargo run --example editor -- {{ARGS}}

# The editor under Xvfb, driven by a script: screenshots in target/editor-shots/ (no GPU needed).
editor-shot:
    mkdir -p target/editor-shots
    PIXELGEN_EDITOR_SCRIPT=target/editor-shots xvfb-run -a -s "-screen 0 1280x720x24" cargo run --example editor
    @echo "editor-shot: wrote target/editor-shots/editor_empty.png and editor_generated.png"

# A chest that drops loot whose icons are generated at runtime (demo engine; `--model DIR` for SDXL).
loot *ARGS:
    cargo run --example runtime_loot -- {{ARGS}}

# An animated character from a generated sprite sheet (demo engine; `--model DIR` for SDXL).
sprite-sheet *ARGS:
    cargo run --example sprite_sheet -- {{ARGS}}

# A generated grass/water tileset painted with autotiling on a TilemapChunk (demo engine; `--model DIR`).
tilemap *ARGS:
    cargo run --example tilemap -- {{ARGS}}

# A tiny top-down dungeon whose hero, enemies and items are generated (demo engine; `--model DIR`).
dungeon *ARGS:
    cargo run --example dungeon -- {{ARGS}}

# The game examples under Xvfb, scripted, with their screenshots checked (no GPU needed).
examples-shot:
    cargo build --examples
    cargo test --test example_windows
