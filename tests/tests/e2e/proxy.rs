//! Issue 4 checks: calls and messages cross the overlay through a stateful
//! proxy on both nodes, and every failure is answered from the overlay
//! outcome with a Warning that says why.

use crate::support::{network, resolve_until, start, wait_for};
use kadsip_proto::header::StdHeader;
use kadsip_proto::{Method, Response};
use kadsip_tests::ua::Ua;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn warning(r: &Response) -> String {
    r.headers
        .get(StdHeader::Warning)
        .map(|w| w.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn call_across_three_nodes_and_failures() {
    let mut nodes = network(4, true).await;
    let (a, c) = (0, 2);
    let bob = Ua::new(nodes[c].running().sip).await;
    assert_eq!(
        bob.register_auth("sip:bob@campus.example", 600, None)
            .await
            .status
            .as_u16(),
        200
    );
    resolve_until(nodes[a].running(), "sip:bob@campus.example", "found", T).await;
    let alice = Ua::new(nodes[a].running().sip).await;
    let node_a = nodes[a].running().sip;

    // INVITE / 180 / 200 / ACK / BYE through A and C.
    let inv = alice.request_to("INVITE", "sip:bob@campus.example", "call-1", 1, "");
    alice.send_to(&inv, node_a).await;
    let (got, from) = bob.expect_request("INVITE", T).await;
    assert_eq!(
        got.uri.to_string(),
        format!("sip:bob@{}", bob.local),
        "C delivers to the contact"
    );
    let vias = got.headers.via().unwrap();
    assert_eq!(
        vias.iter().filter(|v| v.params.has("kadsip")).count(),
        2,
        "both nodes on the path"
    );
    assert_eq!(
        got.headers.record_routes().unwrap().len(),
        2,
        "both nodes record-route"
    );
    assert_eq!(got.headers.max_forwards().unwrap().unwrap(), 68);
    bob.send_to(&bob.reply(&got, 180, "b1"), from).await;
    let ringing = alice.expect_response("call-1", "INVITE", 180, T).await;
    assert_eq!(ringing.status.as_u16(), 180);
    bob.send_to(&bob.reply(&got, 200, "b1"), from).await;
    let ok = alice.expect_response("call-1", "INVITE", 200, T).await;
    assert_eq!(ok.status.as_u16(), 200);
    assert_eq!(
        ok.headers.via().unwrap().len(),
        1,
        "node Vias are popped on the way back"
    );
    let rr: Vec<String> = ok
        .headers
        .record_routes()
        .unwrap()
        .iter()
        .map(|r| r.uri.to_owned())
        .collect();
    let route = rr
        .iter()
        .rev()
        .map(|u| format!("<{u}>"))
        .collect::<Vec<_>>()
        .join(", ");
    let contact = ok.headers.contacts().unwrap()[0]
        .addr()
        .unwrap()
        .uri
        .to_owned();
    let to = ok.headers.get(StdHeader::To).unwrap().to_string();
    let in_dialog = |method: &str, cseq: u32| {
        alice
            .request_to(
                method,
                &contact,
                "call-1",
                cseq,
                &format!("Route: {route}\r\n"),
            )
            .replace(&format!("To: <{contact}>"), &format!("To: {to}"))
    };
    alice.send_to(&in_dialog("ACK", 1), node_a).await;
    let (ack, _) = bob.expect_request("ACK", T).await;
    assert_eq!(ack.uri.to_string(), contact);
    alice.send_to(&in_dialog("BYE", 2), node_a).await;
    let (bye, from) = bob.expect_request("BYE", T).await;
    assert_eq!(
        bye.headers
            .via()
            .unwrap()
            .iter()
            .filter(|v| v.params.has("kadsip"))
            .count(),
        2,
        "BYE travels both nodes"
    );
    bob.send_to(&bob.reply(&bye, 200, "b1"), from).await;
    assert_eq!(
        alice
            .expect_response("call-1", "BYE", 200, T)
            .await
            .status
            .as_u16(),
        200
    );

    // Out-of-dialog MESSAGE delivered with 200.
    alice
        .send_to(
            &alice.request_to(
                "MESSAGE",
                "sip:bob@campus.example",
                "msg-1",
                1,
                "Content-Type: text/plain\r\n",
            ),
            node_a,
        )
        .await;
    let (msg, from) = bob.expect_request("MESSAGE", T).await;
    bob.send_to(&bob.reply(&msg, 200, "m1"), from).await;
    assert_eq!(
        alice
            .expect_response("msg-1", "MESSAGE", 200, T)
            .await
            .status
            .as_u16(),
        200
    );

    // 404 for a never-registered AOR.
    alice
        .send_to(
            &alice.request_to("INVITE", "sip:nobody@campus.example", "c-404", 1, ""),
            node_a,
        )
        .await;
    let r = alice.expect_response("c-404", "INVITE", 200, T).await;
    assert_eq!((r.status.as_u16(), r.reason.as_str()), (404, "Not Found"));
    assert!(
        warning(&r).starts_with("399 ") && warning(&r).contains("no record for this AOR"),
        "{}",
        warning(&r)
    );

    // 480 for an unregistered one.
    let carol = Ua::new(nodes[c].running().sip).await;
    carol
        .register_auth("sip:carol@campus.example", 600, None)
        .await;
    carol
        .register_auth("sip:carol@campus.example", 0, None)
        .await;
    resolve_until(nodes[a].running(), "sip:carol@campus.example", "offline", T).await;
    alice
        .send_to(
            &alice.request_to("INVITE", "sip:carol@campus.example", "c-480", 1, ""),
            node_a,
        )
        .await;
    let r = alice.expect_response("c-480", "INVITE", 200, T).await;
    assert_eq!(
        (r.status.as_u16(), r.reason.as_str()),
        (480, "Temporarily Unavailable")
    );
    assert!(warning(&r).contains("no live contact"), "{}", warning(&r));
    assert!(r.headers.retry_after().is_some());

    // 483 on Max-Forwards 0.
    let zero = alice
        .request_to("OPTIONS", "sip:bob@campus.example", "c-483", 1, "")
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    alice.send_to(&zero, node_a).await;
    let r = alice.expect_response("c-483", "OPTIONS", 200, T).await;
    assert_eq!(
        (r.status.as_u16(), r.reason.as_str()),
        (483, "Too Many Hops")
    );
    assert!(warning(&r).contains("Max-Forwards"));

    // CANCEL → 487.
    let inv = alice.request_to("INVITE", "sip:bob@campus.example", "c-487", 1, "");
    alice.send_to(&inv, node_a).await;
    let (got, from) = bob.expect_request("INVITE", T).await;
    bob.send_to(&bob.reply(&got, 180, "b2"), from).await;
    alice.expect_response("c-487", "INVITE", 180, T).await;
    let cancel = inv
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    alice.send_to(&cancel, node_a).await;
    assert_eq!(
        alice
            .expect_response("c-487", "CANCEL", 200, T)
            .await
            .status
            .as_u16(),
        200
    );
    let (c_req, from) = bob.expect_request("CANCEL", T).await;
    bob.send_to(&bob.reply(&c_req, 200, "b2"), from).await;
    bob.send_to(&bob.reply(&got, 487, "b2"), from).await;
    let r = alice.expect_response("c-487", "INVITE", 200, T).await;
    assert_eq!(
        (r.status.as_u16(), r.reason.as_str()),
        (487, "Request Terminated")
    );

    // 408 when the callee's UA never answers (Timer C, shortened for tests).
    alice
        .send_to(
            &alice.request_to("INVITE", "sip:bob@campus.example", "c-408", 1, ""),
            node_a,
        )
        .await;
    let (got, _) = bob.expect_request("INVITE", T).await;
    let r = alice.expect_response("c-408", "INVITE", 200, T).await;
    assert_eq!(
        (r.status.as_u16(), r.reason.as_str()),
        (408, "Request Timeout")
    );
    assert!(warning(&r).contains("no final response"), "{}", warning(&r));
    let (c_req, _) = bob.expect_request("CANCEL", T).await;
    assert_eq!(
        c_req.headers.call_id(),
        got.headers.call_id(),
        "the silent branch is cancelled"
    );

    // 480 when the callee's node is gone. "Gone" as A sees it: libp2p
    // tears C's connections down after its swarm stops, and an INVITE
    // written into a connection still closing waits for Timer C (408, the
    // outcome for a request sent and never answered); so wait until A has
    // lost a connection before calling.
    let overlay = nodes[a].running().overlay.clone();
    let before = overlay.status().await.unwrap().peers;
    nodes[c].stop().await;
    wait_for("node A to see node C gone", T, || {
        let overlay = overlay.clone();
        async move { (overlay.status().await.ok()?.peers < before).then_some(()) }
    })
    .await;
    alice
        .send_to(
            &alice.request_to("INVITE", "sip:bob@campus.example", "c-dead", 1, ""),
            node_a,
        )
        .await;
    let r = alice
        .expect_response("c-dead", "INVITE", 200, Duration::from_secs(20))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.reason.as_str()),
        (480, "Temporarily Unavailable"),
        "{}",
        warning(&r)
    );
    assert!(warning(&r).contains("unreachable"), "{}", warning(&r));

    for n in &mut nodes {
        n.stop().await;
    }
    let _ = Method::INVITE;
}

