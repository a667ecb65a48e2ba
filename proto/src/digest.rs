//! Digest authentication for SIP (RFC 7616 as applied by RFC 8760, RFC 3261 §22): header values,
//! response computation from a stored HA1, and stateless HMAC nonces, so that a registrar can
//! challenge and verify without keeping per-nonce state. Time and randomness are arguments.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest as _, Sha256};

/// Why a header value could not be parsed or a digest could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// The value is empty or does not start with an auth-scheme token.
    #[error("missing auth-scheme at offset {offset}")]
    MissingScheme { offset: usize },
    /// A quoted-string opened at `offset` is never closed.
    #[error("unterminated quoted string in auth-param at offset {offset}")]
    UnterminatedQuote { offset: usize },
    /// Something other than `expected` was found at `offset`.
    #[error("expected {expected} in auth-param list at offset {offset}")]
    Syntax {
        expected: &'static str,
        offset: usize,
    },
    /// A parameter occurs twice (names compared case-insensitively).
    #[error("duplicate parameter '{0}'")]
    DuplicateParam(String),
    /// A parameter the scheme requires is absent.
    #[error("missing parameter '{0}'")]
    MissingParam(&'static str),
    /// A parameter has a value outside its grammar (e.g. `nc` not 8 hex digits).
    #[error("invalid value {value:?} for parameter '{name}'")]
    InvalidParam { name: &'static str, value: String },
    /// The algorithm is not one this module can compute.
    #[error("unsupported digest algorithm '{0}'")]
    UnsupportedAlgorithm(String),
    /// No supported qop is offered (only `auth` is supported, not `auth-int`).
    #[error("unsupported qop '{0}'")]
    UnsupportedQop(String),
    /// The challenge uses another scheme than Digest.
    #[error("cannot answer a '{0}' challenge, only Digest")]
    NotDigest(String),
}

// === algorithms and computation =============================================================

/// A digest `algorithm` parameter value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5`, the default when the parameter is absent.
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256`.
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// Anything else (e.g. `SHA-512-256`), kept as written; cannot be computed.
    Other(String),
}

impl Algorithm {
    /// Reads an algorithm token, case-insensitively.
    pub fn from_token(s: &str) -> Self {
        [Self::Md5, Self::Md5Sess, Self::Sha256, Self::Sha256Sess]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
            .unwrap_or_else(|| Self::Other(s.to_owned()))
    }

    /// The canonical token.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
            Self::Other(s) => s,
        }
    }

    /// Whether this is a `-sess` variant (HA1 is bound to nonce and cnonce).
    pub fn is_session(&self) -> bool {
        matches!(self, Self::Md5Sess | Self::Sha256Sess)
    }

    /// The variant without `-sess`: tells a server which stored HA1 to use.
    pub fn base(&self) -> Self {
        match self {
            Self::Md5Sess => Self::Md5,
            Self::Sha256Sess => Self::Sha256,
            other => other.clone(),
        }
    }

    /// Hashes `data`, as lowercase hex.
    pub fn hash(&self, data: &[u8]) -> Result<String, DigestError> {
        match self {
            Self::Md5 | Self::Md5Sess => Ok(hex(&Md5::digest(data))),
            Self::Sha256 | Self::Sha256Sess => Ok(hex(&Sha256::digest(data))),
            Self::Other(name) => Err(DigestError::UnsupportedAlgorithm(name.clone())),
        }
    }

    fn hash_parts(&self, parts: &[&str]) -> Result<String, DigestError> {
        self.hash(parts.join(":").as_bytes())
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// HA1: `H(username:realm:password)`, or for `-sess` `H(H(username:realm:password):nonce:cnonce)`.
pub fn ha1(
    algorithm: &Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    nonce: &str,
    cnonce: &str,
) -> Result<String, DigestError> {
    let base = algorithm.hash_parts(&[username, realm, password])?;
    session_ha1(algorithm, &base, nonce, cnonce)
}

/// Turns a stored (non-session) HA1 into the HA1 `algorithm` uses: unchanged unless `-sess`.
pub fn session_ha1(
    algorithm: &Algorithm,
    stored_ha1: &str,
    nonce: &str,
    cnonce: &str,
) -> Result<String, DigestError> {
    let stored = stored_ha1.to_ascii_lowercase();
    if algorithm.is_session() {
        algorithm.hash_parts(&[&stored, nonce, cnonce])
    } else {
        algorithm.hash(b"")?; // reject unknown algorithms consistently
        Ok(stored)
    }
}

/// HA2: `H(method:uri)` for qop `auth` or no qop; `auth-int` and others are unsupported.
pub fn ha2(
    algorithm: &Algorithm,
    method: &str,
    uri: &str,
    qop: Option<&str>,
) -> Result<String, DigestError> {
    match qop {
        None => {}
        Some(q) if q.eq_ignore_ascii_case("auth") => {}
        Some(q) => return Err(DigestError::UnsupportedQop(q.to_owned())),
    }
    algorithm.hash_parts(&[method, uri])
}

/// The request-digest: `H(HA1:nonce:nc:cnonce:qop:HA2)`, or without qop the RFC 2069 form
/// `H(HA1:nonce:HA2)` (then `nc` and `cnonce` are ignored).
pub fn response(
    algorithm: &Algorithm,
    ha1: &str,
    nonce: &str,
    nc: u32,
    cnonce: &str,
    qop: Option<&str>,
    ha2: &str,
) -> Result<String, DigestError> {
    match qop {
        Some(qop) => algorithm.hash_parts(&[ha1, nonce, &format!("{nc:08x}"), cnonce, qop, ha2]),
        None => algorithm.hash_parts(&[ha1, nonce, ha2]),
    }
}

/// Checks `creds` against the HA1 stored for `creds.effective_algorithm().base()`, comparing the
/// response in constant time. It does not check the nonce, the realm, the nc sequence or that
/// `creds.uri` matches the Request-URI: those are the caller's job.
pub fn verify(creds: &DigestCredentials, method: &str, stored_ha1: &str) -> bool {
    let algorithm = creds.effective_algorithm();
    let qop = creds.qop.as_deref();
    let (nc, cnonce) = match (qop, creds.nc, creds.cnonce.as_deref()) {
        (None, _, cnonce) => (0, cnonce.unwrap_or("")),
        (Some(_), Some(nc), Some(cnonce)) => (nc, cnonce),
        (Some(_), _, _) => return false,
    };
    if algorithm.is_session() && creds.cnonce.is_none() {
        return false;
    }
    let expected = session_ha1(&algorithm, stored_ha1, &creds.nonce, cnonce).and_then(|ha1| {
        let ha2 = ha2(&algorithm, method, &creds.uri, qop)?;
        response(&algorithm, &ha1, &creds.nonce, nc, cnonce, qop, &ha2)
    });
    expected.is_ok_and(|e| ct_eq_ignore_case(e.as_bytes(), creds.response.as_bytes()))
}

fn ct_eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| {
        acc | (x.to_ascii_lowercase() ^ y.to_ascii_lowercase())
    });
    std::hint::black_box(diff) == 0
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    if bytes.len() % 2 != 0 {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|p| Some((nibble(p[0])? << 4) | nibble(p[1])?))
        .collect()
}

// === header values ==========================================================================

/// An auth-param this module does not interpret, kept in order for re-serialization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParam {
    /// The name as written.
    pub name: String,
    /// The value, unescaped if it was quoted.
    pub value: String,
    /// Whether it was a quoted-string (and is re-emitted as one).
    pub quoted: bool,
}

/// A Digest challenge (`WWW-Authenticate` / `Proxy-Authenticate` value).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DigestChallenge {
    pub realm: String,
    pub domain: Option<String>,
    pub nonce: String,
    pub opaque: Option<String>,
    /// `stale=true`: the credentials were right but the nonce expired; retry without prompting.
    pub stale: bool,
    /// `None` when absent (MD5 implied).
    pub algorithm: Option<Algorithm>,
    /// The offered qop values; empty when absent (RFC 2069 compatibility).
    pub qop: Vec<String>,
    pub userhash: bool,
    pub extra: Vec<AuthParam>,
}

/// A `WWW-Authenticate` / `Proxy-Authenticate` value. In SIP each challenge is its own header
/// field (RFC 3261 §7.3.1), so a value holds exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Digest(DigestChallenge),
    /// Another scheme, kept verbatim.
    Other {
        scheme: String,
        params_raw: String,
    },
}

/// Digest credentials (`Authorization` / `Proxy-Authorization` value).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DigestCredentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    /// `None` when absent (MD5 implied).
    pub algorithm: Option<Algorithm>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
    /// The chosen qop, a token (unquoted per RFC 3261).
    pub qop: Option<String>,
    pub nc: Option<u32>,
    pub userhash: bool,
    pub extra: Vec<AuthParam>,
}

/// An `Authorization` / `Proxy-Authorization` value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "Digest is the common case; boxing gains nothing"
)]
pub enum Credentials {
    Digest(DigestCredentials),
    /// Another scheme (e.g. RFC 4475 regaut01), kept verbatim.
    Other {
        scheme: String,
        raw: String,
    },
}

impl Challenge {
    /// A server challenge offering qop `auth`, e.g. `Digest realm="r", nonce="n",
    /// algorithm=SHA-256, qop="auth"`. A registrar typically sends SHA-256 first, then MD5.
    pub fn digest(
        realm: &str,
        nonce: &str,
        algorithm: Algorithm,
        stale: bool,
        opaque: Option<&str>,
    ) -> Self {
        Self::Digest(DigestChallenge {
            realm: realm.to_owned(),
            nonce: nonce.to_owned(),
            opaque: opaque.map(str::to_owned),
            stale,
            algorithm: Some(algorithm),
            qop: vec!["auth".to_owned()],
            ..DigestChallenge::default()
        })
    }

    /// The Digest challenge, if this is one.
    pub fn as_digest(&self) -> Option<&DigestChallenge> {
        match self {
            Self::Digest(d) => Some(d),
            Self::Other { .. } => None,
        }
    }
}

