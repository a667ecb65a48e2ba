//! SIP/SIPS URIs (RFC 3261 §19, RFC 5118): parsing, serialization, §19.1.4
//! comparison, and the canonical address-of-record (§10.3) the overlay keys on.
//! Parsing never panics on arbitrary input; any non-ASCII character is invalid.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The part of a URI a [`UriError`] refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UriPart {
    /// The scheme before the first ':'.
    Scheme,
    /// The user (or telephone-subscriber) part of the userinfo.
    User,
    /// The password part of the userinfo.
    Password,
    /// The host name or IP address.
    Host,
    /// The port after the host.
    Port,
    /// A uri-parameter name.
    ParamName,
    /// A uri-parameter value.
    ParamValue,
    /// A header name after '?' or '&'.
    HeaderName,
    /// A header value after '='.
    HeaderValue,
    /// Everything after the ':' of a non-SIP absoluteURI.
    Body,
}

impl fmt::Display for UriPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UriPart::Scheme => "scheme",
            UriPart::User => "user",
            UriPart::Password => "password",
            UriPart::Host => "host",
            UriPart::Port => "port",
            UriPart::ParamName => "parameter name",
            UriPart::ParamValue => "parameter value",
            UriPart::HeaderName => "header name",
            UriPart::HeaderValue => "header value",
            UriPart::Body => "URI body",
        })
    }
}

/// What is wrong with a URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriErrorKind {
    /// A character that is not allowed in this part (whitespace, non-ASCII, ...).
    #[error("invalid character {ch:?} in {part}")]
    InvalidChar { ch: char, part: UriPart },
    /// The input ends where this part still needs more characters.
    #[error("unexpected end of input in {0}")]
    UnexpectedEnd(UriPart),
    /// A part that must contain at least one character is empty.
    #[error("empty {0}")]
    Empty(UriPart),
    /// There is no ':' after the scheme.
    #[error("missing ':' after scheme")]
    MissingColon,
    /// A SIP URI was required but the scheme is neither `sip` nor `sips`.
    #[error("scheme is not sip or sips")]
    NotSip,
    /// A '%' is not followed by two hex digits.
    #[error("malformed %-escape in {0}")]
    BadEscape(UriPart),
    /// An IPv6 reference lacks its closing ']'.
    #[error("missing ']' after IPv6 reference")]
    UnclosedBracket,
    /// The text between '[' and ']' is not an IPv6 address.
    #[error("invalid IPv6 address")]
    InvalidIpv6,
    /// A host made of digits and dots is not a dotted-quad IPv4 address.
    #[error("invalid IPv4 address")]
    InvalidIpv4,
    /// A host name has an empty label (e.g. "a..b").
    #[error("empty label in host name")]
    EmptyLabel,
    /// The port does not fit in 16 bits.
    #[error("port out of range")]
    PortOutOfRange,
}

/// A URI parse error: what is wrong and the byte offset where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at offset {offset}")]
pub struct UriError {
    kind: UriErrorKind,
    offset: usize,
}

impl UriError {
    /// What is wrong.
    pub fn kind(&self) -> UriErrorKind {
        self.kind
    }

    /// Byte offset in the input where the problem was found.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

/// Any URI that may appear in a SIP message (Request-URI, To, From, Contact, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Uri {
    /// A `sip:` or `sips:` URI.
    Sip(SipUri),
    /// Any other absoluteURI (tel:, urn:, unknown schemes), kept opaque.
    Other(AbsoluteUri),
}

/// A non-SIP absoluteURI (RFC 3261 §25.1): scheme plus opaque rest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AbsoluteUri {
    scheme: String,
    rest: String,
}

/// A SIP or SIPS URI. Strings are kept as received (escapes verbatim);
/// derived equality is structural, use [`SipUri::equivalent`] for §19.1.4.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SipUri {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// User or telephone-subscriber, escaped form as received.
    pub user: Option<String>,
    /// Password, escaped form as received (only printed when `user` is set).
    pub password: Option<String>,
    /// Host name or IP address.
    pub host: Host,
    /// Explicit port, if any.
    pub port: Option<u16>,
    /// uri-parameters in order, names and values as received.
    pub params: Vec<(String, Option<String>)>,
    /// Headers after '?', names and values as received (escaped).
    pub headers: Vec<(String, String)>,
}

/// The host of a SIP URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A host name, case as received.
    Domain(String),
    /// A dotted-quad IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 reference; printed canonically inside brackets.
    V6(Ipv6Addr),
}

/// A canonical address-of-record (RFC 3261 §10.3), e.g. `sip:alice@atlanta.com`:
/// scheme, canonically escaped user, lower-cased host; no port, params or headers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Aor(String);

