#!/usr/bin/env bash
# The project's one test command: installs what the tests need, then runs the checks (format,
# lints, import cycles, the manifests against Kubernetes' schemas and the CRDs), every
# test (unit, property and end-to-end against the real binaries on loopback), the demo, a
# smoke run of the benchmark script (which installs nginx, HAProxy and wrk when missing) and
# a short run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

echo "== format"
cargo fmt --all -- --check
echo "== lints"
cargo clippy --workspace --all-targets -- -D warnings
echo "== imports: no cycle between the modules of a crate, and route/ stays pure"
scripts/check-imports.py
echo "== manifests: built-in kinds with kubernetes-validate, sluice's against the generated CRDs"
"$(scripts/install-test-deps.sh --print-python)" scripts/validate-manifests.py 1.36.0
echo "== no aws-lc-rs in the dependency tree"
if cargo tree --workspace -i aws-lc-rs >/dev/null 2>&1; then
  echo "aws-lc-rs is in the dependency tree; use the ring provider" >&2
  exit 1
fi
echo "== build (one build shared by every test)"
cargo build --workspace --bins
echo "== tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace 2>&1 | tee "$log"
echo "== the README's first command, with short pauses"
cargo run --quiet --bin sluice -- demo --fast
echo "== the benchmark script as a smoke run: its checks (counts, the exact split), not its figures"
scripts/bench.sh --smoke
echo "== the fuzz targets, 20 s each"
scripts/fuzz.sh 20
passed=$(grep -Eo 'test result: [a-z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s += $1} END {print s + 0}')
echo "tests: ${passed} passed, ${failed} failed"
