"""API keys for service integrations: ``X-API-Key: of_<prefix>_<secret>``.

A key is shown once, when created; the database keeps its SHA-256 and its prefix, which
identifies it in lists, logs and revocation. Verification compares hashes in constant time. Each
worker remembers a looked-up key for ``cache_ttl`` seconds, so a revocation takes effect everywhere
within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from orderfast.domain.orders import format_timestamp
from orderfast.domain.text import storable
from orderfast.services.errors import InvalidCredentials, InvalidInputError
from orderfast.store.base import ApiKeyRecord, Store

ROLES = ("service", "admin")
CACHE_MAX = 10_000  # prefixes remembered per worker, found and missing each


def _hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class ApiKeyService:
    def __init__(self, store: Store, *, cache_ttl: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._ttl = cache_ttl
        self._clock = clock
        # Found keys and misses apart, each bounded: only prefixes that exist can fill the first, so
        # a flood of guessed prefixes (from as many addresses as it takes) never evicts a real key.
        self._found: dict[str, tuple[ApiKeyRecord, float]] = {}
        self._missing: dict[str, float] = {}

    async def create(self, name: str, roles: Sequence[str]) -> tuple[str, ApiKeyRecord]:
        if not name.strip() or len(name) > 100 or not storable(name):
            raise InvalidInputError([("/name", "invalid", "a name of 1 to 100 characters, without U+0000")])
        if not roles or any(r not in ROLES for r in roles):
            raise InvalidInputError([("/roles", "invalid", f"one or more of {', '.join(ROLES)}")])
        prefix = secrets.token_hex(4)
        key = f"of_{prefix}_{secrets.token_urlsafe(32)}"
        record = ApiKeyRecord(prefix, _hash(key), name.strip(), tuple(sorted(set(roles))), datetime.now(UTC), None)
        await self._store.put_api_key(record)
        return key, record

    def remembers(self, presented: str) -> bool:
        """Whether this worker answers for ``presented`` without the database: a key of the wrong
        shape (refused as it is) or one whose prefix it looked up within the cache period."""
        parts = presented.strip().split("_", 2)
        if len(parts) != 3 or parts[0] != "of" or len(parts[1]) != 8:
            return True
        return self._cached(parts[1], self._clock())[0]

    def _cached(self, prefix: str, now: float) -> tuple[bool, ApiKeyRecord | None]:
        """(known within the cache period, the record if it exists)."""
        found = self._found.get(prefix)
        if found is not None and now < found[1]:
            return True, found[0]
        missing = self._missing.get(prefix)
        return missing is not None and now < missing, None

    async def authenticate(self, presented: str) -> tuple[str, frozenset[str]]:
        """(subject, roles) of a valid key; InvalidCredentials otherwise."""
        parts = presented.strip().split("_", 2)  # the secret part may itself contain "_"
        if len(parts) != 3 or parts[0] != "of" or len(parts[1]) != 8:
            raise InvalidCredentials("the API key is not valid")
        prefix = parts[1]
        now = self._clock()
        known, record = self._cached(prefix, now)
        if not known:
            record = await self._store.get_api_key(prefix)
            if record is None:
                if len(self._missing) >= CACHE_MAX:
                    self._missing.clear()
                self._missing[prefix] = now + self._ttl
            else:
                if len(self._found) >= CACHE_MAX:
                    self._found.clear()
                self._found[prefix] = (record, now + self._ttl)
                self._missing.pop(prefix, None)
        if (
            record is None
            or record.revoked_at is not None
            or not hmac.compare_digest(record.key_hash, _hash(presented.strip()))
        ):
            raise InvalidCredentials("the API key is not valid")
        return f"key:{prefix}", frozenset(record.roles)

    async def list(self) -> list[ApiKeyRecord]:
        return await self._store.list_api_keys()

    async def revoke(self, prefix: str) -> bool:
        self._found.pop(prefix, None)
        return storable(prefix) and await self._store.revoke_api_key(prefix)


def key_document(record: ApiKeyRecord) -> dict[str, object]:
    return {
        "prefix": record.prefix,
        "name": record.name,
        "roles": list(record.roles),
        "created_at": format_timestamp(record.created_at),  # like every other document: ms, Z
        "revoked": record.revoked_at is not None,
    }
