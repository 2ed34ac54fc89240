#!/usr/bin/env python3
"""x509scan.py owns the Python baseline of the certvigil scan benchmark (benches/scan.rs).

The same work as a certvigil files scan minus the store, with the `cryptography` package, in
one thread (the way a Python inventory script is usually written): walk a directory tree, read
every regular file, parse every certificate in it (all CERTIFICATE blocks of a PEM file, or the
whole file as DER when it holds no PEM), compute the SHA-256 of each certificate's DER and
extract notAfter.

It prints one JSON line on stdout for the harness to check against the generator:

    {"tool":"python","files":N,"certs":N,"errors":N,"fingerprint_xor":"hex","not_after_sum":N}

fingerprint_xor is the XOR of all SHA-256 fingerprints and not_after_sum the sum of all notAfter
times (Unix seconds): order-independent digests proving every tool parsed the same certificates.

Usage: x509scan.py DIR
"""

import json
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes

PEM_MARKER = b"-----BEGIN "


def walk(root):
    """Yields the path of every regular file under root (symlinks not followed)."""
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    yield entry.path


def main():
    if len(sys.argv) != 2:
        print("usage: x509scan.py DIR", file=sys.stderr)
        return 2
    files = certs = errors = not_after_sum = 0
    xor = 0  # the fingerprints' XOR, as one 256-bit integer
    sha256 = hashes.SHA256()
    for path in walk(sys.argv[1]):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            print(f"x509scan.py: {path}: {e}", file=sys.stderr)
            errors += 1
            continue
        files += 1
        try:
            if PEM_MARKER in data:
                parsed = x509.load_pem_x509_certificates(data)
            else:
                parsed = [x509.load_der_x509_certificate(data)]
        except ValueError as e:
            print(f"x509scan.py: {path}: {e}", file=sys.stderr)
            errors += 1
            continue
        for cert in parsed:
            xor ^= int.from_bytes(cert.fingerprint(sha256), "big")
            not_after_sum += int(cert.not_valid_after_utc.timestamp())
            certs += 1
    print(json.dumps({
        "tool": "python",
        "workers": 1,
        "files": files,
        "certs": certs,
        "errors": errors,
        "fingerprint_xor": xor.to_bytes(32, "big").hex(),
        "not_after_sum": not_after_sum,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
