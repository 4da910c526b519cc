"""Admission control: an adaptive concurrency limit per worker, applied before routing,
authentication and the body, so that excess load costs a few microseconds and a 503 instead of a
queue that grows without bound.

The limit follows the gradient of latency, as Envoy's adaptive concurrency filter and Netflix's
Gradient2 do::

    gradient = clamp(tolerance * min_rtt / sample_rtt, 0.5, 2)
    limit    = clamp(limit * gradient + sqrt(limit), 1, ORDERFAST_ADMISSION_MAX)

``sample_rtt`` is the mean latency of the requests that completed in the last window (at least
``window`` seconds and ``min_samples`` requests); ``min_rtt`` is the latency of this worker when it
is *not* loaded, and the whole difficulty is to keep that baseline honest. A long-term average
(Gradient2's) drifts up under sustained overload until the limit reaches its ceiling; so, as
Envoy does, the baseline is *measured*: from a window in which no more than ``probe_concurrency``
requests were ever in flight (light load measures it for free), or — when it is older than
``probe_interval`` and the limit is in use — by a probe that admits only ``probe_concurrency``
requests until ``probe_samples`` of them have completed (their median is a new measurement; at 2x
overload it sheds for some tens of milliseconds every half minute). The baseline is the lowest
measurement of the last two probe intervals. The ``sqrt(limit)`` headroom
lets the limit grow while latency stays within ``tolerance`` of the baseline, and keeps it from
settling below 4 on its own.

The tolerance is wide (8) because of group commit: unloaded, an order is written alone and at once
(~1.5 ms on PostgreSQL); near capacity it waits for the batch in flight and then for its own, and
batches must be large to reach capacity at all. (The goodputs once quoted here for tolerances 2, 4
and 8 came from a bench that replayed orders instead of creating them; the README's Performance
section has the measurements since.)

The limit moves only when it matters: while fewer than half of it are in flight and nothing was
shed, it is left alone (a quiet worker neither grows an unbounded limit nor learns from bursts too
small to fill it).

It never falls below a floor (``ORDERFAST_ADMISSION_MIN``, 128 by default: two full batches of
create-orders): for a group-committing worker, latency rising with concurrency is how it reaches its
throughput, not a sign of overload — measured against the unloaded baseline, 32-40 requests in flight
already looked like one: a closed-loop client stepping from 16 to 64 connections had 1533 of ~39 000
requests shed, an open loop at 75 % of the maximum 12-517 of ~31 000. At 2x capacity the floor also
keeps batches large, which kept goodput up while capacity was bounded by the batch writer
(``bench/overload.py``, capacity ~2400/s: 0.71 of capacity with no floor, 0.78 with 64, 1.06 with
128; since capacity is bounded by the worker's Python thread, 0.755 with 128: shedding costs that
thread too). At or under the floor the limiter neither learns nor probes (a
probe sheds all but a few for a moment).
"""

from __future__ import annotations

import collections
import contextlib
import math
import random
import time
from collections.abc import Callable, Sequence

import orjson
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from orderfast.http import security
from orderfast.http.metrics import UNMATCHED, RequestObserver, request_id
from orderfast.http.problems import PROBLEM_JSON, overloaded
from orderfast.http.request import BodyDeadlines, BodyTimeout
from orderfast.observability import instruments as m
from orderfast.observability import tracing
from orderfast.observability.logging import REQUEST_ID

# Never shed: an orchestrator must see a loaded worker as alive and ready (it is), and Prometheus
# must see the overload itself.
EXEMPT = frozenset({"/livez", "/readyz", "/startupz", "/healthz", "/metrics"})


