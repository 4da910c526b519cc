"""The Grafana dashboard (k8s/monitoring/grafana-dashboard.json): its structure holds, every query
parses (promtool), and every metric, label and label value a query names is one the app exports —
checked against instruments.py and against the /metrics scrape of a real server (PostgreSQL store,
in-process relay on Redis) that has done what the panels count: orders, a replay, a reused key, an
out-of-stock refusal, a cancellation, a signed payment, a refund, a rate-limit refusal.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from orderfast.observability import instruments
from orderfast.observability.metrics import Counter, Gauge, Histogram
from tests.conftest import unavailable
from tests.e2e.conftest import Server, business_traffic, start_server

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "k8s" / "monitoring" / "grafana-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Labels Prometheus attaches at scrape time (the scrape configuration k8s/monitoring/alerts.yml expects).
TARGET_LABELS = {"job", "namespace", "pod", "instance"}
HISTOGRAM_PARTS = ("_bucket", "_sum", "_count")
STATUS_CLASS = re.compile(r"[1-5]xx")  # every status class the app can label (http/metrics.py)
GRAFANA_VARIABLE = re.compile(r"\$\{?(\w+)(?::\w+)?\}?")
SERIES = re.compile(r"\b(orderfast_\w+)\s*(\{[^}]*\})?")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
GROUPING = re.compile(r"\b(by|without|on|ignoring)\s*\(([^)]*)\)")
RATE = re.compile(r"\b(rate|irate|increase)\s*\(\s*(orderfast_\w+)")
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")

Panel = dict[str, Any]


# -- what the app declares (instruments.py) --------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One series name a query may use, and the metric it belongs to."""

    name: str
    metric: str
    kind: str
    labels: frozenset[str]


def declared() -> dict[str, Series]:
    """Every series name the app's metrics are exposed as (counters `_total`; histograms `_bucket`
    with `le`, `_sum`, `_count`; gauges bare), with the labels each carries."""
    out: dict[str, Series] = {}
    for metric in vars(instruments).values():
        if not isinstance(metric, Counter | Gauge | Histogram):
            continue
        labels = frozenset(metric.labelnames)
        if isinstance(metric, Counter):
            names = {f"{metric.name}_total": labels}
        elif isinstance(metric, Histogram):
            names = {
                f"{metric.name}_bucket": labels | {"le"},
                f"{metric.name}_sum": labels,
                f"{metric.name}_count": labels,
            }
        else:
            names = {metric.name: labels}
        for name, carried in names.items():
            out[name] = Series(name, metric.name, metric.kind, carried)
    return out


DECLARED = declared()


