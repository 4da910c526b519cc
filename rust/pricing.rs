//! Pricing from an in-memory catalog snapshot: exact integer minor units, checked arithmetic,
//! half-even rounding, discounts allocated by largest remainder, tax per line.
//!
//! The rules, in order, for each order:
//! 1. line subtotal = unit price × quantity;
//! 2. a line's best automatic promotion: round_half_even(line subtotal × percent);
//! 3. a coupon: on the eligible lines (its SKU scope), percent-off is computed once on their
//!    subtotal after promotions and rounded half-even, amount-off is capped at that subtotal;
//!    either is allocated over those lines in proportion to them, by largest remainder;
//! 4. line net = line subtotal − line discount; line tax, rounded half-even per line: exclusive
//!    pricing adds net × rate, inclusive pricing extracts net × rate / (100 + rate);
//! 5. order amounts are the sums of the line amounts, so lines always add up to the order.
//!
//! Prices always come from the catalog, never from the client. The snapshot is per process and is
//! refreshed by the Python side from the database (the authority).

use std::sync::{Arc, RwLock};

use rustc_hash::FxHashMap;

use crate::errors::{item_pointer, FieldError};
use crate::money::{self, Percent};
use crate::promotions::{Coupon, CouponKind, Promotion, TaxTable};
use crate::validate::OrderDraft;

/// A product as the pricer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub sku: Arc<str>,
    pub name: Arc<str>,
    pub currency: String,
    /// Unit price in minor units of `currency`.
    pub unit_price: i64,
    pub tax_class: Option<String>,
    /// The most of this SKU one order may hold (summed over its lines); None: no limit.
    pub max_per_order: Option<u32>,
}

