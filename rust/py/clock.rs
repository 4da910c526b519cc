//! The monotonic clock the limiter and the idempotency map read when the caller passes none.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the first call in this process. Starts at one second, not zero, so that a
/// key's first timestamp is never the "absent" zero of a fresh limiter.
pub(crate) fn now_ns() -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    1_000_000_000 + epoch.elapsed().as_nanos() as u64
}
