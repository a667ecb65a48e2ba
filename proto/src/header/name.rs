//! Header names from one table: canonical spelling, compact form (RFC 3261
//! §7.3.3 and extensions) and how many values each may carry.

use crate::bytestr::ByteStr;
use std::fmt;

/// How a header carries values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// At most one header field with one value (From, To, Call-ID, CSeq, …).
    Single,
    /// A comma-separated list; may be split over several header fields.
    List,
    /// Opaque text or values that may contain unquoted commas (Date, challenges).
    Opaque,
}

macro_rules! std_headers {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, $compact:expr, $arity:ident; )*) => {
        /// A header name known to kadsip.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum StdHeader {
            $( $(#[$doc])* $variant, )*
        }

        const TABLE: &[(StdHeader, &str, Option<u8>, Arity)] = &[
            $( (StdHeader::$variant, $name, $compact, Arity::$arity), )*
        ];

        impl StdHeader {
            /// Canonical spelling.
            pub const fn as_str(self) -> &'static str {
                match self { $( StdHeader::$variant => $name, )* }
            }
            /// The compact form, if the header has one.
            pub const fn compact(self) -> Option<char> {
                match self { $( StdHeader::$variant => { let c: Option<u8> = $compact; match c { Some(c) => Some(c as char), None => None } }, )* }
            }
            /// How the header carries values.
            pub const fn arity(self) -> Arity {
                match self { $( StdHeader::$variant => Arity::$arity, )* }
            }
        }
    };
}

