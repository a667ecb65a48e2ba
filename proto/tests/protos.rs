//! PROTOS c07-sip: every one of the 4,527 INVITE cases (templates filled in)
//! either parses or fails with an error — never a panic — and the framer
//! agrees on where each message ends.

mod common;

use kadsip_proto::framing::{Framed, Framer};
use kadsip_proto::{Message, StdHeader};

/// Splits a case file into its templates: `"<len> <bytes>"` repeated.
fn templates(file: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = file;
    while !rest.is_empty() {
        let Some(sp) = rest.iter().position(|&c| c == b' ') else {
            break;
        };
        let Some(len) = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
        else {
            break;
        };
        let start = sp + 1;
        let end = (start + len).min(rest.len());
        out.push(&rest[start..end]);
        rest = &rest[end..];
    }
    out
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// Fills the placeholders the way the PROTOS README describes.
pub fn fill(t: &[u8], case: usize) -> Vec<u8> {
    let mut m = t.to_vec();
    for (k, v) in [
        ("<To>", "bob@127.0.0.1".to_string()),
        ("<From>", "protos@127.0.0.1".to_string()),
        ("<From-Address>", "127.0.0.1".to_string()),
        ("<From-IP>", "127.0.0.1".to_string()),
        ("<Local-Port>", "5070".to_string()),
        ("<Branch-ID>", case.to_string()),
        ("<Call-ID>", format!("protos{case}")),
        ("<CSeq>", "1".to_string()),
        ("<Teardown-Method>", "CANCEL".to_string()),
    ] {
        m = replace(&m, k.as_bytes(), v.as_bytes());
    }
    let body_len = kadsip_proto::message::head_end(&m).map_or(0, |(_, b)| m.len() - b);
    replace(&m, b"<Content-Length>", body_len.to_string().as_bytes())
}

/// Every typed accessor, on a message whose values were not checked.
fn read_every_header(m: &Message) {
    let h = m.headers();
    let _ = (
        h.via(),
        h.top_via(),
        h.from(),
        h.to(),
        h.call_id(),
        h.cseq(),
    );
    let _ = (
        h.contacts(),
        h.routes(),
        h.record_routes(),
        h.max_forwards(),
    );
    let _ = (
        h.expires(),
        h.min_expires(),
        h.content_length(),
        h.content_type(),
    );
    let _ = (
        h.retry_after(),
        h.warnings(),
        h.tokens(StdHeader::Supported),
    );
    let _ = h.authorization().count() + h.proxy_authorization().count();
    let _ = h.www_authenticate().count() + h.proxy_authenticate().count();
    let _ = m.check();
}

#[test]
fn protos_c07_sip_never_panics() {
    let Some(dir) = common::corpus_dir("protos-c07-sip") else {
        return;
    };
    let (mut ok, mut err, mut cases) = (0usize, 0usize, 0usize);
    for case in 0..4527 {
        let path = dir.join(format!("{case:07}"));
        let file = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let ts = templates(&file);
        assert!(!ts.is_empty(), "case {case}: no template");
        cases += 1;
        for t in ts {
            let msg = fill(t, case);
            let strict = Message::parse(msg.clone());
            // The relaxed parse plus validate agrees with the strict parse,
            // and reading a relaxed message's headers never panics.
            match Message::parse_relaxed(msg.clone()) {
                Ok(m) => {
                    read_every_header(&m);
                    assert_eq!(
                        m.validate().is_ok(),
                        strict.is_ok(),
                        "case {case}: parse_relaxed + validate disagrees with parse"
                    );
                }
                Err(_) => assert!(strict.is_err(), "case {case}: relaxed refused it"),
            }
            match strict {
                Ok(m) => {
                    ok += 1;
                    // What parses must serialize and parse again to the same.
                    let again = Message::parse(m.to_bytes())
                        .unwrap_or_else(|e| panic!("case {case}: reparse: {e}"));
                    assert_eq!(again, m, "case {case}");
                    let _ = m.check();
                }
                Err(e) => {
                    err += 1;
                    assert!(!e.to_string().is_empty());
                }
            }
            let mut f = Framer::default();
            f.push(&msg);
            for _ in 0..4 {
                match f.decode() {
                    Ok(Some(
                        Framed::Message(_) | Framed::Invalid { .. } | Framed::Ping | Framed::Pong,
                    )) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
    assert_eq!(cases, 4527);
    eprintln!("PROTOS c07-sip: {ok} templates parsed, {err} rejected");
    assert!(
        ok > 0 && err > 0,
        "the suite holds both valid and malformed cases"
    );
}