// ---------------------------------------------------------------------------
// Character classes (RFC 3261 §25.1)

#[inline(always)]
fn is_user(b: u8) -> bool {
    crate::charclass::is(b, crate::charclass::USER)
}

#[inline(always)]
fn is_scheme(b: u8) -> bool {
    crate::charclass::is(b, crate::charclass::SCHEME)
}

// ---------------------------------------------------------------------------
// Byte cursor. It only ever advances over ASCII bytes, so every position it
// slices at is a char boundary.

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn error_at(&self, kind: UriErrorKind, offset: usize) -> UriError {
        UriError { kind, offset }
    }

    fn error(&self, kind: UriErrorKind) -> UriError {
        self.error_at(kind, self.pos)
    }

    /// Error for the character under the cursor (or for running out of input).
    fn invalid(&self, part: UriPart) -> UriError {
        match self.s[self.pos..].chars().next() {
            Some(ch) => self.error(UriErrorKind::InvalidChar { ch, part }),
            None => self.error(UriErrorKind::UnexpectedEnd(part)),
        }
    }

    /// Succeeds at end of input or before one of `stops`.
    fn expect_stop(&self, stops: &[u8], part: UriPart) -> Result<(), UriError> {
        match self.peek() {
            None => Ok(()),
            Some(b) if stops.contains(&b) => Ok(()),
            Some(_) => Err(self.invalid(part)),
        }
    }

    /// Consumes ASCII bytes accepted by `class`.
    fn take_while(&mut self, class: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&class) {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    /// Consumes bytes in the character class `mask` (see [`crate::charclass`])
    /// and `%HH` escapes.
    fn escaped(&mut self, mask: u16, part: UriPart) -> Result<&'a str, UriError> {
        let start = self.pos;
        let bytes = self.s.as_bytes();
        let hex = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_hexdigit);
        loop {
            self.pos = crate::charclass::span(bytes, self.pos, mask);
            if self.peek() != Some(b'%') {
                break;
            }
            if !(hex(self.pos + 1) && hex(self.pos + 2)) {
                return Err(self.error(UriErrorKind::BadEscape(part)));
            }
            self.pos += 3;
        }
        Ok(&self.s[start..self.pos])
    }

    /// Parses `scheme ":"`.
    fn scheme(&mut self) -> Result<&'a str, UriError> {
        if !self.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
            return Err(match self.at_end() {
                true => self.error(UriErrorKind::Empty(UriPart::Scheme)),
                false => self.invalid(UriPart::Scheme),
            });
        }
        let scheme = self.take_while(is_scheme);
        if self.eat(b':') {
            Ok(scheme)
        } else if self.at_end() {
            Err(self.error(UriErrorKind::MissingColon))
        } else {
            Err(self.invalid(UriPart::Scheme))
        }
    }
}

/// `Some(secure)` if `scheme` is sip or sips (case-insensitive).
fn sip_scheme(scheme: &str) -> Option<bool> {
    if scheme.eq_ignore_ascii_case("sip") {
        Some(false)
    } else if scheme.eq_ignore_ascii_case("sips") {
        Some(true)
    } else {
        None
    }
}

/// A dotted-quad of digits (the caller checked the characters): four
/// octets of 1–3 digits, each at most 255, without leading zeros.
pub(crate) fn ipv4(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let (mut n, mut value, mut digits) = (0usize, 0u16, 0usize);
    let mut leading_zero = false;
    for &b in s.as_bytes() {
        if b == b'.' {
            if digits == 0 || n == 3 {
                return None;
            }
            octets[n] = u8::try_from(value).ok()?;
            (n, value, digits, leading_zero) = (n + 1, 0, 0, false);
        } else {
            if digits == 3 || leading_zero {
                return None;
            }
            leading_zero = digits == 0 && b == b'0';
            value = value * 10 + u16::from(b - b'0');
            digits += 1;
        }
    }
    if n != 3 || digits == 0 {
        return None;
    }
    octets[3] = u8::try_from(value).ok()?;
    Some(Ipv4Addr::from(octets))
}

