#!/usr/bin/env bash
# What the probes add to one syscall. One run, four setups, the same workload each time
# (N writes of 100 bytes to a loopback TCP socket, then to /dev/null; src/bin/writeloop.rs):
#   none      no BPF program attached
#   floor     empty programs on the same tracepoints (the cost of the tracepoint path itself)
#   rawfloor  instead, raw tracepoints on sys_enter/sys_exit that only test the syscall number
#             (what the other kind of hook would cost; `wirelens bench-floor --raw`)
#   filtered  the agent running, this process outside --pid (dropped in the kernel)
#   captured  the agent capturing this process (100 B copied per write, parsed in user space)
# For each: ns per write call (median of REPEAT runs) and the difference to the floor; for the
# setups with programs also the kernel's own measure of them (bpf_stats), which is the probe
# cost without the noise of a 2-CPU machine, as ns per write of the workload: the programs on
# sendto (the socket writes: a Rust TcpStream writes with send(2)), on recvfrom (the drain's
# reads of those bytes; the drain is another process, so the agent capturing by pid filters
# it out) and on write (the /dev/null writes); and the events the agent lost.
# The writer and its drain are pinned to CPU 0, the agent to CPU 1 (when there are two).
# Usage (root): [WIRELENS_BENCH_BIN=DIR] bench/syscall-overhead.sh [N=1000000] [REPEAT=3]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
REPEAT=${2:-3}
# WIRELENS_BENCH_BIN=DIR: use the wirelens and writeloop binaries in DIR as they are (to compare
# two builds in the same time window); otherwise build them.
BIN=${WIRELENS_BENCH_BIN:-}
if [ -z "$BIN" ]; then
  cargo build --release -q -p wirelens --bin wirelens
  cargo build --release -q -p wirelens-bench --bin writeloop
  BIN=${CARGO_TARGET_DIR:-$PWD/target}/release
fi
WORK_CPU=0
AGENT_CPU=$(( $(nproc) > 1 ? 1 : 0 ))
tmp=$(mktemp -d)
agent=""
old_stats=$(cat /proc/sys/kernel/bpf_stats_enabled 2>/dev/null || echo 0)
cleanup() {
  [ -n "$agent" ] && kill -INT "$agent" 2>/dev/null || true
  pkill -P $$ 2>/dev/null || true
  echo "$old_stats" >/proc/sys/kernel/bpf_stats_enabled 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
echo 1 >/proc/sys/kernel/bpf_stats_enabled

# "run_time_ns run_cnt" summed over the programs whose names match each pattern given, one
# line per pattern.
prog_stats() {
  bpftool prog show 2>/dev/null | awk -v pats="$*" '
    BEGIN { n = split(pats, pat, " ") }
    /^[0-9]+:/ { keep = 0; for (i = 1; i <= NF; i++) if ($i == "name") for (j = 1; j <= n; j++) if ($(i+1) ~ pat[j]) keep = j }
    keep { for (i = 1; i <= NF; i++) { if ($i == "run_time_ns") t[keep] += $(i+1); if ($i == "run_cnt") c[keep] += $(i+1) } }
    END { for (j = 1; j <= n; j++) printf "%d %d\n", t[j], c[j] }'
}

# Program time between two prog_stats lines: ns per workload write ($3 = per), or ns per
# enter + exit pair ($3 = pair); "-" when none ran.
prog_delta() {
  awk -v b="$1" -v a="$2" -v how="$3" -v n="$N" 'BEGIN { split(b, x, " "); split(a, y, " "); c = y[2] - x[2];
    if (c <= 0) print "-"; else if (how == "pair") printf "%.1f", (y[1] - x[1]) / c * 2; else printf "%.1f", (y[1] - x[1]) / n }'
}

# CPU time (user + system) of process $1 so far, in ns.
cpu_ns() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%d\n", ($14 + $15) * 1e9 / hz }' "/proc/$1/stat"; }

