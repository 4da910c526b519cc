"""The keyed limiter with an injected clock: exact, deterministic decisions."""

from __future__ import annotations

import threading

import pytest

from orderfast import _core

SEC = 1_000_000_000


def test_burst_then_steady_rate() -> None:
    rl = _core.RateLimiter(10, 1.0, 5)
    decisions = [rl.acquire("u", now_ns=SEC) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    assert decisions[5].retry_after == pytest.approx(0.1)
    assert rl.acquire("u", now_ns=SEC + SEC // 10).allowed
    assert (rl.quota, rl.period, rl.burst) == (10, 1.0, 5)


def test_keys_are_independent_and_counted() -> None:
    rl = _core.RateLimiter(1, 60.0, 1)
    assert rl.acquire("a", now_ns=SEC).allowed
    assert not rl.acquire("a", now_ns=SEC).allowed
    assert rl.acquire("b", now_ns=SEC).allowed
    assert len(rl) == 2


def test_cost_and_reset() -> None:
    rl = _core.RateLimiter(10, 1.0, 10)
    d = rl.acquire("u", cost=4, now_ns=SEC)
    assert d.allowed and d.remaining == 6 and d.reset == pytest.approx(0.4)


@pytest.mark.parametrize(("quota", "period", "burst"), [(0, 1.0, 1), (1, 0.0, 1), (1, 1.0, 0), (1, float("nan"), 1)])
def test_rejects_degenerate_configuration(quota: int, period: float, burst: int) -> None:
    with pytest.raises(ValueError):
        _core.RateLimiter(quota, period, burst)


def test_threads_never_exceed_the_burst() -> None:
    rl = _core.RateLimiter(1, 3600.0, 500)
    admitted = []

    def hammer() -> None:
        admitted.append(sum(rl.acquire("hot", now_ns=SEC).allowed for _ in range(400)))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == 500


def test_policies_are_all_or_nothing() -> None:
    limits = _core.RateLimitPolicies([("user", 10, 1.0, 10), ("ip", 1, 1.0, 1)])
    assert limits.names == ["user", "ip"]
    first = limits.acquire(["u", "1.2.3.4"], now_ns=SEC)
    assert all(d is not None and d.allowed for d in first)
    second = limits.acquire(["u", "1.2.3.4"], now_ns=SEC)
    assert [(d.policy, d.allowed) for d in second if d is not None] == [("user", True), ("ip", False)]
    # The refused request cost the user nothing: 9 of 10 left before this one.
    third = limits.acquire(["u", None], now_ns=SEC)
    assert third[1] is None and third[0] is not None and third[0].remaining == 8
    with pytest.raises(ValueError):
        limits.acquire(["only-one"])


def test_policies_hold_under_python_threads() -> None:
    limits = _core.RateLimitPolicies([("user", 1, 3600.0, 200), ("ip", 1, 3600.0, 1000)])
    admitted = []

    def hammer(user: str) -> None:
        ok = 0
        for _ in range(300):
            ds = limits.acquire([user, "shared-ip"], now_ns=SEC)
            ok += all(d is not None and d.allowed for d in ds)
        admitted.append(ok)

    threads = [threading.Thread(target=hammer, args=(f"u{i % 3}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == 3 * 200
