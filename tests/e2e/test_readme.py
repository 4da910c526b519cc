"""The README, run as a newcomer runs it: ``make run`` in a checkout, then every shell snippet that
talks to the server and every HTTP example, in the order the README gives them, against that server.

Examples come from the README itself, so they cannot drift from it:

- a ```` ```sh ```` block that calls the server (``127.0.0.1:8000``) runs in one bash session (so
  ``TOKEN=…`` carries over) with ``set -euo pipefail``; every response status ``curl -i`` prints must
  be below 400;
- a ```` ```http ```` block is a request (``METHOD /path``, headers, a blank line, the body as bytes)
  and must be followed by a ```` ```http ```` block with its response (``HTTP/1.1 <status>``, the headers
  that matter, the JSON body). The status must be equal; each documented header present with its value;
  the body equal as JSON — the same keys everywhere — but for what differs per run: a documented UUID
  stands for the actual one (and stands for it in every later example), a documented timestamp for any
  timestamp, and a string ending in ``…`` for any string starting with what comes before it.
  ``$TOKEN`` (customer ``u-1``) and ``$ADMIN_TOKEN`` (``admin-1``, role admin) are the tokens the
  README tells the reader to mint; ``Orderfast-Signature`` is computed with the demo's webhook secret.

Then the commands ``make run`` printed (its hint) run too.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.conftest import STARTUP_TIMEOUT, free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOC_BASE = "http://127.0.0.1:8000"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


@dataclass
class Example:
    line: int
    kind: str  # "sh" or "http"
    text: str
    response: str = ""


def examples(readme: str) -> list[Example]:
    """The README's runnable blocks, in order: shell snippets that call the server, and HTTP
    requests each with its documented response."""
    found: list[Example] = []
    for m in BLOCK.finditer(readme):
        lang, text = m.group(1), m.group(2)
        line = readme.count("\n", 0, m.start()) + 1
        if lang == "sh" and DOC_BASE in text:
            found.append(Example(line, "sh", text))
        elif lang == "http":
            if text.startswith("HTTP/1.1 "):
                assert found and found[-1].kind == "http" and not found[-1].response, (
                    f"README.md:{line}: a response without its request"
                )
                found[-1].response = text
            else:
                assert re.match(r"(GET|POST|PUT|DELETE) /", text), f"README.md:{line}: not an HTTP request"
                found.append(Example(line, "http", text))
    for example in found:
        assert example.kind == "sh" or example.response, f"README.md:{example.line}: a request without its response"
    return found


def split_message(text: str) -> tuple[str, dict[str, str], str]:
    head, _, body = text.partition("\n\n")
    first, *fields = head.splitlines()
    headers = {}
    for f in fields:
        name, _, value = f.partition(":")
        headers[name.strip().lower()] = value.strip()
    return first, headers, body.strip()


@dataclass
class Walk:
    """The state the README's examples share: tokens, and the ids seen so far (documented → actual)."""

    base_url: str
    workdir: Path
    tokens: dict[str, str]
    ids: dict[str, str] = field(default_factory=dict)

    def substitute(self, text: str) -> str:
        for name, value in self.tokens.items():
            text = text.replace(name, value)
        return UUID.sub(lambda m: self.ids.get(m.group(0), m.group(0)), text)

    def match(self, documented: Any, actual: Any, where: str) -> None:
        if isinstance(documented, dict):
            assert isinstance(actual, dict), where
            assert documented.keys() == actual.keys(), f"{where}: keys {sorted(documented)} != {sorted(actual)}"
            for key, value in documented.items():
                self.match(value, actual[key], f"{where}/{key}")
        elif isinstance(documented, list):
            assert isinstance(actual, list) and len(documented) == len(actual), f"{where}: {actual!r}"
            for i, (d, a) in enumerate(zip(documented, actual, strict=True)):
                self.match(d, a, f"{where}/{i}")
        elif isinstance(documented, str):
            assert isinstance(actual, str), f"{where}: {actual!r}"
            self.match_text(documented, actual, where)
        else:
            assert documented == actual and type(documented) is type(actual), f"{where}: {actual!r} != {documented!r}"

    def match_text(self, documented: str, actual: str, where: str) -> None:
        if documented.endswith("…"):
            assert actual.startswith(documented[:-1]), f"{where}: {actual!r} does not start as {documented!r}"
            return
        # The documented text as a pattern: each UUID its (bound or new) actual id, each timestamp any.
        pattern, groups, pos = "", [], 0
        for m in re.finditer(f"{UUID.pattern}|{TIMESTAMP.pattern}", documented):
            pattern += re.escape(documented[pos : m.start()])
            if UUID.fullmatch(m.group(0)):
                bound = self.ids.get(m.group(0))
                pattern += f"({re.escape(bound) if bound else UUID.pattern})"
                groups.append(m.group(0))
            else:
                pattern += f"(?:{TIMESTAMP.pattern})"
            pos = m.end()
        pattern += re.escape(documented[pos:])
        found = re.fullmatch(pattern, actual)
        assert found, f"{where}: {actual!r} != {documented!r}"
        for doc_id, value in zip(groups, found.groups(), strict=True):  # the UUIDs are the only groups
            others = {doc for doc, seen in self.ids.items() if seen == value and doc != doc_id}
            assert not others, f"{where}: {value} was documented as {others.pop()} before"
            self.ids.setdefault(doc_id, value)

    def signature(self, body: bytes) -> str:
        secret = (self.workdir / ".orderfast" / "dev-webhook-secret").read_text().strip()
        t = str(int(time.time()))
        mac = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
        return f"t={t},v1={mac}"

    def run_http(self, example: Example) -> None:
        first, headers, body = split_message(self.substitute(example.text))
        method, path = first.split(" ", 1)
        raw = body.encode()
        if "orderfast-signature" in headers:
            headers["orderfast-signature"] = self.signature(raw)
        response = httpx.request(method, self.base_url + path, headers=headers, content=raw, timeout=30)
        where = f"README.md:{example.line} {first}"
        status_line, documented_headers, documented_body = split_message(example.response)
        status = int(status_line.split()[1])
        assert response.status_code == status, f"{where}: {response.status_code} {response.text}"
        for name, value in documented_headers.items():
            assert name in response.headers, f"{where}: no {name} header"
            self.match_text(value, response.headers[name], f"{where} {name}")
        if documented_body:
            self.match(orjson.loads(documented_body), response.json(), where)
        else:
            assert not response.content, f"{where}: an undocumented body {response.text}"

    def run_sh(self, script: str, where: str) -> None:
        """Runs a snippet as if in the shell of the earlier ones: the variables they set carry over."""
        state = self.workdir / "shell-state.sh"
        assigned = sorted(set(re.findall(r"^([A-Z_]+)=", script, re.M)))
        text = script.replace(DOC_BASE, self.base_url)
        if state.exists():
            text = f"source {state}\n{text}"
        if assigned:
            text += f"\ndeclare -p {' '.join(assigned)} >> {state}"
        done = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + text],
            cwd=self.workdir,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{where}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        statuses = [int(s) for s in re.findall(r"^HTTP/1\.1 (\d{3})", done.stdout, re.M)]
        assert all(s < 400 for s in statuses), f"{where}: {statuses}\n{done.stdout}"


