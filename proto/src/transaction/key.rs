//! Transaction matching (RFC 3261 §17.1.3, §17.2.3), with the RFC 2543
//! fallback for requests whose branch lacks the `z9hG4bK` cookie.

use crate::message::{Request, Response};
use crate::method::Method;

/// Identifies a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TransactionKey {
    /// Server side, RFC 3261: branch, sent-by and method (ACK counts as INVITE).
    Server {
        /// Top Via branch.
        branch: String,
        /// Top Via sent-by, lower-cased `host:port`.
        sent_by: String,
        /// Method (INVITE for ACK).
        method: Method,
    },
    /// Server side, RFC 2543 fallback.
    Server2543 {
        /// Request-URI text.
        uri: String,
        /// From tag.
        from_tag: String,
        /// Call-ID.
        call_id: String,
        /// CSeq number.
        cseq: u32,
        /// Method (INVITE for ACK).
        method: Method,
        /// Top Via, as text.
        via: String,
    },
    /// Client side: branch of the Via we added, and the CSeq method.
    Client {
        /// Top Via branch.
        branch: String,
        /// CSeq method.
        method: Method,
    },
}

fn ack_as_invite(m: &Method) -> Method {
    if *m == Method::ACK {
        Method::INVITE
    } else {
        m.clone()
    }
}

impl TransactionKey {
    /// The server transaction a request belongs to (`None` without Via or CSeq).
    pub fn server(req: &Request) -> Option<TransactionKey> {
        Self::server_as(req, ack_as_invite(&req.method))
    }

    /// The INVITE server transaction a CANCEL targets (§9.2).
    pub fn cancel_target(cancel: &Request) -> Option<TransactionKey> {
        Self::server_as(cancel, Method::INVITE)
    }

    fn server_as(req: &Request, method: Method) -> Option<TransactionKey> {
        let via = req.headers.top_via()?.ok()?;
        if via.is_rfc3261_branch() {
            return Some(TransactionKey::Server {
                branch: via.branch()?.to_owned(),
                sent_by: format!(
                    "{}:{}",
                    via.host.to_ascii_lowercase(),
                    via.port_or_default()
                ),
                method,
            });
        }
        let cseq = req.headers.cseq()?.ok()?;
        let from_tag = req.headers.from()?.ok()?.tag().unwrap_or("").to_owned();
        Some(TransactionKey::Server2543 {
            uri: req.uri.to_string(),
            from_tag,
            call_id: req.headers.call_id()?.to_owned(),
            cseq: cseq.seq,
            method,
            via: req
                .headers
                .list(crate::header::StdHeader::Via)
                .next()?
                .ok()?
                .to_owned(),
        })
    }

    /// The client transaction a response belongs to.
    pub fn client(resp: &Response) -> Option<TransactionKey> {
        let via = resp.headers.top_via()?.ok()?;
        let cseq = resp.headers.cseq()?.ok()?;
        Some(TransactionKey::Client {
            branch: via.branch()?.to_owned(),
            method: cseq.method,
        })
    }

    /// The client key of a request we send (its top Via is ours).
    pub fn client_for(req: &Request) -> Option<TransactionKey> {
        let via = req.headers.top_via()?.ok()?;
        Some(TransactionKey::Client {
            branch: via.branch()?.to_owned(),
            method: req.method.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn req(s: &str) -> Request {
        match Message::parse(s.as_bytes().to_vec()).unwrap() {
            Message::Request(r) => r,
            _ => unreachable!(),
        }
    }

    const INV: &str = "INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP Pc.Example:5060;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=f\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";

    #[test]
    fn ack_and_cancel_match_invite() {
        let inv = TransactionKey::server(&req(INV)).unwrap();
        let ack = TransactionKey::server(&req(&INV
            .replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
            .replace("INVITE sip", "ACK sip")))
        .unwrap();
        assert_eq!(inv, ack);
        let cancel = req(&INV
            .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
            .replace("INVITE sip", "CANCEL sip"));
        assert_ne!(TransactionKey::server(&cancel).unwrap(), inv);
        assert_eq!(TransactionKey::cancel_target(&cancel).unwrap(), inv);
        // sent-by compared case-insensitively with the default port
        let other = req(&INV.replace("Pc.Example:5060", "pc.example"));
        assert_eq!(TransactionKey::server(&other).unwrap(), inv);
    }

    #[test]
    fn rfc2543_fallback() {
        let old = INV.replace(";branch=z9hG4bK1", "");
        let k = TransactionKey::server(&req(&old)).unwrap();
        assert!(matches!(k, TransactionKey::Server2543 { .. }));
        let ack = old
            .replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
            .replace("INVITE sip", "ACK sip");
        assert_eq!(TransactionKey::server(&req(&ack)).unwrap(), k);
        let next = old.replace("CSeq: 1 INVITE", "CSeq: 2 INVITE");
        assert_ne!(TransactionKey::server(&req(&next)).unwrap(), k);
    }
}
