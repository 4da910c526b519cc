"""One database outage under load, observed from the client's side and audited afterwards — shared by
the PostgreSQL crash, the frozen PostgreSQL and the blackholing proxy.

The promises checked: while the database is away every create is answered, within the request budget
(plus a margin), with 201 or 503 ``store-unavailable`` + ``Retry-After`` — never a 500, a reset or a
hang; once it is back the same server (not restarted) creates orders again; and a client that retries
each 503 with the same Idempotency-Key and body gets the truth — the order, if the timed-out attempt
committed after all (replayed, byte for byte), or else one order created now — and the database
holds exactly one whole order per key."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tests.e2e.conftest import Server
from tests.faults.audit import assert_whole, snapshot
from tests.faults.harness import BUDGET, MARGIN, Attempt, Creates, order_id, settle

RECOVERY_LIMIT = 10.0  # seconds from the database's return to a create that succeeds


@dataclass(frozen=True)
class Outage:
    """What one outage looked like (seconds): from the fault to the first 503, the slowest answer to a
    create, from the database's return to the first create sent after it that succeeded; and counts."""

    first_503: float
    slowest: float
    recovery: float
    refused: int
    created: int
    retried_replayed: int  # 503s whose order had committed after all

    def __str__(self) -> str:
        return (
            f"first 503 after {self.first_503:.2f} s, slowest answer {self.slowest:.2f} s, recovered "
            f"{self.recovery:.2f} s after the database returned; {self.created} created, {self.refused} x 503 "
            f"({self.retried_replayed} of them had committed: their retry replayed the order)"
        )


def ride_out(server: Server, fault: Callable[[], None], lift: Callable[[], None], *, seconds: float) -> Outage:
    """Customers create orders; ``fault()`` breaks the database for ``seconds``, ``lift()`` ends it
    (returning once the database is back); then the checks above."""
    earlier = set(snapshot(server.env).orders)  # a server may have served other tests first
    with Creates(server, customers=4) as load:
        load.wait_for("orders created before the fault", 20)
        broken = time.monotonic()
        fault()
        time.sleep(seconds)  # the fault's duration, not a synchronisation
        lift()
        back = time.monotonic()
        recovered = load.wait_for(
            "a create sent after the database returned succeeds", 1, since=back, timeout=RECOVERY_LIMIT
        )
    attempts = load.done()
    assert server.proc is not None and server.proc.poll() is None, "the server stayed up"

    wrong = [a for a in attempts if a.status not in (201, 503)]
    assert not wrong, f"only 201 or 503: {[(a.status, a.problem, round(a.seconds, 2)) for a in wrong][:10]}"
    refused = [a for a in attempts if a.status == 503]
    assert refused, "the outage was answered with 503s"
    for a in refused:
        assert a.problem == "store-unavailable", a.content
        assert a.headers.get("retry-after", "").isdigit(), "a 503 says when to retry"
        assert a.outcome in ("not_applied", "unknown"), a.content
    slow = sorted((a.seconds for a in attempts if a.seconds > BUDGET + MARGIN), reverse=True)
    assert not slow, f"{len(slow)} answers past the {BUDGET} s budget + {MARGIN} s: {[round(s, 2) for s in slow[:10]]}"
    first_503 = min(a.answered for a in refused if a.answered >= broken) - broken

    replayed = retry_the_refused(server, attempts, earlier)
    return Outage(
        first_503=first_503,
        slowest=max(a.seconds for a in attempts),
        recovery=recovered - back,
        refused=len(refused),
        created=sum(a.status == 201 for a in attempts),
        retried_replayed=replayed,
    )


def retry_the_refused(server: Server, attempts: list[Attempt], earlier: set[str]) -> int:
    """Retries every 503 with its key and body and audits the database: exactly one whole order per
    key, the one each client was given. Returns how many retries replayed an order that had
    committed although its first attempt was answered 503. ``earlier``: the orders there before."""
    before = {key: stored for (_, key), stored in snapshot(server.env).keys.items()}
    answers = {a.key: a for a in attempts if a.status == 201}
    refused = [a for a in attempts if a.status != 201]
    with ThreadPoolExecutor(4) as pool:
        retries = list(pool.map(lambda a: settle(server, a), refused))
    replayed = 0
    for a, again in zip(refused, retries, strict=True):
        assert again.status == 201, f"the retry of {a.key} after recovery: {again.status} {again.content[:200]!r}"
        if again.headers.get("idempotent-replayed") == "true":
            # It committed although the client was told 503: only an `unknown` outcome may do that.
            assert a.outcome == "unknown", f"{a.key}: answered {a.outcome}, yet its order was written"
            replayed += 1
        if a.key in before:  # committed before the retry: the retry says so, with the stored bytes
            assert again.headers.get("idempotent-replayed") == "true", f"{a.key} created twice?"
            assert again.content == before[a.key][1], "the replay is the stored response, byte for byte"
        answers[a.key] = again
    db = snapshot(server.env)
    by_key = Counter(key for _, key in db.keys)
    assert all(by_key[k] == 1 for k in answers), "exactly one idempotency record per key"
    stored = {key: oid for (_, key), (oid, _) in db.keys.items()}
    assert {k: order_id(a) for k, a in answers.items()} == {k: stored[k] for k in answers}, (
        "every client holds the order the database has for its key"
    )
    assert set(db.orders) - earlier == {order_id(a) for a in answers.values()}, "no order the clients do not know of"
    assert_whole(db, [order_id(a) for a in answers.values()])
    return replayed
