#!/usr/bin/env bash
# Bounded fuzzing of the STM-Link stream decoder: `run.sh [SECONDS]` (default 30).
# Installs cargo-fuzz and the nightly toolchain when missing; fails on any crash (the input
# is kept in artifacts/stm_decoder/).
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-30}
cache=${BRANCHD_CACHE:-$HOME/.cache/branchd}
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p corpus/stm_decoder
cargo +nightly fuzz run --target-dir "$cache/target-fuzz" stm_decoder -- \
  -max_total_time="$secs" -max_len=8192 corpus/stm_decoder 2>&1 | tail -n 3
