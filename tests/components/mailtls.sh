#!/usr/bin/env bash
# Installs what tests/it_sources/starttls_servers.rs needs (idempotent):
#   dovecot-imapd — Dovecot, a real IMAP server offering STARTTLS (`dovecot -F -c CONF`)
#   slapd         — OpenLDAP's server, offering the StartTLS extended operation (RFC 4511 §4.14)
#   ldap-utils    — ldapsearch, which the test uses to check slapd's StartTLS independently
# The tests write their own configuration in a temporary directory and start each server on an
# ephemeral 127.0.0.1 port; the system services these packages would start are never wanted:
# they are kept from starting during the install (policy-rc.d) and stopped if they run anyway.
# slapd's debconf questions are answered beforehand (no initial database: the tests bring theirs).
# apt runs only when a binary is missing; sudo only when not root.
set -euo pipefail

need=()
[ -x /usr/sbin/dovecot ] || need+=(dovecot-core dovecot-imapd)
[ -x /usr/sbin/slapd ] || need+=(slapd)
command -v ldapsearch >/dev/null 2>&1 || need+=(ldap-utils)
command -v openssl >/dev/null 2>&1 || need+=(openssl)

if [ ${#need[@]} -gt 0 ]; then
  echo "[mailtls] installing: ${need[*]}" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
  # No initial slapd database or admin password prompt.
  printf '%s\n' 'slapd slapd/no_configuration boolean true' | "${SUDO[@]}" debconf-set-selections
  # Keep the packages' init scripts from starting system-wide daemons (exit 101 = "not allowed"),
  # unless a policy is already in place; ours is removed afterwards.
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  status=0
  "${SUDO[@]}" apt-get update -qq || status=$?
  if [ $status -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
      $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null || status=$?
  fi
  if [ $own_policy = 1 ]; then "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d; fi
  [ $status -eq 0 ] || { echo "[mailtls] apt-get failed ($status)" >&2; exit $status; }
  # Should a service have started regardless (a machine with a running init), stop it: the
  # tests run their own instances and the system ones would only hold ports 143/389.
  for svc in dovecot slapd; do
    if command -v service >/dev/null 2>&1; then "${SUDO[@]}" service "$svc" stop >/dev/null 2>&1 || true; fi
  done
fi

echo "[mailtls] dovecot $(/usr/sbin/dovecot --version 2>/dev/null | cut -d' ' -f1), slapd: /usr/sbin/slapd, ldapsearch: $(command -v ldapsearch)" >&2
