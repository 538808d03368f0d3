#!/usr/bin/env bash
# The project's one test command: installs what the tests need, then runs the checks and every
# test (unit, property and end-to-end against the real binaries on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

echo "== format"
cargo fmt --all -- --check
echo "== lints"
cargo clippy --workspace --all-targets -- -D warnings
echo "== no aws-lc-rs in the dependency tree"
if cargo tree --workspace -i aws-lc-rs >/dev/null 2>&1; then
  echo "aws-lc-rs is in the dependency tree; use the ring provider" >&2
  exit 1
fi
echo "== build (one build shared by every test)"
cargo build --workspace --bins
echo "== tests"
cargo test --workspace
