"""Prometheus metrics that are cheap on the hot path and correct across Granian's worker processes.

Each process counts in plain Python objects (an increment is an attribute add: tens of
nanoseconds, no lock — one event loop per process) and writes a snapshot of them to a file of its
own in a directory the server shares with its workers, every second and before a scrape. A scrape
(``/metrics`` on any worker, or the main process's metrics port) merges every file: counters and
histograms are summed over all processes that ever wrote — a dead worker's counts stay, so sums
never go back, and are folded into one file of the dead — while gauges count only live processes.

The exposition is the Prometheus text format 0.0.4.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson

M = TypeVar("M", bound="_Metric")
log = logging.getLogger("orderfast.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Latency buckets that resolve 1 to 50 ms well (seconds).
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05,
    0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
DEAD = "dead"  # the file that holds the counts of processes that have exited


class _Metric:
    kind = ""

    def __init__(self, name: str, doc: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.doc = doc
        self.labelnames = tuple(labels)


class Counter(_Metric):
    """A monotonic count per label set; ``labels(...)`` once, then ``inc`` on what it returns."""

    kind = "counter"

    def __init__(self, name: str, doc: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, doc, labels)
        self._children: dict[tuple[str, ...], CounterChild] = {}

    def labels(self, *values: str) -> CounterChild:
        child = self._children.get(values)
        if child is None:
            assert len(values) == len(self.labelnames), (self.name, values)
            child = self._children[values] = CounterChild()
        return child

    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def snapshot(self) -> list[tuple[tuple[str, ...], Any]]:
        return [(k, c.value) for k, c in self._children.items()]


class CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Gauge(_Metric):
    """A value per label set, summed over live processes. Set it, or give a function that computes
    it when a snapshot is taken (for what is cheaper to read than to track)."""

    kind = "gauge"

    def __init__(
        self,
        name: str,
        doc: str,
        labels: Sequence[str] = (),
        *,
        read: Callable[[], Iterable[tuple[tuple[str, ...], float]]] | None = None,
        merge: str = "sum",
    ) -> None:
        super().__init__(name, doc, labels)
        self._values: dict[tuple[str, ...], float] = {}
        self.read = read
        self.merge = merge  # "sum" over processes, or "max" (e.g. an age every process sees alike)

    def set(self, value: float, *labels: str) -> None:
        self._values[labels] = value

    def inc(self, amount: float = 1.0, *labels: str) -> None:
        self._values[labels] = self._values.get(labels, 0.0) + amount

    def dec(self, amount: float = 1.0, *labels: str) -> None:
        self._values[labels] = self._values.get(labels, 0.0) - amount

    def snapshot(self) -> list[tuple[tuple[str, ...], Any]]:
        if self.read is not None:
            with contextlib.suppress(Exception):  # a reading that fails is left out, never fatal
                for labels, value in self.read():
                    self._values[labels] = value
        return list(self._values.items())


class Histogram(_Metric):
    kind = "histogram"

    def __init__(
        self, name: str, doc: str, labels: Sequence[str] = (), buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> None:
        super().__init__(name, doc, labels)
        self.buckets = tuple(sorted(buckets))
        self._children: dict[tuple[str, ...], HistogramChild] = {}

    def labels(self, *values: str) -> HistogramChild:
        child = self._children.get(values)
        if child is None:
            assert len(values) == len(self.labelnames), (self.name, values)
            child = self._children[values] = HistogramChild(self.buckets)
        return child

    def observe(self, value: float) -> None:
        self.labels().observe(value)

    def snapshot(self) -> list[tuple[tuple[str, ...], Any]]:
        return [(k, [c.counts, c.sum]) for k, c in self._children.items()]


class HistogramChild:
    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket (not cumulative); the last is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self._bounds, value)] += 1
        self.sum += value


class Registry:
    """The metrics of this process, and where it writes them."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self.directory: Path | None = None

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return self._add(Counter(name, doc, labels))

    def gauge(self, name: str, doc: str, labels: Sequence[str] = (), **kw: Any) -> Gauge:
        return self._add(Gauge(name, doc, labels, **kw))

    def histogram(
        self, name: str, doc: str, labels: Sequence[str] = (), buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> Histogram:
        return self._add(Histogram(name, doc, labels, buckets))

    def _add(self, metric: M) -> M:
        existing = self._metrics.get(metric.name)
        if existing is not None:  # one definition per name; a second registration gets the first
            assert type(existing) is type(metric) and existing.labelnames == metric.labelnames, metric.name
            return existing
        self._metrics[metric.name] = metric
        return metric

    def snapshot(self) -> dict[str, Any]:
        return {
            name: {
                "kind": m.kind,
                "doc": m.doc,
                "labels": list(m.labelnames),
                "buckets": list(getattr(m, "buckets", ())),
                "merge": getattr(m, "merge", "sum"),
                "samples": [[list(k), v] for k, v in m.snapshot()],  # type: ignore[attr-defined]
            }
            for name, m in self._metrics.items()
        }

    def write(self) -> None:
        """This process's snapshot into its file (written aside, then renamed: readers never see
        half of one)."""
        if self.directory is None:
            return
        path = self.directory / f"{os.getpid()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps({"pid": os.getpid(), "at": time.time(), "metrics": self.snapshot()}))
        tmp.replace(path)

    async def write_forever(self, interval: float = 1.0) -> None:
        """This process's counts into its file, every ``interval`` seconds (a scrape served by
        another process reads them there)."""
        while True:
            await asyncio.sleep(interval)
            try:
                self.write()
            except OSError as e:
                log.warning("cannot write metrics to %s: %s", self.directory, e.strerror)


REGISTRY = Registry()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def collect(directory: Path) -> dict[str, Any]:
    """Every process's snapshot in ``directory``, merged; the files of processes that have exited
    are folded into the file of the dead (their counts only: their gauges are gone with them)."""
    merged: dict[str, Any] = {}
    dead_path = directory / f"{DEAD}.json"
    dead = orjson.loads(dead_path.read_bytes()) if dead_path.exists() else {"metrics": {}}
    newly_dead: list[Path] = []
    live: list[dict[str, Any]] = []
    for path in directory.glob("*.json"):
        if path.name == dead_path.name:
            continue
        try:
            doc = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue  # vanished or being replaced: the next scrape has it
        if _alive(int(doc["pid"])):
            live.append(doc)
        else:
            newly_dead.append(path)
            _add_into(dead["metrics"], doc["metrics"], gauges=False)
    if newly_dead:
        tmp = dead_path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(dead))
        tmp.replace(dead_path)
        for path in newly_dead:
            path.unlink(missing_ok=True)
    _add_into(merged, dead["metrics"], gauges=False)
    for doc in live:
        _add_into(merged, doc["metrics"], gauges=True)
    return merged