impl DigestCredentials {
    /// The algorithm in use: the parameter, or MD5 when absent.
    pub fn effective_algorithm(&self) -> Algorithm {
        self.algorithm.clone().unwrap_or(Algorithm::Md5)
    }
}

impl Credentials {
    /// Answers `challenge` (client side), choosing qop `auth` when offered. `cnonce` and `nc`
    /// are the caller's (random, and counting per nonce from 1).
    pub fn answer(
        challenge: &Challenge,
        method: &str,
        uri: &str,
        username: &str,
        password: &str,
        cnonce: &str,
        nc: u32,
    ) -> Result<Self, DigestError> {
        let challenge = match challenge {
            Challenge::Digest(c) => c,
            Challenge::Other { scheme, .. } => return Err(DigestError::NotDigest(scheme.clone())),
        };
        let algorithm = challenge.algorithm.clone().unwrap_or(Algorithm::Md5);
        let offers_auth = challenge.qop.iter().any(|q| q.eq_ignore_ascii_case("auth"));
        let qop = match (offers_auth, challenge.qop.is_empty()) {
            (true, _) => Some("auth"),
            (false, true) => None,
            (false, false) => return Err(DigestError::UnsupportedQop(challenge.qop.join(","))),
        };
        let (realm, nonce) = (challenge.realm.as_str(), challenge.nonce.as_str());
        let ha1 = ha1(&algorithm, username, realm, password, nonce, cnonce)?;
        let ha2 = ha2(&algorithm, method, uri, qop)?;
        let response = response(&algorithm, &ha1, nonce, nc, cnonce, qop, &ha2)?;
        let username = if challenge.userhash {
            algorithm.hash_parts(&[username, realm])?
        } else {
            username.to_owned()
        };
        let sends_cnonce = qop.is_some() || algorithm.is_session();
        Ok(Self::Digest(DigestCredentials {
            username,
            realm: realm.to_owned(),
            nonce: nonce.to_owned(),
            uri: uri.to_owned(),
            response,
            algorithm: challenge.algorithm.clone(),
            cnonce: sends_cnonce.then(|| cnonce.to_owned()),
            opaque: challenge.opaque.clone(),
            qop: qop.map(str::to_owned),
            nc: qop.map(|_| nc),
            userhash: challenge.userhash,
            extra: Vec::new(),
        }))
    }

