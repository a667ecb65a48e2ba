//! Issue 3 hostile-peer checks: a real libp2p peer on the kadsip DHT PUTs and
//! serves forged, hijacked, stale, far-expiring and oversized records; honest
//! nodes refuse them on PUT (counted in `/metrics`), ignore them on GET, and
//! the honest record still resolves.

use crate::support::{network, resolve_until, wait_for};
use ed25519_dalek::SigningKey;
use futures::StreamExt;
use kadsip_node::lookup::Outcome;
use kadsip_node::node::Running;
use kadsip_node::overlay::{IDENTIFY_PROTOCOL, KAD_PROTOCOL, OverlayStatus};
use kadsip_proto::Aor;
use kadsip_proto::overlay::{AorRecord, ContactBinding, NodeEntry, record_key};
use kadsip_tests::ua::Ua;
use libp2p::kad::store::{MemoryStore, MemoryStoreConfig, RecordStore};
use libp2p::kad::{self, KBucketKey, Quorum, Record, RecordKey};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, identify, identity, noise, tcp, yamux};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

const T: Duration = Duration::from_secs(20);
const BOB: &str = "sip:bob@campus.example";
/// Every contact the hostile peer invents lives in TEST-NET-3.
const EVIL: &str = "sip:mallory@203.0.113.66:5060";
/// `kadsip_records_refused_total` reasons (node/src/metrics.rs), one per PUT.
const REFUSALS: [&str; 5] = [
    "bad_signature",
    "owner_conflict",
    "stale_seq",
    "expiry_too_far",
    "too_large",
];

#[derive(NetworkBehaviour)]
struct HostileBehaviour {
    kad: kad::Behaviour<MemoryStore>,
    identify: identify::Behaviour,
}

type Reply = oneshot::Sender<Result<(), String>>;

enum Cmd {
    /// PUT straight to these peers (`put_record_to`, Quorum::All).
    Put(Record, Vec<PeerId>, Reply),
    /// Keep in our own store, so we serve it on GET.
    Serve(Record, Reply),
}

