"""schemathesis drives every documented operation of a real server: no 5xx, and every response
conforms to the published OpenAPI document (status codes, content types, schemas)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import Server

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_the_api_conforms_to_its_spec(server: Server, tmp_path: Path) -> None:
    st = Path(sys.executable).parent / "st"
    done = subprocess.run(
        [
            str(st),
            "run",
            f"{server.base_url}/openapi.json",
            "-H",
            f"Authorization: Bearer {server.token('schemathesis', 'admin')}",
            "--max-examples",
            "15",
            "--checks",
            CHECKS,
            "--seed",
            "20261121",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    summary = done.stdout[-3000:]
    assert done.returncode == 0, summary
    assert "Tested: 21" in done.stdout, summary
