#!/usr/bin/env bash
# Side-by-side benchmark on loopback: the backends directly, sluice-proxy, nginx and HAProxy,
# each proxy splitting 80/20 over the same two nginx backends with keep-alive upstreams, and
# an L4 relay (HAProxy in `mode tcp`, one backend): the floor, what any proxy that reads and
# writes every byte pays.
#
#   scripts/bench.sh [--rounds N] [--duration SECONDS] [--quick | --smoke]
#
# --quick: 2 rounds of 2 s. --smoke: 1 round of 1 s with the debug build (what scripts/test.sh
# runs to keep the script and its checks working; its figures mean nothing).
#
# Installs nginx, HAProxy, wrk and curl from Debian when missing, builds sluice in release
# mode, and uses the peer configurations in scripts/bench/peer-configs/ as they are (the
# backends get two additions: a 16 KiB file at /16k and a stub_status port to count the
# requests they served; nginx gets a second, h2c, listener for the HTTP/2 case).
#
# Every round measures every target one after the other, the order rotating from round to
# round; ratios are taken within a round and the table shows their medians. Cases: wrk and
# sluice-load (closed loop) at 64 and 8 connections, a 16 KiB response, HTTP/2 (h2c, sluice
# vs nginx), and an open loop at half of nginx's rate for the latency each proxy adds. Each
# run records the CPU time of the proxy's processes and checks that the backends served as
# many requests as the client counted. After the rounds, one more wrk run per target at 64 and
# at 8 connections under `perf stat` counts context switches and system calls per request.
# Results: target/bench/<time>/ (raw TSV and table).
#
# BENCH_SLUICE_DOWNSTREAM: sluice's `downstream` settings for the run, e.g.
# '{connection_balance: kernel}' to compare with the kernel's spread of connections.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

ROUNDS=5
DUR=10
SMOKE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DUR=$2; shift 2 ;;
    --quick) ROUNDS=2; DUR=2; shift ;;
    --smoke) ROUNDS=1; DUR=1; SMOKE=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --rounds must be a positive number" >&2; exit 2; }
