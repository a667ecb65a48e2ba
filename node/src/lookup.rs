//! The one code path that resolves an AOR: local registrations first, then a
//! short-lived positive cache, then a DHT query with a deadline. Its typed
//! outcome is what the proxy turns into forward / 404 / 480 / 408 / 503.

use crate::metrics::{Metrics, Outcome as OutcomeLabel};
use crate::overlay::{DhtLookup, Overlay};
use crate::storage::{Storage, records::unix_now};
use kadsip_proto::Aor;
use kadsip_proto::overlay::{AorRecord, record_key};
use kadsip_proto::registrar::Binding;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What resolving an AOR found.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Registered on this node: its live bindings.
    Local(Vec<Binding>),
    /// A record with live contacts on other nodes.
    Found(AorRecord),
    /// The lookup completed; nobody knows the AOR.
    NotFound,
    /// Known, but no live contact (expired or unregistered).
    Offline,
    /// The lookup did not complete before its deadline.
    TimedOut,
    /// This node has no overlay peers.
    NoPeers,
}

impl Outcome {
    /// Short name for logs, metrics and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Local(_) => "local",
            Outcome::Found(_) => "found",
            Outcome::NotFound => "not_found",
            Outcome::Offline => "offline",
            Outcome::TimedOut => "timed_out",
            Outcome::NoPeers => "no_peers",
        }
    }
}

/// An outcome with how it was obtained.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The outcome.
    pub outcome: Outcome,
    /// Wall time spent.
    pub latency: Duration,
    /// DHT requests sent (0 for local and cached answers).
    pub requests: u32,
    /// True when answered from the cache.
    pub cached: bool,
}

/// Bounded FIFO cache of recent positive DHT answers. `order` holds one
/// entry per put (key and put time); a key's map entry goes when its latest
/// put leaves the queue, so neither grows past `cap`.
struct Cache {
    map: HashMap<String, (Instant, AorRecord)>,
    order: VecDeque<(String, Instant)>,
    cap: usize,
    ttl: Duration,
}

impl Cache {
    fn get(&mut self, aor: &str, now: Instant) -> Option<AorRecord> {
        match self.map.get(aor) {
            Some((t, r)) if now.duration_since(*t) < self.ttl => Some(r.clone()),
            Some(_) => {
                self.map.remove(aor);
                None
            }
            None => None,
        }
    }

    fn put(&mut self, aor: String, rec: AorRecord, now: Instant) {
        if self.cap == 0 {
            return;
        }
        self.map.insert(aor.clone(), (now, rec));
        self.order.push_back((aor, now));
        while self.order.len() > self.cap {
            let Some((old, at)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&old).is_some_and(|(t, _)| *t == at) {
                self.map.remove(&old);
            }
        }
    }

    fn remove(&mut self, aor: &str) {
        self.map.remove(aor);
    }
}

/// Resolves AORs (shared by the proxy, `/lookup` and `kadsip lookup`).
pub struct Lookup {
    storage: Storage,
    overlay: Overlay,
    metrics: Arc<Metrics>,
    cache: Mutex<Cache>,
    /// Owner keys this node already trusts, per AOR (bounded).
    pins: Mutex<HashMap<String, [u8; 32]>>,
}

/// Most pinned owners remembered.
const MAX_PINS: usize = 65_536;

impl Lookup {
    /// A resolver with a positive cache of `cache_cap` entries living `ttl`.
    pub fn new(
        storage: Storage,
        overlay: Overlay,
        metrics: Arc<Metrics>,
        cache_cap: usize,
        ttl: Duration,
    ) -> Self {
        Lookup {
            storage,
            overlay,
            metrics,
            cache: Mutex::new(Cache {
                map: HashMap::new(),
                order: VecDeque::new(),
                cap: cache_cap,
                ttl,
            }),
            pins: Mutex::new(HashMap::new()),
        }
    }

