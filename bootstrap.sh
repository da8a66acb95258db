#!/usr/bin/env bash
# Installs what DGX-Pixels needs on a fresh Debian/Ubuntu machine, then returns:
#   - the Rust toolchain must exist (https://rustup.rs); we say so if it does not,
#   - `just` (the task runner) is installed with cargo if missing,
#   - `just setup` installs the system packages (apt) the recipes need.
# Safe to run again: every step checks first.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v cargo >/dev/null 2>&1; then
  echo "bootstrap: no Rust toolchain found. Install it first (https://rustup.rs), then run this again." >&2
  exit 1
fi
if ! command -v just >/dev/null 2>&1; then
  echo "bootstrap: installing the task runner 'just' with cargo (one time, about a minute)..."
  cargo install just --locked --quiet
  export PATH="$HOME/.cargo/bin:$PATH"
fi
just setup
