//! SIP/SIPS URIs (RFC 3261 §19, §25; RFC 5118 IPv6): parsing, serialization,
//! the §19.1.4 comparison rules, and the canonical AOR (§10.3) the overlay
//! keys its records on.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// What is wrong with a URI, and where (byte offset).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// The URI is empty.
    #[error("empty URI")]
    Empty,
    /// No `scheme:` prefix.
    #[error("missing or invalid scheme")]
    Scheme,
    /// A character not allowed at that place.
    #[error("invalid character {ch:?} in {part} at offset {at}")]
    Char {
        /// The character.
        ch: char,
        /// Which part of the URI.
        part: &'static str,
        /// Byte offset.
        at: usize,
    },
    /// A `%` not followed by two hex digits.
    #[error("bad %-escape in {part} at offset {at}")]
    Escape {
        /// Which part of the URI.
        part: &'static str,
        /// Byte offset.
        at: usize,
    },
    /// The host is missing or malformed.
    #[error("invalid host {0:?}")]
    Host(String),
    /// The port is not a number in 0–65535.
    #[error("invalid port {0:?}")]
    Port(String),
    /// A parameter with an empty name.
    #[error("empty URI parameter at offset {0}")]
    EmptyParam(usize),
    /// A header without `name=`.
    #[error("malformed URI header at offset {0}")]
    Header(usize),
}

/// Any URI: SIP/SIPS parsed, other schemes kept as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Uri {
    /// `sip:` or `sips:`.
    Sip(SipUri),
    /// Any other absoluteURI (`tel:`, `urn:`, unknown schemes).
    Other(AbsoluteUri),
}

/// A non-SIP absolute URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AbsoluteUri {
    scheme: String,
    rest: String,
}

impl AbsoluteUri {
    /// The scheme, as written.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// Everything after `scheme:`.
    pub fn rest(&self) -> &str {
        &self.rest
    }
}

/// A host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A domain name, as written.
    Domain(String),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 reference (written in brackets).
    V6(Ipv6Addr),
}

/// A SIP or SIPS URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SipUri {
    /// `sips:`.
    pub secure: bool,
    /// The user part as written (escapes kept).
    pub user: Option<String>,
    /// The password as written.
    pub password: Option<String>,
    /// The host.
    pub host: Host,
    /// The port.
    pub port: Option<u16>,
    /// uri-parameters in order, as written.
    pub params: Vec<(String, Option<String>)>,
    /// URI headers (`?h=v&…`), as written.
    pub headers: Vec<(String, String)>,
}

/// A canonical address of record: `sip:user@host` (§10.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Aor(String);

const fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')')
}
const fn user_char(b: u8) -> bool {
    unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/')
}
const fn password_char(b: u8) -> bool {
    unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',')
}
const fn param_char(b: u8) -> bool {
    unreserved(b) || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
}
const fn header_char(b: u8) -> bool {
    unreserved(b) || matches!(b, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$')
}
/// absoluteURI characters after the scheme (reserved / unreserved / escaped).
const fn uric(b: u8) -> bool {
    unreserved(b) || matches!(b, b';' | b'/' | b'?' | b':' | b'@' | b'&' | b'=' | b'+' | b'$' | b',' | b'%' | b'[' | b']' | b'#')
}

fn check(s: &str, base: usize, part: &'static str, ok: fn(u8) -> bool) -> Result<(), UriError> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                || !b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
            {
                return Err(UriError::Escape { part, at: base + i });
            }
            i += 3;
        } else if ok(b[i]) {
            i += 1;
        } else {
            let ch = s[i..].chars().next().unwrap_or('?');
            return Err(UriError::Char { ch, part, at: base + i });
        }
    }
    Ok(())
}

/// Decodes `%XX` escapes (input already validated).
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hex(b[i + 1]) * 16 + hex(b[i + 2]));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