def _add_into(into: dict[str, Any], metrics: dict[str, Any], *, gauges: bool) -> None:
    for name, m in metrics.items():
        if m["kind"] == "gauge" and not gauges:
            continue
        target = into.setdefault(name, {**m, "samples": []})
        by_labels = {tuple(k): v for k, v in target["samples"]}
        for labels, value in m["samples"]:
            key = tuple(labels)
            old = by_labels.get(key)
            if old is None:
                by_labels[key] = value
            elif m["kind"] == "histogram":
                by_labels[key] = [[a + b for a, b in zip(old[0], value[0], strict=True)], old[1] + value[1]]
            elif m.get("merge") == "max":
                by_labels[key] = max(old, value)
            else:
                by_labels[key] = old + value
        target["samples"] = [[list(k), v] for k, v in by_labels.items()]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    pairs = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if value != int(value) else str(int(value))


def exposition(merged: dict[str, Any]) -> bytes:
    lines: list[str] = []
    for name in sorted(merged):
        m = merged[name]
        lines.append(f"# HELP {name} {m['doc']}")
        lines.append(f"# TYPE {name} {m['kind']}")
        for labels, value in sorted(m["samples"], key=lambda s: s[0]):
            if m["kind"] == "histogram":
                counts, total = value
                cumulative = 0
                for bound, count in zip([*m["buckets"], math.inf], counts, strict=True):
                    cumulative += count
                    le = 'le="' + _number(bound) + '"'
                    lines.append(f"{name}_bucket{_labels(m['labels'], labels, le)} {cumulative}")
                lines.append(f"{name}_sum{_labels(m['labels'], labels)} {_number(total)}")
                lines.append(f"{name}_count{_labels(m['labels'], labels)} {cumulative}")
            else:
                suffix = "_total" if m["kind"] == "counter" and not name.endswith("_total") else ""
                lines.append(f"{name}{suffix}{_labels(m['labels'], labels)} {_number(value)}")
    return ("\n".join(lines) + "\n").encode()


def scrape(directory: Path | None, registry: Registry = REGISTRY) -> bytes:
    """The exposition of every process sharing ``directory`` (this one written first, so its
    counts are current); of this process alone without a directory."""
    if directory is None:
        return exposition(_merge_one(registry.snapshot()))
    registry.write()
    return exposition(collect(directory))


def _merge_one(snapshot: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    _add_into(merged, snapshot, gauges=True)
    return merged
