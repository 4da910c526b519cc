"""What a server does not use, it does not import: the Redis client costs ~130 ms of start-up
(bench/startup.py), and a server without ``ORDERFAST_REDIS_URL`` never needs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = """
import sys
from orderfast.app import create_app
from orderfast.config import Settings
app = create_app(Settings.from_env({"ORDERFAST_DATA_DIR": sys.argv[1], "ORDERFAST_JWT_SECRET": "k" * 40, **dict(
    a.split("=", 1) for a in sys.argv[2:])}))
print(",".join(sorted(m for m in ("redis", "redis.asyncio") if m in sys.modules)))
"""


def loaded(tmp_path: Path, *settings: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path), *settings], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_a_server_without_redis_never_imports_its_client(tmp_path: Path) -> None:
    assert loaded(tmp_path) == ""


def test_a_server_with_redis_does(tmp_path: Path) -> None:
    # The same probe sees the import when it happens (the test above could not pass by accident).
    assert "redis.asyncio" in loaded(tmp_path, "ORDERFAST_REDIS_URL=redis://127.0.0.1:1/0")