/// RFC 3261 §16.3/§16.7: a proxy checks the parts of a message it uses. A
/// response or a request carrying a header value the nodes never read is
/// relayed across the overlay unchanged; a request whose Max-Forwards (which
/// the node must read to relay it) is broken is refused with a 400 naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn responses_are_relayed_with_headers_the_proxy_does_not_use() {
    let mut nodes = network(2, true).await;
    let bob = Ua::new(nodes[1].running().sip).await;
    assert_eq!(
        bob.register_auth("sip:bob@campus.example", 600, None)
            .await
            .status
            .as_u16(),
        200
    );
    resolve_until(nodes[0].running(), "sip:bob@campus.example", "found", T).await;
    let alice = Ua::new(nodes[0].running().sip).await;
    let node_a = nodes[0].running().sip;
    let inv = alice.request_to("INVITE", "sip:bob@campus.example", "lax-1", 1, "");
    alice.send_to(&inv, node_a).await;
    let (got, from) = bob.expect_request("INVITE", T).await;
    let ok = bob.reply(&got, 200, "b1").replace(
        "Content-Length: 0\r\n",
        "Retry-After: soon\r\nContent-Length: 0\r\n",
    );
    assert!(kadsip_proto::Message::parse(ok.clone().into_bytes()).is_err());
    bob.send_to(&ok, from).await;
    let relayed = loop {
        // (A 100 Trying from node A may come first.)
        if let kadsip_proto::Message::Response(r) = alice.expect_relaxed("lax-1", T).await {
            if r.status.as_u16() == 200 {
                break r;
            }
        }
    };
    assert_eq!(
        relayed
            .headers
            .get(StdHeader::RetryAfter)
            .map(|v| v.as_str()),
        Some("soon"),
        "kept byte for byte"
    );
    assert_eq!(relayed.headers.via().unwrap().len(), 1, "node Vias popped");

    // The same header in a request is relayed as well, byte for byte.
    let opts = alice.request_to(
        "OPTIONS",
        "sip:bob@campus.example",
        "lax-2",
        1,
        "Retry-After: soon\r\n",
    );
    alice.send_to(&opts, node_a).await;
    let relayed = bob.expect_relaxed("lax-2", T).await;
    assert!(relayed.as_request().is_some(), "the OPTIONS itself");
    assert_eq!(
        relayed
            .headers()
            .get(StdHeader::RetryAfter)
            .map(|v| v.as_str()),
        Some("soon"),
        "kept byte for byte"
    );

    // A value the node needs to relay the request: refused, and it says where.
    let bad_mf = alice
        .request_to("OPTIONS", "sip:bob@campus.example", "lax-3", 1, "")
        .replace("Max-Forwards: 70\r\n", "Max-Forwards: seventy\r\n");
    alice.send_to(&bad_mf, node_a).await;
    let r = alice.expect_response("lax-3", "OPTIONS", 400, T).await;
    assert_eq!(r.status.as_u16(), 400);
    assert!(r.reason.contains("Max-Forwards"), "{}", r.reason);
    for n in &mut nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_peers_gives_503() {
    let mut n = start(tempfile::tempdir().unwrap(), vec![], true).await;
    let alice = Ua::new(n.running().sip).await;
    alice
        .send_to(
            &alice.request_to("INVITE", "sip:bob@campus.example", "c-503", 1, ""),
            n.running().sip,
        )
        .await;
    let r = alice.expect_response("c-503", "INVITE", 200, T).await;
    assert_eq!(
        (r.status.as_u16(), r.reason.as_str()),
        (503, "Service Unavailable")
    );
    assert!(warning(&r).contains("no overlay peers"));
    assert!(r.headers.retry_after().is_some());
    n.stop().await;
}

