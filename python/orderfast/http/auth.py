"""Who is calling: bearer JWTs → Principal. Verification happens once per request, before any
database work, and follows RFC 8725 (JWT best current practices):

- the algorithm is chosen by the server, never by the token: HS256 only when a shared secret is
  configured, RS256/ES256 only with configured public keys (PEM files or a local JWKS file);
  ``alg: none`` and an HS256 token "signed" with a public key (algorithm confusion) are refused;
- keys come only from configuration: ``kid`` selects among them, ``jku``/``x5u``/``jwk`` are never
  fetched or used, and a token naming a ``kid`` we do not have is refused;
- ``crit`` names extensions we do not implement: refused;
- ``exp`` and ``sub`` are required; ``nbf``, ``iss`` and ``aud`` are checked (the latter two
  required when configured) with a small leeway; a token living longer than the configured
  maximum is refused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from orderfast.domain.text import storable
from orderfast.http.problems import Problem

ALGORITHM = "HS256"
LEEWAY_SECONDS = 30
ASYMMETRIC = ("RS256", "ES256")


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


def unauthorized(detail: str) -> Problem:
    return Problem(
        401,
        "unauthorized",
        "Unauthorized",
        detail,
        headers={"www-authenticate": 'Bearer realm="orderfast"'},
    )


@dataclass(frozen=True, slots=True)
class PublicKey:
    kid: str | None
    algorithm: str  # RS256 | ES256
    key: Any


def load_public_keys(pem_files: Sequence[str] = (), jwks_file: str | None = None) -> list[PublicKey]:
    """Verification keys from PEM files (RSA → RS256, EC P-256 → ES256; the file name stem is the
    kid) and from a local JWKS file. Nothing is ever fetched over the network."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    keys: list[PublicKey] = []
    for name in pem_files:
        key = load_pem_public_key(Path(name).read_bytes())
        if isinstance(key, rsa.RSAPublicKey):
            keys.append(PublicKey(Path(name).stem, "RS256", key))
        elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
            keys.append(PublicKey(Path(name).stem, "ES256", key))
        else:
            raise ValueError(f"{name}: only RSA and EC P-256 public keys are supported")
    if jwks_file:
        for jwk in json.loads(Path(jwks_file).read_text())["keys"]:
            if jwk.get("kty") == "RSA":
                keys.append(PublicKey(jwk.get("kid"), "RS256", RSAAlgorithm.from_jwk(jwk)))
            elif jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
                keys.append(PublicKey(jwk.get("kid"), "ES256", ECAlgorithm.from_jwk(jwk)))
            else:
                raise ValueError(f"{jwks_file}: unsupported key {jwk.get('kid')!r}")
    return keys


class TokenVerifier:
    """Verifies bearer tokens, remembering the ones it has verified.

    Clients send the same token with every request, and signature checking is the single most
    expensive step of a request (a py-spy profile of the quote path showed PyJWT at ~18 % of a
    worker). A verified token's principal is kept, keyed by the exact token string, until the
    token's own ``exp`` (plus the same leeway): the cache never accepts a token that verification
    would refuse. Bounded: when full, it is emptied and refills from live traffic.
    """

    def __init__(
        self,
        secret: str | None,
        *,
        previous_secrets: Sequence[str] = (),
        public_keys: Sequence[PublicKey] = (),
        issuer: str | None = None,
        audience: str | None = None,
        leeway: int = LEEWAY_SECONDS,
        max_lifetime: int | None = None,
        cache_size: int = 10_000,
    ) -> None:
        if secret is None and not public_keys:
            raise ValueError("configure an HS256 secret or public keys")
        self._secret = secret
        # Verification only, for rotation: tokens signed with an earlier secret live out their time.
        self._previous = list(previous_secrets) if secret is not None else []
        self._keys = list(public_keys)
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._max_lifetime = max_lifetime
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._cache_size = cache_size

    def verify(self, authorization: str | None) -> Principal:
        if not authorization:
            raise unauthorized("send Authorization: Bearer <token>")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthorized("the Authorization header must use the Bearer scheme")
        cached = self._cache.get(token)
        if cached is not None:
            if time.time() <= cached[1]:
                return cached[0]
            del self._cache[token]
        principal, expires = self._decode(token)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[token] = (principal, expires + self._leeway)
        return principal

    def _key_for(self, header: dict[str, Any]) -> tuple[Any, str]:
        alg = header.get("alg")
        if "crit" in header:
            raise unauthorized("the token requires extensions this server does not implement")
        if alg == ALGORITHM and self._secret is not None:
            return self._secret, ALGORITHM
        if alg in ASYMMETRIC:
            kid = header.get("kid")
            for k in self._keys:
                if k.algorithm == alg and (kid is None or k.kid == kid):
                    return k.key, alg
        raise unauthorized("the token's algorithm or key is not accepted")

    def _decode(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise unauthorized("the token is not valid") from None
        key, alg = self._key_for(header)
        candidates = [key]
        if alg == ALGORITHM:
            candidates += self._previous
        elif alg in ASYMMETRIC and header.get("kid") is None:
            candidates = [k.key for k in self._keys if k.algorithm == alg]
        required = ["sub", "exp"] + (["iat"] if self._max_lifetime else [])
        claims: dict[str, Any] | None = None
        for candidate in candidates:
            try:
                claims = jwt.decode(
                    token,
                    candidate,
                    algorithms=[alg],
                    leeway=self._leeway,
                    issuer=self._issuer,
                    audience=self._audience,
                    options={"require": required + (["iss"] if self._issuer else []), "verify_aud": True},
                )
                break
            except jwt.ExpiredSignatureError:
                raise unauthorized("the token has expired") from None
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError:
                raise unauthorized("the token is not valid") from None
        if claims is None:  # well-formed, but no key of this server made its signature
            raise unauthorized(
                "the token's signature matches no key this server holds (made with another secret, "
                "or by `orderfast token` with another data directory?)"
            )
        # RFC 7519 §2: NumericDate is a JSON number; PyJWT would also take "123" (and true).
        for name in ("exp", "iat", "nbf"):
            value = claims.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise unauthorized(f"the token's {name} claim must be a number")
        if self._max_lifetime and float(claims["exp"]) - float(claims["iat"]) > self._max_lifetime:
            raise unauthorized("the token lives longer than this server accepts")
        sub = claims.get("sub")
        roles = claims.get("roles", [])
        if not isinstance(sub, str) or not sub or len(sub) > 255 or not storable(sub):
            raise unauthorized("the token's subject is not valid")
        if not isinstance(roles, list) or not all(isinstance(r, str) and storable(r) for r in roles):
            raise unauthorized("the token's roles claim must be a list of strings")
        return Principal(sub, frozenset(roles)), float(claims["exp"])


def mint_token(
    secret: str,
    sub: str,
    roles: Iterable[str] = (),
    ttl: int = 86_400,
    *,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """A token for local use and tests (production tokens come from your identity provider)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "roles": sorted(set(roles)), "iat": now, "exp": now + ttl}
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm=ALGORITHM)
