//! Property tests: generated messages survive parse → serialize → parse, and
//! the stream framer cuts the same messages however the bytes are split.

use kadsip_proto::Message;
use kadsip_proto::framing::{Framed, Framer};
use proptest::prelude::*;

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.!%*_+`'~-]{0,11}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]([a-z0-9-]{0,6}[a-z0-9])?(\\.[a-z]([a-z0-9-]{0,6}[a-z0-9])?){0,2}",
        (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        any::<[u16; 8]>().prop_map(|s| format!("[{}]", std::net::Ipv6Addr::from(s))),
    ]
}

fn sip_uri() -> impl Strategy<Value = String> {
    (
        prop::bool::ANY,
        prop::option::of("[a-zA-Z0-9_.!~*'()-]{1,10}"),
        host(),
        prop::option::of(1u16..),
        prop::collection::vec(
            (
                "[a-zA-Z0-9_.!~*'()-]{1,8}",
                prop::option::of("[a-zA-Z0-9_.!~*'()-]{1,8}"),
            ),
            0..3,
        ),
    )
        .prop_map(|(secure, user, host, port, params)| {
            let mut s = String::from(if secure { "sips:" } else { "sip:" });
            if let Some(u) = user {
                s.push_str(&u);
                s.push('@');
            }
            s.push_str(&host);
            if let Some(p) = port {
                s.push_str(&format!(":{p}"));
            }
            for (n, v) in params {
                s.push(';');
                s.push_str(&n);
                if let Some(v) = v {
                    s.push('=');
                    s.push_str(&v);
                }
            }
            s
        })
}

fn display() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-zA-Z]{1,8}( [a-zA-Z]{1,8}){0,2} ",
        "[ -!#-\\[\\]-~é漢]{0,12}".prop_map(|s| format!("\"{s}\" ")),
    ]
}

fn name_addr() -> impl Strategy<Value = String> {
    (display(), sip_uri(), prop::option::of(token())).prop_map(|(d, u, tag)| {
        let mut s = format!("{d}<{u}>");
        if let Some(t) = tag {
            s.push_str(";tag=");
            s.push_str(&t);
        }
        s
    })
}

fn extension_header() -> impl Strategy<Value = (String, String)> {
    ("X-[A-Za-z0-9-]{1,10}", "[ -~é]{0,30}").prop_map(|(n, v)| (n, v.trim().to_string()))
}

fn message() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![
            Just("INVITE".to_string()),
            Just("REGISTER".to_string()),
            Just("MESSAGE".to_string()),
            "[A-Z]{3,10}".prop_map(|s| s)
        ],
        (sip_uri(), prop::option::of((100u16..700, "[ -~]{0,20}"))),
        host(),
        token(),
        name_addr(),
        name_addr(),
        "[a-zA-Z0-9.-]{1,20}(@[a-z0-9.]{1,10})?",
        any::<u32>(),
        prop::collection::vec(name_addr(), 0..3),
        prop::collection::vec(extension_header(), 0..4),
        prop::collection::vec(any::<u8>(), 0..200),
        prop::bool::ANY,
    )
        .prop_map(
            |(
                method,
                (ruri, status),
                vhost,
                branch,
                from,
                to,
                callid,
                cseq,
                contacts,
                ext,
                body,
                compact,
            )| {
                let mut m = match &status {
                    Some((code, reason)) => format!("SIP/2.0 {code} {}\r\n", reason.trim()),
                    None => format!("{method} {ruri} SIP/2.0\r\n"),
                };
                m.push_str(&format!(
                    "{}: SIP/2.0/UDP {vhost};branch=z9hG4bK{branch};rport\r\n",
                    if compact { "v" } else { "Via" }
                ));
                m.push_str(&format!(
                    "{}: {from}\r\n",
                    if compact { "f" } else { "From" }
                ));
                m.push_str(&format!("To: {to}\r\n"));
                m.push_str(&format!("Call-ID: {callid}\r\n"));
                m.push_str(&format!("CSeq: {cseq} {method}\r\n"));
                m.push_str("Max-Forwards: 70\r\n");
                for c in &contacts {
                    m.push_str(&format!("Contact: {c};expires=60\r\n"));
                }
                for (n, v) in &ext {
                    m.push_str(&format!("{n}: {v}\r\n"));
                }
                m.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
                let mut bytes = m.into_bytes();
                bytes.extend_from_slice(&body);
                bytes
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_serialize_parse_is_identity(raw in message()) {
        let m = Message::parse(raw.clone()).map_err(|e| TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(&raw))))?;
        let again = Message::parse(m.to_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&again, &m);
        // and serializing is stable
        prop_assert_eq!(again.to_bytes(), m.to_bytes());
    }

    #[test]
    fn framer_is_split_invariant(
        msgs in prop::collection::vec(message(), 1..5),
        keepalive in prop::collection::vec(0u8..3, 5),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut stream = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            match keepalive[i] {
                1 => stream.extend_from_slice(b"\r\n\r\n"),
                2 => stream.extend_from_slice(b"\r\n"),
                _ => {}
            }
            stream.extend_from_slice(m);
        }
        let whole = frame_all(&[&stream[..]]);
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        points.sort_unstable();
        points.dedup();
        let mut pieces = Vec::new();
        let mut last = 0;
        for p in points {
            pieces.push(&stream[last..p]);
            last = p;
        }
        pieces.push(&stream[last..]);
        let split = frame_all(&pieces);
        prop_assert_eq!(&split, &whole);
        let n_msgs = whole.iter().filter(|f| matches!(f, Framed::Message(_))).count();
        prop_assert_eq!(n_msgs, msgs.len());
    }
}

fn frame_all(pieces: &[&[u8]]) -> Vec<Framed> {
    let mut f = Framer::default();
    let mut out = Vec::new();
    for p in pieces {
        f.push(p);
        while let Some(item) = f.decode().expect("valid stream") {
            out.push(item);
        }
    }
    out
}