one_run() { # $1 = setup; prints "socket_ns devnull_ns lost events agent_ns_per_event sendto recvfrom write"
  local setup=$1 d="$tmp/$1.$RANDOM"
  mkdir -p "$d"
  taskset -c "$WORK_CPU" "$BIN/writeloop" "$N" "$d" >"$d/out" &
  local wl=$!
  until [ -s "$d/pid" ]; do sleep 0.02; done
  local wpid; wpid=$(cat "$d/pid")
  agent=""
  local prefix=fl how=per
  case $setup in
    floor|rawfloor)
      local raw=""
      [ "$setup" = rawfloor ] && raw="--raw"
      taskset -c "$AGENT_CPU" "$BIN/wirelens" bench-floor $raw 2>"$d/agent.err" & agent=$!
      until grep -q attached "$d/agent.err" 2>/dev/null; do sleep 0.05; done ;;
    filtered|captured)
      local target=$wpid
      [ "$setup" = filtered ] && target=1   # the agent watches only init
      taskset -c "$AGENT_CPU" "$BIN/wirelens" run --pid "$target" --output /dev/null 2>"$d/agent.err" & agent=$!
      until grep -q capturing "$d/agent.err" 2>/dev/null; do sleep 0.05; done
      prefix=tp ;;
  esac
  local pats="^${prefix}_(enter|exit)_sendto\$ ^${prefix}_(enter|exit)_recvfrom\$ ^${prefix}_(enter|exit)_write\$"
  # The raw tracepoints run for every syscall: their time per enter + exit pair instead.
  [ "$setup" = rawfloor ] && { pats="^fl_raw_(enter|exit)\$"; how=pair; }
  local before after cpu0=0 cpu1=0
  before=$(prog_stats $pats)
  [ -n "$agent" ] && cpu0=$(cpu_ns "$agent")
  touch "$d/go"
  wait "$wl"
  after=$(prog_stats $pats)
  # Let the agent finish what is queued, then take its CPU time (its own work per event).
  [ -n "$agent" ] && { sleep 0.5; cpu1=$(cpu_ns "$agent"); }
  local progs="- - -"
  if [ -n "$agent" ]; then
    progs=""
    local i
    for i in 1 2 3; do
      local b a
      b=$(sed -n "${i}p" <<<"$before"); a=$(sed -n "${i}p" <<<"$after")
      if [ -z "$a" ]; then progs+=" -"; else progs+=" $(prog_delta "$b" "$a" "$how")"; fi
    done
    progs=${progs# }
    [ "$setup" = rawfloor ] && progs="${progs%% *} - ${progs%% *}"
    kill -INT "$agent"; wait "$agent" || true
    agent=""
  fi
  local lost events
  lost=$(grep -o 'lost_ringbuf=[0-9]*' "$d/agent.err" 2>/dev/null | tail -1 | cut -d= -f2)
  events=$(grep -o 'kernel_events=[0-9]*' "$d/agent.err" 2>/dev/null | tail -1 | cut -d= -f2)
  local res; res=$(cat "$d/out")
  local s=${res#socket_ns=}; s=${s%% *}
  local n=${res#*devnull_ns=}
  local per_event="-"
  if [ -n "${events:-}" ] && [ "${events:-0}" -gt 0 ]; then
    per_event=$(( (cpu1 - cpu0) / events ))
  fi
  echo "$s $n ${lost:--} ${events:--} $per_event $progs"
}

declare -A rows
for r in $(seq 1 "$REPEAT"); do
  for setup in none floor rawfloor filtered captured; do
    line=$(one_run "$setup")
    rows[$setup]+="$line"$'\n'
    echo "run $r $setup: $line" >&2
  done
done

median() { grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
col() { printf '%s' "${rows[$1]}" | awk -v c="$2" '{print $c}' | median; }
printf '\nns per 100-byte write, median of %s runs of %s writes (kernel %s, %s CPUs)\n' \
  "$REPEAT" "$N" "$(uname -r)" "$(nproc)"
printf '%-10s %10s %10s %14s %14s %12s %12s %12s %8s %16s\n' setup socket /dev/null socket-floor devnull-floor \
  "bpf sendto" "bpf recvfrom" "bpf write" lost "agent ns/event"
fs=$(col floor 1); fd=$(col floor 2)
for setup in none floor rawfloor filtered captured; do
  awk -v n="$setup" -v s="$(col "$setup" 1)" -v d="$(col "$setup" 2)" -v fs="$fs" -v fd="$fd" \
      -v l="$(col "$setup" 3)" -v a="$(col "$setup" 5)" -v ps="$(col "$setup" 6)" \
      -v pr="$(col "$setup" 7)" -v pw="$(col "$setup" 8)" \
    'BEGIN { printf "%-10s %10.1f %10.1f %14.1f %14.1f %12s %12s %12s %8s %16s\n", n, s, d, s - fs, d - fd, ps, pr, pw, l, a }'
done
echo "captured: kernel_events per run $(col captured 4) of $N writes"
echo "targets: filtered <= floor + 50 ns; captured <= floor + 600 ns with lost = 0"
echo "bpf sendto / recvfrom / write: the kernel's measure (bpf_stats) of the programs on those syscalls (their exits),"
echo "  in ns per write of the workload: the socket writes (sendto), the drain's reads of them (recvfrom, another"
echo "  process), the /dev/null writes (write); rawfloor: ns per enter + exit pair of any syscall"
echo "agent ns/event: the agent's CPU time (user + system, /proc) per event captured, while the workload ran"
