//! What can lower or tax a price: coupons, automatic line promotions and the tax table.

use std::collections::HashMap;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::money::Percent;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CouponKind {
    /// A percentage of the eligible subtotal, computed once and rounded half-even.
    PercentOff(Percent),
    /// A fixed amount in minor units of the coupon's currency, capped at the eligible subtotal.
    AmountOff(i64),
}

/// An order-level discount a client names with `"coupon": "CODE"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    pub code: String,
    pub currency: String,
    pub kind: CouponKind,
    /// The order subtotal (before any discount) must reach this, in minor units.
    pub min_subtotal: Option<i64>,
    /// Only these SKUs are discounted; `None` means every line.
    pub skus: Option<FxHashSet<String>>,
    /// Unix seconds after which the coupon no longer applies.
    pub expires_at: Option<i64>,
    /// The store enforces this in the order transaction; the snapshot only screens.
    pub max_redemptions: Option<u64>,
    pub redemptions: u64,
}

impl Coupon {
    pub fn covers(&self, sku: &str) -> bool {
        self.skus.as_ref().is_none_or(|skus| skus.contains(sku))
    }

    pub fn expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    pub fn exhausted(&self) -> bool {
        self.max_redemptions.is_some_and(|max| self.redemptions >= max)
    }
}

/// A discount applied automatically to matching lines: `percent_off` of the line when its SKU is in
/// scope and its quantity reaches `min_quantity`. A line gets its best promotion, never two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    pub id: String,
    pub skus: FxHashSet<String>,
    pub percent_off: Percent,
    pub min_quantity: u32,
    /// Unix seconds; the promotion applies from `starts_at` (inclusive) to `ends_at` (exclusive).
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
}

impl Promotion {
    pub fn applies(&self, sku: &str, quantity: u32, now: i64) -> bool {
        quantity >= self.min_quantity
            && self.starts_at.is_none_or(|at| now >= at)
            && self.ends_at.is_none_or(|at| now < at)
            && self.skus.contains(sku)
    }
}

/// Tax rates by product tax class, and whether catalog prices already include tax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxTable {
    rates: FxHashMap<String, (Percent, Arc<str>)>,
    pub inclusive: bool,
    zero: Arc<str>,
}

impl Default for TaxTable {
    fn default() -> Self {
        TaxTable::new(HashMap::new(), false)
    }
}

impl TaxTable {
    pub fn new(rates: HashMap<String, Percent>, inclusive: bool) -> Self {
        let rates = rates.into_iter().map(|(class, p)| (class, (p, Arc::from(p.format())))).collect();
        TaxTable { rates, inclusive, zero: Arc::from("0") }
    }

    /// The rate of a product's class; no class, or a class the table does not name, is untaxed.
    pub fn rate(&self, class: Option<&str>) -> Percent {
        self.rate_with_text(class).0
    }

    /// The rate and its text as the API shows it (formatted once, here, not per order).
    pub fn rate_with_text(&self, class: Option<&str>) -> (Percent, Arc<str>) {
        match class.and_then(|c| self.rates.get(c)) {
            Some((p, text)) => (*p, text.clone()),
            None => (Percent::ZERO, self.zero.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(text: &str) -> Percent {
        Percent::parse(text).unwrap()
    }

    #[test]
    fn coupon_scope_expiry_and_exhaustion() {
        let mut c = Coupon {
            code: "C".into(),
            currency: "USD".into(),
            kind: CouponKind::PercentOff(pct("10")),
            min_subtotal: None,
            skus: None,
            expires_at: Some(100),
            max_redemptions: Some(2),
            redemptions: 1,
        };
        assert!(c.covers("ANY"));
        assert!(!c.expired(99) && c.expired(100));
        assert!(!c.exhausted());
        c.redemptions = 2;
        assert!(c.exhausted());
        c.skus = Some(["A".to_string()].into_iter().collect());
        assert!(c.covers("A") && !c.covers("B"));
    }

    #[test]
    fn promotion_window_and_quantity() {
        let p = Promotion {
            id: "P".into(),
            skus: ["A".to_string()].into_iter().collect(),
            percent_off: pct("5"),
            min_quantity: 3,
            starts_at: Some(10),
            ends_at: Some(20),
        };
        assert!(p.applies("A", 3, 10));
        assert!(!p.applies("A", 2, 10), "below min quantity");
        assert!(!p.applies("A", 3, 9) && !p.applies("A", 3, 20), "outside the window");
        assert!(!p.applies("B", 3, 15), "other SKU");
    }

    #[test]
    fn unknown_tax_class_is_untaxed() {
        let t = TaxTable::new([("standard".to_string(), pct("20"))].into(), false);
        assert_eq!(t.rate(Some("standard")), pct("20"));
        assert_eq!(t.rate(Some("luxury")), Percent::ZERO);
        assert_eq!(t.rate(None), Percent::ZERO);
    }
}
