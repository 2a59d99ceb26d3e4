#!/usr/bin/env bash
# Builds wirelens and runs it on this host with the embedded defaults: JSON Lines records on
# stdout, one per request/response exchange. Extra arguments go to `wirelens run`
# (e.g. --format table, --pid 1234). Needs root (or CAP_BPF + CAP_PERFMON).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --bin wirelens
exec ./target/release/wirelens run "$@"
