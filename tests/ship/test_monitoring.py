"""The alert rules (k8s/monitoring/alerts.yml): `promtool check rules` and `promtool test rules`
(k8s/monitoring/alerts.test.yml) pass; every alert has a case in those tests where it fires and one
where it does not; every alert is labelled and annotated, and its runbook link lands on its own
section of docs/runbooks/alerts.md; every metric and label the rules and their tests name is one the
app declares (python/orderfast/observability/instruments.py) or one Prometheus and kube-state-metrics
provide.

promtool is Debian's `prometheus` package: without it this skips locally and fails under CI=true.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orderfast.observability import instruments  # noqa: F401  (declares every metric in REGISTRY)
from orderfast.observability.metrics import REGISTRY
from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "k8s" / "monitoring" / "alerts.yml"
RULE_TESTS = ROOT / "k8s" / "monitoring" / "alerts.test.yml"
RUNBOOK = ROOT / "docs" / "runbooks" / "alerts.md"
RUNBOOK_URL = "https://github.com/orderfast/orderfast/blob/main/docs/runbooks/alerts.md"
SEVERITIES = {"page", "ticket"}
ANNOTATIONS = ("summary", "description", "runbook_url")
# Labels Prometheus attaches to every scraped series (what the rules expect of the scrape config).
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod"})
# Series the rules read that the app does not export, with the labels they may match on.
EXTERNAL = {
    "up": TARGET_LABELS,
    "kube_pod_status_ready": TARGET_LABELS | {"condition", "uid"},
}

Doc = dict[str, Any]


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        unavailable("promtool (Debian's prometheus package)")
    assert path is not None
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, check=False, cwd=ROOT, timeout=600)


@pytest.fixture(scope="module")
def rules() -> list[Doc]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def alerts(rules: list[Doc]) -> list[Doc]:
    return [rule for rule in rules if "alert" in rule]


@pytest.fixture(scope="module")
def unit_tests() -> Doc:
    doc: Doc = yaml.safe_load(RULE_TESTS.read_text())
    return doc


# -- promtool ---------------------------------------------------------------------------------------


def test_promtool_check_rules() -> None:
    done = run_promtool("check", "rules", str(RULES))
    assert done.returncode == 0, f"promtool check rules:\n{done.stdout}{done.stderr}"


def test_promtool_test_rules() -> None:
    done = run_promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, f"promtool test rules:\n{done.stdout}{done.stderr}"


def test_every_alert_fires_in_one_case_and_stays_quiet_in_another(alerts: list[Doc], unit_tests: Doc) -> None:
    """promtool passes a case that expects silence from an alert that does not exist: so every case
    must name a real alert, and every alert must be seen both firing and quiet."""
    names = {a["alert"] for a in alerts}
    fires: set[str] = set()
    quiet: set[str] = set()
    for group in unit_tests["tests"]:
        for case in group.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert (fires | quiet) - names == set(), "cases for alerts that alerts.yml does not define"
    assert names - fires == set(), "alerts no case sees firing"
    assert names - quiet == set(), "alerts no case sees quiet"


# -- labels, annotations, runbook -------------------------------------------------------------------


def test_every_alert_has_a_severity_and_its_annotations(alerts: list[Doc]) -> None:
    names = [a["alert"] for a in alerts]
    assert len(names) == len(set(names)), "alert names repeat"
    for alert in alerts:
        name = alert["alert"]
        assert alert.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity page or ticket"
        for key in ANNOTATIONS:
            assert str(alert.get("annotations", {}).get(key, "")).strip(), f"{name}: no {key}"


def test_every_runbook_url_is_its_own_section_of_the_runbook(alerts: list[Doc]) -> None:
    sections = anchors(RUNBOOK)
    for alert in alerts:
        name = alert["alert"]
        url = alert["annotations"]["runbook_url"]
        base, _, anchor = url.partition("#")
        assert base == RUNBOOK_URL, f"{name}: runbook_url {url} is not {RUNBOOK_URL}#…"
        assert anchor == name.lower(), f"{name}: runbook_url should point at its own section #{name.lower()}"
        assert anchor in sections, f"{name}: docs/runbooks/alerts.md has no section #{anchor}"
    documented = {h for h in headings(RUNBOOK) if h.startswith("Orderfast")}
    assert documented == {a["alert"] for a in alerts}, "runbook sections without an alert, or the reverse"


def test_the_runbooks_links_land() -> None:
    """Its links to the other runbooks and the repository point at files and sections that exist."""
    text = strip_code(RUNBOOK.read_text())
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue
        path, _, anchor = link.partition("#")
        target = (RUNBOOK.parent / path).resolve() if path else RUNBOOK
        assert target.exists(), f"docs/runbooks/alerts.md links to {link}: no such file"
        if anchor:
            assert target.suffix == ".md", link
            assert anchor in anchors(target), f"docs/runbooks/alerts.md links to {link}: no such section"


# -- metric names -----------------------------------------------------------------------------------


def exposed() -> dict[str, frozenset[str]]:
    """Every series name the app exports, as /metrics names it, with its labels: a counter's name
    ends in `_total`; a histogram's series are `_bucket` (with `le`), `_sum` and `_count`."""
    out: dict[str, frozenset[str]] = {}
    for name, metric in REGISTRY.snapshot().items():
        labels = frozenset(metric["labels"])
        if metric["kind"] == "counter":
            out[name if name.endswith("_total") else f"{name}_total"] = labels
        elif metric["kind"] == "histogram":
            out[f"{name}_bucket"] = labels | {"le"}
            out[f"{name}_sum"] = labels
            out[f"{name}_count"] = labels
        else:
            out[name] = labels
    return out


