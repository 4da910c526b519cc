use super::*;

fn pct(text: &str) -> Percent {
    Percent::parse(text).unwrap()
}

fn product(sku: &str, currency: &str, unit_price: i64, tax_class: Option<&str>) -> Product {
    Product {
        sku: sku.into(),
        name: format!("Product {sku}").into(),
        currency: currency.into(),
        unit_price,
        tax_class: tax_class.map(str::to_owned),
        max_per_order: None,
    }
}

fn draft(items: &[(&str, u32)], expected_total: Option<i64>, coupon: Option<&str>) -> OrderDraft {
    OrderDraft {
        currency: "USD".into(),
        exponent: 2,
        items: items.iter().map(|(s, q)| ((*s).to_string(), *q)).collect(),
        expected_total,
        coupon: coupon.map(str::to_owned),
    }
}

fn coupon(code: &str, kind: CouponKind) -> Coupon {
    Coupon {
        code: code.into(),
        currency: "USD".into(),
        kind,
        min_subtotal: None,
        skus: None,
        expires_at: None,
        max_redemptions: None,
        redemptions: 0,
    }
}

fn catalog() -> Catalog {
    let c = Catalog::new();
    c.upsert(vec![
        product("A", "USD", 9950, None),
        product("B", "USD", 1, None),
        product("J", "JPY", 100, None),
        product("ONE", "USD", 100, None),
        product("TWO", "USD", 100, None),
        product("THREE", "USD", 100, None),
        product("T", "USD", 1000, Some("standard")),
        product("R", "USD", 999, Some("reduced")),
    ]);
    c.set_tax(TaxTable::new(
        [("standard".to_string(), pct("20")), ("reduced".to_string(), pct("5.5"))].into(),
        false,
    ));
    c
}

fn amounts(l: &PricedLine) -> (i64, i64, i64, i64) {
    (l.subtotal, l.discount, l.tax, l.total)
}

#[test]
fn prices_lines_and_totals_exactly() {
    let priced = catalog().price(&draft(&[("A", 2), ("B", 3)], Some(19903), None), 0).unwrap();
    assert_eq!(priced.lines[0].total, 19900);
    assert_eq!(&*priced.lines[0].name, "Product A");
    assert_eq!(priced.lines[1].total, 3);
    assert_eq!((priced.subtotal, priced.discount, priced.tax, priced.total), (19903, 0, 0, 19903));
}

#[test]
fn expected_total_mismatch_is_price_changed() {
    let err = catalog().price(&draft(&[("A", 1)], Some(9900), None), 0).unwrap_err();
    assert_eq!(err, PricingError::PriceChanged { expected: 9900, actual: 9950 });
}

#[test]
fn unknown_and_foreign_skus_are_field_errors() {
    let PricingError::Invalid(errors) =
        catalog().price(&draft(&[("A", 1), ("Z", 1), ("J", 1)], None, None), 0).unwrap_err()
    else {
        panic!("expected field errors");
    };
    let got: Vec<_> = errors.iter().map(|e| (e.pointer.as_str(), e.code)).collect();
    assert_eq!(got, vec![("/items/1/sku", "unknown_sku"), ("/items/2/sku", "currency_mismatch")]);
}

#[test]
fn overflow_is_a_field_error() {
    let c = Catalog::new();
    c.upsert(vec![product("BIG", "USD", i64::MAX / 2, None), product("BIG2", "USD", i64::MAX / 2, None)]);
    let PricingError::Invalid(errors) = c.price(&draft(&[("BIG", 3)], None, None), 0).unwrap_err() else {
        panic!("expected field errors");
    };
    assert_eq!(errors[0].code, "amount_overflow");
    let PricingError::Invalid(errors) =
        c.price(&draft(&[("BIG", 2), ("BIG2", 2)], None, None), 0).unwrap_err()
    else {
        panic!("expected field errors");
    };
    assert_eq!(errors[0].code, "amount_overflow");
}

