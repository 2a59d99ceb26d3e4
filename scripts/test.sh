#!/usr/bin/env bash
# Runs every check and test of wirelens, installing what they need first. Live tests load BPF
# programs and start real servers: run as root. Without root, set WIRELENS_SKIP_ROOT_TESTS=1
# to skip them explicitly (they never skip on their own).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt || true
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --all-targets --no-fail-fast
