//! The overlay: one task owns the libp2p swarm; everyone else talks to it
//! through [`Overlay`], a bounded command channel with oneshot replies (the
//! rust-libp2p `file-sharing` pattern).

mod behaviour;
pub mod identity;
pub mod sip_link;
mod task;

pub use behaviour::{Behaviour, IDENTIFY_PROTOCOL, KAD_PROTOCOL, OverlayTuning};
pub use task::{BoxedTransport, OverlayTask, TransportFactory, build_swarm};

use kadsip_proto::overlay::AorRecord;
use libp2p::{Multiaddr, PeerId};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// What a DHT lookup found.
#[derive(Debug, Clone)]
pub enum DhtLookup {
    /// Valid records merged into one view.
    Found(AorRecord),
    /// The query completed and no peer holds a valid record.
    NotFound,
    /// The deadline passed before the query completed, with nothing found.
    TimedOut,
    /// The node knows no peer at all.
    NoPeers,
}

/// A lookup's outcome with its cost.
#[derive(Debug, Clone)]
pub struct LookupReply {
    /// The outcome.
    pub result: DhtLookup,
    /// DHT requests the query sent.
    pub requests: u32,
    /// Wall time the query took.
    pub elapsed: Duration,
    /// When the first valid record arrived (before the read quorum was
    /// met): what a reader that trusts one answer would have waited.
    pub first_valid: Option<Duration>,
}

/// A snapshot of the overlay for `/status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OverlayStatus {
    /// Our PeerId.
    pub peer_id: String,
    /// Full listen multiaddrs (ending in `/p2p/<peer id>`).
    pub listen_addrs: Vec<String>,
    /// Connected peers.
    pub peers: usize,
    /// Entries in the Kademlia routing table.
    pub routing_table: usize,
    /// DHT records held for the overlay.
    pub records_held: usize,
}

/// Why an overlay request failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum OverlayError {
    /// The swarm task is gone (shutting down).
    #[error("overlay task stopped")]
    Stopped,
    /// The record was stored locally but no peer accepted it.
    #[error("the record reached only {stored} peers")]
    NotReplicated {
        /// Peers that stored it.
        stored: usize,
    },
    /// The local store refused the record (stale, conflicting, invalid).
    #[error("record refused locally: {0}")]
    Refused(#[from] kadsip_proto::overlay::RecordError),
    /// The local store is out of room for the record.
    #[error("record store full: {0:?}")]
    StoreFull(libp2p::kad::store::Error),
    /// The peer could not be reached (dial failure, timeout, closed stream).
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    /// Too many SIP messages queued to this peer.
    #[error("too many messages queued to the peer")]
    Busy,
    /// The SIP message is over the link's frame bound.
    #[error(
        "SIP message over the {} byte bound of the overlay link",
        sip_link::MAX_SIP_FRAME
    )]
    TooLarge,
    /// Inbound SIP is already routed to another sink.
    #[error("the SIP link is already attached")]
    AlreadyAttached,
}

/// A SIP message that arrived over the overlay link, with its sender.
pub type InboundSip = (PeerId, Vec<u8>);

pub(crate) enum Command {
    Publish {
        key: Vec<u8>,
        value: Vec<u8>,
        reply: Option<oneshot::Sender<Result<(), OverlayError>>>,
    },
    Lookup {
        key: Vec<u8>,
        pinned: Option<[u8; 32]>,
        reply: oneshot::Sender<LookupReply>,
    },
    Status {
        reply: oneshot::Sender<OverlayStatus>,
    },
    Dial {
        addr: Multiaddr,
    },
    /// Dial `peer` at `addrs` unless connected or dialing already; the
    /// reply says the dial is under way (or was not needed).
    DialPeer {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        reply: oneshot::Sender<()>,
    },
}

/// Handle to the overlay task.
#[derive(Clone)]
pub struct Overlay {
    tx: mpsc::Sender<Command>,
    peer_id: PeerId,
    link: sip_link::SipLink,
}

impl Overlay {
    pub(crate) fn new(tx: mpsc::Sender<Command>, peer_id: PeerId, link: sip_link::SipLink) -> Self {
        Overlay { tx, peer_id, link }
    }

    /// Our PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    async fn send(&self, c: Command) -> Result<(), OverlayError> {
        self.tx.send(c).await.map_err(|_| OverlayError::Stopped)
    }

    /// Stores `value` under `key` locally and at the closest peers; returns
    /// once at least one peer stored it.
    pub async fn publish(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), OverlayError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Publish {
            key,
            value,
            reply: Some(tx),
        })
        .await?;
        rx.await.map_err(|_| OverlayError::Stopped)?
    }

    /// Like [`Overlay::publish`] without waiting for the replication.
    pub async fn publish_nowait(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), OverlayError> {
        self.send(Command::Publish {
            key,
            value,
            reply: None,
        })
        .await
    }

    /// Looks `key` up in the DHT; `pinned` is an owner key already trusted.
    pub async fn lookup(
        &self,
        key: Vec<u8>,
        pinned: Option<[u8; 32]>,
    ) -> Result<LookupReply, OverlayError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Lookup {
            key,
            pinned,
            reply: tx,
        })
        .await?;
        rx.await.map_err(|_| OverlayError::Stopped)
    }

    /// The overlay's status.
    pub async fn status(&self) -> Result<OverlayStatus, OverlayError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Status { reply: tx }).await?;
        rx.await.map_err(|_| OverlayError::Stopped)
    }

    /// Sends a SIP message to `peer` (dialing `addrs` if needed) and waits
    /// until it is written to the peer's stream.
    pub async fn send_sip(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        bytes: Vec<u8>,
    ) -> Result<(), OverlayError> {
        self.link.send(peer, addrs, bytes).await
    }

    /// Queues a SIP message without waiting (false when the peer's queue is
    /// full).
    pub fn try_send_sip(&self, peer: PeerId, bytes: Vec<u8>) -> bool {
        self.link.try_send(peer, bytes)
    }

    /// Routes SIP messages arriving over the overlay to `sink`.
    pub fn attach_sip(&self, sink: mpsc::Sender<InboundSip>) -> Result<(), OverlayError> {
        self.link.attach(sink)
    }

    /// Dials a peer address (bootstrap).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), OverlayError> {
        self.send(Command::Dial { addr }).await
    }
}
