"""Settings from ORDERFAST_* variables: defaults, parsing, refusals, secrets kept secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderfast.config import ConfigError, RateQuota, Settings, describe, docs_table


def test_defaults_select_the_embedded_store() -> None:
    s = Settings.from_env({})
    assert s.store_kind == "sqlite"
    assert (s.host, s.port, s.workers) == ("127.0.0.1", 8000, 1)
    assert s.ratelimit_user == RateQuota(100, 1.0, 200)
    assert s.sqlite_path == Path(".orderfast/orderfast.db")


def test_values_are_parsed() -> None:
    s = Settings.from_env(
        {
            "ORDERFAST_DATABASE_URL": "postgresql://u:pw@db/orders",
            "ORDERFAST_RATELIMIT_USER": "10/60",
            "ORDERFAST_RATELIMIT_USER_BURST": "15",
            "ORDERFAST_WORKERS": "4",
            "ORDERFAST_PORT": "9000",
        }
    )
    assert s.store_kind == "postgres"
    assert s.ratelimit_user == RateQuota(10, 60.0, 15)
    assert (s.workers, s.port) == (4, 9000)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://x"),
        ("RATELIMIT_USER", "fast"),
        ("RATELIMIT_USER", "0/1"),
        ("RATELIMIT_USER", "5/0"),
        ("WORKERS", "0"),
        ("PORT", "http"),
        ("CATALOG_REFRESH", "-1"),
        ("DB_POOL_MIN", "20"),
    ],
)
def test_bad_values_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match="ORDERFAST_"):
        Settings.from_env({f"ORDERFAST_{name}": value})


def test_secrets_never_show() -> None:
    s = Settings.from_env(
        {
            "ORDERFAST_DATABASE_URL": "postgresql://u:hunter2@db/x",
            "ORDERFAST_JWT_SECRET": "s3cr3t" * 8,
        }
    )
    assert "hunter2" not in repr(s) and "s3cr3t" not in repr(s)
    assert s.resolve_jwt_secret().reveal() == "s3cr3t" * 8


def test_short_jwt_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        Settings.from_env({"ORDERFAST_JWT_SECRET": "short"}).resolve_jwt_secret()


def test_dev_secret_is_generated_once(tmp_path: Path) -> None:
    s = Settings.from_env({"ORDERFAST_DATA_DIR": str(tmp_path)})
    first = s.resolve_jwt_secret().reveal()
    assert len(first) >= 32
    assert s.resolve_jwt_secret().reveal() == first
    assert (tmp_path / "dev-jwt-secret").stat().st_mode & 0o077 == 0


def test_tax_table_is_parsed_exactly() -> None:
    s = Settings.from_env({"ORDERFAST_TAX_RATES": "standard=20, reduced=5.5,zero=0", "ORDERFAST_TAX_INCLUSIVE": "true"})
    assert s.tax_rates == {"standard": "20", "reduced": "5.5", "zero": "0"}
    assert s.tax_inclusive is True
    assert Settings.from_env({}).tax_rates == {}


@pytest.mark.parametrize("value", ["standard", "=20", "standard=abc", "standard=1.0000001", "standard=-1"])
def test_bad_tax_tables_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="ORDERFAST_TAX_RATES"):
        Settings.from_env({"ORDERFAST_TAX_RATES": value})


def test_secrets_can_come_from_files(tmp_path: Path) -> None:
    (tmp_path / "jwt").write_text("f1le-s3cret" * 4 + "\n")
    (tmp_path / "db").write_text("postgresql://app:pw@db/orders\n")
    s = Settings.from_env(
        {"ORDERFAST_JWT_SECRET_FILE": str(tmp_path / "jwt"), "ORDERFAST_DATABASE_URL_FILE": str(tmp_path / "db")}
    )
    assert s.resolve_jwt_secret().reveal() == "f1le-s3cret" * 4, "trailing newline stripped"
    assert s.database_url is not None and s.database_url.reveal() == "postgresql://app:pw@db/orders"
    assert "f1le" not in repr(s) and "pw@" not in repr(s)


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"ORDERFAST_JWT_SECRET": "x" * 40, "ORDERFAST_JWT_SECRET_FILE": "{dir}/jwt"}, "not both"),
        ({"ORDERFAST_WEBHOOK_SECRET_FILE": "{dir}/missing"}, "cannot read"),
        ({"ORDERFAST_REDIS_URL_FILE": "{dir}/empty"}, "is empty"),
    ],
)
def test_secret_files_are_refused_with_a_reason(tmp_path: Path, env: dict[str, str], complaint: str) -> None:
    (tmp_path / "jwt").write_text("y" * 40)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match=complaint):
        Settings.from_env({k: v.format(dir=tmp_path) for k, v in env.items()})


def test_group_commit_settings() -> None:
    assert (Settings.from_env({}).group_commit_max, Settings.from_env({}).group_commit_inflight) == (64, 1)
    s = Settings.from_env({"ORDERFAST_GROUP_COMMIT_MAX": "1", "ORDERFAST_GROUP_COMMIT_INFLIGHT": "3"})
    assert (s.group_commit_max, s.group_commit_inflight) == (1, 3)
    for bad in ("0", "x"):
        with pytest.raises(ConfigError, match="ORDERFAST_GROUP_COMMIT_MAX"):
            Settings.from_env({"ORDERFAST_GROUP_COMMIT_MAX": bad})


def test_the_readme_configuration_table_is_the_declarations() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    table = "\n".join(line for line in section.splitlines() if line.startswith("|")) + "\n"
    assert table == docs_table(), "README.md is out of date: paste `orderfast config docs` into it"


def test_every_setting_is_declared_once_and_documented() -> None:
    names = [name for name, _, _ in describe(Settings.from_env({}), {})]
    assert len(names) == len(set(names))
    for name in names:
        assert f"`{name}`" in docs_table()


def test_config_show_masks_secrets_and_names_sources(tmp_path: Path) -> None:
    (tmp_path / "jwt").write_text("z" * 40)
    env = {"ORDERFAST_JWT_SECRET_FILE": str(tmp_path / "jwt"), "ORDERFAST_PORT": "9000"}
    rows = {name: (value, source) for name, value, source in describe(Settings.from_env(env), env)}
    assert rows["ORDERFAST_JWT_SECRET"] == ("**********", "secret file")
    assert rows["ORDERFAST_PORT"] == ("9000", "env")
    assert rows["ORDERFAST_WORKERS"] == ("1", "default")
    assert all("z" * 40 not in value for value, _ in rows.values())


@pytest.mark.parametrize(
    ("name", "value"),
    [("LOG_LEVEL", "loud"), ("HEADER_TIMEOUT", "0"), ("MAX_CONNECTIONS", "1"), ("BODY_TIMEOUT", "nan")],
)
def test_new_bounds_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"ORDERFAST_{name}"):
        Settings.from_env({f"ORDERFAST_{name}": value})


def test_an_env_file_fills_in_what_the_environment_does_not_say(tmp_path: Path) -> None:
    (tmp_path / "orderfast.env").write_text(
        "# local settings\nORDERFAST_PORT=9100\nexport ORDERFAST_WORKERS='3'\n\nORDERFAST_LOG_LEVEL=debug\n"
    )
    env = {"ORDERFAST_ENV_FILE": str(tmp_path / "orderfast.env"), "ORDERFAST_LOG_LEVEL": "warning"}
    s = Settings.from_env(env)
    assert (s.port, s.workers, s.log_level) == (9100, 3, "warning")
    (tmp_path / "bad.env").write_text("PATH=/tmp\n")
    with pytest.raises(ConfigError, match="line 1"):
        Settings.from_env({"ORDERFAST_ENV_FILE": str(tmp_path / "bad.env")})
    with pytest.raises(ConfigError, match="cannot read"):
        Settings.from_env({"ORDERFAST_ENV_FILE": str(tmp_path / "missing.env")})
