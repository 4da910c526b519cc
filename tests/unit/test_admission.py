"""Admission control: the adaptive limit's algorithm (a fake clock drives it) and the middleware's
answers (in process; tests/e2e/test_admission.py floods a real server)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from orderfast.http.admission import Admission, GradientLimiter
from orderfast.http.metrics import RequestObserver
from orderfast.observability import instruments as m
from tests.unit.asgi import http_scope

BASE = 0.002  # the unloaded latency of the simulated worker, seconds


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, maximum: int = 256, **kw: Any) -> GradientLimiter:
    return GradientLimiter(maximum, clock=clock, rng=random.Random(1), **kw)


def round_trip(lim: GradientLimiter, clock: Clock, offered: int, rtt: Callable[[int], float]) -> int:
    """``offered`` requests arrive at once; those admitted all take ``rtt(admitted)``. Returns how
    many were admitted."""
    admitted = [t for t in (lim.acquire() for _ in range(offered)) if t is not None]
    clock.now += rtt(len(admitted))
    for t in admitted:
        lim.release(t)
    return len(admitted)


def saturated(n: int) -> float:
    """A worker that serves 8 requests at a time in BASE each: beyond 8, requests queue."""
    return BASE * max(1.0, n / 8)


def constant(rtt: float) -> Callable[[int], float]:
    return lambda n: rtt


def learn_baseline(lim: GradientLimiter, clock: Clock) -> None:
    """Light load: one request at a time, long enough to close a window."""
    while lim.min_rtt is None:
        round_trip(lim, clock, 1, lambda n: BASE)


def test_it_admits_up_to_the_limit_and_sheds_beyond_it() -> None:
    clock = Clock()
    lim = limiter(clock, initial=5)
    tokens = [lim.acquire() for _ in range(5)]
    assert None not in tokens and lim.inflight == 5
    assert lim.acquire() is None
    assert lim.inflight == 5
    lim.release(tokens[0])  # type: ignore[arg-type]
    assert lim.acquire() is not None


def test_light_load_measures_the_baseline_and_leaves_the_limit_alone() -> None:
    clock = Clock()
    lim = limiter(clock, initial=64)
    learn_baseline(lim, clock)
    assert lim.min_rtt == pytest.approx(BASE)
    for _ in range(500):  # bursts of 16, slow ones: below half the limit, nothing to learn
        round_trip(lim, clock, 16, lambda n: 20 * BASE)
    assert lim.limit == 64


def test_the_limit_grows_while_latency_stays_low() -> None:
    clock = Clock()
    lim = limiter(clock, initial=8)
    learn_baseline(lim, clock)
    seen = [lim.limit]
    start = clock.now
    while clock.now - start < 10:
        round_trip(lim, clock, 1000, lambda n: BASE)  # more offered than admitted, latency unchanged
        seen.append(lim.limit)
    assert seen == sorted(seen)
    assert lim.limit == 256, "the ceiling is reached, never passed"


def test_the_limit_shrinks_when_latency_rises() -> None:
    clock = Clock()
    lim = limiter(clock, initial=200)
    learn_baseline(lim, clock)
    start = clock.now
    while clock.now - start < 5:
        round_trip(lim, clock, 1000, lambda n: 40 * BASE)
    assert lim.limit < 10
    assert lim.limit >= 1


def test_it_settles_where_latency_is_within_its_tolerance_of_the_baseline() -> None:
    clock = Clock()
    lim = limiter(clock, initial=64)
    learn_baseline(lim, clock)
    limits = []
    start = clock.now
    while clock.now - start < 20:  # always more offered than admitted
        round_trip(lim, clock, 1000, saturated)
        limits.append(lim.limit)
    settled = limits[len(limits) // 2 :]
    # At n in flight the latency is BASE * n / 8: with tolerance 8 and the sqrt headroom it settles
    # where latency is ~9x BASE (n ~ 72), and stays there.
    assert min(settled) >= 48 and max(settled) <= 110, (min(settled), max(settled))


def test_a_lower_tolerance_settles_at_a_lower_limit() -> None:
    """ORDERFAST_ADMISSION_TOLERANCE trades throughput for latency: at tolerance 4 the same worker
    settles where latency is about half what tolerance 8 allows."""
    settled = {}
    for tolerance in (4.0, 8.0):
        clock = Clock()
        lim = limiter(clock, initial=64, tolerance=tolerance)
        learn_baseline(lim, clock)
        limits = []
        start = clock.now
        while clock.now - start < 20:
            round_trip(lim, clock, 1000, saturated)
            limits.append(lim.limit)
        tail = limits[len(limits) // 2 :]
        settled[tolerance] = sum(tail) / len(tail)
    assert 0.35 < settled[4.0] / settled[8.0] < 0.7, settled


def test_the_setting_reaches_the_limiter(tmp_path: Path) -> None:
    from orderfast.app import create_app
    from orderfast.config import Settings

    env = {
        "ORDERFAST_ADMISSION_TOLERANCE": "3",
        "ORDERFAST_ADMISSION_MIN": "12",
        "ORDERFAST_DATA_DIR": str(tmp_path),
        "ORDERFAST_JWT_SECRET": "k" * 40,
    }
    app = create_app(Settings.from_env(env))
    layer: Any = app.build_middleware_stack()  # type: ignore[attr-defined]
    while not isinstance(layer, Admission):
        layer = layer.app
    assert layer.limiter._tolerance == 3.0
    assert layer.limiter.minimum == 12


def test_the_baseline_is_measured_again_under_sustained_overload_and_does_not_drift() -> None:
    clock = Clock()
    lim = limiter(clock, initial=64, probe_interval=5.0)
    learn_baseline(lim, clock)
    probes = 0
    start = clock.now
    while clock.now - start < 120:  # two minutes of overload: a probe every ~5 s
        was = lim.probing
        round_trip(lim, clock, 1000, saturated)
        probes += lim.probing and not was
        if lim.probing:
            assert lim.inflight == 0
            assert round_trip(lim, clock, 1000, saturated) <= 4, "a probe admits 4 at a time"
    assert probes >= 15
    assert lim.min_rtt == pytest.approx(BASE), "measured at low concurrency, not at the loaded latency"
    assert lim.limit <= 110


def test_a_probe_in_a_congested_moment_does_not_raise_the_baseline_until_the_horizon_has_passed() -> None:
    clock = Clock()
    lim = limiter(clock, initial=64, probe_interval=5.0)
    learn_baseline(lim, clock)
    start = clock.now
    while clock.now - start < 8:  # everything is 5x slower now, probes included
        round_trip(lim, clock, 1000, lambda n: 5 * BASE)
    assert lim.min_rtt == pytest.approx(BASE), "a cleaner measurement is recent"
    while clock.now - start < 30:
        round_trip(lim, clock, 1000, lambda n: 5 * BASE)
    assert lim.min_rtt == pytest.approx(5 * BASE), "two intervals later, the server is slower: the baseline follows"


def test_the_first_pressure_without_a_baseline_probes_for_one() -> None:
    clock = Clock()
    lim = limiter(clock, initial=64)
    while not lim.probing:
        round_trip(lim, clock, 1000, saturated)
    assert lim.limit == 64, "the limit is kept through the probe"
    while lim.probing:
        round_trip(lim, clock, 1000, saturated)
    assert lim.min_rtt == pytest.approx(BASE)


@settings(max_examples=200, deadline=None)
@given(
    maximum=st.integers(1, 300),
    initial=st.integers(1, 400),
    steps=st.lists(st.tuples(st.integers(0, 600), st.floats(1e-5, 2.0)), min_size=1, max_size=300),
)
def test_the_limit_stays_between_one_and_the_ceiling(
    maximum: int, initial: int, steps: list[tuple[int, float]]
) -> None:
    clock = Clock()
    changes: list[int] = []
    lim = limiter(clock, maximum, initial=initial, on_change=changes.append)
    for offered, rtt in steps:
        admitted = round_trip(lim, clock, offered, constant(rtt))
        assert admitted <= lim.maximum
        assert 1 <= lim.limit <= maximum
        assert lim.inflight == 0
    assert all(1 <= c <= maximum for c in changes)
    assert changes[-1] == lim.limit, "the gauge follows every change"


def batching(n: int) -> float:
    """A group-committing worker: one request alone takes BASE; n at once share batches that take
    longer the bigger they are (latency ~ n/4 BASE) while throughput still grows with n."""
    return BASE * (1 + n / 4)


def test_a_batching_worker_under_the_floor_is_never_shed_nor_probed() -> None:
    # Found: against the unloaded baseline, 32-40 requests in flight on a batching worker looked
    # like overload (latency 10x the baseline), and a closed-loop client stepping from 16 to 64
    # connections had 1533 of ~39 000 requests shed.
    def shed_by(lim: GradientLimiter, clock: Clock) -> int:
        learn_baseline(lim, clock)
        shed, start = 0, clock.now
        while clock.now - start < 30:  # a closed loop of 64: latency ~17x the baseline, for 30 s
            shed += 64 - round_trip(lim, clock, 64, batching)
            assert not (lim.probing and lim.minimum == 64)
        return shed

    clock = Clock()
    floored = limiter(clock, minimum=64, initial=64, probe_interval=1.0)
    assert shed_by(floored, clock) == 0
    assert floored.limit >= 64
    clock = Clock()
    assert shed_by(limiter(clock, initial=64, probe_interval=1.0), clock) > 0, "without the floor it sheds"


def test_beyond_the_floor_the_limit_still_sheds_and_never_goes_below_it() -> None:
    clock = Clock()
    lim = limiter(clock, minimum=16, initial=200)
    learn_baseline(lim, clock)
    start = clock.now
    while clock.now - start < 5:
        round_trip(lim, clock, 1000, lambda n: 40 * BASE)
    assert lim.limit == 16
    assert round_trip(lim, clock, 1000, lambda n: 40 * BASE) in (16, lim._probe_cap)


def test_a_floor_above_the_ceiling_is_the_ceiling() -> None:
    lim = GradientLimiter(8, minimum=64)
    assert lim.minimum == lim.limit == 8


def test_a_ceiling_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        GradientLimiter(0)


# -- the middleware ------------------------------------------------------------------------------


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


def app(lim: GradientLimiter) -> Any:
    routes: list[Any] = [
        Route(path, ok, methods=["GET", "POST"])
        for path in ("/v1/orders/{order_id}", "/livez", "/readyz", "/startupz", "/metrics")
    ]
    observer = RequestObserver(Starlette(routes=routes), measured=True, logged=False)
    return Admission(observer, lim, routes, observer=observer)


async def call(asgi: Any, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("a shed request's body is never read")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = http_scope(path, "POST")
    await asgi(scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"]), b"".join(x.get("body", b"") for x in sent[1:])


def shed_count(route: str) -> float:
    return float(sum(v for labels, v in m.ADMISSION_SHED.snapshot() if labels == (route,)))


@pytest.mark.anyio
async def test_beyond_the_limit_the_answer_is_a_503_overloaded_problem_with_retry_after() -> None:
    lim = GradientLimiter(1)
    held = lim.acquire()  # the one place is taken
    assert held is not None
    before, before_unmatched = shed_count("/v1/orders/{order_id}"), shed_count("unmatched")
    status, headers, body = await call(app(lim), "/v1/orders/abc")
    assert status == 503
    assert headers[b"content-type"] == b"application/problem+json"
    assert headers[b"retry-after"] == b"1"
    problem = orjson.loads(body)
    assert problem["type"] == "/problems/overloaded"
    assert problem["status"] == 503
    assert problem["instance"] == "/v1/orders/abc"
    assert problem["request_id"] == headers[b"x-request-id"].decode()
    assert shed_count("/v1/orders/{order_id}") == before + 1, "counted by route template, not raw path"
    await call(app(lim), "/no/such/path")
    assert shed_count("unmatched") == before_unmatched + 1
    lim.release(held)
    status, _, body = await call(app(lim), "/v1/orders/abc")
    assert (status, body) == (200, b"ok")
    assert lim.inflight == 0


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/livez", "/readyz", "/startupz", "/metrics"])
async def test_probes_and_metrics_are_never_shed(path: str) -> None:
    lim = GradientLimiter(1)
    assert lim.acquire() is not None
    status, _, body = await call(app(lim), path)
    assert (status, body) == (200, b"ok")
    assert lim.inflight == 1, "and they take no place under the limit"


def requests_count(route: str, status: str) -> float:
    return float(sum(v for labels, v in m.HTTP_REQUESTS.snapshot() if labels == ("POST", route, status)))


@pytest.mark.anyio
async def test_a_shed_answer_carries_what_the_layers_it_skips_would_have_added() -> None:
    lim = GradientLimiter(1)
    assert lim.acquire() is not None
    before = requests_count("/v1/orders/{order_id}", "5xx")
    status, headers, _ = await call(app(lim), "/v1/orders/abc")
    assert status == 503
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"cache-control"] == b"no-store"
    assert b"default-src 'none'" in headers[b"content-security-policy"]
    assert b"connection" not in headers
    assert requests_count("/v1/orders/{order_id}", "5xx") == before + 1, "counted as the observer counts"

    observer = RequestObserver(Starlette(), measured=True, logged=False, draining=lambda: True)
    closing = Admission(observer, lim, [], observer=observer, draining=lambda: True)
    _, headers, _ = await call(closing, "/v1/orders/abc")
    assert headers[b"connection"] == b"close", "a draining worker closes the connections it sheds on"


def shed_with_body(
    lim: GradientLimiter, headers: list[tuple[bytes, bytes]], messages: list[dict[str, Any]]
) -> tuple[int, int]:
    """A shed request with these headers whose body arrives as ``messages``: (status, receives)."""
    receives = [0]

    async def receive() -> dict[str, Any]:
        receives[0] += 1
        assert messages, "read past the end of the body"
        return messages.pop(0)

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def go() -> None:
        scope = http_scope("/v1/orders/abc", "POST")
        scope["headers"] = [*scope["headers"], *headers]
        await app(lim)(scope, receive, send)

    asyncio.run(go())
    return sent[0]["status"], receives[0]


def test_a_shed_requests_body_is_read_only_as_far_as_it_must_be() -> None:
    lim = GradientLimiter(1)
    assert lim.acquire() is not None
    whole = [{"type": "http.request", "body": b"x" * 40, "more_body": True}]  # as Granian hands a whole body
    assert shed_with_body(lim, [(b"content-length", b"40")], whole) == (503, 1)
    assert shed_with_body(lim, [(b"content-length", b"0")], []) == (503, 0)
    chunked = [
        {"type": "http.request", "body": b"x" * 40, "more_body": True},
        {"type": "http.request", "body": b"", "more_body": False},
    ]
    assert shed_with_body(lim, [(b"transfer-encoding", b"chunked")], chunked) == (503, 2)


def test_a_shed_requests_body_that_never_comes_is_given_up_on() -> None:
    lim = GradientLimiter(1)
    assert lim.acquire() is not None

    async def go() -> float:
        never = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await never.wait()
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            pass

        scope = http_scope("/v1/orders/abc", "POST")
        scope["headers"] = [*scope["headers"], (b"content-length", b"40")]
        began = time.monotonic()
        await app(lim)(scope, receive, send)  # returns: the drain gives up, it does not raise
        return time.monotonic() - began

    assert asyncio.run(go()) < 5
