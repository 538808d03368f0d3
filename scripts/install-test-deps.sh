#!/usr/bin/env bash
# Installs the programs the tests use, when they are missing:
#   promtool (Debian package prometheus) — checks the proxy's /metrics text;
#   python3 — runs scripts/check-imports.py and scripts/validate-manifests.py;
#   kubernetes-validate (PyPI), in a virtual environment cached under ~/.cache/sluice by its
#   version — checks the built-in kinds of manifests/;
#   the Kubernetes components the cluster tests run (etcd, kube-apiserver,
#   kube-controller-manager, kube-scheduler, kubectl, KWOK), built from source with Go and the
#   Go module proxy from the module tests/cluster/ (its go.mod pins every version), cached under
#   ~/.cache/sluice by the hash of that module's files, with KWOK's node and pod stages;
#   chromium (Debian) and node — run the dashboard's browser test, with playwright-core and
#   axe-core from the npm registry, cached under ~/.cache/sluice by their versions;
#   cargo-fuzz (crates.io), cached under ~/.cache/sluice by its version — runs the fuzz
#   targets of tests/fuzz/ (scripts/fuzz.sh).
# Needs root (or sudo) only when a Debian package is missing.
# With --print-python: prints the Python that has kubernetes-validate, installs nothing.
# With --print-k8s-dir: prints the directory of the Kubernetes components, builds nothing.
# With --print-node-modules: prints the node_modules of the browser test, installs nothing.
# With --print-cargo-fuzz: prints the folder of the cargo-fuzz program, installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE_VERSION=1.37.0
cache="${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"
venv="$cache/py-kubernetes-validate-$KUBERNETES_VALIDATE_VERSION"
if [ "${1:-}" = "--print-python" ]; then
  echo "$venv/bin/python"
  exit 0
fi
k8s_key=$(cat tests/cluster/go.mod tests/cluster/go.sum tests/cluster/cmd/etcd/main.go | sha256sum | cut -c1-16)
k8s_version=$(awk '$1 == "k8s.io/kubernetes" {print $2; exit}' tests/cluster/go.mod)
k8s_dir="$cache/kubernetes-$k8s_version-$k8s_key"
if [ "${1:-}" = "--print-k8s-dir" ]; then
  echo "$k8s_dir"
  exit 0
fi
PLAYWRIGHT_VERSION=1.65.1
AXE_VERSION=4.14.1
node_dir="$cache/node-playwright-$PLAYWRIGHT_VERSION-axe-$AXE_VERSION"
if [ "${1:-}" = "--print-node-modules" ]; then
  echo "$node_dir/node_modules"
  exit 0
fi
CARGO_FUZZ_VERSION=0.13.2
fuzz_dir="$cache/cargo-fuzz-$CARGO_FUZZ_VERSION"
if [ "${1:-}" = "--print-cargo-fuzz" ]; then
  echo "$fuzz_dir/bin"
  exit 0
fi

# cargo-fuzz builds the targets with libFuzzer's instrumentation; `--sanitizer none` lets it
# do so with the stable toolchain.
install_cargo_fuzz() {
  if [ -x "$fuzz_dir/bin/cargo-fuzz" ]; then
    return
  fi
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION into $fuzz_dir"
  rm -rf "$fuzz_dir.tmp"
  cargo install --quiet --locked --root "$fuzz_dir.tmp" "cargo-fuzz@$CARGO_FUZZ_VERSION"
  rm -rf "$fuzz_dir"
  mv "$fuzz_dir.tmp" "$fuzz_dir"
}

# playwright-core drives the machine's chromium (it downloads no browser); axe-core is the
# accessibility check the browser test injects.
install_browser_tools() {
  if [ -f "$node_dir/node_modules/playwright-core/package.json" ] \
    && [ -f "$node_dir/node_modules/axe-core/axe.min.js" ]; then
    return
  fi
  echo "installing playwright-core $PLAYWRIGHT_VERSION and axe-core $AXE_VERSION into $node_dir"
  rm -rf "$node_dir.tmp"
  mkdir -p "$node_dir.tmp"
  printf '{"private": true}\n' > "$node_dir.tmp/package.json"
  (cd "$node_dir.tmp" && npm install --no-audit --no-fund --silent \
    "playwright-core@$PLAYWRIGHT_VERSION" "axe-core@$AXE_VERSION")
  rm -rf "$node_dir"
  mv "$node_dir.tmp" "$node_dir"
}

# Builds the Kubernetes components once per version of tests/cluster/ (GOTOOLCHAIN=local: the
# machine's Go, no toolchain download).
install_kubernetes() {
  if [ -x "$k8s_dir/bin/kwok" ] && [ -s "$k8s_dir/kwok-stages.yaml" ]; then
    return
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "Go is needed to build the Kubernetes components of the cluster tests (tests/cluster/)" >&2
    exit 1
  fi
  echo "building the Kubernetes components ($k8s_version, tests/cluster/go.mod) into $k8s_dir"
  local start tmp kwok
  start=$(date +%s)
  tmp="$k8s_dir.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp/bin"
  (cd tests/cluster && GOTOOLCHAIN=local go build -trimpath -ldflags='-s -w' -o "$tmp/bin/" tool)
  kwok=$(cd tests/cluster && GOTOOLCHAIN=local go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  for f in "$kwok"/kustomize/stage/node/fast/*.yaml "$kwok"/kustomize/stage/pod/fast/*.yaml; do
    case "$(basename "$f")" in kustomization.yaml) continue ;; esac
    cat "$f"
    echo "---"
  done > "$tmp/kwok-stages.yaml"
  rm -rf "$k8s_dir"
  mv "$tmp" "$k8s_dir"
  echo "built the Kubernetes components in $(( $(date +%s) - start )) s"
}

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
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -eq 0 ]; then
  install_kubernetes_validate
  install_kubernetes
  install_browser_tools
  install_cargo_fuzz
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
install_kubernetes
install_browser_tools
install_cargo_fuzz
