//! The SIP core: one task owns the transaction table (sans-I/O, from
//! kadsip-proto) and the clock. Transports and the overlay link feed it;
//! registrar tasks and lookups answer it through a bounded event channel;
//! every transmit goes out the way its transaction's peer is reached.

use super::transport::{self, Inbound, Source, TransportStats, Transports};
use crate::lookup::{Lookup, Resolved};
use crate::metrics::Metrics;
use crate::overlay::{Overlay, OverlayError};
use crate::registrar::Registrar;
use bytes::Bytes;
use kadsip_proto::header::StdHeader;
use kadsip_proto::message::error_response;
use kadsip_proto::transaction::{Config as TxConfig, Dispatch, Reliability, Transactions, TxId};
use kadsip_proto::{Message, Method, Request, Response, StatusCode, Uri};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Most working transactions (those waiting out 64·T1 are kept apart, up to
/// four times as many); beyond it new requests get 503.
pub const MAX_TRANSACTIONS: usize = 65_536;
/// Most requests being proxied at once (lookups and branches included).
pub const MAX_CONTEXTS: usize = 32_768;
/// Option tags this node supports.
pub const SUPPORTED: &[&str] = &["path", "outbound"];
/// Methods this node handles or routes.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, INFO, UPDATE, PRACK, REFER, SUBSCRIBE, NOTIFY, REGISTER";

/// Proxy settings.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Transaction timers (T1, T2, T4).
    pub tx: TxConfig,
    /// Timer C: how long an INVITE may stay without a final response.
    pub timer_c: Duration,
    /// Bind UDP/TCP sockets (false: in-memory UAs only, the simulator).
    pub sockets: bool,
    /// Where each proxied request's lookup is reported (the simulator).
    pub trace: Option<mpsc::Sender<LookupTrace>>,
}

/// One proxied request's lookup, reported to [`ProxyConfig::trace`].
#[derive(Debug, Clone)]
pub struct LookupTrace {
    /// The request's Call-ID.
    pub call_id: String,
    /// The AOR resolved.
    pub aor: String,
    /// Outcome name (`found`, `not_found`, …).
    pub outcome: &'static str,
    /// Time the lookup took.
    pub latency: Duration,
    /// DHT requests it sent.
    pub requests: u32,
    /// Answered from the positive cache.
    pub cached: bool,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            tx: TxConfig::default(),
            timer_c: Duration::from_secs(180),
            sockets: true,
            trace: None,
        }
    }
}

/// Counters read by `/status`.
#[derive(Default, Debug)]
pub struct CoreStats {
    /// Open transactions.
    pub transactions: AtomicUsize,
    /// Requests being proxied.
    pub proxied: AtomicUsize,
    /// Requests received.
    pub requests: AtomicU64,
    /// Requests answered 503 because a table was full.
    pub overloaded: AtomicU64,
}

/// What tasks tell the core.
pub(super) enum CoreEvent {
    /// The registrar answered a REGISTER.
    Answer(TxId, Response),
    /// A lookup for a proxied request finished.
    Resolved(TxId, Resolved),
    /// An overlay send for a client transaction failed: the peer's queue
    /// was full (`true`) or the peer could not be reached.
    SendFailed(TxId, bool),
}

/// A running SIP core.
pub struct SipCore {
    /// Bound SIP address (UDP and TCP).
    pub local: SocketAddr,
    /// The core task.
    pub task: tokio::task::JoinHandle<()>,
    stats: Arc<CoreStats>,
    transport_stats: Arc<TransportStats>,
    transports: Transports,
}