    /// The Digest credentials, if these are.
    pub fn as_digest(&self) -> Option<&DigestCredentials> {
        match self {
            Self::Digest(d) => Some(d),
            Self::Other { .. } => None,
        }
    }
}

// --- parsing ---------------------------------------------------------------------------------

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Skips LWS: spaces, tabs and folded line ends (CRLF or LF followed by whitespace).
fn skip_lws(s: &[u8], mut i: usize) -> usize {
    loop {
        match s.get(i..) {
            Some([b' ' | b'\t', ..]) => i += 1,
            Some([b'\r', b'\n', b' ' | b'\t', ..]) => i += 3,
            Some([b'\n', b' ' | b'\t', ..]) => i += 2,
            _ => return i,
        }
    }
}

fn take_while(s: &[u8], mut i: usize, pred: impl Fn(u8) -> bool) -> usize {
    while s.get(i).is_some_and(|&b| pred(b)) {
        i += 1;
    }
    i
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Splits `input` into its scheme and the offset where the parameters start.
fn split_scheme(input: &str) -> Result<(String, usize), DigestError> {
    let s = input.as_bytes();
    let start = skip_lws(s, 0);
    let end = take_while(s, start, is_token_byte);
    if end == start {
        return Err(DigestError::MissingScheme { offset: start });
    }
    Ok((lossy(&s[start..end]), end))
}

/// Parses a quoted-string whose opening quote is at `start`; returns the value and the offset
/// after the closing quote. Folded line ends inside become a single space.
fn parse_quoted(s: &[u8], start: usize) -> Result<(String, usize), DigestError> {
    let mut out = Vec::new();
    let mut i = start + 1;
    loop {
        match s.get(i) {
            None => return Err(DigestError::UnterminatedQuote { offset: start }),
            Some(b'"') => return Ok((lossy(&out), i + 1)),
            Some(b'\\') => match s.get(i + 1) {
                None => return Err(DigestError::UnterminatedQuote { offset: start }),
                Some(b'\r' | b'\n') => {
                    let expected = "escapable character after '\\'";
                    return Err(DigestError::Syntax {
                        expected,
                        offset: i + 1,
                    });
                }
                Some(&c) => {
                    out.push(c);
                    i += 2;
                }
            },
            Some(b'\r' | b'\n') => {
                let next = skip_lws(s, i);
                if next == i {
                    let expected = "closing '\"' before line end";
                    return Err(DigestError::Syntax {
                        expected,
                        offset: i,
                    });
                }
                out.push(b' ');
                i = next;
            }
            Some(&c) => {
                out.push(c);
                i += 1;
            }
        }
    }
}

/// Parses `name=value` pairs separated by commas from offset `i`; rejects duplicates.
fn parse_params(input: &str, mut i: usize) -> Result<Vec<AuthParam>, DigestError> {
    let s = input.as_bytes();
    let syntax = |expected, offset| DigestError::Syntax { expected, offset };
    if i < s.len() && skip_lws(s, i) == i {
        return Err(syntax("whitespace after auth-scheme", i));
    }
    let (mut params, mut seen) = (Vec::new(), BTreeSet::new());
    loop {
        i = skip_lws(s, i);
        if s.get(i) == Some(&b',') {
            i += 1; // empty list elements are allowed
            continue;
        }
        if i == s.len() {
            return Ok(params);
        }
        let name_end = take_while(s, i, is_token_byte);
        if name_end == i {
            return Err(syntax("parameter name", i));
        }
        let name = lossy(&s[i..name_end]);
        i = skip_lws(s, name_end);
        if s.get(i) != Some(&b'=') {
            return Err(syntax("'=' after parameter name", i));
        }
        i = skip_lws(s, i + 1);
        let (value, quoted) = if s.get(i) == Some(&b'"') {
            let (value, next) = parse_quoted(s, i)?;
            i = next;
            (value, true)
        } else {
            let end = take_while(s, i, |b| !b",\" \t\r\n".contains(&b));
            if end == i {
                return Err(syntax("parameter value", i));
            }
            let value = lossy(&s[i..end]);
            i = end;
            (value, false)
        };
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(DigestError::DuplicateParam(name.to_ascii_lowercase()));
        }
        params.push(AuthParam {
            name,
            value,
            quoted,
        });
        i = skip_lws(s, i);
        match s.get(i) {
            None => return Ok(params),
            Some(b',') => i += 1,
            Some(_) => return Err(syntax("',' between parameters", i)),
        }
    }
}

