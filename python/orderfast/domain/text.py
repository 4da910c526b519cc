"""The one rule for free text that a client sends and a store keeps (names, subjects, event ids).

PostgreSQL's text cannot hold U+0000 and UTF-8 cannot hold a lone surrogate (which a JWT's JSON may
carry as ``\\ud800``); SQLite would store both. Refused at the edge, both stores behave the same.
"""

from __future__ import annotations

import re

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: str) -> bool:
    """True when every store can hold ``value`` exactly as given."""
    return _UNSTORABLE.search(value) is None
