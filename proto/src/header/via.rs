//! The Via header (RFC 3261 §20.42, §18.2.2, RFC 3581 rport): where responses go.

use crate::syntax::{Params, SyntaxError, skip_ws, token_end, unexpected};
use crate::uri::Host;

/// One via-parm, borrowed from the header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via<'a> {
    /// Protocol name, normally `SIP`.
    pub protocol: &'a str,
    /// Protocol version, normally `2.0`.
    pub version: &'a str,
    /// Transport token (`UDP`, `TCP`, `TLS`, `WS`, or any extension).
    pub transport: &'a str,
    /// The sent-by host as written (IPv6 in brackets).
    pub host: &'a str,
    /// The sent-by port, if given.
    pub port: Option<u16>,
    /// The via-params.
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    /// Parses one via-parm: `sent-protocol LWS sent-by *( SEMI via-params )`.
    pub fn parse(s: &'a str) -> Result<Via<'a>, SyntaxError> {
        let b = s.as_bytes();
        let mut i = skip_ws(s, 0);
        let mut parts = [""; 3];
        for (n, part) in parts.iter_mut().enumerate() {
            if n > 0 {
                i = skip_ws(s, i);
                if b.get(i) != Some(&b'/') {
                    return Err(unexpected(s, i, "'/' in sent-protocol"));
                }
                i = skip_ws(s, i + 1);
            }
            let e = token_end(s, i);
            if e == i {
                return Err(unexpected(s, i, "sent-protocol token"));
            }
            *part = &s[i..e];
            i = e;
        }
        let ws = skip_ws(s, i);
        if ws == i {
            return Err(unexpected(s, i, "whitespace before sent-by"));
        }
        i = ws;
        let host_start = i;
        let host_end = if b.get(i) == Some(&b'[') {
            match b[i..].iter().position(|&c| c == b']') {
                Some(p) => i + p + 1,
                None => return Err(unexpected(s, s.len(), "']' closing the IPv6 reference")),
            }
        } else {
            crate::charclass::span(b, i, crate::charclass::VIA_HOST)
        };
        let host = &s[host_start..host_end];
        if host.is_empty() {
            return Err(unexpected(s, host_start, "sent-by host"));
        }
        Host::validate(host).map_err(SyntaxError::Uri)?;
        i = skip_ws(s, host_end);
        let mut port = None;
        if b.get(i) == Some(&b':') {
            i = skip_ws(s, i + 1);
            let mut j = i;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            port = Some(crate::syntax::parse_u64(&s[i..j], u64::from(u16::MAX))? as u16);
            i = j;
        }
        // The parameters with a grammar of their own are checked in the
        // same pass that validates the list.
        let params = Params::parse_with(s, i, |name, value| {
            let Some(v) = value else { return Ok(()) };
            if name.eq_ignore_ascii_case("received") {
                // RFC 3261 allows IPv4address / IPv6address; RFC 5118 §4.5
                // says receivers should also accept an IPv6 reference.
                let bare = v.trim_start_matches('[').trim_end_matches(']');
                let ok = if bare.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
                    crate::uri::ipv4(bare).is_some()
                } else {
                    bare.parse::<std::net::Ipv6Addr>().is_ok()
                };
                if !ok {
                    return Err(unexpected(v, 0, "IP address in received"));
                }
            } else if name.eq_ignore_ascii_case("rport") {
                crate::syntax::parse_u64(v, u64::from(u16::MAX))?;
            } else if name.eq_ignore_ascii_case("ttl") {
                crate::syntax::parse_u64(v, 255)?;
            }
            Ok(())
        })?;
        let via = Via {
            protocol: parts[0],
            version: parts[1],
            transport: parts[2],
            host,
            port,
            params,
        };
        Ok(via)
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }

    /// True when the branch carries the RFC 3261 magic cookie `z9hG4bK` and
    /// something after it (a bare cookie identifies nothing, RFC 4475 §3.2.1).
    pub fn is_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > 7 && b.starts_with("z9hG4bK"))
    }

    /// The received parameter.
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }

    /// `rport`: `Some(None)` when present without a value (a request asking
    /// for it), `Some(Some(port))` when filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// The maddr parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }

    /// The ttl parameter.
    pub fn ttl(&self) -> Option<u8> {
        self.params
            .get("ttl")
            .flatten()
            .and_then(|t| t.parse().ok())
    }

    /// The sent-by port, or the transport's default (5061 for TLS, else 5060).
    pub fn port_or_default(&self) -> u16 {
        self.port
            .unwrap_or(if self.transport.eq_ignore_ascii_case("TLS") {
                5061
            } else {
                5060
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_spaces_around_slashes() {
        let v = Via::parse("SIP  /   2.0 /UDP     192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!((v.protocol, v.version, v.transport), ("SIP", "2.0", "UDP"));
        assert_eq!(v.host, "192.0.2.2");
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert!(!v.is_rfc3261_branch());
    }

    #[test]
    fn params_and_ipv6() {
        let v = Via::parse("SIP/2.0/TCP [2001:db8::9:1]:5070;branch=z9hG4bKas3-111;received=2001:db8::9:255;rport=5071").unwrap();
        assert_eq!(v.host, "[2001:db8::9:1]");
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.received(), Some("2001:db8::9:255"));
        assert_eq!(v.rport(), Some(Some(5071)));
        assert!(v.is_rfc3261_branch());
        let v = Via::parse("SIP/2.0/UDP h.example.com;rport;received=[2001:db8::9:255]").unwrap();
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.port_or_default(), 5060);
    }

    #[test]
    fn rejects() {
        for bad in [
            "SIP/2.0/UDP 192.0.2.15;;",
            "SIP/2.0/UDP",
            "SIP/2.0 192.0.2.1",
            "SIP/2.0/UDP 192.0.2.1:99999",
            "SIP/2.0/UDP host;received=nothost",
            "SIP/2.0/UDP [2001:db8::1",
            "SIP/2.0/UDP 192.0.2.1 junk",
        ] {
            assert!(Via::parse(bad).is_err(), "{bad}");
        }
    }
}
