//! Registrar logic of RFC 3261 §10.3 as a pure function: a REGISTER and the
//! AOR's current bindings in, the new bindings (or the failure status) out.
//! Authentication, domains and storage are the node's job.

use crate::header::{Contact, StdHeader};
use crate::message::{Request, Response};
use crate::status::StatusCode;
use crate::uri::{Aor, SipUri, Uri};
use bincode::{Decode, Encode};

/// One contact bound to an AOR.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Binding {
    /// The Contact URI as registered.
    pub contact: String,
    /// q in thousandths (1000 when absent).
    pub q: u16,
    /// Expiry, unix seconds.
    pub expires: u64,
    /// Call-ID of the REGISTER that last touched it.
    pub call_id: String,
    /// CSeq number of that REGISTER.
    pub cseq: u32,
    /// `+sip.instance` (RFC 5626), unquoted.
    pub instance: Option<String>,
    /// `reg-id` (RFC 5626).
    pub reg_id: Option<u32>,
    /// Where the REGISTER came from (`udp:192.0.2.1:5060`), for NAT traversal.
    pub source: Option<String>,
}

/// Registrar bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Shortest accepted non-zero expiry (423 below it).
    pub min_expires: u32,
    /// Longest granted expiry (longer requests are shortened).
    pub max_expires: u32,
    /// Expiry when the request gives none.
    pub default_expires: u32,
    /// Most bindings per AOR.
    pub max_bindings: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_expires: 60,
            max_expires: 86_400,
            default_expires: 3600,
            max_bindings: 8,
        }
    }
}

/// Why a REGISTER is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The request is malformed for a registrar (400).
    #[error("{0}")]
    BadRequest(&'static str),
    /// A header the registrar reads does not match its grammar (400); the
    /// parser leaves these to their reader (RFC 3261 §16.3).
    #[error("invalid {name} header: {source}")]
    BadHeader {
        /// The header at fault.
        name: &'static str,
        /// What is wrong with it, and where.
        source: crate::syntax::SyntaxError,
    },
    /// An expiry below the minimum (423 with Min-Expires).
    #[error("interval too brief, minimum {0} s")]
    IntervalTooBrief(u32),
    /// A CSeq not above the one stored for the same Call-ID (§10.3 step 7).
    #[error("CSeq is not higher than that of the existing binding for this Call-ID")]
    OutOfOrder,
    /// More bindings than the policy allows (403).
    #[error("too many bindings for this AOR (maximum {0})")]
    TooManyBindings(usize),
}

impl RegisterError {
    /// The status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            RegisterError::BadRequest(_) | RegisterError::BadHeader { .. } => {
                StatusCode::BAD_REQUEST
            }
            RegisterError::IntervalTooBrief(_) => StatusCode::INTERVAL_TOO_BRIEF,
            RegisterError::OutOfOrder => StatusCode::SERVER_INTERNAL_ERROR,
            RegisterError::TooManyBindings(_) => StatusCode::FORBIDDEN,
        }
    }

    /// The error response to `req`, with Min-Expires on 423.
    pub fn response(&self, req: &Request, to_tag: &str) -> Response {
        let mut r = Response::to_request(req, self.status(), Some(to_tag));
        if let RegisterError::IntervalTooBrief(min) = self {
            r.headers.push(StdHeader::MinExpires, min.to_string());
        }
        r
    }
}

/// The AOR a REGISTER is for (its To URI, canonical).
pub fn register_aor(req: &Request) -> Result<Aor, RegisterError> {
    let to = match req.headers.to() {
        Some(Ok(t)) => t,
        _ => return Err(RegisterError::BadRequest("missing or invalid To")),
    };
    match to.parsed_uri() {
        Ok(Uri::Sip(u)) if u.user.is_some() => Ok(u.aor()),
        Ok(Uri::Sip(_)) => Err(RegisterError::BadRequest("To URI has no user part")),
        _ => Err(RegisterError::BadRequest("To must be a SIP or SIPS URI")),
    }
}

fn same_contact(a: &Binding, uri: &str, instance: Option<&str>, reg_id: Option<u32>) -> bool {
    if let (Some(x), Some(y)) = (a.instance.as_deref(), instance) {
        return x == y && a.reg_id == reg_id;
    }
    match (SipUri::parse(&a.contact), SipUri::parse(uri)) {
        (Ok(x), Ok(y)) => x.equivalent(&y),
        _ => a.contact == uri,
    }
}

