-- The order's whole life: payment, cancellation, refunds; stock reservations; the relay's outbox
-- bookkeeping. SQLite has one writer at a time, so outbox positions already follow commit order
-- and are the event feed's positions.

ALTER TABLE orders ADD COLUMN cancel_reason TEXT;
ALTER TABLE orders ADD COLUMN captured_minor INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN refunded_minor INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN review TEXT;
ALTER TABLE orders ADD COLUMN last_sequence INTEGER NOT NULL DEFAULT 1;
ALTER TABLE orders ADD COLUMN updated_at INTEGER;
CREATE INDEX orders_pending_created_idx ON orders (created_at) WHERE status = 'PENDING_PAYMENT';

ALTER TABLE products ADD COLUMN reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0);
UPDATE products SET reserved = coalesce((
    SELECT sum(l.quantity) FROM order_lines l JOIN orders o ON o.id = l.order_id
    WHERE l.sku = products.sku AND o.status = 'PENDING_PAYMENT'), 0);

CREATE TABLE payment_events (
    event_id     TEXT    PRIMARY KEY,
    order_id     TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency     TEXT    NOT NULL,
    outcome      TEXT    NOT NULL,
    http_status  INTEGER NOT NULL,
    received_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE refunds (
    id           TEXT    PRIMARY KEY,
    order_id     TEXT    NOT NULL REFERENCES orders (id),
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    created_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX refunds_order_idx ON refunds (order_id);

ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN next_attempt_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN last_error TEXT;
ALTER TABLE outbox ADD COLUMN dead_at INTEGER;
ALTER TABLE outbox ADD COLUMN lease_until INTEGER;
ALTER TABLE outbox ADD COLUMN published_ref TEXT;
CREATE INDEX outbox_pending_by_aggregate_idx ON outbox (aggregate_id, position) WHERE published_at IS NULL;
