"""The layers' import rules (docs/architecture.md), checked on the source: a newcomer's change that
reaches across a boundary fails here, not in review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "python" / "orderfast"
DRIVERS = {"asyncpg", "sqlite3", "redis", "granian", "starlette"}

# layer → what it may import from orderfast (besides itself); None: anything
ALLOWED: dict[str, set[str] | None] = {
    "domain": {"_core"},
    # observability (logging, metrics) is a leaf every layer may count and log through
    "services": {"_core", "domain", "store.base", "config", "observability", "resilience"},
    "store": {"_core", "domain", "config", "observability", "resilience"},
    "outbox": {"_core", "domain", "store", "config", "observability", "resilience"},
    # store.consistency: which reads may go to a replica, and the position a client reads after
    "http": {"_core", "domain", "services", "store.base", "store.consistency", "observability", "resilience"},
    # the gRPC ingress: the HTTP one's guard and problems, the same services
    "rpc": {"_core", "bootstrap", "config", "domain", "services", "store.base", "http", "observability", "resilience"},
    # the Temporal saga: a worker process built like the relay
    "saga": {"_core", "bootstrap", "config", "domain", "services", "outbox", "observability"},
    "observability": set(),
    # deadlines and circuit breakers: a leaf too, that counts and logs through observability
    "resilience": {"observability"},
    "config": {"_core"},
}
# drivers a layer may use directly
DRIVER_OK = {
    "store": {"asyncpg", "sqlite3"},
    "outbox": {"redis", "asyncpg"},  # the publisher; the example consumer is a downstream service
    "services": {"redis"},  # the shared rate limiter's Lua script
    "http": {"starlette"},
    "saga": {"redis"},  # the starter reads the order events' stream
}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules() -> list[tuple[str, Path]]:
    return [
        (p.relative_to(PACKAGE).parts[0], p)
        for p in sorted(PACKAGE.rglob("*.py"))
        if len(p.relative_to(PACKAGE).parts) > 1
    ]


@pytest.mark.parametrize(("layer", "path"), modules(), ids=lambda x: str(x).rsplit("orderfast/", 1)[-1])
def test_each_module_imports_only_what_its_layer_may(layer: str, path: Path) -> None:
    allowed = ALLOWED[layer]
    for name in imports(path):
        top = name.split(".")[0]
        if top in DRIVERS:
            assert top in DRIVER_OK.get(layer, set()), f"{path.name} ({layer}) uses the driver {name}"
        if top != "orderfast" or allowed is None:
            continue
        inner = name.removeprefix("orderfast").lstrip(".")
        if not inner or inner.startswith(layer):
            continue
        assert any(inner == a or inner.startswith(a + ".") for a in allowed), f"{path.name} ({layer}) imports {name}"
