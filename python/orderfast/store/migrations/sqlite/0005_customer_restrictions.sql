-- Order qualification: what an administrator allows one customer to order (catalog-versioned, so
-- every process's snapshot loads a change within one refresh). max_order_value is a JSON object of
-- currency -> minor units.

-- The most one order may hold of a SKU (NULL: no limit), applied by the Rust pricer.
ALTER TABLE products ADD COLUMN max_per_order INTEGER CHECK (max_per_order >= 1);

CREATE TABLE customer_restrictions (
    customer_id     TEXT    PRIMARY KEY,
    blocked         INTEGER NOT NULL DEFAULT 0 CHECK (blocked IN (0, 1)),
    max_order_value TEXT    NOT NULL DEFAULT '{}',
    max_open_orders INTEGER CHECK (max_open_orders >= 1),
    version         INTEGER NOT NULL UNIQUE,
    updated_at      INTEGER NOT NULL
) STRICT;