/// A host borrowed from the text being parsed.
enum HostRef<'a> {
    Domain(&'a str),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl HostRef<'_> {
    fn to_owned(&self) -> Host {
        match self {
            HostRef::Domain(d) => Host::Domain((*d).to_owned()),
            HostRef::V4(a) => Host::V4(*a),
            HostRef::V6(a) => Host::V6(*a),
        }
    }
}

/// True when `name` starts with '.' or holds "..": eight bytes at a time,
/// since host names are long and dots are few.
fn has_empty_label(name: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    if name.first() == Some(&b'.') {
        return true;
    }
    let mut chunks = name.chunks_exact(8);
    let mut carry = 0u64; // high bit set when the previous chunk ended in '.'
    for chunk in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let t = u64::from_le_bytes(w) ^ (ONES * u64::from(b'.'));
        // Exactly the bytes equal to '.' get their high bit set.
        let dots = !(((t & LOW7) + LOW7) | t) & HIGH;
        if dots & ((dots << 8) | carry) != 0 {
            return true;
        }
        carry = dots >> 56;
    }
    let rest = chunks.remainder();
    let mut prev_dot = carry != 0;
    for &b in rest {
        let dot = b == b'.';
        if dot && prev_dot {
            return true;
        }
        prev_dot = dot;
    }
    false
}

fn parse_host<'a>(c: &mut Cursor<'a>) -> Result<HostRef<'a>, UriError> {
    let start = c.pos;
    if c.eat(b'[') {
        let addr = c.take_while(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if c.at_end() {
            return Err(c.error(UriErrorKind::UnclosedBracket));
        }
        if !c.eat(b']') {
            return Err(c.invalid(UriPart::Host));
        }
        let ip = addr
            .parse::<Ipv6Addr>()
            .map_err(|_| c.error_at(UriErrorKind::InvalidIpv6, start + 1))?;
        c.expect_stop(b":;?", UriPart::Host)?;
        return Ok(HostRef::V6(ip));
    }
    // The extent of the name; then whether it is all digits and dots (an
    // IPv4 address; a name starting with a letter is not) and whether a
    // label is empty (a '.' at the start or after another '.').
    let bytes = c.s.as_bytes();
    let end = crate::charclass::span(bytes, c.pos, crate::charclass::HOSTNAME);
    let name = &bytes[c.pos..end];
    let numeric = name
        .first()
        .is_some_and(|&b| b.is_ascii_digit() || b == b'.')
        && name.iter().all(|&b| b.is_ascii_digit() || b == b'.');
    let name_start = c.pos;
    c.pos = end;
    c.expect_stop(b":;?", UriPart::Host)?;
    if name.is_empty() {
        return Err(c.error_at(UriErrorKind::Empty(UriPart::Host), start));
    }
    if numeric {
        return ipv4(&c.s[name_start..end])
            .map(HostRef::V4)
            .ok_or_else(|| c.error_at(UriErrorKind::InvalidIpv4, start));
    }
    if has_empty_label(name) {
        let at = (0..name.len())
            .find(|&i| name[i] == b'.' && (i == 0 || name[i - 1] == b'.'))
            .unwrap_or(0);
        return Err(c.error_at(UriErrorKind::EmptyLabel, name_start + at));
    }
    Ok(HostRef::Domain(&c.s[name_start..end]))
}

fn parse_port(c: &mut Cursor<'_>) -> Result<u16, UriError> {
    let start = c.pos;
    let digits = c.take_while(|b| b.is_ascii_digit());
    c.expect_stop(b";?", UriPart::Port)?;
    if digits.is_empty() {
        return Err(c.error(UriErrorKind::Empty(UriPart::Port)));
    }
    digits
        .parse()
        .map_err(|_| c.error_at(UriErrorKind::PortOutOfRange, start))
}

/// Parses what follows `sip:` / `sips:`.
/// The parts of a SIP URI, borrowed; parameters and headers go to sinks so
/// that validating needs no allocation.
struct SipParts<'a> {
    user: Option<&'a str>,
    password: Option<&'a str>,
    host: HostRef<'a>,
    port: Option<u16>,
}

fn parse_sip_body(c: &mut Cursor<'_>, secure: bool) -> Result<SipUri, UriError> {
    let mut params = Vec::new();
    let mut headers = Vec::new();
    let p = scan_sip_body(
        c,
        |n, v| params.push((n.to_owned(), v.map(str::to_owned))),
        |n, v| headers.push((n.to_owned(), v.to_owned())),
    )?;
    Ok(SipUri {
        secure,
        user: p.user.map(str::to_owned),
        password: p.password.map(str::to_owned),
        host: p.host.to_owned(),
        port: p.port,
        params,
        headers,
    })
}