/// A callee with contacts on two nodes (one account, key imported on both):
/// both ring, the first 200 wins and the other branch is cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forked_call_first_200_wins() {
    use kadsip_node::{accounts, storage::Storage};
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    {
        let c = Storage::open(dirs[2].path()).unwrap();
        accounts::add(&c, "dana@campus.example", None, "pw").unwrap();
        let export = accounts::export(&c, "dana@campus.example").unwrap();
        let d = Storage::open(dirs[3].path()).unwrap();
        accounts::import(&d, &export).unwrap();
    }
    let mut nodes = crate::support::network_in(dirs, true).await;
    let desk = Ua::new(nodes[2].running().sip).await;
    let mobile = Ua::new(nodes[3].running().sip).await;
    assert_eq!(
        desk.register_auth("sip:dana@campus.example", 600, None)
            .await
            .status
            .as_u16(),
        200
    );
    assert_eq!(
        mobile
            .register_auth("sip:dana@campus.example", 600, None)
            .await
            .status
            .as_u16(),
        200
    );
    // Wait until node A sees both entries.
    let a = nodes[0].running();
    crate::support::wait_for("both of dana's nodes in the record", T, || {
        let lookup = a.lookup.clone();
        async move {
            let aor = kadsip_proto::Aor::parse("sip:dana@campus.example").unwrap();
            match lookup.resolve(&aor).await.outcome {
                kadsip_node::lookup::Outcome::Found(r) if r.entries.len() == 2 => Some(()),
                _ => None,
            }
        }
    })
    .await;

    let alice = Ua::new(a.sip).await;
    alice
        .send_to(
            &alice.request_to("INVITE", "sip:dana@campus.example", "fork-1", 1, ""),
            a.sip,
        )
        .await;
    let (inv_desk, from_desk) = desk.expect_request("INVITE", T).await;
    let (inv_mobile, from_mobile) = mobile.expect_request("INVITE", T).await;
    desk.send_to(&desk.reply(&inv_desk, 180, "d1"), from_desk)
        .await;
    mobile
        .send_to(&mobile.reply(&inv_mobile, 180, "m1"), from_mobile)
        .await;
    mobile
        .send_to(&mobile.reply(&inv_mobile, 200, "m1"), from_mobile)
        .await;
    let ok = alice.expect_response("fork-1", "INVITE", 200, T).await;
    assert_eq!(ok.status.as_u16(), 200, "{ok:?}");
    assert!(
        ok.headers.to().unwrap().unwrap().tag() == Some("m1"),
        "the mobile's 200 wins"
    );
    // The desk branch is cancelled; it answers 487 like a phone does.
    let (cancel, from) = desk.expect_request("CANCEL", T).await;
    desk.send_to(&desk.reply(&cancel, 200, "d1"), from).await;
    desk.send_to(&desk.reply(&inv_desk, 487, "d1"), from_desk)
        .await;
    for n in &mut nodes {
        n.stop().await;
    }
}

