//! Bindings for the keyed rate limiter.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::clock;
use crate::ratelimit::{self, ConfigError, Decision, PolicySet};

const NS: f64 = 1e9;

/// The outcome of one `acquire`: what the RateLimit and Retry-After headers need.
#[pyclass(frozen, get_all, module = "orderfast._core")]
pub(crate) struct RateDecision {
    policy: String,
    allowed: bool,
    remaining: u64,
    reset: f64,
    retry_after: f64,
}

fn decision(policy: String, d: Decision) -> RateDecision {
    RateDecision {
        policy,
        allowed: d.allowed,
        remaining: d.remaining,
        reset: d.reset_ns as f64 / NS,
        retry_after: d.retry_after_ns as f64 / NS,
    }
}

fn limiter(quota: u64, period: f64, burst: u64, max_keys: usize) -> PyResult<ratelimit::RateLimiter> {
    if !(period.is_finite() && period > 0.0) {
        return Err(PyValueError::new_err("period must be a positive number of seconds"));
    }
    ratelimit::RateLimiter::new(quota, (period * NS) as u64, burst, max_keys).map_err(|e| {
        PyValueError::new_err(match e {
            ConfigError::ZeroQuota => "quota must be at least 1",
            ConfigError::ZeroPeriod => "period must be positive",
            ConfigError::ZeroBurst => "burst must be at least 1",
        })
    })
}

/// Keyed token bucket (GCRA): `quota` requests per `period` seconds, bursts up to `burst`.
#[pyclass(frozen, module = "orderfast._core")]
pub(crate) struct RateLimiter {
    inner: ratelimit::RateLimiter,
    quota: u64,
    period: f64,
}

#[pymethods]
impl RateLimiter {
    #[new]
    #[pyo3(signature = (quota, period, burst, max_keys = 100_000))]
    fn new(quota: u64, period: f64, burst: u64, max_keys: usize) -> PyResult<Self> {
        if !(period.is_finite() && period > 0.0) {
            return Err(PyValueError::new_err("period must be a positive number of seconds"));
        }
        let inner =
            ratelimit::RateLimiter::new(quota, (period * NS) as u64, burst, max_keys).map_err(|e| {
                PyValueError::new_err(match e {
                    ConfigError::ZeroQuota => "quota must be at least 1",
                    ConfigError::ZeroPeriod => "period must be positive",
                    ConfigError::ZeroBurst => "burst must be at least 1",
                })
            })?;
        Ok(RateLimiter { inner, quota, period })
    }

    #[getter]
    fn quota(&self) -> u64 {
        self.quota
    }

    #[getter]
    fn period(&self) -> f64 {
        self.period
    }

    #[getter]
    fn burst(&self) -> u64 {
        self.inner.burst()
    }

    /// Takes `cost` tokens for `key`. `now_ns` injects the clock (tests); by default a
    /// process-wide monotonic clock is read.
    #[pyo3(signature = (key, cost = 1, now_ns = None))]
    fn acquire(&self, key: &str, cost: u64, now_ns: Option<u64>) -> RateDecision {
        decision(String::new(), self.inner.acquire(key, cost, now_ns.unwrap_or_else(clock::now_ns)))
    }

    fn __len__(&self) -> usize {
        self.inner.key_count()
    }
}

/// Several named limits checked together: a request takes tokens from all of them or from none.
#[pyclass(frozen, module = "orderfast._core")]
pub(crate) struct RateLimitPolicies {
    inner: PolicySet,
    names: Vec<String>,
}

#[pymethods]
impl RateLimitPolicies {
    /// `policies`: [(name, quota, period_seconds, burst)].
    #[new]
    #[pyo3(signature = (policies, max_keys = 100_000))]
    fn new(policies: Vec<(String, u64, f64, u64)>, max_keys: usize) -> PyResult<Self> {
        let mut built = Vec::with_capacity(policies.len());
        for (name, quota, period, burst) in policies {
            built.push((name, limiter(quota, period, burst, max_keys)?));
        }
        let names = built.iter().map(|(n, _)| n.clone()).collect();
        Ok(RateLimitPolicies { inner: PolicySet::new(built), names })
    }

    #[getter]
    fn names(&self) -> Vec<String> {
        self.names.clone()
    }

    /// Carries over what clients have spent under `old` (the set these policies replace on a
    /// reload) for every policy of the same name; a new name starts with full buckets.
    #[pyo3(signature = (old, now_ns = None))]
    fn adopt(&self, old: &RateLimitPolicies, now_ns: Option<u64>) {
        self.inner.adopt(&old.inner, now_ns.unwrap_or_else(clock::now_ns));
    }

    /// One decision per policy, `None` where `keys` has None; tokens are taken only if every
    /// decision allows.
    #[pyo3(signature = (keys, cost = 1, now_ns = None))]
    fn acquire(
        &self,
        keys: Vec<Option<String>>,
        cost: u64,
        now_ns: Option<u64>,
    ) -> PyResult<Vec<Option<RateDecision>>> {
        if keys.len() != self.names.len() {
            return Err(PyValueError::new_err(format!("expected {} keys, one per policy", self.names.len())));
        }
        let refs: Vec<Option<&str>> = keys.iter().map(|k| k.as_deref()).collect();
        let decisions = self.inner.acquire(&refs, cost, now_ns.unwrap_or_else(clock::now_ns));
        Ok(decisions
            .into_iter()
            .zip(&self.names)
            .map(|(d, name)| d.map(|d| decision(name.clone(), d)))
            .collect())
    }
}
