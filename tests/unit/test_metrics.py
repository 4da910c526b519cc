"""The metrics registry: cheap counting in each process, correct sums across processes (dead ones
included for counters, excluded for gauges), and an exposition Prometheus's own parser reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
from prometheus_client.parser import text_string_to_metric_families

from orderfast.observability.metrics import DEAD, Registry, collect, exposition, scrape


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def registry(directory: Path | None = None) -> Registry:
    r = Registry()
    r.directory = directory
    return r


def test_counters_gauges_and_histograms_in_one_process() -> None:
    r = registry()
    requests = r.counter("t_requests", "requests", ("route",))
    requests.labels("/a").inc()
    requests.labels("/a").inc(2)
    requests.labels('/b"\n').inc()
    r.gauge("t_in_flight", "now").inc(3)
    latency = r.histogram("t_seconds", "latency", buckets=(0.01, 0.1))
    for value in (0.005, 0.01, 0.05, 3.0):
        latency.observe(value)
    got = samples(scrape(None, r))
    assert got[("t_requests_total", (("route", "/a"),))] == 3
    assert got[("t_requests_total", (("route", '/b"\n'),))] == 1, "label values are escaped"
    assert got[("t_in_flight", ())] == 3
    assert got[("t_seconds_bucket", (("le", "0.01"),))] == 2, "a bucket counts values up to its bound"
    assert got[("t_seconds_bucket", (("le", "0.1"),))] == 3
    assert got[("t_seconds_bucket", (("le", "+Inf"),))] == 4
    assert got[("t_seconds_count", ())] == 4
    assert abs(got[("t_seconds_sum", ())] - 3.065) < 1e-9


def test_processes_are_summed_and_the_dead_keep_their_counts_but_not_their_gauges(tmp_path: Path) -> None:
    # Another process that wrote its counts and exited.
    code = (
        "import sys; from pathlib import Path; from orderfast.observability.metrics import Registry\n"
        "r = Registry(); r.directory = Path(sys.argv[1])\n"
        "r.counter('t_orders', 'orders', ('currency',)).labels('USD').inc(5)\n"
        "r.gauge('t_rss', 'memory').set(100)\n"
        "r.histogram('t_seconds', 'latency', buckets=(1.0,)).observe(0.5)\n"
        "r.write()\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    # This process, alive.
    r = registry(tmp_path)
    r.counter("t_orders", "orders", ("currency",)).labels("USD").inc(2)
    r.gauge("t_rss", "memory").set(40)
    r.histogram("t_seconds", "latency", buckets=(1.0,)).observe(2.0)
    got = samples(scrape(tmp_path, r))
    assert got[("t_orders_total", (("currency", "USD"),))] == 7, "the dead process's counts stay"
    assert got[("t_rss", ())] == 40, "a gauge counts live processes only"
    assert got[("t_seconds_bucket", (("le", "1"),))] == 1 and got[("t_seconds_count", ())] == 2
    # The dead process's file was folded into the file of the dead, and stays counted.
    assert sorted(p.name for p in tmp_path.glob("*.json")) == sorted([f"{DEAD}.json", f"{os.getpid()}.json"])
    assert samples(exposition(collect(tmp_path)))[("t_orders_total", (("currency", "USD"),))] == 7


def test_a_gauge_can_be_read_when_written_and_merged_by_max(tmp_path: Path) -> None:
    r = registry(tmp_path)
    version = r.gauge("t_version", "catalog version", merge="max", read=lambda: [((), 12.0)])
    assert version.merge == "max"
    broken = r.gauge("t_broken", "a reading that fails", read=lambda: [((), 1 / 0)])
    assert broken.snapshot() == [], "a failing reading is left out"
    r.write()
    other = orjson.loads((tmp_path / f"{os.getpid()}.json").read_bytes())
    other["metrics"]["t_version"]["samples"] = [[[], 9.0]]
    # Pretend a second live process (this one, under another file name) saw version 9.
    (tmp_path / "copy.json").write_bytes(orjson.dumps(other))
    assert samples(exposition(collect(tmp_path)))[("t_version", ())] == 12.0