fn parse_bool(name: &'static str, value: String) -> Result<bool, DigestError> {
    match value {
        v if v.eq_ignore_ascii_case("true") => Ok(true),
        v if v.eq_ignore_ascii_case("false") => Ok(false),
        value => Err(DigestError::InvalidParam { name, value }),
    }
}

fn parse_nc(value: String) -> Result<u32, DigestError> {
    let ok = value.len() == 8 && value.bytes().all(|b| b.is_ascii_hexdigit());
    match ok.then(|| u32::from_str_radix(&value, 16)) {
        Some(Ok(nc)) => Ok(nc),
        _ => Err(DigestError::InvalidParam { name: "nc", value }),
    }
}

impl FromStr for Challenge {
    type Err = DigestError;

    fn from_str(input: &str) -> Result<Self, DigestError> {
        let (scheme, rest) = split_scheme(input)?;
        if !scheme.eq_ignore_ascii_case("digest") {
            let params_raw = input[rest..]
                .trim_matches([' ', '\t', '\r', '\n'])
                .to_owned();
            return Ok(Self::Other { scheme, params_raw });
        }
        let (mut realm, mut nonce) = (None, None);
        let mut c = DigestChallenge::default();
        for p in parse_params(input, rest)? {
            match p.name.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(p.value),
                "nonce" => nonce = Some(p.value),
                "domain" => c.domain = Some(p.value),
                "opaque" => c.opaque = Some(p.value),
                "stale" => c.stale = parse_bool("stale", p.value)?,
                "algorithm" => c.algorithm = Some(Algorithm::from_token(&p.value)),
                "userhash" => c.userhash = parse_bool("userhash", p.value)?,
                "qop" => {
                    let values = p.value.split(',').map(|q| q.trim_matches([' ', '\t']));
                    c.qop = values
                        .filter(|q| !q.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                _ => c.extra.push(p),
            }
        }
        c.realm = realm.ok_or(DigestError::MissingParam("realm"))?;
        c.nonce = nonce.ok_or(DigestError::MissingParam("nonce"))?;
        Ok(Self::Digest(c))
    }
}

impl FromStr for Credentials {
    type Err = DigestError;

    fn from_str(input: &str) -> Result<Self, DigestError> {
        let (scheme, rest) = split_scheme(input)?;
        if !scheme.eq_ignore_ascii_case("digest") {
            let raw = input[rest..]
                .trim_matches([' ', '\t', '\r', '\n'])
                .to_owned();
            return Ok(Self::Other { scheme, raw });
        }
        let [mut username, mut realm, mut nonce, mut uri, mut response] = [const { None }; 5];
        let mut c = DigestCredentials::default();
        for p in parse_params(input, rest)? {
            match p.name.to_ascii_lowercase().as_str() {
                "username" => username = Some(p.value),
                "realm" => realm = Some(p.value),
                "nonce" => nonce = Some(p.value),
                "uri" => uri = Some(p.value),
                "response" => response = Some(p.value),
                "algorithm" => c.algorithm = Some(Algorithm::from_token(&p.value)),
                "cnonce" => c.cnonce = Some(p.value),
                "opaque" => c.opaque = Some(p.value),
                "qop" => c.qop = Some(p.value),
                "nc" => c.nc = Some(parse_nc(p.value)?),
                "userhash" => c.userhash = parse_bool("userhash", p.value)?,
                _ => c.extra.push(p),
            }
        }
        let missing = DigestError::MissingParam;
        c.username = username.ok_or(missing("username"))?;
        c.realm = realm.ok_or(missing("realm"))?;
        c.nonce = nonce.ok_or(missing("nonce"))?;
        c.uri = uri.ok_or(missing("uri"))?;
        c.response = response.ok_or(missing("response"))?;
        Ok(Self::Digest(c))
    }
}

// --- serialization ---------------------------------------------------------------------------

/// Writes ` a=b, c="d"` after the scheme. CR and LF cannot be represented and are dropped.
struct ParamWriter<'a, 'b> {
    f: &'a mut fmt::Formatter<'b>,
    first: bool,
}

impl<'a, 'b> ParamWriter<'a, 'b> {
    fn new(f: &'a mut fmt::Formatter<'b>, scheme: &str) -> Result<Self, fmt::Error> {
        f.write_str(scheme)?;
        Ok(Self { f, first: true })
    }

    fn name(&mut self, name: &str) -> fmt::Result {
        let sep = if self.first { " " } else { ", " };
        self.first = false;
        write!(self.f, "{sep}{name}=")
    }

