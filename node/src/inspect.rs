//! `kadsip parse`: one SIP message in, JSON out, so operators can see what the
//! node sees (and why it refuses what it refuses).

use kadsip_proto::{Message, ParseError};
use serde_json::{Value, json};

/// Parses `bytes` and renders the message as JSON.
pub fn parse_to_json(bytes: &[u8]) -> Result<Value, ParseError> {
    let msg = Message::parse(bytes.to_vec())?;
    Ok(to_json(&msg))
}

/// The JSON view of a parsed message.
pub fn to_json(msg: &Message) -> Value {
    let headers: Vec<Value> = msg
        .headers()
        .iter()
        .map(|h| json!([h.name.as_str(), h.value.as_str()]))
        .collect();
    match msg {
        Message::Request(r) => json!({
            "kind": "request",
            "method": r.method.as_str(),
            "uri": r.uri.to_string(),
            "headers": headers,
            "body_len": r.body.len(),
        }),
        Message::Response(r) => json!({
            "kind": "response",
            "status": r.status.as_u16(),
            "reason": r.reason.as_str(),
            "class": r.status.class().as_str(),
            "headers": headers,
            "body_len": r.body.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_response_json() {
        let v = parse_to_json(
            b"MESSAGE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
              To: <sip:bob@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\nCall-ID: c\r\n\
              CSeq: 1 MESSAGE\r\nContent-Length: 2\r\n\r\nhi",
        )
        .unwrap();
        assert_eq!(v["kind"], "request");
        assert_eq!(v["method"], "MESSAGE");
        assert_eq!(v["uri"], "sip:bob@example.com");
        assert_eq!(
            v["headers"][0],
            json!(["Via", "SIP/2.0/UDP h;branch=z9hG4bK1"])
        );
        assert_eq!(v["body_len"], 2);

        let v = parse_to_json(b"SIP/2.0 480 Temporarily Unavailable\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        assert_eq!(v["kind"], "response");
        assert_eq!(v["status"], 480);
        assert_eq!(v["reason"], "Temporarily Unavailable");
        assert_eq!(v["class"], "client-error");
    }

    #[test]
    fn errors_name_what_and_where() {
        let e = parse_to_json(b"INVITE sip:a@b SIP/2.0\r\nCSeq: 99999999999 INVITE\r\n\r\n")
            .unwrap_err();
        let s = e.to_string();
        assert!(s.contains("line 2") && s.contains("CSeq"), "{s}");
    }
}
