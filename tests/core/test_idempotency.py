"""The idempotency map: new → in flight → replay, mismatches, expiry, bounded size."""

from __future__ import annotations

import threading

import pytest

from orderfast import _core

SEC = 1_000_000_000


@pytest.fixture
def imap() -> _core.IdempotencyMap:
    return _core.IdempotencyMap(ttl=60, in_flight_ttl=10, capacity=1024)


def test_new_in_flight_then_replay(imap: _core.IdempotencyMap) -> None:
    fp = _core.fingerprint(b"body")
    assert imap.begin("k", fp, now_ns=SEC) is None
    with pytest.raises(_core.KeyInFlightError):
        imap.begin("k", fp, now_ns=SEC)
    imap.complete("k", fp, 201, [("location", "/v1/orders/x")], b'{"id":"x"}', now_ns=SEC)
    replay = imap.begin("k", fp, now_ns=2 * SEC)
    assert replay is not None
    assert (replay.status, replay.headers, replay.body) == (
        201,
        [("location", "/v1/orders/x")],
        b'{"id":"x"}',
    )


def test_different_body_is_a_mismatch(imap: _core.IdempotencyMap) -> None:
    assert imap.begin("k", _core.fingerprint(b"a"), now_ns=SEC) is None
    with pytest.raises(_core.KeyMismatchError):
        imap.begin("k", _core.fingerprint(b"b"), now_ns=SEC)
    assert issubclass(_core.KeyMismatchError, _core.IdempotencyError)


def test_abandon_and_expiry(imap: _core.IdempotencyMap) -> None:
    fp = _core.fingerprint(b"a")
    assert imap.begin("k", fp, now_ns=SEC) is None
    imap.abandon("k")
    assert imap.begin("k", fp, now_ns=SEC) is None
    assert imap.begin("k", fp, now_ns=12 * SEC) is None, "a stale in-flight claim lapses"
    imap.complete("k", fp, 201, [], b"{}", now_ns=12 * SEC)
    assert imap.begin("k", fp, now_ns=71 * SEC) is not None
    assert imap.begin("k", fp, now_ns=72 * SEC) is None, "completed entries expire after ttl"


def test_fingerprint_is_sha256() -> None:
    assert _core.fingerprint(b"abc").hex().startswith("ba7816bf")
    with pytest.raises(ValueError):
        _core.IdempotencyMap().begin("k", b"short")


def test_capacity_bounds_memory() -> None:
    imap = _core.IdempotencyMap(ttl=3600, capacity=64)
    fp = _core.fingerprint(b"x")
    for i in range(5000):
        imap.begin(f"k{i}", fp, now_ns=SEC + i)
        imap.complete(f"k{i}", fp, 201, [], b"{}", now_ns=SEC + i)
    assert len(imap) <= 64


def test_exactly_one_owner_per_key_across_threads() -> None:
    imap = _core.IdempotencyMap()
    fp = _core.fingerprint(b"x")
    owners = []
    barrier = threading.Barrier(4)

    def race() -> None:
        barrier.wait()
        mine = 0
        for i in range(300):
            try:
                if imap.begin(f"key-{i}", fp) is None:
                    mine += 1
            except _core.KeyInFlightError:
                pass
        owners.append(mine)

    threads = [threading.Thread(target=race) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(owners) == 300


def test_memory_is_bounded_in_bytes() -> None:
    imap = _core.IdempotencyMap(ttl=3600, capacity=1_000_000, max_bytes=1 << 16)
    fp = _core.fingerprint(b"x")
    body = b"z" * 2000
    for i in range(2000):
        imap.begin(f"k{i}", fp, now_ns=SEC + i)
        imap.complete(f"k{i}", fp, 201, [("location", "/v1/orders/x")], body, now_ns=SEC + i)
    assert imap.nbytes <= 1 << 16
    assert len(imap) > 0


def test_mixed_operations_under_threads_stay_consistent() -> None:
    """Several threads begin, complete, abandon and replay over a shared key space: every begin
    yields exactly one outcome, replays return what was completed, and nothing deadlocks."""
    imap = _core.IdempotencyMap(capacity=4096)
    barrier = threading.Barrier(6)
    problems: list[str] = []
    counts = {"new": 0, "replay": 0, "busy": 0}
    lock = threading.Lock()

    def worker(t: int) -> None:
        barrier.wait()
        for i in range(2000):
            key = f"k{i % 97}"
            fp = _core.fingerprint(key.encode())
            try:
                replay = imap.begin(key, fp)
            except _core.KeyInFlightError:
                outcome = "busy"
            else:
                if replay is None:
                    outcome = "new"
                    if (i + t) % 3 == 0:
                        imap.abandon(key)
                    else:
                        imap.complete(key, fp, 201, [], key.encode())
                else:
                    outcome = "replay"
                    if replay.body != key.encode():
                        problems.append(f"{key} replayed {replay.body!r}")
            with lock:
                counts[outcome] += 1

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not any(th.is_alive() for th in threads), "deadlock"
    assert problems == []
    assert sum(counts.values()) == 6 * 2000
    assert counts["replay"] > 0 and counts["new"] >= 97
