"""Pure ASGI middleware in front of every ``/v1`` route: authenticate, then rate limit.

Both happen before the body is read and before any database work. The principal is handed to
the endpoint in ``scope["orderfast.principal"]``. Every limited response carries the
``RateLimit-Policy`` and ``RateLimit`` fields of draft-ietf-httpapi-ratelimit-headers.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orderfast import _core
from orderfast.http.auth import Principal, TokenVerifier, unauthorized
from orderfast.http.problems import Problem
from orderfast.services.api_keys import ApiKeyService
from orderfast.services.cluster_limits import RateLimiterUnavailable, SharedRateLimits
from orderfast.services.errors import InvalidCredentials

PRINCIPAL = "orderfast.principal"
UNGUARDED = frozenset({"/v1/payments/webhook"})
QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str | None) -> list[Network]:
    """``10.0.0.0/8, 127.0.0.1`` → networks; ValueError on anything else."""
    return [ipaddress.ip_network(part.strip(), strict=False) for part in (text or "").split(",") if part.strip()]


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str | None:
    """The client's address: the TCP peer, unless the peer is a trusted proxy, in which case the
    right-most ``X-Forwarded-For`` hop that is not itself a trusted proxy."""
    if peer is None or not trusted or not forwarded_for or not _trusted(peer, trusted):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        if not hop:
            continue
        if not _trusted(hop, trusted):
            return hop
    return peer


def _trusted(address: str, trusted: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


class V1Guard:
    def __init__(
        self,
        app: ASGIApp,
        verifier: TokenVerifier,
        limits: _core.RateLimitPolicies,
        quotas: Sequence[tuple[int, float]],
        trusted_proxies: Sequence[Network] = (),
        api_keys: ApiKeyService | None = None,
        shared: SharedRateLimits | None = None,
    ) -> None:
        if limits.names != ["user", "ip"] or len(quotas) != 2:
            raise ValueError("the guard expects the policies ['user', 'ip'], in that order, with their quotas")
        self.app = app
        self.verifier = verifier
        self.limits = limits
        self.trusted = list(trusted_proxies)
        self.api_keys = api_keys
        self.shared = shared
        # Computed once: the policies never change while the process runs.
        self.policy_header = ", ".join(
            f'"{name}";q={quota};w={_seconds(period)}'
            for name, (quota, period) in zip(limits.names, quotas, strict=True)
        ).encode()
        self.quotas = [q for q, _ in quotas]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The payment webhook authenticates with its signature, not a bearer token.
        if scope["type"] != "http" or not scope["path"].startswith("/v1/") or scope["path"] in UNGUARDED:
            await self.app(scope, receive, send)
            return
        authorization = forwarded = api_key = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"x-api-key":
                api_key = value.decode("latin-1")
            elif name == b"x-forwarded-for" and self.trusted:
                forwarded = value.decode("latin-1")
        try:
            if api_key is not None and self.api_keys is not None:
                try:
                    principal = Principal(*await self.api_keys.authenticate(api_key))
                except InvalidCredentials as e:
                    raise unauthorized(str(e)) from None
            else:
                principal = self.verifier.verify(authorization)
        except Problem as refused:
            await refused.response(scope["path"])(scope, receive, send)
            return
        peer = scope.get("client")
        ip = client_address(peer[0] if peer else None, forwarded, self.trusted)
        keys = [principal.user_id, ip]
        decisions: Sequence[Any] = self.limits.acquire(keys)
        if self.shared is not None and all(d is None or d.allowed for d in decisions):
            # The worker's own limiter let it through: now the limit shared by every instance.
            try:
                shared = await self.shared.acquire(keys)
            except RateLimiterUnavailable:
                unavailable = Problem(
                    503,
                    "rate-limiter-unavailable",
                    "Service unavailable",
                    "retry shortly",
                    headers={"retry-after": "1"},
                )
                await unavailable.response(scope["path"])(scope, receive, send)
                return
            if shared is not None:  # None: Redis is down and the choice is to fail open
                decisions = shared
        fields = [
            (b"ratelimit-policy", self.policy_header),
            (b"ratelimit", self._remaining(decisions)),
        ]
        denied = [d for d in decisions if d is not None and not d.allowed]
        if denied:
            # The earliest moment a retry can succeed, rounded up: never earlier than that.
            retry_after = max(1, math.ceil(max(d.retry_after for d in denied)))
            names = [d.policy for d in denied]
            problem = Problem(
                429,
                "quota-exceeded",
                "Quota exceeded",
                f"the {' and '.join(names)} quota is exhausted; retry in {retry_after} s",
                headers={"retry-after": str(retry_after), **{k.decode(): v.decode() for k, v in fields}},
                extra={"violated-policies": names},
                type_uri=QUOTA_EXCEEDED,
            )
            await problem.response(scope["path"])(scope, receive, send)
            return
        scope[PRINCIPAL] = principal

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *fields]
            await send(message)

        await self.app(scope, receive, send_with_fields)

    def _remaining(self, decisions: Sequence[Any]) -> bytes:
        items = []
        for d, quota in zip(decisions, self.quotas, strict=True):
            if d is not None:
                items.append(f'"{d.policy}";r={min(d.remaining, quota)};t={math.ceil(d.reset)}')
        return ", ".join(items).encode()


def _seconds(period: float) -> str:
    return str(int(period)) if period == int(period) else str(period)