impl Host {
    /// Parses `hostname / IPv4address / "[" IPv6address "]"`.
    pub fn parse(s: &str) -> Result<Host, UriError> {
        let bad = || UriError::Host(s.chars().take(64).collect());
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or_else(bad)?;
            return inner.parse::<Ipv6Addr>().map(Host::V6).map_err(|_| bad());
        }
        if s.is_empty() {
            return Err(bad());
        }
        if s.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
            if let Ok(v4) = s.parse::<Ipv4Addr>() {
                return Ok(Host::V4(v4));
            }
        }
        let name = s.strip_suffix('.').unwrap_or(s);
        let ok = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !ok {
            return Err(bad());
        }
        Ok(Host::Domain(s.to_owned()))
    }

    /// Lower-cased text form (IPv6 in brackets, canonical).
    pub fn canonical(&self) -> String {
        match self {
            Host::Domain(d) => d.to_ascii_lowercase(),
            Host::V4(a) => a.to_string(),
            Host::V6(a) => format!("[{a}]"),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

impl Uri {
    /// Parses any absolute URI; `sip:`/`sips:` are parsed fully.
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        if s.is_empty() {
            return Err(UriError::Empty);
        }
        let colon = s.find(':').ok_or(UriError::Scheme)?;
        let scheme = &s[..colon];
        let sb = scheme.as_bytes();
        if sb.is_empty()
            || !sb[0].is_ascii_alphabetic()
            || !sb.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        {
            return Err(UriError::Scheme);
        }
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            return SipUri::parse(s).map(Uri::Sip);
        }
        let rest = &s[colon + 1..];
        if rest.is_empty() {
            return Err(UriError::Empty);
        }
        check(rest, colon + 1, "URI", uric)?;
        Ok(Uri::Other(AbsoluteUri {
            scheme: scheme.to_owned(),
            rest: rest.to_owned(),
        }))
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            Uri::Other(_) => None,
        }
    }

    /// The scheme.
    pub fn scheme(&self) -> &str {
        match self {
            Uri::Sip(u) if u.secure => "sips",
            Uri::Sip(_) => "sip",
            Uri::Other(o) => &o.scheme,
        }
    }
}

