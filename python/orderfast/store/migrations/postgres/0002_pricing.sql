-- Exact pricing: tax classes, coupons, automatic promotions, and the full price snapshot per order.

ALTER TABLE products ADD COLUMN tax_class text;

ALTER TABLE orders
    ADD COLUMN discount_minor bigint  NOT NULL DEFAULT 0,
    ADD COLUMN tax_minor      bigint  NOT NULL DEFAULT 0,
    ADD COLUMN coupon_code    text,
    ADD COLUMN tax_inclusive  boolean NOT NULL DEFAULT false;

ALTER TABLE order_lines
    ADD COLUMN discount_minor bigint NOT NULL DEFAULT 0,
    ADD COLUMN tax_minor      bigint NOT NULL DEFAULT 0,
    ADD COLUMN tax_rate       text   NOT NULL DEFAULT '0';

CREATE TABLE coupons (
    code               text        PRIMARY KEY,
    currency           char(3)     NOT NULL,
    percent_off        text,
    amount_off_minor   bigint      CHECK (amount_off_minor >= 0),
    min_subtotal_minor bigint      CHECK (min_subtotal_minor >= 0),
    skus               text[],
    expires_at         timestamptz,
    max_redemptions    bigint      CHECK (max_redemptions >= 0),
    redemptions        bigint      NOT NULL DEFAULT 0,
    version            bigint      NOT NULL UNIQUE,
    updated_at         timestamptz NOT NULL,
    CHECK ((percent_off IS NULL) <> (amount_off_minor IS NULL)),
    CHECK (max_redemptions IS NULL OR redemptions <= max_redemptions)
);

CREATE TABLE promotions (
    id           text        PRIMARY KEY,
    skus         text[]      NOT NULL,
    percent_off  text        NOT NULL,
    min_quantity int         NOT NULL DEFAULT 1 CHECK (min_quantity >= 1),
    starts_at    timestamptz,
    ends_at      timestamptz,
    version      bigint      NOT NULL UNIQUE,
    updated_at   timestamptz NOT NULL
);
