//! The libp2p behaviours a kadsip node runs: Kademlia for the AOR records,
//! identify (which feeds Kademlia with listen addresses), ping, optional
//! mDNS, and connection limits.

use crate::storage::SledRecordStore;
use libp2p::swarm::{NetworkBehaviour, behaviour::toggle::Toggle};
use libp2p::{StreamProtocol, connection_limits, identify, identity::Keypair, kad, mdns, ping};
use std::num::NonZeroUsize;
use std::time::Duration;

/// Kademlia protocol name of the kadsip overlay.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/kadsip/kad/1.0.0");
/// identify protocol version string.
pub const IDENTIFY_PROTOCOL: &str = "/kadsip/id/1.0.0";

/// Overlay tuning (shortened by the simulator).
#[derive(Debug, Clone)]
pub struct OverlayTuning {
    /// Deadline of one DHT lookup (the caller is answered TimedOut then).
    pub lookup_deadline: Duration,
    /// Kademlia's own query timeout: bounds publications, which may take
    /// longer than a lookup may wait (a burst of registrations, a big overlay).
    pub query_timeout: Duration,
    /// How often stored records are re-replicated to the closest peers.
    pub replication_interval: Option<Duration>,
    /// Most simultaneous connections.
    pub max_connections: u32,
    /// mDNS discovery on the LAN.
    pub mdns: bool,
    /// A connection with no open stream is closed after this long.
    pub idle_timeout: Duration,
}

impl Default for OverlayTuning {
    fn default() -> Self {
        OverlayTuning {
            lookup_deadline: Duration::from_secs(5),
            query_timeout: Duration::from_secs(10),
            replication_interval: Some(Duration::from_secs(3600)),
            max_connections: 512,
            mdns: true,
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// All behaviours of a node.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Connection bounds.
    pub limits: connection_limits::Behaviour,
    /// The DHT.
    pub kad: kad::Behaviour<SledRecordStore>,
    /// Address exchange.
    pub identify: identify::Behaviour,
    /// Liveness.
    pub ping: ping::Behaviour,
    /// LAN discovery.
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// Raw streams, for the SIP link between nodes.
    pub stream: libp2p_stream::Behaviour,
}

impl Behaviour {
    /// Builds the behaviours for `key` with `store` as the record store.
    pub fn new(
        key: &Keypair,
        store: SledRecordStore,
        tuning: &OverlayTuning,
    ) -> std::io::Result<Behaviour> {
        let peer_id = key.public().to_peer_id();
        let mut cfg = kad::Config::new(KAD_PROTOCOL);
        cfg.set_query_timeout(tuning.query_timeout.max(tuning.lookup_deadline))
            .disjoint_query_paths(true)
            .set_record_filtering(kad::StoreInserts::FilterBoth)
            // kadsip republishes its own entries with a fresh seq itself.
            .set_publication_interval(None)
            .set_replication_interval(tuning.replication_interval)
            .set_parallelism(NonZeroUsize::new(3).expect("3 > 0"))
            .set_max_packet_size(64 * 1024);
        let mut kad = kad::Behaviour::with_config(peer_id, store, cfg);
        kad.set_mode(Some(kad::Mode::Server));
        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                .with_agent_version(format!("kadsip/{}", env!("CARGO_PKG_VERSION"))),
        );
        let mdns = if tuning.mdns {
            Some(mdns::tokio::Behaviour::new(
                mdns::Config::default(),
                peer_id,
            )?)
        } else {
            None
        };
        let limits = connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established(Some(tuning.max_connections))
                .with_max_pending_incoming(Some(64))
                .with_max_established_per_peer(Some(2)),
        );
        let stream = libp2p_stream::Behaviour::new();
        Ok(Behaviour {
            stream,
            limits,
            kad,
            identify,
            ping: ping::Behaviour::default(),
            mdns: mdns.into(),
        })
    }
}