fn scan_sip_body<'a>(
    c: &mut Cursor<'a>,
    mut on_param: impl FnMut(&'a str, Option<&'a str>),
    mut on_header: impl FnMut(&'a str, &'a str),
) -> Result<SipParts<'a>, UriError> {
    use UriErrorKind::Empty;
    // '@' may appear nowhere but after the userinfo, so its presence decides.
    let (user, password) = if memchr::memchr(b'@', &c.s.as_bytes()[c.pos..]).is_some() {
        let user = c.escaped(crate::charclass::USER, UriPart::User)?;
        if user.is_empty() {
            return Err(match c.peek() {
                Some(b':' | b'@') => c.error(Empty(UriPart::User)),
                _ => c.invalid(UriPart::User),
            });
        }
        let password = match c.eat(b':') {
            true => Some(c.escaped(crate::charclass::PASSWORD, UriPart::Password)?),
            false => None,
        };
        if !c.eat(b'@') {
            let part = if password.is_some() {
                UriPart::Password
            } else {
                UriPart::User
            };
            return Err(c.invalid(part));
        }
        (Some(user), password)
    } else {
        (None, None)
    };
    let host = parse_host(c)?;
    let port = if c.eat(b':') {
        Some(parse_port(c)?)
    } else {
        None
    };

    while c.eat(b';') {
        let name = c.escaped(crate::charclass::PARAM, UriPart::ParamName)?;
        c.expect_stop(b"=;?", UriPart::ParamName)?;
        if name.is_empty() {
            return Err(c.error(Empty(UriPart::ParamName)));
        }
        let value = if c.eat(b'=') {
            let value = c.escaped(crate::charclass::PARAM, UriPart::ParamValue)?;
            c.expect_stop(b";?", UriPart::ParamValue)?;
            if value.is_empty() {
                return Err(c.error(Empty(UriPart::ParamValue)));
            }
            Some(value)
        } else {
            None
        };
        on_param(name, value);
    }

    if c.eat(b'?') {
        loop {
            let name = c.escaped(crate::charclass::HEADER, UriPart::HeaderName)?;
            if name.is_empty() && matches!(c.peek(), Some(b'=' | b'&') | None) {
                return Err(c.error(Empty(UriPart::HeaderName)));
            }
            if !c.eat(b'=') {
                return Err(c.invalid(UriPart::HeaderName));
            }
            let value = c.escaped(crate::charclass::HEADER, UriPart::HeaderValue)?;
            on_header(name, value);
            if !c.eat(b'&') {
                break;
            }
        }
    }
    if !c.at_end() {
        return Err(c.invalid(UriPart::HeaderValue));
    }
    Ok(SipParts {
        user,
        password,
        host,
        port,
    })
}

// ---------------------------------------------------------------------------
// Escaping helpers

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decodes `%HH` escapes; a malformed escape is kept literally.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let decoded = match (b[i], b.get(i + 1), b.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex_val(h).zip(hex_val(l)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match decoded {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

fn eq_unescaped(a: &str, b: &str) -> bool {
    unescape(a) == unescape(b)
}

fn eq_unescaped_ci(a: &str, b: &str) -> bool {
    unescape(a).eq_ignore_ascii_case(&unescape(b))
}

// ---------------------------------------------------------------------------
// Uri

impl Uri {
    /// Parses any absoluteURI; `sip:`/`sips:` (any case) become [`Uri::Sip`].
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        let mut c = Cursor::new(s);
        let scheme = c.scheme()?;
        match sip_scheme(scheme) {
            Some(secure) => parse_sip_body(&mut c, secure).map(Uri::Sip),
            None => AbsoluteUri::parse_body(&mut c, scheme).map(Uri::Other),
        }
    }

    /// Checks `s` exactly as [`Uri::parse`] does, without allocating.
    pub fn validate(s: &str) -> Result<(), UriError> {
        let mut c = Cursor::new(s);
        let scheme = c.scheme()?;
        match sip_scheme(scheme) {
            Some(_) => scan_sip_body(&mut c, |_, _| {}, |_, _| {}).map(drop),
            None => {
                let rest = c.escaped(crate::charclass::URIC, UriPart::Body)?;
                if !c.at_end() {
                    return Err(c.invalid(UriPart::Body));
                }
                if rest.is_empty() {
                    return Err(c.error(UriErrorKind::Empty(UriPart::Body)));
                }
                Ok(())
            }
        }
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            Uri::Other(_) => None,
        }
    }

    /// The scheme: "sip"/"sips" (lower case) or the other scheme as received.
    pub fn scheme(&self) -> &str {
        match self {
            Uri::Sip(u) => u.scheme(),
            Uri::Other(a) => a.scheme(),
        }
    }
}

impl FromStr for Uri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uri::parse(s)
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => u.fmt(f),
            Uri::Other(a) => a.fmt(f),
        }
    }
}

impl AbsoluteUri {
    /// Parses `scheme ":" 1*uric` (any scheme, including sip, is accepted here).
    pub fn parse(s: &str) -> Result<AbsoluteUri, UriError> {
        let mut c = Cursor::new(s);
        let scheme = c.scheme()?;
        Self::parse_body(&mut c, scheme)
    }

