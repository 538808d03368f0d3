#!/usr/bin/env bash
# Runs the fuzz targets of tests/fuzz/ (cargo-fuzz, libFuzzer) for SECONDS each, 20 by default
# (the test command runs them so; run longer by hand, e.g. `scripts/fuzz.sh 600`). Each starts
# from the seeds in tests/fuzz/seeds/TARGET/, the project's own example files, and what earlier
# runs found (tests/fuzz/corpus/TARGET/, not committed). A crash, a panic or an input that
# takes over 10 s stops the script; the input is in tests/fuzz/artifacts/TARGET/, and
# `cargo fuzz run -s none --dev TARGET FILE` (in tests/fuzz) replays it. The targets are built
# with the fuzz crate's dev profile (optimised, quicker to build: a short run is mostly build);
# FUZZ_RELEASE=1 builds them with full optimisation for a long run.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET…]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
shift || true
scripts/install-test-deps.sh >/dev/null
PATH="$(scripts/install-test-deps.sh --print-cargo-fuzz):$PATH"
export PATH
cd tests/fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
profile=--dev
[ "${FUZZ_RELEASE:-}" = 1 ] && profile=-O
echo "== fuzz: building ${targets[*]} ($profile)"
start=$(date +%s)
cargo fuzz build -s none "$profile"
echo "built in $(( $(date +%s) - start )) s"
for t in "${targets[@]}"; do
  corpus="corpus/$t"
  mkdir -p "$corpus"
  seeds=()
  [ -d "seeds/$t" ] && seeds+=("seeds/$t")
  case "$t" in
    route_table) seeds+=(../../proxy/examples) ;;
    rollout_spec) seeds+=(../../manifests/examples) ;;
  esac
  echo "== fuzz: $t for ${seconds} s"
  rm -rf "artifacts/$t"
  log="corpus/$t.log"
  rc=0
  cargo fuzz run -s none "$profile" "$t" "$corpus" "${seeds[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1 || rc=$?
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)|INFO: seed corpus' "$log" || true
  if [ "$rc" -ne 0 ]; then
    grep -E -A12 'panicked|ERROR|SUMMARY' "$log" | head -60 >&2 || tail -30 "$log" >&2
    echo "fuzz target $t failed (exit $rc); its input is in tests/fuzz/artifacts/$t/" >&2
    exit 1
  fi
done
echo "== fuzz: ${#targets[@]} targets, ${seconds} s each, no failure"
