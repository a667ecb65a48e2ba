//! RFC 4475 and RFC 5118 torture messages, each handled as
//! `../shared/corpus/*/MANIFEST.tsv` says.

mod common;

use kadsip_proto::framing::{self, Check};
use kadsip_proto::header::{Contact, StdHeader};
use kadsip_proto::{Message, ParseError, StatusCode};
use sha2::{Digest, Sha256};

/// What kadsip does with each RFC 4475 message.
enum Expect {
    /// Parses and round-trips.
    Valid,
    /// Rejected with this status (for requests) and this text in the error.
    Reject(u16, &'static str),
    /// Parses; the closure checks what the application layer needs.
    App(fn(&Message)),
}

fn rfc4475(file: &str) -> Expect {
    use Expect::*;
    match file {
        "wsinv.dat" | "intmeth.dat" | "esc01.dat" | "escnull.dat" | "esc02.dat" | "lwsdisp.dat"
        | "longreq.dat" | "dblreq.dat" | "semiuri.dat" | "transports.dat" | "mpart01.dat"
        | "unreason.dat" | "noreason.dat" => Valid,
        "badinv01.dat" => Reject(400, "Via"),
        "clerr.dat" => Reject(400, "Content-Length"),
        "ncl.dat" => Reject(400, "Content-Length"),
        "scalar02.dat" => Reject(400, "CSeq"),
        "scalarlg.dat" => Reject(400, "CSeq"),
        "quotbal.dat" => Reject(400, "To"),
        "ltgtruri.dat" => Reject(400, "Request-URI"),
        "lwsruri.dat" => Reject(400, "start line"),
        "lwsstart.dat" => Reject(400, "start line"),
        "trws.dat" => Reject(400, "start line"),
        "escruri.dat" => Reject(400, "headers are not allowed in a Request-URI"),
        // "should not reject unless Date matters": kadsip does not use Date.
        "baddate.dat" => Valid,
        "regbadct.dat" => Reject(400, "Contact"),
        "badaspec.dat" => Reject(400, "To"),
        "baddn.dat" => Reject(400, "From"),
        "badvers.dat" => Reject(505, "version"),
        "mismatch01.dat" => Reject(400, "CSeq method"),
        "mismatch02.dat" => Reject(400, "CSeq method"),
        "bigcode.dat" => Reject(400, "status code"),
        "badbranch.dat" => App(|m| {
            let via = m.headers().top_via().unwrap().unwrap();
            assert!(!via.is_rfc3261_branch(), "RFC 2543 branch must be visible");
        }),
        "insuf.dat" => App(|m| {
            let p = m.check().unwrap_err();
            assert_eq!(p.status(), StatusCode::BAD_REQUEST);
        }),
        "unkscm.dat" | "novelsc.dat" => App(|m| {
            let r = m.as_request().unwrap();
            assert!(r.uri.as_sip().is_none(), "non-SIP Request-URI → 416");
            m.check().unwrap();
        }),
        "unksm2.dat" => App(|m| {
            let to = m.headers().to().unwrap().unwrap();
            assert!(
                to.parsed_uri().unwrap().as_sip().is_none(),
                "registrar answers 400"
            );
        }),
        "bext01.dat" => App(|m| {
            let r = m.as_request().unwrap();
            assert!(!r.unsupported(&[], false).is_empty(), "Require → 420");
            assert!(!r.unsupported(&[], true).is_empty(), "Proxy-Require → 420");
        }),
        "invut.dat" => App(|m| {
            let ct = m.headers().content_type().unwrap().unwrap();
            assert!(!ct.is("application", "sdp"));
        }),
        "regaut01.dat" => App(|m| {
            let creds: Vec<_> = m.headers().authorization().collect();
            assert_eq!(creds.len(), 1);
            let c = creds[0]
                .as_ref()
                .expect("unknown scheme kept, not an error");
            assert!(
                c.as_digest().is_none(),
                "unknown scheme → 401 with Digest challenge"
            );
        }),
        "multi01.dat" => App(|m| {
            assert!(m.check().is_err(), "repeated single-valued headers → 400");
        }),
        "mcl01.dat" => App(|m| {
            assert!(m.check().is_err(), "two Content-Length → 400");
            let raw = m.to_bytes();
            assert_eq!(
                framing::check(&raw, 65536),
                Err(ParseError::ConflictingContentLength),
                "a stream must be closed"
            );
        }),
        "bcast.dat" => App(|m| {
            assert!(m.as_response().is_some());
            let vias = m.headers().via().unwrap();
            assert!(vias.iter().any(|v| v.received() == Some("255.255.255.255")
                || v.maddr() == Some("255.255.255.255")
                || v.host == "255.255.255.255"));
        }),
        "zeromf.dat" => App(|m| {
            assert_eq!(
                m.headers().max_forwards().unwrap().unwrap(),
                0,
                "proxy → 483"
            );
        }),
        "cparam01.dat" | "cparam02.dat" | "regescrt.dat" => App(|m| {
            let contacts = m.headers().contacts().unwrap();
            assert!(!contacts.is_empty());
            for c in &contacts {
                let a = c.addr().unwrap();
                a.parsed_uri().unwrap();
            }
            m.check().unwrap();
        }),
        "sdp01.dat" => App(|m| {
            assert!(m.headers().get_named("Accept").is_some());
        }),
        "inv2543.dat" => App(|m| {
            assert!(m.headers().content_length().is_none());
            assert!(!m.body().is_empty(), "body = rest of the datagram");
            assert!(m.headers().top_via().unwrap().unwrap().branch().is_none());
        }),
        other => panic!("{other} is in MANIFEST.tsv but kadsip has no expectation for it"),
    }
}

fn roundtrip(m: &Message, name: &str) {
    let again =
        Message::parse(m.to_bytes()).unwrap_or_else(|e| panic!("{name}: reparse failed: {e}"));
    assert_eq!(
        &again, m,
        "{name}: parse → serialize → parse changed the message"
    );
}

#[test]
fn rfc4475_torture_messages() {
    let Some(dir) = common::corpus_dir("rfc4475") else {
        return;
    };
    let rows = common::manifest(&dir);
    assert_eq!(rows.len(), 49, "RFC 4475 has 49 messages");
    for row in rows {
        let (file, section, sha) = (&row[0], &row[1], &row[5]);
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            &digest, sha,
            "{file}: corpus file differs from MANIFEST.tsv"
        );
        let parsed = Message::parse(bytes.clone());
        let relaxed = Message::parse_relaxed(bytes.clone()).and_then(|m| m.validate());
        assert_eq!(
            relaxed.is_ok(),
            parsed.is_ok(),
            "{file}: parse_relaxed + validate disagrees with parse"
        );
        match rfc4475(file) {
            Expect::Valid => {
                let m = parsed.unwrap_or_else(|e| panic!("{file} (§{section}) must parse: {e}"));
                roundtrip(&m, file);
            }
            Expect::Reject(status, needle) => {
                let e = match parsed {
                    Ok(m) => panic!("{file} (§{section}) must be rejected, parsed as {m:?}"),
                    Err(e) => e,
                };
                let text = e.to_string();
                assert!(
                    text.to_lowercase().contains(&needle.to_lowercase()),
                    "{file}: error {text:?} should name {needle:?}"
                );
                assert_eq!(e.status().as_u16(), status, "{file}: {text}");
            }
            Expect::App(check) => {
                let m = parsed.unwrap_or_else(|e| panic!("{file} (§{section}) must parse: {e}"));
                roundtrip(&m, file);
                check(&m);
            }
        }
    }
}