/// The hostile peer: its swarm runs in a spawned task driven by commands.
struct Hostile {
    peer_id: PeerId,
    tx: mpsc::Sender<Cmd>,
    /// GET requests answered with a record from our store.
    served: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Hostile {
    /// Joins the honest network with an identity closer to `near` than any
    /// honest node, so lookups of that key ask it first.
    async fn join(nodes: &[&Running], addrs: &[String], near: &[u8]) -> Hostile {
        let target = KBucketKey::new(RecordKey::new(&near));
        let closest = nodes
            .iter()
            .map(|n| KBucketKey::from(n.peer_id).distance(&target))
            .min()
            .unwrap();
        let key = std::iter::repeat_with(identity::Keypair::generate_ed25519)
            .find(|k| KBucketKey::from(k.public().to_peer_id()).distance(&target) < closest)
            .unwrap();
        let peer_id = key.public().to_peer_id();
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|key| {
                let mut cfg = kad::Config::new(KAD_PROTOCOL);
                // Serves whatever it holds; sends up to what honest nodes read.
                cfg.set_record_filtering(kad::StoreInserts::Unfiltered)
                    .set_max_packet_size(64 * 1024);
                let store_cfg = MemoryStoreConfig {
                    max_value_bytes: 64 * 1024,
                    ..Default::default()
                };
                let store = MemoryStore::with_config(peer_id, store_cfg);
                let mut kad = kad::Behaviour::with_config(peer_id, store, cfg);
                kad.set_mode(Some(kad::Mode::Server));
                let id = identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public());
                HostileBehaviour {
                    kad,
                    identify: identify::Behaviour::new(id),
                }
            })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
            .build();
        swarm
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        // Know our listen address before identify tells the honest nodes.
        tokio::time::timeout(Duration::from_secs(10), async {
            while !matches!(swarm.next().await, Some(SwarmEvent::NewListenAddr { .. })) {}
        })
        .await
        .expect("hostile peer listens");
        for a in addrs {
            let mut full: Multiaddr = a.parse().unwrap();
            let Some(Protocol::P2p(peer)) = full.pop() else {
                panic!("{a} has no /p2p/")
            };
            swarm.behaviour_mut().kad.add_address(&peer, full);
            swarm.dial(a.parse::<Multiaddr>().unwrap()).unwrap();
        }
        let (tx, rx) = mpsc::channel(16);
        let served = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(drive(swarm, rx, served.clone()));
        Hostile {
            peer_id,
            tx,
            served,
            task,
        }
    }

    async fn cmd(&self, f: impl FnOnce(Reply) -> Cmd) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(f(reply)).await.expect("hostile task runs");
        tokio::time::timeout(T, rx)
            .await
            .expect("hostile command answered in time")
            .expect("hostile task answers")
    }

    /// PUTs `rec` under its AOR's key to `peers`, waiting for their answers.
    async fn put(&self, rec: &AorRecord, peers: &[PeerId]) {
        let r = self.cmd(|tx| Cmd::Put(record(rec), peers.to_vec(), tx));
        r.await.expect("every honest peer answered the PUT");
    }

    /// Serves `rec` on GET from now on (replacing what was served for its key).
    async fn serve(&self, rec: &AorRecord) {
        let r = self.cmd(|tx| Cmd::Serve(record(rec), tx)).await;
        r.expect("hostile store takes the record");
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    /// Waits until it has served at least `n` GETs from its store.
    async fn wait_served(&self, n: usize) {
        let served = &self.served;
        wait_for(
            &format!("the hostile peer to serve {n} GETs"),
            T,
            || async move { (served.load(Ordering::SeqCst) >= n).then_some(()) },
        )
        .await;
    }

    /// Disconnects: closing the command channel ends the drive loop.
    async fn stop(self) {
        drop(self.tx);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// The hostile swarm's event loop: commands in, kad events out.
async fn drive(
    mut swarm: libp2p::Swarm<HostileBehaviour>,
    mut rx: mpsc::Receiver<Cmd>,
    served: Arc<AtomicUsize>,
) {
    let mut puts: HashMap<kad::QueryId, Reply> = HashMap::new();
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                None => return,
                Some(Cmd::Put(rec, peers, reply)) => {
                    let kad = &mut swarm.behaviour_mut().kad;
                    puts.insert(kad.put_record_to(rec, peers.into_iter(), Quorum::All), reply);
                }
                Some(Cmd::Serve(rec, reply)) => {
                    let r = swarm.behaviour_mut().kad.store_mut().put(rec);
                    let _ = reply.send(r.map_err(|e| format!("{e:?}")));
                }
            },
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::Behaviour(HostileBehaviourEvent::Kad(kad::Event::InboundRequest {
                    request: kad::InboundRequest::GetRecord { present_locally: true, .. },
                })) => {
                    served.fetch_add(1, Ordering::SeqCst);
                }
                SwarmEvent::Behaviour(HostileBehaviourEvent::Kad(
                    kad::Event::OutboundQueryProgressed {
                        id, result: kad::QueryResult::PutRecord(r), ..
                    },
                )) => {
                    if let Some(reply) = puts.remove(&id) {
                        let _ = reply.send(r.map(drop).map_err(|e| format!("{e:?}")));
                    }
                }
                _ => {}
            },
        }
    }
}

