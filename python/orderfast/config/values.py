"""How a setting's text becomes a value: small parsers, each naming the variable when it refuses.

A parser is ``(text, name) -> value``; ``name`` is the full variable name, for the error message.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

Parser = Callable[[str, str], Any]


class ConfigError(ValueError):
    """A setting is present but unusable; the message names it."""


class Secret:
    """A string that never shows itself in repr or str."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, ...]:  # settings travel to worker processes
        return (Secret, (self._value,))


def text(value: str, name: str) -> str:
    return value


def secret(value: str, name: str) -> Secret:
    return Secret(value)


def path(value: str, name: str) -> Path:
    return Path(value)


def read_toml(path: Path, where: str) -> dict[str, Any]:
    """A configuration file's TOML document; ConfigError naming ``where`` when it cannot be read
    or is not TOML (the flags, rate-limit and tax files, at start and on every reload)."""
    import tomllib

    try:
        return tomllib.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"{where}: cannot read it: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: not valid TOML: {e}") from None


def readable_file(value: str, name: str) -> Path:
    """A file that can be read now: a typo'd path stops the start, not the first TLS handshake."""
    p = Path(value)
    try:
        with p.open("rb"):
            pass
    except OSError as e:
        raise ConfigError(f"{name}: cannot read {value}: {e.strerror}") from None
    return p


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def header_name(value: str, name: str) -> str:
    """An HTTP field name, lower-cased (as the server hands them to the app)."""
    if not _TOKEN.fullmatch(value.strip()):
        raise ConfigError(f"{name} must be an HTTP header name, e.g. x-client-cert-subject")
    return value.strip().lower()


def integer(minimum: int) -> Parser:
    def parse(value: str, name: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{name} must be an integer") from None
        if number < minimum:
            raise ConfigError(f"{name} must be at least {minimum}")
        return number

    return parse


def number(*, zero: bool = False) -> Parser:
    """A positive number of (usually) seconds; ``zero`` also allows 0 (off)."""

    def parse(value: str, name: str) -> float:
        try:
            result = float(value)
        except ValueError:
            raise ConfigError(f"{name} must be a number") from None
        if not (result >= 0 if zero else result > 0) or result != result or result == float("inf"):
            raise ConfigError(f"{name} must be {'zero or more' if zero else 'positive'}")
        return result

    return parse


def boolean(value: str, name: str) -> bool:
    word = value.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false")


def choice(*words: str) -> Parser:
    def parse(value: str, name: str) -> str:
        word = value.strip().lower()
        if word not in words:
            raise ConfigError(f"{name} must be one of {', '.join(words)}")
        return word

    return parse


def listed(item: Parser = text) -> Parser:
    """Comma-separated, blanks dropped."""

    def parse(value: str, name: str) -> tuple[Any, ...]:
        return tuple(item(part.strip(), name) for part in value.split(",") if part.strip())

    return parse


def postgres_url(value: str, name: str) -> Secret:
    if not value.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{name} must be a postgresql:// URL (unset = SQLite)")
    return Secret(value)


def postgres_urls(value: str, name: str) -> Secret:
    """One or more comma-separated postgresql:// URLs (a URL holds no unescaped comma)."""
    urls = [u.strip() for u in value.split(",") if u.strip()]
    if not urls or not all(u.startswith(("postgresql://", "postgres://")) for u in urls):
        raise ConfigError(f"{name} must be one or more comma-separated postgresql:// URLs")
    return Secret(",".join(urls))


def networks(value: str, name: str) -> tuple[Any, ...]:
    try:
        return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in value.split(",") if p.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a comma-separated list of addresses or CIDRs") from None


def tax_rates(value: str, name: str) -> dict[str, str]:
    """``standard=20,reduced=5.5`` → {"standard": "20", "reduced": "5.5"} (percentages, exact)."""
    from orderfast import _core

    rates: dict[str, str] = {}
    for part in value.split(","):
        if not part.strip():
            continue
        key, sep, rate = part.partition("=")
        key, rate = key.strip(), rate.strip()
        try:
            ok = bool(sep and key) and 0 <= _core.parse_percent(rate) <= 1_000_000_000
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(f"{name} must look like standard=20,reduced=5.5")
        rates[key] = rate
    return rates
