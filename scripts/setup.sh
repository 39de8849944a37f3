#!/usr/bin/env bash
# Installs everything the tests and the local demo stack need on a fresh Debian machine with
# only the Rust toolchain: Debian servers (nginx, redis, dnsmasq, prometheus/promtool,
# blackbox_exporter), Node.js and the npm OIDC provider, headless Chromium and chromedriver, the
# s3s-fs S3 server, and the Python schema validator.
# Idempotent: what is already there is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need_apt=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# The dns step's tests and the demo: a DNS server answering from its command line.
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need_apt+=(dnsmasq-base)
# redis-cli builds the test Redis Cluster (`--cluster create`); the tests run Sentinel as
# `redis-server CONF --sentinel`, so Debian's redis-sentinel package is not needed.
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
[ -x /usr/bin/prometheus-blackbox-exporter ] || need_apt+=(prometheus-blackbox-exporter)
# The serve cost bench's yardstick: wrk's own CPU per fresh-connection request.
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
# PostgreSQL for the restore-drill tests and demo (initdb/postgres under /usr/lib/postgresql).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v setpriv >/dev/null 2>&1 || need_apt+=(util-linux)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# kubectl (for `kubectl kustomize` in the deploy tests) ships with this machine image; Debian's
# kubernetes-client is the fallback on a bare Debian.
command -v kubectl >/dev/null 2>&1 || need_apt+=(kubernetes-client)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v xmllint >/dev/null 2>&1 || need_apt+=(libxml2-utils)
# Headless browser for the /status page and HTML report tests (driven over WebDriver).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || [ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Debian starts nothing (no systemd here), but stop any packaged daemon that did start, by PID file.
for pidfile in /run/nginx.pid /run/redis/redis-server.pid /run/postgresql/*.pid; do
  if [ -f "$pidfile" ]; then $SUDO kill "$(head -n1 "$pidfile")" 2>/dev/null || true; fi
done

# The OIDC provider used by tests and the demo (npm, from the committed lock file).
if [ -f tests/idp/package-lock.json ] && [ ! -d tests/idp/node_modules/oidc-provider ]; then
  echo "setup: npm ci in tests/idp"
  (cd tests/idp && npm ci --no-audit --no-fund --loglevel=error)
fi

# S3-compatible server with real SigV4 checks. 0.14.1: newer releases need a newer rustc.
if ! command -v s3s-fs >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/s3s-fs" ]; then
  echo "setup: cargo install s3s-fs@0.14.1 (about a minute)"
  cargo install s3s-fs@0.14.1 --locked --features binary --quiet
fi

# Offline Kubernetes schema validation for deploy/.
if [ ! -x .venv/bin/kubernetes-validate ]; then
  echo "setup: python venv with kubernetes-validate"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check kubernetes-validate
fi
echo "setup: done"