/// What one customer may order (order qualification), set by an administrator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restrictions {
    /// Refused before anything is priced (403).
    pub blocked: bool,
    /// Currency → the largest order total allowed, in minor units.
    pub max_order_value: FxHashMap<String, i64>,
    /// The most unpaid orders the customer may have at once: enforced by the store, where the
    /// count is exact under concurrency; the pricer only hands it on.
    pub max_open_orders: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    /// The product's own SKU (shared, not copied per order).
    pub sku: Arc<str>,
    pub name: Arc<str>,
    pub quantity: u32,
    pub unit_price: i64,
    pub subtotal: i64,
    pub discount: i64,
    pub tax: i64,
    pub total: i64,
    pub tax_rate: Percent,
    /// `tax_rate` as the API shows it, formatted once when the tax table was set.
    pub tax_rate_text: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedOrder {
    pub currency: String,
    pub exponent: u8,
    pub lines: Vec<PricedLine>,
    pub subtotal: i64,
    pub discount: i64,
    pub tax: i64,
    pub total: i64,
    pub coupon: Option<String>,
    pub tax_inclusive: bool,
    /// The customer's cap on unpaid orders, for the store to enforce (None: no cap).
    pub open_orders_cap: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PricingError {
    /// The customer may not order at all.
    Blocked,
    /// Lines or a coupon that cannot be priced: a client error.
    Invalid(Vec<FieldError>),
    /// The client's `expected_total` is not what the order costs now.
    PriceChanged { expected: i64, actual: i64 },
}

/// Keys are SKUs and codes set by administrators, never by clients, so a fast non-keyed hash is
/// safe here (clients only look up).
#[derive(Debug, Default)]
struct Snapshot {
    products: FxHashMap<Arc<str>, Arc<Product>>,
    coupons: FxHashMap<String, Arc<Coupon>>,
    promotions: FxHashMap<String, Arc<Promotion>>,
    /// SKU → the promotions naming it, rebuilt whenever promotions change.
    promotions_by_sku: FxHashMap<String, Vec<Arc<Promotion>>>,
    tax: TaxTable,
    /// Coupons turned off (a feature flag): an order naming one is refused, whatever the code.
    coupons_off: bool,
    /// Customer → restrictions; only customers an administrator restricted are here.
    customers: FxHashMap<String, Arc<Restrictions>>,
}

/// The catalog snapshot shared by every request of the process.
#[derive(Debug, Default)]
pub struct Catalog {
    snapshot: RwLock<Snapshot>,
}

impl Catalog {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Snapshot> {
        self.snapshot.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Snapshot> {
        self.snapshot.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Inserts or replaces products in one step, so a reader sees all of a refresh or none of it.
    pub fn upsert(&self, products: Vec<Product>) {
        let mut s = self.write();
        for product in products {
            s.products.insert(product.sku.clone(), Arc::new(product));
        }
    }

    pub fn upsert_coupons(&self, coupons: Vec<Coupon>) {
        let mut s = self.write();
        for coupon in coupons {
            s.coupons.insert(coupon.code.clone(), Arc::new(coupon));
        }
    }

    pub fn upsert_promotions(&self, promotions: Vec<Promotion>) {
        let mut s = self.write();
        for p in promotions {
            s.promotions.insert(p.id.clone(), Arc::new(p));
        }
        let mut by_sku: FxHashMap<String, Vec<Arc<Promotion>>> = FxHashMap::default();
        for p in s.promotions.values() {
            for sku in &p.skus {
                by_sku.entry(sku.clone()).or_default().push(p.clone());
            }
        }
        s.promotions_by_sku = by_sku;
    }

    pub fn set_tax(&self, tax: TaxTable) {
        self.write().tax = tax;
    }

    /// Coupons on (the default) or off: off, an order naming a coupon is refused
    /// (`coupons_disabled`) before it is looked up.
    pub fn set_coupons_enabled(&self, enabled: bool) {
        self.write().coupons_off = !enabled;
    }

    /// Sets (or, with `None`, lifts) customers' restrictions in one step.
    pub fn set_restrictions(&self, changes: Vec<(String, Option<Restrictions>)>) {
        let mut s = self.write();
        for (customer, r) in changes {
            match r {
                Some(r) => s.customers.insert(customer, Arc::new(r)),
                None => s.customers.remove(&customer),
            };
        }
    }

    /// The tax classes the products of the snapshot name, sorted (a new tax table must keep them).
    pub fn tax_classes(&self) -> Vec<String> {
        let snap = self.read();
        let classes: std::collections::BTreeSet<&str> =
            snap.products.values().filter_map(|p| p.tax_class.as_deref()).collect();
        classes.into_iter().map(str::to_owned).collect()
    }

    pub fn remove(&self, sku: &str) -> bool {
        self.write().products.remove(sku).is_some()
    }

    pub fn len(&self) -> usize {
        self.read().products.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, sku: &str) -> Option<Arc<Product>> {
        self.read().products.get(sku).cloned()
    }

    /// Prices a draft at time `now` (Unix seconds, for coupon expiry and promotion windows).
    pub fn price(&self, draft: &OrderDraft, now: i64) -> Result<PricedOrder, PricingError> {
        self.price_for(draft, now, None)
    }

    /// Prices a draft for `customer` (an order, not a quote): the customer's restrictions apply —
    /// blocked before anything is priced, the largest order value after.
    pub fn price_for(
        &self,
        draft: &OrderDraft,
        now: i64,
        customer: Option<&str>,
    ) -> Result<PricedOrder, PricingError> {
        let snap = self.read();
        let restrictions = match customer {
            Some(c) if !snap.customers.is_empty() => snap.customers.get(c).cloned(),
            _ => None,
        };
        if restrictions.as_ref().is_some_and(|r| r.blocked) {
            return Err(PricingError::Blocked);
        }
        let mut errors = Vec::new();
        let mut lines = Vec::with_capacity(draft.items.len());
        for (i, (sku, quantity)) in draft.items.iter().enumerate() {
            let Some(product) = snap.products.get(sku.as_str()) else {
                errors.push(FieldError::new(item_pointer(i, "sku"), "unknown_sku", "no such product"));
                continue;
            };
            if product.currency != draft.currency {
                errors.push(FieldError::new(
                    item_pointer(i, "sku"),
                    "currency_mismatch",
                    format!("this product is sold in {}", product.currency),
                ));
                continue;
            }
            if let Some(limit) = product.max_per_order {
                // Summed over the lines naming this SKU so far: one order, one limit.
                let so_far: u64 =
                    draft.items[..=i].iter().filter(|(s, _)| s == sku).map(|(_, q)| u64::from(*q)).sum();
                if so_far > u64::from(limit) {
                    errors.push(FieldError::new(
                        item_pointer(i, "quantity"),
                        "quantity_limit",
                        format!("at most {limit} of this product per order"),
                    ));
                    continue;
                }
            }
            let Some(subtotal) = product.unit_price.checked_mul(i64::from(*quantity)) else {
                errors.push(overflow(i));
                continue;
            };
            let best = snap
                .promotions_by_sku
                .get(sku)
                .into_iter()
                .flatten()
                .filter(|p| p.applies(sku, *quantity, now))
                .map(|p| p.percent_off.min(Percent::HUNDRED))
                .max()
                .unwrap_or(Percent::ZERO);
            let (rate, rate_text) = snap.tax.rate_with_text(product.tax_class.as_deref());
            lines.push(PricedLine {
                sku: product.sku.clone(),
                name: product.name.clone(),
                quantity: *quantity,
                unit_price: product.unit_price,
                subtotal,
                discount: money::percent_of(subtotal, best).unwrap_or(subtotal),
                tax: 0,
                total: 0,
                tax_rate: rate,
                tax_rate_text: rate_text,
            });
        }
        if !errors.is_empty() {
            return Err(PricingError::Invalid(errors));
        }
        let subtotal = checked_sum(lines.iter().map(|l| l.subtotal)).ok_or_else(total_overflow)?;
        if let Some(code) = &draft.coupon {
            if snap.coupons_off {
                return Err(coupon_error("coupons_disabled", "coupons are not accepted at the moment"));
            }
            let coupon =
                snap.coupons.get(code).ok_or_else(|| coupon_error("unknown_coupon", "no such coupon"))?;
            apply_coupon(coupon, &draft.currency, subtotal, &mut lines, now)?;
        }
        let inclusive = snap.tax.inclusive;
        drop(snap);
        for line in &mut lines {
            let net = line.subtotal - line.discount;
            if inclusive {
                line.tax = money::tax_included(net, line.tax_rate);
                line.total = net;
            } else {
                line.tax = money::percent_of(net, line.tax_rate).map_err(|_| total_overflow())?;
                line.total = net.checked_add(line.tax).ok_or_else(total_overflow)?;
            }
        }
        let discount = lines.iter().map(|l| l.discount).sum::<i64>();
        let tax = checked_sum(lines.iter().map(|l| l.tax)).ok_or_else(total_overflow)?;
        let total = checked_sum(lines.iter().map(|l| l.total)).ok_or_else(total_overflow)?;
        if let Some(limit) = restrictions.as_ref().and_then(|r| r.max_order_value.get(&draft.currency)) {
            if total > *limit {
                return Err(PricingError::Invalid(vec![FieldError::new(
                    "/items".to_string(),
                    "order_value_limit",
                    format!(
                        "the most this customer may order at once is {} {}",
                        money::format_amount(*limit, draft.exponent),
                        draft.currency
                    ),
                )]));
            }
        }
        if let Some(expected) = draft.expected_total {
            if expected != total {
                return Err(PricingError::PriceChanged { expected, actual: total });
            }
        }
        Ok(PricedOrder {
            currency: draft.currency.clone(),
            exponent: draft.exponent,
            lines,
            subtotal,
            discount,
            tax,
            total,
            coupon: draft.coupon.clone(),
            tax_inclusive: inclusive,
            open_orders_cap: restrictions.and_then(|r| r.max_open_orders),
        })
    }
}

fn apply_coupon(
    coupon: &Coupon,
    currency: &str,
    subtotal: i64,
    lines: &mut [PricedLine],
    now: i64,
) -> Result<(), PricingError> {
    if coupon.currency != currency {
        return Err(coupon_error(
            "coupon_currency_mismatch",
            &format!("this coupon is for {}", coupon.currency),
        ));
    }
    if coupon.expired(now) {
        return Err(coupon_error("coupon_expired", "this coupon has expired"));
    }
    if coupon.exhausted() {
        return Err(coupon_error("coupon_exhausted", "this coupon has been used up"));
    }
    if coupon.min_subtotal.is_some_and(|min| subtotal < min) {
        return Err(coupon_error("coupon_min_subtotal", "the order subtotal is below this coupon's minimum"));
    }
    let eligible: Vec<usize> = (0..lines.len()).filter(|&i| coupon.covers(&lines[i].sku)).collect();
    let bases: Vec<i64> = eligible.iter().map(|&i| lines[i].subtotal - lines[i].discount).collect();
    let base: i64 = bases.iter().sum(); // ≤ subtotal, which did not overflow
    if eligible.is_empty() || base == 0 {
        return Err(coupon_error("coupon_not_applicable", "this coupon applies to none of the items"));
    }
    let amount = match coupon.kind {
        CouponKind::PercentOff(p) => money::percent_of(base, p.min(Percent::HUNDRED)).unwrap_or(base),
        CouponKind::AmountOff(a) => a.min(base),
    };
    for (&i, share) in eligible.iter().zip(money::allocate(amount, &bases)) {
        lines[i].discount += share;
    }
    Ok(())
}

fn checked_sum(values: impl Iterator<Item = i64>) -> Option<i64> {
    values.into_iter().try_fold(0i64, |acc, v| acc.checked_add(v))
}

#[cold]
fn overflow(i: usize) -> FieldError {
    FieldError::new(item_pointer(i, "quantity"), "amount_overflow", "the amount is too large")
}

#[cold]
fn total_overflow() -> PricingError {
    PricingError::Invalid(vec![FieldError::new("/items", "amount_overflow", "the order total is too large")])
}

#[cold]
fn coupon_error(code: &'static str, message: &str) -> PricingError {
    PricingError::Invalid(vec![FieldError::new("/coupon", code, message)])
}

#[cfg(test)]
#[path = "pricing_tests.rs"]
mod tests;
