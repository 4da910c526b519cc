//! Keyed token-bucket rate limiting, as GCRA: one timestamp per key, integer nanoseconds.
//!
//! GCRA is the token bucket written as a "theoretical arrival time" (TAT): a bucket of `burst`
//! tokens refilled at `quota` per `period` admits a request of cost `c` at time `now` iff
//! `max(tat, now) + c·T − now ≤ burst·T`, where `T = period / quota`. A key whose TAT is in the
//! past holds a full bucket, exactly like a key never seen, so idle keys can be evicted without
//! changing any decision: that is what bounds memory.
//!
//! Time is passed in by the caller (`now_ns`), which makes the limiter deterministic under test.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

const SHARDS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests of cost 1 still admissible right now after this decision.
    pub remaining: u64,
    /// Nanoseconds until the bucket is full again.
    pub reset_ns: u64,
    /// Nanoseconds until a request of this cost would be admitted (0 when allowed).
    pub retry_after_ns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    ZeroQuota,
    ZeroPeriod,
    ZeroBurst,
}

#[derive(Debug)]
pub struct RateLimiter {
    /// Nanoseconds per token (T).
    interval_ns: u64,
    /// burst · T: how far ahead of now the TAT may run.
    tolerance_ns: u64,
    burst: u64,
    max_keys_per_shard: usize,
    shards: Box<[Mutex<HashMap<String, u64>>]>,
}

impl RateLimiter {
    /// `quota` requests per `period_ns`, bursts of up to `burst`, at most ~`max_keys` keys held.
    pub fn new(quota: u64, period_ns: u64, burst: u64, max_keys: usize) -> Result<Self, ConfigError> {
        if quota == 0 {
            return Err(ConfigError::ZeroQuota);
        }
        if period_ns == 0 {
            return Err(ConfigError::ZeroPeriod);
        }
        if burst == 0 {
            return Err(ConfigError::ZeroBurst);
        }
        let interval_ns = (period_ns / quota).max(1);
        Ok(RateLimiter {
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(burst),
            burst,
            max_keys_per_shard: (max_keys / SHARDS).max(1),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        })
    }

    pub fn burst(&self) -> u64 {
        self.burst
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, u64>> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() as usize) & (SHARDS - 1)]
    }

    /// Takes `cost` tokens for `key` at time `now_ns` if they are there.
    pub fn acquire(&self, key: &str, cost: u64, now_ns: u64) -> Decision {
        let mut map = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        let (decision, new_tat) = self.decide(&map, key, cost, now_ns);
        if decision.allowed {
            self.store(&mut map, key, new_tat, now_ns);
        }
        decision
    }

    /// What taking `cost` tokens would decide, and the key's TAT if it is taken.
    fn decide(&self, map: &HashMap<String, u64>, key: &str, cost: u64, now_ns: u64) -> (Decision, u64) {
        let increment = self.interval_ns.saturating_mul(cost);
        let tat = map.get(key).copied().unwrap_or(now_ns).max(now_ns);
        let new_tat = tat.saturating_add(increment);
        let ahead = new_tat - now_ns;
        if ahead > self.tolerance_ns {
            let backlog = tat - now_ns;
            let denied = Decision {
                allowed: false,
                remaining: (self.tolerance_ns.saturating_sub(backlog)) / self.interval_ns,
                reset_ns: backlog,
                retry_after_ns: ahead - self.tolerance_ns,
            };
            return (denied, tat);
        }
        let allowed = Decision {
            allowed: true,
            remaining: (self.tolerance_ns - ahead) / self.interval_ns,
            reset_ns: ahead,
            retry_after_ns: 0,
        };
        (allowed, new_tat)
    }

    fn store(&self, map: &mut HashMap<String, u64>, key: &str, new_tat: u64, now_ns: u64) {
        match map.get_mut(key) {
            Some(slot) => *slot = new_tat,
            None => {
                if map.len() >= self.max_keys_per_shard {
                    // Keys whose TAT has passed hold full buckets: forgetting them changes nothing.
                    map.retain(|_, t| *t > now_ns);
                }
                map.insert(key.to_owned(), new_tat);
            }
        }
    }

    /// Takes over the keys of `other` (a limiter this one replaces) whose buckets are not full at
    /// `now_ns`: a client that spent its burst before a reload has not got it back after. The TATs
    /// are times, so they keep their meaning under a new quota or burst.
    pub fn adopt(&self, other: &RateLimiter, now_ns: u64) {
        for shard in other.shards.iter() {
            let theirs = shard.lock().unwrap_or_else(|p| p.into_inner());
            for (key, &tat) in theirs.iter().filter(|(_, &t)| t > now_ns) {
                let mut map = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
                self.store(&mut map, key, tat, now_ns);
            }
        }
    }

    /// Keys currently held (for tests and metrics).
    pub fn key_count(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len()).sum()
    }
}

