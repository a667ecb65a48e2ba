//! SIP transactions (RFC 3261 §17, RFC 6026 corrections), sans-I/O like
//! quinn-proto: feed messages and time in (`dispatch`, `respond`,
//! `handle_timeout(now)`), take messages and events out (`poll_transmit`,
//! `poll_event`), and sleep until `poll_timeout()`. Nothing here reads the clock.

mod key;
mod machine;

pub use key::TransactionKey;
pub use machine::{Kind, State, Timer};

use crate::message::{Message, Request, Response};
use crate::method::Method;
use machine::Tx;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// Timer base values (RFC 3261 §17.1.1.1, Table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE and INVITE responses (4 s).
    pub t2: Duration,
    /// Maximum time a message stays in the network (5 s).
    pub t4: Duration,
    /// INVITE servers send 100 Trying after 200 ms of TU silence.
    pub auto_trying: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            auto_trying: true,
        }
    }
}

/// Whether the transport retransmits for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reliability {
    /// UDP: the transaction retransmits.
    Unreliable,
    /// TCP, TLS, WebSocket, the overlay: no retransmissions.
    Reliable,
}

/// A transaction handle, unique within one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(u64);

/// What a transaction tells its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Client: a response to pass up (every 2xx in Accepted, RFC 6026).
    Response(Response),
    /// Server: the ACK for a 2xx (Accepted state), passed up.
    Request(Request),
    /// Timer B, F or H fired (the user generates 408 where it must).
    Timeout,
    /// The transaction is over and removed.
    Terminated,
}

/// Where an incoming message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatch {
    /// Absorbed by an existing transaction.
    Matched(TxId),
    /// A request no transaction knows: the caller creates a server
    /// transaction (or handles an ACK for a 2xx statelessly).
    NewRequest(Request),
    /// A response no client transaction knows (a proxy forwards it statelessly).
    Stray(Message),
}

/// Transaction-layer errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransactionError {
    /// The table is at capacity (answer 503).
    #[error("transaction table full ({0} open)")]
    Full(usize),
    /// A transaction with this key exists already.
    #[error("duplicate transaction")]
    Duplicate,
    /// The message lacks the Via, CSeq or branch needed to key it.
    #[error("message cannot be matched: missing Via, CSeq or branch")]
    Unkeyable,
    /// ACK never creates a transaction.
    #[error("ACK does not create a transaction")]
    Ack,
    /// No such transaction (already terminated).
    #[error("unknown transaction")]
    Unknown,
    /// The user acted in a state that does not allow it.
    #[error("not allowed in state {0:?}")]
    WrongState(State),
}

/// Every open transaction, with matching, timers and output queues.
///
/// A non-INVITE server transaction that answered over UDP spends Timer J
/// (64·T1) only absorbing retransmissions; it then keeps just its key and
/// final response, outside the `cap` of working transactions, in a FIFO of
/// its own bound (the oldest ends early when full), so a registrar's
/// throughput is not capped at `cap / 64·T1`. Likewise an INVITE transaction
/// in the RFC 6026 Accepted state (64·T1 passing 2xx retransmissions) is
/// hollowed out and counted outside `cap`, in a FIFO bounded at four times
/// `cap`: a proxy's sustained call rate is not capped at `cap / 64·T1`
/// either.
#[derive(Debug)]
pub struct Transactions {
    cfg: Config,
    cap: usize,
    next: u64,
    txs: HashMap<TxId, (TransactionKey, Tx)>,
    /// Completed non-INVITE server transactions (unreliable transport).
    absorbing: HashMap<TxId, (TransactionKey, Response)>,
    /// Their Timer J deadlines, in order (all run for the same 64·T1).
    absorb_fifo: VecDeque<(Instant, TxId)>,
    absorb_cap: usize,
    /// INVITE transactions in the Accepted state (in `txs`, not counted
    /// against `cap`), and the order they entered it.
    accepted: HashSet<TxId>,
    accepted_fifo: VecDeque<TxId>,
    by_key: HashMap<TransactionKey, TxId>,
    deadlines: BTreeSet<(Instant, TxId)>,
    scheduled: HashMap<TxId, Instant>,
    transmits: VecDeque<(TxId, Message)>,
    events: VecDeque<(TxId, Event)>,
}