[[ "$DUR" =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --duration must be whole seconds" >&2; exit 2; }

# --- tools -----------------------------------------------------------------------------------
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v pgrep >/dev/null 2>&1 || missing+=(procps)
command -v perf >/dev/null 2>&1 || missing+=(linux-perf)
if [ ${#missing[@]} -gt 0 ]; then
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  # policy-rc.d keeps the packages' services from being started by the install
  as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
  as_root rm -f /usr/sbin/policy-rc.d
fi
export PATH="$PATH:/usr/sbin"

if [ "$SMOKE" = 1 ]; then
  cargo build -q -p sluice-proxy -p sluice-loadtest
  PROXY=$ROOT/target/debug/sluice-proxy
  LOAD=$ROOT/target/debug/sluice-load
else
  cargo build --release -q -p sluice-proxy -p sluice-loadtest
  PROXY=$ROOT/target/release/sluice-proxy
  LOAD=$ROOT/target/release/sluice-load
fi

# --- ports and files -------------------------------------------------------------------------
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
BASE=${BENCH_PORT_BASE:-18100}
B1=$((BASE + 1)); B2=$((BASE + 2)); STATUS=$((BASE + 3))
P_SLUICE=$((BASE + 10)); P_NGINX=$((BASE + 11)); P_HAPROXY=$((BASE + 12)); P_NGINX_H2=$((BASE + 13))
P_L4=$((BASE + 14))
ADMIN=$((BASE + 20))
for p in $B1 $B2 $STATUS $P_SLUICE $P_NGINX $P_HAPROXY $P_NGINX_H2 $P_L4 $ADMIN; do
  if listening "$p"; then echo "bench.sh: port $p is taken (set BENCH_PORT_BASE)" >&2; exit 1; fi
done

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$ROOT/target/bench/$STAMP
RUN=$(mktemp -d /tmp/sluice-bench.XXXXXX)
mkdir -p "$OUT" "$RUN/tmp"
head -c 16384 /dev/zero | tr '\0' 'x' > "$RUN/16k.bin"

PEERS=$ROOT/scripts/bench/peer-configs
subst() { sed -e "s#@RUN@#$RUN#g; s#@B1@#$B1#g; s#@B2@#$B2#g; s#@PORT@#$2#g" "$PEERS/$1"; }
subst backends.nginx.conf 0 \
  | sed -e "s#location / {#location = /16k { alias $RUN/16k.bin; } location / {#" \
  | sed '$ d' > "$RUN/backends.conf"
printf '    server { listen 127.0.0.1:%s; location / { stub_status; } }\n}\n' "$STATUS" >> "$RUN/backends.conf"
subst nginx.proxy.conf "$P_NGINX" \
  | sed -e "s#listen 127.0.0.1:$P_NGINX;#listen 127.0.0.1:$P_NGINX; listen 127.0.0.1:$P_NGINX_H2 http2;#" \
  > "$RUN/nginx.conf"
subst haproxy.cfg "$P_HAPROXY" > "$RUN/haproxy.cfg"
# the floor: HAProxy relaying bytes (mode tcp) to one backend, with the peer config's threads
cat > "$RUN/l4.cfg" <<EOF
global
    nbthread 2
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:$P_L4
    default_backend one
backend one
    server v1 127.0.0.1:$B1
EOF
cat > "$RUN/sluice.yaml" <<EOF
listen: 127.0.0.1:$P_SLUICE
admin: {listen: 127.0.0.1:$ADMIN}
backends:
  - {name: v1, endpoints: ["127.0.0.1:$B1"]}
  - {name: v2, endpoints: ["127.0.0.1:$B2"]}
routes:
  - {name: app, stable: v1, canary: v2, weight: 20}
EOF
[ -n "${BENCH_SLUICE_DOWNSTREAM:-}" ] && echo "downstream: $BENCH_SLUICE_DOWNSTREAM" >> "$RUN/sluice.yaml"

# --- processes -------------------------------------------------------------------------------
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$RUN"
}
trap cleanup EXIT
start() { local name=$1; shift; "$@" >"$RUN/$name.out" 2>&1 & PIDS+=($!); eval "PID_$name=$!"; }
start backends nginx -c "$RUN/backends.conf" -e "$RUN/backends.err"
start sluice "$PROXY" -c "$RUN/sluice.yaml"
start nginx nginx -c "$RUN/nginx.conf" -e "$RUN/nginx.err"
start haproxy haproxy -db -f "$RUN/haproxy.cfg"
start l4 haproxy -db -f "$RUN/l4.cfg"
for p in $B1 $B2 $STATUS $P_SLUICE $P_NGINX $P_HAPROXY $P_NGINX_H2 $P_L4; do
  for _ in $(seq 100); do listening "$p" && break; sleep 0.1; done
  listening "$p" || { echo "bench.sh: nothing listens on $p"; cat "$RUN"/*.out "$RUN"/*.err 2>/dev/null; exit 1; }
done

port_of() { case $1 in direct) echo $B1 ;; sluice) echo $P_SLUICE ;; nginx) echo $P_NGINX ;; haproxy) echo $P_HAPROXY ;; l4) echo $P_L4 ;; esac; }
pid_of() { case $1 in direct) echo "$PID_backends" ;; sluice) echo "$PID_sluice" ;; nginx) echo "$PID_nginx" ;; haproxy) echo "$PID_haproxy" ;; l4) echo "$PID_l4" ;; esac; }
HZ=$(getconf CLK_TCK)
# CPU ticks of a process and its children (nginx's workers)
ticks() { local t=0 q f; for q in "$1" $(pgrep -P "$1" || true); do read -r -a f < "/proc/$q/stat" || continue; t=$((t + f[13] + f[14])); done; echo $t; }
# resident memory in KiB of a process and its children
rss_kib() { local t=0 q; for q in "$1" $(pgrep -P "$1" || true); do t=$((t + $(awk '/^VmRSS/{print $2}' "/proc/$q/status" 2>/dev/null || echo 0))); done; echo $t; }
served() { curl -s "http://127.0.0.1:$STATUS/" | awk 'NR==3{print $3}'; }

for t in direct sluice nginx haproxy l4; do
  body=$(curl -s "http://127.0.0.1:$(port_of $t)/")
  [ "$body" = v1 ] || [ "$body" = v2 ] || { echo "bench.sh: $t answered '$body'"; exit 1; }
done
RSS_IDLE_sluice=$(rss_kib "$PID_sluice"); RSS_IDLE_nginx=$(rss_kib "$PID_nginx"); RSS_IDLE_haproxy=$(rss_kib "$PID_haproxy")

CHECKS_FAILED=0
RESULTS=$OUT/results.tsv
printf 'case\ttarget\tround\trps\tcpu_us\tp50_us\tp99_us\n' > "$RESULTS"

json_num() { { grep -o "\"$1\": [0-9.]*" || true; } | awk 'NR==1{print $2}'; }

# one measured run: CASE TARGET ROUND TOOL CONNS PATH [RATE]
measure() {
  local case=$1 target=$2 round=$3 tool=$4 conns=$5 path=$6 rate=${7:-}
  local port pid url t0 t1 s0 s1 out requests rps p50=- p99=- split=
  port=$(port_of "$target"); pid=$(pid_of "$target")
  [ "$tool" = h2 ] && [ "$target" = nginx ] && port=$P_NGINX_H2
  url="http://127.0.0.1:$port$path"
  s0=$(served); t0=$(ticks "$pid")
  case $tool in
    wrk)
      out=$(wrk -t2 -c"$conns" -d"${DUR}s" "$url")
      requests=$(echo "$out" | awk '/requests in/{print $1}')
      rps=$(echo "$out" | awk '/Requests\/sec/{print $2}') ;;
    load|h2|open)
      local extra=()
      [ "$tool" = h2 ] && extra=(--h2 8)
      [ "$tool" = open ] && extra=(-r "$rate")
      out=$("$LOAD" run -c "$conns" -d "${DUR}s" --json --quiet "${extra[@]}" "$url")
      requests=$(echo "$out" | json_num responses)
      rps=$(echo "$out" | json_num rate)
      p50=$(echo "$out" | json_num p50_us); p99=$(echo "$out" | json_num p99_us)
      local v1 v2 errors
      v1=$(echo "$out" | json_num v1); v2=$(echo "$out" | json_num v2)
      v1=${v1:-0}; v2=${v2:-0}
      errors=$(echo "$out" | json_num transport_errors)
      if [ "$path" = / ] && [ "$target" != direct ] && [ "$target" != l4 ]; then
        split="v2 $(awk -v a="$v1" -v b="$v2" 'BEGIN{printf "%.3f", 100 * b / (a + b)}') %"
        # sluice's split is exact: 20 % of the answers, to the request, from the canary
        if [ "$target" = sluice ] && { [ $((v2 * 5)) -le $((v1 + v2 - 5)) ] || [ $((v2 * 5)) -ge $((v1 + v2 + 5)) ]; }; then
          echo "CHECK FAILED: $case $target split v1=$v1 v2=$v2"; CHECKS_FAILED=1
        fi
      fi
      [ "${errors:-0}" = 0 ] || { echo "CHECK FAILED: $case $target $errors transport errors"; CHECKS_FAILED=1; } ;;
  esac
  t1=$(ticks "$pid"); s1=$(served)
  # the backends served what the client counted (wrk drops the requests in flight at its end)
  local backend=$((s1 - s0 - 1)) slack=0
  [ "$tool" = wrk ] && slack=$conns
  if [ "$backend" -lt "$requests" ] || [ "$backend" -gt $((requests + slack)) ]; then
    echo "CHECK FAILED: $case $target: client counted $requests, backends served $backend"; CHECKS_FAILED=1
  fi
  local cpu=-
  [ "$target" != direct ] && cpu=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$requests" 'BEGIN{printf "%.1f", d * 1e6 / hz / n}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$case" "$target" "$round" "$rps" "$cpu" "$p50" "$p99" >> "$RESULTS"
  printf '  %-16s %-8s %8.0f req/s  cpu %5s µs/req  p50 %5s µs  p99 %5s µs  %s\n' "$case" "$target" "$rps" "$cpu" "$p50" "$p99" "$split"
}

ALL=(direct sluice nginx haproxy l4)
rotated() { local r=$1 n=${#ALL[@]} i; for i in $(seq 0 $((n - 1))); do echo "${ALL[$(((i + r) % n))]}"; done; }

echo "bench: $ROUNDS rounds of $DUR s per run, $(nproc) cores, results in $OUT"
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round"
  for spec in "wrk-64 wrk 64 /" "wrk-8 wrk 8 /" "load-64 load 64 /" "load-8 load 8 /" "wrk-64-16KiB wrk 64 /16k"; do
    read -r case tool conns path <<<"$spec"
    for t in $(rotated "$round"); do measure "$case" "$t" "$round" "$tool" "$conns" "$path"; done
  done
  for t in $( ( [ $((round % 2)) = 0 ] && echo "nginx sluice" ) || echo "sluice nginx"); do
    measure h2-64-streams "$t" "$round" h2 8 /
  done
done
# open loop at half of nginx's median closed-loop rate (wrk, 64 connections)
RATE=$(awk -F'\t' '$1=="wrk-64" && $2=="nginx"{print $4}' "$RESULTS" | sort -n | awk '{a[NR]=$1} END{print int(a[int((NR+1)/2)] / 2)}')
echo "open loop at $RATE req/s"
for round in $(seq 1 "$ROUNDS"); do
  for t in $(rotated "$round"); do measure "open-$RATE/s" "$t" "$round" open 64 / "$RATE"; done
done
# how the connections spread over sluice's workers over the whole run
curl -s "http://127.0.0.1:$ADMIN/stats" | python3 -c 'import json, sys; print("sluice workers:", json.load(sys.stdin)["workers"])' > "$OUT/workers.txt" || true
RSS_AFTER_sluice=$(rss_kib "$PID_sluice"); RSS_AFTER_nginx=$(rss_kib "$PID_nginx"); RSS_AFTER_haproxy=$(rss_kib "$PID_haproxy")

# context switches and system calls per request: one wrk run per target and concurrency with
# `perf stat` attached to every thread of the proxy's processes (software events only)
PERF=$OUT/perf.tsv
printf 'case\ttarget\trequests\tcontext_switches\tsyscalls\n' > "$PERF"
perf_counted() {
  local case=$1 target=$2 conns=$3 pid pids out requests cs sc perf
  pid=$(pid_of "$target")
  pids=$(echo "$pid" $(pgrep -P "$pid" || true) | tr ' ' ,)
  perf stat -x, -e context-switches,raw_syscalls:sys_enter -p "$pids" -o "$RUN/perf.txt" & perf=$!
  sleep 0.3
  out=$(wrk -t2 -c"$conns" -d"${DUR}s" "http://127.0.0.1:$(port_of "$target")/")
  kill -INT "$perf" 2>/dev/null || true
  wait "$perf" || true
  requests=$(echo "$out" | awk '/requests in/{print $1}')
  cs=$(awk -F, '$3 ~ /^context-switches/{print $1}' "$RUN/perf.txt")
  sc=$(awk -F, '$3 ~ /^raw_syscalls:sys_enter/{print $1}' "$RUN/perf.txt")
  if ! [[ "$cs" =~ ^[0-9]+$ && "$sc" =~ ^[0-9]+$ ]]; then
    echo "  perf stat counted nothing for $target ($(head -c 200 "$RUN/perf.txt" | tr '\n' ' ')); skipped"
    return
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$case" "$target" "$requests" "$cs" "$sc" >> "$PERF"
  awk -v c="$case" -v t="$target" -v n="$requests" -v cs="$cs" -v sc="$sc" \
    'BEGIN{printf "  %-16s %-8s %9d requests  %.3f context switches/req  %.2f syscalls/req\n", c, t, n, cs / n, sc / n}'
}
echo "perf stat"
for spec in "wrk-64 64" "wrk-8 8"; do
  read -r case conns <<<"$spec"
  for t in sluice nginx haproxy l4; do perf_counted "$case" "$t" "$conns"; done
done

# --- table -----------------------------------------------------------------------------------
{
  [ "$SMOKE" = 1 ] && echo "SMOKE RUN (debug build, 1 s runs): checks only, the figures mean nothing"
  echo "sluice bench $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $ROUNDS rounds × $DUR s, scripts/bench.sh --rounds $ROUNDS --duration $DUR"
  echo
  awk -F'\t' '
    function median(list,   n, a, i, j, x) {
      n = split(list, a, " "); if (n == 0) return "";
      for (i = 2; i <= n; i++) { x = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function ratio(x) { return (x == "" ? "–" : sprintf("%.2f", x)) }
    # the lowest and highest of the per-round ratios, and their spread
    function range(list,   n, a, i, lo, hi) {
      n = split(list, a, " "); if (n == 0) return "–";
      lo = a[1] + 0; hi = lo
      for (i = 2; i <= n; i++) { if (a[i] + 0 < lo) lo = a[i] + 0; if (a[i] + 0 > hi) hi = a[i] + 0 }
      return sprintf("%.2f–%.2f", lo, hi)
    }
    NR == 1 { next }
    { key = $1 SUBSEP $2; rps[key] = rps[key] " " $4; if ($5 != "-") cpu[key] = cpu[key] " " $5
      p50[key] = p50[key] " " $6; p99[key] = p99[key] " " $7
      v[$1, $2, $3] = $4; l50[$1, $2, $3] = $6; l99[$1, $2, $3] = $7; if ($5 != "-") u[$1, $2, $3] = $5
      if (!($1 in seen)) { seen[$1] = 1; order[++ncase] = $1 }
      rounds[$3] = 1 }
    END {
      printf "| case | target | req/s | × direct | × direct, rounds | × nginx | × nginx, rounds | proxy CPU µs/req | CPU × nginx | CPU × L4 |\n"
      printf "|---|---|---|---|---|---|---|---|---|---|\n"
      split("direct sluice nginx haproxy l4", targets, " ")
      for (c = 1; c <= ncase; c++) {
        cs = order[c]; if (cs ~ /^open/) continue
        for (t = 1; t <= 5; t++) {
          tg = targets[t]; key = cs SUBSEP tg; if (!(key in rps)) continue
          rd = ""; rn = ""; cn = ""; cl = ""
          for (r in rounds) {
            if ((cs, tg, r) in v && (cs, "direct", r) in v) rd = rd " " v[cs, tg, r] / v[cs, "direct", r]
            if ((cs, tg, r) in v && (cs, "nginx", r) in v) rn = rn " " v[cs, tg, r] / v[cs, "nginx", r]
            if ((cs, tg, r) in u && (cs, "nginx", r) in u && u[cs, "nginx", r] > 0) cn = cn " " u[cs, tg, r] / u[cs, "nginx", r]
            if ((cs, tg, r) in u && (cs, "l4", r) in u && u[cs, "l4", r] > 0) cl = cl " " u[cs, tg, r] / u[cs, "l4", r]
          }
          printf "| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", cs, tg, median(rps[key]),
            ratio(median(rd)), range(rd), ratio(median(rn)), range(rn),
            (key in cpu ? sprintf("%.1f", median(cpu[key])) : "–"), ratio(median(cn)), ratio(median(cl))
        }
      }
      for (c = 1; c <= ncase; c++) {
        cs = order[c]; if (cs !~ /^open/) continue
        printf "\nOpen loop, %s, 64 connections (µs; added = proxy − direct, median of the rounds):\n\n", substr(cs, 6)
        printf "| target | p50 | p99 | added p50 | added p99 |\n|---|---|---|---|---|\n"
        for (t = 1; t <= 5; t++) {
          tg = targets[t]; key = cs SUBSEP tg; if (!(key in p50)) continue
          a50 = ""; a99 = ""
          for (r in rounds) if ((cs, tg, r) in l50 && (cs, "direct", r) in l50) {
            a50 = a50 " " l50[cs, tg, r] - l50[cs, "direct", r]; a99 = a99 " " l99[cs, tg, r] - l99[cs, "direct", r] }
          printf "| %s | %.0f | %.0f | %s | %s |\n", tg, median(p50[key]), median(p99[key]),
            (tg == "direct" ? "–" : sprintf("%.0f", median(a50))), (tg == "direct" ? "–" : sprintf("%.0f", median(a99)))
        }
      }
    }' "$RESULTS"
  echo
  echo "| RSS (MiB) | idle | after the load |"
  echo "|---|---|---|"
  for t in sluice nginx haproxy; do
    idle=RSS_IDLE_$t; after=RSS_AFTER_$t
    awk -v t="$t" -v i="${!idle}" -v a="${!after}" 'BEGIN{printf "| %s | %.1f | %.1f |\n", t, i / 1024, a / 1024}'
  done
  echo
  cat "$OUT/workers.txt" 2>/dev/null || true
  if [ "$(wc -l < "$PERF")" -gt 1 ]; then
    echo
    echo "Per request, one wrk run of $DUR s each under \`perf stat\` (every thread of the proxy's processes):"
    echo
    echo "| case | target | context switches | system calls |"
    echo "|---|---|---|---|"
    awk -F'\t' 'NR > 1 {printf "| %s | %s | %.3f | %.2f |\n", $1, $2, $4 / $3, $5 / $3}' "$PERF"
  fi
} | tee "$OUT/table.md"

if [ "$CHECKS_FAILED" != 0 ]; then
  echo "bench.sh: some checks failed (see CHECK FAILED above)" >&2
  exit 1
fi
