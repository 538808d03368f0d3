#!/usr/bin/env bash
# Installs the programs the tests use, when they are missing:
#   promtool (Debian package prometheus) — checks the proxy's /metrics text;
#   python3 — runs scripts/check-imports.py and scripts/validate-manifests.py;
#   kubernetes-validate (PyPI), in a virtual environment cached under ~/.cache/sluice by its
#   version — checks the built-in kinds of manifests/.
# Needs root (or sudo) only when a Debian package is missing.
# With --print-python: prints the Python that has kubernetes-validate, installs nothing.
set -euo pipefail

KUBERNETES_VALIDATE_VERSION=1.37.0
cache="${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"
venv="$cache/py-kubernetes-validate-$KUBERNETES_VALIDATE_VERSION"
if [ "${1:-}" = "--print-python" ]; then
  echo "$venv/bin/python"
  exit 0
fi

install_kubernetes_validate() {
  if "$venv/bin/python" -c "import kubernetes_validate, jsonschema, yaml" 2>/dev/null; then
    return
  fi
  echo "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $venv"
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
}

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)

if [ ${#missing[@]} -eq 0 ]; then
  install_kubernetes_validate
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
as_root rm -f /usr/sbin/policy-rc.d
trap - EXIT
install_kubernetes_validate