class GradientLimiter:
    """One worker's concurrency limit (one event loop per process: no locks)."""

    def __init__(
        self,
        maximum: int,
        *,
        minimum: int = 1,
        initial: int = 64,
        tolerance: float = 8.0,
        window: float = 0.1,
        min_samples: int = 10,
        probe_concurrency: int = 4,
        probe_samples: int = 20,
        probe_interval: float = 30.0,
        clock: Callable[[], float] = time.perf_counter,
        on_change: Callable[[int], None] = lambda limit: None,
        rng: random.Random | None = None,
    ) -> None:
        if maximum < 1:
            raise ValueError("the ceiling admits at least one request")
        self.maximum = maximum
        self.minimum = max(1, min(minimum, maximum))
        self._limit = float(min(max(initial, self.minimum), maximum))
        self.limit = int(self._limit)
        self.inflight = 0
        self.min_rtt: float | None = None
        self._baselines: collections.deque[tuple[float, float]] = collections.deque()  # (when, rtt)
        self.probing = False
        self._tolerance = tolerance
        self._window = window
        self._min_samples = min_samples
        self._probe_cap = min(probe_concurrency, maximum)
        self._probe_samples = probe_samples
        self._probe_interval = probe_interval
        self._clock = clock
        self._on_change = on_change
        self._rng = rng or random.Random()
        now = clock()
        self._refresh_at = now  # when min_rtt is due to be measured again
        self._probe_started = 0.0
        self._probe: list[float] = []
        self._window_end = now + window
        self._sum = 0.0
        self._count = 0
        self._peak = 0
        self._shed = False
        on_change(self.limit)

    def acquire(self) -> float | None:
        """The admission time (hand it back to ``release``), or None: shed this request."""
        if self.inflight >= (self._probe_cap if self.probing else self.limit):
            self._shed = True
            return None
        self.inflight += 1
        if self.inflight > self._peak:
            self._peak = self.inflight
        return self._clock()

    def release(self, admitted: float) -> None:
        self.inflight -= 1
        now = self._clock()
        rtt = now - admitted
        if self.probing:
            if admitted >= self._probe_started:  # admitted under the probe's cap
                self._probe.append(rtt)
                if len(self._probe) >= self._probe_samples:
                    self._end_probe(now)
            return
        self._sum += rtt
        self._count += 1
        if now >= self._window_end and self._count >= self._min_samples:
            self._update(now)

    def _update(self, now: float) -> None:
        sample, peak, shed = self._sum / self._count, self._peak, self._shed
        self._sum, self._count, self._peak, self._shed = 0.0, 0, self.inflight, False
        self._window_end = now + self._window
        if peak <= self._probe_cap and not shed:  # unloaded: the baseline, measured for free
            self._measured(now, sample)
            return
        if not shed and (2 * peak < self.limit or peak <= self.minimum):
            # The limit is not what holds this worker back (or could not go lower): nothing to
            # learn from here, and no probe — a probe sheds all but a few for a moment.
            return
        if self.min_rtt is None or now >= self._refresh_at:
            self.probing = True
            self._probe_started = now
            self._probe.clear()
            return
        gradient = min(2.0, max(0.5, self._tolerance * self.min_rtt / sample))
        self._set(self._limit * gradient + math.sqrt(self._limit))

    def _end_probe(self, now: float) -> None:
        self._probe.sort()
        self._measured(now, self._probe[len(self._probe) // 2])
        self.probing = False
        self._sum, self._count, self._peak, self._shed = 0.0, 0, self.inflight, False
        self._window_end = now + self._window

    def _measured(self, now: float, rtt: float) -> None:
        # The baseline is the lowest measurement of the last two probe intervals: a probe taken in
        # the thick of an overload also measures the event loop's backlog, and must not raise the
        # baseline (and with it the limit) while a cleaner measurement is recent; a server that has
        # really become slower has its new baseline within two intervals.
        baselines = self._baselines
        baselines.append((now, rtt))
        while baselines[0][0] < now - 2 * self._probe_interval:
            baselines.popleft()
        self.min_rtt = min(v for _, v in baselines)
        self._refresh_at = now + self._interval()

    def _set(self, limit: float) -> None:
        self._limit = min(float(self.maximum), max(float(self.minimum), limit))
        if int(self._limit) != self.limit:
            self.limit = int(self._limit)
            self._on_change(self.limit)

    def _interval(self) -> float:
        # Jittered, so that the workers of a server (and the servers of a fleet) do not probe at once.
        return self._probe_interval * self._rng.uniform(0.85, 1.15)


def _gauge(limit: int) -> None:
    m.ADMISSION_LIMIT.set(limit)


class Admission:
    """Pure ASGI, the outermost layer: each HTTP request but the probes and ``/metrics`` takes a
    place under the worker's limit, or is answered 503 ``overloaded`` with ``Retry-After`` at once —
    before Starlette routes it, authenticates it or reads its body, and without the layers below it:
    a shed answer is written here whole, with what they would have added (a request id, the security
    headers, ``Connection: close`` while draining) and recorded by the request observer as they
    would have (metrics by route: ``routes`` name the template, a path none serves counts as
    ``unmatched``; the access log; a span when tracing). Every layer a shed request skips is work
    taken off the worker's one thread when it has the least to spare."""

    def __init__(
        self,
        app: ASGIApp,
        limiter: GradientLimiter,
        routes: Sequence[BaseRoute],
        *,
        observer: RequestObserver,
        draining: Callable[[], bool] = lambda: False,
        retry_after: int = 1,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self._routes = [r for r in routes if isinstance(r, Route)]
        self._observer = observer
        self._draining = draining
        self._problem = overloaded(retry_after)
        self._headers = [(b"content-type", PROBLEM_JSON.encode()), (b"retry-after", str(retry_after).encode())]
        self._deadlines = BodyDeadlines()
        for route in self._routes:  # every route's series from the start, at 0: rate() needs them
            if route.path not in EXEMPT:
                m.ADMISSION_SHED.labels(route.path)

    @classmethod
    def adaptive(
        cls,
        app: ASGIApp,
        maximum: int,
        routes: Sequence[BaseRoute],
        tolerance: float = 8.0,
        minimum: int = 1,
        *,
        observer: RequestObserver,
        draining: Callable[[], bool] = lambda: False,
    ) -> Admission:
        limiter = GradientLimiter(maximum, minimum=minimum, tolerance=tolerance, on_change=_gauge)
        return cls(app, limiter, routes, observer=observer, draining=draining)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        limiter = self.limiter
        admitted = limiter.acquire()
        if admitted is None:
            await self._shed(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            limiter.release(admitted)

    async def _shed(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        path = scope["path"]
        route: Route | None = None
        for candidate in self._routes:
            if candidate.path_regex.match(path):
                route = candidate
                break
        template = route.path if route is not None else UNMATCHED
        rid = request_id(scope["headers"])
        token = REQUEST_ID.set(rid)  # in the problem body and in any log line written here
        try:
            traced = tracing.server(scope, rid) if tracing.ENABLED else None
            m.ADMISSION_SHED.labels(template).inc()
            # Two messages straight to the server (a Starlette Response would cost as much again).
            body = orjson.dumps(self._problem.document(path))
            headers = [
                *self._headers,
                (b"content-length", str(len(body)).encode()),
                *security.for_path(path),
                (b"x-request-id", rid.encode()),
            ]
            if self._draining():
                headers.append(security.CLOSE)
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            self._observer.record(scope, template, 503, time.perf_counter() - started)
            if traced is not None:
                traced.finish(None if route is None else template, 503)
        finally:
            REQUEST_ID.reset(token)
        length = _body_length(scope)
        if length != 0:
            await _drain(receive, length, self._deadlines)


def _body_length(scope: Scope) -> int | None:
    """0 for a request without a body, its ``Content-Length`` when it has one, None when chunked."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
        if name == b"transfer-encoding":
            return None
    return 0


DRAIN_SECONDS = 0.5


async def _drain(receive: Receive, length: int | None, deadlines: BodyDeadlines) -> None:
    """Reads and drops the body of a request already answered: the server keeps a connection only
    when the request was read to its end, and a body still on its way when the 503 went out would
    otherwise cost the client its connection — closed under it, without a ``Connection: close`` to
    warn it (a reused connection then fails). A body of known length is read only until that many
    bytes have come (one receive when it came with its head: the server keeps the connection of a
    request whose body it already holds). Bounded: a body slower than this is left, and the server
    closes that connection."""
    size = 0
    with contextlib.suppress(BodyTimeout), deadlines.bounded(DRAIN_SECONDS):
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            size += len(message.get("body", b""))
            if size == length or not message.get("more_body", False):
                return
