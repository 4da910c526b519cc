"""Reconciliation queries, in SQL both PostgreSQL and SQLite run unchanged."""

from __future__ import annotations

MISSING_EVENTS = """
SELECT o.id, o.last_sequence, coalesce(e.n, 0), coalesce(e.top, 0)
FROM orders o
LEFT JOIN (SELECT aggregate_id, count(*) AS n, max(sequence) AS top FROM outbox GROUP BY aggregate_id) e
       ON e.aggregate_id = o.id
WHERE coalesce(e.n, 0) <> o.last_sequence OR coalesce(e.top, 0) <> o.last_sequence
"""

ORPHAN_EVENTS = """
SELECT x.event_id, x.aggregate_id FROM outbox x
WHERE x.aggregate_type = 'order' AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = x.aggregate_id)
"""

RESERVED_STOCK = """
SELECT p.sku, p.reserved, coalesce(r.q, 0)
FROM products p
LEFT JOIN (SELECT l.sku, sum(l.quantity) AS q FROM order_lines l JOIN orders o ON o.id = l.order_id
           WHERE o.status = 'PENDING_PAYMENT' GROUP BY l.sku) r ON r.sku = p.sku
WHERE p.reserved <> coalesce(r.q, 0)
"""