#[test]
fn amount_off_is_allocated_by_largest_remainder() {
    let c = catalog();
    c.upsert_coupons(vec![coupon("DOLLAR", CouponKind::AmountOff(100))]);
    let priced = c.price(&draft(&[("ONE", 1), ("TWO", 1), ("THREE", 1)], None, Some("DOLLAR")), 0).unwrap();
    let discounts: Vec<i64> = priced.lines.iter().map(|l| l.discount).collect();
    assert_eq!(discounts, vec![34, 33, 33]);
    assert_eq!((priced.subtotal, priced.discount, priced.total), (300, 100, 200));
    assert_eq!(priced.coupon.as_deref(), Some("DOLLAR"));
}

#[test]
fn amount_off_is_capped_at_the_eligible_subtotal() {
    let c = catalog();
    c.upsert_coupons(vec![coupon("BIG", CouponKind::AmountOff(1_000_000))]);
    let priced = c.price(&draft(&[("ONE", 2)], None, Some("BIG")), 0).unwrap();
    assert_eq!((priced.discount, priced.total), (200, 0));
}

#[test]
fn percent_off_is_rounded_once_on_the_subtotal() {
    let c = catalog();
    // 12.5 % of 3.00 = 37.5 → 38 (half-even), then 13, 13, 12 by largest remainder (ties: earlier line).
    c.upsert_coupons(vec![coupon("EIGHTH", CouponKind::PercentOff(pct("12.5")))]);
    let priced = c.price(&draft(&[("ONE", 1), ("TWO", 1), ("THREE", 1)], None, Some("EIGHTH")), 0).unwrap();
    assert_eq!(priced.discount, 38);
    assert_eq!(priced.lines.iter().map(|l| l.discount).collect::<Vec<_>>(), vec![13, 13, 12]);
}

#[test]
fn coupon_scope_limits_the_discounted_lines() {
    let c = catalog();
    let mut scoped = coupon("ONLY-TWO", CouponKind::PercentOff(pct("50")));
    scoped.skus = Some(["TWO".to_string()].into_iter().collect());
    c.upsert_coupons(vec![scoped]);
    let priced = c.price(&draft(&[("ONE", 1), ("TWO", 1)], None, Some("ONLY-TWO")), 0).unwrap();
    assert_eq!(priced.lines.iter().map(|l| l.discount).collect::<Vec<_>>(), vec![0, 50]);
    let err = c.price(&draft(&[("ONE", 1)], None, Some("ONLY-TWO")), 0).unwrap_err();
    assert_eq!(codes(err), vec!["coupon_not_applicable"]);
}

fn codes(err: PricingError) -> Vec<&'static str> {
    match err {
        PricingError::Invalid(errors) => {
            assert!(errors.iter().all(|e| e.pointer == "/coupon" || e.pointer.starts_with("/items")));
            errors.into_iter().map(|e| e.code).collect()
        }
        other => panic!("expected field errors, got {other:?}"),
    }
}

#[test]
fn coupon_refusals_point_at_the_coupon() {
    let c = catalog();
    let mut expired = coupon("OLD", CouponKind::AmountOff(1));
    expired.expires_at = Some(100);
    let mut used = coupon("USED", CouponKind::AmountOff(1));
    used.max_redemptions = Some(1);
    used.redemptions = 1;
    let mut minimum = coupon("MIN", CouponKind::AmountOff(1));
    minimum.min_subtotal = Some(10_000);
    let mut euro = coupon("EURO", CouponKind::AmountOff(1));
    euro.currency = "EUR".into();
    c.upsert_coupons(vec![expired, used, minimum, euro]);
    let d = |code| draft(&[("A", 1)], None, Some(code));
    assert_eq!(codes(c.price(&d("NOPE"), 0).unwrap_err()), vec!["unknown_coupon"]);
    assert_eq!(codes(c.price(&d("OLD"), 100).unwrap_err()), vec!["coupon_expired"]);
    assert!(c.price(&d("OLD"), 99).is_ok());
    assert_eq!(codes(c.price(&d("USED"), 0).unwrap_err()), vec!["coupon_exhausted"]);
    assert_eq!(codes(c.price(&d("MIN"), 0).unwrap_err()), vec!["coupon_min_subtotal"]);
    assert!(c.price(&draft(&[("A", 2)], None, Some("MIN")), 0).is_ok());
    assert_eq!(codes(c.price(&d("EURO"), 0).unwrap_err()), vec!["coupon_currency_mismatch"]);
}