    fn quoted(&mut self, name: &str, value: &str) -> fmt::Result {
        self.name(name)?;
        self.f.write_str("\"")?;
        for c in value.chars().filter(|c| !matches!(c, '\r' | '\n')) {
            if matches!(c, '"' | '\\') {
                self.f.write_str("\\")?;
            }
            write!(self.f, "{c}")?;
        }
        self.f.write_str("\"")
    }

    /// Unquoted when the value survives a parse unquoted, else quoted.
    fn bare(&mut self, name: &str, value: &str) -> fmt::Result {
        if value.is_empty() || value.bytes().any(|b| b",\" \t\r\n".contains(&b)) {
            return self.quoted(name, value);
        }
        self.name(name)?;
        self.f.write_str(value)
    }

    fn opt_quoted(&mut self, name: &str, value: &Option<String>) -> fmt::Result {
        value.as_deref().map_or(Ok(()), |v| self.quoted(name, v))
    }

    fn extra(&mut self, params: &[AuthParam]) -> fmt::Result {
        for p in params {
            match p.quoted {
                true => self.quoted(&p.name, &p.value)?,
                false => self.bare(&p.name, &p.value)?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = match self {
            Self::Digest(c) => c,
            Self::Other { scheme, params_raw } if params_raw.is_empty() => {
                return f.write_str(scheme);
            }
            Self::Other { scheme, params_raw } => return write!(f, "{scheme} {params_raw}"),
        };
        let mut w = ParamWriter::new(f, "Digest")?;
        w.quoted("realm", &c.realm)?;
        w.opt_quoted("domain", &c.domain)?;
        w.quoted("nonce", &c.nonce)?;
        w.opt_quoted("opaque", &c.opaque)?;
        if c.stale {
            w.bare("stale", "true")?;
        }
        if let Some(a) = &c.algorithm {
            w.bare("algorithm", a.as_str())?;
        }
        if !c.qop.is_empty() {
            w.quoted("qop", &c.qop.join(","))?;
        }
        if c.userhash {
            w.bare("userhash", "true")?;
        }
        w.extra(&c.extra)
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = match self {
            Self::Digest(c) => c,
            Self::Other { scheme, raw } if raw.is_empty() => return f.write_str(scheme),
            Self::Other { scheme, raw } => return write!(f, "{scheme} {raw}"),
        };
        let mut w = ParamWriter::new(f, "Digest")?;
        w.quoted("username", &c.username)?;
        w.quoted("realm", &c.realm)?;
        w.quoted("nonce", &c.nonce)?;
        w.quoted("uri", &c.uri)?;
        w.quoted("response", &c.response)?;
        if let Some(a) = &c.algorithm {
            w.bare("algorithm", a.as_str())?;
        }
        w.opt_quoted("cnonce", &c.cnonce)?;
        w.opt_quoted("opaque", &c.opaque)?;
        if let Some(q) = &c.qop {
            w.bare("qop", q)?;
        }
        if let Some(nc) = c.nc {
            w.bare("nc", &format!("{nc:08x}"))?;
        }
        if c.userhash {
            w.bare("userhash", "true")?;
        }
        w.extra(&c.extra)
    }
}

// === stateless nonces =======================================================================

type HmacSha256 = Hmac<Sha256>;

/// How far in the future (seconds) a nonce timestamp may be before it counts as stale.
pub const NONCE_MAX_SKEW_SECS: u64 = 5;
const MAC_LEN: usize = 16;
const NONCE_BYTES: usize = 8 + 8 + MAC_LEN;

/// Issues and checks self-authenticating nonces: hex of `timestamp (u64 BE) || salt ||
/// HMAC-SHA256(secret, timestamp || salt)[..16]`, so the server keeps no per-nonce state.
///
/// The realm is not bound: use one key per realm if nonces must not cross realms. A nonce can
/// be replayed until it goes stale; to reject replays, track the highest `nc` per nonce
/// (bounded, e.g. [`NcTracker`]).
#[derive(Clone)]
pub struct NonceKey {
    secret: [u8; 32],
}

/// The result of [`NonceKey::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStatus {
    /// Ours and fresh.
    Valid,
    /// Ours, but older than the maximum age, or dated more than [`NONCE_MAX_SKEW_SECS`] in the
    /// future (our clock went back): answer 401 with `stale=true` and a fresh nonce.
    Stale,
    /// Malformed, or not issued with this key.
    Invalid,
}

impl NonceKey {
    /// A key from 32 secret random bytes supplied by the caller.
    pub fn new(secret: [u8; 32]) -> Self {
        Self { secret }
    }

    fn mac(&self, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(body);
        mac
    }

    /// A nonce for `now_secs`; `salt` should be random so nonces issued in the same second differ.
    pub fn issue(&self, now_secs: u64, salt: [u8; 8]) -> String {
        let mut bytes = Vec::with_capacity(NONCE_BYTES);
        bytes.extend_from_slice(&now_secs.to_be_bytes());
        bytes.extend_from_slice(&salt);
        let tag = self.mac(&bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag[..MAC_LEN]);
        hex(&bytes)
    }

