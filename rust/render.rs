//! JSON rendering of priced orders, straight from Rust: the exact bytes the API sends.
//!
//! The key order and formats match `orderfast.domain.orders.order_document`, so an order's
//! create response and its later `GET` agree field for field.

use crate::money::write_amount;
use crate::pricing::PricedOrder;

fn string(buf: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        // Nothing to escape (the common case: SKUs, codes, ids, most names): copy as is.
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else {
        // serde_json escapes exactly what JSON requires (quotes, backslashes, control characters).
        let _ = serde_json::to_writer(&mut *buf, s);
    }
}

fn amount(buf: &mut Vec<u8>, minor: i64, exponent: u8) {
    buf.push(b'"');
    write_amount(buf, minor, exponent);
    buf.push(b'"');
}

fn integer(buf: &mut Vec<u8>, n: u32) {
    write_amount(buf, i64::from(n), 0);
}

/// One line of an order or quote document.
pub struct LineView<'a> {
    pub sku: &'a str,
    pub name: &'a str,
    pub quantity: u32,
    pub unit_price: i64,
    pub discount: i64,
    pub tax: i64,
    pub total: i64,
    pub tax_rate: &'a str,
}

/// The price part of an order or quote document.
pub struct PriceView<'a, L> {
    pub currency: &'a str,
    pub exponent: u8,
    pub lines: L,
    pub subtotal: i64,
    pub discount: i64,
    pub tax: i64,
    pub total: i64,
    pub coupon: Option<&'a str>,
    pub tax_inclusive: bool,
}

/// What an order document says around its price: identity, state, time.
pub struct OrderHead<'a> {
    pub id: &'a str,
    pub status: &'a str,
    pub customer_id: &'a str,
    pub cancel_reason: Option<&'a str>,
    pub refunded: i64,
    pub created_at: &'a str,
}

/// `"currency":…,"lines":[…],"subtotal":…,…,"prices_include_tax":…` without braces.
fn price_fields<'a, L: Iterator<Item = LineView<'a>>>(buf: &mut Vec<u8>, p: PriceView<'a, L>) {
    let e = p.exponent;
    buf.extend_from_slice(b"\"currency\":");
    string(buf, p.currency);
    buf.extend_from_slice(b",\"lines\":[");
    for (i, l) in p.lines.enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"sku\":");
        string(buf, l.sku);
        buf.extend_from_slice(b",\"name\":");
        string(buf, l.name);
        buf.extend_from_slice(b",\"quantity\":");
        integer(buf, l.quantity);
        buf.extend_from_slice(b",\"unit_price\":");
        amount(buf, l.unit_price, e);
        buf.extend_from_slice(b",\"discount\":");
        amount(buf, l.discount, e);
        buf.extend_from_slice(b",\"tax\":");
        amount(buf, l.tax, e);
        buf.extend_from_slice(b",\"tax_rate\":");
        string(buf, l.tax_rate);
        buf.extend_from_slice(b",\"total\":");
        amount(buf, l.total, e);
        buf.push(b'}');
    }
    buf.extend_from_slice(b"],\"subtotal\":");
    amount(buf, p.subtotal, e);
    buf.extend_from_slice(b",\"discount\":");
    amount(buf, p.discount, e);
    buf.extend_from_slice(b",\"tax\":");
    amount(buf, p.tax, e);
    buf.extend_from_slice(b",\"total\":");
    amount(buf, p.total, e);
    buf.extend_from_slice(b",\"coupon\":");
    match p.coupon {
        Some(c) => string(buf, c),
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(if p.tax_inclusive {
        b",\"prices_include_tax\":true"
    } else {
        b",\"prices_include_tax\":false"
    });
}

fn priced_view(p: &PricedOrder) -> PriceView<'_, impl Iterator<Item = LineView<'_>>> {
    PriceView {
        currency: &p.currency,
        exponent: p.exponent,
        lines: p.lines.iter().map(|l| LineView {
            sku: &l.sku,
            name: &l.name,
            quantity: l.quantity,
            unit_price: l.unit_price,
            discount: l.discount,
            tax: l.tax,
            total: l.total,
            tax_rate: &l.tax_rate_text,
        }),
        subtotal: p.subtotal,
        discount: p.discount,
        tax: p.tax,
        total: p.total,
        coupon: p.coupon.as_deref(),
        tax_inclusive: p.tax_inclusive,
    }
}

