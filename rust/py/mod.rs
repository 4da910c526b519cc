//! The Python boundary: type and error conversion only. No logic lives here.

mod clock;
mod exceptions;
mod idempotency;
mod orders;
mod ratelimit;
mod render;

use pyo3::prelude::*;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("ValidationError", py.get_type::<exceptions::ValidationError>())?;
    m.add("PriceChangedError", py.get_type::<exceptions::PriceChangedError>())?;
    m.add("CustomerBlockedError", py.get_type::<exceptions::CustomerBlockedError>())?;
    m.add("IdempotencyError", py.get_type::<exceptions::IdempotencyError>())?;
    m.add("KeyInFlightError", py.get_type::<exceptions::KeyInFlightError>())?;
    m.add("KeyMismatchError", py.get_type::<exceptions::KeyMismatchError>())?;
    m.add_function(wrap_pyfunction!(orders::parse_order, m)?)?;
    m.add_function(wrap_pyfunction!(orders::parse_amount, m)?)?;
    m.add_function(wrap_pyfunction!(orders::format_amount, m)?)?;
    m.add_function(wrap_pyfunction!(orders::currency_exponent, m)?)?;
    m.add_function(wrap_pyfunction!(orders::currencies, m)?)?;
    m.add_function(wrap_pyfunction!(orders::new_order_id, m)?)?;
    m.add_function(wrap_pyfunction!(orders::is_order_id, m)?)?;
    m.add_function(wrap_pyfunction!(orders::is_sku, m)?)?;
    m.add_function(wrap_pyfunction!(orders::is_coupon_code, m)?)?;
    m.add_function(wrap_pyfunction!(orders::parse_percent, m)?)?;
    m.add_function(wrap_pyfunction!(idempotency::fingerprint, m)?)?;
    m.add_function(wrap_pyfunction!(render::render_order, m)?)?;
    m.add_class::<orders::OrderDraft>()?;
    m.add_class::<orders::Catalog>()?;
    m.add_class::<orders::PricedOrder>()?;
    m.add_class::<ratelimit::RateLimiter>()?;
    m.add_class::<ratelimit::RateDecision>()?;
    m.add_class::<ratelimit::RateLimitPolicies>()?;
    m.add_class::<idempotency::IdempotencyMap>()?;
    m.add_class::<idempotency::Replay>()?;
    m.add("MAX_ITEMS", crate::validate::MAX_ITEMS)?;
    m.add("MAX_QUANTITY", crate::validate::MAX_QUANTITY)?;
    m.add("MAX_SKU_LEN", crate::validate::MAX_SKU_LEN)?;
    Ok(())
}
