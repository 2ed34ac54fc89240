#!/usr/bin/env bash
# Installs what tests/acme*.rs need: Pebble (a small ACME test server) and pebble-challtestsrv
# (its companion DNS server), both from Debian's `pebble` package, openssl for the checks and
# curl for the dns-01 hook script. tests/it_acme/acme_openbao.rs also needs OpenBao's `bao`, which
# tests/components/vault.sh installs.
# The test writes its own Pebble configuration and starts both servers on ephemeral loopback
# ports. Idempotent: apt runs only when a binary is missing; sudo only when not root.
set -euo pipefail

need=()
command -v pebble >/dev/null 2>&1 || need+=(pebble)
command -v pebble-challtestsrv >/dev/null 2>&1 || need+=(pebble)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u)
fi
echo "[components] pebble: $(command -v pebble), pebble-challtestsrv: $(command -v pebble-challtestsrv)"
