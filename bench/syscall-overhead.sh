#!/usr/bin/env bash
# What the probes add to one syscall. One run, five setups, the same workload each time
# (N writes of 100 bytes to a loopback TCP socket, then to /dev/null, see src/bin/writeloop.rs):
#   none      no BPF program attached
#   floor     empty programs on the same tracepoints (the cost of the tracepoint path itself)
#   filtered  the agent running, this process outside --pid (dropped in the kernel)
#   captured  the agent capturing this process (100 B copied per write, parsed in user space)
# Prints ns per write for each, the deltas over the floor, and the agent's lost-event count.
# Usage (root): bench/syscall-overhead.sh [N=1000000] [REPEAT=3]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
REPEAT=${2:-3}
cargo build --release -q --bin wirelens -p wirelens
cargo build --release -q --bin writeloop -p wirelens-bench
BIN=target/release
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

one_run() { # $1 = setup name; prints "socket_ns=.. devnull_ns=.."
  local setup=$1 agent=""
  coproc DRAIN { exec "$BIN/writeloop" drain 0; }
  local dpid=$DRAIN_PID
  pids+=("$dpid")
  local port
  read -r port <&"${DRAIN[0]}"
  coproc WL { exec "$BIN/writeloop" "$port" "$N"; }
  local wpid=$WL_PID
  pids+=("$wpid")
  local wl_pid
  read -r wl_pid <&"${WL[0]}"
  case $setup in
    floor)
      "$BIN/wirelens" bench-floor 2>"$tmp/floor.err" & agent=$!
      until grep -q attached "$tmp/floor.err" 2>/dev/null; do sleep 0.1; done ;;
    filtered|captured)
      local target=$wl_pid
      [ "$setup" = filtered ] && target=1   # the agent watches only init, not the writer
      "$BIN/wirelens" run --pid "$target" --output /dev/null 2>"$tmp/agent.err" & agent=$!
      until grep -q capturing "$tmp/agent.err" 2>/dev/null; do sleep 0.1; done ;;
  esac
  [ -n "$agent" ] && pids+=("$agent")
  echo go >&"${WL[1]}"
  local result
  read -r result <&"${WL[0]}"
  wait "$wpid" 2>/dev/null || true
  wait "$dpid" 2>/dev/null || true
  if [ -n "$agent" ]; then
    kill -INT "$agent"; wait "$agent" || true
    if [ "$setup" = captured ]; then
      grep -o 'lost_ringbuf=[0-9]*' "$tmp/agent.err" | tail -1 >"$tmp/lost"
      grep -o 'kernel_events=[0-9]*' "$tmp/agent.err" | tail -1 >"$tmp/events"
    fi
  fi
  echo "$result"
}

declare -A sock null
for setup in none floor filtered captured; do sock[$setup]=""; null[$setup]=""; done
for r in $(seq 1 "$REPEAT"); do
  for setup in none floor filtered captured; do
    res=$(one_run "$setup")
    s=${res#socket_ns=}; s=${s%% *}
    d=${res#*devnull_ns=}
    sock[$setup]+="$s "
    null[$setup]+="$d "
    echo "run $r $setup: socket $s ns, /dev/null $d ns" >&2
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '\nns per 100-byte write, median of %s runs of %s writes (%s)\n' "$REPEAT" "$N" "$(uname -r), $(nproc) CPUs"
printf '%-10s %12s %12s %16s %16s\n' setup socket /dev/null "socket-floor" "/dev/null-floor"
fs=$(echo "${sock[floor]}" | median); fd=$(echo "${null[floor]}" | median)
for setup in none floor filtered captured; do
  s=$(echo "${sock[$setup]}" | median); d=$(echo "${null[$setup]}" | median)
  awk -v n="$setup" -v s="$s" -v d="$d" -v fs="$fs" -v fd="$fd" \
    'BEGIN { printf "%-10s %12.1f %12.1f %16.1f %16.1f\n", n, s, d, s - fs, d - fd }'
done
echo "captured run: $(cat "$tmp/events" 2>/dev/null) $(cat "$tmp/lost" 2>/dev/null) (of $N writes)"
echo "targets: filtered <= floor + 50 ns; captured <= floor + 600 ns with lost_ringbuf=0"