    fn parse_body(c: &mut Cursor<'_>, scheme: &str) -> Result<AbsoluteUri, UriError> {
        let rest = c.escaped(crate::charclass::URIC, UriPart::Body)?;
        if !c.at_end() {
            return Err(c.invalid(UriPart::Body));
        }
        if rest.is_empty() {
            return Err(c.error(UriErrorKind::Empty(UriPart::Body)));
        }
        Ok(AbsoluteUri {
            scheme: scheme.to_owned(),
            rest: rest.to_owned(),
        })
    }

    /// The scheme as received.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// Everything after the first ':'.
    pub fn rest(&self) -> &str {
        &self.rest
    }
}

impl fmt::Display for AbsoluteUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scheme, self.rest)
    }
}

// ---------------------------------------------------------------------------
// SipUri

/// Parameters that, when present in one URI, must be in the other (§19.1.4).
const MUST_MATCH_PARAMS: [&str; 5] = ["transport", "user", "ttl", "method", "maddr"];

fn param_values_eq(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => eq_unescaped_ci(a, b),
        (a, b) => a == b,
    }
}

impl SipUri {
    /// Parses a URI whose scheme is `sip` or `sips` (case-insensitive).
    pub fn parse(s: &str) -> Result<SipUri, UriError> {
        let mut c = Cursor::new(s);
        let scheme = c.scheme()?;
        let secure = sip_scheme(scheme).ok_or_else(|| c.error_at(UriErrorKind::NotSip, 0))?;
        parse_sip_body(&mut c, secure)
    }

    /// "sips" or "sip".
    pub fn scheme(&self) -> &'static str {
        if self.secure { "sips" } else { "sip" }
    }

    /// The first parameter named `name` (case-insensitive): `Some(None)` if it has no value.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    fn param_value(&self, name: &str) -> Option<&str> {
        self.param(name).flatten()
    }

    /// The `transport` parameter.
    pub fn transport(&self) -> Option<&str> {
        self.param_value("transport")
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&str> {
        self.param_value("maddr")
    }

    /// Whether the `lr` (loose routing) parameter is present.
    pub fn lr(&self) -> bool {
        self.param("lr").is_some()
    }

    /// The `user` parameter (e.g. "phone").
    pub fn user_param(&self) -> Option<&str> {
        self.param_value("user")
    }

    /// The `ttl` parameter, if present and a valid 0–255 number.
    pub fn ttl(&self) -> Option<u8> {
        self.param_value("ttl")?.parse().ok()
    }

    /// The `method` parameter.
    pub fn method(&self) -> Option<&str> {
        self.param_value("method")
    }

    /// The user with `%XX` escapes decoded (may contain any byte, NUL included).
    pub fn user_unescaped(&self) -> Option<Vec<u8>> {
        self.user.as_deref().map(unescape)
    }

    /// URI equivalence per RFC 3261 §19.1.4 (not transitive, by design of the RFC).
    pub fn equivalent(&self, other: &SipUri) -> bool {
        let userinfo_eq = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (Some(a), Some(b)) => eq_unescaped(a, b),
            (a, b) => a == b,
        };
        self.secure == other.secure
            && userinfo_eq(&self.user, &other.user)
            && userinfo_eq(&self.password, &other.password)
            && self.host.equivalent(&other.host)
            && self.port == other.port
            && self.params_equivalent(other)
            && self.headers_within(other)
            && other.headers_within(self)
    }

    fn params_equivalent(&self, other: &SipUri) -> bool {
        let must_match = |n: &str| MUST_MATCH_PARAMS.iter().any(|m| m.eq_ignore_ascii_case(n));
        let mine_ok =
            self.params
                .iter()
                .all(|(name, _)| match (self.param(name), other.param(name)) {
                    (Some(a), Some(b)) => param_values_eq(a, b),
                    _ => !must_match(name),
                });
        let theirs_ok = other
            .params
            .iter()
            .all(|(name, _)| !must_match(name) || self.param(name).is_some());
        mine_ok && theirs_ok
    }

    /// Every header of `self` appears in `other` with an equal value.
    fn headers_within(&self, other: &SipUri) -> bool {
        self.headers.iter().all(|(n, v)| {
            other
                .headers
                .iter()
                .any(|(n2, v2)| eq_unescaped_ci(n, n2) && eq_unescaped(v, v2))
        })
    }

    /// The canonical address-of-record (§10.3): scheme, user unescaped and
    /// re-escaped canonically, lower-cased host; nothing else.
    pub fn aor(&self) -> Aor {
        let mut s = String::from(self.scheme());
        s.push(':');
        if let Some(user) = &self.user {
            for b in unescape(user) {
                if is_user(b) {
                    s.push(b as char);
                } else {
                    s.push_str(&format!("%{b:02X}"));
                }
            }
            s.push('@');
        }
        match &self.host {
            Host::Domain(d) => s.push_str(&d.to_ascii_lowercase()),
            host => s.push_str(&host.to_string()),
        }
        Aor(s)
    }
}

