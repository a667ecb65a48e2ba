//! The four state machines of RFC 3261 §17 with the RFC 6026 Accepted
//! states, as one struct driven by `on_request` / `on_response` /
//! `respond` / `on_timer`. Outputs are queued for the table to hand out.

use super::{Config, Event, Reliability};
use crate::header::StdHeader;
use crate::message::{Message, Request, Response};
use crate::method::Method;
use std::time::{Duration, Instant};

/// Which machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// INVITE client (§17.1.1).
    ClientInvite,
    /// Non-INVITE client (§17.1.2).
    ClientNonInvite,
    /// INVITE server (§17.2.1).
    ServerInvite,
    /// Non-INVITE server (§17.2.2).
    ServerNonInvite,
}

/// Transaction states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// INVITE client before any response.
    Calling,
    /// Non-INVITE before any response.
    Trying,
    /// After a provisional response.
    Proceeding,
    /// After a non-2xx final (INVITE) or any final (non-INVITE).
    Completed,
    /// INVITE server after the ACK.
    Confirmed,
    /// After a 2xx to INVITE (RFC 6026).
    Accepted,
    /// Done.
    Terminated,
}

/// The timers of §17 (plus RFC 6026 L/M and the 200 ms 100-Trying timer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// INVITE request retransmit.
    A,
    /// INVITE transaction timeout.
    B,
    /// Wait for response retransmits (INVITE client).
    D,
    /// Non-INVITE request retransmit.
    E,
    /// Non-INVITE transaction timeout.
    F,
    /// INVITE final response retransmit.
    G,
    /// Wait for ACK.
    H,
    /// Wait for ACK retransmits.
    I,
    /// Wait for non-INVITE request retransmits.
    J,
    /// Wait for non-INVITE response retransmits.
    K,
    /// RFC 6026: server Accepted.
    L,
    /// RFC 6026: client Accepted.
    M,
    /// Send 100 Trying if the TU is silent.
    Trying,
}

const ALL_TIMERS: usize = 13;

/// One transaction.
#[derive(Debug)]
pub struct Tx {
    pub(crate) kind: Kind,
    pub(crate) state: State,
    reliable: bool,
    request: Request,
    last_response: Option<Response>,
    ack: Option<Request>,
    interval: Duration,
    timers: [Option<Instant>; ALL_TIMERS],
    pub(crate) out: Vec<Message>,
    pub(crate) events: Vec<Event>,
}

fn idx(t: Timer) -> usize {
    t as usize
}

const TIMERS: [Timer; ALL_TIMERS] = [
    Timer::A,
    Timer::B,
    Timer::D,
    Timer::E,
    Timer::F,
    Timer::G,
    Timer::H,
    Timer::I,
    Timer::J,
    Timer::K,
    Timer::L,
    Timer::M,
    Timer::Trying,
];

impl Tx {
    /// A new transaction for `request`; client ones transmit at once.
    pub fn new(kind: Kind, request: Request, rel: Reliability, cfg: &Config, now: Instant) -> Tx {
        let reliable = rel == Reliability::Reliable;
        let mut tx = Tx {
            kind,
            state: match kind {
                Kind::ClientInvite => State::Calling,
                Kind::ClientNonInvite | Kind::ServerNonInvite => State::Trying,
                Kind::ServerInvite => State::Proceeding,
            },
            reliable,
            request,
            last_response: None,
            ack: None,
            interval: cfg.t1,
            timers: [None; ALL_TIMERS],
            out: Vec::new(),
            events: Vec::new(),
        };
        match kind {
            Kind::ClientInvite => {
                tx.out.push(Message::Request(tx.request.clone()));
                if !reliable {
                    tx.set(Timer::A, now + cfg.t1);
                }
                tx.set(Timer::B, now + cfg.t1 * 64);
            }
            Kind::ClientNonInvite => {
                tx.out.push(Message::Request(tx.request.clone()));
                if !reliable {
                    tx.set(Timer::E, now + cfg.t1);
                }
                tx.set(Timer::F, now + cfg.t1 * 64);
            }
            Kind::ServerInvite => {
                if cfg.auto_trying {
                    tx.set(Timer::Trying, now + Duration::from_millis(200));
                }
            }
            Kind::ServerNonInvite => {}
        }
        tx
    }

    /// Drops what an RFC 6026 Accepted transaction no longer uses: it only
    /// passes 2xx responses (and, server side, ACKs) through until Timer
    /// L/M, so the request is cut down to its method and Request-URI and
    /// the last response is forgotten.
    pub(crate) fn hollow(&mut self) {
        debug_assert_eq!(self.state, State::Accepted);
        self.request = Request::new(self.request.method.clone(), self.request.uri.clone());
        self.last_response = None;
        self.ack = None;
    }