std_headers! {
    /// Accept (RFC 3261).
    Accept => "Accept", None, List;
    /// Accept-Contact (RFC 3841).
    AcceptContact => "Accept-Contact", Some(b'a'), List;
    /// Accept-Encoding (RFC 3261).
    AcceptEncoding => "Accept-Encoding", None, List;
    /// Accept-Language (RFC 3261).
    AcceptLanguage => "Accept-Language", None, List;
    /// Alert-Info (RFC 3261).
    AlertInfo => "Alert-Info", None, List;
    /// Allow (RFC 3261).
    Allow => "Allow", None, List;
    /// Allow-Events (RFC 6665).
    AllowEvents => "Allow-Events", Some(b'u'), List;
    /// Authentication-Info (RFC 3261).
    AuthenticationInfo => "Authentication-Info", None, Opaque;
    /// Authorization (RFC 3261).
    Authorization => "Authorization", None, Opaque;
    /// Call-ID (RFC 3261).
    CallId => "Call-ID", Some(b'i'), Single;
    /// Call-Info (RFC 3261).
    CallInfo => "Call-Info", None, List;
    /// Contact (RFC 3261).
    Contact => "Contact", Some(b'm'), List;
    /// Content-Disposition (RFC 3261).
    ContentDisposition => "Content-Disposition", None, Single;
    /// Content-Encoding (RFC 3261).
    ContentEncoding => "Content-Encoding", Some(b'e'), List;
    /// Content-Language (RFC 3261).
    ContentLanguage => "Content-Language", None, List;
    /// Content-Length (RFC 3261).
    ContentLength => "Content-Length", Some(b'l'), Single;
    /// Content-Type (RFC 3261).
    ContentType => "Content-Type", Some(b'c'), Single;
    /// CSeq (RFC 3261).
    CSeq => "CSeq", None, Single;
    /// Date (RFC 3261).
    Date => "Date", None, Opaque;
    /// Error-Info (RFC 3261).
    ErrorInfo => "Error-Info", None, List;
    /// Event (RFC 6665).
    Event => "Event", Some(b'o'), Single;
    /// Expires (RFC 3261).
    Expires => "Expires", None, Single;
    /// From (RFC 3261).
    From => "From", Some(b'f'), Single;
    /// Identity (RFC 8224).
    Identity => "Identity", Some(b'y'), Opaque;
    /// In-Reply-To (RFC 3261).
    InReplyTo => "In-Reply-To", None, List;
    /// Max-Forwards (RFC 3261).
    MaxForwards => "Max-Forwards", None, Single;
    /// MIME-Version (RFC 3261).
    MimeVersion => "MIME-Version", None, Single;
    /// Min-Expires (RFC 3261).
    MinExpires => "Min-Expires", None, Single;
    /// Min-SE (RFC 4028).
    MinSe => "Min-SE", None, Single;
    /// Organization (RFC 3261).
    Organization => "Organization", None, Opaque;
    /// Path (RFC 3327).
    Path => "Path", None, List;
    /// Priority (RFC 3261).
    Priority => "Priority", None, Single;
    /// Proxy-Authenticate (RFC 3261).
    ProxyAuthenticate => "Proxy-Authenticate", None, Opaque;
    /// Proxy-Authorization (RFC 3261).
    ProxyAuthorization => "Proxy-Authorization", None, Opaque;
    /// Proxy-Require (RFC 3261).
    ProxyRequire => "Proxy-Require", None, List;
    /// RAck (RFC 3262).
    RAck => "RAck", None, Single;
    /// Reason (RFC 3326).
    Reason => "Reason", None, List;
    /// Record-Route (RFC 3261).
    RecordRoute => "Record-Route", None, List;
    /// Refer-To (RFC 3515).
    ReferTo => "Refer-To", Some(b'r'), Single;
    /// Referred-By (RFC 3892).
    ReferredBy => "Referred-By", Some(b'b'), Single;
    /// Reject-Contact (RFC 3841).
    RejectContact => "Reject-Contact", Some(b'j'), List;
    /// Reply-To (RFC 3261).
    ReplyTo => "Reply-To", None, Single;
    /// Request-Disposition (RFC 3841).
    RequestDisposition => "Request-Disposition", Some(b'd'), List;
    /// Require (RFC 3261).
    Require => "Require", None, List;
    /// Retry-After (RFC 3261).
    RetryAfter => "Retry-After", None, Single;
    /// Route (RFC 3261).
    Route => "Route", None, List;
    /// RSeq (RFC 3262).
    RSeq => "RSeq", None, Single;
    /// Server (RFC 3261).
    Server => "Server", None, Opaque;
    /// Service-Route (RFC 3608).
    ServiceRoute => "Service-Route", None, List;
    /// Session-Expires (RFC 4028).
    SessionExpires => "Session-Expires", Some(b'x'), Single;
    /// Subject (RFC 3261).
    Subject => "Subject", Some(b's'), Opaque;
    /// Subscription-State (RFC 6665).
    SubscriptionState => "Subscription-State", None, Single;
    /// Supported (RFC 3261).
    Supported => "Supported", Some(b'k'), List;
    /// Timestamp (RFC 3261).
    Timestamp => "Timestamp", None, Single;
    /// To (RFC 3261).
    To => "To", Some(b't'), Single;
    /// Unsupported (RFC 3261).
    Unsupported => "Unsupported", None, List;
    /// User-Agent (RFC 3261).
    UserAgent => "User-Agent", None, Opaque;
    /// Via (RFC 3261).
    Via => "Via", Some(b'v'), List;
    /// Warning (RFC 3261).
    Warning => "Warning", None, List;
    /// WWW-Authenticate (RFC 3261).
    WwwAuthenticate => "WWW-Authenticate", None, Opaque;
}

impl StdHeader {
    /// Looks a received name up, case-insensitively, including compact forms.
    #[inline]
    pub fn lookup(name: &str) -> Option<StdHeader> {
        let b = name.as_bytes();
        if b.len() == 1 {
            return TABLE.get(COMPACT[b[0] as usize] as usize).map(|e| e.0);
        }
        // Buckets by (length, first letter) make this a handful of compares,
        // all of the same length.
        for &i in &INDEX[bucket_of(b)?] {
            let lower = LOWER.get(i as usize)?;
            // Same length by construction of the bucket; no early exit, so
            // the comparison has no branch per byte.
            let diff = lower
                .iter()
                .zip(b)
                .fold(0u8, |d, (c, x)| d | (c ^ x.to_ascii_lowercase()));
            if diff == 0 {
                return Some(TABLE[i as usize].0);
            }
        }
        None
    }

    /// Every known header.
    pub fn all() -> impl Iterator<Item = StdHeader> {
        TABLE.iter().map(|e| e.0)
    }
}

/// Slots per bucket of [`INDEX`].
const SLOTS: usize = 4;
/// Buckets: names of length 2..=20 × first letter a..=z.
const BUCKETS: usize = 19 * 26;

