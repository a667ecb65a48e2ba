//! The swarm task: the only owner of the libp2p swarm. It serves commands,
//! validates inbound PUTs against the overlay rules, merges GET results, and
//! feeds identify/mDNS addresses into Kademlia.

use super::behaviour::{Behaviour, BehaviourEvent, OverlayTuning};
use super::sip_link::{LinkTuning, SipLink};
use super::{Command, DhtLookup, LookupReply, Overlay, OverlayError, OverlayStatus};
use crate::metrics::Metrics;
use crate::storage::{SledRecordStore, records::unix_now};
use futures::StreamExt;
use kadsip_proto::overlay::{AorRecord, Limits, Validated, merge_validated};
use libp2p::identity::Keypair;
use libp2p::kad::{self, QueryId, Quorum, Record, RecordKey};
use libp2p::metrics::Recorder;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm, identify, mdns, noise, tcp, yamux};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// A libp2p transport already upgraded with security and multiplexing.
pub type BoxedTransport =
    libp2p::core::transport::Boxed<(PeerId, libp2p::core::muxing::StreamMuxerBox)>;

/// Builds the transport of a node from its key (the simulator's emulated links).
pub type TransportFactory = Box<dyn FnOnce(&Keypair) -> BoxedTransport + Send>;

/// Builds a TCP + Noise + Yamux swarm for `key`, or one over `transport`
/// when given (the simulator's in-memory links).
pub fn build_swarm(
    key: Keypair,
    store: SledRecordStore,
    tuning: &OverlayTuning,
    transport: Option<TransportFactory>,
) -> Result<Swarm<Behaviour>, Box<dyn std::error::Error + Send + Sync>> {
    let tuning = tuning.clone();
    let behaviour = |key: &Keypair| {
        Behaviour::new(key, store, &tuning)
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
    };
    let idle = tuning.idle_timeout;
    let builder = libp2p::SwarmBuilder::with_existing_identity(key).with_tokio();
    Ok(match transport {
        Some(make) => builder
            .with_other_transport(make)?
            .with_behaviour(behaviour)?
            .with_swarm_config(|c| swarm_config(c, idle))
            .build(),
        None => builder
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_behaviour(behaviour)?
            .with_swarm_config(|c| swarm_config(c, idle))
            .build(),
    })
}

/// Swarm settings for every transport. Substreams open with multistream-select
/// V1Lazy: the opener sends its request with the protocol proposal instead of
/// waiting a round trip for the confirmation, so a Kademlia request costs one
/// round trip, not two. Every libp2p listener accepts it; our protocols are
/// each offered alone, so a refusal still surfaces as a stream error.
fn swarm_config(c: libp2p::swarm::Config, idle: Duration) -> libp2p::swarm::Config {
    c.with_idle_connection_timeout(idle)
        .with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy)
}

struct PendingLookup {
    key: Vec<u8>,
    pinned: Option<[u8; 32]>,
    results: Vec<Validated>,
    first_valid: Option<Duration>,
    replies: Vec<oneshot::Sender<LookupReply>>,
    started: Instant,
    deadline: (tokio::time::Instant, u64),
}

/// The swarm task's state.
pub struct OverlayTask {
    swarm: Swarm<Behaviour>,
    rx: mpsc::Receiver<Command>,
    lookups: HashMap<QueryId, PendingLookup>,
    lookup_by_key: HashMap<Vec<u8>, QueryId>,
    publishes: HashMap<QueryId, Vec<PublishReply>>,
    /// Publications waiting for one of [`MAX_PUBLISHING`] slots, oldest
    /// first; a newer value for a key already waiting replaces the old one.
    queued_publishes: VecDeque<Vec<u8>>,
    queued_by_key: HashMap<Vec<u8>, (Vec<u8>, Vec<PublishReply>)>,
    metrics: Arc<Metrics>,
    /// Results agreeing on the owner needed before a lookup answers early.
    read_quorum: usize,
    /// The record bounds the store applies, for reading too.
    limits: Limits,
    /// How long a lookup may take, and when each one's time is up.
    lookup_deadline: Duration,
    deadlines: BTreeMap<(tokio::time::Instant, u64), QueryId>,
    next_seq: u64,
}

/// Where a publication's outcome goes (none for fire-and-forget).
type PublishReply = Option<oneshot::Sender<Result<(), OverlayError>>>;

/// Publications run at once. Kademlia's query pool is walked on every poll,
/// so thousands of concurrent puts cost more than they gain; the rest wait.
const MAX_PUBLISHING: usize = 64;

/// Most publications waiting (distinct keys); more are refused as busy.
const MAX_QUEUED_PUBLISHES: usize = 65_536;

/// How long shutdown waits for publications under way.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Most lookups in flight; more wait in the command channel.
const MAX_INFLIGHT: usize = 4096;

