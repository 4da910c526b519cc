"""Circuit breakers: stop calling a dependency that keeps failing, and find out cheaply when it is back.

Closed, every call goes through; ``failures`` unavailability failures in a row (unreachable, timed
out — never a refusal the dependency itself gave) open it. Open, calls fail at once, without
touching the network, for ``cooldown`` seconds; then it is half-open and lets one call through as
a probe: success closes it, failure opens it for another cooldown. Every change of state is logged
(one JSON line: opening a warning, closing info, the probes' comings and goings debug — a long
outage would otherwise log twice a cooldown) and exported (``orderfast_circuit_breaker_state``,
``…_transitions``). A caller that schedules its own retries (the relay) marks them as probes with
:meth:`probe` instead of asking :meth:`allow`.

Per process and in memory: each worker finds out for itself, which costs at most ``failures``
calls per worker per outage. The closed path is one attribute test.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from orderfast.observability import instruments as m

log = logging.getLogger("orderfast.breaker")

CLOSED, HALF_OPEN, OPEN = 0, 1, 2
STATE_NAMES = {CLOSED: "closed", HALF_OPEN: "half_open", OPEN: "open"}


class Breaker:
    __slots__ = ("_clock", "_cooldown", "_failures", "_since", "_threshold", "dependency", "state")

    def __init__(
        self, dependency: str, *, failures: int = 5, cooldown: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failures < 1 or cooldown <= 0:
            raise ValueError("failures must be at least 1 and cooldown positive")
        self.dependency = dependency
        self.state = CLOSED
        self._failures = 0
        self._threshold = failures
        self._cooldown = cooldown
        self._clock = clock
        self._since = 0.0  # when it opened, or when the probe went out
        m.BREAKER_STATE.set(CLOSED, dependency)
        for name in STATE_NAMES.values():  # every transition's series from the start, at 0
            m.BREAKER_TRANSITIONS.labels(dependency, name)

    @property
    def threshold(self) -> int:
        return self._threshold

    @property
    def cooldown(self) -> float:
        return self._cooldown

    def allow(self) -> bool:
        """May a call go out now? False: fail it at once. Half-open, the first caller after the
        cooldown is the probe; a probe that never reports back (its caller went away) is replaced
        after another cooldown."""
        if self.state == CLOSED:
            return True
        now = self._clock()
        if now - self._since < self._cooldown:
            return False
        self._since = now
        if self.state == OPEN:
            self._move(HALF_OPEN, "letting one call through as a probe")
        return True

    def probe(self) -> None:
        """The caller is about to try again on its own schedule: half-open until it reports."""
        if self.state == OPEN:
            self._since = self._clock()
            self._move(HALF_OPEN, "the caller retries")

    def success(self) -> None:
        if self.state == CLOSED:
            self._failures = 0
        elif self.state == HALF_OPEN:
            self._failures = 0
            self._move(CLOSED, "the probe succeeded")
        # Open: a call sent before it opened came back well; the probe decides.

    def failure(self) -> None:
        if self.state == CLOSED:
            self._failures += 1
            if self._failures >= self._threshold:
                self._since = self._clock()
                self._move(OPEN, f"{self._failures} failures in a row")
        elif self.state == HALF_OPEN:
            self._since = self._clock()
            self._move(OPEN, "the probe failed")

    def _move(self, state: int, why: str) -> None:
        was, self.state = self.state, state
        name = STATE_NAMES[state]
        m.BREAKER_STATE.set(state, self.dependency)
        m.BREAKER_TRANSITIONS.labels(self.dependency, name).inc()
        if state == CLOSED:
            level = logging.INFO
        elif state == OPEN and was == CLOSED:
            level = logging.WARNING
        else:  # a probe going out, or failing: the outage goes on
            level = logging.DEBUG
        log.log(
            level,
            "circuit breaker %s: %s → %s (%s)",
            self.dependency,
            STATE_NAMES[was],
            name,
            why,
            extra={"fields": {"dependency": self.dependency, "state": name, "previous": STATE_NAMES[was]}},
        )
