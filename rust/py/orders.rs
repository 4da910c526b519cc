//! Bindings for validation, money, ids and the catalog pricer.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::exceptions::{price_changed, validation_error, CustomerBlockedError};
use std::collections::HashMap;

use crate::errors::FieldError;
use crate::money::Percent;
use crate::pricing::{self, PricingError, Product, Restrictions};
use crate::promotions::{Coupon, CouponKind, Promotion, TaxTable};
use crate::validate::{self, ParseError};
use crate::{ids, money, render};

/// A syntactically valid create-order request.
#[pyclass(frozen, module = "orderfast._core")]
pub(crate) struct OrderDraft {
    inner: validate::OrderDraft,
}

#[pymethods]
impl OrderDraft {
    #[getter]
    fn currency(&self) -> &str {
        &self.inner.currency
    }

    #[getter]
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self
            .inner
            .items
            .iter()
            .map(|(sku, qty)| (sku.as_str(), *qty).into_pyobject(py))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    #[getter]
    fn expected_total(&self) -> Option<i64> {
        self.inner.expected_total
    }

    #[getter]
    fn coupon(&self) -> Option<&str> {
        self.inner.coupon.as_deref()
    }

    fn __repr__(&self) -> String {
        format!("OrderDraft(currency={:?}, items={:?})", self.inner.currency, self.inner.items)
    }
}

#[pyfunction]
pub(crate) fn parse_order(py: Python<'_>, body: &[u8]) -> PyResult<OrderDraft> {
    validate::parse_order(body).map(|inner| OrderDraft { inner }).map_err(|e| parse_error(py, e))
}

fn parse_error(py: Python<'_>, e: ParseError) -> PyErr {
    match e {
        ParseError::Malformed(message) => validation_error(
            py,
            &[crate::errors::FieldError::new("", "malformed_json", message)],
            true,
            false,
        ),
        ParseError::Invalid(errors) => validation_error(py, &errors, false, false),
    }
}

pub(crate) fn exponent_of(currency: &str) -> PyResult<u8> {
    money::exponent(currency).ok_or_else(|| PyValueError::new_err(format!("unknown currency {currency:?}")))
}

/// Decimal string → minor units of `currency`; ValueError on syntax, precision or overflow.
#[pyfunction]
pub(crate) fn parse_amount(text: &str, currency: &str) -> PyResult<i64> {
    money::parse_amount(text, exponent_of(currency)?).map_err(|e| PyValueError::new_err(e.to_string()))
}

#[pyfunction]
pub(crate) fn format_amount(minor: i64, currency: &str) -> PyResult<String> {
    Ok(money::format_amount(minor, exponent_of(currency)?))
}

#[pyfunction]
pub(crate) fn currency_exponent(currency: &str) -> Option<u8> {
    money::exponent(currency)
}

#[pyfunction]
pub(crate) fn currencies() -> Vec<&'static str> {
    money::codes().collect()
}

#[pyfunction]
pub(crate) fn new_order_id() -> String {
    ids::new_order_id()
}

#[pyfunction]
pub(crate) fn is_coupon_code(text: &str) -> bool {
    validate::is_valid_coupon(text)
}

#[pyfunction]
pub(crate) fn is_sku(text: &str) -> bool {
    validate::is_valid_sku(text)
}

#[pyfunction]
pub(crate) fn is_order_id(text: &str) -> bool {
    ids::is_canonical_uuid(text)
}

/// A priced order: amounts in minor units of `currency`.
#[pyclass(frozen, module = "orderfast._core")]
pub(crate) struct PricedOrder {
    inner: pricing::PricedOrder,
}

#[pymethods]
impl PricedOrder {
    #[getter]
    fn currency(&self) -> &str {
        &self.inner.currency
    }

    /// The customer's cap on unpaid orders (their restrictions), for the store to enforce.
    #[getter]
    fn open_orders_cap(&self) -> Option<u32> {
        self.inner.open_orders_cap
    }

    /// [(sku, name, quantity, unit_price, subtotal, discount, tax, total, tax_rate)]
    #[getter]
    fn lines<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let lines = self
            .inner
            .lines
            .iter()
            .map(|l| {
                (
                    &*l.sku,
                    &*l.name,
                    l.quantity,
                    l.unit_price,
                    l.subtotal,
                    l.discount,
                    l.tax,
                    l.total,
                    &*l.tax_rate_text,
                )
                    .into_pyobject(py)
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, lines)
    }

    #[getter]
    fn subtotal(&self) -> i64 {
        self.inner.subtotal
    }

    #[getter]
    fn discount(&self) -> i64 {
        self.inner.discount
    }

