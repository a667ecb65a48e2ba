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

/// Bounded FIFO cache of recent positive DHT answers.
struct Cache {
    map: HashMap<String, (Instant, AorRecord)>,
    order: VecDeque<String>,
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
        if self.map.insert(aor.clone(), (now, rec)).is_none() {
            self.order.push_back(aor);
            while self.map.len() > self.cap {
                match self.order.pop_front() {
                    Some(old) => {
                        self.map.remove(&old);
                    }
                    None => break,
                }
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

    /// Resolves `aor`.
    pub async fn resolve(&self, aor: &Aor) -> Resolved {
        let started = Instant::now();
        let now = unix_now();
        let done = |outcome: Outcome, requests: u32, cached: bool| {
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
        };
        if let Ok(Some(state)) = self.storage.bindings.get(aor.as_str()) {
            let live: Vec<Binding> = state
                .bindings
                .into_iter()
                .filter(|b| b.expires > now)
                .collect();
            if !live.is_empty() {
                return done(Outcome::Local(live), 0, false);
            }
        }
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|mut c| c.get(aor.as_str(), started));
        if let Some(rec) = cached {
            if rec.has_live_contact(now) {
                return done(Outcome::Found(rec), 0, true);
            }
        }
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
