"""The feature-flags file: what it may say, and what applying it changes."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis

from orderfast import _core, bootstrap
from orderfast.config import ConfigError, Flags, Settings, load_flags
from orderfast.services.cluster_limits import RateLimiterUnavailable, SharedRateLimits
from tests.e2e.conftest import free_port


def flags_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flags.toml"
    path.write_text(text)
    return path


def test_a_file_sets_what_it_names_and_leaves_the_rest_default(tmp_path: Path) -> None:
    assert load_flags(flags_file(tmp_path, "")) == Flags()
    assert load_flags(flags_file(tmp_path, "coupons = false\n")) == Flags(coupons=False)
    both = load_flags(flags_file(tmp_path, "coupons = true\nratelimit_fail_closed = true\n"))
    assert both == Flags(coupons=True, ratelimit_fail_closed=True)
    assert both.shown() == {"coupons": "true", "ratelimit_fail_closed": "true"}


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("coupon = false\n", "unknown coupon"),
        ('coupons = "false"\n', "coupons must be true or false"),
        ("coupons = 0\n", "coupons must be true or false"),
        ("coupons = \n", "not valid TOML"),
        ("[coupons]\nenabled = false\n", "coupons must be true or false"),
    ],
)
def test_anything_else_is_refused_saying_why(tmp_path: Path, text: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        load_flags(flags_file(tmp_path, text))
    with pytest.raises(ConfigError, match="cannot read"):
        load_flags(tmp_path / "missing.toml")


@pytest.mark.anyio
async def test_the_fail_closed_flag_overrides_the_setting_and_comes_back_off(tmp_path: Path) -> None:
    path = flags_file(tmp_path, "ratelimit_fail_closed = true\n")
    settings = Settings.from_env({"ORDERFAST_FLAGS_FILE": str(path)})  # the setting says: fail open
    dead = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.25)
    shared = SharedRateLimits(dead, [("user", 10, 1.0, 10)])
    catalog = _core.Catalog()
    live = bootstrap.feature_flags(settings, catalog, shared)
    assert live is not None
    try:
        with pytest.raises(RateLimiterUnavailable):
            await shared.acquire(["u"])
        path.write_text("coupons = false\n")  # the flag gone: the setting (open) decides again
        path.touch()
        assert live.check()
        assert await shared.acquire(["u"]) is None, "open: per-worker limits alone"
        assert live.current == Flags(coupons=False)
    finally:
        await shared.close()
