#!/usr/bin/env bash
# Costs as the work grows (not in CI; a few minutes): real processes on 127.0.0.1.
#  1. publish → applied by every subscribed proxy, p50 and p99 over 100 weight changes, with
#     SCALE_FLEETS proxy processes ("3 30 100"), read from the controller's /v1/acks;
#  2. the controller's CPU (share of one core) and memory at rest with 100 rollouts and 100
#     proxies reporting every second, over SCALE_REST seconds (30);
#  3. a proxy's memory with 10 000 open idle client connections, per connection.
# SCALE_BIN: a folder with sluice, sluice-proxy and sluice-load already built (else a release
# build). Only the processes it started are stopped. Prints the README's scale table.
set -euo pipefail
cd "$(dirname "$0")/.."

fleets=${SCALE_FLEETS-3 30 100}
rest=${SCALE_REST:-30}
if [ -n "${SCALE_BIN:-}" ]; then
  bin=$SCALE_BIN
else
  cargo build --release --quiet --bins
  bin=target/release
fi
bin=$(cd "$bin" && pwd)
work=$(mktemp -d)
pids=()
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
backends=()
cleanup() {
  stop_all
  for p in "${backends[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
json() { # URL, then a Python expression over `d`
  curl -fsS "$1" | python3 -c "import json, sys; d = json.load(sys.stdin); print($2)"
}
wait_for() { # what, command…
  local what=$1
  shift
  for _ in $(seq 600); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $what" >&2
  return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

b1=$(free_port)
b2=$(free_port)
# the backends live through every phase; `pids` are the phase's own processes
"$bin/sluice-load" serve --name v1 --listen "127.0.0.1:$b1" & backends+=($!)
"$bin/sluice-load" serve --name v2 --listen "127.0.0.1:$b2" & backends+=($!)

rollout() { # name, steps (YAML lines)
  cat <<YAML
---
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {name: $1, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: $1}}
  template:
    metadata: {labels: {app: $1}}
    spec: {containers: [{name: app, image: "chip:v1"}]}
  strategy:
    canary:
      trafficRouting: {sluice: {hosts: [$1.test]}}
      steps:
$2
YAML
}

# controller DIR PORT DOCS…: writes the config and starts the controller
start_controller() {
  local dir=$1 port=$2
  shift 2
  mkdir -p "$dir"
  {
    cat <<YAML
apiVersion: sluice.dev/v1alpha1
kind: LocalRuntime
metadata: {name: scale}
spec:
  listen: 127.0.0.1:$port
  leaseSeconds: 10
  images:
    "chip:v1": ["127.0.0.1:$b1"]
    "chip:v2": ["127.0.0.1:$b2"]
YAML
    printf '%s\n' "$@"
  } > "$dir/sluice.yaml"
  RUST_LOG=warn "$bin/sluice" controller -c "$dir/sluice.yaml" 2> "$dir/controller.log" &
  controller=$!
  pids+=("$controller")
  wait_for "the controller" curl -fsS "http://127.0.0.1:$port/v1/rollouts"
}

start_proxies() { # dir, url, count
  for i in $(seq "$3"); do
    RUST_LOG=warn "$bin/sluice-proxy" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
      --control-plane "$2" --proxy-id "proxy-$i" --cache-dir "$1/cache-$i" \
      2> "$1/proxy-$i.log" &
    pids+=($!)
  done
}

subscribed() { # url, route, count: every proxy has applied the route's generation
  [ "$(json "$1/v1/rollouts/$2" "(lambda w: int(bool(w) and w['verified'] and w['expected'] == $3))(d['status']['canary'].get('weights'))")" = 1 ]
}


steps=""
for k in $(seq 1 100); do
  steps+="      - setWeight: $k"$'\n'
  [ "$k" -lt 100 ] && steps+="      - pause: {}"$'\n'
done

echo "== publish → applied by every proxy, 100 weight changes"
declare -A p50 p99
for n in $fleets; do
  port=$(free_port)
  url="http://127.0.0.1:$port"
  start_controller "$work/fleet-$n" "$port" "$(rollout chip "$steps")"
  start_proxies "$work/fleet-$n" "$url" "$n"
  wait_for "$n proxies" subscribed "$url" chip "$n"
  "$bin/sluice" --server "$url" set image chip app=chip:v2 >/dev/null
  # one process walks the 99 steps: a curl and a Python per check would take a third of
  # this machine while the proxies apply
  python3 - "$url" "$n" "$bin/sluice" <<'PY'
import json, subprocess, sys, time, urllib.request
url, n, cli = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def wait(what, ok):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/v1/rollouts/chip") as r:
                if ok(json.load(r)):
                    return
        except OSError:
            pass
        time.sleep(0.02)
    sys.exit(f"timed out waiting for {what}")

def at_weight(k):
    def ok(d):
        w = d["status"]["canary"].get("weights") or {"verified": False, "expected": 0}
        return w["verified"] and w["expected"] == n and (w.get("canary") or {}).get("weight") == k
    return ok

for k in range(1, 100):
    wait(f"weight {k} at {n} proxies", at_weight(k))
    subprocess.run([cli, "--server", url, "promote", "chip"], check=True, stdout=subprocess.DEVNULL)
wait(f"v2 Healthy at {n} proxies", lambda d: d["status"]["phase"] == "Healthy")
PY
  read -r p50[$n] p99[$n] < <(json "$url/v1/acks" "(lambda m: '%d %d' % (m[len(m) // 2], m[min(len(m) - 1, int(len(m) * 0.99))]))(sorted(a['millis'] for a in d if a['route'] == 'shop/chip' and a['proxies'] == $n)[-100:])")
  echo "$n proxies: p50 ${p50[$n]} ms, p99 ${p99[$n]} ms"
  stop_all
done

echo "== the controller at rest: 100 rollouts, 100 proxies reporting every second"
port=$(free_port)
url="http://127.0.0.1:$port"
docs=()
for r in $(seq 0 99); do
  docs+=("$(rollout "chip$r" "      - setWeight: 50"$'\n'"      - pause: {}")")
done
start_controller "$work/rest" "$port" "${docs[@]}"
start_proxies "$work/rest" "$url" 100
wait_for "100 proxies" subscribed "$url" chip99 100 || {
  curl -sS "$url/v1/rollouts/chip99" | head -c 1500 >&2
  exit 1
}
sleep 5
t0=$(cpu_ticks "$controller")
sleep "$rest"
t1=$(cpu_ticks "$controller")
hz=$(getconf CLK_TCK)
ctl_cpu=$(python3 -c "print(f'{100 * ($t1 - $t0) / $hz / $rest:.1f}')")
ctl_rss=$(( $(rss_kib "$controller") / 1024 ))
echo "controller: ${ctl_cpu} % of a core, RSS ${ctl_rss} MiB"
stop_all

echo "== a proxy with 10 000 idle client connections"
listen=$(free_port)
admin=$(free_port)
cat > "$work/idle.yaml" <<YAML
listen: 127.0.0.1:$listen
admin: {listen: 127.0.0.1:$admin}
downstream: {max_connections: 20000, header_read_timeout: 600s}
backends:
  - {name: v1, endpoints: ["127.0.0.1:$b1"]}
routes:
  - {name: app, stable: v1}
YAML
RUST_LOG=warn "$bin/sluice-proxy" --config "$work/idle.yaml" 2> "$work/idle.log" &
proxy=$!
pids+=("$proxy")
wait_for "the proxy" curl -fsS "http://127.0.0.1:$admin/readyz"
curl -fsS "http://127.0.0.1:$listen/" >/dev/null
before=$(rss_kib "$proxy")
idle=$(python3 - "$listen" "$proxy" <<'PY'
import socket, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
held = []
for _ in range(10000):
    s = socket.create_connection(("127.0.0.1", port))
    held.append(s)
time.sleep(3)
rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))
# still served while they are held
c = socket.create_connection(("127.0.0.1", port))
c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
answer = c.recv(100)
assert answer.startswith(b"HTTP/1.1 200"), answer
print(rss)
PY
)
per_conn=$(python3 -c "print(f'{($idle - $before) / 10000:.2f}')")
echo "proxy RSS ${before} KiB → ${idle} KiB with 10 000 idle connections: ${per_conn} KiB each"

echo
echo "| | 3 proxies | 30 proxies | 100 proxies |"
echo "|---|---|---|---|"
row="| publish → applied by all, p50 / p99 over 100 weight changes |"
for n in 3 30 100; do
  if [ -n "${p50[$n]:-}" ]; then row+=" ${p50[$n]} / ${p99[$n]} ms |"; else row+=" – |"; fi
done
echo "$row"
echo
echo "controller at rest, 100 rollouts and 100 proxies reporting every second: ${ctl_cpu} % of a core, RSS ${ctl_rss} MiB"
echo "proxy with 10 000 idle client connections: RSS ${before} → ${idle} KiB, ${per_conn} KiB per connection"
