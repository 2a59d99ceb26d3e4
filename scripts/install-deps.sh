#!/usr/bin/env bash
# Installs what wirelens needs on Debian, only what is missing.
#   scripts/install-deps.sh          build dependencies (clang, gcc, libelf, zlib, pkg-config)
#   scripts/install-deps.sh --test   plus the servers and tools the tests drive
#   scripts/install-deps.sh --bench  plus the servers and load generators of bench/overhead
#                                    and bench/soak (wrk, redis-benchmark, pgbench, tshark)
set -euo pipefail

want=(clang llvm gcc libc6-dev libelf-dev zlib1g-dev pkg-config make)
if [ "${1:-}" = "--test" ]; then
  # nftables: the Service address (a DNAT rule) of tests/live_otlp.rs.
  want+=(nginx-light python3 curl tcpdump tshark iproute2 nftables bpftool util-linux procps
         redis-server redis-tools mariadb-server mariadb-client libdbd-mariadb-perl
         postgresql postgresql-contrib dnsmasq-base dnsutils prometheus)
fi
if [ "${1:-}" = "--test" ] || [ "${1:-}" = "--bench" ]; then
  # bench/soak runs in the tests too (tests/soak_short.rs).
  want+=(python3 nginx-light redis-server redis-tools postgresql postgresql-contrib wrk
         tcpdump tshark util-linux procps)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# kubectl renders the Kubernetes manifests in the tests (`kubectl kustomize`). Machines of this
# project ship it; elsewhere Debian's kubernetes-client provides it.
if [ "${1:-}" = "--test" ] && ! command -v kubectl >/dev/null 2>&1; then
  echo "install-deps: installing kubectl" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends kubectl >&2 \
    || apt-get install -y -q --no-install-recommends kubernetes-client >&2
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: cargo not found: install a Rust toolchain >= 1.89 (rustup)" >&2
  exit 1
fi
