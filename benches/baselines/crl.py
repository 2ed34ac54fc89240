#!/usr/bin/env python3
"""crl.py owns the Python baseline of the certvigil revocation benchmark (benches/revocation.rs).

The work of `certvigil crl CRL --issuer CA --serials-file SERIALS` with the `cryptography`
package: read a DER (or PEM) CRL, verify its signature against the CA certificate's public key,
and look up every serial of the serials file (hex, one per line). Two ways to look up:

  --lookup api   `crl.get_revoked_certificate_by_serial_number(n)` for each serial: the
                 documented API. cryptography walks the entries on every call, so each lookup
                 costs a pass over the CRL (most of one for an absent serial).
  --lookup dict  one pass over the CRL into a dict {serial: entry}, then dict lookups: what a
                 script checking many serials against a large CRL does.

It prints one JSON line on stdout for the harness to check against the generator:

    {"tool":"python","lookup":"api","entries":N,"verified":true,"lookups":N,"listed":N,
     "phases_s":{...}}

A CRL that does not verify exits 1.

Usage: crl.py [--lookup api|dict] CRL CA SERIALS
"""

import argparse
import json
import sys
import time

from cryptography import x509


def load_crl(data):
    if b"-----BEGIN X509 CRL-----" in data:
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def load_cert(data):
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def main():
    p = argparse.ArgumentParser(description="Python CRL baseline (cryptography)")
    p.add_argument("--lookup", choices=["api", "dict"], default="api")
    p.add_argument("crl")
    p.add_argument("ca")
    p.add_argument("serials")
    a = p.parse_args()

    start = time.perf_counter()
    with open(a.crl, "rb") as f:
        crl = load_crl(f.read())
    entries = len(crl)
    parsed = time.perf_counter()

    with open(a.ca, "rb") as f:
        ca = load_cert(f.read())
    if not crl.is_signature_valid(ca.public_key()):
        print(f"crl.py: {a.crl} is not signed by {ca.subject.rfc4514_string()}", file=sys.stderr)
        return 1
    verified = time.perf_counter()

    with open(a.serials) as f:
        serials = [int(line.strip().replace(":", ""), 16) for line in f if line.strip()]

    listed = 0
    if a.lookup == "api":
        indexed = verified
        for n in serials:
            if crl.get_revoked_certificate_by_serial_number(n) is not None:
                listed += 1
    else:
        index = {r.serial_number: r for r in crl}
        indexed = time.perf_counter()
        for n in serials:
            if index.get(n) is not None:
                listed += 1
    looked = time.perf_counter()

    print(json.dumps({
        "tool": "python",
        "lookup": a.lookup,
        "entries": entries,
        "verified": True,
        "lookups": len(serials),
        "listed": listed,
        "phases_s": {
            "parse": parsed - start,
            "verify": verified - parsed,
            "index": indexed - verified,
            "lookup": looked - indexed,
        },
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
