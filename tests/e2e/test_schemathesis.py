"""schemathesis drives every documented operation of a real server: no 5xx, and every response
conforms to the published OpenAPI document (status codes, content types, schemas)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import Server

# Every check, positive_data_acceptance included: what a schema-valid request may still be refused
# for (rules JSON Schema cannot state) is listed, operation by operation, in this file.
CONFIG = Path(__file__).with_name("schemathesis.toml")
ROOT = Path(__file__).resolve().parents[2]


def test_the_api_conforms_to_its_spec(server: Server, tmp_path: Path) -> None:
    st = Path(sys.executable).parent / "st"
    # Both credentials, valid and admin: whichever scheme schemathesis exercises gets past the guard
    # (left unset, it fills X-API-Key with junk, which the server — rightly — refuses).
    api_key = server.cli("apikey", "create", "--role", "admin", "--name", "schemathesis").split()[0]
    done = subprocess.run(
        [
            str(st),
            "--config-file",
            str(CONFIG),
            "run",
            f"{server.base_url}/openapi.json",
            "-H",
            f"Authorization: Bearer {server.token('schemathesis', 'admin')}",
            "-H",
            f"X-API-Key: {api_key}",
            "--max-examples",
            "15",
            "--checks",
            "all",
            "--seed",
            "20261121",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
        # The stricter positive-data check, with the list of rules the spec cannot state.
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks", "PYTHONPATH": str(ROOT)},
    )
    (tmp_path / "schemathesis.txt").write_text(done.stdout)  # the whole report, kept with the test's files
    summary = done.stdout[-3000:]
    assert done.returncode == 0, summary
    # Only the webhook (schemathesis cannot sign a body) may see nothing but 401s.
    refused = re.search(r"401 Unauthorized \(\d+ operations?\):\n((?:  - .*\n)+)", done.stdout)
    assert refused is None or refused[1].split() == ["-", "POST", "/v1/payments/webhook"], refused and refused[1]
    selected = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", done.stdout)
    assert selected is not None, summary
    # Every operation but the one schemathesis.toml leaves out (API-key revocation).
    assert int(selected[1]) == int(selected[2]) - 1 == int(selected[3]) >= 26, "every operation was exercised"
