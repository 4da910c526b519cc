"""The tax table from a file (``ORDERFAST_TAX_FILE``), which every worker reads again when it changes.

    standard = "20"     # tax class = rate in percent, exact: a string (or an integer)
    reduced = "5.5"

A float (``5.5`` unquoted) is refused: rates are exact decimals, as money is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from orderfast.config.values import ConfigError, read_toml

_CLASS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True, slots=True)
class TaxFile:
    """Where the table came from (read again on a change) and what it held at start."""

    path: Path
    rates: dict[str, str]

    def __str__(self) -> str:
        return f"{self.path} ({', '.join(f'{k}={v}' for k, v in self.rates.items()) or 'no classes'})"


def load_tax_table(path: Path) -> dict[str, str]:
    """Tax class → rate (percentage string); ConfigError, saying what is wrong, when it cannot be used."""
    from orderfast import _core

    where = f"ORDERFAST_TAX_FILE ({path})"
    raw = read_toml(path, where)
    rates: dict[str, str] = {}
    for name, value in raw.items():
        if not _CLASS.fullmatch(name):
            raise ConfigError(f"{where}: {name!r} is not a tax class name (1-64 of A-Z, a-z, 0-9, _ . -)")
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ConfigError(f'{where}: {name} must be a percentage as a string, e.g. "5.5", not {value!r}')
        rate = str(value).strip()
        try:
            ok = 0 <= _core.parse_percent(rate) <= 1_000_000_000
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(
                f'{where}: {name} = {value!r} is not an exact percentage (0 to 1000, at most 6 decimals), e.g. "5.5"'
            )
        rates[name] = rate
    return rates
