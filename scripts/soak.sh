#!/usr/bin/env bash
# Soak (not in CI): SOAK_SECONDS (600) of SOAK_RATE (300) requests/s, open loop, through one
# proxy in front of two backends, while the canary's weight changes every second through the
# proxy's admin API (a new table each time). Passes when no request failed and the proxy's
# resident memory and open descriptors stayed flat: under 5 % of growth from the end of the
# warm-up (SOAK_WARMUP, 60 s) to the end. Everything binds to 127.0.0.1 and stops by itself;
# only the processes it started are stopped. Prints one line for the README's table.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${SOAK_SECONDS:-600}
rate=${SOAK_RATE:-300}
warmup=${SOAK_WARMUP:-60}
# SOAK_BIN: a folder with sluice-proxy and sluice-load already built (else a release build)
if [ -n "${SOAK_BIN:-}" ]; then
  bin=$SOAK_BIN
else
  cargo build --release --quiet --bins
  bin=target/release
fi
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
b1=$(free_port); b2=$(free_port); listen=$(free_port); admin=$(free_port)
"$bin/sluice-load" serve --name v1 --listen "127.0.0.1:$b1" & pids+=($!)
"$bin/sluice-load" serve --name v2 --listen "127.0.0.1:$b2" & pids+=($!)
cat > "$work/proxy.yaml" <<YAML
listen: 127.0.0.1:$listen
admin: {listen: 127.0.0.1:$admin}
backends:
  - {name: v1, endpoints: ["127.0.0.1:$b1"]}
  - {name: v2, endpoints: ["127.0.0.1:$b2"]}
routes:
  - {name: app, stable: v1, canary: v2, weight: 0}
YAML
"$bin/sluice-proxy" --config "$work/proxy.yaml" 2> "$work/proxy.log" & proxy=$!
pids+=("$proxy")
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

sample() { # seconds since start, RSS in KiB, open descriptors
  local rss fds
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$proxy/status")
  fds=$(find "/proc/$proxy/fd" -mindepth 1 -maxdepth 1 | wc -l)
  echo "$1 $rss $fds" >> "$work/samples"
}

"$bin/sluice-load" run --rate "$rate" --duration "${seconds}s" -c 32 --json -q \
  "http://127.0.0.1:$listen/" > "$work/load.json" &
load=$!
pids+=("$load")
start=$(date +%s)
changes=0
while kill -0 "$load" 2>/dev/null; do
  now=$(( $(date +%s) - start ))
  weight=$(( RANDOM % 101 ))
  if curl -fsS -X PUT -H 'content-type: application/json' -d "{\"weight\": $weight}" \
    "http://127.0.0.1:$admin/routes/app/weight" >/dev/null; then
    changes=$(( changes + 1 ))
  fi
  if [ $(( now % 10 )) -eq 0 ]; then sample "$now"; fi
  sleep 1
done
wait "$load"
sample "$(( $(date +%s) - start ))"

python3 - "$work/load.json" "$work/samples" "$warmup" "$changes" "$seconds" "$rate" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
rows = [tuple(int(x) for x in line.split()) for line in open(sys.argv[2]) if line.strip()]
warmup, changes, seconds, rate = (int(a) for a in sys.argv[3:7])
failed = report["transport_errors"] + sum(n for s, n in report["by_status"].items() if int(s) >= 500)
after = [r for r in rows if r[0] >= warmup] or rows
base = after[0]
rss_growth = (max(r[1] for r in after) - base[1]) / base[1] * 100
fd_growth = (max(r[2] for r in after) - base[2]) / base[2] * 100
print(f"soak: {seconds} s at {rate} req/s, {changes} weight changes: {report['responses']} responses, "
      f"{failed} failed; proxy RSS {base[1] / 1024:.1f} -> {after[-1][1] / 1024:.1f} MiB "
      f"(peak growth {rss_growth:+.1f} %), open descriptors {base[2]} -> {after[-1][2]} "
      f"(peak growth {fd_growth:+.1f} %), p99 {report['latency']['p99_us'] / 1000:.1f} ms")
ok = failed == 0 and rss_growth < 5 and fd_growth < 5
print("soak: " + ("passed" if ok else "FAILED"))
sys.exit(0 if ok else 1)
PY
