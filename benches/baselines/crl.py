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

Either way the work equals certvigil's, which reads every entry whole while it builds its index:
before answering, every entry is decoded (serial, revocationDate, and each extension:
reasonCode, invalidityDate; a critical extension it does not know fails the CRL, RFC 5280 §5.3)
-- cryptography decodes entries lazily, on access, so without this pass a script would only
touch the serials -- and each lookup's answer (reason, revocation time, invalidity date) is
written out for the harness to check.

It prints one JSON line on stdout for the harness to check against the generator:

    {"tool":"python","lookup":"api","entries":N,"verified":true,"lookups":N,"listed":N,
     "phases_s":{...}}

and writes each looked-up serial's answer to the --answers file, in order, one line each:
"SERIAL\tnot-listed" or "SERIAL\trevoked\tREASON_CODE\tREVOKED_UNIX\tINVALIDITY_UNIX" ("-"
when the entry has no invalidityDate; reason 0 when it has no reasonCode).

A CRL that does not verify exits 1.

Usage: crl.py [--lookup api|dict] --answers FILE CRL CA SERIALS
"""

import argparse
import json
import sys
import time

from cryptography import x509

# CRLReason codes, RFC 5280 §5.3.1.
REASON_CODES = {
    x509.ReasonFlags.unspecified: 0,
    x509.ReasonFlags.key_compromise: 1,
    x509.ReasonFlags.ca_compromise: 2,
    x509.ReasonFlags.affiliation_changed: 3,
    x509.ReasonFlags.superseded: 4,
    x509.ReasonFlags.cessation_of_operation: 5,
    x509.ReasonFlags.certificate_hold: 6,
    x509.ReasonFlags.remove_from_crl: 8,
    x509.ReasonFlags.privilege_withdrawn: 9,
    x509.ReasonFlags.aa_compromise: 10,
}


def decode(entry):
    """One entry read whole: (revoked at, reason code, invalidity date or None), Unix seconds."""
    reason, invalidity = 0, None
    for ext in entry.extensions:
        value = ext.value
        if isinstance(value, x509.CRLReason):
            reason = REASON_CODES[value.reason]
        elif isinstance(value, x509.InvalidityDate):
            invalidity = int(value.invalidity_date_utc.timestamp())
        elif ext.critical:
            raise ValueError(f"unknown critical entry extension {ext.oid.dotted_string}")
    return int(entry.revocation_date_utc.timestamp()), reason, invalidity


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
    p.add_argument("--answers", required=True, help="where to write each lookup's answer")
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
        serials = [line.strip() for line in f if line.strip()]

    answers = []
    if a.lookup == "api":
        # Every entry decoded once (as certvigil validates them all), then the documented API.
        for r in crl:
            _ = r.serial_number, decode(r)
        indexed = time.perf_counter()
        for text in serials:
            r = crl.get_revoked_certificate_by_serial_number(int(text.replace(":", ""), 16))
            answers.append((text, None if r is None else decode(r)))
    else:
        index = {}
        for r in crl:
            n = r.serial_number
            if n in index:
                print(f"crl.py: serial {n:X} is listed twice", file=sys.stderr)
                return 1
            index[n] = decode(r)
        indexed = time.perf_counter()
        for text in serials:
            answers.append((text, index.get(int(text.replace(":", ""), 16))))
    looked = time.perf_counter()
    listed = sum(1 for _, found in answers if found is not None)

    with open(a.answers, "w") as f:
        for text, found in answers:
            if found is None:
                f.write(f"{text}\tnot-listed\n")
            else:
                revoked_at, reason, invalidity = found
                f.write(f"{text}\trevoked\t{reason}\t{revoked_at}\t{'-' if invalidity is None else invalidity}\n")

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
