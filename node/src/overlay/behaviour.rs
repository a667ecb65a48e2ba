//! The libp2p behaviours a kadsip node runs: Kademlia for the AOR records,
//! identify (which feeds Kademlia with listen addresses), ping, optional
//! mDNS, and connection limits.

use crate::storage::SledRecordStore;
use libp2p::swarm::{NetworkBehaviour, behaviour::toggle::Toggle};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, connection_limits, identify, identity::Keypair, kad, mdns,
    ping,
};
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
    /// Peers each record is stored at: Kademlia's k for records and for the
    /// closest-peer sets queries look for (buckets keep 20 entries
    /// regardless). A node takes it from `Config::replicas`.
    pub replication_factor: NonZeroUsize,
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
            replication_factor: kad::K_VALUE,
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
    /// Tells Kademlia an address of `peer` when the peer is in its bucket
    /// already or the bucket has room. libp2p-kad answers an unknown peer
    /// for a full bucket by dialing the bucket's oldest disconnected entry;
    /// fed from every identify exchange, those dials open connections whose
    /// own identify exchanges dial again, a storm that saturated 400-node
    /// simulations. Full buckets are still refreshed by Kademlia's own
    /// inserts of peers it dialed.
    pub fn learn_address(&mut self, peer: &PeerId, addr: Multiaddr) {
        let admit = match self.kad.kbucket(*peer) {
            Some(bucket) => {
                bucket.num_entries() < kad::K_VALUE.get()
                    || bucket.iter().any(|e| e.node.key.preimage() == peer)
            }
            None => false, // our own id
        };
        if admit {
            self.kad.add_address(peer, addr);
        }
    }

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
            .set_replication_factor(tuning.replication_factor)
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

#[cfg(test)]
mod tests {
    use super::*;
    use kadsip_proto::overlay::Limits;

    /// Behaviours on a fresh store (kept alive by the returned dir).
    fn behaviour() -> (Behaviour, PeerId, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let store = SledRecordStore::new(db.open_tree("r").unwrap(), Limits::default(), 16);
        let key = Keypair::generate_ed25519();
        let tuning = OverlayTuning {
            mdns: false,
            ..OverlayTuning::default()
        };
        let b = Behaviour::new(&key, store, &tuning).unwrap();
        (b, key.public().to_peer_id(), dir)
    }

    #[test]
    fn a_full_bucket_takes_no_unknown_peer_but_known_ones_and_room_elsewhere() {
        let (mut b, me, _dir) = behaviour();
        let me = kad::KBucketKey::from(me);
        // Peers in our farthest bucket (half of all ids land there).
        let far = |p: &PeerId| me.distance(&kad::KBucketKey::from(*p)).ilog2() == Some(255);
        let mut peers = std::iter::repeat_with(PeerId::random).filter(far);
        let addr: Multiaddr = "/ip4/192.0.2.1/tcp/4001".parse().unwrap();
        let full: Vec<PeerId> = peers.by_ref().take(kad::K_VALUE.get()).collect();
        for p in &full {
            b.learn_address(p, addr.clone());
        }
        let one = full[0];
        assert_eq!(
            b.kad.kbucket(one).unwrap().num_entries(),
            kad::K_VALUE.get()
        );
        // A known peer's new address is still taken.
        b.learn_address(&one, "/ip4/192.0.2.2/tcp/4001".parse().unwrap());
        // An unknown one is neither inserted nor queued as pending (for a
        // connected peer kad would queue it and dial the oldest entry).
        let newcomer = peers.next().unwrap();
        b.learn_address(&newcomer, addr.clone());
        let bucket = b.kad.kbucket(newcomer).unwrap();
        assert!(!bucket.has_pending());
        assert!(bucket.iter().all(|e| e.node.key.preimage() != &newcomer));
        assert_eq!(bucket.num_entries(), kad::K_VALUE.get());
        // A peer in a bucket with room is taken.
        let near = std::iter::repeat_with(PeerId::random)
            .find(|p| !far(p))
            .unwrap();
        b.learn_address(&near, addr);
        let bucket = b.kad.kbucket(near).unwrap();
        assert!(bucket.iter().any(|e| e.node.key.preimage() == &near));
    }

    /// Guards the vendored libp2p-kad patch (vendor/libp2p-kad/KADSIP-PATCH.md):
    /// the closest-peers iterator still yields the K nearest entries in order.
    #[test]
    fn closest_local_peers_match_a_full_scan() {
        let (mut b, _me, _dir) = behaviour();
        let addr: Multiaddr = "/ip4/192.0.2.1/tcp/4001".parse().unwrap();
        for _ in 0..300 {
            b.learn_address(&PeerId::random(), addr.clone());
        }
        let table: Vec<PeerId> = b
            .kad
            .kbuckets()
            .flat_map(|bucket| {
                bucket
                    .iter()
                    .map(|e| *e.node.key.preimage())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(table.len() > kad::K_VALUE.get());
        let nobody = PeerId::random();
        for _ in 0..50 {
            let target = kad::KBucketKey::from(PeerId::random());
            let got: Vec<PeerId> = b
                .kad
                .find_closest_local_peers(&target, &nobody)
                .map(|p| p.node_id)
                .collect();
            let mut want = table.clone();
            want.sort_by_key(|p| target.distance(&kad::KBucketKey::from(*p)));
            want.truncate(kad::K_VALUE.get());
            assert_eq!(got, want);
        }
    }
}
