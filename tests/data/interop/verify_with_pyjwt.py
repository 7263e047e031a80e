#!/usr/bin/env python3
"""Verifies tokens that usher made, with PyJWT: the other direction of the interop test
(tests/interop.rs). Reads a JSON list of {"alg", "token", and "public_pem" or "secret_file"} on
standard input; prints one line per token, "ok ALG" or "FAIL ALG: why", and exits 1 when any
failed. PyJWT is told the one algorithm the key is for, as usher pins it."""
import json
import sys

import jwt


def main():
    failed = 0
    for item in json.load(sys.stdin):
        alg = item["alg"]
        if "secret_file" in item:
            with open(item["secret_file"], "rb") as f:
                key = f.read()
        else:
            key = item["public_pem"]
        try:
            claims = jwt.decode(item["token"], key, algorithms=[alg],
                                options={"require": ["exp", "iat"]}, audience=item.get("aud"))
            header = jwt.get_unverified_header(item["token"])
            if header.get("alg") != alg or header.get("kid") != item["kid"]:
                raise ValueError(f"header {header}")
            if claims.get("sub") != item["sub"]:
                raise ValueError("sub differs")
            print(f"ok {alg}")
        except Exception as e:  # noqa: BLE001 - every failure is reported, none is fatal
            failed += 1
            print(f"FAIL {alg}: {type(e).__name__}: {e}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