#[test]
fn rfc4475_specific_values() {
    let Some(dir) = common::corpus_dir("rfc4475") else {
        return;
    };
    let read = |f: &str| Message::parse(std::fs::read(dir.join(f)).unwrap()).unwrap();

    let m = read("wsinv.dat");
    let h = m.headers();
    assert_eq!(h.max_forwards().unwrap().unwrap(), 68);
    assert_eq!(h.cseq().unwrap().unwrap().seq, 9);
    assert_eq!(h.via().unwrap().len(), 3);
    assert_eq!(h.from().unwrap().unwrap().tag(), Some("98asjd8"));
    assert_eq!(h.to().unwrap().unwrap().tag(), Some("1918181833n"));
    let contacts = h.contacts().unwrap();
    assert_eq!(contacts[0].q(), Some(330));
    assert_eq!(m.body().len(), 150);
    assert_eq!(
        h.get_named("NewFangledHeader").unwrap(),
        "newfangled value continued newfangled value"
    );
    assert_eq!(
        h.get_named("UnknownHeaderWithUnusualValue").unwrap(),
        ";;,,;;,;"
    );

    let m = read("escnull.dat");
    let c = m.headers().contacts().unwrap();
    assert_eq!(c.len(), 2);
    let a: Vec<_> = c
        .iter()
        .map(|c| {
            c.addr()
                .unwrap()
                .parsed_uri()
                .unwrap()
                .as_sip()
                .unwrap()
                .aor()
        })
        .collect();
    assert_ne!(a[0], a[1], "AORs differing after %00 must stay distinct");

    let m = read("dblreq.dat");
    assert_eq!(m.as_request().unwrap().method.as_str(), "REGISTER");
    assert!(m.body().is_empty());

    let m = read("mpart01.dat");
    assert!(m.body().contains(&0), "binary body with NUL kept");

    let m = read("unreason.dat");
    assert!(m.as_response().unwrap().reason.contains("2**3"));

    let m = read("esc02.dat");
    assert_eq!(m.as_request().unwrap().method.as_str(), "RE%47IST%45R");
    assert_eq!(
        m.headers().contacts().unwrap().len(),
        2,
        "C%6Fntact is not Contact"
    );

    let m = read("semiuri.dat");
    let uri = m.as_request().unwrap().uri.as_sip().unwrap().clone();
    assert_eq!(uri.user.as_deref(), Some("user;par=u%40example.net"));

    let m = read("zeromf.dat");
    assert_eq!(m.headers().max_forwards().unwrap().unwrap(), 0);
}

