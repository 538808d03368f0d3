#!/usr/bin/env bash
# Installs the programs the tests use, from Debian's packages, when they are missing:
#   promtool (package prometheus) — checks the proxy's /metrics text;
#   python3 — runs scripts/check-imports.py.
# Needs root (or sudo) only when something is missing.
set -euo pipefail

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

echo "installing test dependencies: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -qq
# policy-rc.d keeps the packages' services from being started by the install
as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT
as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
