"""Token verification against RFC 8725's checklist: every refusal is a 401 before any work."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from orderfast.http.auth import TokenVerifier, load_public_keys
from orderfast.http.problems import Problem

SECRET = "s" * 40
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ATTACKER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def verifier(tmp_path_factory: pytest.TempPathFactory) -> TokenVerifier:
    d = tmp_path_factory.mktemp("keys")
    (d / "rsa-1.pem").write_bytes(pem(RSA_KEY))
    (d / "ec-1.pem").write_bytes(pem(EC_KEY))
    keys = load_public_keys([str(d / "rsa-1.pem"), str(d / "ec-1.pem")])
    return TokenVerifier(SECRET, public_keys=keys, issuer="https://id.example", audience="orderfast", max_lifetime=3600)


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": "u-1", "iat": now, "exp": now + 600, "iss": "https://id.example", "aud": "orderfast"}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def check(v: TokenVerifier, token: str) -> str:
    return v.verify("Bearer " + token).user_id


def refused(v: TokenVerifier, token: str) -> None:
    with pytest.raises(Problem) as info:
        v.verify("Bearer " + token)
    assert info.value.status == 401
    assert info.value.headers["www-authenticate"].startswith("Bearer")


def test_hs256_rs256_and_es256_with_configured_keys(verifier: TokenVerifier) -> None:
    assert check(verifier, jwt.encode(claims(), SECRET, algorithm="HS256")) == "u-1"
    assert check(verifier, jwt.encode(claims(sub="r"), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})) == "r"
    assert check(verifier, jwt.encode(claims(sub="e"), EC_KEY, algorithm="ES256")) == "e", "no kid: any key of the alg"


def _unsigned(payload: dict[str, Any], header: dict[str, Any]) -> str:
    def b64(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{b64(header)}.{b64(payload)}."


def test_alg_none_is_refused(verifier: TokenVerifier) -> None:
    refused(verifier, _unsigned(claims(), {"alg": "none", "typ": "JWT"}))
    refused(verifier, _unsigned(claims(), {"alg": "None"}))


def test_algorithm_confusion_is_refused(verifier: TokenVerifier) -> None:
    # HS256 "signed" with the RSA public key as the HMAC secret: the public key is never an HMAC key.
    import hashlib
    import hmac

    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    sig = hmac.new(pem(RSA_KEY), header + b"." + body, hashlib.sha256).digest()
    refused(verifier, (header + b"." + body + b"." + base64.urlsafe_b64encode(sig).rstrip(b"=")).decode())
    only_keys = TokenVerifier(None, public_keys=verifier._keys)  # no HS256 secret at all
    refused(only_keys, jwt.encode(claims(), SECRET, algorithm="HS256"))


def test_keys_named_by_the_token_are_never_used(verifier: TokenVerifier) -> None:
    forged = {"jku": "https://attacker.example/jwks.json", "x5u": "https://attacker.example/cert.pem", "kid": "rsa-1"}
    refused(verifier, jwt.encode(claims(), ATTACKER, algorithm="RS256", headers=forged))
    refused(verifier, jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers={"kid": "unknown-kid"}))
    embedded = {"jwk": json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(ATTACKER.public_key()))}
    refused(verifier, jwt.encode(claims(), ATTACKER, algorithm="RS256", headers=embedded))


def test_unknown_crit_is_refused(verifier: TokenVerifier) -> None:
    refused(verifier, jwt.encode(claims(), SECRET, algorithm="HS256", headers={"crit": ["exp-ext"], "exp-ext": 1}))


@pytest.mark.parametrize(
    "bad",
    [
        {"aud": None},
        {"aud": "someone-else"},
        {"iss": None},
        {"iss": "https://evil.example"},
        {"exp": -120},  # times: seconds from when the test runs (not from when it was collected)
        {"nbf": 600},
        {"exp": 7200},  # lives longer than max_lifetime
        {"iat": None},
        {"sub": None},
        {"sub": ""},
        {"roles": "admin"},
    ],
)
def test_bad_claims_are_refused(verifier: TokenVerifier, bad: dict[str, Any]) -> None:
    now = int(time.time())
    bad = {k: now + v if k in ("exp", "nbf") else v for k, v in bad.items()}
    refused(verifier, jwt.encode(claims(**bad), SECRET, algorithm="HS256"))


def test_leeway_is_small_and_symmetric(verifier: TokenVerifier) -> None:
    now = int(time.time())
    assert check(verifier, jwt.encode(claims(exp=now - 10, iat=now - 100), SECRET, algorithm="HS256")) == "u-1"
    assert check(verifier, jwt.encode(claims(nbf=now + 10), SECRET, algorithm="HS256")) == "u-1"


def test_tampered_tokens_are_refused(verifier: TokenVerifier) -> None:
    token = jwt.encode(claims(), SECRET, algorithm="HS256")
    head, _body, sig = token.split(".")
    other = base64.urlsafe_b64encode(json.dumps(claims(sub="admin", roles=["admin"])).encode()).rstrip(b"=").decode()
    refused(verifier, f"{head}.{other}.{sig}")
    refused(verifier, jwt.encode(claims(), "t" * 40, algorithm="HS256"))


def test_jwks_files_are_read_locally(tmp_path: Path) -> None:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    jwk["kid"] = "rotated-2"
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    v = TokenVerifier(None, public_keys=load_public_keys(jwks_file=str(tmp_path / "jwks.json")))
    assert (
        check(
            v, jwt.encode(claims(sub="j", iss=None, aud=None), RSA_KEY, algorithm="RS256", headers={"kid": "rotated-2"})
        )
        == "j"
    )
    with pytest.raises(ValueError):
        TokenVerifier(None)


def test_hs256_rotation_accepts_previous_secrets_until_they_are_removed() -> None:
    old, new, other = "o" * 40, "n" * 40, "x" * 40
    rotating = TokenVerifier(new, previous_secrets=[old])
    assert check(rotating, jwt.encode(claims(sub="new", iss=None, aud=None), new, algorithm="HS256")) == "new"
    assert check(rotating, jwt.encode(claims(sub="old", iss=None, aud=None), old, algorithm="HS256")) == "old"
    refused(rotating, jwt.encode(claims(iss=None, aud=None), other, algorithm="HS256"))
    rotated = TokenVerifier(new)
    refused(rotated, jwt.encode(claims(iss=None, aud=None), old, algorithm="HS256"))


def test_previous_secrets_are_checked_at_start(tmp_path: Path) -> None:
    from orderfast.bootstrap import token_verifier
    from orderfast.config import ConfigError, Settings

    base = {"ORDERFAST_DATA_DIR": str(tmp_path)}
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        token_verifier(
            Settings.from_env({**base, "ORDERFAST_JWT_SECRET": SECRET, "ORDERFAST_JWT_PREVIOUS_SECRETS": "short"})
        )
    (tmp_path / "rsa-1.pem").write_bytes(pem(RSA_KEY))
    only_public = {**base, "ORDERFAST_JWT_PUBLIC_KEYS": str(tmp_path / "rsa-1.pem")}
    with pytest.raises(ConfigError, match="needs ORDERFAST_JWT_SECRET"):
        token_verifier(Settings.from_env({**only_public, "ORDERFAST_JWT_PREVIOUS_SECRETS": "p" * 40}))