# -- the dashboard and its queries -------------------------------------------------------------


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict[str, Any]) -> Iterator[Panel]:
    """Every panel, rows' nested panels (collapsed rows) included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, target) for every query of every panel."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['id']} {panel['title']!r} query {target.get('refId')}", target


def balanced(text: str, open_at: int) -> str:
    """The parenthesised group that opens at ``open_at``."""
    assert text[open_at] == "("
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[open_at : i + 1]
    raise AssertionError(f"unbalanced parentheses: {text[open_at:]}")


def group_before(text: str, close_at: int) -> str:
    """The parenthesised group that closes at ``close_at`` (for ``sum(...) by (...)``)."""
    assert text[close_at] == ")"
    depth = 0
    for i in range(close_at, -1, -1):
        depth += {")": 1, "(": -1}.get(text[i], 0)
        if depth == 0:
            return text[i : close_at + 1]
    raise AssertionError(f"unbalanced parentheses: {text[: close_at + 1]}")


def series_in(expr: str) -> list[str]:
    return [m.group(1) for m in SERIES.finditer(expr)]


def matchers(expr: str) -> Iterator[tuple[str, str, str, str]]:
    """(series, label, operator, value) for every label matcher on an orderfast series."""
    for m in SERIES.finditer(expr):
        for label, op, value in MATCHER.findall(m.group(2) or ""):
            yield m.group(1), label, op, value


@dataclass
class Problems:
    found: list[str] = field(default_factory=list)

    def check(self, ok: bool, where: str, what: str) -> None:
        if not ok:
            self.found.append(f"{where}: {what}")

    def assert_none(self) -> None:
        assert not self.found, "\n".join(self.found)


def allowed_labels(name: str) -> frozenset[str]:
    return DECLARED[name].labels | TARGET_LABELS


def check_query(where: str, expr: str, legend: str, problems: Problems) -> None:
    """What instruments.py alone can tell of one query: its series exist, its labels exist on them,
    rates are taken of counters only, quantiles of buckets grouped by `le`."""
    names = series_in(expr)
    problems.check(bool(names), where, "names no orderfast_ metric")
    for name in names:
        problems.check(name in DECLARED, where, f"{name} is not a series the app exports")
    if not all(name in DECLARED for name in names):
        return
    for name, label, _, _ in matchers(expr):
        problems.check(label in allowed_labels(name), where, f"{name} has no label {label!r}")
    for m in GROUPING.finditer(expr):
        keyword, labels = m.group(1), [x.strip() for x in m.group(2).split(",") if x.strip()]
        if keyword in ("on", "ignoring"):
            scope = expr  # both operands of the binary operation carry the label
        else:
            after = m.end()
            while after < len(expr) and expr[after].isspace():
                after += 1
            if after < len(expr) and expr[after] == "(":
                scope = balanced(expr, after)
            else:  # `sum(...) by (...)`
                before = expr[: m.start()].rstrip()
                scope = group_before(expr, len(before) - 1)
        for name in series_in(scope):
            for label in labels:
                problems.check(label in allowed_labels(name), where, f"{keyword} ({label}): {name} has no such label")
    for m in RATE.finditer(expr):
        name = m.group(2)
        problems.check(
            DECLARED[name].kind == "counter" or name.endswith(HISTOGRAM_PARTS),
            where,
            f"{m.group(1)}() of {name}, a {DECLARED[name].kind}: only counters and histogram parts",
        )
    for m in re.finditer(r"\bhistogram_quantile\s*\(", expr):
        scope = balanced(expr, m.end() - 1)
        problems.check(
            all(n.endswith("_bucket") for n in series_in(scope)), where, "histogram_quantile() of a non-bucket"
        )
        by = re.search(r"\bby\s*\(([^)]*)\)", scope)
        problems.check(
            by is None or "le" in [x.strip() for x in by.group(1).split(",")], where, "quantile grouping without le"
        )
    carried = set().union(*(allowed_labels(n) for n in names))
    for label in LEGEND_LABEL.findall(legend):
        problems.check(label in carried, where, f"legend names {{{{{label}}}}}, a label none of its series has")


# -- structure -------------------------------------------------------------------------------


def test_the_dashboard_is_a_grafana_dashboard_on_a_prometheus_datasource_variable() -> None:
    dashboard = load()
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name, variable in variables.items():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, name
    used = {
        m.group(1)
        for _, target in queries(dashboard)
        for m in GRAFANA_VARIABLE.finditer(target["expr"])
        if not m.group(1).startswith("__")
    }
    assert used <= set(variables), f"queries use undefined variables: {used - set(variables)}"
    assert {"job", "namespace"} <= used, "every query filters on the job and namespace variables"


def test_every_panel_has_a_title_a_datasource_queries_and_a_place_of_its_own() -> None:
    dashboard = load()
    problems = Problems()
    ids: list[int] = []
    cells: dict[tuple[int, int], str] = {}
    for panel in panels(dashboard):
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        ids.append(panel.get("id", -1))
        problems.check(bool(panel.get("title", "").strip()), where, "no title")
        pos = panel.get("gridPos", {})
        problems.check(
            all(isinstance(pos.get(k), int) for k in "hwxy") and pos["x"] + pos["w"] <= 24 and pos["h"] > 0,
            where,
            f"gridPos {pos}",
        )
        if problems.found and problems.found[-1].startswith(where):
            continue
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                problems.check((x, y) not in cells, where, f"overlaps {cells.get((x, y))}")
                cells[(x, y)] = where
        if panel["type"] == "row":
            continue
        problems.check(panel.get("datasource") == DATASOURCE, where, f"datasource {panel.get('datasource')}")
        targets = panel.get("targets", [])
        problems.check(bool(targets), where, "no query")
        problems.check(len({t.get("refId") for t in targets}) == len(targets), where, "refIds repeat")
        for target in targets:
            problems.check(bool(target.get("expr", "").strip()), where, f"query {target.get('refId')} has no expr")
            problems.check(target.get("datasource", DATASOURCE) == DATASOURCE, where, "a query on another datasource")
    problems.check(len(ids) == len(set(ids)), "dashboard", f"panel ids repeat: {sorted(ids)}")
    problems.assert_none()


def test_every_query_names_declared_metrics_with_their_labels() -> None:
    problems = Problems()
    for where, target in queries(load()):
        check_query(where, target["expr"], target.get("legendFormat", ""), problems)
    problems.assert_none()


def test_every_metric_the_app_exports_is_on_the_dashboard() -> None:
    shown = {DECLARED[n].metric for _, t in queries(load()) for n in series_in(t["expr"]) if n in DECLARED}
    assert shown == {s.metric for s in DECLARED.values()}, f"not on the dashboard: {set(DECLARED) - shown}"


def test_every_query_parses(tmp_path: Path) -> None:
    """promtool reads each query as a recording rule: syntax and types (a rate() of an instant
    vector, a missing argument) are Prometheus's own verdict. Grafana's variables are given values
    first; a failure names the rule `dashboard:panel<id>_<refId>`."""
    promtool = shutil.which("promtool")
    if promtool is None:
        unavailable("promtool (Debian's prometheus package)")
    assert promtool is not None

    def concrete(expr: str) -> str:
        return GRAFANA_VARIABLE.sub(lambda m: "5m" if m.group(1).startswith("__") else ".*", expr)

    rules = [
        {"record": f"dashboard:panel{panel['id']}_{target['refId']}", "expr": concrete(target["expr"])}
        for panel in panels(load())
        for target in panel.get("targets", [])
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


# -- against a running server -------------------------------------------------------------------


@dataclass
class Scraped:
    """One scrape: each series name with the label values seen on it, and each family's type."""

    values: dict[str, dict[str, set[str]]]
    types: dict[str, str]


