//! The node's registrar (RFC 3261 §10.3): digest authentication (SHA-256
//! offered before MD5, no user enumeration), the pure binding rules from
//! kadsip-proto, group-committed durability before the 200, and publication
//! of the signed entry into the DHT.

use crate::metrics::{MethodCode, Metrics};
use crate::overlay::{Overlay, OverlayError};
use crate::sip::transport::Source;
use crate::storage::{AorState, Committer, Storage, User, records::unix_now};
use ed25519_dalek::SigningKey;
use kadsip_proto::digest::{Algorithm, Challenge, Credentials, NcTracker, NonceKey, NonceStatus};
use kadsip_proto::header::StdHeader;
use kadsip_proto::overlay::{AorRecord, ContactBinding, NodeEntry, RecordError, record_key};
use kadsip_proto::registrar::{self, Policy, RegisterError};
use kadsip_proto::{Aor, Request, Response, StatusCode};
use std::sync::{Arc, Mutex};

/// How long a nonce stays fresh.
pub const NONCE_MAX_AGE: u64 = 300;
/// A publication stored on fewer peers than this is retried.
const MIN_REPLICAS: usize = 1;
/// How often, at most, a publication is retried.
const PUBLISH_RETRIES: u32 = 4;
/// First retry delay (doubling).
const PUBLISH_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// How long the owner's claim on an AOR is published for.
pub const CLAIM_SECS: u64 = 30 * 86_400;
/// How long a tombstone (all contacts removed) stays in the DHT.
pub const TOMBSTONE_SECS: u64 = 86_400;

/// Registrar settings.
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    /// Digest realm; `None` uses the domain of the AOR being registered
    /// (what `kadsip user add` assumes by default).
    pub realm: Option<String>,
    /// Domains served (empty: all).
    pub domains: Vec<String>,
    /// Lab mode: no authentication, keys created on first REGISTER.
    pub open: bool,
    /// Binding bounds.
    pub policy: Policy,
    /// Digest algorithms offered, most preferred first.
    pub algorithms: Vec<Algorithm>,
}

/// The registrar service, shared by the SIP core's request tasks.
pub struct Registrar {
    cfg: RegistrarConfig,
    storage: Storage,
    committer: Committer,
    overlay: Overlay,
    metrics: Arc<Metrics>,
    nonces: NonceKey,
    nc: Mutex<NcTracker>,
    /// Serialises updates per AOR so concurrent REGISTERs do not race.
    locks: Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    addrs: Arc<Mutex<Vec<String>>>,
    /// Latest contact expiry per local AOR, mirrored from sled on every
    /// write so the registrations gauge never scans and decodes the store.
    live: Mutex<std::collections::HashMap<String, u64>>,
    /// Unix second the registrations gauge was last recomputed (REGISTER
    /// recomputes it at most once a second).
    gauge_at: std::sync::atomic::AtomicU64,
}