#[test]
fn coupons_turned_off_refuse_any_coupon_and_nothing_else() {
    let c = catalog();
    c.upsert_coupons(vec![coupon("TEN", CouponKind::AmountOff(10))]);
    assert!(c.price(&draft(&[("A", 1)], None, Some("TEN")), 0).is_ok());
    c.set_coupons_enabled(false);
    for code in ["TEN", "NOPE"] {
        let refused = c.price(&draft(&[("A", 1)], None, Some(code)), 0).unwrap_err();
        assert_eq!(codes(refused), vec!["coupons_disabled"]);
    }
    assert!(c.price(&draft(&[("A", 1)], None, None), 0).is_ok(), "orders without one go on");
    c.set_coupons_enabled(true);
    assert!(c.price(&draft(&[("A", 1)], None, Some("TEN")), 0).is_ok());
}

#[test]
fn exclusive_tax_is_added_per_line_half_even() {
    let priced = catalog().price(&draft(&[("T", 1), ("R", 1), ("ONE", 1)], None, None), 0).unwrap();
    // 10.00 at 20 % = 2.00; 9.99 at 5.5 % = 0.54945 → 0.55; untaxed 1.00.
    assert_eq!(amounts(&priced.lines[0]), (1000, 0, 200, 1200));
    assert_eq!(amounts(&priced.lines[1]), (999, 0, 55, 1054));
    assert_eq!(amounts(&priced.lines[2]), (100, 0, 0, 100));
    assert_eq!((priced.subtotal, priced.tax, priced.total), (2099, 255, 2354));
    assert_eq!(priced.lines[1].tax_rate, pct("5.5"));
}

#[test]
fn inclusive_tax_is_extracted_and_totals_do_not_grow() {
    let c = catalog();
    c.set_tax(TaxTable::new([("standard".to_string(), pct("20"))].into(), true));
    let priced = c.price(&draft(&[("T", 3)], None, None), 0).unwrap();
    // 30.00 including 20 % holds 5.00 of tax.
    assert_eq!(amounts(&priced.lines[0]), (3000, 0, 500, 3000));
    assert!(priced.tax_inclusive);
    assert_eq!(priced.total, 3000);
}

#[test]
fn tax_applies_after_discounts() {
    let c = catalog();
    c.upsert_coupons(vec![coupon("HALF", CouponKind::PercentOff(pct("50")))]);
    let priced = c.price(&draft(&[("T", 1)], None, Some("HALF")), 0).unwrap();
    assert_eq!(amounts(&priced.lines[0]), (1000, 500, 100, 600));
}

#[test]
fn best_automatic_promotion_applies_then_the_coupon_on_what_is_left() {
    let c = catalog();
    let promo = |id: &str, percent: &str, min_quantity| Promotion {
        id: id.into(),
        skus: ["ONE".to_string()].into_iter().collect(),
        percent_off: pct(percent),
        min_quantity,
        starts_at: None,
        ends_at: Some(1000),
    };
    c.upsert_promotions(vec![promo("P10", "10", 1), promo("P25", "25", 4)]);
    let three = c.price(&draft(&[("ONE", 3)], None, None), 0).unwrap();
    assert_eq!(three.lines[0].discount, 30, "10 % of 3.00");
    let four = c.price(&draft(&[("ONE", 4)], None, None), 0).unwrap();
    assert_eq!(four.lines[0].discount, 100, "the better 25 % once 4 are bought");
    let later = c.price(&draft(&[("ONE", 4)], None, None), 1000).unwrap();
    assert_eq!(later.lines[0].discount, 0, "ended");
    c.upsert_coupons(vec![coupon("TEN", CouponKind::PercentOff(pct("10")))]);
    let both = c.price(&draft(&[("ONE", 4), ("TWO", 1)], None, Some("TEN")), 0).unwrap();
    // Coupon base: (400 − 100) + 100 = 400 → 40 off, split 30 / 10.
    assert_eq!(both.lines.iter().map(|l| l.discount).collect::<Vec<_>>(), vec![130, 10]);
    assert_eq!(both.total, 500 - 140);
}