/// Applies a REGISTER to `current` (already free of expired bindings).
/// Returns the bindings the AOR has afterwards.
pub fn apply(
    current: &[Binding],
    req: &Request,
    source: Option<&str>,
    now: u64,
    policy: &Policy,
) -> Result<Vec<Binding>, RegisterError> {
    let call_id = req
        .headers
        .call_id()
        .ok_or(RegisterError::BadRequest("missing Call-ID"))?;
    let cseq = match req.headers.cseq() {
        Some(Ok(c)) => c.seq,
        _ => return Err(RegisterError::BadRequest("missing or invalid CSeq")),
    };
    let header_expires = match req.headers.expires() {
        None => None,
        Some(Ok(e)) => Some(e),
        Some(Err(source)) => {
            return Err(RegisterError::BadHeader {
                name: "Expires",
                source,
            });
        }
    };
    let contacts = req
        .headers
        .contacts()
        .map_err(|source| RegisterError::BadHeader {
            name: "Contact",
            source,
        })?;
    let mut out: Vec<Binding> = current.to_vec();

    if contacts.iter().any(|c| matches!(c, Contact::Star)) {
        if contacts.len() != 1 || header_expires != Some(0) {
            return Err(RegisterError::BadRequest(
                "Contact: * needs Expires: 0 and no other Contact",
            ));
        }
        for b in &out {
            if b.call_id == call_id && cseq <= b.cseq {
                return Err(RegisterError::OutOfOrder);
            }
        }
        return Ok(Vec::new());
    }

    for c in &contacts {
        let Contact::Addr(addr) = c else { continue };
        let uri = addr.uri;
        if Uri::parse(uri).is_err() {
            return Err(RegisterError::BadRequest("invalid Contact URI"));
        }
        let expires = addr
            .params
            .get("expires")
            .flatten()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .or(header_expires)
            .unwrap_or(policy.default_expires);
        if expires != 0 && expires < policy.min_expires {
            return Err(RegisterError::IntervalTooBrief(policy.min_expires));
        }
        let expires = expires.min(policy.max_expires);
        let instance = c.instance().map(|i| i.into_owned());
        let reg_id = c.reg_id();
        let existing = out
            .iter()
            .position(|b| same_contact(b, uri, instance.as_deref(), reg_id));
        if let Some(i) = existing {
            if out[i].call_id == call_id && cseq <= out[i].cseq {
                return Err(RegisterError::OutOfOrder);
            }
            if expires == 0 {
                out.remove(i);
                continue;
            }
        } else if expires == 0 {
            continue;
        }
        let b = Binding {
            contact: uri.to_owned(),
            q: c.q().unwrap_or(1000),
            expires: now + u64::from(expires),
            call_id: call_id.to_owned(),
            cseq,
            instance,
            reg_id,
            source: source.map(str::to_owned),
        };
        match existing {
            Some(i) => out[i] = b,
            None => out.push(b),
        }
    }
    if out.len() > policy.max_bindings {
        return Err(RegisterError::TooManyBindings(policy.max_bindings));
    }
    Ok(out)
}

/// Drops bindings expired at `now`.
pub fn prune(bindings: &mut Vec<Binding>, now: u64) {
    bindings.retain(|b| b.expires > now);
}