/// Several named limits checked together for one request (say per user and per client IP):
/// tokens are taken from every policy or from none, so a request refused by one limit costs
/// nothing against the others.
#[derive(Debug)]
pub struct PolicySet {
    policies: Vec<(String, RateLimiter)>,
}

impl PolicySet {
    pub fn new(policies: Vec<(String, RateLimiter)>) -> Self {
        PolicySet { policies }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.policies.iter().map(|(n, _)| n.as_str())
    }

    pub fn get(&self, index: usize) -> Option<&RateLimiter> {
        self.policies.get(index).map(|(_, l)| l)
    }

    /// The keys' state of every policy of `old` with the same name as one of these is carried over
    /// (see [`RateLimiter::adopt`]); policies new here start with full buckets.
    pub fn adopt(&self, old: &PolicySet, now_ns: u64) {
        for (name, limiter) in &self.policies {
            if let Some((_, before)) = old.policies.iter().find(|(n, _)| n == name) {
                limiter.adopt(before, now_ns);
            }
        }
    }

    /// One decision per policy (`None` where the request has no key for it). Shards are locked
    /// in policy order, so concurrent callers cannot deadlock, and all are held until every
    /// policy has decided.
    pub fn acquire(&self, keys: &[Option<&str>], cost: u64, now_ns: u64) -> Vec<Option<Decision>> {
        let mut guards = Vec::with_capacity(self.policies.len());
        let mut decisions = Vec::with_capacity(self.policies.len());
        for ((_, limiter), key) in self.policies.iter().zip(keys) {
            let Some(key) = key else {
                decisions.push(None);
                continue;
            };
            let map = limiter.shard(key).lock().unwrap_or_else(|p| p.into_inner());
            let (decision, new_tat) = limiter.decide(&map, key, cost, now_ns);
            decisions.push(Some(decision));
            guards.push((limiter, map, *key, new_tat));
        }
        if decisions.iter().flatten().all(|d| d.allowed) {
            for (limiter, map, key, new_tat) in &mut guards {
                limiter.store(map, key, *new_tat, now_ns);
            }
        }
        decisions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn a_replacing_set_keeps_what_clients_spent_under_the_same_names() {
        let limiter = |quota| RateLimiter::new(quota, SEC, quota, 1000).unwrap();
        let old = PolicySet::new(vec![("user".into(), limiter(2)), ("gone".into(), limiter(2))]);
        assert!(old.acquire(&[Some("u"), Some("u")], 1, 0).iter().flatten().all(|d| d.allowed));
        // The client is 0.5 s ahead (one token at 2/s). Under 10/s with a burst of 10 that is 5
        // tokens spent: the next request leaves 4, not the 9 of a fresh bucket.
        let new = PolicySet::new(vec![("user".into(), limiter(10)), ("fresh".into(), limiter(1))]);
        new.adopt(&old, 0);
        let first = new.get(0).unwrap().acquire("u", 1, 0);
        assert!(first.allowed);
        assert_eq!(first.remaining, 4);
        assert_eq!(new.get(1).unwrap().key_count(), 0, "a new policy starts empty");
        // A key whose bucket has refilled by the reload is not carried (nothing to carry).
        let later = PolicySet::new(vec![("user".into(), limiter(10))]);
        later.adopt(&new, 10 * SEC);
        assert_eq!(later.get(0).unwrap().key_count(), 0);
    }

    #[test]
    fn admits_a_burst_then_the_steady_rate() {
        // 10 per second, burst 5.
        let rl = RateLimiter::new(10, SEC, 5, 1000).unwrap();
        for i in 0..5 {
            let d = rl.acquire("u", 1, 0);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 4 - i);
        }
        let denied = rl.acquire("u", 1, 0);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after_ns, SEC / 10);
        assert!(rl.acquire("u", 1, SEC / 10).allowed);
        assert!(!rl.acquire("u", 1, SEC / 10).allowed);
    }

    #[test]
    fn keys_are_independent() {
        let rl = RateLimiter::new(1, SEC, 1, 1000).unwrap();
        assert!(rl.acquire("a", 1, 0).allowed);
        assert!(!rl.acquire("a", 1, 0).allowed);
        assert!(rl.acquire("b", 1, 0).allowed);
    }

    #[test]
    fn cost_counts_and_oversized_cost_is_denied() {
        let rl = RateLimiter::new(10, SEC, 10, 1000).unwrap();
        assert!(rl.acquire("u", 7, 0).allowed);
        let d = rl.acquire("u", 4, 0);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 3);
        assert!(!rl.acquire("x", 11, 0).allowed);
    }

    #[test]
    fn denial_consumes_nothing() {
        let rl = RateLimiter::new(1, SEC, 1, 1000).unwrap();
        assert!(rl.acquire("u", 1, 0).allowed);
        for _ in 0..100 {
            assert!(!rl.acquire("u", 1, SEC / 2).allowed);
        }
        assert!(rl.acquire("u", 1, SEC).allowed);
    }

    #[test]
    fn reset_reports_time_to_full_bucket() {
        let rl = RateLimiter::new(10, SEC, 10, 1000).unwrap();
        let d = rl.acquire("u", 3, 0);
        assert_eq!(d.reset_ns, 3 * SEC / 10);
    }

    #[test]
    fn idle_keys_are_evicted_to_bound_memory() {
        let rl = RateLimiter::new(1000, SEC, 1, 16 * 4).unwrap();
        for i in 0..1000 {
            rl.acquire(&format!("k{i}"), 1, i * SEC);
        }
        assert!(rl.key_count() <= 16 * 4 + 16, "held {}", rl.key_count());
    }

    #[test]
    fn rejects_degenerate_configuration() {
        assert_eq!(RateLimiter::new(0, SEC, 1, 1).unwrap_err(), ConfigError::ZeroQuota);
        assert_eq!(RateLimiter::new(1, 0, 1, 1).unwrap_err(), ConfigError::ZeroPeriod);
        assert_eq!(RateLimiter::new(1, SEC, 0, 1).unwrap_err(), ConfigError::ZeroBurst);
    }

    #[test]
    fn threads_never_admit_more_than_the_burst() {
        let rl = std::sync::Arc::new(RateLimiter::new(1, 3600 * SEC, 1000, 1000).unwrap());
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let rl = rl.clone();
                std::thread::spawn(move || (0..500).filter(|_| rl.acquire("hot", 1, 0).allowed).count())
            })
            .collect();
        let admitted: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(admitted, 1000);
    }
    #[test]
    fn policies_take_tokens_from_all_or_none() {
        let set = PolicySet::new(vec![
            ("user".into(), RateLimiter::new(10, SEC, 10, 100).unwrap()),
            ("ip".into(), RateLimiter::new(2, SEC, 2, 100).unwrap()),
        ]);
        let allowed = |d: &[Option<Decision>]| d.iter().flatten().all(|d| d.allowed);
        assert!(allowed(&set.acquire(&[Some("u"), Some("1.2.3.4")], 1, 0)));
        assert!(allowed(&set.acquire(&[Some("u"), Some("1.2.3.4")], 1, 0)));
        let third = set.acquire(&[Some("u"), Some("1.2.3.4")], 1, 0);
        assert!(third[0].unwrap().allowed && !third[1].unwrap().allowed, "only the IP limit refuses");
        // The refused request took nothing from the user's bucket: 8 of 10 are left.
        assert_eq!(set.get(0).unwrap().acquire("u", 1, 0).remaining, 7);
        // A policy without a key for this request is skipped.
        let no_ip = set.acquire(&[Some("u"), None], 1, 0);
        assert!(no_ip[1].is_none() && no_ip[0].unwrap().allowed);
        assert_eq!(set.names().collect::<Vec<_>>(), vec!["user", "ip"]);
    }

    #[test]
    fn policy_sets_do_not_deadlock_or_over_admit_under_threads() {
        let set = std::sync::Arc::new(PolicySet::new(vec![
            ("user".into(), RateLimiter::new(1, 3600 * SEC, 300, 100).unwrap()),
            ("ip".into(), RateLimiter::new(1, 3600 * SEC, 1000, 100).unwrap()),
        ]));
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let set = set.clone();
                std::thread::spawn(move || {
                    let user = if t % 2 == 0 { "a" } else { "b" };
                    (0..200)
                        .filter(|_| {
                            set.acquire(&[Some(user), Some("ip")], 1, 0).iter().flatten().all(|d| d.allowed)
                        })
                        .count()
                })
            })
            .collect();
        let admitted: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(admitted, 600, "each user's 300, within the shared IP's 1000");
    }
}
