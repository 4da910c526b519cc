-- pgbench: the create-order transaction, one order per transaction, as plain SQL — the database
-- ceiling for that design. Three lines from three disjoint ranges of the wide catalog, so rows are
-- always locked in SKU order, as orderfast and the FastAPI peer do.
--   pgbench -n -M prepared -c 32 -j 2 -T 15 -f bench/pgbench_create.sql <database>
\set a random(1, 3333)
\set b random(3334, 6666)
\set c random(6667, 10000)
BEGIN;
SELECT gen_random_uuid() AS oid, gen_random_uuid() AS eid \gset
INSERT INTO idempotency_keys (principal, key, fingerprint, status, response_body, order_id, created_at)
    VALUES ('pgbench', :oid, '\x00', 201, '\x00', :oid, now());
UPDATE products SET stock = stock - 1, reserved = reserved + 1 WHERE sku = 'W-' || lpad(:a::text, 5, '0') AND stock >= 1;
UPDATE products SET stock = stock - 1, reserved = reserved + 1 WHERE sku = 'W-' || lpad(:b::text, 5, '0') AND stock >= 1;
UPDATE products SET stock = stock - 1, reserved = reserved + 1 WHERE sku = 'W-' || lpad(:c::text, 5, '0') AND stock >= 1;
INSERT INTO orders (id, customer_id, status, currency, subtotal_minor, discount_minor, tax_minor, total_minor,
                    coupon_code, tax_inclusive, created_at)
    VALUES (:oid, 'pgbench', 'PENDING_PAYMENT', 'USD', 3702, 0, 0, 3702, NULL, false, now());
INSERT INTO order_lines (order_id, line_no, sku, name, quantity, unit_price_minor, discount_minor, tax_minor,
                         total_minor, tax_rate)
    VALUES (:oid, 1, 'W-' || lpad(:a::text, 5, '0'), 'Wide', 1, 1234, 0, 0, 1234, '0'),
           (:oid, 2, 'W-' || lpad(:b::text, 5, '0'), 'Wide', 1, 1234, 0, 0, 1234, '0'),
           (:oid, 3, 'W-' || lpad(:c::text, 5, '0'), 'Wide', 1, 1234, 0, 0, 1234, '0');
INSERT INTO outbox (event_id, aggregate_type, aggregate_id, sequence, event_type, envelope, occurred_at)
    VALUES (:eid, 'order', :oid, 1, 'order.created', '{"type": "order.created"}', now());
COMMIT;