def test_the_rules_and_their_tests_name_only_metrics_that_exist(rules: list[Doc], unit_tests: Doc) -> None:
    app = exposed()
    recorded = {r["record"] for r in rules if "record" in r}
    used: list[tuple[str, str, frozenset[str]]] = []
    for rule in rules:
        where = rule.get("alert") or rule["record"]
        used += [(where, name, labels) for name, labels in selectors(rule["expr"])]
    for group in unit_tests["tests"]:
        for series in group.get("input_series", []):
            name, labels = next(selectors(series["series"]))
            used.append((f"input series of {group['name']!r}", name, labels - TARGET_LABELS))

    assert {"orderfast_http_requests_total", "orderfast_outbox_dead"} <= {name for _, name, _ in used}
    for where, name, labels in used:
        if ":" in name:
            assert name in recorded, f"{where}: {name} is recorded by no rule"
        elif name.startswith("orderfast_"):
            assert name in app, f"{where}: {name} is not declared in observability/instruments.py"
            unknown = labels - app[name] - TARGET_LABELS
            assert not unknown, f"{where}: {name} has no label {sorted(unknown)}"
        else:
            assert name in EXTERNAL, f"{where}: {name} is neither the app's nor a known external series"
            assert labels <= EXTERNAL[name], f"{where}: {name} has no label {sorted(labels - EXTERNAL[name])}"


# -- helpers: a PromQL tokenizer good enough to find series selectors, Markdown headings ----------------

TOKEN = re.compile(
    r"""(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
      | (?P<range>\[[^\]]*\])
      | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
      | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^=<>(){},])
      | (?P<space>\s+)""",
    re.VERBOSE,
)
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = GROUPING | {
    "and", "or", "unless", "bool", "offset", "inf", "nan",
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
    "quantile",
}  # fmt: skip


def tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        assert m is not None, f"cannot read PromQL at {expr[pos : pos + 20]!r}"
        assert m.lastgroup is not None
        if m.lastgroup != "space":
            out.append((m.lastgroup, m.group()))
        pos = m.end()
    return out


def selectors(expr: str) -> Iterator[tuple[str, frozenset[str]]]:
    """Each series selector of an expression: its metric name and the label names it matches on."""
    toks = tokens(expr)
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        following = toks[i + 1][1] if i + 1 < len(toks) else ""
        if kind == "ident" and text.lower() in GROUPING and following == "(":
            i = toks.index(("op", ")"), i)  # a grouping's label list: not series
        elif kind == "ident" and following != "(" and text.lower() not in KEYWORDS:
            labels: set[str] = set()
            if following == "{":
                i += 2
                while toks[i] != ("op", "}"):
                    if toks[i][0] == "ident":
                        labels.add(toks[i][1])
                    i += 1
            yield text, frozenset(labels)
        i += 1


def strip_code(markdown: str) -> str:
    """The Markdown without its fenced code blocks (whose `# comments` are not headings)."""
    return re.sub(r"^```.*?^```[^\n]*$", "", markdown, flags=re.MULTILINE | re.DOTALL)


def headings(path: Path) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"^#{1,6}\s+(.+)$", strip_code(path.read_text()), re.MULTILINE)]


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a document's headings: lower case, punctuation dropped, spaces → -."""
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings(path)}