impl SipUri {
    /// Parses a `sip:` or `sips:` URI.
    pub fn parse(s: &str) -> Result<SipUri, UriError> {
        let (secure, start) = if s.len() >= 5 && s[..5].eq_ignore_ascii_case("sips:") {
            (true, 5)
        } else if s.len() >= 4 && s[..4].eq_ignore_ascii_case("sip:") {
            (false, 4)
        } else {
            return Err(UriError::Scheme);
        };
        let rest = &s[start..];
        if rest.is_empty() {
            return Err(UriError::Host(String::new()));
        }
        // userinfo ends at the first '@' (it cannot appear unescaped elsewhere).
        let (user, password, hostpart, hp_at) = match rest.find('@') {
            Some(at) => {
                let info = &rest[..at];
                let (u, p) = match info.find(':') {
                    Some(c) => (&info[..c], Some(&info[c + 1..])),
                    None => (info, None),
                };
                if u.is_empty() {
                    return Err(UriError::Char { ch: '@', part: "user", at: start });
                }
                check(u, start, "user", user_char)?;
                if let Some(p) = p {
                    check(p, start + u.len() + 1, "password", password_char)?;
                }
                (Some(u.to_owned()), p.map(str::to_owned), &rest[at + 1..], start + at + 1)
            }
            None => (None, None, rest, start),
        };
        let hb = hostpart.as_bytes();
        // host ends at ':' (port), ';' (params), '?' (headers), after ']' for IPv6.
        let host_end = if hb.first() == Some(&b'[') {
            hostpart.find(']').map(|p| p + 1).ok_or_else(|| UriError::Host(hostpart.chars().take(64).collect()))?
        } else {
            hb.iter().position(|&c| matches!(c, b':' | b';' | b'?')).unwrap_or(hb.len())
        };
        let host = Host::parse(&hostpart[..host_end])?;
        let mut i = host_end;
        let mut port = None;
        if hb.get(i) == Some(&b':') {
            let pe = hb[i + 1..]
                .iter()
                .position(|&c| matches!(c, b';' | b'?'))
                .map_or(hb.len(), |p| i + 1 + p);
            let ptxt = &hostpart[i + 1..pe];
            if ptxt.is_empty() || !ptxt.bytes().all(|c| c.is_ascii_digit()) || ptxt.len() > 5 {
                return Err(UriError::Port(ptxt.chars().take(16).collect()));
            }
            port = Some(ptxt.parse::<u16>().map_err(|_| UriError::Port(ptxt.to_owned()))?);
            i = pe;
        }
        let mut params = Vec::new();
        while hb.get(i) == Some(&b';') {
            let pe = hb[i + 1..]
                .iter()
                .position(|&c| matches!(c, b';' | b'?'))
                .map_or(hb.len(), |p| i + 1 + p);
            let p = &hostpart[i + 1..pe];
            let (n, v) = match p.find('=') {
                Some(eq) => (&p[..eq], Some(&p[eq + 1..])),
                None => (p, None),
            };
            if n.is_empty() {
                return Err(UriError::EmptyParam(hp_at + i));
            }
            check(n, hp_at + i + 1, "parameter", param_char)?;
            if let Some(v) = v {
                check(v, hp_at + i + 2 + n.len(), "parameter", param_char)?;
            }
            params.push((n.to_owned(), v.map(str::to_owned)));
            i = pe;
        }
        let mut headers = Vec::new();
        if hb.get(i) == Some(&b'?') {
            for h in hostpart[i + 1..].split('&') {
                let (n, v) = h.split_once('=').ok_or(UriError::Header(hp_at + i))?;
                if n.is_empty() {
                    return Err(UriError::Header(hp_at + i));
                }
                check(n, hp_at + i, "header", header_char)?;
                check(v, hp_at + i, "header", header_char)?;
                headers.push((n.to_owned(), v.to_owned()));
            }
            i = hb.len();
        }
        if i != hb.len() {
            let ch = hostpart[i..].chars().next().unwrap_or('?');
            return Err(UriError::Char { ch, part: "URI", at: hp_at + i });
        }
        Ok(SipUri {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// A URI parameter (case-insensitive name): `Some(None)` when valueless.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// `transport`.
    pub fn transport(&self) -> Option<&str> {
        self.param("transport").flatten()
    }

    /// `maddr`.
    pub fn maddr(&self) -> Option<&str> {
        self.param("maddr").flatten()
    }

    /// `lr` (loose routing).
    pub fn lr(&self) -> bool {
        self.param("lr").is_some()
    }

    /// `user` parameter.
    pub fn user_param(&self) -> Option<&str> {
        self.param("user").flatten()
    }

    /// `ttl`.
    pub fn ttl(&self) -> Option<u8> {
        self.param("ttl").flatten().and_then(|t| t.parse().ok())
    }

    /// `method`.
    pub fn method(&self) -> Option<&str> {
        self.param("method").flatten()
    }

    /// The user part with `%XX` decoded (may contain NUL).
    pub fn user_unescaped(&self) -> Option<Vec<u8>> {
        self.user.as_deref().map(unescape)
    }

    /// RFC 3261 §19.1.4 equivalence.
    pub fn equivalent(&self, o: &SipUri) -> bool {
        if self.secure != o.secure {
            return false;
        }
        if self.user.as_deref().map(unescape) != o.user.as_deref().map(unescape)
            || self.password.as_deref().map(unescape) != o.password.as_deref().map(unescape)
        {
            return false;
        }
        let host_eq = match (&self.host, &o.host) {
            (Host::Domain(a), Host::Domain(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a == b,
        };
        if !host_eq || self.port != o.port {
            return false;
        }
        let pval = |u: &SipUri, n: &str| u.param(n).map(|v| v.map(|v| unescape(v).to_ascii_lowercase()));
        for special in ["user", "ttl", "method", "maddr", "transport"] {
            if pval(self, special) != pval(o, special) {
                return false;
            }
        }
        for (n, _) in &self.params {
            if o.param(n).is_some() && pval(self, n) != pval(o, n) {
                return false;
            }
        }
        let hmatch = |a: &SipUri, b: &SipUri| {
            a.headers.iter().all(|(n, v)| {
                b.headers
                    .iter()
                    .any(|(m, w)| unescape(n).eq_ignore_ascii_case(&unescape(m)) && unescape(v) == unescape(w))
            })
        };
        hmatch(self, o) && hmatch(o, self)
    }

    /// The canonical AOR (§10.3): scheme, unescaped-then-canonically-escaped
    /// user, lower-cased host; no password, port, parameters or headers.
    pub fn aor(&self) -> Aor {
        let mut s = String::from(if self.secure { "sips:" } else { "sip:" });
        if let Some(u) = self.user_unescaped() {
            for b in u {
                if user_char(b) && b != b'%' {
                    s.push(b as char);
                } else {
                    s.push_str(&format!("%{b:02X}"));
                }
            }
            s.push('@');
        }
        s.push_str(&self.host.canonical());
        Aor(s)
    }
}

impl Aor {
    /// Parses a SIP URI and canonicalises it.
    pub fn parse(s: &str) -> Result<Aor, UriError> {
        SipUri::parse(s).map(|u| u.aor())
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Aor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        for (n, v) in &self.params {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        for (i, (n, v)) in self.headers.iter().enumerate() {
            write!(f, "{}{n}={v}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

impl fmt::Display for AbsoluteUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scheme, self.rest)
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => u.fmt(f),
            Uri::Other(o) => o.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eq(a: &str, b: &str) -> bool {
        SipUri::parse(a).unwrap().equivalent(&SipUri::parse(b).unwrap())
    }

    #[test]
    fn rfc3261_19_1_4_equivalent() {
        assert!(eq("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"));
        assert!(eq("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"));
        assert!(eq("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"));
        assert!(eq("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"));
        assert!(eq("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com", "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"));
        assert!(eq("sip:alice@atlanta.com?subject=project%20x&priority=urgent", "sip:alice@atlanta.com?priority=urgent&subject=project%20x"));
    }

    #[test]
    fn rfc3261_19_1_4_not_equivalent() {
        assert!(!eq("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"));
        assert!(!eq("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"));
        assert!(!eq("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"));
        assert!(!eq("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"));
        assert!(!eq("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"));
        assert!(!eq("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"));
        assert!(!eq("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"));
        assert!(!eq("sip:a@b", "sips:a@b"));
    }

    #[test]
    fn examples_round_trip() {
        for u in [
            "sip:alice@atlanta.com",
            "sip:alice:secretword@atlanta.com;transport=tcp",
            "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:+1-212-555-1212:1234@gateway.com;user=phone",
            "sips:1212@gateway.com",
            "sip:alice@192.0.2.4",
            "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
            "sip:alice;day=tuesday@atlanta.com",
            "sip:[2001:db8::10]:5070",
            "sip:user;par=u%40example.net@example.com",
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        ] {
            let p = Uri::parse(u).unwrap_or_else(|e| panic!("{u}: {e}"));
            assert_eq!(p.to_string(), u);
            assert_eq!(Uri::parse(&p.to_string()).unwrap(), p);
        }
    }

    #[test]
    fn rfc5118_hosts() {
        let u = SipUri::parse("sip:[2001:db8::10:5070]").unwrap();
        assert_eq!(u.port, None);
        assert_eq!(u.host, Host::V6("2001:db8::10:5070".parse().unwrap()));
        assert_eq!(SipUri::parse("sip:[2001:db8::10]:5070").unwrap().port, Some(5070));
        assert!(SipUri::parse("sip:[2001:db8:::192.0.2.1]").is_err());
        assert!(SipUri::parse("sip:[2001:db8::192.0.2.1]").is_ok());
        assert!(SipUri::parse("sip:user@2001:db8::10").is_err());
        assert!(SipUri::parse("sip:[::ffff:192.0.2.10]").is_ok());
    }

    #[test]
    fn aor_canonical() {
        let a = Aor::parse("sip:%61lice@AtLanTa.CoM:5070;transport=tcp?subject=x").unwrap();
        assert_eq!(a.as_str(), "sip:alice@atlanta.com");
        let n1 = Aor::parse("sip:null-%00-null@example.com").unwrap();
        let n2 = Aor::parse("sip:null-%00%00-null@example.com").unwrap();
        assert_eq!(n1.as_str(), "sip:null-%00-null@example.com");
        assert_ne!(n1, n2);
        assert_eq!(Aor::parse("sip:sip%3Auser%40example.com@example.com").unwrap().as_str(), "sip:sip%3Auser%40example.com@example.com");
        assert_eq!(Aor::parse("sips:Bob@[2001:DB8::1]").unwrap().as_str(), "sips:Bob@[2001:db8::1]");
    }

    #[test]
    fn garbage_is_rejected_without_panic() {
        for bad in ["", "sip:", "sip:@", "sip:user@", "sip:a b", "sip:[::1", "sip:host:99999", "sip:host:", "sip:ho%st", "sip:h;;", "sip:h;=x", "sip:h?x", "nocolon", "1x:abc", "<sip:a@b>"] {
            assert!(Uri::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let seed = "sips:us%41er:pw@[2001:db8::1]:5061;transport=tls;lr?h=v&i=w";
        let specials = [b'@', b':', b';', b'?', b'[', b']', b'%', b' ', 0x80];
        for cut in 0..=seed.len() {
            if let Ok(u) = Uri::parse(&seed[..cut]) {
                assert_eq!(Uri::parse(&u.to_string()).unwrap(), u);
            }
        }
        for i in 0..seed.len() {
            for &c in &specials {
                let mut b = seed.as_bytes().to_vec();
                b[i] = c;
                if let Ok(s) = std::str::from_utf8(&b) {
                    if let Ok(u) = Uri::parse(s) {
                        assert_eq!(Uri::parse(&u.to_string()).unwrap(), u, "{s}");
                    }
                }
            }
        }
    }
}
