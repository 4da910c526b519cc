"""What a server does not use, it does not import: the Redis client costs ~130 ms of start-up
(bench/startup.py) and a server without ``ORDERFAST_REDIS_URL`` never needs it; the PostgreSQL
driver ~45 ms, which a server on SQLite never needs; the OpenAPI contract ~20 ms (to import and
build), which waits for the first request for it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = """
import sys
docs = "--docs" in sys.argv
sys.argv = [a for a in sys.argv if a != "--docs"]
from orderfast.app import create_app
from orderfast.config import Settings
app = create_app(Settings.from_env({"ORDERFAST_DATA_DIR": sys.argv[1], "ORDERFAST_JWT_SECRET": "k" * 40, **dict(
    a.split("=", 1) for a in sys.argv[2:])}))
if docs:
    from starlette.testclient import TestClient
    assert TestClient(app).get("/openapi.json").status_code == 200
print(",".join(sorted(m for m in ("redis", "redis.asyncio", "asyncpg", "orderfast.http.openapi") if m in sys.modules)))
"""


def loaded(tmp_path: Path, *settings: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path), *settings], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_a_server_on_sqlite_without_redis_imports_neither_client(tmp_path: Path) -> None:
    assert loaded(tmp_path) == ""


def test_a_server_with_redis_and_postgresql_imports_both(tmp_path: Path) -> None:
    # The same probe sees the imports when they happen (the test above could not pass by accident).
    found = loaded(
        tmp_path, "ORDERFAST_REDIS_URL=redis://127.0.0.1:1/0", "ORDERFAST_DATABASE_URL=postgresql://x@127.0.0.1:1/x"
    )
    assert "redis.asyncio" in found and "asyncpg" in found


def test_the_contract_is_imported_by_its_first_request_not_at_start(tmp_path: Path) -> None:
    assert "orderfast.http.openapi" not in loaded(tmp_path)
    assert loaded(tmp_path, "--docs") == "orderfast.http.openapi"
