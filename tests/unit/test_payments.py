"""Webhook signatures: valid, rotated, stale, future, tampered and malformed."""

from __future__ import annotations

import pytest

from orderfast.services.payments import sign, verify_signature

BODY = b'{"event_id":"e1"}'
NOW = 1_800_000_000


def test_a_valid_signature_passes() -> None:
    assert verify_signature(sign("s1", NOW, BODY), BODY, ["s1"], NOW)


def test_any_configured_secret_matches_any_sent_signature() -> None:
    old, new = sign("old", NOW, BODY), sign("new", NOW, BODY)
    both = f"t={NOW},v1={old.split('v1=')[1]},v1={new.split('v1=')[1]}"
    assert verify_signature(both, BODY, ["new"], NOW)
    assert verify_signature(old, BODY, ["new", "old"], NOW)


@pytest.mark.parametrize("skew", [-301, 301, -10_000])
def test_stale_and_future_timestamps_fail(skew: int) -> None:
    assert not verify_signature(sign("s1", NOW + skew, BODY), BODY, ["s1"], NOW)
    assert verify_signature(sign("s1", NOW + (300 if skew > 0 else -300), BODY), BODY, ["s1"], NOW)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "t=abc,v1=00",
        f"t={NOW}",
        f"v1={'0' * 64}",
        f"t={NOW},v1=zz{'0' * 62}",
        f"t={NOW},v0={'0' * 64}",
        f"t={NOW},v1={'0' * 63}",
    ],
)
def test_malformed_headers_fail(header: str | None) -> None:
    assert not verify_signature(header, BODY, ["s1"], NOW)


def test_tampered_body_or_wrong_secret_fails() -> None:
    header = sign("s1", NOW, BODY)
    assert not verify_signature(header, BODY + b" ", ["s1"], NOW)
    assert not verify_signature(header, BODY, ["s2"], NOW)
    assert not verify_signature(header, BODY, [], NOW)