impl FromStr for SipUri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SipUri::parse(s)
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme())?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(password) = &self.password {
                write!(f, ":{password}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        for (name, value) in &self.params {
            write!(f, ";{name}")?;
            if let Some(value) = value {
                write!(f, "={value}")?;
            }
        }
        for (i, (name, value)) in self.headers.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            write!(f, "{sep}{name}={value}")?;
        }
        Ok(())
    }
}

impl Host {
    /// Parses a whole `host` (hostname, IPv4 address or `[IPv6]` reference).
    pub fn parse(s: &str) -> Result<Host, UriError> {
        let mut c = Cursor::new(s);
        let h = parse_host(&mut c)?;
        if !c.at_end() {
            return Err(c.invalid(UriPart::Host));
        }
        Ok(h.to_owned())
    }

    /// Checks a whole `host` like [`Host::parse`], without allocating.
    pub fn validate(s: &str) -> Result<(), UriError> {
        let mut c = Cursor::new(s);
        parse_host(&mut c)?;
        if !c.at_end() {
            return Err(c.invalid(UriPart::Host));
        }
        Ok(())
    }

    /// §19.1.4 host comparison: case-insensitive names; an IP never equals a name.
    pub fn equivalent(&self, other: &Host) -> bool {
        match (self, other) {
            (Host::Domain(a), Host::Domain(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a == b,
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

// ---------------------------------------------------------------------------
// Aor

impl Aor {
    /// The canonical text, e.g. `sip:alice@atlanta.com`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses a SIP/SIPS URI and canonicalises it.
    pub fn parse(s: &str) -> Result<Aor, UriError> {
        SipUri::parse(s).map(|u| u.aor())
    }
}

impl From<&SipUri> for Aor {
    fn from(uri: &SipUri) -> Self {
        uri.aor()
    }
}

impl FromStr for Aor {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Aor::parse(s)
    }
}

impl fmt::Display for Aor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri {
        SipUri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn equiv(a: &str, b: &str) -> bool {
        let (a, b) = (sip(a), sip(b));
        assert_eq!(a.equivalent(&b), b.equivalent(&a), "asymmetric: {a} / {b}");
        a.equivalent(&b)
    }

    #[test]
    fn rfc3261_19_1_4_equivalent() {
        assert!(equiv(
            "sip:%61lice@atlanta.com;transport=TCP",
            "sip:alice@AtLanTa.CoM;Transport=tcp"
        ));
        assert!(equiv(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com;newparam=5"
        ));
        assert!(equiv(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com;security=on"
        ));
        assert!(equiv(
            "sip:carol@chicago.com;newparam=5",
            "sip:carol@chicago.com;security=on"
        ));
        assert!(equiv(
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"
        ));
        assert!(equiv(
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x"
        ));
    }

    #[test]
    fn rfc3261_19_1_4_not_equivalent() {
        assert!(!equiv(
            "SIP:ALICE@AtLanTa.CoM;Transport=udp",
            "sip:alice@AtLanTa.CoM;Transport=UDP"
        ));
        assert!(!equiv("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"));
        assert!(!equiv(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com;transport=udp"
        ));
        assert!(!equiv(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com:6000;transport=tcp"
        ));
        assert!(!equiv(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com?Subject=next%20meeting"
        ));
        assert!(!equiv(
            "sip:bob@phone21.boxesbybob.com",
            "sip:bob@192.0.2.4"
        ));
        // The intransitivity example: both equal sip:carol@chicago.com, not each other.
        assert!(!equiv(
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;security=off"
        ));
        assert!(!equiv("sip:alice@atlanta.com", "sips:alice@atlanta.com"));
        assert!(!equiv("sip:alice:a@atlanta.com", "sip:alice:A@atlanta.com"));
        assert!(equiv("sip:a@h?Subject=x%41", "sip:a@h?subject=xA"));
        assert!(!equiv("sip:a@h;lr", "sip:a@h;lr=on"));
    }

    #[test]
    fn rfc3261_19_1_3_examples_round_trip() {
        for s in [
            "sip:alice@atlanta.com",
            "sip:alice:secretword@atlanta.com;transport=tcp",
            "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:+1-212-555-1212:1234@gateway.com;user=phone",
            "sips:1212@gateway.com",
            "sip:alice@192.0.2.4",
            "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
            "sip:alice;day=tuesday@atlanta.com",
        ] {
            let u = Uri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(u.to_string(), s);
            assert_eq!(Uri::parse(&u.to_string()).unwrap(), u);
        }
        let u = sip("sip:+1-212-555-1212:1234@gateway.com;user=phone");
        assert_eq!(u.user.as_deref(), Some("+1-212-555-1212"));
        assert_eq!(u.password.as_deref(), Some("1234"));
        assert_eq!(u.user_param(), Some("phone"));
        let u = sip("sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com");
        assert_eq!(u.user, None);
        assert_eq!(u.method(), Some("REGISTER"));
        assert_eq!(u.headers, vec![("to".into(), "alice%40atlanta.com".into())]);
        let u = sip("SIPS:alice@Atlanta.com:5061;TTL=15;lr;maddr=239.255.255.1");
        assert!(u.secure && u.lr());
        assert_eq!(
            (u.port, u.ttl(), u.maddr()),
            (Some(5061), Some(15), Some("239.255.255.1"))
        );
        assert_eq!(u.param("Lr"), Some(None));
        assert_eq!(u.host, Host::Domain("Atlanta.com".into()));
    }

    #[test]
    fn rfc4475_uris() {
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        assert!(u.params.is_empty());
        assert_eq!(u.aor().as_str(), "sip:user;par=u%40example.net@example.com");

        let u = sip("sip:sip%3Auser%40example.com@example.com;other-param=summit");
        assert_eq!(u.user_unescaped().unwrap(), b"sip:user@example.com");
        assert!(SipUri::parse("sip:sip%3Auser%40example.com@example.com;;;").is_err());

        let one = sip("sip:null-%00-null@example.com");
        let two = sip("sip:null-%00%00-null@example.com");
        assert_eq!(one.user_unescaped().unwrap(), b"null-\0-null");
        assert_eq!(one.aor().as_str(), "sip:null-%00-null@example.com");
        assert_ne!(one.aor(), two.aor());
        assert!(!one.equivalent(&two));

        for bad in [
            "sip:user@example.com; lr",
            "sip: user@example.com",
            "sip:user@example.com ;lr",
            "sip:user@example.com>",
            "sip:user@example.com;bad\"param",
            "<sip:user@example.com>",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rfc5118_hosts() {
        let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let u = sip("sip:[2001:db8::10]");
        assert_eq!((u.host, u.port), (Host::V6(v6("2001:db8::10")), None));
        let u = sip("sip:[2001:db8::10:5070]");
        assert_eq!((u.host, u.port), (Host::V6(v6("2001:db8::10:5070")), None));
        let u = sip("sip:[2001:db8::10]:5070");
        assert_eq!((u.host, u.port), (Host::V6(v6("2001:db8::10")), Some(5070)));
        let u = sip("sip:alice@[2001:db8::192.0.2.1];transport=udp");
        assert_eq!(u.host, Host::V6(v6("2001:db8::c000:201")));
        assert_eq!(SipUri::parse(&u.to_string()).unwrap(), u);
        assert!(equiv("sip:[2001:db8::9:1]", "sip:[2001:db8::9:01]"));
        assert!(equiv("sip:[2001:db8::9:1]", "sip:[2001:DB8:0:0:0:0:9:1]"));
        for bad in [
            "sip:[2001:db8:::192.0.2.1]",
            "sip:[2001:db8::10",
            "sip:2001:db8::10",
            "sip:[2001:db8::10]5070",
            "sip:[::1",
            "sip:[]",
            "sip:[x::1]",
        ] {
            assert!(SipUri::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Aor::parse("sip:Bob@[2001:DB8::0:1]:5060").unwrap().as_str(),
            "sip:Bob@[2001:db8::1]"
        );
    }

    #[test]
    fn aor_canonicalisation() {
        let aor = Aor::parse("sip:%61lice@AtLanTa.CoM:5070;transport=tcp?subject=x").unwrap();
        assert_eq!(aor.as_str(), "sip:alice@atlanta.com");
        assert_eq!(aor, Aor::parse("sip:alice:pw@atlanta.com").unwrap());
        assert_eq!(
            Aor::parse("sips:a%2fb%20c@H").unwrap().to_string(),
            "sips:a/b%20c@h"
        );
        assert_eq!(
            Aor::parse("sip:192.0.2.4;lr").unwrap().as_str(),
            "sip:192.0.2.4"
        );
        assert!(Aor::parse("tel:+1234").is_err());
    }

    #[test]
    fn other_schemes() {
        let u = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(u.scheme(), "tel");
        assert!(u.as_sip().is_none());
        assert_eq!(
            u.to_string(),
            "tel:+1-201-555-0123;phone-context=example.com"
        );
        let Uri::Other(a) = Uri::parse("urn:service:sos").unwrap() else {
            panic!()
        };
        assert_eq!((a.scheme(), a.rest()), ("urn", "service:sos"));
        assert_eq!(Uri::parse("SIPS:a@b").unwrap().scheme(), "sips");
        for bad in [
            "tel:",
            "tel:+1 2",
            "1tel:x",
            "t@l:x",
            "http://a/<b>",
            "x:%4",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn garbage_is_rejected_with_located_errors() {
        for bad in [
            "",
            "sip",
            "sip:",
            "sip:@",
            "sip:user@",
            "sip:a b",
            "sip:[::1",
            "sip:host:99999",
            "sip:host:",
            "sip:ho%st",
            "sip:a..b",
            "sip:.",
            "sip:1.2.3",
            "sip:1.2.3.256",
            "sip:a;",
            "sip:a;=b",
            "sip:a;b=",
            "sip:a?",
            "sip:a?x",
            "sip:a?=1",
            "sip:a?x=1&",
            "sip::pw@h",
            "sip:u%4@h",
            "sip:u@h@i",
            "sip:u@h;p=%",
            "sip:h:12a",
            "sip:é@h",
            "sip:u@hé",
            "http:x",
        ] {
            assert!(SipUri::parse(bad).is_err(), "{bad:?} parsed");
        }
        let err = SipUri::parse("sip:a b").unwrap_err();
        assert_eq!(err.to_string(), "invalid character ' ' in host at offset 5");
        assert_eq!(err.offset(), 5);
        let err = SipUri::parse("sip:alice@atlanta.com:99999").unwrap_err();
        assert_eq!(
            (err.kind(), err.offset()),
            (UriErrorKind::PortOutOfRange, 22)
        );
        let err = SipUri::parse("sip:a;;").unwrap_err();
        assert_eq!(err.to_string(), "empty parameter name at offset 6");
        let err = SipUri::parse("sip:u%zz@h").unwrap_err();
        assert_eq!(err.to_string(), "malformed %-escape in user at offset 5");
        let err = SipUri::parse("tel:123").unwrap_err();
        assert_eq!(err.kind(), UriErrorKind::NotSip);
    }

    #[test]
    fn mutations_never_panic_and_round_trip() {
        let seeds = [
            "sip:alice:pw@atlanta.com:5060;transport=tcp;lr?subject=a%20b&x=",
            "sips:user;par=u%40example.net@[2001:db8::10]:5070;maddr=192.0.2.1",
            "sip:192.0.2.4;method=REGISTER?to=sip:bob%40biloxi.com",
            "tel:+1-201-555-0123;phone-context=example.com",
        ];
        let specials = ['@', ':', ';', '?', '[', ']', '%', ' ', '=', '&', '\u{80}'];
        let check = |s: &str| {
            if let Ok(u) = Uri::parse(s) {
                assert_eq!(Uri::parse(&u.to_string()).as_ref(), Ok(&u), "{s}");
            }
            if let Ok(u) = SipUri::parse(s) {
                assert_eq!(SipUri::parse(&u.to_string()).as_ref(), Ok(&u), "{s}");
                let aor = u.aor();
                assert_eq!(Aor::parse(aor.as_str()).as_ref(), Ok(&aor), "{s}");
            }
        };
        for seed in seeds {
            for i in 0..=seed.len() {
                check(&seed[..i]);
                for ch in specials {
                    let mut s = String::from(&seed[..i]);
                    s.push(ch);
                    if i < seed.len() {
                        check(&format!("{s}{}", &seed[i + 1..]));
                    }
                    s.push_str(&seed[i..]);
                    check(&s);
                }
            }
        }
    }
}

#[cfg(test)]
mod ipv4_tests {
    use super::has_empty_label;

    #[test]
    fn empty_labels() {
        for (name, empty) in [
            ("a.b", false),
            ("", false),
            (".a", true),
            ("a..b", true),
            ("a.", false),
            ("abcdefg..h", true),
            ("abcdefg.", false),
            ("abcdefg..", true),
            ("abcdefghijklmnop.", false),
            ("abcdefghijklmno..", true),
            ("server10.biloxi.example.com", false),
        ] {
            assert_eq!(has_empty_label(name.as_bytes()), empty, "{name}");
        }
    }

    #[test]
    fn dotted_quads() {
        for ok in ["0.0.0.0", "192.0.2.1", "255.255.255.255"] {
            assert_eq!(super::ipv4(ok), ok.parse().ok(), "{ok}");
        }
        for bad in [
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1..2.3",
            ".1.2.3",
            "1.2.3.",
            "1234.1.1.1",
            "",
        ] {
            assert_eq!(super::ipv4(bad), None, "{bad}");
        }
    }
}