impl Registrar {
    /// Creates the registrar.
    pub fn new(
        cfg: RegistrarConfig,
        storage: Storage,
        committer: Committer,
        overlay: Overlay,
        metrics: Arc<Metrics>,
        nonce_secret: [u8; 32],
        addrs: Arc<Mutex<Vec<String>>>,
    ) -> Registrar {
        let live = storage
            .bindings
            .all()
            .filter_map(Result::ok)
            .map(|(aor, s)| (aor, latest_expiry(&s)))
            .collect();
        Registrar {
            cfg,
            storage,
            committer,
            overlay,
            metrics,
            nonces: NonceKey::new(nonce_secret),
            nc: Mutex::new(NcTracker::new(65_536)),
            locks: Mutex::new(std::collections::HashMap::new()),
            addrs,
            live: Mutex::new(live),
            gauge_at: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn realm_for<'a>(&'a self, aor: &'a Aor) -> &'a str {
        self.cfg
            .realm
            .as_deref()
            .unwrap_or_else(|| aor.as_str().rsplit_once('@').map_or("kadsip", |(_, h)| h))
    }

    fn challenge(&self, req: &Request, realm: &str, stale: bool, to_tag: &str) -> Response {
        let now = unix_now();
        let mut salt = [0u8; 8];
        let _ = getrandom::fill(&mut salt);
        let nonce = self.nonces.issue(now, salt);
        let mut r = Response::to_request(req, StatusCode::UNAUTHORIZED, Some(to_tag));
        for alg in &self.cfg.algorithms {
            let c = Challenge::digest(realm, &nonce, alg.clone(), stale, None);
            r.headers.push(StdHeader::WwwAuthenticate, c.to_string());
        }
        r
    }

    fn find_user(&self, username: &str, realm: &str) -> Option<User> {
        let guess = format!("sip:{username}@{realm}");
        if let Ok(Some(u)) = self.storage.users.get(&guess) {
            if u.username == username && u.realm == realm {
                return Some(u);
            }
        }
        self.storage
            .users
            .all()
            .filter_map(Result::ok)
            .find(|u| u.username == username && u.realm == realm)
    }

    /// Checks the credentials; `Err` is the 401/403 to send.
    fn authenticate(&self, req: &Request, aor: &Aor, to_tag: &str) -> Result<User, Response> {
        let now = unix_now();
        let realm = self.realm_for(aor);
        let creds = req
            .headers
            .authorization()
            .filter_map(Result::ok)
            .find_map(|c| match c {
                Credentials::Digest(d) if d.realm == realm => Some(d),
                _ => None,
            });
        let Some(creds) = creds else {
            return Err(self.challenge(req, realm, false, to_tag));
        };
        match self.nonces.check(&creds.nonce, now, NONCE_MAX_AGE) {
            NonceStatus::Valid => {}
            NonceStatus::Stale => return Err(self.challenge(req, realm, true, to_tag)),
            NonceStatus::Invalid => return Err(self.challenge(req, realm, false, to_tag)),
        }
        let user = self.find_user(&creds.username, &creds.realm);
        // The same work and the same answer whether or not the user exists.
        let (ha1, found) = match (&user, creds.effective_algorithm().base()) {
            (Some(u), Algorithm::Sha256) => (u.ha1_sha256.clone(), true),
            (Some(u), Algorithm::Md5) => (u.ha1_md5.clone(), true),
            (_, _) => ("0".repeat(64), false),
        };
        let ok = kadsip_proto::digest::verify(&creds, req.method.as_str(), &ha1) && found;
        if !ok {
            return Err(self.challenge(req, realm, false, to_tag));
        }
        if let Some(nc) = creds.nc {
            let fresh = self
                .nc
                .lock()
                .map(|mut t| t.check(&creds.nonce, nc))
                .unwrap_or(false);
            if !fresh {
                return Err(self.challenge(req, realm, true, to_tag));
            }
        }
        let user = user.expect("found");
        if user.aor != aor.as_str() {
            return Err(Response::to_request(
                req,
                StatusCode::FORBIDDEN,
                Some(to_tag),
            ));
        }
        Ok(user)
    }

    fn serves(&self, host: &str) -> bool {
        self.cfg.domains.is_empty()
            || self
                .cfg
                .domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(host))
    }

    /// Handles one REGISTER; the response is sent only after the binding is on disk.
    pub async fn handle(&self, req: &Request, source: &Source, to_tag: &str) -> Response {
        let resp = self.handle_inner(req, source, to_tag).await;
        self.metrics
            .register_requests
            .get_or_create(&MethodCode {
                method: "REGISTER".into(),
                code: resp.status.as_u16(),
            })
            .inc();
        resp
    }

    async fn handle_inner(&self, req: &Request, source: &Source, to_tag: &str) -> Response {
        let aor = match registrar::register_aor(req) {
            Ok(a) => a,
            Err(e) => return e.response(req, to_tag),
        };
        let host = aor.as_str().rsplit_once('@').map_or("", |(_, h)| h);
        if !self.serves(host) {
            let mut r = Response::to_request(req, StatusCode::NOT_FOUND, Some(to_tag));
            r.reason = "Domain Not Served Here".into();
            return r;
        }
        let user = if self.cfg.open {
            match self.storage.users.get(aor.as_str()) {
                Ok(Some(u)) => Some(u),
                Ok(None) => None,
                Err(_) => {
                    return Response::to_request(
                        req,
                        StatusCode::SERVER_INTERNAL_ERROR,
                        Some(to_tag),
                    );
                }
            }
        } else {
            match self.authenticate(req, &aor, to_tag) {
                Ok(u) => Some(u),
                Err(r) => return r,
            }
        };
        let Some(lock) = self.aor_lock(aor.as_str()) else {
            return Response::to_request(req, StatusCode::SERVER_INTERNAL_ERROR, Some(to_tag));
        };
        let _guard = lock.lock().await;
        let now = unix_now();
        let mut state = match self.storage.bindings.get(aor.as_str()) {
            Ok(s) => s.unwrap_or_default(),
            Err(_) => {
                return Response::to_request(req, StatusCode::SERVER_INTERNAL_ERROR, Some(to_tag));
            }
        };
        registrar::prune(&mut state.bindings, now);
        let before: Vec<(String, u16)> = state
            .bindings
            .iter()
            .map(|b| (b.contact.clone(), b.q))
            .collect();
        let flow = source.to_flow();
        let bindings =
            match registrar::apply(&state.bindings, req, Some(&flow), now, &self.cfg.policy) {
                Ok(b) => b,
                Err(e @ RegisterError::IntervalTooBrief(_)) => return e.response(req, to_tag),
                Err(e) => {
                    let mut r = e.response(req, to_tag);
                    // The reason names the fault; a header value it quotes
                    // must not break the status line.
                    let why: String = e
                        .to_string()
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(160)
                        .collect();
                    r.reason = why.into();
                    return r;
                }
            };
        let after: Vec<(String, u16)> = bindings.iter().map(|b| (b.contact.clone(), b.q)).collect();
        let new_until = bindings.iter().map(|b| b.expires).max().unwrap_or(now);
        // Publish when the contact set changes, or when the published entry
        // has less than a quarter of the new lifetime left; plain refreshes
        // otherwise stay local (the republisher covers the rest).
        let changed =
            after != before || state.published_until < now + new_until.saturating_sub(now) * 3 / 4;
        let user_is_new = user.is_none();
        let new_user = match user {
            Some(u) => u,
            None => match crate::accounts::new_user(&aor, "", "", "", true) {
                Ok(u) => u,
                Err(_) => {
                    return Response::to_request(
                        req,
                        StatusCode::SERVER_INTERNAL_ERROR,
                        Some(to_tag),
                    );
                }
            },
        };
        let mut writes = Vec::new();
        if user_is_new {
            writes.push(self.storage.users.write(&new_user));
        }
        state.bindings = bindings;
        let publish = changed || state.seq == 0;
        if publish {
            state.seq += 1;
            state.published_until = entry_expiry(&state, now);
        }
        writes.push(self.storage.bindings.write(aor.as_str(), &state));
        if self.committer.commit(writes).await.is_err() {
            return Response::to_request(req, StatusCode::SERVER_INTERNAL_ERROR, Some(to_tag));
        }
        self.note_live(aor.as_str(), &state);
        if publish {
            self.publish(&aor, &new_user, &state, now).await;
        }
        if self
            .gauge_at
            .swap(now, std::sync::atomic::Ordering::Relaxed)
            != now
        {
            self.metrics.registrations.set(self.live_aors(now) as i64);
        }
        registrar::ok_response(req, &state.bindings, now, to_tag)
    }

    /// Local AORs with an unexpired contact.
    fn live_aors(&self, now: u64) -> usize {
        // One pass over integers, bounded by the number of local AORs.
        self.live
            .lock()
            .map(|m| m.values().filter(|&&e| e > now).count())
            .unwrap_or(0)
    }

    /// Mirrors a committed state of `aor` into the live index.
    fn note_live(&self, aor: &str, state: &AorState) {
        if let Ok(mut m) = self.live.lock() {
            let latest = latest_expiry(state);
            match m.get_mut(aor) {
                Some(e) => *e = latest,
                None => {
                    m.insert(aor.to_owned(), latest);
                }
            }
        }
    }

    /// Signs and publishes this node's entry for `aor` (without waiting:
    /// the key derivation and signature run in the spawned task too, off
    /// the path of the 200).
    pub async fn publish(&self, aor: &Aor, user: &User, state: &AorState, now: u64) {
        let entry = entry_for(self.overlay.peer_id().to_bytes(), self.addrs(), state, now);
        let (overlay, aor, secret) = (self.overlay.clone(), aor.clone(), user.signing_key);
        // A publication that reached too few peers (a burst, a partition) is
        // retried with backoff instead of waiting for the next republish.
        tokio::spawn(async move {
            let rec = AorRecord::new(&aor, &SigningKey::from_bytes(&secret), entry);
            let (key, value) = (record_key(&aor).to_vec(), rec.encode());
            let mut backoff = PUBLISH_RETRY;
            for attempt in 0..=PUBLISH_RETRIES {
                match overlay.publish(key.clone(), value.clone()).await {
                    Ok(()) => return,
                    Err(OverlayError::NotReplicated { stored }) if stored >= MIN_REPLICAS => return,
                    Err(OverlayError::NotReplicated { stored }) if attempt < PUBLISH_RETRIES => {
                        tracing::debug!(%aor, stored, attempt, "publication reached too few peers; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff *= 2;
                    }
                    Err(OverlayError::Busy) if attempt < PUBLISH_RETRIES => {
                        tracing::debug!(%aor, attempt, "publication queue full; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff *= 2;
                    }
                    // A newer registration or republish got there first.
                    Err(OverlayError::Refused(RecordError::StaleSeq { .. })) => {
                        tracing::debug!(%aor, "publication superseded by a newer one");
                        return;
                    }
                    // Shutting down: the binding is in sled and is
                    // republished after the restart.
                    Err(OverlayError::Stopped) => {
                        tracing::debug!(%aor, "publication dropped at shutdown");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(%aor, error = %e, "publish failed");
                        return;
                    }
                }
            }
        });
    }

    /// The lock serialising read-modify-write of one AOR's state (REGISTER
    /// and the republisher); `None` if the lock table is poisoned.
    fn aor_lock(&self, aor: &str) -> Option<Arc<tokio::sync::Mutex<()>>> {
        let mut m = self.locks.lock().ok()?;
        if m.len() > 100_000 {
            m.retain(|_, l| Arc::strong_count(l) > 1);
        }
        Some(m.entry(aor.to_owned()).or_default().clone())
    }

    fn addrs(&self) -> Vec<String> {
        self.addrs.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Republishes every local AOR with a fresh seq (at start-up and before
    /// entries expire). Returns how many were published.
    pub async fn republish_all(&self) -> usize {
        let now = unix_now();
        let mut n = 0;
        let aors: Vec<String> = self
            .storage
            .bindings
            .all()
            .filter_map(Result::ok)
            .map(|(aor, _)| aor)
            .collect();
        for aor_s in aors {
            let Ok(aor) = Aor::parse(&aor_s) else {
                continue;
            };
            // Under the AOR's lock and re-read: a REGISTER handled since the
            // listing must not be overwritten nor share our seq.
            let Some(lock) = self.aor_lock(aor.as_str()) else {
                continue;
            };
            let _guard = lock.lock().await;
            let Ok(Some(mut state)) = self.storage.bindings.get(aor.as_str()) else {
                continue;
            };
            let now = unix_now();
            let Ok(Some(user)) = self.storage.users.get(aor.as_str()) else {
                continue;
            };
            registrar::prune(&mut state.bindings, now);
            if state.bindings.is_empty() && state.published_until <= now {
                continue; // the tombstone has run its course
            }
            state.seq += 1;
            state.published_until = entry_expiry(&state, now);
            let writes = vec![self.storage.bindings.write(aor.as_str(), &state)];
            if self.committer.commit(writes).await.is_err() {
                continue;
            }
            self.note_live(aor.as_str(), &state);
            self.publish(&aor, &user, &state, now).await;
            n += 1;
        }
        self.metrics.registrations.set(self.live_aors(now) as i64);
        n
    }
}

/// The latest contact expiry in `state` (0 with no contacts).
fn latest_expiry(state: &AorState) -> u64 {
    state.bindings.iter().map(|b| b.expires).max().unwrap_or(0)
}

/// When the entry published for `state` expires.
fn entry_expiry(state: &AorState, now: u64) -> u64 {
    state
        .bindings
        .iter()
        .filter(|b| b.expires > now)
        .map(|b| b.expires)
        .max()
        .unwrap_or(now + TOMBSTONE_SECS)
}

/// This node's entry for an AOR state.
pub fn entry_for(node: Vec<u8>, addrs: Vec<String>, state: &AorState, now: u64) -> NodeEntry {
    let contacts: Vec<ContactBinding> = state
        .bindings
        .iter()
        .filter(|b| b.expires > now)
        .map(|b| ContactBinding {
            uri: b.contact.clone(),
            q: b.q,
            expires: b.expires,
        })
        .collect();
    let expires = entry_expiry(state, now);
    NodeEntry {
        node,
        addrs: addrs.into_iter().take(8).collect(),
        contacts,
        seq: state.seq,
        expires,
        claim_expires: now + CLAIM_SECS,
    }
}