impl OverlayTask {
    /// Wraps a built swarm; returns the task and its handle.
    pub fn new(
        mut swarm: Swarm<Behaviour>,
        metrics: Arc<Metrics>,
        queue: usize,
        lookup_deadline: Duration,
    ) -> (OverlayTask, Overlay) {
        let (tx, rx) = mpsc::channel(queue);
        let limits = *swarm.behaviour_mut().kad.store_mut().limits();
        let peer_id = *swarm.local_peer_id();
        let link = SipLink::new(
            swarm.behaviour().stream.new_control(),
            tx.clone(),
            LinkTuning::default(),
        );
        (
            OverlayTask {
                swarm,
                rx,
                lookups: HashMap::new(),
                lookup_by_key: HashMap::new(),
                publishes: HashMap::new(),
                queued_publishes: VecDeque::new(),
                queued_by_key: HashMap::new(),
                metrics,
                read_quorum: 2,
                limits,
                lookup_deadline,
                deadlines: BTreeMap::new(),
                next_seq: 0,
            },
            Overlay::new(tx, peer_id, link),
        )
    }

    /// The swarm, for listening and dialing before [`OverlayTask::run`].
    pub fn swarm_mut(&mut self) -> &mut Swarm<Behaviour> {
        &mut self.swarm
    }