    /// Checks a nonce (MAC in constant time), then its age against `max_age_secs`.
    pub fn check(&self, nonce: &str, now_secs: u64, max_age_secs: u64) -> NonceStatus {
        let Some(bytes) = unhex(nonce).filter(|b| b.len() == NONCE_BYTES) else {
            return NonceStatus::Invalid;
        };
        let (body, tag) = bytes.split_at(NONCE_BYTES - MAC_LEN);
        if self.mac(body).verify_truncated_left(tag).is_err() {
            return NonceStatus::Invalid;
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&body[..8]);
        let issued = u64::from_be_bytes(ts);
        let too_new = issued > now_secs.saturating_add(NONCE_MAX_SKEW_SECS);
        let too_old = now_secs.saturating_sub(issued) > max_age_secs;
        if too_new || too_old {
            NonceStatus::Stale
        } else {
            NonceStatus::Valid
        }
    }
}

impl fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceKey(..)")
    }
}

/// Rejects replayed `nc` values for the `capacity` most recently seen nonces.
///
/// Feed it only nonces [`NonceKey::check`] found valid, and size it to cover every nonce that
/// can still be valid (issued within the max age): an evicted nonce is forgotten.
#[derive(Debug, Clone)]
pub struct NcTracker {
    capacity: usize,
    highest: BTreeMap<String, u32>,
    order: VecDeque<String>,
}

