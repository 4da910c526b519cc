"""What authenticating a request costs: a JWT verified from scratch (PyJWT, HS256 and ES256) against
the per-token cache every repeat request hits. Run with ``make bench``; compare as ratios.
"""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from orderfast.http.auth import PublicKey, TokenVerifier, mint_token

SECRET = "b" * 48


@pytest.fixture(scope="module")
def hs256() -> tuple[TokenVerifier, str]:
    return TokenVerifier(SECRET), "Bearer " + mint_token(SECRET, "bench-user", ["admin"])


def test_jwt_hs256_uncached(benchmark: Any, hs256: tuple[TokenVerifier, str]) -> None:
    verifier, header = hs256
    token = header.split()[1]
    principal, _ = benchmark(verifier._decode, token)
    assert principal.user_id == "bench-user"


def test_jwt_cached(benchmark: Any, hs256: tuple[TokenVerifier, str]) -> None:
    verifier, header = hs256
    verifier.verify(header)
    assert benchmark(verifier.verify, header).user_id == "bench-user"


def test_jwt_es256_uncached(benchmark: Any) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    verifier = TokenVerifier(None, public_keys=[PublicKey("k1", "ES256", serialization.load_pem_public_key(pem))])
    claims = jwt.decode(mint_token(SECRET, "bench-user"), SECRET, algorithms=["HS256"])
    token = jwt.encode(claims, private, algorithm="ES256", headers={"kid": "k1"})
    principal, _ = benchmark(verifier._decode, token)
    assert principal.user_id == "bench-user"