/// OPTIONS to the node itself, 420 for unknown Proxy-Require, 482 on a loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_420_and_loop() {
    let mut n = start(tempfile::tempdir().unwrap(), vec![], true).await;
    let node = n.running().sip;
    let me = n.running().peer_id.to_string();
    let ua = Ua::new(node).await;

    ua.send_to(
        &ua.request_to("OPTIONS", &format!("sip:{node}"), "o-1", 1, ""),
        node,
    )
    .await;
    let r = ua.expect_response("o-1", "OPTIONS", 200, T).await;
    assert_eq!(r.status.as_u16(), 200);
    let allow = r.headers.tokens(StdHeader::Allow).unwrap();
    for m in [
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "MESSAGE",
        "REGISTER",
        "SUBSCRIBE",
        "NOTIFY",
        "REFER",
        "UPDATE",
        "INFO",
        "PRACK",
    ] {
        assert!(allow.contains(&m), "Allow lacks {m}");
    }
    assert!(r.headers.get(StdHeader::Supported).is_some());

    let req = ua.request_to(
        "MESSAGE",
        "sip:bob@campus.example",
        "o-2",
        1,
        "Proxy-Require: com.example.teleport\r\n",
    );
    ua.send_to(&req, node).await;
    let r = ua.expect_response("o-2", "MESSAGE", 200, T).await;
    assert_eq!(
        (r.status.as_u16(), r.reason.as_str()),
        (420, "Bad Extension")
    );
    assert_eq!(
        r.headers.tokens(StdHeader::Unsupported).unwrap(),
        ["com.example.teleport"]
    );

    let looped = ua.request_to("MESSAGE", "sip:bob@campus.example", "o-3", 1, "").replacen(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\nVia: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-ksloop;kadsip={me}\r\n"),
        1,
    );
    ua.send_to(&looped, node).await;
    let r = ua.expect_response("o-3", "MESSAGE", 200, T).await;
    assert_eq!(
        (r.status.as_u16(), r.reason.as_str()),
        (482, "Loop Detected")
    );
    assert!(warning(&r).contains("already passed this node"));
    n.stop().await;
}

