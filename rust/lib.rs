//! orderfast's compiled core. This file only declares modules and registers the Python API;
//! every concern lives in its own file and is pure Rust, testable with `cargo test` alone.

pub mod errors;
pub mod idempotency;
pub mod ids;
pub mod money;
pub mod pricing;
pub mod promotions;
pub mod ratelimit;
pub mod render;
pub mod validate;

#[cfg(feature = "python")]
mod py;

#[cfg(feature = "python")]
#[pyo3::pymodule(gil_used = false)]
fn _core(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
    py::register(m)
}