def scrape(url: str) -> Scraped:
    r = httpx.get(url, timeout=5)
    assert r.status_code == 200, r.text
    values: dict[str, dict[str, set[str]]] = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(r.text):
        types[family.name] = family.type
        for sample in family.samples:
            seen = values.setdefault(sample.name, {})
            for label, value in sample.labels.items():
                seen.setdefault(label, set()).add(value)
    return Scraped(values, types)


GRPC_SERIES = {
    "orderfast_grpc_requests_total",
    "orderfast_grpc_request_duration_seconds_bucket",
    "orderfast_grpc_request_duration_seconds_count",
    "orderfast_grpc_request_duration_seconds_sum",
}


def family_of(name: str) -> str:
    """The family a series belongs to, as the scrape names it: a histogram's without `_bucket`,
    `_sum`, `_count`; a counter's without `_total` (as the text format's TYPE line does)."""
    return DECLARED[name].metric


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, pg_database_factory: Callable[[], str], redis_url: str
) -> Iterator[Server]:
    policies = tmp_path_factory.mktemp("dashboard-limits") / "limits.toml"
    policies.write_text(
        '[policies.dashboard]\nlimit = "1/3600"\nburst = 1\nkey = "user"\nroutes = ["GET /v1/orders/*"]\n'
    )
    prefix = f"orderfast-dashboard-test-{uuid.uuid4().hex[:8]}:"
    env = {
        "ORDERFAST_DRAIN_DELAY": "0",
        "ORDERFAST_REDIS_URL": redis_url,  # the relay runs in each worker: its metrics exist
        "ORDERFAST_RELAY_IN_PROCESS": "true",
        "ORDERFAST_STREAM_PREFIX": prefix,
        "ORDERFAST_RATELIMIT_FILE": str(policies),
    }
    srv = start_server(tmp_path_factory, "postgres", pg_database_factory, env)
    try:
        yield srv
    finally:
        srv.stop()
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()