/// The lookup cannot finish before its deadline: 408 with the overlay's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_deadline_gives_408() {
    use crate::support::{config, timers};
    let first = start(tempfile::tempdir().unwrap(), vec![], true).await;
    // A second node whose lookup deadline is already over when the query
    // starts: whatever the DHT answers arrives late, so every lookup times
    // out (on a loopback a 1 ms deadline can be met, so it would not do).
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path().to_owned(), vec![first.addr.clone()], true);
    c.lookup_timeout = Duration::ZERO;
    let n = kadsip_node::node::start(c, timers()).await.unwrap();
    let o = n.overlay.clone();
    crate::support::wait_for("a peer", T, || {
        let o = o.clone();
        async move {
            o.status()
                .await
                .ok()
                .filter(|s| s.routing_table >= 1)
                .map(|_| ())
        }
    })
    .await;
    let ua = Ua::new(n.sip).await;
    ua.send_to(
        &ua.request_to("INVITE", "sip:bob@campus.example", "t-408", 1, ""),
        n.sip,
    )
    .await;
    let r = ua.expect_response("t-408", "INVITE", 200, T).await;
    assert_eq!(
        (r.status.as_u16(), r.reason.as_str()),
        (408, "Request Timeout")
    );
    assert!(warning(&r).contains("lookup timed out"), "{}", warning(&r));
    n.shutdown().await;
    let mut first = first;
    first.stop().await;
}