    /// The request that started the transaction (an Accepted one keeps only
    /// its method and Request-URI).
    pub fn request(&self) -> &Request {
        &self.request
    }

    fn set(&mut self, t: Timer, at: Instant) {
        self.timers[idx(t)] = Some(at);
    }

    fn clear(&mut self, t: Timer) {
        self.timers[idx(t)] = None;
    }

    /// Earliest armed timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.state == State::Terminated {
            return None;
        }
        self.timers.iter().flatten().min().copied()
    }

    /// For a non-INVITE server transaction that answered over an unreliable
    /// transport (it only waits out Timer J to absorb retransmissions): the
    /// final response to repeat and when Timer J fires. `None` otherwise.
    pub(crate) fn absorbing(&self) -> Option<(&Response, Instant)> {
        if self.kind != Kind::ServerNonInvite || self.state != State::Completed || self.reliable {
            return None;
        }
        let at = self.timers[idx(Timer::J)]?;
        Some((self.last_response.as_ref()?, at))
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timers = [None; ALL_TIMERS];
        self.events.push(Event::Terminated);
    }

    fn wait(&self, unreliable: Duration) -> Duration {
        if self.reliable {
            Duration::ZERO
        } else {
            unreliable
        }
    }

    /// A request matched to this (server) transaction: a retransmission, or an ACK.
    pub fn on_request(&mut self, req: Request, cfg: &Config, now: Instant) {
        let is_ack = req.method == Method::ACK;
        match (self.kind, self.state, is_ack) {
            (Kind::ServerInvite, State::Proceeding, false)
            | (Kind::ServerNonInvite, State::Proceeding, _) => {
                if let Some(r) = &self.last_response {
                    self.out.push(Message::Response(r.clone()));
                }
            }
            (Kind::ServerInvite, State::Completed, false)
            | (Kind::ServerNonInvite, State::Completed, _) => {
                if let Some(r) = &self.last_response {
                    self.out.push(Message::Response(r.clone()));
                }
            }
            (Kind::ServerInvite, State::Completed, true) => {
                self.state = State::Confirmed;
                self.clear(Timer::G);
                self.clear(Timer::H);
                let w = self.wait(cfg.t4);
                self.set(Timer::I, now + w);
            }
            (Kind::ServerInvite, State::Accepted, true) => self.events.push(Event::Request(req)),
            // Retransmitted INVITEs in Accepted, ACKs in Confirmed, requests
            // in Trying: absorbed.
            _ => {}
        }
    }

    /// A response matched to this (client) transaction.
    pub fn on_response(&mut self, resp: Response, cfg: &Config, now: Instant) {
        let code = resp.status.as_u16();
        match (self.kind, self.state) {
            (Kind::ClientInvite, State::Calling | State::Proceeding) => {
                if code < 200 {
                    self.state = State::Proceeding;
                    self.clear(Timer::A);
                    self.clear(Timer::B);
                    self.events.push(Event::Response(resp));
                } else if code < 300 {
                    self.state = State::Accepted;
                    self.clear(Timer::A);
                    self.clear(Timer::B);
                    self.set(Timer::M, now + cfg.t1 * 64);
                    self.events.push(Event::Response(resp));
                } else {
                    self.state = State::Completed;
                    self.clear(Timer::A);
                    self.clear(Timer::B);
                    let ack = self.build_ack(&resp);
                    self.out.push(Message::Request(ack.clone()));
                    self.ack = Some(ack);
                    let w = self.wait(Duration::from_secs(32));
                    self.set(Timer::D, now + w);
                    self.events.push(Event::Response(resp));
                }
            }
            (Kind::ClientInvite, State::Accepted) if (200..300).contains(&code) => {
                self.events.push(Event::Response(resp));
            }
            (Kind::ClientInvite, State::Completed) if code >= 300 => {
                if let Some(a) = &self.ack {
                    self.out.push(Message::Request(a.clone()));
                }
            }
            (Kind::ClientNonInvite, State::Trying | State::Proceeding) => {
                if code < 200 {
                    self.state = State::Proceeding;
                    self.events.push(Event::Response(resp));
                } else {
                    self.state = State::Completed;
                    self.clear(Timer::E);
                    self.clear(Timer::F);
                    let w = self.wait(cfg.t4);
                    self.set(Timer::K, now + w);
                    self.events.push(Event::Response(resp));
                }
            }
            _ => {}
        }
    }

    /// The ACK for a non-2xx final response (§17.1.1.3).
    fn build_ack(&self, resp: &Response) -> Request {
        let r = &self.request;
        let mut ack = Request::new(Method::ACK, r.uri.clone());
        if let Some(Ok(v)) = r
            .headers
            .list(StdHeader::Via)
            .next()
            .map(|v| v.map(str::to_owned))
        {
            ack.headers.push(StdHeader::Via, v);
        }
        for h in [
            StdHeader::Route,
            StdHeader::MaxForwards,
            StdHeader::From,
            StdHeader::CallId,
        ] {
            for v in r.headers.get_all(h) {
                ack.headers.push(h, v.clone());
            }
        }
        if let Some(to) = resp.headers.get(StdHeader::To) {
            ack.headers.push(StdHeader::To, to.clone());
        }
        let seq = r.headers.cseq().and_then(Result::ok).map_or(1, |c| c.seq);
        ack.headers.push(StdHeader::CSeq, format!("{seq} ACK"));
        ack.headers.push(StdHeader::ContentLength, "0");
        ack
    }

    /// The TU answers (server transactions).
    pub fn respond(&mut self, resp: Response, cfg: &Config, now: Instant) -> bool {
        let code = resp.status.as_u16();
        match (self.kind, self.state) {
            (Kind::ServerInvite, State::Proceeding) => {
                self.clear(Timer::Trying);
                self.out.push(Message::Response(resp.clone()));
                if code < 200 {
                    self.last_response = Some(resp);
                } else if code < 300 {
                    self.state = State::Accepted;
                    self.last_response = Some(resp);
                    self.set(Timer::L, now + cfg.t1 * 64);
                } else {
                    self.state = State::Completed;
                    self.last_response = Some(resp);
                    if !self.reliable {
                        self.interval = cfg.t1;
                        self.set(Timer::G, now + cfg.t1);
                    }
                    self.set(Timer::H, now + cfg.t1 * 64);
                }
                true
            }
            (Kind::ServerInvite, State::Accepted) if (200..300).contains(&code) => {
                self.out.push(Message::Response(resp));
                true
            }
            (Kind::ServerNonInvite, State::Trying | State::Proceeding) => {
                self.out.push(Message::Response(resp.clone()));
                if code < 200 {
                    self.state = State::Proceeding;
                } else {
                    self.state = State::Completed;
                    let w = self.wait(cfg.t1 * 64);
                    self.set(Timer::J, now + w);
                }
                self.last_response = Some(resp);
                true
            }
            _ => false,
        }
    }

    /// Fires every timer due at `now`.
    pub fn on_timers(&mut self, cfg: &Config, now: Instant) {
        for t in TIMERS {
            if self.state == State::Terminated {
                return;
            }
            if self.timers[idx(t)].is_some_and(|at| at <= now) {
                self.clear(t);
                self.fire(t, cfg, now);
            }
        }
    }

    fn fire(&mut self, t: Timer, cfg: &Config, now: Instant) {
        match (t, self.state) {
            (Timer::A, State::Calling) => {
                self.out.push(Message::Request(self.request.clone()));
                self.interval *= 2;
                self.set(Timer::A, now + self.interval);
            }
            (Timer::B, State::Calling)
            | (Timer::F, State::Trying | State::Proceeding)
            | (Timer::H, State::Completed) => {
                self.events.push(Event::Timeout);
                self.terminate();
            }
            (Timer::E, State::Trying | State::Proceeding) => {
                self.out.push(Message::Request(self.request.clone()));
                self.interval = if self.state == State::Trying {
                    (self.interval * 2).min(cfg.t2)
                } else {
                    cfg.t2
                };
                self.set(Timer::E, now + self.interval);
            }
            (Timer::G, State::Completed) => {
                if let Some(r) = &self.last_response {
                    self.out.push(Message::Response(r.clone()));
                }
                self.interval = (self.interval * 2).min(cfg.t2);
                self.set(Timer::G, now + self.interval);
            }
            (Timer::Trying, State::Proceeding) if self.last_response.is_none() => {
                let trying =
                    Response::to_request(&self.request, crate::status::StatusCode::TRYING, None);
                self.out.push(Message::Response(trying.clone()));
                self.last_response = Some(trying);
            }
            (Timer::D, State::Completed)
            | (Timer::I, State::Confirmed)
            | (Timer::J, State::Completed)
            | (Timer::K, State::Completed)
            | (Timer::L, State::Accepted)
            | (Timer::M, State::Accepted) => self.terminate(),
            _ => {}
        }
    }
}