#[test]
fn rfc4475_stream_framing() {
    let Some(dir) = common::corpus_dir("rfc4475") else {
        return;
    };
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    // clerr: on a stream, wait for the missing bytes.
    assert_eq!(
        framing::check(&read("clerr.dat"), 65536),
        Ok(Check::Incomplete)
    );
    // ncl: negative Content-Length closes the stream.
    assert!(framing::check(&read("ncl.dat"), 65536).is_err());
    // dblreq: two messages back to back on a stream.
    let d = read("dblreq.dat");
    match framing::check(&d, 65536) {
        Ok(Check::Message(n)) => assert!(n < d.len()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rfc5118_ipv6_messages() {
    let Some(dir) = common::corpus_dir("rfc5118") else {
        return;
    };
    let rows = common::manifest(&dir);
    assert_eq!(rows.len(), 12);
    for row in rows {
        let (file, handling) = (&row[0], &row[3]);
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let parsed = Message::parse(bytes);
        if handling.starts_with("reject") {
            let e = parsed.expect_err(file);
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{file}: {e}");
        } else {
            let m = parsed.unwrap_or_else(|e| panic!("{file}: {e}"));
            roundtrip(&m, file);
            if file == "port-ambiguous" {
                let u = m.as_request().unwrap().uri.as_sip().unwrap().clone();
                assert_eq!(u.port, None);
                assert_eq!(u.host.to_string(), "[2001:db8::10:5070]");
            }
            if file == "port-unambiguous" {
                assert_eq!(
                    m.as_request().unwrap().uri.as_sip().unwrap().port,
                    Some(5070)
                );
            }
            let _ = m.headers().via().unwrap();
            if let Ok(cs) = m.headers().contacts() {
                for c in cs {
                    if let Contact::Addr(a) = c {
                        a.parsed_uri().unwrap();
                    }
                }
            }
            let _ = StdHeader::Via;
        }
    }
}