    /// Runs until `shutdown` completes or every handle is dropped. On
    /// shutdown, publications under way get a short grace period so a record
    /// acknowledged locally still reaches its replicas.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let busy = self.lookups.len() >= MAX_INFLIGHT;
            let next_deadline = self.deadlines.first_key_value().map(|(d, _)| d.0);
            tokio::select! {
                _ = tokio::time::sleep_until(next_deadline.unwrap_or_else(tokio::time::Instant::now)),
                    if next_deadline.is_some() => self.expire_lookups(),
                _ = &mut shutdown => {
                    self.drain_publishes().await;
                    break;
                }
                ev = self.swarm.select_next_some() => self.on_swarm_event(ev),
                cmd = self.rx.recv(), if !busy => match cmd {
                    Some(c) => self.on_command(c),
                    None => break,
                },
            }
        }
        for (_, p) in self.lookups.drain() {
            for r in p.replies {
                let _ = r.send(LookupReply {
                    result: DhtLookup::TimedOut,
                    requests: 0,
                    elapsed: p.started.elapsed(),
                    first_valid: p.first_valid,
                });
            }
        }
    }

    async fn drain_publishes(&mut self) {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while !self.publishes.is_empty() || !self.queued_publishes.is_empty() {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm_event(ev),
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
    }

    fn full_addrs(&self) -> Vec<String> {
        let me = *self.swarm.local_peer_id();
        self.swarm
            .listeners()
            .chain(self.swarm.external_addresses())
            .map(|a| a.clone().with(Protocol::P2p(me)).to_string())
            .collect()
    }

    fn routing_table_len(&mut self) -> usize {
        self.swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .map(|b| b.num_entries())
            .sum()
    }

    /// Queues a publication (replacing a waiting one for the same key) and
    /// starts what the slots allow.
    fn queue_publish(&mut self, key: Vec<u8>, value: Vec<u8>, reply: PublishReply) {
        match self.queued_by_key.get_mut(&key) {
            Some((v, replies)) => {
                *v = value;
                replies.push(reply);
            }
            None if self.queued_publishes.len() >= MAX_QUEUED_PUBLISHES => {
                if let Some(r) = reply {
                    let _ = r.send(Err(OverlayError::Busy));
                }
            }
            None => {
                self.queued_publishes.push_back(key.clone());
                self.queued_by_key.insert(key, (value, vec![reply]));
            }
        }
        self.start_publishes();
    }

    fn start_publishes(&mut self) {
        while self.publishes.len() < MAX_PUBLISHING {
            let Some(key) = self.queued_publishes.pop_front() else {
                return;
            };
            let Some((value, replies)) = self.queued_by_key.remove(&key) else {
                continue;
            };
            // Merge locally first: a refusal (a newer seq already here, an
            // owner conflict) is answered with its reason, before any peer
            // is bothered; kad's own local put then finds the same record.
            let store = self.swarm.behaviour_mut().kad.store_mut();
            if let Err(e) = store.merge_put(&key, &value, unix_now()) {
                for r in replies.into_iter().flatten() {
                    let _ = r.send(Err(OverlayError::Refused(e.clone())));
                }
                continue;
            }
            // Quorum::All: kad stops sending PUTs once its quorum is met,
            // so a smaller quorum would leave most replicas without it.
            let record = Record {
                key: RecordKey::new(&key),
                value,
                publisher: None,
                expires: None,
            };
            match self
                .swarm
                .behaviour_mut()
                .kad
                .put_record(record, Quorum::All)
            {
                Ok(id) => {
                    self.publishes.insert(id, replies);
                }
                Err(e) => {
                    for r in replies.into_iter().flatten() {
                        let _ = r.send(Err(OverlayError::StoreFull(e.clone())));
                    }
                }
            }
        }
    }

    fn on_command(&mut self, c: Command) {
        match c {
            Command::Publish { key, value, reply } => self.queue_publish(key, value, reply),
            Command::Lookup { key, pinned, reply } => {
                if self.swarm.connected_peers().next().is_none() && self.routing_table_len() == 0 {
                    let _ = reply.send(LookupReply {
                        result: DhtLookup::NoPeers,
                        requests: 0,
                        elapsed: Duration::ZERO,
                        first_valid: None,
                    });
                    return;
                }
                if let Some(id) = self.lookup_by_key.get(&key) {
                    if let Some(p) = self.lookups.get_mut(id) {
                        p.replies.push(reply);
                        return;
                    }
                }
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_record(RecordKey::new(&key));
                self.lookup_by_key.insert(key.clone(), id);
                self.next_seq += 1;
                let deadline = (
                    tokio::time::Instant::now() + self.lookup_deadline,
                    self.next_seq,
                );
                self.deadlines.insert(deadline, id);
                self.lookups.insert(
                    id,
                    PendingLookup {
                        key,
                        pinned,
                        results: Vec::new(),
                        first_valid: None,
                        replies: vec![reply],
                        started: Instant::now(),
                        deadline,
                    },
                );
            }
            Command::Status { reply } => {
                let records_held = self.swarm.behaviour_mut().kad.store_mut().len();
                let status = OverlayStatus {
                    peer_id: self.swarm.local_peer_id().to_string(),
                    listen_addrs: self.full_addrs(),
                    peers: self.swarm.connected_peers().count(),
                    routing_table: self.routing_table_len(),
                    records_held,
                };
                let _ = reply.send(status);
            }
            Command::DialPeer { peer, addrs, reply } => {
                let opts = DialOpts::peer_id(peer)
                    .addresses(addrs)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build();
                if let Err(e) = self.swarm.dial(opts) {
                    tracing::debug!(%peer, error = %e, "no dial to the peer");
                }
                let _ = reply.send(());
            }
            Command::Dial { addr } => {
                if let Err(e) = self.swarm.dial(addr.clone()) {
                    tracing::warn!(%addr, error = %e, "dial failed");
                }
            }
        }
    }

    fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        self.metrics.libp2p.record(&ev);
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                let me = *self.swarm.local_peer_id();
                tracing::info!("listening on {}", address.with(Protocol::P2p(me)));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                tracing::debug!(%peer_id, addr = %endpoint.get_remote_address(), "connected");
                if endpoint.is_dialer() {
                    let addr = endpoint.get_remote_address().clone();
                    self.swarm.behaviour_mut().learn_address(&peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(ev)) => {
                self.metrics.libp2p.record(&ev);
                self.on_kad(ev);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(ev)) => {
                self.metrics.libp2p.record(&ev);
                if let identify::Event::Received { peer_id, info, .. } = ev {
                    for addr in info.listen_addrs {
                        if usable(&addr) {
                            self.swarm.behaviour_mut().learn_address(&peer_id, addr);
                        }
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ev)) => self.metrics.libp2p.record(&ev),
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, %error, "dial failed");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(list))) => {
                for (peer, addr) in list {
                    tracing::debug!(%peer, %addr, "mdns discovered");
                    self.swarm
                        .behaviour_mut()
                        .learn_address(&peer, addr.clone());
                    if !self.swarm.is_connected(&peer) {
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_kad(&mut self, ev: kad::Event) {
        match ev {
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::PutRecord {
                        source,
                        record: Some(record),
                        ..
                    },
            } => {
                let store = self.swarm.behaviour_mut().kad.store_mut();
                match store.merge_put(record.key.as_ref(), &record.value, unix_now()) {
                    Ok(_) => {
                        self.metrics.records_stored.inc();
                    }
                    Err(e) => {
                        tracing::debug!(%source, error = %e, "refused inbound record");
                        self.metrics.record_refused(&e);
                    }
                }
            }
            kad::Event::OutboundQueryProgressed {
                id,
                result,
                stats,
                step,
            } => match result {
                kad::QueryResult::GetRecord(Ok(kad::GetRecordOk::FoundRecord(pr))) => {
                    let Some(p) = self.lookups.get_mut(&id) else {
                        return;
                    };
                    let limits = self.limits;
                    match AorRecord::decode(&pr.record.value, 64 * 1024)
                        .and_then(|rec| rec.validated(&p.key, unix_now(), &limits))
                    {
                        Ok(rec) => {
                            p.first_valid.get_or_insert_with(|| p.started.elapsed());
                            p.results.push(rec);
                        }
                        Err(e) => {
                            tracing::debug!(peer = ?pr.peer, error = %e, "ignored invalid record");
                            self.metrics.record_refused(&e);
                        }
                    }
                    if self.enough(id) {
                        if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                            q.finish();
                        }
                        self.answer(id, stats.num_requests(), false);
                    } else if step.last {
                        self.answer(id, stats.num_requests(), false);
                    }
                }
                kad::QueryResult::GetRecord(Ok(
                    kad::GetRecordOk::FinishedWithNoAdditionalRecord { .. },
                )) => {
                    self.answer(id, stats.num_requests(), false);
                }
                kad::QueryResult::GetRecord(Err(kad::GetRecordError::Timeout { .. })) => {
                    self.answer(id, stats.num_requests(), true);
                }
                kad::QueryResult::GetRecord(Err(_)) => {
                    self.answer(id, stats.num_requests(), false);
                }
                kad::QueryResult::PutRecord(r) => {
                    let stored = match &r {
                        Ok(_) => None,
                        Err(
                            kad::PutRecordError::QuorumFailed { success, .. }
                            | kad::PutRecordError::Timeout { success, .. },
                        ) => Some(success.len()),
                    };
                    tracing::debug!(requests = stats.num_requests(), ?stored, "publication done");
                    if let Some(replies) = self.publishes.remove(&id) {
                        let outcome = if r.is_ok() { "replicated" } else { "partial" };
                        self.metrics
                            .publishes
                            .get_or_create(&crate::metrics::Outcome { outcome })
                            .inc();
                        for reply in replies.into_iter().flatten() {
                            let _ = reply.send(match stored {
                                None => Ok(()),
                                Some(stored) => Err(OverlayError::NotReplicated { stored }),
                            });
                        }
                        self.start_publishes();
                    }
                }
                other if tracing::enabled!(tracing::Level::DEBUG) => {
                    tracing::debug!(
                        table = self.routing_table_len(),
                        requests = stats.num_requests(),
                        ok = stats.num_successes(),
                        last = step.last,
                        kind = query_kind(&other),
                        "background query step"
                    );
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// True when enough valid results agree to answer before the query ends.
    fn enough(&self, id: QueryId) -> bool {
        let Some(p) = self.lookups.get(&id) else {
            return false;
        };
        let Some(merged) = merge_validated(p.results.iter().cloned(), p.pinned, unix_now()) else {
            return false;
        };
        let agreeing = p
            .results
            .iter()
            .filter(|r| r.record().owner == merged.owner)
            .count();
        agreeing >= self.read_quorum || (p.pinned == Some(merged.owner) && agreeing >= 1)
    }

    /// Answers the lookups whose deadline passed (TimedOut unless a valid
    /// record already arrived) and stops their queries.
    fn expire_lookups(&mut self) {
        let now = tokio::time::Instant::now();
        while let Some((&(at, _), &id)) = self.deadlines.first_key_value() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let mut requests = 0;
            if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                requests = q.stats().num_requests();
                q.finish();
            }
            self.answer(id, requests, true);
        }
    }

    fn answer(&mut self, id: QueryId, requests: u32, timed_out: bool) {
        let Some(p) = self.lookups.remove(&id) else {
            return;
        };
        self.deadlines.remove(&p.deadline);
        self.lookup_by_key.remove(&p.key);
        let merged = merge_validated(p.results, p.pinned, unix_now());
        // A query that ends after its deadline (before the timer fired) is late too.
        let timed_out = timed_out || tokio::time::Instant::now() >= p.deadline.0;
        let result = match merged {
            Some(r) => DhtLookup::Found(r),
            None if timed_out => DhtLookup::TimedOut,
            None => DhtLookup::NotFound,
        };
        let elapsed = p.started.elapsed();
        for r in p.replies {
            let _ = r.send(LookupReply {
                result: result.clone(),
                requests,
                elapsed,
                first_valid: p.first_valid,
            });
        }
    }
}

/// Name of a Kademlia query result's kind, for logs.
fn query_kind(r: &kad::QueryResult) -> &'static str {
    match r {
        kad::QueryResult::Bootstrap(_) => "bootstrap",
        kad::QueryResult::GetClosestPeers(_) => "closest-peers",
        kad::QueryResult::RepublishRecord(_) => "republish",
        kad::QueryResult::GetRecord(_) => "get",
        kad::QueryResult::PutRecord(_) => "put",
        _ => "other",
    }
}

/// Addresses worth telling Kademlia about (not unspecified).
fn usable(addr: &Multiaddr) -> bool {
    !addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}
