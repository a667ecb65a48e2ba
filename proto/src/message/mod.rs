//! SIP requests and responses (RFC 3261 §7): the owned message types, their
//! serialization, and the builders a server needs (§8.2.6 responses).

mod check;
mod parse;
mod stateless;

pub use check::Problem;
pub use parse::{MAX_HEADERS, head_end};
pub use stateless::error_response;

use crate::bytestr::ByteStr;
use crate::error::ParseError;
use crate::header::{Headers, StdHeader};
use crate::method::Method;
use crate::status::StatusCode;
use crate::uri::Uri;
use bytes::Bytes;

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The Request-URI.
    pub uri: Uri,
    /// Header fields in order.
    pub headers: Headers,
    /// The body (may hold any bytes, NULs included).
    pub body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code (unknown codes kept).
    pub status: StatusCode,
    /// The reason phrase as received (UTF-8, may be empty).
    pub reason: ByteStr,
    /// Header fields in order.
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl Message {
    /// Parses one datagram (or one framed stream message). The body is what
    /// Content-Length says; without Content-Length it is the rest of the
    /// bytes (RFC 3261 §18.3 for UDP). Trailing bytes are ignored.
    ///
    /// Every header kadsip knows is checked against its grammar, so an
    /// invalid message is refused here with the header and line at fault.
    pub fn parse(bytes: impl Into<Bytes>) -> Result<Message, ParseError> {
        parse::parse(bytes.into(), parse::Checks::All)
    }

    /// [`Message::parse`] that checks only what framing needs: the start
    /// line, header names, Content-Length and CSeq. Other values are
    /// checked when read (the typed accessors return `Result`) or by
    /// [`Message::validate`]. This is the work rsip and ezk-sip-types do.
    pub fn parse_relaxed(bytes: impl Into<Bytes>) -> Result<Message, ParseError> {
        parse::parse(bytes.into(), parse::Checks::Framing)
    }

    /// How a SIP element reads a message off the wire (RFC 3261 §16.3 step
    /// 1): in a request, the values every element needs before it answers
    /// or relays it (Via, the From and To tags, Call-ID, CSeq, Max-Forwards,
    /// Route, Require, Proxy-Require, Content-Length) are checked, so a bad
    /// one gets a 400 naming it; a response is relayed after reading only
    /// its top Via and CSeq (§16.7). Other values (the From and To URIs
    /// among them) are kept byte for byte and checked by whoever reads them
    /// (the typed accessors return `Result`; a registrar answers a bad To,
    /// Contact or Expires with 400).
    pub fn parse_received(bytes: impl Into<Bytes>) -> Result<Message, ParseError> {
        parse::parse(bytes.into(), parse::Checks::Received)
    }

    /// Checks every known header value against its grammar, as
    /// [`Message::parse`] does; for a message from [`Message::parse_relaxed`].
    /// The line in an error counts one line per header field (the start
    /// line is line 1), so folded fields shift it.
    pub fn validate(&self) -> Result<(), ParseError> {
        for (i, h) in self.headers().iter().enumerate() {
            if let crate::header::HeaderName::Std(s) = h.name {
                Headers::validate_value(&h.name, &h.value).map_err(|source| {
                    ParseError::Header {
                        name: s.as_str(),
                        line: i + 2,
                        source,
                    }
                })?;
            }
        }
        Ok(())
    }

    /// The header fields.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    /// The header fields, mutably.
    pub fn headers_mut(&mut self) -> &mut Headers {
        match self {
            Message::Request(r) => &mut r.headers,
            Message::Response(r) => &mut r.headers,
        }
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }

    /// The request, if this is one.
    pub fn as_request(&self) -> Option<&Request> {
        match self {
            Message::Request(r) => Some(r),
            Message::Response(_) => None,
        }
    }

    /// The response, if this is one.
    pub fn as_response(&self) -> Option<&Response> {
        match self {
            Message::Response(r) => Some(r),
            Message::Request(_) => None,
        }
    }

    /// Appends the wire form to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Message::Request(r) => r.write_to(out),
            Message::Response(r) => r.write_to(out),
        }
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body().len());
        self.write_to(&mut out);
        out
    }
}

