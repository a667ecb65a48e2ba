//! Simulated phones: one task per node hosts that node's users. They speak
//! SIP to the node over an in-memory flow through the proto transaction
//! layer, register and refresh, place calls (INVITE → ACK → BYE through the
//! route set) and MESSAGEs, and answer whatever reaches them.

use bytes::Bytes;
use kadsip_node::sip::MemoryFlow;
use kadsip_proto::header::StdHeader;
use kadsip_proto::transaction::{
    Config as TxConfig, Dispatch, Event, Reliability, Transactions, TxId,
};
use kadsip_proto::{Message, Method, Request, Response, StatusCode};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// How soon a phone retries a registration refresh that failed.
const REFRESH_RETRY: Duration = Duration::from_secs(5);

/// The domain every simulated AOR lives in.
pub const DOMAIN: &str = "sim.example";

/// What a finished call or MESSAGE got.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    /// Final status (408 also when the UA's own Timer B/F fired).
    pub status: u16,
    /// INVITE/MESSAGE sent → final response.
    pub setup: Duration,
    /// The request's Call-ID (joins the node's lookup trace).
    pub call_id: String,
    /// The Warning header of a failure, if any.
    pub warning: Option<String>,
}

/// Commands to a UA host.
pub enum UaCmd {
    /// REGISTER `user` (Expires 0 unregisters); the reply carries the status.
    Register {
        /// User part.
        user: String,
        /// Expires value.
        expires: u32,
        /// Final status.
        reply: oneshot::Sender<u16>,
    },
    /// Call (or MESSAGE) `to` from `user`.
    Call {
        /// Caller's user part.
        user: String,
        /// Callee AOR (`sip:…`).
        to: String,
        /// MESSAGE instead of INVITE.
        message: bool,
        /// The outcome.
        reply: oneshot::Sender<CallOutcome>,
    },
}

enum Pending {
    Register {
        user: String,
        expires: u32,
        reply: Option<oneshot::Sender<u16>>,
    },
    Request {
        started: Instant,
        call_id: String,
        reply: Option<oneshot::Sender<CallOutcome>>,
        invite: Option<Box<Request>>,
    },
    Bye,
}

struct Reg {
    call_id: String,
    cseq: u32,
    refresh_at: Option<Instant>,
    expires: u32,
}

/// One node's simulated phones.
pub struct UaHost {
    table: Transactions,
    to_node: mpsc::Sender<Bytes>,
    addr: SocketAddr,
    id: String,
    n: u64,
    pending: HashMap<TxId, Pending>,
    regs: HashMap<String, Reg>,
    refresh_failures: u64,
}

impl UaHost {
    /// Starts the host for a node incarnation; `addr` is the phones'
    /// (synthetic) address, `id` makes Call-IDs and tags unique.
    pub fn spawn(
        flow: MemoryFlow,
        addr: SocketAddr,
        id: String,
        t1: Duration,
    ) -> mpsc::Sender<UaCmd> {
        let (tx, rx) = mpsc::channel(1024);
        let cfg = TxConfig {
            t1,
            t2: t1 * 8,
            t4: t1 * 10,
            auto_trying: false,
        };
        let host = UaHost {
            table: Transactions::new(cfg, 65_536),
            to_node: flow.tx,
            addr,
            id,
            n: 0,
            pending: HashMap::new(),
            regs: HashMap::new(),
            refresh_failures: 0,
        };
        tokio::spawn(host.run(rx, flow.rx));
        tx
    }

