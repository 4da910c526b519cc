"""The HTTP floor: a bare ASGI endpoint under the same Granian settings as orderfast.

It answers every request with a fixed JSON body the size of a quote, reading the request body
first (as a real endpoint must) and doing nothing else: what Granian and the ASGI protocol cost
on this machine, with no framework, no auth and no work.

    granian --interface asgi --workers 2 --loop uvloop bench.peers.bare_asgi:app
"""

from __future__ import annotations

from typing import Any

BODY = (
    b'{"currency":"USD","lines":[{"sku":"W-00001","name":"Wide 1","quantity":1,"unit_price":"12.34",'
    b'"discount":"0.00","tax":"0.00","tax_rate":"0","total":"12.34"},{"sku":"W-00002","name":"Wide 2",'
    b'"quantity":1,"unit_price":"12.34","discount":"0.00","tax":"0.00","tax_rate":"0","total":"12.34"},'
    b'{"sku":"W-00003","name":"Wide 3","quantity":1,"unit_price":"12.34","discount":"0.00","tax":"0.00",'
    b'"tax_rate":"0","total":"12.34"}],"subtotal":"37.02","discount":"0.00","tax":"0.00","total":"37.02",'
    b'"coupon":null,"prices_include_tax":false}'
)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
