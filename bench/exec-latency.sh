#!/usr/bin/env bash
# How fast a new process is decided: the time from its exec to the agent's decision in the
# kernel's map (from the agent's debug log), and whether its first request was captured.
# The agent keeps only `curl` (include cmdline ^curl) with `undecided: drop`, so a request
# made before the decision would be lost; N curl processes each make one request to a local
# nginx-free Python server. Target: decided in < 10 ms, every first request captured.
# Usage (root): bench/exec-latency.sh [N=50]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-50}
cargo build --release -q -p wirelens --bin wirelens
BIN=$PWD/target/release
tmp=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$tmp" >/dev/null 2>&1 &
server=$!
agent=""
cleanup() {
  [ -n "$agent" ] && kill -INT "$agent" 2>/dev/null && wait "$agent" 2>/dev/null || true
  kill "$server" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
until curl -s -o /dev/null "http://127.0.0.1:$port/"; do sleep 0.1; done
cat >"$tmp/cfg.yaml" <<YAML
filters:
  include:
    cmdline: ["^curl"]
  undecided: drop
YAML
WIRELENS_LOG=info,wirelens::filter_ctl=debug "$BIN/wirelens" run --config "$tmp/cfg.yaml" \
  --output "$tmp/records.jsonl" 2>"$tmp/agent.err" &
agent=$!
until grep -q capturing "$tmp/agent.err"; do sleep 0.1; done
for i in $(seq 1 "$N"); do
  curl -s -o /dev/null "http://127.0.0.1:$port/exec-$i"
done
sleep 0.5
kill -INT "$agent"; wait "$agent" || true
agent=""
captured=$(grep -c '"role":"client"' "$tmp/records.jsonl" || true)
grep -o 'after_exec_us=[0-9]*' "$tmp/agent.err" | cut -d= -f2 | sort -n >"$tmp/lat"
decided=$(wc -l <"$tmp/lat")
pct() { awk -v p="$1" '{a[NR]=$1} END { if (NR == 0) { print "-"; exit } i = int(NR * p / 100); if (i < 1) i = 1; print a[i] }' "$tmp/lat"; }
echo "exec -> decision (us) over $decided decided processes: p50 $(pct 50)  p90 $(pct 90)  p99 $(pct 99)  max $(tail -1 "$tmp/lat")"
echo "first requests captured: $captured of $N curl processes (undecided processes are dropped)"
echo "target: decided < 10 ms after exec; every first request captured"