    async fn run(mut self, mut cmds: mpsc::Receiver<UaCmd>, mut from_node: mpsc::Receiver<Bytes>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            let deadline = self
                .table
                .poll_timeout()
                .map(Instant::from_std)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                c = cmds.recv() => match c {
                    Some(c) => self.on_cmd(c),
                    None => break,
                },
                m = from_node.recv() => match m {
                    Some(b) => self.on_bytes(b),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    self.table.handle_timeout(Instant::now().into_std());
                }
                _ = tick.tick() => self.refresh_due(),
            }
            if !self.pump().await {
                break;
            }
        }
    }

    fn next_id(&mut self) -> String {
        self.n += 1;
        format!("{}x{}", self.id, self.n)
    }

    fn via(&mut self) -> String {
        let branch = self.next_id();
        format!("SIP/2.0/TCP {};branch=z9hG4bK{branch};rport", self.addr)
    }

    fn contact(&self, user: &str) -> String {
        format!("<sip:{user}@{};transport=tcp>", self.addr)
    }

    fn start(&mut self, text: String, p: Pending) {
        let Ok(Message::Request(req)) = Message::parse(Bytes::from(text)) else {
            return;
        };
        let now = Instant::now().into_std();
        if let Ok(id) = self.table.new_client(req, Reliability::Reliable, now) {
            self.pending.insert(id, p);
        }
    }

    fn register(&mut self, user: String, expires: u32, reply: Option<oneshot::Sender<u16>>) {
        let fresh = self.next_id();
        let reg = self.regs.entry(user.clone()).or_insert(Reg {
            call_id: format!("reg-{fresh}"),
            cseq: 0,
            refresh_at: None,
            expires,
        });
        reg.cseq += 1;
        reg.expires = expires;
        reg.refresh_at = None;
        let (call_id, cseq) = (reg.call_id.clone(), reg.cseq);
        let text = format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\n\
             From: <sip:{user}@{DOMAIN}>;tag={}\r\nTo: <sip:{user}@{DOMAIN}>\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: {}\r\n\
             Expires: {expires}\r\nContent-Length: 0\r\n\r\n",
            self.via(),
            self.next_id(),
            self.contact(&user),
        );
        self.start(
            text,
            Pending::Register {
                user,
                expires,
                reply,
            },
        );
    }

    fn on_cmd(&mut self, c: UaCmd) {
        match c {
            UaCmd::Register {
                user,
                expires,
                reply,
            } => self.register(user, expires, Some(reply)),
            UaCmd::Call {
                user,
                to,
                message,
                reply,
            } => {
                let call_id = format!("call-{}", self.next_id());
                let method = if message { "MESSAGE" } else { "INVITE" };
                let (body, ctype, contact) = if message {
                    (
                        "hello",
                        "Content-Type: text/plain\r\n".to_string(),
                        String::new(),
                    )
                } else {
                    (
                        "",
                        String::new(),
                        format!("Contact: {}\r\n", self.contact(&user)),
                    )
                };
                let text = format!(
                    "{method} {to} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\n\
                     From: <sip:{user}@{DOMAIN}>;tag={}\r\nTo: <{to}>\r\n\
                     Call-ID: {call_id}\r\nCSeq: 1 {method}\r\n{contact}{ctype}\
                     Content-Length: {}\r\n\r\n{body}",
                    self.via(),
                    self.next_id(),
                    body.len(),
                );
                let invite = if message {
                    None
                } else {
                    match Message::parse(Bytes::from(text.clone())) {
                        Ok(Message::Request(r)) => Some(Box::new(r)),
                        _ => None,
                    }
                };
                self.start(
                    text,
                    Pending::Request {
                        started: Instant::now(),
                        call_id,
                        reply: Some(reply),
                        invite,
                    },
                );
            }
        }
    }

    fn refresh_due(&mut self) {
        let now = Instant::now();
        let due: Vec<(String, u32)> = self
            .regs
            .iter()
            .filter(|(_, r)| r.refresh_at.is_some_and(|t| t <= now))
            .map(|(u, r)| (u.clone(), r.expires))
            .collect();
        for (user, expires) in due {
            self.register(user, expires, None);
        }
    }

    fn on_bytes(&mut self, b: Bytes) {
        let Ok(msg) = Message::parse(b) else {
            return;
        };
        let now = Instant::now().into_std();
        match self.table.dispatch(msg, now) {
            Dispatch::Matched(_) | Dispatch::Stray(_) => {}
            Dispatch::NewRequest(req) => {
                if req.method == Method::ACK {
                    return;
                }
                let invite = req.method == Method::INVITE;
                let Ok(id) = self
                    .table
                    .new_server(req.clone(), Reliability::Reliable, now)
                else {
                    return;
                };
                let tag = self.next_id();
                if invite {
                    let ringing = Response::to_request(&req, StatusCode::RINGING, Some(&tag));
                    let _ = self.table.respond(id, ringing, now);
                }
                let mut ok = Response::to_request(&req, StatusCode::OK, Some(&tag));
                if invite {
                    // §12.1.1: the route set comes back in the 2xx.
                    for rr in req.headers.get_all(StdHeader::RecordRoute) {
                        ok.headers.push(StdHeader::RecordRoute, rr.clone());
                    }
                    let user = req
                        .headers
                        .to()
                        .and_then(|t| t.ok())
                        .and_then(|t| t.parsed_uri().ok())
                        .and_then(|u| match u {
                            kadsip_proto::Uri::Sip(s) => s.user.map(|u| u.to_string()),
                            _ => None,
                        })
                        .unwrap_or_else(|| "ua".into());
                    ok.headers.push(StdHeader::Contact, self.contact(&user));
                }
                let _ = self.table.respond(id, ok, now);
            }
        }
    }

    /// Sends what the table queued and handles its events; false when the
    /// node's flow is gone.
    async fn pump(&mut self) -> bool {
        while let Some((_, m)) = self.table.poll_transmit() {
            if self.to_node.send(Bytes::from(m.to_bytes())).await.is_err() {
                return false;
            }
        }
        let mut extra = Vec::new();
        while let Some((id, ev)) = self.table.poll_event() {
            match ev {
                Event::Response(r) => {
                    if let Some((ack, bye)) = self.on_response(id, r) {
                        extra.push(ack);
                        extra.push(bye);
                    }
                }
                Event::Timeout => self.finish(id, 408, None),
                Event::Terminated => {
                    if self.pending.contains_key(&id) {
                        self.finish(id, 408, None);
                    }
                    self.pending.remove(&id);
                }
                Event::Request(_) => {}
            }
        }
        for text in extra {
            if let Ok(Message::Request(r)) = Message::parse(Bytes::from(text)) {
                if r.method == Method::ACK {
                    if self.to_node.send(Bytes::from(r.to_bytes())).await.is_err() {
                        return false;
                    }
                } else if let Ok(id) =
                    self.table
                        .new_client(r, Reliability::Reliable, Instant::now().into_std())
                {
                    self.pending.insert(id, Pending::Bye);
                }
            }
        }
        // New BYE transactions queued transmits.
        while let Some((_, m)) = self.table.poll_transmit() {
            if self.to_node.send(Bytes::from(m.to_bytes())).await.is_err() {
                return false;
            }
        }
        true
    }

    /// A final answer for a pending client transaction.
    fn finish(&mut self, id: TxId, status: u16, warning: Option<String>) {
        match self.pending.get_mut(&id) {
            Some(Pending::Register {
                user,
                expires,
                reply,
            }) => {
                let refresh = reply.is_none();
                if let Some(r) = reply.take() {
                    let _ = r.send(status);
                } else if status != 200 {
                    self.refresh_failures += 1;
                    tracing::warn!(%user, status, "registration refresh failed; retrying");
                }
                if let Some(reg) = self.regs.get_mut(user.as_str()) {
                    reg.refresh_at = match (status, *expires) {
                        (_, 0) => None,
                        (200, e) => {
                            Some(Instant::now() + Duration::from_secs_f64(f64::from(e) / 2.0))
                        }
                        // A phone whose refresh failed tries again soon
                        // rather than letting its binding lapse.
                        _ if refresh => Some(Instant::now() + REFRESH_RETRY),
                        _ => None,
                    };
                }
                // Answered: the transaction's later Terminated event must not
                // read as a second, failed answer (that cancelled every refresh).
                self.pending.remove(&id);
            }
            Some(Pending::Request {
                started,
                call_id,
                reply,
                ..
            }) => {
                if let Some(r) = reply.take() {
                    let _ = r.send(CallOutcome {
                        status,
                        setup: started.elapsed(),
                        call_id: call_id.clone(),
                        warning,
                    });
                }
            }
            Some(Pending::Bye) | None => {}
        }
    }

    /// Handles a response; returns an ACK and a BYE to send for a 2xx to INVITE.
    fn on_response(&mut self, id: TxId, r: Response) -> Option<(String, String)> {
        let status = r.status.as_u16();
        if status < 200 {
            return None;
        }
        let first = match self.pending.get(&id) {
            Some(Pending::Request { reply, .. }) => reply.is_some(),
            Some(Pending::Register { .. }) => true,
            _ => false,
        };
        let warning = r.headers.get(StdHeader::Warning).map(|w| w.to_string());
        let invite = match self.pending.get(&id) {
            Some(Pending::Request { invite, .. }) => invite.clone(),
            _ => None,
        };
        self.finish(id, status, warning);
        let invite = invite?;
        if !(200..300).contains(&status) || !first {
            return None;
        }
        // The dialog: remote target from Contact, route set from Record-Route reversed.
        let contact = r.headers.list(StdHeader::Contact).next()?.ok()?;
        let target = kadsip_proto::header::NameAddr::parse(contact)
            .ok()?
            .uri
            .to_string();
        let mut routes: Vec<String> = r
            .headers
            .list(StdHeader::RecordRoute)
            .filter_map(Result::ok)
            .map(str::to_owned)
            .collect();
        routes.reverse();
        let route_lines: String = routes.iter().map(|x| format!("Route: {x}\r\n")).collect();
        let h = &invite.headers;
        let from = h.get(StdHeader::From)?.to_string();
        let to = r.headers.get(StdHeader::To)?.to_string();
        let call_id = h.call_id()?.to_string();
        let ack = format!(
            "ACK {target} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\n{route_lines}\
             From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\n\
             Content-Length: 0\r\n\r\n",
            self.via()
        );
        let bye = format!(
            "BYE {target} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\n{route_lines}\
             From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\n\
             Content-Length: 0\r\n\r\n",
            self.via()
        );
        Some((ack, bye))
    }
}
