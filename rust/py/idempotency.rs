//! Bindings for the idempotency map.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::clock;
use super::exceptions::{KeyInFlightError, KeyMismatchError};
use crate::idempotency::{self, Begin, Fingerprint, StoredResponse};

const NS: f64 = 1e9;

/// SHA-256 of a request body (32 bytes).
#[pyfunction]
pub(crate) fn fingerprint<'py>(py: Python<'py>, body: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &idempotency::fingerprint(body))
}

fn to_fingerprint(bytes: &[u8]) -> PyResult<Fingerprint> {
    bytes.try_into().map_err(|_| PyValueError::new_err("a fingerprint is 32 bytes"))
}

fn seconds_to_ns(s: f64) -> PyResult<u64> {
    if s.is_finite() && s > 0.0 {
        Ok((s * NS) as u64)
    } else {
        Err(PyValueError::new_err("durations must be positive numbers of seconds"))
    }
}

/// A stored response to send again, byte for byte.
#[pyclass(frozen, module = "orderfast._core")]
pub(crate) struct Replay {
    inner: std::sync::Arc<StoredResponse>,
}

#[pymethods]
impl Replay {
    #[getter]
    fn status(&self) -> u16 {
        self.inner.status
    }

    #[getter]
    fn headers(&self) -> Vec<(String, String)> {
        self.inner.headers.clone()
    }

    #[getter]
    fn body<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.body)
    }
}

/// Sharded, TTL- and size-bounded map of idempotency key → in flight | completed response.
#[pyclass(frozen, module = "orderfast._core")]
pub(crate) struct IdempotencyMap {
    inner: idempotency::IdempotencyMap,
}

#[pymethods]
impl IdempotencyMap {
    #[new]
    #[pyo3(signature = (ttl = 3600.0, in_flight_ttl = 60.0, capacity = 100_000, max_bytes = 16 << 20))]
    fn new(ttl: f64, in_flight_ttl: f64, capacity: usize, max_bytes: usize) -> PyResult<Self> {
        Ok(IdempotencyMap {
            inner: idempotency::IdempotencyMap::new(
                seconds_to_ns(ttl)?,
                seconds_to_ns(in_flight_ttl)?,
                capacity,
                max_bytes,
            ),
        })
    }

    /// Bytes held (keys, responses and per-entry overhead), never more than about `max_bytes`.
    #[getter]
    fn nbytes(&self) -> usize {
        self.inner.bytes()
    }

    /// None: the caller now owns the key. Replay: answer with it. Raises KeyInFlightError or
    /// KeyMismatchError.
    #[pyo3(signature = (key, fingerprint, now_ns = None))]
    fn begin(&self, key: &str, fingerprint: &[u8], now_ns: Option<u64>) -> PyResult<Option<Replay>> {
        let fp = to_fingerprint(fingerprint)?;
        match self.inner.begin(key, &fp, now_ns.unwrap_or_else(clock::now_ns)) {
            Begin::New => Ok(None),
            Begin::Replay(inner) => Ok(Some(Replay { inner })),
            Begin::InFlight => Err(KeyInFlightError::new_err(key.to_owned())),
            Begin::Mismatch => Err(KeyMismatchError::new_err(key.to_owned())),
        }
    }

    #[pyo3(signature = (key, fingerprint, status, headers, body, now_ns = None))]
    fn complete(
        &self,
        key: &str,
        fingerprint: &[u8],
        status: u16,
        headers: Vec<(String, String)>,
        body: &[u8],
        now_ns: Option<u64>,
    ) -> PyResult<()> {
        let fp = to_fingerprint(fingerprint)?;
        let response = StoredResponse { status, headers, body: body.to_vec() };
        self.inner.complete(key, &fp, response, now_ns.unwrap_or_else(clock::now_ns));
        Ok(())
    }

    fn abandon(&self, key: &str) {
        self.inner.abandon(key)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}
