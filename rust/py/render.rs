//! Binding for the order document: a stored order (the Python `Order` dataclass, read by
//! attribute) rendered by the same code as a new one.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::render::{order_document, LineView, OrderHead, PriceView};

/// `orderfast.domain.orders.OrderLine`, field by field (a derived FromPyObject reads attributes).
#[derive(FromPyObject)]
pub(crate) struct LineArg {
    sku: String,
    name: String,
    quantity: u32,
    unit_price: i64,
    discount: i64,
    tax: i64,
    total: i64,
    tax_rate: String,
}

/// `orderfast.domain.orders.Order`, the fields its document shows (enums are `str` subclasses).
#[derive(FromPyObject)]
pub(crate) struct OrderArg {
    id: String,
    customer_id: String,
    status: String,
    currency: String,
    lines: Vec<LineArg>,
    subtotal: i64,
    discount: i64,
    tax: i64,
    total: i64,
    coupon: Option<String>,
    tax_inclusive: bool,
    cancel_reason: Option<String>,
    refunded: i64,
}

#[pyfunction]
#[pyo3(signature = (order, created_at, change=None))]
pub(crate) fn render_order<'py>(
    py: Python<'py>,
    order: OrderArg,
    created_at: &str,
    change: Option<&[u8]>,
) -> PyResult<Bound<'py, PyBytes>> {
    let exponent = super::orders::exponent_of(&order.currency)?;
    let head = OrderHead {
        id: &order.id,
        status: &order.status,
        customer_id: &order.customer_id,
        cancel_reason: order.cancel_reason.as_deref(),
        refunded: order.refunded,
        created_at,
    };
    let price = PriceView {
        currency: &order.currency,
        exponent,
        lines: order.lines.iter().map(|l| LineView {
            sku: &l.sku,
            name: &l.name,
            quantity: l.quantity,
            unit_price: l.unit_price,
            discount: l.discount,
            tax: l.tax,
            total: l.total,
            tax_rate: &l.tax_rate,
        }),
        subtotal: order.subtotal,
        discount: order.discount,
        tax: order.tax,
        total: order.total,
        coupon: order.coupon.as_deref(),
        tax_inclusive: order.tax_inclusive,
    };
    let member = change.map(|c| [b"\"change\":".as_slice(), c].concat());
    Ok(PyBytes::new(py, &order_document(&head, price, member.as_deref())))
}
