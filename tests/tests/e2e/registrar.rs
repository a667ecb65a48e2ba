//! Issue 3 registrar checks: digest auth with SHA-256 offered before MD5,
//! no user enumeration (unknown user and wrong password get the same 401
//! apart from nonce and tag), 403 for someone else's AOR, 423, and `*`.

use crate::support::{config, resolve_until, start, wait_for};
use kadsip_node::accounts;
use kadsip_node::node::{self, Timers};
use kadsip_node::storage::Storage;
use kadsip_proto::Response;
use kadsip_proto::digest::{Challenge, Credentials};
use kadsip_proto::header::StdHeader;
use kadsip_tests::ua::Ua;
use std::time::Duration;

/// A node with accounts alice and bob in realm campus.example (closed mode).
async fn closed_node() -> (node::Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Storage::open(dir.path()).unwrap();
        accounts::add(&s, "alice@campus.example", None, "wonderland").unwrap();
        accounts::add(&s, "bob@campus.example", None, "builder").unwrap();
    }
    let mut c = config(dir.path().to_owned(), vec![], false);
    c.domains = vec!["campus.example".into()];
    let n = node::start(c, Timers::default()).await.unwrap();
    (n, dir)
}

/// The response with nonce and tag values blanked, as text.
fn without_nonce_and_tag(r: &Response) -> String {
    let text = String::from_utf8(r.to_bytes()).unwrap();
    let mut out = String::new();
    for line in text.split("\r\n") {
        let mut l = line.to_owned();
        if let Some(i) = l.find("nonce=\"") {
            let end = l[i + 7..].find('"').map_or(l.len(), |e| i + 7 + e);
            l.replace_range(i + 7..end, "N");
        }
        if let Some(i) = l.find(";tag=") {
            l.truncate(i + 5);
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

async fn answer(
    ua: &Ua,
    aor: &str,
    user: &str,
    password: &str,
    pick: usize,
) -> (Response, Response) {
    let call_id = format!("auth-{}", ua.local.port());
    let first = ua.request(&ua.register(aor, &call_id, 1, 600, None)).await;
    assert_eq!(first.status.as_u16(), 401);
    let challenges: Vec<Challenge> = first
        .headers
        .www_authenticate()
        .map(Result::unwrap)
        .collect();
    let c = Credentials::answer(
        &challenges[pick],
        "REGISTER",
        "sip:campus.example",
        user,
        password,
        "c0ffee",
        1,
    )
    .unwrap();
    let second = ua
        .request(&ua.register(aor, &call_id, 2, 600, Some(&c.to_string())))
        .await;
    (first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_auth_sha256_first_and_no_enumeration() {
    let (n, _dir) = closed_node().await;
    let ua = Ua::new(n.sip).await;

    // The challenge offers SHA-256 first, then MD5.
    let (first, ok) = answer(&ua, "sip:alice@campus.example", "alice", "wonderland", 0).await;
    let algs: Vec<String> = first
        .headers
        .get_all(StdHeader::WwwAuthenticate)
        .map(|v| v.to_string())
        .collect();
    assert_eq!(algs.len(), 2);
    assert!(
        algs[0].contains("algorithm=SHA-256") && algs[1].contains("algorithm=MD5"),
        "{algs:?}"
    );
    assert!(algs[0].contains("realm=\"campus.example\"") && algs[0].contains("qop=\"auth\""));
    assert_eq!(ok.status.as_u16(), 200, "SHA-256 credentials accepted");
    assert_eq!(ok.headers.contacts().unwrap().len(), 1);

    // MD5 works too.
    let ua_md5 = Ua::new(n.sip).await;
    let (_, ok) = answer(&ua_md5, "sip:bob@campus.example", "bob", "builder", 1).await;
    assert_eq!(ok.status.as_u16(), 200, "MD5 credentials accepted");

    // Wrong password and unknown user: the same 401 but for nonce and tag.
    let ua1 = Ua::new(n.sip).await;
    let (_, wrong) = answer(&ua1, "sip:alice@campus.example", "alice", "not-it", 0).await;
    let ua2 = Ua::new(n.sip).await;
    let (_, unknown) = answer(&ua2, "sip:mallory@campus.example", "mallory", "whatever", 0).await;
    assert_eq!(wrong.status.as_u16(), 401);
    assert_eq!(unknown.status.as_u16(), 401);
    let strip_via_callid = |s: String| -> String {
        s.lines()
            .filter(|l| {
                !l.starts_with("Via:")
                    && !l.starts_with("Call-ID:")
                    && !l.starts_with("From:")
                    && !l.starts_with("To:")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        strip_via_callid(without_nonce_and_tag(&wrong)),
        strip_via_callid(without_nonce_and_tag(&unknown)),
        "an attacker cannot tell an unknown user from a wrong password"
    );

    // Authenticated as bob, registering alice's AOR: 403.
    let ua3 = Ua::new(n.sip).await;
    let (_, forbidden) = answer(&ua3, "sip:alice@campus.example", "bob", "builder", 0).await;
    assert_eq!(forbidden.status.as_u16(), 403);

    // A domain this node does not serve: 404.
    let ua4 = Ua::new(n.sip).await;
    let r = ua4
        .request(&ua4.register("sip:alice@elsewhere.example", "x1", 1, 600, None))
        .await;
    assert_eq!(r.status.as_u16(), 404);
    n.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_mode_rules_423_star_and_refresh() {
    let mut t = start(tempfile::tempdir().unwrap(), vec![], true).await;
    let ua = Ua::new(t.running().sip).await;
    let aor = "sip:dave@campus.example";
    let r = ua.request(&ua.register(aor, "c-423", 1, 5, None)).await;
    assert_eq!(r.status.as_u16(), 423);
    assert_eq!(r.headers.min_expires().unwrap().unwrap(), 60);

    // A Contact the registrar cannot read: 400 naming it (the parser leaves
    // Contact to the registrar, RFC 3261 §16.3).
    let bad = ua.register(aor, "c-bad", 1, 300, None).replace(
        &format!("Contact: <sip:dave@{}>;expires=300\r\n", ua.local),
        "Contact: <sip:dave@[::1>;expires=300\r\n",
    );
    assert!(bad.contains("[::1>"), "{bad}");
    let r = ua.request(&bad).await;
    assert_eq!(r.status.as_u16(), 400);
    assert!(r.reason.contains("Contact"), "{}", r.reason);

    let r = ua.request(&ua.register(aor, "c-1", 1, 300, None)).await;
    assert_eq!(r.status.as_u16(), 200);
    resolve_until(t.running(), aor, "local", Duration::from_secs(5)).await;
    // out-of-order CSeq on the same Call-ID is refused
    let r = ua.request(&ua.register(aor, "c-1", 1, 300, None)).await;
    assert_eq!(r.status.as_u16(), 500);
    // `*` with Expires: 0 removes everything
    let star = ua.register(aor, "c-1", 5, 0, None).replace(
        &format!("Contact: <sip:dave@{}>;expires=0\r\n", ua.local),
        "Contact: *\r\nExpires: 0\r\n",
    );
    let r = ua.request(&star).await;
    assert_eq!(
        r.status.as_u16(),
        200,
        "{}",
        String::from_utf8_lossy(&r.to_bytes())
    );
    assert!(r.headers.contacts().unwrap().is_empty());
    let http = t.running().http;
    let status = wait_for(
        "status without dave",
        Duration::from_secs(5),
        || async move {
            let body =
                tokio::task::spawn_blocking(move || kadsip_node::client::get(http, "/status"))
                    .await
                    .ok()?
                    .ok()?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            Some(v)
        },
    )
    .await;
    assert!(
        status["registrations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["aor"] != aor)
    );
    t.stop().await;
}

/// REGISTER over TCP (stream framing, reliable transaction): 200, the
/// binding remembers the TCP flow, and a CRLFCRLF keep-alive gets its pong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_over_tcp() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut t = start(tempfile::tempdir().unwrap(), vec![], true).await;
    let node = t.running().sip;
    let mut s = tokio::net::TcpStream::connect(node).await.unwrap();
    let local = s.local_addr().unwrap();
    s.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut pong))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&pong, b"\r\n", "RFC 5626 keep-alive pong");
    let req = format!(
        "REGISTER sip:campus.example SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bKtcp1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:tina@campus.example>;tag=t1\r\nTo: <sip:tina@campus.example>\r\n\
         Call-ID: tcp-1\r\nCSeq: 1 REGISTER\r\nContact: <sip:tina@{local};transport=tcp>\r\nExpires: 300\r\n\
         Content-Length: 0\r\n\r\n"
    );
    // Split the request in two writes: the framer must wait for the rest.
    s.write_all(&req.as_bytes()[..40]).await.unwrap();
    s.flush().await.unwrap();
    s.write_all(&req.as_bytes()[40..]).await.unwrap();
    let resp = read_message(&mut s).await;
    let resp = resp.as_response().unwrap().clone();
    assert_eq!(resp.status.as_u16(), 200);
    let http = t.running().http;
    let v: serde_json::Value = serde_json::from_str(
        &tokio::task::spawn_blocking(move || kadsip_node::client::get(http, "/status").unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    let reg = v["registrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["aor"] == "sip:tina@campus.example")
        .cloned()
        .unwrap();
    assert_eq!(reg["contacts"][0]["source"], format!("tcp:{local}"));
    // The registrations gauge counts her (the node's only live AOR).
    let metrics =
        tokio::task::spawn_blocking(move || kadsip_node::client::get(http, "/metrics").unwrap())
            .await
            .unwrap();
    assert!(
        metrics.lines().any(|l| l == "kadsip_registrations 1"),
        "registrations gauge in /metrics"
    );

    // A MESSAGE for tina reaches her over the connection she registered on.
    let alice = Ua::new(node).await;
    alice
        .send_to(
            &alice.request_to("MESSAGE", "sip:tina@campus.example", "tcp-m1", 1, ""),
            node,
        )
        .await;
    let msg = read_message(&mut s).await;
    let msg = msg.as_request().unwrap().clone();
    assert_eq!(msg.method.as_str(), "MESSAGE");
    let ok = Response::to_request(&msg, kadsip_proto::StatusCode::OK, Some("tt"));
    s.write_all(&ok.to_bytes()).await.unwrap();
    let r = alice
        .expect_response("tcp-m1", "MESSAGE", 200, Duration::from_secs(5))
        .await;
    assert_eq!(r.status.as_u16(), 200);
    t.stop().await;
}

/// Reads one framed SIP message from a TCP stream (bounded wait).
async fn read_message(s: &mut tokio::net::TcpStream) -> kadsip_proto::Message {
    use tokio::io::AsyncReadExt;
    let mut framer = kadsip_proto::framing::Framer::default();
    let mut buf = vec![0u8; 4096];
    loop {
        if let Ok(Some(kadsip_proto::framing::Framed::Message(m))) = framer.decode() {
            return m;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("a message within 5 s")
            .expect("read");
        assert!(n > 0, "connection closed");
        framer.push(&buf[..n]);
    }
}
