"""The orderfast command line, run as a user runs it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import jwt

from tests.conftest import JWT_SECRET


def orderfast(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "ORDERFAST_DATA_DIR": str(tmp_path / "data"), **env}
    full_env.pop("ORDERFAST_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "orderfast", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_token_mints_a_verifiable_jwt(tmp_path: Path) -> None:
    done = orderfast(tmp_path, "token", "--sub", "u-9", "--role", "admin", ORDERFAST_JWT_SECRET=JWT_SECRET)
    assert done.returncode == 0, done.stderr
    claims = jwt.decode(done.stdout.strip(), JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "u-9" and claims["roles"] == ["admin"] and claims["exp"] > claims["iat"]


def test_token_without_a_secret_uses_the_dev_secret_file(tmp_path: Path) -> None:
    done = orderfast(tmp_path, "token", "--sub", "u-1")
    assert done.returncode == 0, done.stderr
    secret = (tmp_path / "data" / "dev-jwt-secret").read_text().strip()
    assert str((tmp_path / "data" / "dev-jwt-secret").resolve()) in done.stderr, "says which secret it used"
    assert jwt.decode(done.stdout.strip(), secret, algorithms=["HS256"])["sub"] == "u-1"


def test_migrate_is_idempotent_and_seeds_once(tmp_path: Path) -> None:
    first = orderfast(tmp_path, "migrate", "--seed-demo")
    assert first.returncode == 0, first.stderr
    assert "applied 0001_orders" in first.stdout and "seeded demo catalog" in first.stdout
    again = orderfast(tmp_path, "migrate", "--seed-demo")
    assert again.stdout.strip() == "sqlite: schema up to date"


def test_bad_configuration_is_a_clear_error(tmp_path: Path) -> None:
    done = orderfast(tmp_path, "token", "--sub", "u", ORDERFAST_JWT_SECRET="short")
    assert done.returncode == 2
    assert "ORDERFAST_JWT_SECRET must be at least 32 bytes" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    done = orderfast(tmp_path, "serve", "--port", "1", ORDERFAST_JWT_SECRET=JWT_SECRET)
    assert done.returncode != 0
    assert "orderfast migrate" in done.stdout + done.stderr


def test_reconcile_exits_non_zero_on_a_broken_row(tmp_path: Path) -> None:
    assert orderfast(tmp_path, "migrate", "--seed-demo").returncode == 0
    clean = orderfast(tmp_path, "reconcile")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "0 discrepancies" in clean.stdout
    con = sqlite3.connect(tmp_path / "data" / "orderfast.db")
    con.execute("UPDATE products SET reserved = 7 WHERE sku = 'SKU-1'")
    con.commit()
    con.close()
    broken = orderfast(tmp_path, "reconcile")
    assert broken.returncode == 1
    assert "reserved_stock\tSKU-1\treserved 7, unpaid orders hold 0" in broken.stdout


def test_outbox_commands(tmp_path: Path) -> None:
    assert orderfast(tmp_path, "migrate").returncode == 0
    dead = orderfast(tmp_path, "outbox", "dead")
    assert dead.returncode == 0 and "0 dead events" in dead.stdout
    missing = orderfast(tmp_path, "outbox", "replay", "no-such-event")
    assert missing.returncode == 1 and "no such dead event" in missing.stderr
    assert "ORDERFAST_REDIS_URL" in orderfast(tmp_path, "relay").stderr


def test_apikey_commands(tmp_path: Path) -> None:
    assert orderfast(tmp_path, "migrate").returncode == 0
    created = orderfast(tmp_path, "apikey", "create", "--role", "service", "--name", "etl")
    assert created.returncode == 0, created.stderr
    key = created.stdout.split()[0]
    prefix = key.split("_")[1]
    listed = orderfast(tmp_path, "apikey", "list").stdout
    assert prefix in listed and "active" in listed and key not in listed
    assert orderfast(tmp_path, "apikey", "revoke", prefix).returncode == 0
    assert "revoked" in orderfast(tmp_path, "apikey", "list").stdout
    assert orderfast(tmp_path, "apikey", "revoke", prefix).returncode == 1
    db = sqlite3.connect(tmp_path / "data" / "orderfast.db")
    (stored,) = db.execute("SELECT key_hash FROM api_keys").fetchone()
    db.close()
    assert key.encode() not in stored and len(stored) == 32, "only the SHA-256 is stored"


def test_a_reader_that_goes_away_gets_no_traceback(tmp_path: Path) -> None:
    """`orderfast apikey create | head -0`: stdout closed before the key is printed."""
    assert orderfast(tmp_path, "migrate").returncode == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read: the child's first write fails with EPIPE
    env = {**os.environ, "ORDERFAST_DATA_DIR": str(tmp_path / "data")}
    env.pop("ORDERFAST_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "orderfast", "apikey", "create", "--role", "service"],
        env=env,
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )
    os.close(write_end)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_serve_on_a_busy_port_says_so_in_one_line(tmp_path: Path) -> None:
    import socket

    assert orderfast(tmp_path, "migrate").returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = orderfast(tmp_path, "serve", "--port", str(port), ORDERFAST_JWT_SECRET=JWT_SECRET)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "--port" in lines[0], done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_serve_on_an_unmigrated_store_says_to_migrate_in_one_line(tmp_path: Path) -> None:
    done = orderfast(tmp_path, "serve", "--port", "0", ORDERFAST_JWT_SECRET=JWT_SECRET)
    assert done.returncode == 1
    assert "orderfast migrate" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_serve_with_a_bad_setting_names_it_in_one_line(tmp_path: Path) -> None:
    done = orderfast(tmp_path, "serve", ORDERFAST_JWT_SECRET=JWT_SECRET, ORDERFAST_JWT_PUBLIC_KEYS="/nonexistent.pem")
    assert done.returncode == 2 and "JWT public keys" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_version_and_revoke_answer(tmp_path: Path) -> None:
    version = orderfast(tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.startswith("orderfast "), version
    assert orderfast(tmp_path, "migrate").returncode == 0
    created = orderfast(tmp_path, "apikey", "create", "--role", "service")
    prefix = created.stdout.split("prefix ")[1].split(";")[0]
    revoked = orderfast(tmp_path, "apikey", "revoke", prefix)
    assert revoked.returncode == 0 and revoked.stdout.strip() == f"{prefix}: revoked"


def test_help_says_where_to_start_and_every_command_has_help(tmp_path: Path) -> None:
    top = orderfast(tmp_path, "--help")
    assert top.returncode == 0 and "``" not in top.stdout, "no docstring markup in the help"
    assert "orderfast config docs" in top.stdout and "/docs" in top.stdout and "make run" in top.stdout
    commands = top.stdout.split("{", 1)[1].split("}", 1)[0].split(",")
    assert {"serve", "migrate", "token", "apikey"} <= set(commands)
    for command in commands:
        done = orderfast(tmp_path, command, "--help")
        assert done.returncode == 0 and done.stdout.startswith(f"usage: orderfast {command}"), done.stderr
    assert not (tmp_path / "data").exists(), "asking for help creates nothing"
    assert "--demo" in orderfast(tmp_path, "serve", "--help").stdout


def test_migrate_check_applies_nothing_and_says_whether_migrations_are_pending(tmp_path: Path) -> None:
    pending = orderfast(tmp_path, "migrate", "--check")
    assert pending.returncode == 1 and "run `orderfast migrate`" in pending.stderr, pending.stderr
    assert orderfast(tmp_path, "migrate", "--check").returncode == 1, "nothing was applied"
    assert orderfast(tmp_path, "migrate").returncode == 0
    done = orderfast(tmp_path, "migrate", "--check")
    assert (done.returncode, done.stdout.strip()) == (0, "sqlite: schema up to date")
    assert orderfast(tmp_path, "migrate", "--check", "--seed-demo").returncode == 2


def test_reconcile_republish_says_what_it_queued(tmp_path: Path, redis_url: str) -> None:
    assert orderfast(tmp_path, "migrate").returncode == 0
    done = orderfast(tmp_path, "reconcile", "--republish", ORDERFAST_REDIS_URL=redis_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0 discrepancies", "nothing was lost, so nothing is said to be queued"