/// A burst of 1,000 MESSAGEs in flight at once from node A to a phone on
/// node B (more than one libp2p stream per message could ever carry): every
/// one is delivered and answered 200, none gets a false 480 or 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn burst_of_messages_crosses_the_overlay_intact() {
    use kadsip_tests::tcp;
    const N: usize = 1000;
    let mut nodes = network(2, true).await;
    let (node_a, node_b) = (nodes[0].running().sip, nodes[1].running().sip);

    // Bob registers over TCP and answers every MESSAGE with 200.
    let (bob_local, mut bob_rx, mut bob_tx) = tcp::connect(node_b).await;
    let reg = format!(
        "REGISTER sip:campus.example SIP/2.0\r\nVia: SIP/2.0/TCP {bob_local};branch=z9hG4bKburst-reg\r\n\
         Max-Forwards: 70\r\nFrom: <sip:bob@campus.example>;tag=b0\r\nTo: <sip:bob@campus.example>\r\n\
         Call-ID: burst-reg\r\nCSeq: 1 REGISTER\r\nContact: <sip:bob@{bob_local};transport=tcp>\r\n\
         Expires: 600\r\nContent-Length: 0\r\n\r\n"
    );
    tcp::send(&mut bob_tx, reg.as_bytes()).await;
    let ok = bob_rx.next(T).await.expect("REGISTER answered");
    assert_eq!(ok.as_response().unwrap().status.as_u16(), 200);
    resolve_until(nodes[0].running(), "sip:bob@campus.example", "found", T).await;
    let bob = tokio::spawn(async move {
        let mut answered = 0usize;
        while let Some(m) = bob_rx.next(Duration::from_secs(30)).await {
            if let Some(req) = m.as_request().filter(|r| r.method == Method::MESSAGE) {
                let hops = req.headers.via().unwrap();
                assert_eq!(
                    hops.iter().filter(|v| v.params.has("kadsip")).count(),
                    2,
                    "through both nodes"
                );
                let ok = Response::to_request(req, kadsip_proto::StatusCode::OK, Some("bob"));
                tcp::send(&mut bob_tx, &ok.to_bytes()).await;
                answered += 1;
                if answered == N {
                    break;
                }
            }
        }
        answered
    });

    // Alice writes all N MESSAGEs at once, then counts the final answers.
    let (alice_local, mut alice_rx, mut alice_tx) = tcp::connect(node_a).await;
    let burst: String = (0..N)
        .map(|i| {
            format!(
                "MESSAGE sip:bob@campus.example SIP/2.0\r\nVia: SIP/2.0/TCP {alice_local};branch=z9hG4bKburst{i}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:alice@campus.example>;tag=a{i}\r\nTo: <sip:bob@campus.example>\r\n\
                 Call-ID: burst-{i}\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
            )
        })
        .collect();
    let writer = tokio::spawn(async move {
        tcp::send(&mut alice_tx, burst.as_bytes()).await;
        alice_tx
    });
    let mut codes = std::collections::BTreeMap::<u16, usize>::new();
    let mut finals = 0;
    while finals < N {
        let m = alice_rx.next(Duration::from_secs(30)).await;
        let Some(r) = m.and_then(|m| m.as_response().cloned()) else {
            panic!("flow closed after {finals} answers: {codes:?}");
        };
        if r.status.as_u16() >= 200 {
            finals += 1;
            *codes.entry(r.status.as_u16()).or_default() += 1;
        }
    }
    let _alice_tx = writer.await.unwrap();
    assert_eq!(codes, [(200, N)].into(), "every MESSAGE answered 200");
    assert_eq!(bob.await.unwrap(), N, "bob received each one once");
    for n in &mut nodes {
        n.stop().await;
    }
}