#[test]
fn line_amounts_always_sum_to_the_order() {
    let c = catalog();
    c.upsert_coupons(vec![coupon("ODD", CouponKind::AmountOff(7))]);
    let priced = c.price(&draft(&[("T", 3), ("R", 7), ("ONE", 1), ("B", 5)], None, Some("ODD")), 0).unwrap();
    let sum = |f: fn(&PricedLine) -> i64| priced.lines.iter().map(f).sum::<i64>();
    assert_eq!(sum(|l| l.subtotal), priced.subtotal);
    assert_eq!(sum(|l| l.discount), priced.discount);
    assert_eq!(sum(|l| l.tax), priced.tax);
    assert_eq!(sum(|l| l.total), priced.total);
    assert_eq!(priced.subtotal - priced.discount + priced.tax, priced.total);
}

#[test]
fn upsert_replaces_and_remove_forgets() {
    let c = catalog();
    c.upsert(vec![product("A", "USD", 1000, None)]);
    assert_eq!(c.get("A").unwrap().unit_price, 1000);
    assert_eq!(c.len(), 8);
    assert!(c.remove("A"));
    assert!(c.get("A").is_none());
}

#[test]
fn the_tax_classes_in_use_are_those_products_name() {
    let c = catalog();
    assert_eq!(c.tax_classes(), vec!["reduced".to_string(), "standard".to_string()]);
    c.remove("R");
    assert_eq!(c.tax_classes(), vec!["standard".to_string()]);
}

#[test]
fn a_sku_limit_counts_every_line_naming_the_sku() {
    let c = catalog();
    let mut limited = product("L", "USD", 100, None);
    limited.max_per_order = Some(3);
    c.upsert(vec![limited]);
    assert!(c.price(&draft(&[("L", 3)], None, None), 0).is_ok());
    let PricingError::Invalid(errors) =
        c.price(&draft(&[("L", 2), ("A", 1), ("L", 2)], None, None), 0).unwrap_err()
    else {
        panic!("expected field errors");
    };
    let got: Vec<_> = errors.iter().map(|e| (e.pointer.as_str(), e.code)).collect();
    assert_eq!(got, vec![("/items/2/quantity", "quantity_limit")]);
}

#[test]
fn a_customers_restrictions_apply_to_their_orders_only() {
    let c = catalog();
    let mut usd = FxHashMap::default();
    usd.insert("USD".to_string(), 10_000);
    c.set_restrictions(vec![
        ("blocked".into(), Some(Restrictions { blocked: true, ..Default::default() })),
        (
            "capped".into(),
            Some(Restrictions { max_order_value: usd, max_open_orders: Some(2), ..Default::default() }),
        ),
    ]);
    let one = draft(&[("A", 1)], None, None);
    assert_eq!(c.price_for(&one, 0, Some("blocked")).unwrap_err(), PricingError::Blocked);
    assert!(c.price(&one, 0).is_ok(), "a quote names no customer");
    assert_eq!(c.price_for(&one, 0, Some("capped")).unwrap().open_orders_cap, Some(2));
    assert_eq!(c.price_for(&one, 0, Some("someone")).unwrap().open_orders_cap, None);
    let PricingError::Invalid(errors) =
        c.price_for(&draft(&[("A", 2)], None, None), 0, Some("capped")).unwrap_err()
    else {
        panic!("expected the value limit");
    };
    assert_eq!((errors[0].pointer.as_str(), errors[0].code), ("/items", "order_value_limit"));
    assert!(errors[0].message.ends_with("100.00 USD"), "{}", errors[0].message);
    c.set_restrictions(vec![("blocked".into(), None)]);
    assert!(c.price_for(&one, 0, Some("blocked")).is_ok(), "lifted");
}