    /// This node's own live bindings for `aor` (no DHT query).
    pub fn local(&self, aor: &Aor) -> Vec<Binding> {
        let now = unix_now();
        match self.storage.bindings.get(aor.as_str()) {
            Ok(Some(state)) => state
                .bindings
                .into_iter()
                .filter(|b| b.expires > now)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Forgets the cached answer for `aor` (after a failed forward).
    pub fn invalidate(&self, aor: &Aor) {
        if let Ok(mut c) = self.cache.lock() {
            c.remove(aor.as_str());
        }
    }

    fn pinned(&self, aor: &Aor) -> Option<[u8; 32]> {
        if let Ok(Some(u)) = self.storage.users.get(aor.as_str()) {
            return Some(
                ed25519_dalek::SigningKey::from_bytes(&u.signing_key)
                    .verifying_key()
                    .to_bytes(),
            );
        }
        self.pins.lock().ok()?.get(aor.as_str()).copied()
    }

    /// Counts one answered lookup in the metrics and wraps it.
    fn done(&self, started: Instant, outcome: Outcome, requests: u32, cached: bool) -> Resolved {
        let latency = started.elapsed();
        self.metrics
            .lookups
            .get_or_create(&OutcomeLabel {
                outcome: outcome.name(),
            })
            .inc();
        self.metrics.lookup_latency.observe(latency.as_secs_f64());
        Resolved {
            outcome,
            latency,
            requests,
            cached,
        }
    }

    /// Resolves `aor` without waiting, when it can: from this node's own
    /// registrations or the positive cache. `None` means a DHT query is
    /// needed ([`Lookup::resolve`]). Lets the proxy forward a warm call in
    /// the task that received it.
    pub fn resolve_now(&self, aor: &Aor) -> Option<Resolved> {
        let started = Instant::now();
        let now = unix_now();
        if let Ok(Some(state)) = self.storage.bindings.get(aor.as_str()) {
            let live: Vec<Binding> = state
                .bindings
                .into_iter()
                .filter(|b| b.expires > now)
                .collect();
            if !live.is_empty() {
                return Some(self.done(started, Outcome::Local(live), 0, false));
            }
        }
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|mut c| c.get(aor.as_str(), started))?;
        cached
            .has_live_contact(now)
            .then(|| self.done(started, Outcome::Found(cached), 0, true))
    }

    /// Resolves `aor`: [`Lookup::resolve_now`], else a DHT query.
    pub async fn resolve(&self, aor: &Aor) -> Resolved {
        if let Some(r) = self.resolve_now(aor) {
            return r;
        }
        let started = Instant::now();
        let now = unix_now();
        let done = |outcome: Outcome, requests: u32, cached: bool| {
            self.done(started, outcome, requests, cached)
        };
        let key = record_key(aor).to_vec();
        let reply = match self.overlay.lookup(key, self.pinned(aor)).await {
            Ok(r) => r,
            Err(_) => return done(Outcome::TimedOut, 0, false),
        };
        let outcome = match reply.result {
            DhtLookup::Found(rec) => {
                if let Ok(mut p) = self.pins.lock() {
                    if p.len() < MAX_PINS || p.contains_key(aor.as_str()) {
                        p.insert(aor.as_str().to_owned(), rec.owner);
                    }
                }
                if rec.has_live_contact(now) {
                    if let Ok(mut c) = self.cache.lock() {
                        c.put(aor.as_str().to_owned(), rec.clone(), Instant::now());
                    }
                    Outcome::Found(rec)
                } else {
                    Outcome::Offline
                }
            }
            DhtLookup::NotFound => Outcome::NotFound,
            DhtLookup::TimedOut => Outcome::TimedOut,
            DhtLookup::NoPeers => Outcome::NoPeers,
        };
        done(outcome, reply.requests, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(aor: &str) -> AorRecord {
        AorRecord {
            version: kadsip_proto::overlay::RECORD_VERSION,
            aor: aor.into(),
            owner: [0; 32],
            entries: Vec::new(),
        }
    }

    fn cache(cap: usize, ttl: Duration) -> Cache {
        Cache {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap,
            ttl,
        }
    }

    #[test]
    fn cache_keeps_at_most_cap_entries_dropping_the_oldest() {
        let (t0, mut c) = (Instant::now(), cache(3, Duration::from_secs(60)));
        for i in 0..5 {
            c.put(format!("sip:u{i}@x"), rec(&format!("sip:u{i}@x")), t0);
        }
        assert_eq!(c.map.len(), 3);
        assert!(c.get("sip:u0@x", t0).is_none() && c.get("sip:u1@x", t0).is_none());
        assert_eq!(
            c.get("sip:u4@x", t0).map(|r| r.aor),
            Some("sip:u4@x".into())
        );
        // re-putting one AOR, or AORs that expired, never grows either past the cap
        for i in 0..100u64 {
            let t = t0 + Duration::from_millis(i);
            c.put("sip:u4@x".into(), rec("sip:u4@x"), t);
            c.put(format!("sip:e{i}@x"), rec("sip:e@x"), t);
            c.remove(&format!("sip:e{i}@x"));
        }
        assert!(
            c.order.len() <= 3 && c.map.len() <= 3,
            "{} {}",
            c.order.len(),
            c.map.len()
        );
        assert!(c.get("sip:u4@x", t0 + Duration::from_millis(100)).is_some());
    }

    #[test]
    fn cache_entries_expire_after_ttl_and_size_zero_is_off() {
        let (t0, mut c) = (Instant::now(), cache(8, Duration::from_secs(2)));
        c.put("sip:a@x".into(), rec("sip:a@x"), t0);
        assert!(c.get("sip:a@x", t0 + Duration::from_secs(1)).is_some());
        assert!(c.get("sip:a@x", t0 + Duration::from_secs(2)).is_none());
        assert!(c.map.is_empty());
        let mut off = cache(0, Duration::from_secs(60));
        off.put("sip:a@x".into(), rec("sip:a@x"), t0);
        assert!(off.get("sip:a@x", t0).is_none());
    }
}
