//! Answers to requests that do not parse (RFC 3261 §16.3, §18.3; RFC 4475):
//! copy what can be copied of Via, From, To, Call-ID and CSeq so the UA can
//! match the 400/505, and put the parser's reason in the reason phrase.

use crate::header::StdHeader;
use crate::status::StatusCode;

/// A stateless error response to the unparsable request `raw`, or `None`
/// when `raw` is a response (never answered) or has no Via to answer to.
pub fn error_response(raw: &[u8], status: StatusCode, detail: &str) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.by_ref().find(|l| !l.is_empty())?;
    if first.len() >= 4 && first[..4].eq_ignore_ascii_case("SIP/") {
        return None;
    }
    let mut out = String::with_capacity(512);
    let reason: String = detail
        .chars()
        .filter(|c| !c.is_control())
        .take(120)
        .collect();
    out.push_str(&format!(
        "SIP/2.0 {} {} ({reason})\r\n",
        status.as_u16(),
        status.reason()
    ));
    let mut has_via = false;
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let Some(h) = StdHeader::lookup(name.trim_end_matches([' ', '\t'])) else {
            continue;
        };
        if matches!(
            h,
            StdHeader::Via | StdHeader::From | StdHeader::To | StdHeader::CallId | StdHeader::CSeq
        ) {
            let value = value.trim();
            if value.is_empty() || value.chars().any(|c| c.is_control() && c != '\t') {
                continue;
            }
            has_via |= h == StdHeader::Via;
            out.push_str(&format!("{}: {value}\r\n", h.as_str()));
        }
    }
    if !has_via {
        return None;
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_matching_headers() {
        let raw = b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: 99999999999 INVITE\r\nX: y\r\n\r\n";
        let r = error_response(raw, StatusCode::BAD_REQUEST, "line 3: bad\r\nCSeq").unwrap();
        let s = String::from_utf8(r).unwrap();
        assert!(
            s.starts_with("SIP/2.0 400 Bad Request (line 3: badCSeq)\r\n"),
            "{s}"
        );
        assert!(s.contains("Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"));
        assert!(!s.contains("X: y"));
        assert!(
            error_response(
                b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n",
                StatusCode::BAD_REQUEST,
                ""
            )
            .is_none()
        );
        assert!(error_response(b"INVITE x SIP/2.0\r\n\r\n", StatusCode::BAD_REQUEST, "").is_none());
    }
}
