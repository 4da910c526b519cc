"""Pure ASGI middleware in front of every ``/v1`` route: authenticate, then rate limit.

Both happen before the body is read and before any database work. The principal is handed to
the endpoint in ``scope["orderfast.principal"]``. Every limited response carries the
``RateLimit-Policy`` and ``RateLimit`` fields of draft-ietf-httpapi-ratelimit-headers.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from orderfast import _core
from orderfast.http.auth import Principal, TokenVerifier, unauthorized
from orderfast.http.problems import Problem, store_unavailable
from orderfast.http.security import RESPONSE_FIELDS
from orderfast.observability import instruments as m
from orderfast.observability import tracing
from orderfast.services.api_keys import ApiKeyService
from orderfast.services.cluster_limits import RateLimiterUnavailable, SharedRateLimits, SharedShape
from orderfast.services.errors import InvalidCredentials
from orderfast.store.base import StoreUnavailable

PRINCIPAL = "orderfast.principal"
UNGUARDED = frozenset({"/v1/payments/webhook"})
QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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


SERVICE_ROLES = frozenset({"service"})
_CN = re.compile(r"(?:^|[/,+])\s*CN\s*=\s*((?:\\.|[^/,+])+)", re.IGNORECASE)


def common_name(subject: str) -> str | None:
    """The CN of a certificate subject as proxies write it: RFC 4514 (``CN=inventory,O=Shop``:
    nginx's ``$ssl_client_s_dn``) or OpenSSL's one-line form (``/O=Shop/CN=inventory``: HAProxy's
    ``ssl_c_s_dn``). The last CN wins (the most specific in either order); None when there is
    none or it is not 1-128 printable characters."""
    found = _CN.findall(subject.strip())
    if not found:
        return None
    name = re.sub(r"\\(.)", r"\1", found[-1]).strip()
    return name if 0 < len(name) <= 128 and name.isprintable() else None


class RoutePolicies:
    """Which named policies apply to a request, and how each is keyed.

    One Rust ``RateLimitPolicies`` holds every policy, so a request takes tokens from all the
    policies of its route group or from none. The defaults, ``user`` and ``ip``, apply to every
    guarded route; a finer policy applies where one of its ``METHOD /v1/path`` patterns matches.
    """

    def __init__(self, policies: Sequence[tuple[str, str, int, float, int, Sequence[tuple[str, str]]]]) -> None:
        """``policies``: (name, key, quota, period_seconds, burst, routes) each; routes empty means
        every route. ``key`` is "user" or "ip"."""
        self.names = [p[0] for p in policies]
        self.spec = [(name, quota, period, burst) for name, _, quota, period, burst, _ in policies]
        self.kinds = [p[1] for p in policies]
        self.quotas = [p[2] for p in policies]
        self.headers = [f'"{name}";q={quota};w={_seconds(period)}' for name, _, quota, period, _, _ in policies]
        self.patterns = [
            [
                (method, re.compile("/".join("[^/]+" if seg == "*" else re.escape(seg) for seg in path.split("/"))))
                for method, path in routes
            ]
            for *_, routes in policies
        ]
        self._groups: dict[tuple[str, str], Group] = {}
        self._by_mask: dict[tuple[bool, ...], Group] = {}
        # Failed authentication is charged to the ip default alone: guessing keys costs quota.
        self.anonymous = self._group(
            tuple(kind == "ip" and not patterns for kind, patterns in zip(self.kinds, self.patterns, strict=True))
        )

    def group(self, method: str, path: str) -> Group:
        """The policies for this request (cached for up to 4096 method/path pairs)."""
        found = self._groups.get((method, path))
        if found is None:
            mask = tuple(
                not patterns or any(m in ("*", method) and rx.fullmatch(path) for m, rx in patterns)
                for patterns in self.patterns
            )
            found = self._group(mask)
            if len(self._groups) < 4096:
                self._groups[(method, path)] = found
        return found

    def _group(self, mask: tuple[bool, ...]) -> Group:
        found = self._by_mask.get(mask)
        if found is None:
            found = self._by_mask[mask] = Group(
                tuple(kind if on else None for kind, on in zip(self.kinds, mask, strict=True)),
                ", ".join(h for h, on in zip(self.headers, mask, strict=True) if on).encode(),
            )
        return found

    def matches_any(self, method: str, template: str) -> set[int]:
        """Indexes of the finer policies that have a pattern matching a route template (whose
        ``{param}`` segments stand for any segment)."""
        probe = "/".join("x" if seg.startswith("{") else seg for seg in template.split("/"))
        return {
            i
            for i, patterns in enumerate(self.patterns)
            if any(m in ("*", method) and rx.fullmatch(probe) for m, rx in patterns)
        }


class Group:
    """The policies of one route group: per policy "user", "ip" or None (does not apply)."""

    __slots__ = ("kinds", "policy_header")

    def __init__(self, kinds: tuple[str | None, ...], policy_header: bytes) -> None:
        self.kinds = kinds
        self.policy_header = policy_header

    def keys(self, user: str | None, ip: str | None) -> list[str | None]:
        return [user if kind == "user" else ip if kind == "ip" else None for kind in self.kinds]


class RateLimits:
    """One generation of the rate-limit policies: the route groups, the Rust limiter and the shape
    Redis sees. A request takes the generation in force when it arrives and uses it to the end, so
    a reload between two of its awaits never mixes two sets of policies."""

    __slots__ = ("core", "policies", "quotas", "shape")

    def __init__(self, policies: RoutePolicies, previous: RateLimits | None = None) -> None:
        """``previous``: the generation this replaces; what clients spent under a policy name both
        have is carried over (a reload does not hand out fresh bursts)."""
        self.policies = policies
        self.core = _core.RateLimitPolicies(policies.spec)
        if previous is not None:
            self.core.adopt(previous.core)
        self.quotas = policies.quotas
        self.shape = SharedShape.of(policies.spec)


class LiveRateLimits:
    """The generation in force, replaced whole on a reload (one attribute write, between requests)."""

    __slots__ = ("current",)

    def __init__(self, policies: RoutePolicies) -> None:
        self.current = RateLimits(policies)

    def replace(self, policies: RoutePolicies) -> None:
        self.current = RateLimits(policies, self.current)


class _Paid(Exception):
    """A refusal whose quota is already taken: answered as it is, not charged again."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


class V1Guard:
    def __init__(
        self,
        app: ASGIApp,
        verifier: TokenVerifier,
        limits: LiveRateLimits,
        trusted_proxies: Sequence[Network] = (),
        api_keys: ApiKeyService | None = None,
        shared: SharedRateLimits | None = None,
        cert_header: str | None = None,
    ) -> None:
        """``cert_header``: where a trusted proxy that terminated mutual TLS passes the verified
        client certificate's subject (ORDERFAST_CLIENT_CERT_HEADER)."""
        self.app = app
        self.verifier = verifier
        self.live = limits
        self.trusted = list(trusted_proxies)
        self.api_keys = api_keys
        self.shared = shared
        self.cert_header = cert_header.encode() if cert_header else b""  # b"": no header is named so

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The payment webhook authenticates with its signature, not a bearer token.
        if scope["type"] != "http" or not scope["path"].startswith("/v1/") or scope["path"] in UNGUARDED:
            await self.app(scope, receive, send)
            return
        authorization = forwarded = api_key = subject = None
        cert_header = self.cert_header
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"x-api-key":
                api_key = value.decode("latin-1")
            elif name == b"x-forwarded-for" and self.trusted:
                forwarded = value.decode("latin-1")
            elif name == cert_header:
                subject = value.decode("latin-1")
        peer = scope.get("client")
        address = peer[0] if peer else None
        ip = client_address(address, forwarded, self.trusted)
        try:
            principal, fields = await self.admit(
                scope["method"], scope["path"], authorization, api_key, subject, address, ip
            )
        except Problem as answer:
            await answer.response(scope["path"])(scope, receive, send)
            return
        scope[PRINCIPAL] = principal
        scope[RESPONSE_FIELDS] = fields  # the request observer adds them to the answer
        await self.app(scope, receive, send)

    async def admit(
        self,
        method: str,
        path: str,
        authorization: str | None,
        api_key: str | None,
        subject: str | None,
        peer: str | None,
        ip: str | None,
        known: Principal | None = None,
    ) -> tuple[Principal, list[tuple[bytes, bytes]]]:
        """Authenticates and rate limits one request to the route ``method path``: the principal
        and the RateLimit fields for the answer, or raises the Problem to answer instead. Every
        ingress (HTTP here, gRPC in orderfast/rpc) admits requests through this. ``known``: a
        principal the transport itself authenticated (a client certificate gRPC verified)."""
        limits = self.live.current
        try:
            if known is not None:
                principal = known
            elif subject is not None and authorization is None and api_key is None:
                principal = self._certified(subject, peer)
            elif tracing.ENABLED:
                with tracing.span("authenticate", {"orderfast.auth.scheme": _scheme(api_key, self.api_keys)}):
                    principal = await self._authenticate(authorization, api_key, ip, method, path, limits)
            elif api_key is not None and self.api_keys is not None:
                principal = await self._api_key(api_key, ip, method, path, limits)
            else:
                principal = self.verifier.verify(authorization)
        except _Paid as answer:
            raise answer.problem from None
        except Problem as refused:
            raise await self._refused(refused, ip, limits) from None
        group = limits.policies.group(method, path)
        outcome = await self._decide(limits, group, group.keys(principal.user_id, ip))
        if isinstance(outcome, Problem):
            raise outcome
        return principal, outcome

    def _certified(self, subject: str, peer: str | None) -> Principal:
        """The principal of a client certificate a trusted proxy verified: its common name, with
        the role ``service``. From anyone else the header means nothing and the request is refused
        as unauthenticated (a client cannot name itself by sending the header)."""
        if peer is None or not _trusted(peer, self.trusted):
            raise unauthorized("a bearer token or an API key is required")
        name = common_name(subject)
        if name is None:
            raise unauthorized("the client certificate's subject has no usable common name")
        return Principal(name, SERVICE_ROLES)

    async def _authenticate(
        self,
        authorization: str | None,
        api_key: str | None,
        ip: str | None,
        method: str,
        path: str,
        limits: RateLimits,
    ) -> Principal:
        if api_key is not None and self.api_keys is not None:
            return await self._api_key(api_key, ip, method, path, limits)
        return self.verifier.verify(authorization)

    async def _api_key(self, api_key: str, ip: str | None, method: str, path: str, limits: RateLimits) -> Principal:
        assert self.api_keys is not None
        if self.api_keys.remembers(api_key):
            try:
                return Principal(*await self.api_keys.authenticate(api_key))
            except InvalidCredentials as e:
                raise unauthorized(str(e)) from None
        # A key this worker has not looked up lately is a database query: it is paid for first, from
        # the address's quota for refused credentials, so that guessing keys (a new prefix each
        # time) stops at that quota instead of costing a query per guess. A real key pays once per
        # cache period.
        group = limits.policies.anonymous
        outcome = await self._decide(limits, group, group.keys(None, ip))
        if isinstance(outcome, Problem):
            raise _Paid(outcome)
        try:
            return Principal(*await self.api_keys.authenticate(api_key))
        except InvalidCredentials as e:
            refused = unauthorized(str(e))
            refused.headers.update({k.decode(): v.decode() for k, v in outcome})
            raise _Paid(refused) from None
        except StoreUnavailable as e:
            # Outside the app's exception table (this layer is): a 503 to retry, never a 500.
            raise _Paid(store_unavailable(method, path, e, maybe_applied=False)) from None

    async def _refused(self, refused: Problem, ip: str | None, limits: RateLimits) -> Problem:
        """Refused credentials still cost the client address its quota, so that guessing tokens
        or keys is as limited as anything else; past the quota the answer is a 429."""
        group = limits.policies.anonymous
        outcome = await self._decide(limits, group, group.keys(None, ip))
        if isinstance(outcome, Problem):
            return outcome
        refused.headers.update({k.decode(): v.decode() for k, v in outcome})
        return refused

    async def _decide(
        self, limits: RateLimits, group: Group, keys: list[str | None]
    ) -> list[tuple[bytes, bytes]] | Problem:
        """Takes the tokens: the header fields to add to the response, or the problem to answer."""
        decisions: Sequence[Any] = limits.core.acquire(keys)
        if self.shared is not None and all(d is None or d.allowed for d in decisions):
            # The worker's own limiter let it through: now the limit shared by every instance.
            try:
                shared = await self.shared.acquire(keys, shape=limits.shape)
            except RateLimiterUnavailable:
                return Problem(
                    503,
                    "rate-limiter-unavailable",
                    "Service unavailable",
                    "retry shortly",
                    headers={"retry-after": "1"},
                )
            if shared is not None:  # None: Redis is down and the choice is to fail open
                decisions = shared
        fields = [(b"ratelimit-policy", group.policy_header), (b"ratelimit", _remaining(decisions, limits.quotas))]
        denied = [d for d in decisions if d is not None and not d.allowed]
        if not denied:
            return fields
        # The earliest moment a retry can succeed, rounded up: never earlier than that.
        retry_after = max(1, math.ceil(max(d.retry_after for d in denied)))
        names = [d.policy for d in denied]
        for name in names:
            m.RATELIMIT_REFUSALS.labels(name).inc()
        return Problem(
            429,
            "quota-exceeded",
            "Quota exceeded",
            f"the {' and '.join(names)} quota is exhausted; retry in {retry_after} s",
            headers={"retry-after": str(retry_after), **{k.decode(): v.decode() for k, v in fields}},
            extra={"violated-policies": names},
            type_uri=QUOTA_EXCEEDED,
        )


def _remaining(decisions: Sequence[Any], quotas: Sequence[int]) -> bytes:
    items = []
    for d, quota in zip(decisions, quotas, strict=True):
        if d is not None:
            items.append(f'"{d.policy}";r={min(d.remaining, quota)};t={math.ceil(d.reset)}')
    return ", ".join(items).encode()


def _scheme(api_key: str | None, api_keys: ApiKeyService | None) -> str:
    return "api_key" if api_key is not None and api_keys is not None else "bearer"


def _seconds(period: float) -> str:
    return str(int(period)) if period == int(period) else str(period)