    #[getter]
    fn tax(&self) -> i64 {
        self.inner.tax
    }

    #[getter]
    fn total(&self) -> i64 {
        self.inner.total
    }

    #[getter]
    fn coupon(&self) -> Option<&str> {
        self.inner.coupon.as_deref()
    }

    #[getter]
    fn tax_inclusive(&self) -> bool {
        self.inner.tax_inclusive
    }

    /// Formats minor units of this order's currency as a decimal string.
    fn format(&self, minor: i64) -> String {
        money::format_amount(minor, self.inner.exponent)
    }

    /// The quote document, as JSON bytes.
    fn quote_json<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &render::quote_json(&self.inner))
    }

    /// The order document, as JSON bytes: identity and status around the price fields.
    fn order_json<'py>(
        &self,
        py: Python<'py>,
        id: &str,
        status: &str,
        customer_id: &str,
        created_at: &str,
    ) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &render::order_json(&self.inner, id, status, customer_id, created_at))
    }
}

fn percent(text: &str, what: &str) -> PyResult<Percent> {
    Percent::parse(text).map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

/// Coupon as Python hands it over.
type CouponRow = (
    String,              // code
    String,              // currency
    Option<String>,      // percent_off
    Option<i64>,         // amount_off (minor units)
    Option<i64>,         // min_subtotal (minor units)
    Option<Vec<String>>, // skus
    Option<i64>,         // expires_at (unix seconds)
    Option<u64>,         // max_redemptions
    u64,                 // redemptions so far
);

/// Promotion as Python hands it over: (id, skus, percent_off, min_quantity, starts_at, ends_at).
type PromotionRow = (String, Vec<String>, String, u32, Option<i64>, Option<i64>);
type ProductRow = (String, String, String, i64, Option<String>, Option<u32>);
type RestrictionRow = (String, bool, HashMap<String, i64>, Option<u32>);

/// The per-process catalog snapshot the pricer reads.
#[pyclass(frozen, module = "orderfast._core")]
pub(crate) struct Catalog {
    inner: pricing::Catalog,
}

#[pymethods]
impl Catalog {
    #[new]
    fn new() -> Self {
        Catalog { inner: pricing::Catalog::new() }
    }

    /// Inserts or replaces [(sku, name, currency, unit_price_minor, tax_class, max_per_order)] atomically.
    fn upsert(&self, products: Vec<ProductRow>) -> PyResult<()> {
        let mut batch = Vec::with_capacity(products.len());
        for (sku, name, currency, unit_price, tax_class, max_per_order) in products {
            exponent_of(&currency)?;
            if unit_price < 0 {
                return Err(PyValueError::new_err(format!("negative price for {sku:?}")));
            }
            batch.push(Product {
                sku: sku.into(),
                name: name.into(),
                currency,
                unit_price,
                tax_class,
                max_per_order,
            });
        }
        self.inner.upsert(batch);
        Ok(())
    }

    /// Sets customers' restrictions: [(customer, blocked, {currency: max_order_minor}, max_open_orders)].
    fn set_restrictions(&self, rows: Vec<RestrictionRow>) -> PyResult<()> {
        let mut changes = Vec::with_capacity(rows.len());
        for (customer, blocked, values, max_open_orders) in rows {
            let mut max_order_value = rustc_hash::FxHashMap::default();
            for (currency, minor) in values {
                exponent_of(&currency)?;
                max_order_value.insert(currency, minor);
            }
            changes.push((customer, Some(Restrictions { blocked, max_order_value, max_open_orders })));
        }
        self.inner.set_restrictions(changes);
        Ok(())
    }

    /// Lifts every restriction of these customers.
    fn lift_restrictions(&self, customers: Vec<String>) {
        self.inner.set_restrictions(customers.into_iter().map(|c| (c, None)).collect());
    }

    /// Coupons on or off (a feature flag): off, an order naming a coupon is refused.
    fn set_coupons_enabled(&self, enabled: bool) {
        self.inner.set_coupons_enabled(enabled);
    }

    /// Inserts or replaces coupons: (code, currency, percent_off, amount_off, min_subtotal, skus,
    /// expires_at, max_redemptions, redemptions), exactly one of percent_off / amount_off set.
    fn upsert_coupons(&self, coupons: Vec<CouponRow>) -> PyResult<()> {
        let mut batch = Vec::with_capacity(coupons.len());
        for (
            code,
            currency,
            percent_off,
            amount_off,
            min_subtotal,
            skus,
            expires_at,
            max_redemptions,
            redemptions,
        ) in coupons
        {
            exponent_of(&currency)?;
            let kind = match (percent_off, amount_off) {
                (Some(p), None) => CouponKind::PercentOff(percent(&p, "percent_off")?),
                (None, Some(a)) if a >= 0 => CouponKind::AmountOff(a),
                _ => {
                    return Err(PyValueError::new_err("a coupon has exactly one of percent_off, amount_off"))
                }
            };
            let skus = skus.map(|s| s.into_iter().collect());
            batch.push(Coupon {
                code,
                currency,
                kind,
                min_subtotal,
                skus,
                expires_at,
                max_redemptions,
                redemptions,
            });
        }
        self.inner.upsert_coupons(batch);
        Ok(())
    }

    /// Inserts or replaces automatic promotions: (id, skus, percent_off, min_quantity, starts_at, ends_at).
    fn upsert_promotions(&self, promotions: Vec<PromotionRow>) -> PyResult<()> {
        let mut batch = Vec::with_capacity(promotions.len());
        for (id, skus, percent_off, min_quantity, starts_at, ends_at) in promotions {
            let percent_off = percent(&percent_off, "percent_off")?;
            batch.push(Promotion {
                id,
                skus: skus.into_iter().collect(),
                percent_off,
                min_quantity,
                starts_at,
                ends_at,
            });
        }
        self.inner.upsert_promotions(batch);
        Ok(())
    }

    /// Sets the tax table: class → rate as a percentage string; `inclusive` when prices include tax.
    fn set_tax(&self, rates: HashMap<String, String>, inclusive: bool) -> PyResult<()> {
        let mut parsed = HashMap::with_capacity(rates.len());
        for (class, rate) in rates {
            let p = percent(&rate, &class)?;
            parsed.insert(class, p);
        }
        self.inner.set_tax(TaxTable::new(parsed, inclusive));
        Ok(())
    }

    /// The tax classes the products name, sorted.
    fn tax_classes(&self) -> Vec<String> {
        self.inner.tax_classes()
    }

    fn remove(&self, sku: &str) -> bool {
        self.inner.remove(sku)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __contains__(&self, sku: &str) -> bool {
        self.inner.get(sku).is_some()
    }

    /// Parses, prices and renders a quote in one call: body bytes in, JSON bytes out. With
    /// `customer`, their restrictions apply as they would to their order.
    #[pyo3(signature = (body, now = None, customer = None))]
    fn quote<'py>(
        &self,
        py: Python<'py>,
        body: &[u8],
        now: Option<i64>,
        customer: Option<&str>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let draft = match validate::parse_order(body) {
            Ok(d) => d,
            Err(e) => return Err(parse_error(py, e)),
        };
        match self.inner.price_for(&draft, now.unwrap_or_else(unix_now), customer) {
            Ok(priced) => Ok(PyBytes::new(py, &render::quote_json(&priced))),
            Err(PricingError::Invalid(errors)) => {
                Err(validation_error(py, &errors, false, by_catalog(&errors)))
            }
            Err(PricingError::PriceChanged { expected, actual }) => {
                Err(price_changed(py, &draft.currency, expected, actual))
            }
            Err(PricingError::Blocked) => {
                Err(CustomerBlockedError::new_err("this customer may not place orders"))
            }
        }
    }

    /// Prices a draft; `now` (Unix seconds) defaults to the system clock. With `customer` (an
    /// order), that customer's restrictions apply.
    #[pyo3(signature = (draft, now = None, customer = None))]
    fn price(
        &self,
        py: Python<'_>,
        draft: &OrderDraft,
        now: Option<i64>,
        customer: Option<&str>,
    ) -> PyResult<PricedOrder> {
        let now = now.unwrap_or_else(unix_now);
        match self.inner.price_for(&draft.inner, now, customer) {
            Ok(inner) => Ok(PricedOrder { inner }),
            Err(PricingError::Invalid(errors)) => {
                Err(validation_error(py, &errors, false, by_catalog(&errors)))
            }
            Err(PricingError::PriceChanged { expected, actual }) => {
                Err(price_changed(py, &draft.inner.currency, expected, actual))
            }
            Err(PricingError::Blocked) => {
                Err(CustomerBlockedError::new_err("this customer may not place orders"))
            }
        }
    }
}

/// Whether a newer catalog could change the answer (worth one catch-up refresh before refusing):
/// not when coupons are turned off, which no refresh changes.
fn by_catalog(errors: &[FieldError]) -> bool {
    errors.iter().any(|e| e.code != "coupons_disabled")
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A percentage string → millionths of a percent; ValueError when not exact.
#[pyfunction]
pub(crate) fn parse_percent(text: &str) -> PyResult<i64> {
    Ok(percent(text, "percentage")?.0)
}
