#!/usr/bin/env bash
# Instructions per proxied request, counted by valgrind's callgrind: a figure that does not move
# with the machine's load, for comparing two builds of the request path.
#
#   scripts/instructions.sh [--nginx] [REQUESTS] [PROXY_BINARY]
#
# Starts two sluice-load backends and sluice-proxy (release build, 80/20 route) under
# callgrind, sends 500 warm-up requests, then counts the user-space instructions of REQUESTS
# (3000 by default) keep-alive requests from 8 connections. Installs valgrind from Debian when
# missing. Prints the count per request and leaves the profile in target/callgrind/ for
# `callgrind_annotate`.
#
# --nginx: the same for nginx (from Debian, installed when missing) with the benchmark's peer
# configuration (scripts/bench/peer-configs/nginx.proxy.conf, 80/20 with keep-alive upstreams),
# run as one process (`master_process off`), so that the figure has a peer.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PEER=sluice
if [ "${1:-}" = --nginx ]; then PEER=nginx; shift; fi
N=${1:-3000}
PROXY=${2:-$ROOT/target/release/sluice-proxy}
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "instructions.sh: REQUESTS must be a positive number" >&2; exit 2; }

export PATH="$PATH:/usr/sbin"
missing=()
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
[ "$PEER" = nginx ] && { command -v nginx >/dev/null 2>&1 || missing+=(nginx); }
if [ ${#missing[@]} -gt 0 ]; then
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root apt-get update -qq
  # policy-rc.d keeps nginx's service from being started by the install
  as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
  as_root rm -f /usr/sbin/policy-rc.d
fi
cargo build --release -q -p sluice-proxy -p sluice-loadtest
LOAD=$ROOT/target/release/sluice-load

RUN=$(mktemp -d /tmp/sluice-instructions.XXXXXX)
OUT=$ROOT/target/callgrind
mkdir -p "$OUT"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$RUN"; }
trap cleanup EXIT
addr_of() { for _ in $(seq 300); do [ -s "$1" ] && break; sleep 0.1; done; grep -o '"listen": *"[^"]*"' "$1" | sed 's/.*"\([^"]*\)"$/\1/'; }

for v in v1 v2; do
  "$LOAD" serve --name "$v" --listen 127.0.0.1:0 --addr-file "$RUN/$v.json" 2>/dev/null & PIDS+=($!)
done
B1=$(addr_of "$RUN/v1.json"); B2=$(addr_of "$RUN/v2.json")
if [ "$PEER" = nginx ]; then
  free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
  PORT=$(free_port)
  mkdir -p "$RUN/tmp"
  { echo "master_process off;"
    sed -e "s#@RUN@#$RUN#g; s#@B1@#${B1##*:}#g; s#@B2@#${B2##*:}#g; s#@PORT@#$PORT#g" \
      scripts/bench/peer-configs/nginx.proxy.conf
  } > "$RUN/nginx.conf"
  valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out.%p" \
    nginx -c "$RUN/nginx.conf" -e "$RUN/nginx.err" >"$RUN/proxy.log" 2>&1 &
  VG=$!; PIDS+=($VG)
  printf '{"listen": "127.0.0.1:%s"}\n' "$PORT" > "$RUN/proxy.json"
  for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
else
cat > "$RUN/proxy.yaml" <<EOF
listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0}
backends:
  - {name: v1, endpoints: ["$B1"]}
  - {name: v2, endpoints: ["$B2"]}
routes:
  - {name: app, stable: v1, canary: v2, weight: 20}
EOF
valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out.%p" \
  "$PROXY" -c "$RUN/proxy.yaml" --addr-file "$RUN/proxy.json" >"$RUN/proxy.log" 2>&1 &
VG=$!; PIDS+=($VG)
fi
URL="http://$(addr_of "$RUN/proxy.json")/"
"$LOAD" run -q -c 8 -n 500 "$URL" >/dev/null
callgrind_control -z "$VG" >/dev/null 2>&1
REPORT=$("$LOAD" run -q -c 8 -n "$N" --json "$URL")
callgrind_control -d "$VG" >/dev/null 2>&1
OK=$(echo "$REPORT" | grep -o '"200": [0-9]*' | awk '{print $2}')
[ "${OK:-0}" = "$N" ] || { echo "instructions.sh: only ${OK:-0} of $N requests got 200" >&2; exit 1; }
sleep 0.5
PROFILE=$(ls -t "$OUT"/callgrind.out."$VG".* | head -1)
TOTAL=$(callgrind_annotate "$PROFILE" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",", "", $1); print $1; exit}')
echo "$PEER: instructions per request: $((TOTAL / N))   ($N requests; profile: ${PROFILE#"$ROOT"/})"
