"""The peer: create-order as a typical Python team would write it, for side-by-side measurement.

FastAPI + uvicorn (run as its docs recommend: workers = cores, uvloop, httptools), asyncpg,
pydantic for the request and response, ``decimal`` for money, PyJWT to verify the bearer token on
every request. The same contract as orderfast's ``POST /v1/orders`` and ``GET /v1/orders/{id}``:
the same tables (orderfast's migrations), the same transaction (idempotency record first, stock
reserved in SKU order, order, lines, ``order.created`` outbox event, one commit per order), the same
idempotency rules (a replay returns the stored response; another body under the same key is a 422;
a missing key is a 400), and the same status codes and body shape. What it does not have is
orderfast's design: no Rust core, no price snapshot in memory, no token cache, no group commit.

    PEER_DATABASE_URL=postgresql://... PEER_JWT_SECRET=... \\
        uvicorn bench.peers.fastapi_peer:app --workers 2 --loop uvloop --http httptools
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import asyncpg
import jwt
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

DSN = os.environ.get("PEER_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET = os.environ.get("PEER_JWT_SECRET", "")
EXPONENTS = {"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0}


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    quantity: int = Field(ge=1, le=10_000, strict=True)


class OrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    items: list[Item] = Field(min_length=1, max_length=100)
    expected_total: str | None = None


class Line(BaseModel):
    sku: str
    name: str
    quantity: int
    unit_price: str
    discount: str
    tax: str
    tax_rate: str
    total: str


class OrderOut(BaseModel):
    id: str
    status: str
    customer_id: str
    currency: str
    lines: list[Line]
    subtotal: str
    discount: str
    tax: str
    total: str
    coupon: str | None
    prices_include_tax: bool
    cancel_reason: str | None
    refunded: str
    created_at: str


def problem(status: int, slug: str, title: str, detail: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": f"/problems/{slug}", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(DSN, min_size=2, max_size=10)
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


def customer(authorization: Annotated[str | None, Header()] = None) -> str:
    if not authorization or not authorization.startswith("Bearer "):
        raise HTTPException(401, "send Authorization: Bearer <token>")
    try:
        claims = jwt.decode(authorization[7:], SECRET, algorithms=["HS256"], options={"require": ["exp", "sub"]})
    except jwt.PyJWTError:
        raise HTTPException(401, "the token is not valid") from None
    return str(claims["sub"])


def money(minor: int, currency: str) -> str:
    exp = EXPONENTS[currency]
    return str((Decimal(minor) / (10**exp)).quantize(Decimal(1).scaleb(-exp)))


@app.post("/v1/orders", status_code=201)
async def create_order(
    request: Request,
    who: Annotated[str, Depends(customer)],
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Response:
    if not idempotency_key or len(idempotency_key) > 255:
        return problem(400, "idempotency-key-missing", "Idempotency-Key required")
    raw = await request.body()
    try:
        body = OrderRequest.model_validate_json(raw)
    except ValueError as e:
        return problem(422, "validation-error", "Invalid request", str(e)[:500])
    if body.currency not in EXPONENTS:
        return problem(422, "validation-error", "Invalid request", "unknown currency")
    fingerprint = hashlib.sha256(raw).digest()
    order_id = uuid.uuid4()
    now = datetime.now(UTC)
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as conn:
        existing = await conn.fetchrow(
            "SELECT fingerprint, status, response_body FROM idempotency_keys WHERE principal = $1 AND key = $2",
            who,
            idempotency_key,
        )
        if existing is not None:
            return replay(existing, fingerprint)
        async with conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO idempotency_keys (principal, key, fingerprint, status, response_body, order_id, "
                "created_at) VALUES ($1, $2, $3, 201, '', $4, $5) ON CONFLICT DO NOTHING RETURNING true",
                who,
                idempotency_key,
                fingerprint,
                order_id,
                now,
            )
            if not inserted:
                raise HTTPException(409, "a request with this Idempotency-Key is in progress")
            lines = []
            subtotal = Decimal(0)
            for item in sorted(body.items, key=lambda i: i.sku):
                row = await conn.fetchrow(
                    "UPDATE products SET stock = stock - $2, reserved = reserved + $2 "
                    "WHERE sku = $1 AND stock >= $2 RETURNING name, price_minor, currency",
                    item.sku,
                    item.quantity,
                )
                if row is None or row["currency"] != body.currency:
                    raise _Refused(problem(409, "out-of-stock", "Out of stock", f"{item.sku} is out of stock"))
                unit = Decimal(row["price_minor"]) / (10 ** EXPONENTS[body.currency])
                total = unit * item.quantity
                subtotal += total
                lines.append((item.sku, row["name"], item.quantity, unit, total, row["price_minor"]))
            if body.expected_total is not None and Decimal(body.expected_total) != subtotal:
                raise _Refused(problem(409, "price-changed", "Price changed"))
            scale = 10 ** EXPONENTS[body.currency]
            subtotal_minor = int(subtotal * scale)
            out = OrderOut(
                id=str(order_id),
                status="PENDING_PAYMENT",
                customer_id=who,
                currency=body.currency,
                lines=[
                    Line(
                        sku=s,
                        name=n,
                        quantity=q,
                        unit_price=str(u),
                        discount=money(0, body.currency),
                        tax=money(0, body.currency),
                        tax_rate="0",
                        total=str(t),
                    )
                    for s, n, q, u, t, _ in lines
                ],
                subtotal=str(subtotal),
                discount=money(0, body.currency),
                tax=money(0, body.currency),
                total=str(subtotal),
                coupon=None,
                prices_include_tax=False,
                cancel_reason=None,
                refunded=money(0, body.currency),
                created_at=now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            )
            document = out.model_dump_json().encode()
            await conn.execute(
                "INSERT INTO orders (id, customer_id, status, currency, subtotal_minor, discount_minor, tax_minor, "
                "total_minor, coupon_code, tax_inclusive, created_at) VALUES ($1, $2, $3, $4, $5, 0, 0, $5, NULL, "
                "false, $6)",
                order_id,
                who,
                "PENDING_PAYMENT",
                body.currency,
                subtotal_minor,
                now,
            )
            await conn.executemany(
                "INSERT INTO order_lines (order_id, line_no, sku, name, quantity, unit_price_minor, discount_minor, "
                "tax_minor, total_minor, tax_rate) VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7, '0')",
                [(order_id, n, s, nm, q, pm, pm * q) for n, (s, nm, q, _, _, pm) in enumerate(lines, 1)],
            )
            event_id = uuid.uuid4()
            envelope = {
                "id": str(event_id),
                "type": "order.created",
                "aggregate_id": str(order_id),
                "sequence": 1,
                "occurred_at": out.created_at,
                "version": 1,
                "data": json.loads(document),
            }
            await conn.execute(
                "INSERT INTO outbox (event_id, aggregate_type, aggregate_id, sequence, event_type, envelope, "
                "occurred_at) VALUES ($1, 'order', $2, 1, 'order.created', $3::jsonb, $4)",
                event_id,
                order_id,
                json.dumps(envelope),
                now,
            )
            await conn.execute(
                "UPDATE idempotency_keys SET response_body = $3 WHERE principal = $1 AND key = $2",
                who,
                idempotency_key,
                document,
            )
    return Response(document, status_code=201, media_type="application/json")


class _Refused(Exception):
    def __init__(self, response: JSONResponse) -> None:
        self.response = response


@app.exception_handler(_Refused)
async def refused(request: Request, exc: _Refused) -> Response:
    return exc.response


@app.exception_handler(HTTPException)
async def http_problem(request: Request, exc: HTTPException) -> Response:
    slug = {401: "unauthorized", 404: "not-found", 409: "idempotency-key-in-use"}.get(exc.status_code, "error")
    return problem(exc.status_code, slug, str(exc.detail))


def replay(existing: asyncpg.Record, fingerprint: bytes) -> Response:
    if bytes(existing["fingerprint"]) != fingerprint:
        return problem(422, "idempotency-key-reused", "Idempotency-Key reused")
    return Response(
        bytes(existing["response_body"]),
        status_code=existing["status"],
        media_type="application/json",
        headers={"idempotent-replayed": "true"},
    )


@app.get("/v1/orders/{order_id}")
async def get_order(order_id: str, request: Request, who: Annotated[str, Depends(customer)]) -> Response:
    try:
        oid = uuid.UUID(order_id)
    except ValueError:
        return problem(404, "not-found", "Not found")
    async with request.app.state.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM orders WHERE id = $1 AND customer_id = $2", oid, who)
        if row is None:
            return problem(404, "not-found", "Not found")
        lines = await conn.fetch("SELECT * FROM order_lines WHERE order_id = $1 ORDER BY line_no", oid)
    cur = row["currency"]
    out = OrderOut(
        id=str(row["id"]),
        status=row["status"],
        customer_id=row["customer_id"],
        currency=cur,
        lines=[
            Line(
                sku=ln["sku"],
                name=ln["name"],
                quantity=ln["quantity"],
                unit_price=money(ln["unit_price_minor"], cur),
                discount=money(ln["discount_minor"], cur),
                tax=money(ln["tax_minor"], cur),
                tax_rate=ln["tax_rate"],
                total=money(ln["total_minor"], cur),
            )
            for ln in lines
        ],
        subtotal=money(row["subtotal_minor"], cur),
        discount=money(row["discount_minor"], cur),
        tax=money(row["tax_minor"], cur),
        total=money(row["total_minor"], cur),
        coupon=row["coupon_code"],
        prices_include_tax=row["tax_inclusive"],
        cancel_reason=row["cancel_reason"],
        refunded=money(row["refunded_minor"], cur),
        created_at=row["created_at"].isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    )
    return Response(out.model_dump_json(), media_type="application/json")
