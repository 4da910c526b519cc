-- The working core: catalog, orders, their lines, the outbox and idempotency records.
-- Timestamps are integer milliseconds since the Unix epoch, UTC; ids are canonical UUID text.

CREATE TABLE products (
    sku         TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    currency    TEXT    NOT NULL,
    price_minor INTEGER NOT NULL CHECK (price_minor >= 0),
    stock       INTEGER NOT NULL CHECK (stock >= 0),
    version     INTEGER NOT NULL UNIQUE,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE orders (
    id             TEXT    PRIMARY KEY,
    customer_id    TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    currency       TEXT    NOT NULL,
    subtotal_minor INTEGER NOT NULL,
    total_minor    INTEGER NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX orders_customer_id_idx ON orders (customer_id, id DESC);

CREATE TABLE order_lines (
    order_id         TEXT    NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no          INTEGER NOT NULL,
    sku              TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_minor INTEGER NOT NULL,
    total_minor      INTEGER NOT NULL,
    PRIMARY KEY (order_id, line_no)
) STRICT;

CREATE TABLE outbox (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT    NOT NULL UNIQUE,
    aggregate_type TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    sequence       INTEGER NOT NULL,
    event_type     TEXT    NOT NULL,
    envelope       TEXT    NOT NULL,
    occurred_at    INTEGER NOT NULL,
    published_at   INTEGER,
    UNIQUE (aggregate_id, sequence)
);
CREATE INDEX outbox_unpublished_idx ON outbox (position) WHERE published_at IS NULL;

CREATE TABLE idempotency_keys (
    principal     TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    fingerprint   BLOB    NOT NULL,
    status        INTEGER NOT NULL,
    response_body BLOB    NOT NULL,
    order_id      TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (principal, key)
) STRICT;