impl NcTracker {
    /// A tracker remembering at most `capacity` nonces (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            highest: BTreeMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Records `nc` for `nonce`; `false` if it is not above the highest one seen (a replay).
    pub fn check(&mut self, nonce: &str, nc: u32) -> bool {
        if let Some(highest) = self.highest.get_mut(nonce) {
            if nc <= *highest {
                return false;
            }
            *highest = nc;
            return true;
        }
        if self.order.len() == self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.highest.remove(&oldest);
            }
        }
        self.order.push_back(nonce.to_owned());
        self.highest.insert(nonce.to_owned(), nc);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    const OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";
    const REALM: &str = "http-auth@example.org";
    const SHA256_RESPONSE: &str =
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1";
    const MD5_RESPONSE: &str = "8ca523f5e9506fed4657c9700eebdbec";

    fn creds(s: &str) -> DigestCredentials {
        s.parse::<Credentials>()
            .unwrap()
            .as_digest()
            .unwrap()
            .clone()
    }

    fn chal(s: &str) -> Challenge {
        s.parse().unwrap()
    }

    fn err<T: FromStr<Err = DigestError>>(s: &str) -> DigestError {
        s.parse::<T>().err().unwrap()
    }

    fn register(ch: &Challenge, password: &str) -> Result<Credentials, DigestError> {
        Credentials::answer(ch, "REGISTER", "sip:r", "u", password, "cn", 1)
    }

    #[test]
    fn rfc7616_vectors() {
        for (alg, expected) in [
            (Algorithm::Md5, MD5_RESPONSE),
            (Algorithm::Sha256, SHA256_RESPONSE),
        ] {
            let ha1 = ha1(&alg, "Mufasa", REALM, "Circle of Life", NONCE, CNONCE).unwrap();
            let ha2 = ha2(&alg, "GET", "/dir/index.html", Some("auth")).unwrap();
            let r = response(&alg, &ha1, NONCE, 1, CNONCE, Some("auth"), &ha2).unwrap();
            assert_eq!(r, expected);
        }
    }

    #[test]
    fn rfc7616_answer_from_parsed_challenges() {
        for (alg, expected) in [("SHA-256", SHA256_RESPONSE), ("MD5", MD5_RESPONSE)] {
            let ch = chal(&format!(
                "Digest\r\n    realm=\"{REALM}\",\r\n    qop=\"auth, auth-int\",\r\n    \
                 algorithm={alg},\r\n    nonce=\"{NONCE}\",\r\n    opaque=\"{OPAQUE}\""
            ));
            let (uri, pass) = ("/dir/index.html", "Circle of Life");
            let c = Credentials::answer(&ch, "GET", uri, "Mufasa", pass, CNONCE, 1).unwrap();
            let text = c.to_string();
            assert!(text.contains(&format!("response=\"{expected}\"")), "{text}");
            assert!(
                text.contains(&format!("algorithm={alg}, cnonce=\"{CNONCE}\"")),
                "{text}"
            );
            assert!(text.contains(&format!("opaque=\"{OPAQUE}\", qop=auth, nc=00000001")));
            let stored = ha1(&Algorithm::from_token(alg), "Mufasa", REALM, pass, "", "").unwrap();
            assert!(verify(c.as_digest().unwrap(), "GET", &stored));
        }
    }

    #[test]
    fn rfc2617_vector() {
        let c = creds(
            r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        );
        let alg = Algorithm::Md5;
        let ha1 = ha1(&alg, "Mufasa", &c.realm, "Circle Of Life", "", "").unwrap();
        let ha2 = ha2(&alg, "GET", &c.uri, c.qop.as_deref()).unwrap();
        let r = response(&alg, &ha1, &c.nonce, 1, "0a4f113b", Some("auth"), &ha2).unwrap();
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
        assert!(verify(&c, "GET", &ha1));
        assert!(verify(&c, "GET", &ha1.to_ascii_uppercase()));
        assert!(!verify(&c, "POST", &ha1));
    }

    #[test]
    fn sip_credentials_round_trip() {
        let header = "Digest username=\"alice\", realm=\"example.com\", nonce=\"abc\", \
                      uri=\"sip:example.com\", response=\"0123abcd\", algorithm=SHA-256, \
                      cnonce=\"x\", qop=auth, nc=00000001";
        let c = creds(header);
        assert_eq!(
            (c.username.as_str(), c.nc, c.qop.as_deref()),
            ("alice", Some(1), Some("auth"))
        );
        assert_eq!(c.algorithm, Some(Algorithm::Sha256));
        assert_eq!(Credentials::Digest(c).to_string(), header);
        // Other order, case and quoting normalise to the same value; unknown params are kept.
        let messy = "digest NC=0000000A,QOP=\"auth\" , Username=\"alice\",realm=\"example.com\",\
                     nonce=\"abc\",uri=\"sip:example.com\",response=\"0123abcd\",cnonce=\"x\",\
                     algorithm=\"sha-256\",foo=bar,baz=\"q\\\"x\"";
        let parsed: Credentials = messy.parse().unwrap();
        let text = parsed.to_string();
        assert_eq!(text.parse::<Credentials>().unwrap(), parsed);
        assert!(
            text.ends_with("qop=auth, nc=0000000a, foo=bar, baz=\"q\\\"x\""),
            "{text}"
        );
    }

    #[test]
    fn challenge_round_trip_and_builder() {
        let c = Challenge::digest("example.com", "n1", Algorithm::Sha256, true, Some("op"));
        let text = c.to_string();
        let expected = "Digest realm=\"example.com\", nonce=\"n1\", opaque=\"op\", stale=true, \
                        algorithm=SHA-256, qop=\"auth\"";
        assert_eq!(text, expected);
        assert_eq!(chal(&text), c);
        let parsed = chal(
            "Digest realm=\"a\\\\b \\\"c\\\"\", domain=\"sip:a sip:b\", nonce=\"n\", \
             stale=FALSE, algorithm=SHA-512-256, qop=\"auth,auth-int\", userhash=true, \
             charset=UTF-8",
        );
        let d = parsed.as_digest().unwrap();
        assert_eq!(d.realm, "a\\b \"c\"");
        assert_eq!(d.algorithm, Some(Algorithm::Other("SHA-512-256".into())));
        assert_eq!(d.qop, ["auth", "auth-int"]);
        assert!(!d.stale && d.userhash);
        assert_eq!(chal(&parsed.to_string()), parsed);
    }

    #[test]
    fn folded_whitespace() {
        let c = creds(
            "Digest username=\"bob\",\r\n realm=\"b\r\n\tc\" ,\r\n\t nonce = \"n\",\
             uri=\"sip:x\",\n response=\"r\"",
        );
        assert_eq!(
            (c.username.as_str(), c.realm.as_str(), c.nonce.as_str()),
            ("bob", "b c", "n")
        );
        // A line end that is not a fold is an error.
        let e = err::<Challenge>("Digest realm=\"a\",\r\nnonce=\"n\"");
        assert_eq!(
            e,
            DigestError::Syntax {
                expected: "parameter name",
                offset: 17
            }
        );
    }

    #[test]
    fn errors_say_what_and_where() {
        for (input, message) in [
            (
                "Digest realm=\"a\", nonce=\"n\", opaque=\"x",
                "unterminated quoted string in auth-param at offset 36",
            ),
            (
                "Digest realm=\"a\", nonce=\"n\", NONCE=m",
                "duplicate parameter 'nonce'",
            ),
            (
                "Digest realm=\"a\" nonce=\"n\"",
                "expected ',' between parameters in auth-param list at offset 17",
            ),
            (
                "Digest realm=\"a\", nonce=\"n\", stale=maybe",
                "invalid value \"maybe\" for parameter 'stale'",
            ),
            (
                "Digest realm=\"a\", nonce",
                "expected '=' after parameter name in auth-param list at offset 23",
            ),
            ("Digest nonce=\"a\"", "missing parameter 'realm'"),
            ("  ", "missing auth-scheme at offset 2"),
        ] {
            assert_eq!(err::<Challenge>(input).to_string(), message);
        }
        let base = "Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\"";
        assert_eq!(
            err::<Credentials>(base).to_string(),
            "missing parameter 'response'"
        );
        let e = err::<Credentials>(&format!("{base}, response=\"x\", nc=1"));
        assert_eq!(
            e,
            DigestError::InvalidParam {
                name: "nc",
                value: "1".into()
            }
        );
    }

    #[test]
    fn unknown_schemes_are_kept() {
        let c: Credentials = "NoOneKnowsThisScheme opaque-data=here".parse().unwrap();
        let raw = "opaque-data=here".into();
        assert_eq!(
            c,
            Credentials::Other {
                scheme: "NoOneKnowsThisScheme".into(),
                raw
            }
        );
        assert_eq!(c.to_string(), "NoOneKnowsThisScheme opaque-data=here");
        let ch = chal("Basic realm=\"x\"");
        assert_eq!(ch.to_string(), "Basic realm=\"x\"");
        assert_eq!(
            register(&ch, "p"),
            Err(DigestError::NotDigest("Basic".into()))
        );
        assert!("Weird/scheme ??".parse::<Challenge>().is_ok());
    }

    #[test]
    fn truncation_never_panics() {
        let header = "Digest username=\"al\\\"ïce\", realm=\"ex€mple.com\",\r\n nonce=\"abc\", \
                      uri=\"sip:example.com\", response=\"0123\", algorithm=MD5-sess, \
                      cnonce=\"x\", qop=auth, nc=00000001, extra=\"日本\"";
        assert_eq!(creds(header).username, "al\"ïce");
        let bytes = header.as_bytes();
        for end in 0..bytes.len() {
            for start in [0, 3, 7] {
                let piece = String::from_utf8_lossy(&bytes[start.min(end)..end]);
                let _ = piece.parse::<Credentials>();
                let _ = piece.parse::<Challenge>();
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(s in "[Dd]igest[ \t\r\n\",=\\\\a-z0-9é]{0,60}|\\PC{0,60}") {
            if let Ok(c) = s.parse::<Credentials>() {
                proptest::prop_assert_eq!(c.to_string().parse::<Credentials>().ok(), Some(c));
            }
            if let Ok(c) = s.parse::<Challenge>() {
                proptest::prop_assert_eq!(c.to_string().parse::<Challenge>().ok(), Some(c));
            }
        }
    }

    #[test]
    fn nonces() {
        let key = NonceKey::new([7; 32]);
        let nonce = key.issue(1_000, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(nonce.len(), 64);
        assert_ne!(nonce, key.issue(1_000, [0; 8]));
        for (now, status) in [
            (1_000, NonceStatus::Valid),
            (1_300, NonceStatus::Valid),
            (1_301, NonceStatus::Stale),
            (995, NonceStatus::Valid), // from the future, within the skew
            (994, NonceStatus::Stale), // beyond the skew
        ] {
            assert_eq!(key.check(&nonce, now, 300), status, "now={now}");
        }
        for i in [0, 15, 20, 40, 63] {
            let mut tampered = nonce.clone().into_bytes();
            tampered[i] = if tampered[i] == b'0' { b'1' } else { b'0' };
            let tampered = String::from_utf8(tampered).unwrap();
            assert_eq!(key.check(&tampered, 1_000, 300), NonceStatus::Invalid);
        }
        let other_key = NonceKey::new([8; 32]);
        assert_eq!(other_key.check(&nonce, 1_000, 300), NonceStatus::Invalid);
        let too_long = format!("{nonce}00");
        for garbage in ["", "zz", &nonce[..62], &too_long, "é", &"g".repeat(64)] {
            assert_eq!(key.check(garbage, 1_000, 300), NonceStatus::Invalid);
        }
        assert_eq!(format!("{key:?}"), "NonceKey(..)");
    }

    #[test]
    fn answer_then_verify() {
        use Algorithm::*;
        let key = NonceKey::new([1; 32]);
        for alg in [Md5, Md5Sess, Sha256, Sha256Sess] {
            let ch = Challenge::digest("r", &key.issue(50, [9; 8]), alg.clone(), false, None);
            let stored = ha1(&alg.base(), "u", "r", "secret", "", "").unwrap();
            let good = register(&ch, "secret").unwrap().to_string();
            let good = creds(&good);
            assert_eq!(good.effective_algorithm(), alg);
            assert!(verify(&good, "REGISTER", &stored), "{alg}");
            assert!(!verify(&good, "INVITE", &stored), "{alg}");
            let bad = register(&ch, "wrong").unwrap();
            assert!(
                !verify(bad.as_digest().unwrap(), "REGISTER", &stored),
                "{alg}"
            );
            let no_cnonce = DigestCredentials {
                cnonce: None,
                ..good.clone()
            };
            assert!(!verify(&no_cnonce, "REGISTER", &stored));
            assert_eq!(key.check(&good.nonce, 60, 300), NonceStatus::Valid);
        }
    }

    #[test]
    fn legacy_qop_userhash_and_unsupported() {
        // RFC 2069 style: no qop, so neither cnonce nor nc is sent.
        let c = register(&chal("Digest realm=\"r\", nonce=\"n\""), "p").unwrap();
        let c = c.as_digest().unwrap();
        assert_eq!(
            (c.qop.as_ref(), c.nc, c.cnonce.as_ref()),
            (None, None, None)
        );
        let stored = ha1(&Algorithm::Md5, "u", "r", "p", "", "").unwrap();
        assert!(verify(c, "REGISTER", &stored));
        let auth_int = DigestCredentials {
            qop: Some("auth-int".into()),
            nc: Some(1),
            ..c.clone()
        };
        assert!(!verify(&auth_int, "REGISTER", &stored));

        let ch =
            chal("Digest realm=\"r\", nonce=\"n\", qop=\"auth\", userhash=true, algorithm=SHA-256");
        let c = register(&ch, "p").unwrap();
        let c = c.as_digest().unwrap();
        assert!(c.userhash);
        assert_eq!(c.username, Algorithm::Sha256.hash(b"u:r").unwrap());

        let ch = chal("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"");
        assert_eq!(
            register(&ch, "p"),
            Err(DigestError::UnsupportedQop("auth-int".into()))
        );
        let ch = chal("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256");
        let unsupported = DigestError::UnsupportedAlgorithm("SHA-512-256".into());
        assert_eq!(register(&ch, "p"), Err(unsupported));
    }

    #[test]
    fn nc_tracker() {
        let mut t = NcTracker::new(2);
        let steps = [
            ("a", 1, true),
            ("a", 1, false),
            ("a", 3, true),
            ("a", 2, false),
        ];
        // "c" evicts "a", whose history is then forgotten.
        let more = [
            ("b", 1, true),
            ("c", 1, true),
            ("a", 1, true),
            ("c", 1, false),
        ];
        for (nonce, nc, accepted) in steps.into_iter().chain(more) {
            assert_eq!(t.check(nonce, nc), accepted, "{nonce} {nc}");
        }
    }
}