fn record(rec: &AorRecord) -> Record {
    let aor = Aor::parse(&rec.aor).unwrap();
    Record::new(RecordKey::new(&record_key(&aor)), rec.encode())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A well-formed entry for `node` with one contact, live for an hour.
fn entry(node: PeerId, seq: u64, uri: &str) -> NodeEntry {
    let now = now();
    NodeEntry {
        node: node.to_bytes(),
        addrs: vec!["/ip4/203.0.113.66/tcp/4001".into()],
        contacts: vec![ContactBinding {
            uri: uri.into(),
            q: 1000,
            expires: now + 3600,
        }],
        seq,
        expires: now + 3600,
        // As long a claim as the rules allow, to win any tie on reads.
        claim_expires: now + 31 * 86_400 - 60,
    }
}

/// `kadsip_records_refused_total` by reason, from the node's `/metrics`.
async fn refused(node: &Running) -> HashMap<String, u64> {
    let http = node.http;
    let text = tokio::task::spawn_blocking(move || kadsip_node::client::get(http, "/metrics"))
        .await
        .unwrap()
        .expect("/metrics answers");
    text.lines()
        .filter_map(|l| l.strip_prefix("kadsip_records_refused_total{reason=\""))
        .filter_map(|l| {
            let (reason, rest) = l.split_once("\"}")?;
            Some((reason.to_owned(), rest.trim().parse().ok()?))
        })
        .collect()
}

/// Waits until every node's overlay status satisfies `ok`.
async fn wait_status(nodes: &[&Running], what: &str, ok: impl Fn(&OverlayStatus) -> bool) {
    for (i, n) in nodes.iter().enumerate() {
        let ok = &ok;
        wait_for(&format!("node {i} to {what}"), T, || async move {
            n.overlay.status().await.ok().filter(|s| ok(s)).map(drop)
        })
        .await;
    }
}

/// Panics unless `out` is bob's honest record: honest owner, honest contacts.
fn assert_honest(out: &Outcome, honest: &AorRecord, who: &str) {
    let Outcome::Found(rec) = out else {
        panic!("{who}: bob resolved as {}", out.name());
    };
    assert_eq!(rec.owner, honest.owner, "{who}: owner replaced");
    let uris = |r: &AorRecord| -> Vec<String> {
        let mut u: Vec<String> = (r.entries.iter())
            .flat_map(|e| e.entry.contacts.iter().map(|c| c.uri.clone()))
            .collect();
        u.sort();
        u
    };
    assert_eq!(uris(rec), uris(honest), "{who}: contacts changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_records_are_refused_on_put_and_ignored_on_get() {
    let mut nodes = network(6, true).await;
    let running: Vec<&Running> = nodes.iter().map(|n| n.running()).collect();
    let peers: Vec<PeerId> = running.iter().map(|n| n.peer_id).collect();
    let home = 0;

    // The honest record: bob registers at the home node, which publishes it.
    let ua = Ua::new(running[home].sip).await;
    let r = ua.register_auth(BOB, 600, None).await;
    assert_eq!(r.status.as_u16(), 200, "REGISTER in open mode");
    wait_status(&running, "hold bob", |s| s.records_held >= 1).await;
    // Only node 1 resolves (and so pins the owner) before the hostile acts.
    let honest = match resolve_until(running[1], BOB, "found", T).await {
        Outcome::Found(rec) => rec,
        other => unreachable!("{}", other.name()),
    };
    let contact = &honest.entries[0].entry.contacts[0].uri;
    assert!(contact.contains(&ua.local.to_string()), "{contact}");

    let bob = Aor::parse(BOB).unwrap();
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let hostile = Hostile::join(&running, &addrs, &record_key(&bob)).await;
    let want = nodes.len(); // the other honest nodes and the hostile peer
    wait_status(&running, "route to the hostile peer", |s| {
        s.routing_table >= want
    })
    .await;

    // The hostile records.
    let mallory = SigningKey::from_bytes(&[7; 32]);
    let mut forged = honest.clone();
    forged.entries[0].entry.contacts[0].uri = EVIL.into(); // not re-signed
    let fresh = |user: &str| Aor::parse(&format!("sip:{user}@campus.example")).unwrap();
    let (carl, eve, big, ghost) = (fresh("carl"), fresh("eve"), fresh("big"), fresh("ghost"));
    let signed = |aor: &Aor, e: NodeEntry| AorRecord::new(aor, &mallory, e);
    let hijack = signed(&bob, entry(hostile.peer_id, 1_000, EVIL));
    let seq5 = signed(&carl, entry(hostile.peer_id, 5, "sip:carl@203.0.113.5"));
    let seq3 = signed(&carl, entry(hostile.peer_id, 3, "sip:carl@203.0.113.3"));
    let mut far = entry(hostile.peer_id, 1, EVIL);
    far.expires = now() + 5 * 365 * 86_400;
    far.claim_expires = now() + 10 * 365 * 86_400;
    let far = signed(&eve, far);
    let mut large = entry(hostile.peer_id, 1, EVIL);
    large.addrs = (0..20)
        .map(|i| format!("/dns4/{}/tcp/{i}", "x".repeat(1024)))
        .collect();
    let large = signed(&big, large);
    assert!(large.encode().len() > 16 * 1024);
    let mut phantom = signed(&ghost, entry(hostile.peer_id, 1, EVIL));
    phantom.entries[0].entry.contacts[0].uri = "sip:ghost@203.0.113.9".into();

    // GET: the hostile peer (closest to bob's key) serves a hijack, then a
    // forged copy; readers that pinned no owner yet still get the honest one.
    for (served, readers) in [(&hijack, [2, 3]), (&forged, [4, 5])] {
        hostile.serve(served).await;
        let before = hostile.served();
        for i in readers {
            let out = resolve_until(running[i], BOB, "found", T).await;
            assert_honest(&out, &honest, &format!("node {i} (GET)"));
        }
        hostile.wait_served(before + 1).await;
    }

    // PUT: every hostile record is sent straight to every honest node.
    let mut before = Vec::new();
    for n in &running {
        before.push(refused(n).await);
    }
    hostile.put(&forged, &peers).await; // bad_signature
    hostile.put(&hijack, &peers).await; // owner_conflict
    hostile.put(&seq5, &peers).await; // accepted: carl is fresh (TOFU)
    hostile.put(&seq3, &peers).await; // stale_seq
    hostile.put(&far, &peers).await; // expiry_too_far
    hostile.put(&large, &peers).await; // too_large
    for (i, n) in running.iter().enumerate() {
        let base = &before[i];
        wait_for(
            &format!("node {i} to count every refusal"),
            T,
            || async move {
                let now = refused(n).await;
                let grew =
                    |r: &str| now.get(r).copied().unwrap_or(0) > base.get(r).copied().unwrap_or(0);
                REFUSALS.iter().all(|r| grew(r)).then_some(())
            },
        )
        .await;
    }

    // The honest record still resolves everywhere; carl keeps seq 5.
    for (i, n) in running.iter().enumerate() {
        if i == home {
            resolve_until(n, BOB, "local", T).await;
            continue;
        }
        let out = resolve_until(n, BOB, "found", T).await;
        assert_honest(&out, &honest, &format!("node {i} (after PUTs)"));
        match resolve_until(n, carl.as_str(), "found", T).await {
            Outcome::Found(rec) => assert_eq!(rec.entries[0].entry.seq, 5, "node {i}: carl"),
            other => unreachable!("{}", other.name()),
        }
    }

    // GET of records no honest node holds: the hostile peer serves them, and
    // every one is ignored, so the lookups complete without a record.
    for rec in [&phantom, &far, &large] {
        hostile.serve(rec).await;
    }
    let before = hostile.served();
    for (aor, i) in [(&ghost, 2), (&eve, 3), (&big, 4)] {
        let out = running[i].lookup.resolve(aor).await.outcome;
        assert_eq!(out.name(), "not_found", "node {i}: {aor}");
    }
    hostile.wait_served(before + 3).await;

    // Control: a valid record only the hostile peer holds is found, so the
    // lookups above did read its answers and dropped them on the rules.
    let zed = fresh("zed");
    hostile
        .serve(&signed(&zed, entry(hostile.peer_id, 1, EVIL)))
        .await;
    resolve_until(running[5], zed.as_str(), "found", T).await;

    hostile.stop().await;
    drop(running);
    for n in &mut nodes {
        n.stop().await;
    }
}

/// A publication older than what the node already holds (a retry overtaken
/// by a newer registration) is refused locally with its typed reason, so the
/// registrar can tell "superseded" from a failure; the newer one stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_local_publication_is_refused_with_its_reason() {
    use kadsip_node::overlay::OverlayError;
    use kadsip_proto::overlay::RecordError;
    let mut n = crate::support::start(tempfile::tempdir().unwrap(), vec![], true).await;
    let carl = Aor::parse("sip:carl@campus.example").unwrap();
    let owner = SigningKey::from_bytes(&[9; 32]);
    let me = n.running().peer_id;
    let key = record_key(&carl).to_vec();
    let seq5 = AorRecord::new(&carl, &owner, entry(me, 5, "sip:carl@192.0.2.5"));
    let seq3 = AorRecord::new(&carl, &owner, entry(me, 3, "sip:carl@192.0.2.3"));
    let overlay = n.running().overlay.clone();
    // Alone, the record reaches no peer, but it is held locally.
    let first = overlay.publish(key.clone(), seq5.encode()).await;
    assert!(
        matches!(
            first,
            Err(OverlayError::NotReplicated { stored: 0 }) | Ok(())
        ),
        "{first:?}"
    );
    let stale = overlay.publish(key.clone(), seq3.encode()).await;
    assert!(
        matches!(
            stale,
            Err(OverlayError::Refused(RecordError::StaleSeq {
                got: 3,
                stored: 5
            }))
        ),
        "{stale:?}"
    );
    assert_eq!(overlay.status().await.unwrap().records_held, 1);
    n.stop().await;
}
