"""The client address of a gRPC call, as the HTTP side names a client (the `ip` rate limit's key)."""

from __future__ import annotations

import pytest

from orderfast.rpc.server import peer_address


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("ipv4:127.0.0.1:50123", "127.0.0.1"),
        ("ipv6:[::1]:50123", "::1"),
        ("ipv6:%5B::1%5D:50123", "::1"),
        ("ipv6:%5B2001:db8::7%5D:443", "2001:db8::7"),
        ("unix:/tmp/grpc.sock", None),
    ],
)
def test_the_peer_is_its_address(peer: str, address: str | None) -> None:
    assert peer_address(peer) == address
