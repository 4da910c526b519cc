-- The order's whole life: payment, cancellation, refunds; stock reservations; the relay's outbox
-- bookkeeping and the event feed's commit-ordered positions.

ALTER TABLE orders
    ADD COLUMN cancel_reason  text,
    ADD COLUMN captured_minor bigint NOT NULL DEFAULT 0,
    ADD COLUMN refunded_minor bigint NOT NULL DEFAULT 0,
    ADD COLUMN review         text,
    ADD COLUMN last_sequence  int    NOT NULL DEFAULT 1,
    ADD COLUMN updated_at     timestamptz;
CREATE INDEX orders_pending_created_idx ON orders (created_at) WHERE status = 'PENDING_PAYMENT';

-- Stock held by PENDING_PAYMENT orders; reconcile checks it against their lines.
ALTER TABLE products ADD COLUMN reserved bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0);
UPDATE products p SET reserved = coalesce((
    SELECT sum(l.quantity) FROM order_lines l JOIN orders o ON o.id = l.order_id
    WHERE l.sku = p.sku AND o.status = 'PENDING_PAYMENT'), 0);

CREATE TABLE payment_events (
    event_id     text        PRIMARY KEY,
    order_id     uuid        NOT NULL,
    status       text        NOT NULL,
    amount_minor bigint      NOT NULL,
    currency     char(3)     NOT NULL,
    outcome      text        NOT NULL,
    http_status  smallint    NOT NULL,
    received_at  timestamptz NOT NULL
);

CREATE TABLE refunds (
    id           uuid        PRIMARY KEY,
    order_id     uuid        NOT NULL REFERENCES orders (id),
    amount_minor bigint      NOT NULL CHECK (amount_minor > 0),
    created_at   timestamptz NOT NULL
);
CREATE INDEX refunds_order_idx ON refunds (order_id);

ALTER TABLE outbox
    ADD COLUMN attempts        int         NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN last_error      text,
    ADD COLUMN dead_at         timestamptz,
    ADD COLUMN lease_until     timestamptz,  -- a relay's claim; an expired lease can be claimed again
    ADD COLUMN published_ref   text,         -- the broker's id for the published entry
    -- The inserting transaction: the feed only sequences rows whose transaction has ended.
    ADD COLUMN txid            xid8        NOT NULL DEFAULT pg_current_xact_id(),
    -- Position in the event feed, assigned in commit-safe order (see store/postgres/events.py).
    ADD COLUMN feed_seq        bigint      UNIQUE;
UPDATE outbox SET feed_seq = position;
CREATE INDEX outbox_unsequenced_idx ON outbox (position) WHERE feed_seq IS NULL;
CREATE INDEX outbox_pending_by_aggregate_idx ON outbox (aggregate_id, position) WHERE published_at IS NULL;

-- Every outbox insert wakes the relays (LISTEN orderfast_outbox) when its transaction commits,
-- without an extra round trip from the application.
CREATE FUNCTION orderfast_notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('orderfast_outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION orderfast_notify_outbox();
