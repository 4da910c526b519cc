-- The working core: catalog, orders, their lines, the outbox and idempotency records.

CREATE SEQUENCE catalog_version;

CREATE TABLE products (
    sku         text        PRIMARY KEY,
    name        text        NOT NULL,
    currency    char(3)     NOT NULL,
    price_minor bigint      NOT NULL CHECK (price_minor >= 0),
    stock       bigint      NOT NULL CHECK (stock >= 0),
    version     bigint      NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE UNIQUE INDEX products_version_idx ON products (version);

CREATE TABLE orders (
    id             uuid        PRIMARY KEY,
    customer_id    text        NOT NULL,
    status         text        NOT NULL,
    currency       char(3)     NOT NULL,
    subtotal_minor bigint      NOT NULL,
    total_minor    bigint      NOT NULL,
    created_at     timestamptz NOT NULL
);
-- UUIDv7 ids are time-ordered: newest-first listing per customer is one index range scan.
CREATE INDEX orders_customer_id_idx ON orders (customer_id, id DESC);

CREATE TABLE order_lines (
    order_id         uuid   NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no          int    NOT NULL,
    sku              text   NOT NULL,
    name             text   NOT NULL,
    quantity         int    NOT NULL CHECK (quantity > 0),
    unit_price_minor bigint NOT NULL,
    total_minor      bigint NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE outbox (
    position       bigserial   PRIMARY KEY,
    event_id       uuid        NOT NULL UNIQUE,
    aggregate_type text        NOT NULL,
    aggregate_id   uuid        NOT NULL,
    sequence       int         NOT NULL,
    event_type     text        NOT NULL,
    envelope       jsonb       NOT NULL,
    occurred_at    timestamptz NOT NULL,
    published_at   timestamptz,
    UNIQUE (aggregate_id, sequence)
);
CREATE INDEX outbox_unpublished_idx ON outbox (position) WHERE published_at IS NULL;

CREATE TABLE idempotency_keys (
    principal     text        NOT NULL,
    key           text        NOT NULL,
    fingerprint   bytea       NOT NULL,
    status        smallint    NOT NULL,
    response_body bytea       NOT NULL,
    order_id      uuid        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key)
);
