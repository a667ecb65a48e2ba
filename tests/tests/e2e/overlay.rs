//! Issue 3 checks: an AOR registered at one node resolves from every node;
//! unknown → NotFound; unregistered → Offline; no peers → NoPeers; replicas
//! answer when the registering node is gone.

use crate::support::{network, resolve_until, start};
use kadsip_node::lookup::Outcome;
use kadsip_proto::Aor;
use kadsip_tests::ua::Ua;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registered_aor_resolves_everywhere_and_outcomes_are_typed() {
    let mut nodes = network(10, true).await;
    let home = 3;
    let ua = Ua::new(nodes[home].running().sip).await;
    let r = ua.register_auth("sip:bob@campus.example", 600, None).await;
    assert_eq!(r.status.as_u16(), 200, "REGISTER in open mode");
    assert_eq!(r.headers.contacts().unwrap().len(), 1);

    for (i, n) in nodes.iter().enumerate() {
        let want = if i == home { "local" } else { "found" };
        let out = resolve_until(n.running(), "sip:bob@campus.example", want, T).await;
        if let Outcome::Found(rec) = out {
            let contacts: Vec<_> = rec
                .entries
                .iter()
                .flat_map(|e| e.entry.contacts.iter())
                .collect();
            assert_eq!(contacts.len(), 1);
            assert!(contacts[0].uri.contains(&ua.local.to_string()));
        }
    }

    // Never registered → NotFound (the lookup completes).
    let aor = Aor::parse("sip:nobody@campus.example").unwrap();
    let r = nodes[0].running().lookup.resolve(&aor).await;
    assert_eq!(r.outcome.name(), "not_found");

    // Unregister → the tombstone makes the AOR known but offline.
    let r = ua.register_auth("sip:bob@campus.example", 0, None).await;
    assert_eq!(r.status.as_u16(), 200);
    assert!(r.headers.contacts().unwrap().is_empty());
    for i in [0, 5, 9] {
        resolve_until(nodes[i].running(), "sip:bob@campus.example", "offline", T).await;
    }

    // Registered again, then the home node stops: replicas still answer.
    let ua2 = Ua::new(nodes[7].running().sip).await;
    assert_eq!(
        ua2.register_auth("sip:carol@campus.example", 600, None)
            .await
            .status
            .as_u16(),
        200
    );
    resolve_until(nodes[1].running(), "sip:carol@campus.example", "found", T).await;
    nodes[7].stop().await;
    for i in [0, 2, 8] {
        resolve_until(nodes[i].running(), "sip:carol@campus.example", "found", T).await;
    }
    for n in &mut nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lone_node_has_no_peers() {
    let mut n = start(tempfile::tempdir().unwrap(), vec![], true).await;
    let aor = Aor::parse("sip:alice@campus.example").unwrap();
    let r = n.running().lookup.resolve(&aor).await;
    assert_eq!(r.outcome.name(), "no_peers");
    n.stop().await;
}

/// The records a node holds for others live in sled: after a restart on the
/// same data dir it still holds and serves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn held_records_survive_restart() {
    let mut nodes = network(3, true).await;
    let ua = Ua::new(nodes[0].running().sip).await;
    assert_eq!(
        ua.register_auth("sip:hugo@campus.example", 600, None)
            .await
            .status
            .as_u16(),
        200
    );
    let holder = 2;
    crate::support::wait_for("node 2 to hold hugo's record", T, || {
        let o = nodes[holder].running().overlay.clone();
        async move {
            o.status()
                .await
                .ok()
                .filter(|s| s.records_held >= 1)
                .map(|_| ())
        }
    })
    .await;
    // Restart the holder on its data dir, with the registering node gone.
    nodes[0].stop().await;
    let boot = vec![nodes[1].addr.clone()];
    let mut t = nodes.remove(holder);
    t.stop().await;
    let restarted = crate::support::start(t._dir, boot, true).await;
    let st = restarted.running().overlay.status().await.unwrap();
    assert!(
        st.records_held >= 1,
        "records held after restart: {}",
        st.records_held
    );
    resolve_until(restarted.running(), "sip:hugo@campus.example", "found", T).await;
    let mut restarted = restarted;
    restarted.stop().await;
    for n in &mut nodes {
        n.stop().await;
    }
}
