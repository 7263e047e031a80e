#!/usr/bin/env python3
"""Writes pyjwt_vectors.json: keys and tokens made by another implementation (PyJWT on
cryptography), for every algorithm usher takes, so usher is tested against tokens it did not
make. The output is committed; run this again only to change the vectors:

    pip install 'PyJWT[crypto]==2.15.1'
    python3 tests/data/interop/make_vectors.py > tests/data/interop/pyjwt_vectors.json

Each vector names what usher must answer for its token: `allow`, or a reason code of SPEC §3
(`jwt-sig-fail`, `jwt-wrong-alg`), or `refused` for a key usher must not take at all. The
`entry_points` list has one key and token per algorithm and way in (`config`, `api`, `jwks`), each
with its own kid, for the tests that drive a running usher.
"""
import base64
import json
import sys

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, RSAPSSAlgorithm

CLAIMS = {"sub": "abc123", "aud": "usher-interop", "iat": 1765152000, "exp": 4102444800}


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_pem(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def jwk_of(algorithm, public_key, kid, alg):
    jwk = json.loads(algorithm.to_jwk(public_key))
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return jwk


def token(key, alg, kid):
    return jwt.encode(CLAIMS, key, algorithm=alg, headers={"kid": kid})


def resign(tok, sign):
    """The token's signing input signed again by `sign` (for signatures PyJWT would not make)."""
    signing_input = tok.rsplit(".", 1)[0]
    return signing_input + "." + b64u(sign(signing_input.encode()))


def main():
    out = []

    def asym(kid, alg, key, algorithm, expect="allow", tok=None, note=""):
        out.append({
            "kid": kid, "alg": alg, "public_pem": public_pem(key),
            "jwk": jwk_of(algorithm, key.public_key(), kid, alg),
            "token": tok or token(key, alg, kid), "expect": expect, "note": note,
        })

    p256 = ec.generate_private_key(ec.SECP256R1())
    p384 = ec.generate_private_key(ec.SECP384R1())
    ed = ed25519.Ed25519PrivateKey.generate()
    asym("es256", "ES256", p256, ECAlgorithm(ECAlgorithm.SHA256))
    asym("es384", "ES384", p384, ECAlgorithm(ECAlgorithm.SHA384))
    asym("eddsa", "EdDSA", ed, OKPAlgorithm())
    # RFC 7518 §3.4: an ECDSA JWS signature is r||s, not the DER sequence X.509 uses.
    der = resign(token(p256, "ES256", "es256-der"),
                 lambda m: p256.sign(m, ec.ECDSA(hashes.SHA256())))
    asym("es256-der", "ES256", p256, ECAlgorithm(ECAlgorithm.SHA256), "jwt-sig-fail", der,
         "an ASN.1 DER signature instead of r||s")

    hashes_of = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}
    for bits in (2048, 3072, 4096):
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        for size in ("256", "384", "512"):
            for family, algorithm in (("RS", RSAAlgorithm), ("PS", RSAPSSAlgorithm)):
                alg = family + size
                asym(f"{alg.lower()}-{bits}", alg, key, algorithm(getattr(algorithm, "SHA" + size)))
        # RFC 7518 §3.5: the PSS salt is as long as the hash; a longer one is not PS256.
        long_salt = resign(token(key, "PS256", f"ps256-{bits}-maxsalt"), lambda m: key.sign(
            m, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH),
            hashes.SHA256()))
        asym(f"ps256-{bits}-maxsalt", "PS256", key, RSAPSSAlgorithm(RSAPSSAlgorithm.SHA256),
             "jwt-sig-fail", long_salt, "PSS salt longer than the hash")
        # A key pinned to PS256 refuses an RS256 token made with the same RSA key.
        asym(f"ps256-{bits}-given-rs256", "PS256", key, RSAPSSAlgorithm(RSAPSSAlgorithm.SHA256),
             "jwt-wrong-alg", token(key, "RS256", f"ps256-{bits}-given-rs256"),
             "header RS256 against a PS256 key")
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    asym("rs256-1024", "RS256", small, RSAAlgorithm(RSAAlgorithm.SHA256), "refused",
         note="RSA keys under 2048 bits are refused when set")

    # Secrets of the minimum length (RFC 7518 §3.2), of the hash's block size, one byte over it
    # (HMAC hashes such a key first), and long; one byte under the minimum is refused.
    for size, lengths in (("256", (32, 64, 65, 200)), ("384", (48, 128, 129, 200)),
                          ("512", (64, 128, 129, 200))):
        alg = "HS" + size
        for n in lengths + (int(size) // 8 - 1,):
            secret = bytes((i * 7 + n) % 256 for i in range(n))
            kid = f"hs{size}-{n}"
            with_secret = {"kty": "oct", "k": b64u(secret), "kid": kid, "alg": alg, "use": "sig"}
            expect = "allow" if n >= int(size) // 8 else "refused"
            note = "" if expect == "allow" else "shorter than the hash: refused when set"
            out.append({"kid": kid, "alg": alg, "secret_b64": b64u(secret), "jwk": with_secret,
                        "token": jwt.encode(CLAIMS, secret, algorithm=alg, headers={"kid": kid}),
                        "expect": expect, "note": note})
        wrong = bytes(range(int(size) // 8))
        kid = f"hs{size}-wrong-secret"
        right = bytes(range(1, int(size) // 8 + 1))
        out.append({"kid": kid, "alg": alg, "secret_b64": b64u(right),
                    "jwk": {"kty": "oct", "k": b64u(right), "kid": kid, "alg": alg, "use": "sig"},
                    "token": jwt.encode(CLAIMS, wrong, algorithm=alg, headers={"kid": kid}),
                    "expect": "jwt-sig-fail", "note": "signed with another secret"})

    entry_points = []
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    asymmetric = {"ES256": (p256, ECAlgorithm(ECAlgorithm.SHA256)),
                  "ES384": (p384, ECAlgorithm(ECAlgorithm.SHA384)),
                  "EdDSA": (ed, OKPAlgorithm())}
    for size in ("256", "384", "512"):
        asymmetric["RS" + size] = (rsa_key, RSAAlgorithm(getattr(RSAAlgorithm, "SHA" + size)))
        asymmetric["PS" + size] = (rsa_key, RSAPSSAlgorithm(getattr(RSAPSSAlgorithm, "SHA" + size)))
    for entry in ("config", "api", "jwks"):
        for alg, (key, algorithm) in asymmetric.items():
            kid = f"{alg.lower()}-{entry}"
            entry_points.append({"entry": entry, "kid": kid, "alg": alg,
                                 "public_pem": public_pem(key),
                                 "jwk": jwk_of(algorithm, key.public_key(), kid, alg),
                                 "token": token(key, alg, kid), "expect": "allow"})
        for alg in ("HS256", "HS384", "HS512"):
            kid = f"{alg.lower()}-{entry}"
            secret = bytes((i * 13 + len(kid)) % 256 for i in range(int(alg[2:]) // 8))
            entry_points.append({"entry": entry, "kid": kid, "alg": alg, "secret_b64": b64u(secret),
                                 "jwk": {"kty": "oct", "k": b64u(secret), "kid": kid, "alg": alg,
                                         "use": "sig"},
                                 "token": jwt.encode(CLAIMS, secret, algorithm=alg,
                                                     headers={"kid": kid}),
                                 # A JWKS is public: usher never takes a secret from one.
                                 "expect": "refused" if entry == "jwks" else "allow"})

    json.dump({"generator": f"PyJWT {jwt.__version__}", "claims": CLAIMS, "vectors": out,
               "entry_points": entry_points}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
