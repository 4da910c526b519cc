"""Rate limits that hold across every worker process and instance: GCRA in one atomic Redis script.

The in-process Rust limiter stays in front and turns away the obvious excess without a network
round trip; what it lets through is decided by Redis, for all policies of the request at once
(tokens are taken from every policy or from none). Redis time is used, so instances with skewed
clocks agree. Keys of one request live in one Redis, so this needs a single Redis (or a cluster
where a request's keys share a hash slot); it is not meant for Redis Cluster as is.

When Redis cannot be reached the choice is ``ORDERFAST_RATELIMIT_ON_REDIS_FAILURE``: ``open``
(default) lets requests through on the per-worker limits alone, ``closed`` refuses them with a
503. Either way the outage is logged once when it starts and once when it ends, and a circuit
breaker (``redis-ratelimit``) stops asking Redis while it is away: after a few failures in a row
requests are decided at once, without waiting out the socket timeout, and one probe per cooldown
finds out when it is back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orderfast.observability import instruments as m
from orderfast.resilience.breaker import Breaker

if TYPE_CHECKING:  # imported when a client is given: ~130 ms a server without Redis does not pay
    import redis.asyncio as redis

log = logging.getLogger("orderfast.ratelimit")

# KEYS: one per policy. ARGV: cost, then (interval_us, tolerance_us) per policy. Times are in
# microseconds (a quota of 4000 a second refills every 250 µs; Lua's doubles hold them exactly).
# Returns per policy: allowed (0/1), remaining, reset_us, retry_us.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[1])
local out, tats, all = {}, {}, true
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local tolerance = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval * cost
  local ahead = new_tat - now
  if ahead > tolerance then
    all = false
    local backlog = tat - now
    out[#out + 1] = 0
    out[#out + 1] = math.floor(math.max(tolerance - backlog, 0) / interval)
    out[#out + 1] = backlog
    out[#out + 1] = ahead - tolerance
  else
    out[#out + 1] = 1
    out[#out + 1] = math.floor((tolerance - ahead) / interval)
    out[#out + 1] = ahead
    out[#out + 1] = 0
  end
  tats[i] = new_tat
end
if all then
  for i, key in ipairs(KEYS) do
    redis.call('SET', key, tats[i], 'PX', math.max(math.ceil((tats[i] - now) / 1000), 1))
  end
end
return out
"""


@dataclass(frozen=True, slots=True)
class SharedDecision:
    """Shaped like ``_core.RateDecision``, so the guard treats both alike."""

    policy: str
    allowed: bool
    remaining: int
    reset: float
    retry_after: float


@dataclass(frozen=True, slots=True)
class SharedShape:
    """The policies as Redis sees them: names (in the keys) and GCRA parameters (in µs)."""

    names: tuple[str, ...]
    params: tuple[int, ...]  # (interval_us, tolerance_us) per policy

    @classmethod
    def of(cls, policies: Sequence[tuple[str, int, float, int]]) -> SharedShape:
        """``policies``: (name, quota, period_seconds, burst) each, as for RateLimitPolicies."""
        params: list[int] = []
        for _, quota, period, burst in policies:
            interval = max(1, round(period * 1_000_000 / quota))
            params += [interval, interval * burst]
        return cls(tuple(p[0] for p in policies), tuple(params))


class RateLimiterUnavailable(Exception):
    """Redis could not decide and the configured choice is to fail closed."""


class SharedRateLimits:
    def __init__(
        self,
        client: redis.Redis,
        policies: Sequence[tuple[str, int, float, int]],
        *,
        fail_open: bool = True,
        prefix: str = "orderfast:rl2:",
        breaker: Breaker | None = None,
    ) -> None:
        """``policies``: (name, quota, period_seconds, burst) each, as for RateLimitPolicies."""
        import redis.asyncio as redis

        self._errors = (redis.RedisError, OSError)
        self._timeout = redis.TimeoutError
        self._redis = client
        self.shape = SharedShape.of(policies)
        self._script = client.register_script(_GCRA)
        self._fail_open = fail_open
        self._prefix = prefix
        self._down = False
        self.breaker = breaker or Breaker("redis-ratelimit")
        m.DEPENDENCY_TIMEOUTS.labels("redis", "ratelimit")  # exported from the start, at 0

    async def acquire(
        self, keys: Sequence[str | None], cost: int = 1, shape: SharedShape | None = None
    ) -> list[SharedDecision | None] | None:
        """One decision per policy of ``shape`` (by default the policies this was made with; a
        reload passes the new ones), None where the request has no key for it; None as a whole
        when Redis is unreachable and the choice is to fail open. The state of a policy lives
        under its name, so a reload that keeps a name keeps what clients have spent."""
        shape = shape or self.shape
        present = [(i, k) for i, k in enumerate(keys) if k is not None]
        redis_keys = [f"{self._prefix}{shape.names[i]}:{k}" for i, k in present]
        argv = [cost] + [p for i, _ in present for p in shape.params[2 * i : 2 * i + 2]]
        if not self.breaker.allow():
            self._unreachable("circuit breaker open")
            return None
        try:
            raw = await self._script(keys=redis_keys, args=argv)
        except self._errors as e:
            if isinstance(e, self._timeout):
                m.DEPENDENCY_TIMEOUTS.labels("redis", "ratelimit").inc()
            self.breaker.failure()
            self._unreachable(str(e))
            return None
        self.breaker.success()
        if self._down:
            log.info("rate limiter: Redis reachable again")
            self._down = False
        decisions: list[SharedDecision | None] = [None] * len(keys)
        for n, (i, _) in enumerate(present):
            allowed, remaining, reset_us, retry_us = (int(x) for x in raw[4 * n : 4 * n + 4])
            decisions[i] = SharedDecision(shape.names[i], bool(allowed), remaining, reset_us / 1e6, retry_us / 1e6)
        return decisions

    def set_fail_open(self, fail_open: bool) -> None:
        """Open (per-worker limits alone) or closed (503) while Redis is unreachable (a flag)."""
        self._fail_open = fail_open

    def _unreachable(self, why: str) -> None:
        """Fails closed (raises) or open (returns: the caller lets the request through)."""
        if not self._down:
            log.error("rate limiter: Redis unreachable (%s); failing %s", why, "open" if self._fail_open else "closed")
        self._down = True
        if not self._fail_open:
            raise RateLimiterUnavailable(why) from None

    async def close(self) -> None:
        await self._redis.aclose()
