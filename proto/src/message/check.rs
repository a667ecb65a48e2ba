//! Application-layer checks on messages that parse but that a server must
//! still refuse (RFC 3261 §8.2, §16.3; RFC 4475 §3.3): missing or repeated
//! headers, and extensions the receiver does not support.

use super::{Message, Request};
use crate::header::{Arity, HeaderName, Headers, StdHeader};
use crate::status::StatusCode;

/// Why a parsed message cannot be processed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// A header every request and response must carry is absent.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// A single-valued header appears more than once.
    #[error("{0} header appears more than once")]
    Repeated(&'static str),
    /// A mandatory header does not parse.
    #[error("invalid {0} header")]
    Invalid(&'static str),
}

impl Problem {
    /// The status a server answers a request with (always 400).
    pub fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }
}

const MANDATORY: [StdHeader; 5] = [
    StdHeader::Via,
    StdHeader::From,
    StdHeader::To,
    StdHeader::CallId,
    StdHeader::CSeq,
];

impl Message {
    /// Checks the headers that every message must carry exactly once (Via at
    /// least once) and that no single-valued header is repeated.
    pub fn check(&self) -> Result<(), Problem> {
        check_headers(self.headers())
    }
}

fn check_headers(h: &Headers) -> Result<(), Problem> {
    for m in MANDATORY {
        if h.get(m).is_none() {
            return Err(Problem::Missing(m.as_str()));
        }
    }
    let mut seen: Vec<StdHeader> = Vec::new();
    for hdr in h {
        if let HeaderName::Std(s) = hdr.name {
            if s.arity() == Arity::Single {
                if seen.contains(&s) {
                    return Err(Problem::Repeated(s.as_str()));
                }
                seen.push(s);
            }
        }
    }
    Ok(())
}

impl Request {
    /// [`Message::check`] for a request, without wrapping (or cloning) it.
    pub fn check(&self) -> Result<(), Problem> {
        check_headers(&self.headers)
    }

    /// The option tags in Require (and, for a proxy, Proxy-Require) that are
    /// not in `supported`: non-empty means answer 420 with them in Unsupported.
    pub fn unsupported<'a>(&'a self, supported: &[&str], as_proxy: bool) -> Vec<&'a str> {
        let mut out = Vec::new();
        let mut scan = |h: StdHeader| {
            for t in self.headers.tokens(h).unwrap_or_default() {
                if !supported.iter().any(|s| s.eq_ignore_ascii_case(t)) && !out.contains(&t) {
                    out.push(t);
                }
            }
        };
        // A proxy ignores Require (§16.3 item 1 does not apply) but honours
        // Proxy-Require; a UAS honours Require (§8.2.2.3).
        if as_proxy {
            scan(StdHeader::ProxyRequire);
        } else {
            scan(StdHeader::Require);
        }
        out
    }
}
