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
    pub fn parse(bytes: impl Into<Bytes>) -> Result<Message, ParseError> {
        parse::parse(bytes.into())
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