impl SipCore {
    /// Binds the transports on `addr`, attaches to the overlay link and
    /// starts the core.
    pub async fn start(
        addr: SocketAddr,
        cfg: ProxyConfig,
        registrar: Arc<Registrar>,
        lookup: Arc<Lookup>,
        overlay: Overlay,
        metrics: Arc<Metrics>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<SipCore> {
        let (in_tx, in_rx) = mpsc::channel(8192);
        let transport_stats = Arc::new(TransportStats::default());
        let transports =
            transport::start(addr, cfg.sockets, in_tx, transport_stats.clone()).await?;
        let (p2p_tx, p2p_rx) = mpsc::channel(8192);
        overlay
            .attach_sip(p2p_tx)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let stats = Arc::new(CoreStats::default());
        let (ev_tx, ev_rx) = mpsc::channel(8192);
        let me = overlay.peer_id().to_string();
        let core = Core {
            table: Transactions::new(cfg.tx, MAX_TRANSACTIONS),
            cfg,
            local: transports.local,
            transports: transports.clone(),
            overlay,
            me,
            sources: HashMap::new(),
            dests: HashMap::new(),
            contexts: HashMap::new(),
            branch_of: HashMap::new(),
            timer_c: BTreeSet::new(),
            registrar,
            lookup,
            metrics,
            stats: stats.clone(),
            events: ev_tx,
            tags: TagGen::new(),
        };
        let task = tokio::spawn(core.run(in_rx, p2p_rx, ev_rx, shutdown));
        Ok(SipCore {
            local: transports.local,
            task,
            stats,
            transport_stats,
            transports,
        })
    }

    /// The transports (in-memory UAs connect through them).
    pub fn transports(&self) -> Transports {
        self.transports.clone()
    }

    /// A closure rendering the core's gauges for `/status`.
    pub fn stats(&self) -> impl Fn() -> Value + Send + Sync + 'static {
        let (s, t, tr) = (
            self.stats.clone(),
            self.transport_stats.clone(),
            self.transports.clone(),
        );
        move || {
            json!({
                "transactions": s.transactions.load(Ordering::Relaxed),
                "proxied": s.proxied.load(Ordering::Relaxed),
                "sip_requests": s.requests.load(Ordering::Relaxed),
                "overloaded": s.overloaded.load(Ordering::Relaxed),
                "invalid_messages": t.invalid.load(Ordering::Relaxed),
                "dropped_inbound": t.dropped.load(Ordering::Relaxed),
                "tcp_connections": tr.tcp_connections(),
            })
        }
    }
}

/// Random-enough tags and branches: a per-process prefix and a counter.
pub(super) struct TagGen {
    prefix: u64,
    n: u64,
}

impl TagGen {
    fn new() -> Self {
        let mut b = [0u8; 8];
        let _ = getrandom::fill(&mut b);
        TagGen {
            prefix: u64::from_le_bytes(b),
            n: 0,
        }
    }

    pub(super) fn next(&mut self) -> String {
        self.n += 1;
        format!("{:x}{:x}", self.prefix & 0xffff_ffff, self.n)
    }
}

pub(super) struct Core {
    pub(super) table: Transactions,
    pub(super) cfg: ProxyConfig,
    pub(super) local: SocketAddr,
    pub(super) transports: Transports,
    pub(super) overlay: Overlay,
    /// Our PeerId as text (Via/Record-Route marker, Warning agent).
    pub(super) me: String,
    /// Where each server transaction's request came from.
    pub(super) sources: HashMap<TxId, Source>,
    /// Where each client transaction sends.
    pub(super) dests: HashMap<TxId, Source>,
    /// Proxy state per server transaction.
    pub(super) contexts: HashMap<TxId, super::proxy::ProxyCtx>,
    /// Client transaction → its server transaction.
    pub(super) branch_of: HashMap<TxId, TxId>,
    /// Timer C deadlines.
    pub(super) timer_c: BTreeSet<(Instant, TxId)>,
    pub(super) registrar: Arc<Registrar>,
    pub(super) lookup: Arc<Lookup>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) stats: Arc<CoreStats>,
    pub(super) events: mpsc::Sender<CoreEvent>,
    pub(super) tags: TagGen,
}

