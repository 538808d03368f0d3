#!/usr/bin/env bash
# Shows the proxy splitting traffic: starts two versions of a small app (sluice-load serve),
# sluice-proxy on proxy/examples/split.yaml (80/20), sends load, moves the weight through the
# admin API, sends load again, and stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --workspace --bins --quiet
bin=target/debug
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

"$bin/sluice-load" serve --name v1 --listen 127.0.0.1:9001 2>/dev/null & pids+=($!)
"$bin/sluice-load" serve --name v2 --listen 127.0.0.1:9002 2>/dev/null & pids+=($!)
RUST_LOG=warn "$bin/sluice-proxy" --config proxy/examples/split.yaml & pids+=($!)

for _ in $(seq 100); do
  curl -sf http://127.0.0.1:9901/readyz >/dev/null 2>&1 && break
  sleep 0.05
done

echo "== 2000 requests at weight 20 (v2 is the canary)"
"$bin/sluice-load" run http://127.0.0.1:8080/ -c 8 -n 2000
echo
echo "== a tester forcing the canary with a header"
curl -s -H 'x-canary: always' http://127.0.0.1:8080/
echo
echo "== weight to 60 through the admin API"
curl -s -X PUT http://127.0.0.1:9901/routes/chip/weight -d '{"weight": 60}'
echo
echo "== 2000 requests at weight 60"
"$bin/sluice-load" run http://127.0.0.1:8080/ -c 8 -n 2000
echo
echo "== a bad update is refused and changes nothing"
curl -s -X PUT http://127.0.0.1:9901/routes/chip/weight -d '{"weight": 150}'
echo
echo "== some of the proxy's metrics"
curl -s http://127.0.0.1:9901/metrics | grep -E '^sluice_(requests_total|route_weight)' | grep -v ' 0$'
