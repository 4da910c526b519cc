"""The pieces of a live reload: the tax file's rules, and rate limits carried over a reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderfast import _core, bootstrap
from orderfast.config import ConfigError, Settings, load_tax_table
from orderfast.http.guard import LiveRateLimits, RoutePolicies
from orderfast.services.catalog import CatalogService
from orderfast.services.live_config import LiveFile


def tax_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "taxes.toml"
    path.write_text(text)
    return path


def test_a_tax_file_holds_exact_rates(tmp_path: Path) -> None:
    assert load_tax_table(tax_file(tmp_path, 'standard = "20"\nreduced = "5.5"\nzero = 0\n')) == {
        "standard": "20",
        "reduced": "5.5",
        "zero": "0",
    }


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("standard = 5.5\n", "as a string"),
        ("standard = true\n", "as a string"),
        ('standard = "five"\n', "not an exact percentage"),
        ('standard = "-1"\n', "not an exact percentage"),
        ('standard = "5.1234567"\n', "not an exact percentage"),
        ('"bad class" = "5"\n', "not a tax class name"),
        ("[standard]\nrate = 5\n", "as a string"),
        ("standard = \n", "not valid TOML"),
    ],
)
def test_a_bad_tax_file_is_refused_saying_why(tmp_path: Path, text: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        load_tax_table(tax_file(tmp_path, text))


def test_the_tax_rates_and_a_tax_file_are_one_or_the_other(tmp_path: Path) -> None:
    path = tax_file(tmp_path, 'standard = "20"\n')
    assert Settings.from_env({"ORDERFAST_TAX_FILE": str(path)}).taxes == {"standard": "20"}
    with pytest.raises(ConfigError, match="not both"):
        Settings.from_env({"ORDERFAST_TAX_FILE": str(path), "ORDERFAST_TAX_RATES": "standard=20"})


def test_a_reloaded_table_must_keep_the_classes_products_name(tmp_path: Path) -> None:
    path = tax_file(tmp_path, 'standard = "20"\nreduced = "5"\n')
    settings = Settings.from_env({"ORDERFAST_TAX_FILE": str(path)})
    core = _core.Catalog()
    catalog = CatalogService(None, core)  # type: ignore[arg-type]  # no store: only the table is used
    live = bootstrap.tax_table(settings, core, catalog)
    assert isinstance(live, LiveFile)
    core.upsert([("T", "Taxed", "USD", 1000, "standard", None)])
    path.write_text('reduced = "5"\n')
    assert not live.check(), "standard is still named by product T"
    assert catalog.is_tax_class("standard") and live.current == {"standard": "20", "reduced": "5"}
    path.write_text('standard = "10"\n')  # reduced is named by no product: it may go
    assert live.check()
    assert not catalog.is_tax_class("reduced")


def test_a_reload_keeps_what_clients_spent_under_a_policy_of_the_same_name() -> None:
    def policies(quota: int) -> RoutePolicies:
        return RoutePolicies([("user", "user", quota, 3600.0, quota, ())])

    live = LiveRateLimits(policies(2))
    first = live.current
    assert all(d is not None and d.allowed for d in first.core.acquire(["u"]))
    # Half the hour's quota spent (one of two). Under 3 an hour that is 1.5 tokens: one is left.
    live.replace(policies(3))
    assert live.current is not first and live.current.quotas == [3]
    third = live.current.core.acquire(["u"])[0]
    assert third is not None and third.allowed and third.remaining == 0, "a fresh bucket would leave 2"
    fourth = live.current.core.acquire(["u"])[0]
    assert fourth is not None and not fourth.allowed
    assert live.current.shape.names == ("user",)
