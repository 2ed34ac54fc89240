#!/usr/bin/env bash
# Runs every test certvigil has. Installs what the tests need first (idempotent): the real
# components they talk to are started by the tests themselves on 127.0.0.1.
#   openssl  — builds PKCS#7 and PKCS#12 fixtures and RSA keys (tests/common)
#   keytool  — builds Java keystores (default-jre-headless)
#   script   — runs the CLI under a pseudo-terminal (bsdutils)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v keytool >/dev/null 2>&1 || need_apt+=(default-jre-headless)
command -v script >/dev/null 2>&1 || need_apt+=(bsdutils)     # a real terminal for colour tests
command -v mkfifo >/dev/null 2>&1 || need_apt+=(coreutils)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "[tests] installing: ${need_apt[*]}" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

cargo test --all-targets --locked "$@"
