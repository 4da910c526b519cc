"""Fixtures of the operations drills."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import unavailable
from tests.ops.pgcluster import Tools, Unavailable


@pytest.fixture(scope="module")
def tools() -> Iterator[Tools]:
    """A private workspace for PostgreSQL clusters (skipped locally, a failure in CI, without the
    server binaries)."""
    try:
        with Tools.workspace() as t:
            yield t
    except Unavailable as e:
        unavailable(str(e))
