//! The idempotency fast path: a sharded, TTL-bounded, size-bounded map of
//! key → in flight | completed(response), with the request's fingerprint.
//!
//! It sits in front of the database record and is never the only guard: a miss here (another
//! process, an eviction, a restart) falls through to the unique constraint in the store.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

const SHARDS: usize = 16;

pub type Fingerprint = [u8; 32];

/// SHA-256 of the request body: equal bodies, equal fingerprints, in every process.
pub fn fingerprint(body: &[u8]) -> Fingerprint {
    Sha256::digest(body).into()
}

/// A response worth replaying, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// First sight of the key: the caller owns it until `complete` or `abandon`.
    New,
    /// Another request with this key is being processed right now.
    InFlight,
    /// The key was used with a different request body.
    Mismatch,
    /// Same key, same body, already answered.
    Replay(Arc<StoredResponse>),
}

#[derive(Debug)]
enum State {
    InFlight,
    Completed(Arc<StoredResponse>),
}

#[derive(Debug)]
struct Entry {
    fingerprint: Fingerprint,
    state: State,
    expires_at_ns: u64,
}

/// Bytes an entry costs beyond its key and response: hash-table slot, Arc, bookkeeping.
const ENTRY_OVERHEAD: usize = 128;

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<String, Entry>,
    bytes: usize,
}

fn cost(key: &str, entry: &Entry) -> usize {
    let response = match &entry.state {
        State::InFlight => 0,
        State::Completed(r) => {
            r.body.len() + r.headers.iter().map(|(k, v)| k.len() + v.len() + 48).sum::<usize>()
        }
    };
    key.len() + response + ENTRY_OVERHEAD
}

impl Shard {
    fn remove(&mut self, key: &str) {
        if let Some(old) = self.map.remove(key) {
            self.bytes -= cost(key, &old);
        }
    }

    /// Drops expired entries, then the completed entries closest to expiry — an eighth of them at
    /// a time, so a full shard pays for eviction once per many inserts, not on every one. The
    /// database still holds whatever is evicted. In-flight entries are never evicted early.
    #[cold]
    fn make_room(&mut self, now_ns: u64) {
        let before = self.map.len();
        self.map.retain(|_, e| e.expires_at_ns > now_ns);
        if self.map.len() < before {
            self.recount();
            return;
        }
        let mut completed: Vec<(u64, &String)> = self
            .map
            .iter()
            .filter(|(_, e)| matches!(e.state, State::Completed(_)))
            .map(|(k, e)| (e.expires_at_ns, k))
            .collect();
        if completed.is_empty() {
            return;
        }
        let n = (completed.len() / 8).max(1);
        completed.select_nth_unstable(n - 1);
        let victims: Vec<String> = completed[..n].iter().map(|(_, k)| (*k).clone()).collect();
        for k in victims {
            self.remove(&k);
        }
    }

    fn recount(&mut self) {
        self.bytes = self.map.iter().map(|(k, e)| cost(k, e)).sum();
    }
}

#[derive(Debug)]
pub struct IdempotencyMap {
    ttl_ns: u64,
    in_flight_ttl_ns: u64,
    max_per_shard: usize,
    max_bytes_per_shard: usize,
    shards: Box<[Mutex<Shard>]>,
}