impl Transactions {
    /// A table holding at most `cap` working transactions, and up to four
    /// times as many completed ones absorbing retransmissions.
    pub fn new(cfg: Config, cap: usize) -> Transactions {
        Transactions {
            cfg,
            cap,
            next: 1,
            txs: HashMap::new(),
            absorbing: HashMap::new(),
            absorb_fifo: VecDeque::new(),
            absorb_cap: cap.saturating_mul(4).max(1),
            accepted: HashSet::new(),
            accepted_fifo: VecDeque::new(),
            by_key: HashMap::new(),
            deadlines: BTreeSet::new(),
            scheduled: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The timer configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Open transactions, those only absorbing retransmissions included.
    pub fn len(&self) -> usize {
        self.txs.len() + self.absorbing.len()
    }

    /// Working transactions (the ones `cap` bounds).
    pub fn working(&self) -> usize {
        self.txs.len() - self.accepted.len()
    }

    /// True when none are open.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty() && self.absorbing.is_empty()
    }

    /// The state of a transaction.
    pub fn state(&self, id: TxId) -> Option<State> {
        match self.txs.get(&id) {
            Some((_, t)) => Some(t.state),
            None => self.absorbing.get(&id).map(|_| State::Completed),
        }
    }

    /// The request that started a transaction (`None` once it only absorbs
    /// retransmissions).
    pub fn request(&self, id: TxId) -> Option<&Request> {
        self.txs.get(&id).map(|(_, t)| t.request())
    }

    /// Routes an incoming message to its transaction.
    pub fn dispatch(&mut self, msg: Message, now: Instant) -> Dispatch {
        match msg {
            Message::Request(req) => {
                let Some(key) = TransactionKey::server(&req) else {
                    return Dispatch::NewRequest(req);
                };
                match self.by_key.get(&key).copied() {
                    Some(id) if self.absorbing.contains_key(&id) => {
                        if let Some((_, resp)) = self.absorbing.get(&id) {
                            self.transmits
                                .push_back((id, Message::Response(resp.clone())));
                        }
                        Dispatch::Matched(id)
                    }
                    Some(id) => {
                        let cfg = self.cfg;
                        if let Some((_, tx)) = self.txs.get_mut(&id) {
                            tx.on_request(req, &cfg, now);
                        }
                        self.after(id);
                        Dispatch::Matched(id)
                    }
                    None => Dispatch::NewRequest(req),
                }
            }
            Message::Response(resp) => {
                let id = TransactionKey::client(&resp).and_then(|k| self.by_key.get(&k).copied());
                match id {
                    Some(id) => {
                        let cfg = self.cfg;
                        if let Some((_, tx)) = self.txs.get_mut(&id) {
                            tx.on_response(resp, &cfg, now);
                        }
                        self.after(id);
                        Dispatch::Matched(id)
                    }
                    None => Dispatch::Stray(Message::Response(resp)),
                }
            }
        }
    }

    fn insert(&mut self, key: TransactionKey, tx: Tx) -> Result<TxId, TransactionError> {
        if self.by_key.contains_key(&key) {
            return Err(TransactionError::Duplicate);
        }
        if self.working() >= self.cap {
            return Err(TransactionError::Full(self.working()));
        }
        let id = TxId(self.next);
        self.next += 1;
        self.by_key.insert(key.clone(), id);
        self.txs.insert(id, (key, tx));
        self.after(id);
        Ok(id)
    }

    /// Creates the server transaction for a new request.
    pub fn new_server(
        &mut self,
        req: Request,
        rel: Reliability,
        now: Instant,
    ) -> Result<TxId, TransactionError> {
        let key = TransactionKey::server(&req);
        self.start(
            req,
            key,
            (Kind::ServerInvite, Kind::ServerNonInvite),
            rel,
            now,
        )
    }

    /// Creates a client transaction and queues the request for sending.
    /// The request's top Via must carry our branch.
    pub fn new_client(
        &mut self,
        req: Request,
        rel: Reliability,
        now: Instant,
    ) -> Result<TxId, TransactionError> {
        let key = TransactionKey::client_for(&req);
        self.start(
            req,
            key,
            (Kind::ClientInvite, Kind::ClientNonInvite),
            rel,
            now,
        )
    }

    fn start(
        &mut self,
        req: Request,
        key: Option<TransactionKey>,
        (invite, other): (Kind, Kind),
        rel: Reliability,
        now: Instant,
    ) -> Result<TxId, TransactionError> {
        if req.method == Method::ACK {
            return Err(TransactionError::Ack);
        }
        let key = key.ok_or(TransactionError::Unkeyable)?;
        let kind = if req.method == Method::INVITE {
            invite
        } else {
            other
        };
        let tx = Tx::new(kind, req, rel, &self.cfg, now);
        self.insert(key, tx)
    }

    /// The INVITE server transaction a CANCEL targets (§9.2).
    pub fn cancel_target(&self, cancel: &Request) -> Option<TxId> {
        self.by_key
            .get(&TransactionKey::cancel_target(cancel)?)
            .copied()
    }

    /// The transaction user answers a server transaction.
    pub fn respond(
        &mut self,
        id: TxId,
        resp: Response,
        now: Instant,
    ) -> Result<(), TransactionError> {
        let cfg = self.cfg;
        let (_, tx) = self.txs.get_mut(&id).ok_or(TransactionError::Unknown)?;
        let state = tx.state;
        if !tx.respond(resp, &cfg, now) {
            return Err(TransactionError::WrongState(state));
        }
        self.after(id);
        Ok(())
    }

    /// The earliest instant at which [`Transactions::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let working = self.deadlines.first().map(|(t, _)| *t);
        let absorbing = self.absorb_fifo.front().map(|(t, _)| *t);
        match (working, absorbing) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while self.absorb_fifo.front().is_some_and(|(at, _)| *at <= now) {
            self.end_absorbing();
        }
        let cfg = self.cfg;
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            self.scheduled.remove(&id);
            if let Some((_, tx)) = self.txs.get_mut(&id) {
                tx.on_timers(&cfg, now);
            }
            self.after(id);
        }
    }

    /// The next message to put on the wire, with the transaction that sent it
    /// (server transactions answer on the path their request came from).
    pub fn poll_transmit(&mut self) -> Option<(TxId, Message)> {
        self.transmits.pop_front()
    }

    /// The next event for the transaction user.
    pub fn poll_event(&mut self) -> Option<(TxId, Event)> {
        self.events.pop_front()
    }

    /// Moves a transaction's outputs to the queues, reschedules it, and
    /// removes it once terminated.
    fn after(&mut self, id: TxId) {
        let Some((_, tx)) = self.txs.get_mut(&id) else {
            return;
        };
        for m in tx.out.drain(..) {
            self.transmits.push_back((id, m));
        }
        let terminated = tx.state == State::Terminated;
        for e in tx.events.drain(..) {
            self.events.push_back((id, e));
        }
        let next = tx.next_deadline();
        if let Some(old) = self.scheduled.remove(&id) {
            self.deadlines.remove(&(old, id));
        }
        if terminated {
            if let Some((key, _)) = self.txs.remove(&id) {
                self.by_key.remove(&key);
            }
            self.accepted.remove(&id);
            return;
        }
        let newly_accepted = tx.state == State::Accepted && !self.accepted.contains(&id);
        if newly_accepted {
            tx.hollow();
        }
        let absorb = tx
            .absorbing()
            .map(|(resp, at)| (resp.clone(), at))
            .filter(|(_, at)| Some(*at) == next);
        if let Some((resp, at)) = absorb {
            if let Some((key, _)) = self.txs.remove(&id) {
                if self.absorbing.len() >= self.absorb_cap {
                    self.end_absorbing();
                }
                self.absorbing.insert(id, (key, resp));
                self.absorb_fifo.push_back((at, id));
            }
            return;
        }
        if let Some(at) = next {
            self.deadlines.insert((at, id));
            self.scheduled.insert(id, at);
        }
        if newly_accepted {
            self.accepted.insert(id);
            self.note_accepted(id);
        }
    }

    /// Queues a transaction that entered Accepted; past the bound, the oldest
    /// ends early (Terminated), as a full absorbing FIFO does.
    fn note_accepted(&mut self, id: TxId) {
        // All wait the same 64·T1, so the queue's front ends first: drop
        // entries that already ended from it.
        while let Some(front) = self.accepted_fifo.front() {
            if self.accepted.contains(front) {
                break;
            }
            self.accepted_fifo.pop_front();
        }
        self.accepted_fifo.push_back(id);
        let cap = self.absorb_cap;
        if self.accepted_fifo.len() > cap.saturating_mul(2) {
            let live = &self.accepted;
            self.accepted_fifo.retain(|t| live.contains(t));
        }
        while self.accepted.len() > cap {
            let Some(old) = self.accepted_fifo.pop_front() else {
                break;
            };
            if !self.accepted.remove(&old) {
                continue;
            }
            if let Some((key, _)) = self.txs.remove(&old) {
                self.by_key.remove(&key);
            }
            if let Some(at) = self.scheduled.remove(&old) {
                self.deadlines.remove(&(at, old));
            }
            self.events.push_back((old, Event::Terminated));
        }
    }

    /// Ends the oldest transaction absorbing retransmissions (Timer J).
    fn end_absorbing(&mut self) {
        let Some((_, id)) = self.absorb_fifo.pop_front() else {
            return;
        };
        if let Some((key, _)) = self.absorbing.remove(&id) {
            self.by_key.remove(&key);
            self.events.push_back((id, Event::Terminated));
        }
    }
}

#[cfg(test)]
mod tests;