fn write_headers(headers: &Headers, body: &[u8], out: &mut Vec<u8>) {
    for h in headers {
        out.extend_from_slice(h.name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, uri: Uri) -> Request {
        Request {
            method,
            uri,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Appends the wire form to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let _ = write!(out, "{} {} SIP/2.0\r\n", self.method, self.uri);
        write_headers(&self.headers, &self.body, out);
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        self.write_to(&mut out);
        out
    }

    /// Replaces the body, setting Content-Type and Content-Length.
    pub fn set_body(&mut self, content_type: &str, body: impl Into<Bytes>) {
        self.body = body.into();
        set_body_headers(&mut self.headers, content_type, self.body.len());
    }
}

impl Response {
    /// A response with the code's default reason phrase.
    pub fn new(status: StatusCode) -> Response {
        Response {
            status,
            reason: ByteStr::from_static(status.reason()),
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// A response to `req` per RFC 3261 §8.2.6: Via, From, To, Call-ID and
    /// CSeq copied, a To tag added when `to_tag` is given and To has none,
    /// and `Content-Length: 0`.
    pub fn to_request(req: &Request, status: StatusCode, to_tag: Option<&str>) -> Response {
        let mut r = Response::new(status);
        r.headers = Headers::with_capacity(8);
        for h in &req.headers {
            if let crate::header::HeaderName::Std(
                StdHeader::Via | StdHeader::From | StdHeader::CallId | StdHeader::CSeq,
            ) = h.name
            {
                r.headers.push(h.name.clone(), h.value.clone());
            } else if h.name == StdHeader::To.into() {
                let has_tag = req
                    .headers
                    .to()
                    .and_then(|t| t.ok())
                    .and_then(|t| t.tag())
                    .is_some();
                match to_tag {
                    Some(tag) if !has_tag && status.as_u16() != 100 => r
                        .headers
                        .push(StdHeader::To, format!("{};tag={tag}", h.value)),
                    _ => r.headers.push(StdHeader::To, h.value.clone()),
                }
            }
        }
        r.headers
            .push(StdHeader::ContentLength, ByteStr::from_static("0"));
        r
    }

    /// Appends the wire form to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let _ = write!(
            out,
            "SIP/2.0 {:03} {}\r\n",
            self.status.as_u16(),
            self.reason
        );
        write_headers(&self.headers, &self.body, out);
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        self.write_to(&mut out);
        out
    }

    /// Replaces the body, setting Content-Type and Content-Length.
    pub fn set_body(&mut self, content_type: &str, body: impl Into<Bytes>) {
        self.body = body.into();
        set_body_headers(&mut self.headers, content_type, self.body.len());
    }
}

fn set_body_headers(headers: &mut Headers, content_type: &str, len: usize) {
    if len > 0 {
        headers.set(StdHeader::ContentType, content_type);
    } else {
        headers.remove(StdHeader::ContentType);
    }
    headers.set(StdHeader::ContentLength, len.to_string());
}

impl From<Request> for Message {
    fn from(r: Request) -> Self {
        Message::Request(r)
    }
}

impl From<Response> for Message {
    fn from(r: Response) -> Self {
        Message::Response(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BAD_CONTACT: &str = "Contact: <sip:bob@[::1>\r\n";

    fn with(start: &str, cseq: &str) -> Vec<u8> {
        format!(
            "{start}\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>;tag=2\r\n\
             From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: {cseq}\r\n{BAD_CONTACT}\
             Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn parse_modes_differ_only_in_which_values_they_check() {
        let resp = with("SIP/2.0 200 OK", "1 INVITE");
        let req = with("INVITE sip:a@b SIP/2.0", "1 INVITE");
        let names_contact = |e: ParseError| {
            let ok = matches!(
                e,
                ParseError::Header {
                    name: "Contact",
                    line: 7,
                    ..
                }
            );
            assert!(ok, "{e}");
        };
        for bytes in [&resp, &req] {
            names_contact(Message::parse(bytes.clone()).unwrap_err());
            let relaxed = Message::parse_relaxed(bytes.clone()).unwrap();
            names_contact(relaxed.validate().unwrap_err());
            // The broken value is kept byte for byte and its accessor errs.
            assert!(relaxed.headers().contacts().is_err());
            assert!(relaxed.to_bytes().ends_with(b"Content-Length: 0\r\n\r\n"));
        }
        // Received: a response is relayed as is, and so is a request whose
        // broken value is one no element needs to answer or relay it...
        assert!(Message::parse_received(resp.clone()).is_ok());
        let kept = Message::parse_received(req.clone()).unwrap();
        assert!(kept.headers().contacts().is_err(), "its reader sees it");
        // The same for a From URI: only its tag is needed to relay.
        let bad_from_uri = String::from_utf8(req.clone())
            .unwrap()
            .replace("From: <sip:c@d>;tag=1", "From: <sip:c@[::1>;tag=1");
        let kept = Message::parse_received(bad_from_uri.clone()).unwrap();
        assert!(kept.headers().from().unwrap().is_err());
        assert!(Message::parse(bad_from_uri).is_err());
        // ...but a request whose Via, From, To, Call-ID, Max-Forwards,
        // Route, Require or Proxy-Require is broken is refused, naming it.
        for (name, bad) in [
            ("Via", "Via: SIP/2.0/UDP h;branch=z9hG4bK1;;\r\n"),
            ("From", "From: <sip:c@d;tag=1\r\n"),
            ("Max-Forwards", "Max-Forwards: seventy\r\n"),
            ("Route", "Route: <sip:p@[::1>\r\n"),
            ("Proxy-Require", "Proxy-Require: a b\r\n"),
        ] {
            let bytes = String::from_utf8(req.clone())
                .unwrap()
                .replace(BAD_CONTACT, bad);
            match Message::parse_received(bytes) {
                Err(ParseError::Header { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        // A response with the same values is still relayed.
        let resp_bad_from = String::from_utf8(resp.clone())
            .unwrap()
            .replace(BAD_CONTACT, "Route: <sip:p@[::1>\r\n");
        assert!(Message::parse_received(resp_bad_from).is_ok());
        // What framing needs is checked in every mode.
        let bad_cseq = with("SIP/2.0 200 OK", "x INVITE");
        assert!(Message::parse_relaxed(bad_cseq).is_err());
        let mismatch = with("INVITE sip:a@b SIP/2.0", "1 BYE");
        assert!(Message::parse_relaxed(mismatch).is_err());
    }
}
