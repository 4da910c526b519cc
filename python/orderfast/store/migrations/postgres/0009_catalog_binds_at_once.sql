-- Catalog changes bind at once: the create-order function also takes the catalog version each plan
-- was priced with (o_catalog_version) and refuses, as catalog_stale, a plan whose customer's
-- restrictions row, coupon or products are newer — the process that priced it had not loaded the
-- change (it loads every other process's catalog writes within one refresh). The caller catches up
-- and prices the order again, so a customer blocked (or capped, or limited), a price, a SKU's
-- purchase limit or a coupon changed through one process binds every process from the moment the
-- change commits. (Promotions are not checked: they are not locked here, and a promotion's window
-- is its own clock.) The coupon and product rows are read under the locks the function takes
-- anyway. Everything else is as in 0008.
--
-- Expand, then contract: the earlier signatures stay, as wrappers of this one (a previous release
-- still running during a rollout calls them; they check nothing new).

CREATE FUNCTION orderfast_create_orders(
    o_id uuid[], o_customer text[], o_status text[], o_currency text[], o_subtotal bigint[],
    o_discount bigint[], o_tax bigint[], o_total bigint[], o_coupon text[], o_tax_inclusive boolean[],
    o_created timestamptz[], line_start int[], line_count int[],
    i_principal text[], i_key text[], i_fingerprint bytea[], i_status smallint[], i_body bytea[],
    e_id uuid[], e_aggregate_type text[], e_aggregate_id uuid[], e_sequence int[], e_type text[], e_envelope text[],
    e_occurred timestamptz[],
    l_sku text[], l_name text[], l_quantity int[], l_unit bigint[], l_discount bigint[], l_tax bigint[],
    l_total bigint[], l_rate text[],
    moves jsonb,
    o_open_cap int[],
    o_catalog_version bigint[]
) RETURNS TABLE (i int, outcome text, detail text)
LANGUAGE plpgsql AS $$
DECLARE
    n       int := coalesce(array_length(o_id, 1), 0);
    result  text[] := array_fill('created'::text, ARRAY[n]);
    why     text[] := array_fill(NULL::text, ARRAY[n]);
    skus    text[];
    stock   bigint[];
    taken   bigint[];
    codes   text[];
    left_   bigint[];
    used    bigint[];
    k       int;
    j       int;
    p       int;
    c       int;
    move_start int[] := array_fill(0, ARRAY[greatest(n, 1)]);
    move_count int[] := array_fill(0, ARRAY[greatest(n, 1)]);
    m_sku   text[];
    m_qty   bigint[];
    capped  text[];
    open_   bigint[];
    opened  bigint[];
    q       int;
    who     text;
    stale   int[];
    cver    bigint[];
    pver    bigint[];
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    IF moves IS NULL THEN
        m_sku := l_sku;
        m_qty := l_quantity;
        move_start := line_start;
        move_count := line_count;
    ELSE
        SELECT coalesce(array_agg(m.x ->> 0 ORDER BY o.k, m.j), '{}'),
               coalesce(array_agg((m.x ->> 1)::bigint ORDER BY o.k, m.j), '{}')
          INTO m_sku, m_qty
          FROM jsonb_array_elements(moves) WITH ORDINALITY AS o(v, k),
               jsonb_array_elements(o.v) WITH ORDINALITY AS m(x, j);
        j := 1;
        FOR k IN 1 .. n LOOP
            move_start[k] := j;
            move_count[k] := jsonb_array_length(moves -> (k - 1));
            j := j + move_count[k];
        END LOOP;
    END IF;
    -- 1. The idempotency records, in key order: two batches holding the same two keys take them in
    --    the same order, so they cannot deadlock. A concurrent twin elsewhere waits on the unique
    --    index until this transaction ends. (The caller never puts one key twice in one call.)
    FOR k IN SELECT s.k FROM generate_subscripts(o_id, 1) AS s(k) ORDER BY i_principal[s.k], i_key[s.k] LOOP
        INSERT INTO idempotency_keys (principal, key, fingerprint, status, response_body, order_id, created_at)
        VALUES (i_principal[k], i_key[k], i_fingerprint[k], i_status[k], i_body[k], o_id[k], o_created[k])
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            result[k] := 'duplicate';
        END IF;
    END LOOP;

    -- 1b. A plan priced by a snapshot older than its customer's restrictions row (o_catalog_version:
    --     the snapshot's version; NULL: not checked) is refused as catalog_stale: the caller catches
    --     up and prices it again. So a change to a customer's restrictions binds every order whose
    --     transaction starts after it committed, whichever process priced it.
    SELECT coalesce(array_agg(s.k), '{}')
      INTO stale
      FROM generate_subscripts(o_id, 1) AS s(k)
      JOIN customer_restrictions r ON r.customer_id = o_customer[s.k]
     WHERE o_catalog_version[s.k] IS NOT NULL AND r.version > o_catalog_version[s.k] AND result[s.k] = 'created';
    FOREACH k IN ARRAY stale LOOP
        result[k] := 'catalog_stale';
    END LOOP;

    -- 2a. The capped customers, one advisory lock each in customer order, then their unpaid orders.
    SELECT coalesce(array_agg(DISTINCT o_customer[s.k] ORDER BY o_customer[s.k]), '{}')
      INTO capped
      FROM generate_subscripts(o_id, 1) AS s(k)
     WHERE o_open_cap[s.k] IS NOT NULL AND result[s.k] = 'created';
    FOREACH who IN ARRAY capped LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended('orderfast:open-orders:' || who, 0));
    END LOOP;
    open_ := array_fill(0::bigint, ARRAY[greatest(array_length(capped, 1), 1)]);
    opened := array_fill(0::bigint, ARRAY[greatest(array_length(capped, 1), 1)]);
    FOR q IN 1 .. coalesce(array_length(capped, 1), 0) LOOP
        open_[q] := (SELECT count(*) FROM orders o WHERE o.customer_id = capped[q] AND o.status = 'PENDING_PAYMENT');
    END LOOP;

    -- 2. Lock what the batch needs, in the global order: coupons by code, then products by SKU.
    SELECT coalesce(array_agg(x.code ORDER BY x.code), '{}'),
           coalesce(array_agg(x.room ORDER BY x.code), '{}'),
           coalesce(array_agg(x.version ORDER BY x.code), '{}')
      INTO codes, left_, cver
      FROM (SELECT cp.code, cp.version,
                   CASE WHEN cp.max_redemptions IS NULL THEN NULL
                        ELSE cp.max_redemptions - cp.redemptions END AS room
              FROM coupons cp
             WHERE cp.code = ANY (o_coupon)
             ORDER BY cp.code
               FOR UPDATE) x;
    used := array_fill(0::bigint, ARRAY[greatest(array_length(codes, 1), 1)]);
    SELECT coalesce(array_agg(x.sku ORDER BY x.sku), '{}'), coalesce(array_agg(x.stock ORDER BY x.sku), '{}'),
           coalesce(array_agg(x.version ORDER BY x.sku), '{}')
      INTO skus, stock, pver
      FROM (SELECT pr.sku, pr.stock, pr.version
              FROM products pr
             WHERE pr.sku = ANY (m_sku)
             ORDER BY pr.sku
               FOR UPDATE) x;
    taken := array_fill(0::bigint, ARRAY[greatest(array_length(skus, 1), 1)]);

    -- 3. Apply each plan in arrival order against what is left: its conditions, in its order.
    FOR k IN 1 .. n LOOP
        CONTINUE WHEN result[k] <> 'created';
        -- 3a. Priced by a snapshot older than its coupon or one of its products: stale (1b's rule).
        IF o_catalog_version[k] IS NOT NULL THEN
            IF o_coupon[k] IS NOT NULL THEN
                c := array_position(codes, o_coupon[k]);
                IF c IS NOT NULL AND cver[c] > o_catalog_version[k] THEN
                    result[k] := 'catalog_stale';
                END IF;
            END IF;
            FOR j IN move_start[k] .. move_start[k] + move_count[k] - 1 LOOP
                p := array_position(skus, m_sku[j]);
                IF p IS NOT NULL AND pver[p] > o_catalog_version[k] THEN
                    result[k] := 'catalog_stale';
                    EXIT;
                END IF;
            END LOOP;
            CONTINUE WHEN result[k] <> 'created';
        END IF;
        IF o_open_cap[k] IS NOT NULL THEN
            q := array_position(capped, o_customer[k]);
            IF open_[q] + opened[q] >= o_open_cap[k] THEN
                result[k] := 'open_orders_exceeded';
                why[k] := o_open_cap[k]::text;
                CONTINUE;
            END IF;
        END IF;
        IF o_coupon[k] IS NOT NULL THEN
            c := array_position(codes, o_coupon[k]);
            IF c IS NULL OR (left_[c] IS NOT NULL AND used[c] >= left_[c]) THEN
                result[k] := 'coupon_exhausted';
                why[k] := o_coupon[k];
                CONTINUE;
            END IF;
        END IF;
        FOR j IN move_start[k] .. move_start[k] + move_count[k] - 1 LOOP
            p := array_position(skus, m_sku[j]);
            IF p IS NULL OR stock[p] - taken[p] < m_qty[j] THEN
                result[k] := 'out_of_stock';
                why[k] := m_sku[j];
                EXIT;
            END IF;
        END LOOP;
        CONTINUE WHEN result[k] <> 'created';
        FOR j IN move_start[k] .. move_start[k] + move_count[k] - 1 LOOP
            p := array_position(skus, m_sku[j]);
            taken[p] := taken[p] + m_qty[j];
        END LOOP;
        IF o_coupon[k] IS NOT NULL THEN
            used[c] := used[c] + 1;
        END IF;
        IF o_open_cap[k] IS NOT NULL THEN
            opened[q] := opened[q] + 1;
        END IF;
    END LOOP;

    -- 4. Write: each locked row once, then the created orders, their lines and events.
    UPDATE products pr
       SET stock = pr.stock - t.q, reserved = pr.reserved + t.q
      FROM unnest(skus, taken[1:array_length(skus, 1)]) AS t(sku, q)
     WHERE pr.sku = t.sku AND t.q > 0;
    UPDATE coupons cp
       SET redemptions = cp.redemptions + t.q
      FROM unnest(codes, used[1:array_length(codes, 1)]) AS t(code, q)
     WHERE cp.code = t.code AND t.q > 0;
    -- An order refused for stock, coupon, its cap or a stale snapshot leaves no idempotency record
    -- (a retry may succeed).
    -- (One primary-key delete per refused order: a join here would scan the whole table.)
    FOR k IN 1 .. n LOOP
        CONTINUE WHEN result[k] NOT IN ('out_of_stock', 'coupon_exhausted', 'open_orders_exceeded', 'catalog_stale');
        DELETE FROM idempotency_keys ik
         WHERE ik.principal = i_principal[k] AND ik.key = i_key[k] AND ik.order_id = o_id[k];
    END LOOP;
    INSERT INTO orders (id, customer_id, status, currency, subtotal_minor, discount_minor, tax_minor,
                        total_minor, coupon_code, tax_inclusive, created_at)
    SELECT o_id[s.k], o_customer[s.k], o_status[s.k], o_currency[s.k], o_subtotal[s.k], o_discount[s.k],
           o_tax[s.k], o_total[s.k], o_coupon[s.k], o_tax_inclusive[s.k], o_created[s.k]
      FROM generate_subscripts(o_id, 1) AS s(k)
     WHERE result[s.k] = 'created';
    INSERT INTO order_lines (order_id, line_no, sku, name, quantity, unit_price_minor, discount_minor,
                             tax_minor, total_minor, tax_rate)
    SELECT o_id[s.k], g.x - line_start[s.k] + 1, l_sku[g.x], l_name[g.x], l_quantity[g.x], l_unit[g.x],
           l_discount[g.x], l_tax[g.x], l_total[g.x], l_rate[g.x]
      FROM generate_subscripts(o_id, 1) AS s(k),
           generate_series(line_start[s.k], line_start[s.k] + line_count[s.k] - 1) AS g(x)
     WHERE result[s.k] = 'created';
    INSERT INTO outbox (event_id, aggregate_type, aggregate_id, sequence, event_type, envelope, occurred_at)
    SELECT e_id[s.k], e_aggregate_type[s.k], e_aggregate_id[s.k], e_sequence[s.k], e_type[s.k],
           e_envelope[s.k]::jsonb, e_occurred[s.k]
      FROM generate_subscripts(o_id, 1) AS s(k)
     WHERE result[s.k] = 'created';

    RETURN QUERY SELECT s.k, result[s.k], why[s.k] FROM generate_subscripts(o_id, 1) AS s(k);
END
$$;


-- 0008's signature (a release before this one): no version, nothing checked for staleness.
DROP FUNCTION orderfast_create_orders(
    uuid[], text[], text[], text[], bigint[], bigint[], bigint[], bigint[], text[], boolean[], timestamptz[],
    int[], int[], text[], text[], bytea[], smallint[], bytea[], uuid[], text[], uuid[], int[], text[], text[],
    timestamptz[], text[], text[], int[], bigint[], bigint[], bigint[], bigint[], text[], jsonb,
    int[]
);
CREATE FUNCTION orderfast_create_orders(
    uuid[], text[], text[], text[], bigint[], bigint[], bigint[], bigint[], text[], boolean[], timestamptz[],
    int[], int[], text[], text[], bytea[], smallint[], bytea[], uuid[], text[], uuid[], int[], text[], text[],
    timestamptz[], text[], text[], int[], bigint[], bigint[], bigint[], bigint[], text[], jsonb,
    int[]
) RETURNS TABLE (i int, outcome text, detail text)
LANGUAGE sql AS $$
    SELECT * FROM orderfast_create_orders($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, NULL::bigint[])
$$;

-- 0006's signature (two releases back, dropped by 0008): no cap either.
CREATE FUNCTION orderfast_create_orders(
    uuid[], text[], text[], text[], bigint[], bigint[], bigint[], bigint[], text[], boolean[], timestamptz[],
    int[], int[], text[], text[], bytea[], smallint[], bytea[], uuid[], text[], uuid[], int[], text[], text[],
    timestamptz[], text[], text[], int[], bigint[], bigint[], bigint[], bigint[], text[], jsonb
) RETURNS TABLE (i int, outcome text, detail text)
LANGUAGE sql AS $$
    SELECT * FROM orderfast_create_orders($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, NULL::int[], NULL::bigint[])
$$;
