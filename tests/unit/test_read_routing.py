"""Read-replica routing in pieces: write positions, the position a read carries, which replica may
serve a read, and the settings. (The whole, against a real streaming replica: tests/ops.)"""

from __future__ import annotations

import time

import pytest

from orderfast.config import ConfigError, Settings
from orderfast.http.metrics import carried_position, position_fields
from orderfast.store.consistency import format_position, parse_position
from orderfast.store.postgres.replicas import UNKNOWN, ReadReplicas


def test_positions_read_and_print_as_postgresql_does() -> None:
    assert parse_position("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert parse_position("0/0") == 0
    assert format_position(parse_position("16/B374D848") or 0) == "16/B374D848"
    for bad in ("", "16", "/1", "1/", "x/1", "1/123456789", "1/2/3", "-1/2"):
        assert parse_position(bad) is None, bad


def test_a_read_carries_its_position_by_header_or_cookie() -> None:
    assert carried_position([]) == 0
    assert carried_position([(b"orderfast-read-after", b"1/10")]) == (1 << 32) | 0x10
    cookie = (b"cookie", b"theme=dark; orderfast_read_after=2/FF; x=y")
    assert carried_position([cookie]) == (2 << 32) | 0xFF
    # The header wins; junk carries nothing (the read goes wherever a plain read would).
    assert carried_position([cookie, (b"orderfast-read-after", b"3/0")]) == 3 << 32
    assert carried_position([(b"orderfast-read-after", b"nonsense")]) == 0
    assert carried_position([(b"cookie", b"orderfast_read_after=; other=1")]) == 0


def test_a_write_answer_carries_header_and_cookie() -> None:
    fields = dict(position_fields("A/1F"))
    assert fields[b"orderfast-read-after"] == b"A/1F"
    assert fields[b"set-cookie"].startswith(b"orderfast_read_after=A/1F; Path=/v1; Max-Age=60; HttpOnly")


def replicas(lag: float = 1.0) -> ReadReplicas:
    return ReadReplicas(["postgresql://a/x", "postgresql://b/x"], max_lag=lag, max_size=2, statement_timeout=None)


def test_no_reading_of_the_primary_yet_means_no_replica() -> None:
    r = replicas()
    for replica in r.replicas:
        replica.replayed = 100
    assert r.pick(0) is None


def test_a_replica_serves_when_it_has_replayed_what_the_primary_had_max_lag_ago() -> None:
    r = replicas(lag=1.0)
    now = time.monotonic()
    r._primary.extend([(now - 3.0, 100), (now - 1.5, 200), (now - 0.2, 300)])
    a, b = r.replicas
    a.replayed, b.replayed = 150, 250
    assert r.pick(0) is b, "a is behind the primary of 1 s ago (200)"
    assert r.pick(0) is b
    a.replayed = 200
    assert {r.pick(0), r.pick(0)} == {a, b}, "both qualify: they take reads in turn"
    # A read carrying a write's position needs a replica that has replayed it.
    assert r.pick(250) is b
    assert r.pick(251) is None
    # A replica lost (or not a standby) serves nothing, however far it had replayed.
    b.lost()
    assert b.replayed == UNKNOWN and r.pick(250) is None and r.pick(0) is a


def test_the_written_position_only_grows() -> None:
    r = replicas()
    assert r.written_position() is None
    r.note_written("0/20")
    r.note_written("0/10")
    r.note_written(None)
    assert r.written_position() == "0/20"


def test_read_replicas_need_a_primary_and_postgresql_urls() -> None:
    with pytest.raises(ConfigError, match="ORDERFAST_DATABASE_URL"):
        Settings.from_env({"ORDERFAST_DATABASE_READ_URL": "postgresql://r/db"})
    with pytest.raises(ConfigError, match="ORDERFAST_DATABASE_READ_URL"):
        Settings.from_env({"ORDERFAST_DATABASE_URL": "postgresql://p/db", "ORDERFAST_DATABASE_READ_URL": "mysql://r"})
    s = Settings.from_env(
        {
            "ORDERFAST_DATABASE_URL": "postgresql://p/db",
            "ORDERFAST_DATABASE_READ_URL": "postgresql://r1/db, postgresql://r2/db",
        }
    )
    assert s.database_read_url is not None and s.database_read_url.reveal().split(",") == [
        "postgresql://r1/db",
        "postgresql://r2/db",
    ]
    assert "r1" not in repr(s), "the URLs may hold passwords: never shown"
