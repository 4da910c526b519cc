"""/readyz follows a real PostgreSQL connection: cut the network path, then restore it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.e2e.conftest import Server
from tests.e2e.tcp_proxy import TcpProxy


@pytest.fixture
def proxied(
    tmp_path_factory: pytest.TempPathFactory, pg_database_factory: Callable[[], str]
) -> Iterator[tuple[Server, TcpProxy]]:
    dsn = urlsplit(pg_database_factory())
    proxy = TcpProxy(dsn.hostname or "127.0.0.1", dsn.port or 5432)
    netloc = dsn.netloc.rsplit("@", 1)[0] + "@" if "@" in dsn.netloc else ""
    via_proxy = urlunsplit(dsn._replace(netloc=f"{netloc}127.0.0.1:{proxy.port}"))
    server = Server(tmp_path_factory.mktemp("readyz"), {"ORDERFAST_DATABASE_URL": via_proxy}, workers=1)
    server.start()
    try:
        yield server, proxy
    finally:
        server.stop()
        proxy.close()


def wait_for_status(client: httpx.Client, path: str, status: int, attempts: int = 100) -> int:
    """Polls until the probe reports ``status`` (each probe itself waits up to 2 s for the database)."""
    seen = -1
    for _ in range(attempts):
        seen = client.get(path).status_code
        if seen == status:
            break
    return seen


def test_readyz_is_503_while_the_database_is_unreachable(proxied: tuple[Server, TcpProxy]) -> None:
    server, proxy = proxied
    with server.client() as c:
        assert c.get("/readyz").status_code == 200
        proxy.cut()
        assert wait_for_status(c, "/readyz", 503) == 503
        assert c.get("/livez").status_code == 200, "liveness does not depend on the database"
        proxy.restore()
        assert wait_for_status(c, "/readyz", 200) == 200