/// A quote: the price document alone.
pub fn quote_json(p: &PricedOrder) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256 + 192 * p.lines.len());
    buf.push(b'{');
    price_fields(&mut buf, priced_view(p));
    buf.push(b'}');
    buf
}

/// The order document — the one rendering of an order the API and its events use. `extra`, when
/// given, is one more member's JSON (`"change":{…}` of a transition event) put before the brace.
pub fn order_document<'a, L: Iterator<Item = LineView<'a>>>(
    head: &OrderHead<'_>,
    price: PriceView<'a, L>,
    extra: Option<&[u8]>,
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(512);
    buf.extend_from_slice(b"{\"id\":");
    string(&mut buf, head.id);
    buf.extend_from_slice(b",\"status\":");
    string(&mut buf, head.status);
    buf.extend_from_slice(b",\"customer_id\":");
    string(&mut buf, head.customer_id);
    buf.push(b',');
    let exponent = price.exponent;
    price_fields(&mut buf, price);
    buf.extend_from_slice(b",\"cancel_reason\":");
    match head.cancel_reason {
        Some(r) => string(&mut buf, r),
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"refunded\":");
    amount(&mut buf, head.refunded, exponent);
    buf.extend_from_slice(b",\"created_at\":");
    string(&mut buf, head.created_at);
    if let Some(member) = extra {
        buf.push(b',');
        buf.extend_from_slice(member);
    }
    buf.push(b'}');
    buf
}

/// A new order, straight from its pricing: not canceled, nothing refunded.
pub fn order_json(p: &PricedOrder, id: &str, status: &str, customer_id: &str, created_at: &str) -> Vec<u8> {
    let head = OrderHead { id, status, customer_id, cancel_reason: None, refunded: 0, created_at };
    order_document(&head, priced_view(p), None)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::money::Percent;
    use crate::pricing::PricedLine;

    fn priced() -> PricedOrder {
        PricedOrder {
            currency: "USD".into(),
            exponent: 2,
            lines: vec![PricedLine {
                sku: "A-1".into(),
                name: Arc::from("Caf\u{e9} \"quoted\" \\ \n"),
                quantity: 3,
                unit_price: 333,
                subtotal: 999,
                discount: 100,
                tax: 180,
                total: 1079,
                tax_rate: Percent::parse("20").unwrap(),
                tax_rate_text: Arc::from("20"),
            }],
            subtotal: 999,
            discount: 100,
            tax: 180,
            total: 1079,
            coupon: Some("SAVE".into()),
            tax_inclusive: false,
            open_orders_cap: None,
        }
    }

    #[test]
    fn quote_is_valid_json_with_exact_amounts() {
        let v: serde_json::Value = serde_json::from_slice(&quote_json(&priced())).unwrap();
        assert_eq!(v["lines"][0]["name"], "Caf\u{e9} \"quoted\" \\ \n");
        assert_eq!(v["lines"][0]["unit_price"], "3.33");
        assert_eq!(v["lines"][0]["tax_rate"], "20");
        assert_eq!(v["total"], "10.79");
        assert_eq!(v["coupon"], "SAVE");
        assert_eq!(v["prices_include_tax"], false);
    }

    #[test]
    fn order_wraps_the_price_fields_in_order() {
        let text = String::from_utf8(order_json(
            &priced(),
            "id-1",
            "PENDING_PAYMENT",
            "u-1",
            "2026-01-01T00:00:00.000Z",
        ))
        .unwrap();
        assert!(text.starts_with(r#"{"id":"id-1","status":"PENDING_PAYMENT","customer_id":"u-1","currency":"USD","lines":[{"sku":"A-1""#));
        assert!(text.ends_with(
            r#""coupon":"SAVE","prices_include_tax":false,"cancel_reason":null,"refunded":"0.00","created_at":"2026-01-01T00:00:00.000Z"}"#
        ));
    }
}