def drive(server: Server) -> None:
    """What the panels count, once each (as tests/e2e/test_metrics.py does), and a 429."""
    business_traffic(server, "dashboard")
    with server.client(f"dashboard-{uuid.uuid4().hex[:8]}") as c:
        # The `dashboard` policy allows one lookup an hour: the next is refused (two workers, one
        # quota on Redis; a few tries in case a worker's own bucket is the one asked).
        statuses = [c.get(f"/v1/orders/{uuid.uuid4()}").status_code for _ in range(4)]
        assert 429 in statuses, statuses


def grpc_scrape(server: Server, workdir: Path) -> Scraped:
    """The /metrics of an `orderfast serve-grpc` beside the server (its own metrics port) after a
    call that succeeds and one refused."""
    import grpc

    from orderfast.rpc.v1 import orders_pb2 as pb
    from orderfast.rpc.v1 import orders_pb2_grpc
    from tests.e2e.conftest import free_port
    from tests.e2e.test_grpc import GrpcServer

    metrics_port = free_port()
    rpc = GrpcServer({**server.env, "ORDERFAST_METRICS_PORT": str(metrics_port)}, workdir)
    try:
        with grpc.insecure_channel(rpc.address) as channel:
            rpc.wait_serving(channel)
            stub = orders_pb2_grpc.OrdersStub(channel)
            token = (("authorization", f"Bearer {server.token('dashboard-grpc')}"),)
            stub.Quote(pb.QuoteRequest(currency="USD", items=[pb.Item(sku="SKU-1", quantity=1)]), metadata=token)
            with pytest.raises(grpc.RpcError):
                stub.ListOrders(pb.ListOrdersRequest())
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        deadline = time.monotonic() + 20
        got = scrape(url)
        while "UNAUTHENTICATED" not in got.values.get("orderfast_grpc_requests_total", {}).get("code", set()):
            assert time.monotonic() < deadline, "serve-grpc's calls never reached its scrape"
            time.sleep(0.2)
            got = scrape(url)
        return got
    finally:
        rpc.stop()


def test_every_series_label_and_value_a_query_names_is_in_a_running_servers_scrape(
    server: Server, tmp_path: Path
) -> None:
    dashboard = load()
    wanted = {n for _, t in queries(dashboard) for n in series_in(t["expr"])}
    drive(server)
    url = f"{server.base_url}/metrics"
    # Workers write their counts every second, the relay publishes within one: poll, bounded.
    deadline = time.monotonic() + 20
    got = scrape(url)
    while not wanted - GRPC_SERIES <= set(got.values) and time.monotonic() < deadline:
        time.sleep(0.2)
        got = scrape(url)
    # The gRPC panels' series come from serve-grpc's own scrape.
    rpc = grpc_scrape(server, tmp_path)
    for name, labels in rpc.values.items():
        if name in GRPC_SERIES:
            got.values[name] = labels
    got.types.update({k: v for k, v in rpc.types.items() if k.startswith("orderfast_grpc_")})

    problems = Problems()
    for name in sorted(wanted):
        problems.check(name in got.values, "scrape", f"no sample of {name}")
        if name in DECLARED:
            family = family_of(name)
            problems.check(
                got.types.get(family) == DECLARED[name].kind,
                "scrape",
                f"family {family} is a {got.types.get(family)}, declared a {DECLARED[name].kind}",
            )
    for where, target in queries(dashboard):
        expr = target["expr"]
        for name, label, op, value in matchers(expr):
            if label in TARGET_LABELS or name not in got.values:
                continue
            seen = got.values[name]
            problems.check(label in seen, where, f"{name} is scraped without a {label!r} label")
            if op == "=" and label in seen:
                possible = label == "status" and STATUS_CLASS.fullmatch(value)
                problems.check(
                    value in seen[label] or bool(possible),
                    where,
                    f'{name}{{{label}="{value}"}}: the scrape has only {sorted(seen[label])}',
                )
        for m in GROUPING.finditer(expr):
            if m.group(1) != "by":
                continue
            for label in (x.strip() for x in m.group(2).split(",")):
                if label and label not in TARGET_LABELS:
                    problems.check(
                        any(label in got.values.get(n, {}) for n in series_in(expr)),
                        where,
                        f"by ({label}): no scraped series of the query has it",
                    )
    problems.assert_none()
