#!/usr/bin/env bash
# Installs what tests/source_pkcs11.rs needs (idempotent):
#   softhsm2  — a software PKCS#11 token (libsofthsm2.so and softhsm2-util); the test writes its
#               own SOFTHSM2_CONF pointing at a temporary token directory
#   opensc    — pkcs11-tool, which imports certificates and keys into the token
#   openssl   — converts the test's keys to DER PKCS#8
# Versions follow the distribution's release (Debian/Ubuntu stable packages).
set -euo pipefail

need=()
command -v softhsm2-util >/dev/null 2>&1 || need+=(softhsm2)
command -v pkcs11-tool >/dev/null 2>&1 || need+=(opensc)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  echo "[pkcs11] installing: ${need[*]}" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The module path differs between distributions; print the one found so the test can use it.
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so /usr/lib64/pkcs11/libsofthsm2.so; do
  if [ -f "$m" ]; then echo "[pkcs11] module: $m" >&2; exit 0; fi
done
echo "[pkcs11] libsofthsm2.so not found after installing softhsm2" >&2
exit 1
