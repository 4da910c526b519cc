//! The exceptions the core raises, each defined once, and the conversions into them.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::errors::FieldError;

create_exception!(
    _core,
    ValidationError,
    PyValueError,
    "A request body is not valid. `.errors` lists every problem as (pointer, code, message); \
     `.malformed` is True when the body was not JSON at all; `.catalog` is True when the body was \
     valid and the catalog refused it (an unknown SKU, a coupon's rules): a newer catalog may not."
);
create_exception!(
    _core,
    PriceChangedError,
    PyValueError,
    "The client's expected_total differs from the current price. `.expected` and `.actual` are \
     minor units of `.currency`."
);
create_exception!(
    _core,
    CustomerBlockedError,
    PyException,
    "The customer's restrictions say they may not place orders (403)."
);
create_exception!(_core, IdempotencyError, PyException, "Base of the idempotency-key conflicts.");
create_exception!(
    _core,
    KeyInFlightError,
    IdempotencyError,
    "Another request with this idempotency key is still being processed."
);
create_exception!(
    _core,
    KeyMismatchError,
    IdempotencyError,
    "This idempotency key was already used with a different request body."
);

#[cold]
#[inline(never)]
pub(crate) fn validation_error(
    py: Python<'_>,
    errors: &[FieldError],
    malformed: bool,
    catalog: bool,
) -> PyErr {
    let make = || -> PyResult<PyErr> {
        let items = errors
            .iter()
            .map(|e| PyTuple::new(py, [e.pointer.as_str(), e.code, e.message.as_str()]))
            .collect::<PyResult<Vec<_>>>()?;
        let list = PyList::new(py, items)?;
        let summary = match errors.first() {
            Some(first) if errors.len() == 1 => format!("{}: {}", first.pointer, first.message),
            _ => format!("{} problems in the request body", errors.len()),
        };
        let err = ValidationError::new_err(summary);
        let value = err.value(py);
        value.setattr("errors", list)?;
        value.setattr("malformed", malformed)?;
        value.setattr("catalog", catalog)?;
        Ok(err)
    };
    make().unwrap_or_else(|e| e)
}

#[cold]
#[inline(never)]
pub(crate) fn price_changed(py: Python<'_>, currency: &str, expected: i64, actual: i64) -> PyErr {
    let make = || -> PyResult<PyErr> {
        let err = PriceChangedError::new_err("the order total has changed");
        let value = err.value(py);
        value.setattr("currency", currency)?;
        value.setattr("expected", expected)?;
        value.setattr("actual", actual)?;
        Ok(err)
    };
    make().unwrap_or_else(|e| e)
}