const fn bucket_of(b: &[u8]) -> Option<usize> {
    let len = b.len();
    if len < 2 || len > 20 {
        return None;
    }
    let first = b[0].to_ascii_lowercase();
    if !first.is_ascii_lowercase() {
        return None;
    }
    Some((len - 2) * 26 + (first - b'a') as usize)
}

/// Table rows per (length, first letter), `u8::MAX` marking empty slots;
/// built at compile time.
static INDEX: [[u8; SLOTS]; BUCKETS] = {
    let mut index = [[u8::MAX; SLOTS]; BUCKETS];
    let mut i = 0;
    while i < TABLE.len() {
        if let Some(k) = bucket_of(TABLE[i].1.as_bytes()) {
            let mut slot = 0;
            while index[k][slot] != u8::MAX {
                slot += 1; // a full bucket fails the build (index out of bounds)
            }
            index[k][slot] = i as u8;
        }
        i += 1;
    }
    index
};

/// Longest name in the table.
const MAX_NAME: usize = 20;

/// Each row's name in lower case, zero-padded (a received name is compared
/// over its own length, which equals the row's within a bucket).
static LOWER: [[u8; MAX_NAME]; TABLE.len()] = {
    let mut t = [[0u8; MAX_NAME]; TABLE.len()];
    let mut i = 0;
    while i < TABLE.len() {
        let name = TABLE[i].1.as_bytes();
        let mut k = 0;
        while k < name.len() {
            t[i][k] = name[k].to_ascii_lowercase();
            k += 1;
        }
        i += 1;
    }
    t
};

/// Table rows by compact form, either case (`u8::MAX`: none).
static COMPACT: [u8; 256] = {
    let mut t = [u8::MAX; 256];
    let mut i = 0;
    while i < TABLE.len() {
        if let Some(c) = TABLE[i].2 {
            t[c as usize] = i as u8;
            t[c.to_ascii_uppercase() as usize] = i as u8;
        }
        i += 1;
    }
    t
};

/// A header name: a known one (serialized in its canonical spelling) or any
/// other token, kept byte for byte.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum HeaderName {
    /// A header in kadsip's table.
    Std(StdHeader),
    /// Any other header, spelled as received.
    Other(ByteStr),
}

impl HeaderName {
    /// Classifies a received name (which the caller has checked is a token).
    pub fn from_received(name: ByteStr) -> HeaderName {
        match StdHeader::lookup(&name) {
            Some(h) => HeaderName::Std(h),
            None => HeaderName::Other(name),
        }
    }

    /// The name as it will be written.
    pub fn as_str(&self) -> &str {
        match self {
            HeaderName::Std(h) => h.as_str(),
            HeaderName::Other(s) => s,
        }
    }

    /// Case-insensitive comparison with a name or compact form.
    pub fn is(&self, name: &str) -> bool {
        match self {
            HeaderName::Std(h) => StdHeader::lookup(name) == Some(*h),
            HeaderName::Other(s) => s.eq_ignore_ascii_case(name),
        }
    }

    /// How the header carries values (unknown headers are opaque).
    pub fn arity(&self) -> Arity {
        match self {
            HeaderName::Std(h) => h.arity(),
            HeaderName::Other(_) => Arity::Opaque,
        }
    }
}

impl From<StdHeader> for HeaderName {
    fn from(h: StdHeader) -> Self {
        HeaderName::Std(h)
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_long_compact_and_case() {
        assert_eq!(
            StdHeader::lookup("MaX-fOrWaRdS"),
            Some(StdHeader::MaxForwards)
        );
        assert_eq!(StdHeader::lookup("v"), Some(StdHeader::Via));
        assert_eq!(StdHeader::lookup("M"), Some(StdHeader::Contact));
        assert_eq!(StdHeader::lookup("l"), Some(StdHeader::ContentLength));
        assert_eq!(StdHeader::lookup("C%6Fntact"), None);
        assert_eq!(StdHeader::lookup("q"), None);
    }

    #[test]
    fn compact_forms_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for h in StdHeader::all() {
            if let Some(c) = h.compact() {
                assert!(seen.insert(c), "duplicate compact form {c}");
            }
            assert_eq!(StdHeader::lookup(h.as_str()), Some(h));
        }
    }
}
