"""The circuit breaker's states, on a clock the test moves: closed → open after N failures in a row,
fail fast while open, one probe after the cooldown (half-open), closed on its success, open again on
its failure; every transition logged as JSON and exported."""

from __future__ import annotations

import json
import logging

import pytest

from orderfast.observability import instruments as m
from orderfast.observability.logging import JsonFormatter
from orderfast.resilience.breaker import CLOSED, HALF_OPEN, OPEN, Breaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def state_metric(dependency: str) -> float:
    return float(dict(m.BREAKER_STATE.snapshot())[(dependency,)])


def transitions(dependency: str, state: str) -> float:
    return float(dict(m.BREAKER_TRANSITIONS.snapshot()).get((dependency, state), 0.0))


def test_failures_in_a_row_open_it_and_a_success_in_between_resets_the_count() -> None:
    breaker = Breaker("t-count", failures=3, cooldown=1.0, clock=Clock())
    breaker.failure()
    breaker.failure()
    breaker.success()
    breaker.failure()
    breaker.failure()
    assert breaker.state == CLOSED and breaker.allow()
    breaker.failure()
    assert breaker.state == OPEN
    assert state_metric("t-count") == OPEN


def test_open_fails_fast_then_lets_one_probe_through_after_the_cooldown() -> None:
    clock = Clock()
    breaker = Breaker("t-probe", failures=1, cooldown=2.0, clock=clock)
    breaker.failure()
    assert not breaker.allow()
    clock.now += 1.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow(), "the probe"
    assert breaker.state == HALF_OPEN and state_metric("t-probe") == HALF_OPEN
    assert not breaker.allow(), "one probe at a time"
    breaker.success()
    assert breaker.state == CLOSED and breaker.allow()
    assert state_metric("t-probe") == CLOSED
    assert [transitions("t-probe", s) for s in ("open", "half_open", "closed")] == [1, 1, 1]


def test_a_failed_probe_opens_it_for_another_cooldown() -> None:
    clock = Clock()
    breaker = Breaker("t-reopen", failures=1, cooldown=1.0, clock=clock)
    breaker.failure()
    clock.now += 1.0
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == OPEN
    clock.now += 0.5
    assert not breaker.allow()
    clock.now += 0.5
    assert breaker.allow()


def test_a_probe_that_never_reports_back_is_replaced_after_a_cooldown() -> None:
    clock = Clock()
    breaker = Breaker("t-lost", failures=1, cooldown=1.0, clock=clock)
    breaker.failure()
    clock.now += 1.0
    assert breaker.allow()  # its caller goes away: neither success nor failure
    assert not breaker.allow()
    clock.now += 1.0
    assert breaker.allow()


def test_late_results_while_open_change_nothing() -> None:
    clock = Clock()
    breaker = Breaker("t-late", failures=1, cooldown=1.0, clock=clock)
    breaker.failure()
    breaker.success()  # a call sent before it opened
    assert breaker.state == OPEN
    breaker.failure()
    clock.now += 1.0
    assert breaker.allow(), "a straggler's failure did not restart the cooldown"


def test_every_transition_is_a_json_log_line(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    breaker = Breaker("t-log", failures=2, cooldown=1.0, clock=clock)
    with caplog.at_level(logging.DEBUG, logger="orderfast.breaker"):
        breaker.failure()
        breaker.failure()
        clock.now += 1.0
        breaker.allow()
        breaker.failure()
        clock.now += 1.0
        breaker.allow()
        breaker.success()
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records]
    assert [(x["level"], x["dependency"], x["previous"], x["state"]) for x in lines] == [
        ("warning", "t-log", "closed", "open"),
        ("debug", "t-log", "open", "half_open"),
        ("debug", "t-log", "half_open", "open"),
        ("debug", "t-log", "open", "half_open"),
        ("info", "t-log", "half_open", "closed"),
    ]
    assert "2 failures in a row" in lines[0]["msg"]


def test_a_caller_with_its_own_schedule_marks_its_retries_as_probes() -> None:
    breaker = Breaker("t-own", failures=1, cooldown=60.0, clock=Clock())
    breaker.probe()
    assert breaker.state == CLOSED, "nothing to probe while closed"
    breaker.failure()
    breaker.probe()  # long before the cooldown: the caller decides when
    assert breaker.state == HALF_OPEN
    breaker.success()
    assert breaker.state == CLOSED


def test_nonsense_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        Breaker("t-bad", failures=0)
    with pytest.raises(ValueError):
        Breaker("t-bad", cooldown=0)