impl Core {
    async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut p2p: mpsc::Receiver<crate::overlay::InboundSip>,
        mut events: mpsc::Receiver<CoreEvent>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let wake = [self.table.poll_timeout(), self.timer_c.first().map(|t| t.0)]
                .into_iter()
                .flatten()
                .min();
            let sleep = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => break,
                m = inbound.recv() => match m {
                    Some(m) => self.on_inbound(m),
                    None => break,
                },
                m = p2p.recv() => {
                    if let Some((peer, bytes)) = m {
                        match Message::parse_received(bytes) {
                            Ok(msg) => self.on_inbound(Inbound::Message(msg, Source::Overlay(peer))),
                            Err(e) => tracing::debug!(%peer, error = %e, "invalid SIP over the overlay"),
                        }
                    }
                }
                e = events.recv() => {
                    if let Some(e) = e {
                        self.on_event(e);
                    }
                }
                _ = sleep => {
                    let now = Instant::now();
                    self.table.handle_timeout(now);
                    self.fire_timer_c(now);
                }
            }
            self.flush();
        }
    }

    fn on_event(&mut self, e: CoreEvent) {
        let now = Instant::now();
        match e {
            CoreEvent::Answer(id, resp) => {
                if let Err(e) = self.table.respond(id, resp, now) {
                    tracing::debug!(error = %e, "late response dropped");
                }
            }
            CoreEvent::Resolved(id, r) => self.on_resolved(id, r),
            CoreEvent::SendFailed(client, true) => self.on_branch_congested(client),
            CoreEvent::SendFailed(client, false) => self.on_branch_unreachable(client),
        }
    }

    /// Puts every queued transmit on its path and hands events to the proxy.
    pub(super) fn flush(&mut self) {
        loop {
            let mut progressed = false;
            while let Some((id, msg)) = self.table.poll_transmit() {
                progressed = true;
                let to = self
                    .sources
                    .get(&id)
                    .or_else(|| self.dests.get(&id))
                    .cloned();
                if let Some(to) = to {
                    self.send(&to, &msg, Some(id));
                }
            }
            while let Some((id, ev)) = self.table.poll_event() {
                progressed = true;
                self.on_tx_event(id, ev);
            }
            if !progressed {
                break;
            }
        }
        self.stats
            .transactions
            .store(self.table.len(), Ordering::Relaxed);
        self.stats
            .proxied
            .store(self.contexts.len(), Ordering::Relaxed);
    }

    /// Sends one message to `to`. Overlay sends for client transactions
    /// report failures back as [`CoreEvent::SendFailed`].
    pub(super) fn send(&self, to: &Source, msg: &Message, client: Option<TxId>) {
        let bytes = msg.to_bytes();
        match to {
            Source::Overlay(peer) => {
                let watch = client
                    .filter(|c| self.dests.contains_key(c))
                    .filter(|_| msg.as_request().is_some());
                match watch {
                    Some(c) => {
                        let (overlay, events, peer) =
                            (self.overlay.clone(), self.events.clone(), *peer);
                        let addrs = self.peer_addrs(c);
                        tokio::spawn(async move {
                            if let Err(e) = overlay.send_sip(peer, addrs, bytes).await {
                                let busy = matches!(e, OverlayError::Busy);
                                let _ = events.send(CoreEvent::SendFailed(c, busy)).await;
                            }
                        });
                    }
                    None => {
                        if !self.overlay.try_send_sip(*peer, bytes) {
                            tracing::debug!(%peer, "overlay queue full; message dropped");
                        }
                    }
                }
            }
            other => {
                self.transports.send(other, Bytes::from(bytes));
            }
        }
    }

    pub(super) fn send_stateless(&self, src: &Source, resp: &Response) {
        self.send(src, &Message::Response(resp.clone()), None);
    }

    fn on_inbound(&mut self, item: Inbound) {
        match item {
            Inbound::Invalid(err, raw, src) => {
                if let Some(bytes) = error_response(&raw, err.status(), &err.to_string()) {
                    self.transports.send(&src, Bytes::from(bytes));
                }
            }
            Inbound::Message(Message::Response(r), src) => {
                let code = r.status.as_u16();
                match self.table.dispatch(Message::Response(r), Instant::now()) {
                    Dispatch::Stray(Message::Response(r)) => {
                        tracing::debug!(code, from = ?src, "stray response");
                        self.forward_stray_response(r);
                    }
                    _ => tracing::trace!(code, from = ?src, "response matched"),
                }
            }
            Inbound::Message(Message::Request(req), src) => self.on_request(req, src),
        }
    }

    fn on_request(&mut self, mut req: Request, src: Source) {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        // §18.2.1: note where the request really came from.
        stamp_received(&mut req, &src);
        if let Err(p) = req.check() {
            let mut r = Response::to_request(&req, p.status(), Some(&self.tags.next()));
            r.reason = format!("Bad Request ({p})").into();
            self.send_stateless(&src, &r);
            return;
        }
        let req = match self.table.dispatch(Message::Request(req), now) {
            Dispatch::Matched(_) | Dispatch::Stray(_) => return,
            Dispatch::NewRequest(req) => req,
        };
        if req.method == Method::ACK {
            self.forward_ack(req);
            return;
        }
        let reliability = if src.reliable() {
            Reliability::Reliable
        } else {
            Reliability::Unreliable
        };
        let id = match self.table.new_server(req.clone(), reliability, now) {
            Ok(id) => id,
            Err(_) => {
                self.stats.overloaded.fetch_add(1, Ordering::Relaxed);
                let mut r = Response::to_request(
                    &req,
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(&self.tags.next()),
                );
                r.headers.push(StdHeader::RetryAfter, "5");
                self.send_stateless(&src, &r);
                return;
            }
        };
        self.sources.insert(id, src.clone());
        let tag = self.tags.next();
        if let Some(resp) = self.immediate(&req, &tag) {
            let _ = self.table.respond(id, resp, now);
            return;
        }
        if req.method == Method::REGISTER {
            let (registrar, tx) = (self.registrar.clone(), self.events.clone());
            tokio::spawn(async move {
                let resp = registrar.handle(&req, &src, &tag).await;
                let _ = tx.send(CoreEvent::Answer(id, resp)).await;
            });
            return;
        }
        if req.method == Method::CANCEL {
            self.on_cancel(id, &req, &tag);
            return;
        }
        self.proxy(id, req, src);
    }

    /// Answers that need no I/O: 416, 420, 483, 482, OPTIONS to the node itself.
    fn immediate(&self, req: &Request, tag: &str) -> Option<Response> {
        let Uri::Sip(uri) = &req.uri else {
            return Some(Response::to_request(
                req,
                StatusCode::UNSUPPORTED_URI_SCHEME,
                Some(tag),
            ));
        };
        let for_us = req.method == Method::REGISTER
            || (uri.user.is_none()
                && req.method == Method::OPTIONS
                && self.routes_empty_or_ours(req));
        let unsupported = req.unsupported(SUPPORTED, !for_us);
        if !unsupported.is_empty() {
            let mut r = Response::to_request(req, StatusCode::BAD_EXTENSION, Some(tag));
            r.headers
                .push(StdHeader::Unsupported, unsupported.join(", "));
            return Some(r);
        }
        if for_us && req.method == Method::OPTIONS {
            let mut r = Response::to_request(req, StatusCode::OK, Some(tag));
            r.headers.push(StdHeader::Allow, ALLOW);
            r.headers.push(StdHeader::Supported, SUPPORTED.join(", "));
            r.headers
                .push(StdHeader::Accept, "application/sdp, text/plain");
            return Some(r);
        }
        if !for_us && req.method != Method::CANCEL {
            if let Some(Ok(0)) = req.headers.max_forwards() {
                let mut r = Response::to_request(req, StatusCode::TOO_MANY_HOPS, Some(tag));
                r.headers.push(
                    StdHeader::Warning,
                    format!("399 {} \"Max-Forwards reached 0\"", self.me),
                );
                return Some(r);
            }
            if self.is_loop(req) {
                let mut r = Response::to_request(req, StatusCode::LOOP_DETECTED, Some(tag));
                r.headers.push(
                    StdHeader::Warning,
                    format!("399 {} \"request already passed this node\"", self.me),
                );
                return Some(r);
            }
        }
        None
    }

    /// §16.3 step 4: one of the Vias is ours (our PeerId marker).
    fn is_loop(&self, req: &Request) -> bool {
        let marker = self.me.as_str();
        req.headers
            .via()
            .map(|vs| {
                vs.iter()
                    .any(|v| v.params.get("kadsip") == Some(Some(marker)))
            })
            .unwrap_or(false)
    }
}

