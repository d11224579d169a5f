#!/usr/bin/env bash
# The test command (README "Run the tests"; CI runs exactly this via .ci/run).
# Installs what the tests need on a fresh Debian machine, then runs formatting, lints and
# every test in the workspace. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the integration tests start as real servers: influxdb (influxd 1.x) and
# victoria-metrics for the InfluxDB sink. This list grows with the Alertmanager and
# browser tests; docker-compose (v1) validates docker-compose.yml (crates/telltale/tests/it/compose.rs);
# strace reads the processor's fsync-before-ack order (crates/telltale/tests/it/fsync.rs);
# iproute2 and nftables build the routed test network `telltale probe` is tested on
# (crates/telltale/tests/it/probe.rs, network namespaces, as root); libcap2-bin gives the
# probe test binary `setcap cap_net_raw+p`, as the container image does; nginx, with
# curl and openssl, runs the hardened proxy recipe deploy/nginx/ in front of telltale
# (crates/telltale/tests/it/nginx.rs: TLS, basic auth, rate limit, JSON access log).
# nodejs and npm run the real OpenID Connect provider (the npm package oidc-provider, pinned
# in tests/oidc/package-lock.json) the single sign-on test signs in at
# (crates/telltale/tests/it/sso.rs). postgresql: the server the URL monitor results are
# written to (crates/telltale-postgres/tests/postgres.rs: initdb in a temp dir).
APT_PACKAGES=(influxdb victoria-metrics prometheus-alertmanager docker-compose chromium strace iproute2 nftables libcap2-bin nginx curl openssl nodejs postgresql)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
fi

# The OpenID Connect provider for the SSO test, from the lock file; kept when installed
# already from the same lock file (a copy of it is left in node_modules as the stamp).
if ! command -v npm >/dev/null; then
  if [[ $(id -u) -eq 0 ]]; then apt-get install -y -qq npm; else sudo apt-get install -y -qq npm; fi
fi
if ! cmp -s tests/oidc/package-lock.json tests/oidc/node_modules/.telltale-lock 2>/dev/null; then
  echo "== npm ci (tests/oidc)"
  npm ci --prefix tests/oidc --no-audit --no-fund
  cp tests/oidc/package-lock.json tests/oidc/node_modules/.telltale-lock
fi
# The OpenTelemetry SDK exporters OTLP ingest is tested with (tests/otlp/); pip keeps what
# is installed when it already satisfies the pins.
PIP_PACKAGES=("opentelemetry-sdk==1.45.*" "opentelemetry-exporter-otlp-proto-http==1.45.*" "opentelemetry-exporter-otlp-proto-grpc==1.45.*")
python3 -c "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http, opentelemetry.exporter.otlp.proto.grpc" 2>/dev/null \
  || python3 -m pip install -q "${PIP_PACKAGES[@]}"
# The Kubernetes API schemas the manifests in deploy/kubernetes/ are validated against
# offline (tests/kubernetes/validate.py, docs/kubernetes.md); PyYAML comes with it.
K8S_PIP_PACKAGES=("kubernetes-validate==1.33.*")
python3 -c "import kubernetes_validate, yaml; assert kubernetes_validate.__version__.startswith('1.33.')" 2>/dev/null \
  || python3 -m pip install -q "${K8S_PIP_PACKAGES[@]}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== no import cycles between the files of a crate"
python3 tests/tools/module_cycles.py
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== Kubernetes manifests: rendered, schema-validated (1.33), policy-checked"
python3 tests/kubernetes/validate.py
echo "== the lake read by pyarrow and DuckDB"
./tests/interop.sh
