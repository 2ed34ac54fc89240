#!/usr/bin/env bash
# Installs what tests/it_sources/source_aws.rs needs: moto's server (ACM and Secrets Manager emulation,
# started by the test itself on an ephemeral loopback port). Idempotent: pip is a no-op when the
# pinned version is already installed.
set -euo pipefail

VENV=${CERTVIGIL_TEST_VENV:-/opt/certvigil-test-venv}
MOTO_VERSION=5.2.5

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('moto') != '$MOTO_VERSION')" 2>/dev/null \
  || [ ! -x "$VENV/bin/moto_server" ]; then
  "$VENV/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
"$VENV/bin/moto_server" --help >/dev/null
echo "[components] moto $MOTO_VERSION: $VENV/bin/moto_server"