/// Adds `received` (and fills `rport`) on the top Via per §18.2.1 / RFC 3581.
fn stamp_received(req: &mut Request, src: &Source) {
    let Some(Ok(via)) = req.headers.top_via() else {
        return;
    };
    let Some(addr) = src.addr() else { return };
    let ip = addr.ip().to_string();
    let wants_rport = matches!(via.rport(), Some(None));
    let differs = via.host.trim_start_matches('[').trim_end_matches(']') != ip;
    if !wants_rport && !differs {
        return;
    }
    let mut text = String::new();
    text.push_str(&format!(
        "{}/{}/{} {}",
        via.protocol, via.version, via.transport, via.host
    ));
    if let Some(p) = via.port {
        text.push_str(&format!(":{p}"));
    }
    for (n, v) in via.params.iter() {
        if n.eq_ignore_ascii_case("received") || n.eq_ignore_ascii_case("rport") {
            continue;
        }
        match v {
            Some(v) => text.push_str(&format!(";{n}={v}")),
            None => text.push_str(&format!(";{n}")),
        }
    }
    text.push_str(&format!(";received={ip}"));
    if wants_rport {
        text.push_str(&format!(";rport={}", addr.port()));
    }
    let _ = req.headers.pop_first(StdHeader::Via);
    req.headers.push_front(StdHeader::Via, text);
}