impl IdempotencyMap {
    /// Completed entries live `ttl_ns`; an in-flight claim lapses after `in_flight_ttl_ns` so a
    /// request that died without releasing its key cannot block it forever. At most about
    /// `capacity` entries and `max_bytes` bytes (keys, responses and overhead) are held.
    pub fn new(ttl_ns: u64, in_flight_ttl_ns: u64, capacity: usize, max_bytes: usize) -> Self {
        IdempotencyMap {
            ttl_ns,
            in_flight_ttl_ns,
            max_per_shard: (capacity / SHARDS).max(1),
            max_bytes_per_shard: (max_bytes / SHARDS).max(ENTRY_OVERHEAD),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, Shard> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        self.shards[(h.finish() as usize) & (SHARDS - 1)].lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn begin(&self, key: &str, fingerprint: &Fingerprint, now_ns: u64) -> Begin {
        let mut shard = self.shard(key);
        if let Some(entry) = shard.map.get(key) {
            if entry.expires_at_ns > now_ns {
                if &entry.fingerprint != fingerprint {
                    return Begin::Mismatch;
                }
                return match &entry.state {
                    State::InFlight => Begin::InFlight,
                    State::Completed(resp) => Begin::Replay(resp.clone()),
                };
            }
        }
        let expires_at_ns = now_ns.saturating_add(self.in_flight_ttl_ns);
        let entry = Entry { fingerprint: *fingerprint, state: State::InFlight, expires_at_ns };
        self.insert(&mut shard, key, entry, now_ns);
        Begin::New
    }

    /// Records the response for a key this caller began; replays will return it. A response too
    /// large for the memory bound is not kept here (the database record still answers replays).
    pub fn complete(&self, key: &str, fingerprint: &Fingerprint, response: StoredResponse, now_ns: u64) {
        let mut shard = self.shard(key);
        let state = State::Completed(Arc::new(response));
        let expires_at_ns = now_ns.saturating_add(self.ttl_ns);
        let entry = Entry { fingerprint: *fingerprint, state, expires_at_ns };
        if cost(key, &entry) > self.max_bytes_per_shard {
            shard.remove(key);
            return;
        }
        self.insert(&mut shard, key, entry, now_ns);
    }

    fn insert(&self, shard: &mut Shard, key: &str, entry: Entry, now_ns: u64) {
        shard.remove(key);
        let size = cost(key, &entry);
        let mut rounds = 0;
        while (shard.map.len() >= self.max_per_shard || shard.bytes + size > self.max_bytes_per_shard)
            && rounds < 64
        {
            let held = shard.map.len();
            shard.make_room(now_ns);
            if shard.map.len() == held {
                break; // only in-flight claims left: they are bounded by concurrency, not evicted
            }
            rounds += 1;
        }
        shard.bytes += size;
        shard.map.insert(key.to_owned(), entry);
    }

    /// Releases an in-flight claim without a response (the request failed before it counted).
    pub fn abandon(&self, key: &str) {
        let mut shard = self.shard(key);
        if matches!(shard.map.get(key), Some(Entry { state: State::InFlight, .. })) {
            shard.remove(key);
        }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).map.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes currently accounted for (keys, responses, per-entry overhead).
    pub fn bytes(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn response(body: &str) -> StoredResponse {
        StoredResponse {
            status: 201,
            headers: vec![("location".into(), "/v1/orders/1".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn fingerprints_are_sha256() {
        assert_eq!(fingerprint(b"abc")[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_ne!(fingerprint(b"a"), fingerprint(b"b"));
    }

    #[test]
    fn lifecycle_new_in_flight_replay() {
        let m = IdempotencyMap::new(60 * SEC, 10 * SEC, 1024, 1 << 20);
        let fp = fingerprint(b"body");
        assert_eq!(m.begin("k", &fp, 0), Begin::New);
        assert_eq!(m.begin("k", &fp, 1), Begin::InFlight);
        m.complete("k", &fp, response("{}"), 2);
        assert_eq!(m.begin("k", &fp, 3), Begin::Replay(Arc::new(response("{}"))));
    }

    #[test]
    fn different_body_is_a_mismatch_in_flight_or_done() {
        let m = IdempotencyMap::new(60 * SEC, 10 * SEC, 1024, 1 << 20);
        let (a, b) = (fingerprint(b"a"), fingerprint(b"b"));
        assert_eq!(m.begin("k", &a, 0), Begin::New);
        assert_eq!(m.begin("k", &b, 0), Begin::Mismatch);
        m.complete("k", &a, response("{}"), 0);
        assert_eq!(m.begin("k", &b, 0), Begin::Mismatch);
    }

    #[test]
    fn abandon_releases_only_in_flight_claims() {
        let m = IdempotencyMap::new(60 * SEC, 10 * SEC, 1024, 1 << 20);
        let fp = fingerprint(b"a");
        assert_eq!(m.begin("k", &fp, 0), Begin::New);
        m.abandon("k");
        assert_eq!(m.begin("k", &fp, 0), Begin::New);
        m.complete("k", &fp, response("{}"), 0);
        m.abandon("k");
        assert!(matches!(m.begin("k", &fp, 0), Begin::Replay(_)));
    }

    #[test]
    fn entries_expire() {
        let m = IdempotencyMap::new(60 * SEC, 10 * SEC, 1024, 1 << 20);
        let fp = fingerprint(b"a");
        assert_eq!(m.begin("k", &fp, 0), Begin::New);
        assert_eq!(m.begin("k", &fp, 10 * SEC), Begin::New, "in-flight claim lapses");
        m.complete("k", &fp, response("{}"), 10 * SEC);
        assert!(matches!(m.begin("k", &fp, 69 * SEC), Begin::Replay(_)));
        assert_eq!(m.begin("k", &fp, 70 * SEC), Begin::New);
    }

    #[test]
    fn size_is_bounded() {
        let m = IdempotencyMap::new(3600 * SEC, 10 * SEC, 64, 1 << 20);
        let fp = fingerprint(b"a");
        for i in 0..10_000u64 {
            let key = format!("k{i}");
            assert_eq!(m.begin(&key, &fp, i), Begin::New);
            m.complete(&key, &fp, response("{}"), i);
        }
        assert!(m.len() <= 64, "held {}", m.len());
    }

    #[test]
    fn bytes_are_bounded_and_accounted_exactly() {
        let m = IdempotencyMap::new(3600 * SEC, 10 * SEC, 1_000_000, 16 * 4096);
        let fp = fingerprint(b"a");
        let body = "x".repeat(1000);
        for i in 0..5_000u64 {
            let key = format!("k{i}");
            m.begin(&key, &fp, i);
            m.complete(&key, &fp, response(&body), i);
        }
        assert!(m.bytes() <= 16 * 4096, "held {} bytes", m.bytes());
        assert!(m.len() >= 16, "eviction keeps the shard useful");
        // A response larger than a shard's budget is not kept, and the claim is released.
        let huge = "y".repeat(10_000);
        m.begin("big", &fp, 6000);
        m.complete("big", &fp, response(&huge), 6000);
        assert_eq!(m.begin("big", &fp, 6001), Begin::New);
        // Accounting: removing everything brings the count back to zero.
        let m = IdempotencyMap::new(3600 * SEC, 10 * SEC, 1024, 1 << 20);
        m.begin("k", &fp, 0);
        m.complete("k", &fp, response("{}"), 0);
        m.complete("k", &fp, response("{\"a\":1}"), 0);
        assert_eq!(m.bytes(), "k".len() + 7 + "location".len() + "/v1/orders/1".len() + 48 + ENTRY_OVERHEAD);
    }

    #[test]
    fn one_winner_per_key_across_threads() {
        let m = Arc::new(IdempotencyMap::new(60 * SEC, 60 * SEC, 1024, 1 << 20));
        let winners: usize = (0..8)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    (0..200)
                        .filter(|i| m.begin(&format!("k{i}"), &fingerprint(b"x"), 0) == Begin::New)
                        .count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(winners, 200);
    }
}
