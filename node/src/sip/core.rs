//! The SIP core: one task owns the transaction table (sans-I/O, from
//! kadsip-proto) and the clock; transports feed it, per-request tasks answer
//! it through a bounded channel, and every transmit goes back out the way the
//! request came.

use super::transport::{self, Inbound, Source, TransportStats, Transports};
use crate::lookup::Lookup;
use crate::metrics::Metrics;
use crate::registrar::Registrar;
use bytes::Bytes;
use kadsip_proto::header::StdHeader;
use kadsip_proto::message::error_response;
use kadsip_proto::transaction::{
    Config as TxConfig, Dispatch, Event, Reliability, Transactions, TxId,
};
use kadsip_proto::{Message, Method, Request, Response, StatusCode, Uri};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;
use tokio::sync::mpsc;

/// Most open transactions; beyond it new requests get 503.
pub const MAX_TRANSACTIONS: usize = 65_536;
/// Option tags this node supports.
pub const SUPPORTED: &[&str] = &["path", "outbound"];
/// Methods this node handles or routes.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, INFO, UPDATE, PRACK, REFER, SUBSCRIBE, NOTIFY, REGISTER";

/// Counters read by `/status`.
#[derive(Default, Debug)]
pub struct CoreStats {
    /// Open transactions.
    pub transactions: AtomicUsize,
    /// Requests received.
    pub requests: AtomicU64,
    /// Requests answered 503 because the table was full.
    pub overloaded: AtomicU64,
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
    /// Binds the transports on `addr` and starts the core.
    pub async fn start(
        addr: SocketAddr,
        registrar: Arc<Registrar>,
        lookup: Arc<Lookup>,
        metrics: Arc<Metrics>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<SipCore> {
        let (in_tx, in_rx) = mpsc::channel(8192);
        let transport_stats = Arc::new(TransportStats::default());
        let transports = transport::start(addr, in_tx, transport_stats.clone()).await?;
        let stats = Arc::new(CoreStats::default());
        let (tu_tx, tu_rx) = mpsc::channel(8192);
        let core = Core {
            table: Transactions::new(TxConfig::default(), MAX_TRANSACTIONS),
            transports: transports.clone(),
            sources: HashMap::new(),
            registrar,
            lookup,
            metrics,
            stats: stats.clone(),
            tu_tx,
            tags: TagGen::new(),
        };
        let task = tokio::spawn(core.run(in_rx, tu_rx, shutdown));
        Ok(SipCore {
            local: transports.local,
            task,
            stats,
            transport_stats,
            transports,
        })
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
                "sip_requests": s.requests.load(Ordering::Relaxed),
                "overloaded": s.overloaded.load(Ordering::Relaxed),
                "invalid_messages": t.invalid.load(Ordering::Relaxed),
                "dropped_inbound": t.dropped.load(Ordering::Relaxed),
                "tcp_connections": tr.tcp_connections(),
            })
        }
    }
}

/// Random-enough To tags: a per-process prefix and a counter.
struct TagGen {
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

    fn next(&mut self) -> String {
        self.n += 1;
        format!("{:x}{:x}", self.prefix & 0xffff_ffff, self.n)
    }
}

struct Core {
    table: Transactions,
    transports: Transports,
    /// Where each server transaction's request came from.
    sources: HashMap<TxId, Source>,
    registrar: Arc<Registrar>,
    #[allow(dead_code)]
    lookup: Arc<Lookup>,
    #[allow(dead_code)]
    metrics: Arc<Metrics>,
    stats: Arc<CoreStats>,
    tu_tx: mpsc::Sender<(TxId, Response)>,
    tags: TagGen,
}

impl Core {
    async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut tu: mpsc::Receiver<(TxId, Response)>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let wake = self.table.poll_timeout();
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
                r = tu.recv() => {
                    if let Some((id, resp)) = r {
                        if let Err(e) = self.table.respond(id, resp, Instant::now()) {
                            tracing::debug!(error = %e, "late response dropped");
                        }
                    }
                }
                _ = sleep => self.table.handle_timeout(Instant::now()),
            }
            self.flush();
        }
    }

    /// Sends what the table wants sent and reaps events.
    fn flush(&mut self) {
        while let Some((id, msg)) = self.table.poll_transmit() {
            if let Some(src) = self.sources.get(&id) {
                self.transports.send(src, Bytes::from(msg.to_bytes()));
            }
        }
        while let Some((id, ev)) = self.table.poll_event() {
            match ev {
                Event::Terminated => {
                    self.sources.remove(&id);
                }
                Event::Timeout => {
                    tracing::debug!(?id, "transaction timed out");
                }
                _ => {}
            }
        }
        self.stats
            .transactions
            .store(self.table.len(), Ordering::Relaxed);
    }

    fn send_stateless(&self, src: &Source, resp: &Response) {
        self.transports.send(src, Bytes::from(resp.to_bytes()));
    }

    fn on_inbound(&mut self, item: Inbound) {
        match item {
            Inbound::Invalid(err, raw, src) => {
                if let Some(bytes) = error_response(&raw, err.status(), &err.to_string()) {
                    self.transports.send(&src, Bytes::from(bytes));
                }
            }
            Inbound::Message(Message::Response(r), _src) => {
                // No client transactions yet (the proxy adds them): drop strays.
                let _ = self.table.dispatch(Message::Response(r), Instant::now());
            }
            Inbound::Message(Message::Request(req), src) => self.on_request(req, src),
        }
    }

    fn on_request(&mut self, mut req: Request, src: Source) {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        // §18.2.1: note where the request really came from.
        stamp_received(&mut req, &src);
        if let Err(p) = Message::Request(req.clone()).check() {
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
            return; // ACK for a 2xx of a dialog we are not in: nothing to do.
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
            let (registrar, tx) = (self.registrar.clone(), self.tu_tx.clone());
            tokio::spawn(async move {
                let resp = registrar.handle(&req, &src, &tag).await;
                let _ = tx.send((id, resp)).await;
            });
            return;
        }
        let mut r = Response::to_request(&req, StatusCode::NOT_IMPLEMENTED, Some(&tag));
        r.headers.push(StdHeader::Allow, ALLOW);
        let _ = self.table.respond(id, r, now);
    }

    /// Answers that need no I/O: 416, 420, 483, OPTIONS to the node itself.
    fn immediate(&self, req: &Request, tag: &str) -> Option<Response> {
        let Uri::Sip(uri) = &req.uri else {
            return Some(Response::to_request(
                req,
                StatusCode::UNSUPPORTED_URI_SCHEME,
                Some(tag),
            ));
        };
        let for_us =
            req.method == Method::REGISTER || (uri.user.is_none() && req.method == Method::OPTIONS);
        let unsupported = req.unsupported(SUPPORTED, !for_us);
        if !unsupported.is_empty() {
            let mut r = Response::to_request(req, StatusCode::BAD_EXTENSION, Some(tag));
            r.headers
                .push(StdHeader::Unsupported, unsupported.join(", "));
            return Some(r);
        }
        if let Some(Ok(0)) = req.headers.max_forwards() {
            if !for_us {
                return Some(Response::to_request(
                    req,
                    StatusCode::TOO_MANY_HOPS,
                    Some(tag),
                ));
            }
        }
        if req.method == Method::OPTIONS && uri.user.is_none() {
            let mut r = Response::to_request(req, StatusCode::OK, Some(tag));
            r.headers.push(StdHeader::Allow, ALLOW);
            r.headers.push(StdHeader::Supported, SUPPORTED.join(", "));
            r.headers
                .push(StdHeader::Accept, "application/sdp, text/plain");
            return Some(r);
        }
        None
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