def _clean_env() -> dict[str, str]:
    """The environment of a newcomer's shell: none of this machine's ORDERFAST_* settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ORDERFAST_")}


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A directory that looks like a fresh checkout that has been built once: the sources and the
    built ``.venv`` (linked), no data directory. ``make run`` finds its build stamps up to date."""
    for name in (".venv", "Makefile", "pyproject.toml", "Cargo.toml", "Cargo.lock", "rust", "python"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


@pytest.fixture
def make_run(checkout: Path) -> Iterator[tuple[str, Path]]:
    # The build is `make test`'s (or `make build`'s) job: a stale one would rebuild here, into the
    # shared .venv, from the linked checkout.
    stale = subprocess.run(["make", "-q", ".venv/.orderfast-runtime"], cwd=ROOT, check=False).returncode != 0
    assert not stale, "the build is out of date: run `make build` (make test does) first"
    port = free_port()
    log = checkout / "make-run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"PORT={port}"],
            cwd=checkout,
            env=_clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT + 120  # a stale build stamp rebuilds first
        while True:  # the readiness probe is observed, never assumed after a fixed wait
            assert proc.poll() is None, f"make run exited:\n{log.read_text()}"
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"not ready:\n{log.read_text()}"
            time.sleep(0.05)
        yield base, log
    finally:
        with contextlib.suppress(ProcessLookupError):  # make may have exited already
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def hint_commands(log: str) -> str:
    """The shell commands ``make run`` printed, as a script."""
    hint = log.split("orderfast is starting on", 1)[1].split("# the API, to read and try", 1)[0]
    lines = [line[2:] for line in hint.splitlines()[1:] if line.startswith("  ")]
    return "\n".join(lines)


def test_readme_examples_run_as_written(make_run: tuple[str, Path], checkout: Path) -> None:
    base, log = make_run

    def token(*args: str) -> str:
        done = subprocess.run(
            [".venv/bin/orderfast", "token", *args],
            cwd=checkout,
            env=_clean_env(),
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    walk = Walk(
        base,
        checkout,
        {"$ADMIN_TOKEN": token("--sub", "admin-1", "--role", "admin"), "$TOKEN": token("--sub", "u-1")},
    )
    found = examples(README.read_text())
    assert sum(e.kind == "http" for e in found) >= 10 and any(e.kind == "sh" for e in found)
    for example in found:
        if example.kind == "sh":
            walk.run_sh(example.text, f"README.md:{example.line}")
        else:
            walk.run_http(example)

    # What make run printed works as well, and says where the data and the docs are.
    printed = log.read_text()
    assert f"data in {checkout / '.orderfast'}" in printed and f"{base}/docs" in printed
    script = hint_commands(printed)
    assert "/v1/payments/webhook" in script and "dev-webhook-secret" in script
    walk.run_sh(script, "make run's hint")
