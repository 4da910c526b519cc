-- Exact pricing: tax classes, coupons, automatic promotions, and the full price snapshot per order.
-- SKU lists are JSON arrays; timestamps are integer milliseconds since the Unix epoch.

ALTER TABLE products ADD COLUMN tax_class TEXT;

ALTER TABLE orders ADD COLUMN discount_minor INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN tax_minor INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN coupon_code TEXT;
ALTER TABLE orders ADD COLUMN tax_inclusive INTEGER NOT NULL DEFAULT 0;

ALTER TABLE order_lines ADD COLUMN discount_minor INTEGER NOT NULL DEFAULT 0;
ALTER TABLE order_lines ADD COLUMN tax_minor INTEGER NOT NULL DEFAULT 0;
ALTER TABLE order_lines ADD COLUMN tax_rate TEXT NOT NULL DEFAULT '0';

CREATE TABLE coupons (
    code               TEXT    PRIMARY KEY,
    currency           TEXT    NOT NULL,
    percent_off        TEXT,
    amount_off_minor   INTEGER CHECK (amount_off_minor >= 0),
    min_subtotal_minor INTEGER CHECK (min_subtotal_minor >= 0),
    skus               TEXT,
    expires_at         INTEGER,
    max_redemptions    INTEGER CHECK (max_redemptions >= 0),
    redemptions        INTEGER NOT NULL DEFAULT 0,
    version            INTEGER NOT NULL UNIQUE,
    updated_at         INTEGER NOT NULL,
    CHECK ((percent_off IS NULL) <> (amount_off_minor IS NULL)),
    CHECK (max_redemptions IS NULL OR redemptions <= max_redemptions)
) STRICT;

CREATE TABLE promotions (
    id           TEXT    PRIMARY KEY,
    skus         TEXT    NOT NULL,
    percent_off  TEXT    NOT NULL,
    min_quantity INTEGER NOT NULL DEFAULT 1 CHECK (min_quantity >= 1),
    starts_at    INTEGER,
    ends_at      INTEGER,
    version      INTEGER NOT NULL UNIQUE,
    updated_at   INTEGER NOT NULL
) STRICT;