/// The 200 OK listing every current binding with its remaining time (§10.3 step 8).
pub fn ok_response(req: &Request, bindings: &[Binding], now: u64, to_tag: &str) -> Response {
    let mut r = Response::to_request(req, StatusCode::OK, Some(to_tag));
    for b in bindings {
        r.headers.push(
            StdHeader::Contact,
            format!("<{}>;expires={}", b.contact, b.expires.saturating_sub(now)),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    const NOW: u64 = 1_000_000;

    fn register(contacts: &[&str], expires: Option<u32>, call_id: &str, cseq: u32) -> Request {
        let mut s = format!(
            "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK{cseq}\r\n\
             To: <sip:Bob@Example.com>\r\nFrom: <sip:Bob@Example.com>;tag=1\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n"
        );
        for c in contacts {
            s.push_str(&format!("Contact: {c}\r\n"));
        }
        if let Some(e) = expires {
            s.push_str(&format!("Expires: {e}\r\n"));
        }
        s.push_str("Content-Length: 0\r\n\r\n");
        // As the node reads it: Contact and Expires are the registrar's to check.
        match Message::parse_received(s.into_bytes()).unwrap() {
            Message::Request(r) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn add_refresh_remove() {
        let p = Policy::default();
        let r = register(&["<sip:bob@192.0.2.1:5060>"], Some(600), "c1", 1);
        assert_eq!(register_aor(&r).unwrap().as_str(), "sip:Bob@example.com");
        let b = apply(&[], &r, Some("udp:192.0.2.1:5060"), NOW, &p).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].expires, NOW + 600);
        // refresh with a higher CSeq, equivalent URI spelled differently
        let r2 = register(
            &["<sip:bob@192.0.2.1:5060;transport=udp>;expires=1200"],
            None,
            "c1",
            2,
        );
        let b2 = apply(&b, &r2, None, NOW, &p).unwrap();
        assert_eq!(
            b2.len(),
            2,
            "transport param makes a different URI per §19.1.4"
        );
        let r3 = register(&["<sip:bob@192.0.2.1:5060>;expires=1200"], None, "c1", 3);
        let b3 = apply(&b, &r3, None, NOW, &p).unwrap();
        assert_eq!(b3.len(), 1);
        assert_eq!(b3[0].expires, NOW + 1200);
        // out of order
        let old = register(&["<sip:bob@192.0.2.1:5060>"], Some(600), "c1", 1);
        assert_eq!(
            apply(&b3, &old, None, NOW, &p),
            Err(RegisterError::OutOfOrder)
        );
        // a different Call-ID may use any CSeq
        let other = register(&["<sip:bob@192.0.2.1:5060>"], Some(0), "c2", 1);
        assert!(apply(&b3, &other, None, NOW, &p).unwrap().is_empty());
        // star
        let star = register(&["*"], Some(0), "c1", 9);
        assert!(apply(&b3, &star, None, NOW, &p).unwrap().is_empty());
        let bad_star = register(&["*"], Some(60), "c1", 10);
        assert!(matches!(
            apply(&b3, &bad_star, None, NOW, &p),
            Err(RegisterError::BadRequest(_))
        ));
    }

    #[test]
    fn bad_contact_or_expires_is_400_naming_it() {
        let p = Policy::default();
        for (contact, expires, name) in [
            ("<sip:bob@[::1>", None, "Contact"),
            ("<sip:bob@192.0.2.1>;expires=soon", None, "Contact"),
            ("<sip:bob@192.0.2.1>;q=2", None, "Contact"),
            ("<sip:bob@192.0.2.1>", Some("-1"), "Expires"),
        ] {
            let mut r = register(&[contact], None, "c", 1);
            if let Some(e) = expires {
                r.headers.push(StdHeader::Expires, e);
            }
            let e = apply(&[], &r, None, NOW, &p).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{contact}");
            assert!(
                matches!(e, RegisterError::BadHeader { name: n, .. } if n == name),
                "{contact}: {e}"
            );
            assert!(
                e.to_string()
                    .starts_with(&format!("invalid {name} header: "))
            );
        }
    }

    #[test]
    fn brief_interval_and_caps() {
        let p = Policy::default();
        let r = register(&["<sip:bob@192.0.2.1>"], Some(10), "c", 1);
        let e = apply(&[], &r, None, NOW, &p).unwrap_err();
        assert_eq!(e, RegisterError::IntervalTooBrief(60));
        assert_eq!(e.status(), StatusCode::INTERVAL_TOO_BRIEF);
        let resp = e.response(&r, "t");
        assert_eq!(resp.headers.min_expires().unwrap().unwrap(), 60);
        let r = register(&["<sip:bob@192.0.2.1>"], Some(999_999), "c", 2);
        assert_eq!(
            apply(&[], &r, None, NOW, &p).unwrap()[0].expires,
            NOW + 86_400
        );
        let many: Vec<String> = (0..9).map(|i| format!("<sip:bob@192.0.2.{i}>")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let r = register(&refs, Some(600), "c", 3);
        assert_eq!(
            apply(&[], &r, None, NOW, &p),
            Err(RegisterError::TooManyBindings(8))
        );
    }

    #[test]
    fn ok_lists_all_contacts() {
        let p = Policy::default();
        let r = register(
            &["<sip:a@192.0.2.1>", "<sip:b@192.0.2.2>;q=0.5"],
            Some(600),
            "c",
            1,
        );
        let b = apply(&[], &r, None, NOW, &p).unwrap();
        assert_eq!(b[1].q, 500);
        let ok = ok_response(&r, &b, NOW + 100, "tag1");
        let cs = ok.headers.contacts().unwrap();
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0].expires(), Some(500));
        assert_eq!(ok.headers.to().unwrap().unwrap().tag(), Some("tag1"));
    }
}
