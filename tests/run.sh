#!/usr/bin/env bash
# Runs every test certvigil has. Installs what the tests need first (idempotent): the real
# components they talk to are started by the tests themselves on 127.0.0.1.
#   openssl  — builds PKCS#7 and PKCS#12 fixtures and RSA keys (tests/common)
#   keytool  — builds Java keystores (default-jre-headless)
#   script   — runs the CLI under a pseudo-terminal (bsdutils)
#   aiosmtpd — the SMTP server of tests/it_alerts/alerts.rs (PyPI, in a venv at $CERTVIGIL_TEST_VENV)
#   tests/components/*.sh — what each source test needs (OpenBao, SoftHSM2, moto, Pebble), installed
#              by its own script
#   systemd-analyze — rates the hardening of packaging/systemd/certvigil.service (systemd)
#   dpkg-deb — reads the Debian package that packaging/deb/build.sh builds (dpkg); the build
#              itself installs cargo-deb when it is missing (tests/packaging.rs checks the .deb)
#   chromium, chromedriver — the headless browser and the WebDriver server that drive the status
#              page in tests/it_ui (Debian's chromium and chromium-driver, the same version by
#              their dependencies)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v keytool >/dev/null 2>&1 || need_apt+=(default-jre-headless)
command -v script >/dev/null 2>&1 || need_apt+=(bsdutils)     # a real terminal for colour tests
command -v mkfifo >/dev/null 2>&1 || need_apt+=(coreutils)
[ -x /bin/kill ] || [ -x /usr/bin/kill ] || need_apt+=(procps)  # hook timeouts kill the process group
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v dpkg-deb >/dev/null 2>&1 || need_apt+=(dpkg)
[ -d /etc/ssl/certs ] || need_apt+=(ca-certificates)        # the packaged configuration scans it
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "[tests] installing: ${need_apt[*]}" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# aiosmtpd for the alerting tests, in its own venv (pip is a no-op when it is already there).
VENV=${CERTVIGIL_TEST_VENV:-/opt/certvigil-test-venv}
export CERTVIGIL_TEST_VENV=$VENV
if [ ! -x "$VENV/bin/python" ]; then
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    echo "[tests] installing: python3-venv" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    rm -rf "$VENV"
    python3 -m venv "$VENV"
  fi
fi
"$VENV/bin/python" -c 'import aiosmtpd' >/dev/null 2>&1 ||
  "$VENV/bin/pip" install -q --disable-pip-version-check aiosmtpd==1.4.6

# Real components of the source tests (OpenBao, SoftHSM2, moto, …): one idempotent script each.
for script in tests/components/*.sh; do
  [ -e "$script" ] || continue
  bash "$script"
done

# A throwaway PostgreSQL cluster for the PostgreSQL store's tests, for this run only: its admin
# URL goes to the tests as CERTVIGIL_TEST_POSTGRES, and each test makes a database of its own.
PG_DIR=$(mktemp -d)
chmod 755 "$PG_DIR"
stop_postgres() { bash tests/postgres.sh stop "$PG_DIR" >/dev/null 2>&1 || true; rm -rf "$PG_DIR"; }
trap stop_postgres EXIT
CERTVIGIL_TEST_POSTGRES=$(bash tests/postgres.sh start "$PG_DIR")
export CERTVIGIL_TEST_POSTGRES

# The .deb that tests/packaging.rs extracts and runs (a no-op when it is up to date).
bash packaging/deb/build.sh

# A one-shot CI build gains nothing from incremental artefacts, which would double its disk use.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi
cargo test --all-targets --locked --features failpoints "$@"
