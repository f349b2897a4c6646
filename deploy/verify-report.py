#!/usr/bin/env python3
"""Check a plantmeter report JSON without plantmeter: Python 3 (standard library) and openssl.

    python3 verify-report.py report.json [--public-key report-key.pub.pem]

Recomputes the SHA-256 of the report's canonical form (README "Report integrity": the report without
`integrity`, object keys sorted at every level, no whitespace, UTF-8, strings escaped as JSON requires
and nothing more, numbers as serde_json writes them) and compares it with `integrity.sha256`; with
`--public-key` (the PEM that `plantmeter key --key-file FILE` prints) also checks the ed25519 signature
`integrity.signature` of the digest's 64 hex characters, with `openssl pkeyutl`.

Exit 0: digest (and signature, when a key was given) verified; 1: it does not hold; 2: not a report,
unreadable input; 3: the signature could not be checked (openssl missing or too old for ed25519).
`--canonical` prints the canonical text instead (to compare byte by byte with another implementation).
"""

import argparse
import decimal
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile


def number(x):
    """A number as serde_json writes it: integers as they are; a float as the shortest digits that read
    back to the same double (Python's repr gives them), laid out as serde_json 1.0.154 does:
    `37.0`, `1234.5`, `0.0001`, `1e-6`, `1.2866050715614669e-8`, `1e+16`, `-0.0`."""
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int):
        return str(x)
    if not math.isfinite(x):
        raise ValueError(f"{x}: not a JSON number")
    if x == 0.0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    sign = "-" if x < 0 else ""
    t = decimal.Decimal(repr(abs(x))).as_tuple()
    digits = "".join(map(str, t.digits)).lstrip("0")
    exp = t.exponent  # value = digits x 10^exp
    while len(digits) > 1 and digits.endswith("0"):
        digits, exp = digits[:-1], exp + 1
    n = len(digits)
    kk = n + exp  # 10^(kk-1) <= value < 10^kk
    if 0 <= exp and kk <= 16:
        s = digits + "0" * exp + ".0"
    elif 0 < kk <= 16:
        s = digits[:kk] + "." + digits[kk:]
    elif -5 < kk <= 0:
        s = "0." + "0" * (-kk) + digits
    else:
        e = kk - 1
        s = digits[0] + ("." + digits[1:] if n > 1 else "") + ("e-" if e < 0 else "e+") + str(abs(e))
    return sign + s


def canonical(v):
    """The canonical text of a JSON value."""
    if v is None:
        return "null"
    if isinstance(v, (bool, int, float)):
        return number(v)
    if isinstance(v, str):
        # Escapes `"`, `\`, the controls below U+0020 (\b \t \n \f \r, else \u00xx): as serde_json.
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ",".join(canonical(x) for x in v) + "]"
    if isinstance(v, dict):
        # Code point order is UTF-8 byte order.
        return "{" + ",".join(
            json.dumps(k, ensure_ascii=False) + ":" + canonical(v[k]) for k in sorted(v)
        ) + "}"
    raise ValueError(f"{type(v).__name__}: not a JSON value")


def reject_constant(name):
    raise ValueError(f"{name}: not a JSON number")


def verify_signature(public_key, message, signature_hex):
    """True/False from openssl; None when openssl cannot check it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    try:
        sig = bytes.fromhex(signature_hex)
    except ValueError:
        return False
    with tempfile.TemporaryDirectory() as d:
        msg_path, sig_path = os.path.join(d, "digest"), os.path.join(d, "sig")
        with open(msg_path, "wb") as f:
            f.write(message)
        with open(sig_path, "wb") as f:
            f.write(sig)
        r = subprocess.run(
            [openssl, "pkeyutl", "-verify", "-pubin", "-inkey", public_key, "-rawin",
             "-in", msg_path, "-sigfile", sig_path],
            capture_output=True,
            text=True,
        )
    if r.returncode == 0 and "Verified Successfully" in r.stdout:
        return True
    if "Signature Verification Failure" in r.stdout + r.stderr:
        return False
    sys.stderr.write(f"openssl could not check the signature: {r.stderr.strip()}\n")
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report", help="the report JSON")
    ap.add_argument("--public-key", help="the signer's public key (PEM)")
    ap.add_argument("--canonical", action="store_true", help="print the canonical text and stop")
    a = ap.parse_args()
    try:
        with open(a.report, "rb") as f:
            report = json.loads(f.read().decode("utf-8"), parse_constant=reject_constant)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        print(f"{a.report}: not a readable JSON file: {e}", file=sys.stderr)
        return 2
    if not isinstance(report, dict):
        print(f"{a.report}: not a report (a JSON object)", file=sys.stderr)
        return 2
    body = {k: v for k, v in report.items() if k != "integrity"}
    text = canonical(body).encode("utf-8")
    if a.canonical:
        sys.stdout.buffer.write(text)
        return 0
    digest = hashlib.sha256(text).hexdigest()
    integrity = report.get("integrity") or {}
    claimed = integrity.get("sha256")
    if claimed != digest:
        print(f"{a.report}: sha256 {digest} of its content, but integrity.sha256 is {claimed}: changed")
        return 1
    print(f"{a.report}: sha256 {digest} verified")
    signature = integrity.get("signature")
    if a.public_key is None:
        if signature:
            print("signed; signature not checked (give --public-key FILE)")
        return 0
    if not signature:
        print(f"{a.report}: not signed, but a public key was given")
        return 1
    ok = verify_signature(a.public_key, digest.encode("ascii"), signature)
    if ok is None:
        print("signature NOT checked: openssl (1.1.1 or later, with ed25519) is needed", file=sys.stderr)
        return 3
    if not ok:
        print(f"{a.report}: the ed25519 signature does not verify with {a.public_key}")
        return 1
    print(f"ed25519 signature verified with {a.public_key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
