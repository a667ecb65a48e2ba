//! Headers as received (ordered, names classified, values zero-copy) and
//! typed, borrowed views of the values kadsip routes on.

mod addr;
mod name;
pub(crate) mod values;
mod via;

pub use addr::{Contact, NameAddr};
pub use name::{Arity, HeaderName, StdHeader};
pub use values::{CSeq, ContentType, RetryAfter};
pub use via::Via;

use crate::bytestr::ByteStr;
use crate::digest::{Challenge, Credentials, DigestError};
use crate::syntax::{CommaIter, SyntaxError};
use crate::warning::Warning;

/// One header field: its name and its unfolded value (leading and trailing
/// whitespace removed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The name.
    pub name: HeaderName,
    /// The value, unfolded.
    pub value: ByteStr,
}

/// The header fields of a message, in order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    /// Room for `n` headers.
    pub fn with_capacity(n: usize) -> Self {
        Headers(Vec::with_capacity(n))
    }

    /// Every header field in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.0.iter()
    }

    /// Number of header fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends a header field.
    #[inline]
    pub fn push(&mut self, name: impl Into<HeaderName>, value: impl Into<ByteStr>) {
        self.0.push(Header {
            name: name.into(),
            value: value.into(),
        });
    }

    /// Inserts a header field before every other field of the same name
    /// (or at the top when there is none), as a proxy pushes Via or Record-Route.
    pub fn push_front(&mut self, name: impl Into<HeaderName>, value: impl Into<ByteStr>) {
        let name = name.into();
        let at = self.0.iter().position(|h| h.name == name).unwrap_or(0);
        self.0.insert(
            at,
            Header {
                name,
                value: value.into(),
            },
        );
    }

    /// The first value of header `h`.
    pub fn get(&self, h: StdHeader) -> Option<&ByteStr> {
        self.0
            .iter()
            .find(|x| x.name == HeaderName::Std(h))
            .map(|x| &x.value)
    }

    /// The first value of a header given by name (any spelling or compact form).
    pub fn get_named(&self, name: &str) -> Option<&ByteStr> {
        self.0.iter().find(|x| x.name.is(name)).map(|x| &x.value)
    }

    /// Every field value of header `h`, unsplit.
    pub fn get_all(&self, h: StdHeader) -> impl Iterator<Item = &ByteStr> {
        self.0
            .iter()
            .filter(move |x| x.name == HeaderName::Std(h))
            .map(|x| &x.value)
    }

    /// How many fields of header `h` there are.
    pub fn count(&self, h: StdHeader) -> usize {
        self.get_all(h).count()
    }

    /// Every comma-separated element of header `h` across all its fields.
    pub fn list(&self, h: StdHeader) -> impl Iterator<Item = Result<&str, SyntaxError>> {
        self.get_all(h)
            .flat_map(|v| CommaIter::new(v.as_str()).map(|r| r.map(|(_, s)| s)))
    }

    /// Removes every field of header `h`.
    pub fn remove(&mut self, h: StdHeader) {
        self.0.retain(|x| x.name != HeaderName::Std(h));
    }

    /// Replaces every field of header `h` with one field holding `value`.
    pub fn set(&mut self, h: StdHeader, value: impl Into<ByteStr>) {
        let value = value.into();
        match self.0.iter().position(|x| x.name == HeaderName::Std(h)) {
            Some(i) => {
                self.0[i].value = value;
                let mut n = 0;
                self.0.retain(|x| {
                    if x.name == HeaderName::Std(h) {
                        n += 1;
                        n == 1
                    } else {
                        true
                    }
                });
            }
            None => self.push(h, value),
        }
    }

    /// Removes the first element of list header `h` (e.g. the top Via or
    /// Route) and returns it; drops the field when it becomes empty.
    pub fn pop_first(&mut self, h: StdHeader) -> Option<ByteStr> {
        let i = self.0.iter().position(|x| x.name == HeaderName::Std(h))?;
        let value = self.0[i].value.clone();
        let mut items = CommaIter::new(value.as_str());
        let first = match items.next() {
            Some(Ok((_, f))) => value.slice_ref(f),
            _ => {
                self.0.remove(i);
                return Some(value);
            }
        };
        let rest_start = first.as_ptr() as usize - value.as_ptr() as usize + first.len();
        let rest = value.as_str()[rest_start..]
            .trim_start_matches([' ', '\t'])
            .strip_prefix(',')
            .map(crate::syntax::trim_ws);
        match rest {
            Some(r) if !r.is_empty() => self.0[i].value = value.slice_ref(r),
            _ => {
                self.0.remove(i);
            }
        }
        Some(first)
    }

    // ---- typed access -------------------------------------------------

    /// All Via entries, topmost first.
    pub fn via(&self) -> Result<Vec<Via<'_>>, SyntaxError> {
        self.list(StdHeader::Via)
            .map(|r| r.and_then(Via::parse))
            .collect()
    }

    /// The topmost Via.
    pub fn top_via(&self) -> Option<Result<Via<'_>, SyntaxError>> {
        self.list(StdHeader::Via)
            .next()
            .map(|r| r.and_then(Via::parse))
    }

    /// From.
    pub fn from(&self) -> Option<Result<NameAddr<'_>, SyntaxError>> {
        self.get(StdHeader::From).map(|v| NameAddr::parse(v))
    }

    /// To.
    pub fn to(&self) -> Option<Result<NameAddr<'_>, SyntaxError>> {
        self.get(StdHeader::To).map(|v| NameAddr::parse(v))
    }

    /// Call-ID.
    pub fn call_id(&self) -> Option<&str> {
        self.get(StdHeader::CallId).map(|v| v.as_str())
    }

    /// CSeq.
    pub fn cseq(&self) -> Option<Result<CSeq, SyntaxError>> {
        self.get(StdHeader::CSeq).map(|v| CSeq::parse(v))
    }

    /// Contact entries (`*` is [`Contact::Star`]).
    pub fn contacts(&self) -> Result<Vec<Contact<'_>>, SyntaxError> {
        self.list(StdHeader::Contact)
            .map(|r| r.and_then(Contact::parse))
            .collect()
    }

    /// Route entries in order.
    pub fn routes(&self) -> Result<Vec<NameAddr<'_>>, SyntaxError> {
        self.list(StdHeader::Route)
            .map(|r| r.and_then(NameAddr::parse))
            .collect()
    }

    /// Record-Route entries in order.
    pub fn record_routes(&self) -> Result<Vec<NameAddr<'_>>, SyntaxError> {
        self.list(StdHeader::RecordRoute)
            .map(|r| r.and_then(NameAddr::parse))
            .collect()
    }

    /// Max-Forwards (0–255).
    pub fn max_forwards(&self) -> Option<Result<u8, SyntaxError>> {
        self.get(StdHeader::MaxForwards)
            .map(|v| values::max_forwards(v))
    }

    /// Expires in seconds.
    pub fn expires(&self) -> Option<Result<u32, SyntaxError>> {
        self.get(StdHeader::Expires)
            .map(|v| values::delta_seconds(v))
    }

    /// Min-Expires in seconds.
    pub fn min_expires(&self) -> Option<Result<u32, SyntaxError>> {
        self.get(StdHeader::MinExpires)
            .map(|v| values::delta_seconds(v))
    }

    /// Content-Length.
    pub fn content_length(&self) -> Option<Result<usize, SyntaxError>> {
        self.get(StdHeader::ContentLength)
            .map(|v| values::content_length(v))
    }

    /// Content-Type.
    pub fn content_type(&self) -> Option<Result<ContentType<'_>, SyntaxError>> {
        self.get(StdHeader::ContentType)
            .map(|v| ContentType::parse(v))
    }

    /// Retry-After.
    pub fn retry_after(&self) -> Option<Result<RetryAfter<'_>, SyntaxError>> {
        self.get(StdHeader::RetryAfter)
            .map(|v| RetryAfter::parse(v))
    }

    /// Warning values.
    pub fn warnings(&self) -> Result<Vec<Warning>, crate::warning::WarningError> {
        let mut out = Vec::new();
        for v in self.get_all(StdHeader::Warning) {
            for item in CommaIter::new(v) {
                let (_, s) = item.map_err(crate::warning::WarningError::from_syntax)?;
                out.push(Warning::parse(s)?);
            }
        }
        Ok(out)
    }

    /// Tokens of a token-list header (Allow, Supported, Require,
    /// Proxy-Require, Unsupported, …), checked to be tokens.
    pub fn tokens(&self, h: StdHeader) -> Result<Vec<&str>, SyntaxError> {
        self.list(h).map(|r| r.and_then(values::token)).collect()
    }

    /// Authorization credentials.
    pub fn authorization(&self) -> impl Iterator<Item = Result<Credentials, DigestError>> {
        self.get_all(StdHeader::Authorization)
            .map(|v| v.parse::<Credentials>())
    }

    /// Proxy-Authorization credentials.
    pub fn proxy_authorization(&self) -> impl Iterator<Item = Result<Credentials, DigestError>> {
        self.get_all(StdHeader::ProxyAuthorization)
            .map(|v| v.parse::<Credentials>())
    }

    /// WWW-Authenticate challenges.
    pub fn www_authenticate(&self) -> impl Iterator<Item = Result<Challenge, DigestError>> {
        self.get_all(StdHeader::WwwAuthenticate)
            .map(|v| v.parse::<Challenge>())
    }

    /// Proxy-Authenticate challenges.
    pub fn proxy_authenticate(&self) -> impl Iterator<Item = Result<Challenge, DigestError>> {
        self.get_all(StdHeader::ProxyAuthenticate)
            .map(|v| v.parse::<Challenge>())
    }

    /// Checks the syntax of one header field value the way the parser does
    /// for the headers kadsip relies on; other headers are accepted as text.
    pub fn validate_value(name: &HeaderName, value: &str) -> Result<(), SyntaxError> {
        let HeaderName::Std(h) = name else {
            return Ok(());
        };
        match h {
            StdHeader::Via => each(value, |s| Via::parse(s).map(drop)),
            StdHeader::From | StdHeader::To => NameAddr::parse(value).map(drop),
            StdHeader::Contact => each(value, |s| Contact::parse(s).map(drop)),
            StdHeader::Route | StdHeader::RecordRoute => {
                each(value, |s| NameAddr::parse(s).map(drop))
            }
            StdHeader::CallId => values::call_id(value),
            StdHeader::CSeq => CSeq::parse(value).map(drop),
            StdHeader::MaxForwards => values::max_forwards(value).map(drop),
            StdHeader::Expires | StdHeader::MinExpires => values::delta_seconds(value).map(drop),
            StdHeader::ContentLength => values::content_length(value).map(drop),
            StdHeader::ContentType => ContentType::parse(value).map(drop),
            StdHeader::RetryAfter => RetryAfter::parse(value).map(drop),
            StdHeader::Warning => each(value, |s| {
                Warning::parse(s).map(drop).map_err(|_| {
                    crate::syntax::unexpected(
                        s,
                        0,
                        "warning-value (3-digit code, agent, quoted text)",
                    )
                })
            }),
            StdHeader::Allow
            | StdHeader::Supported
            | StdHeader::Require
            | StdHeader::ProxyRequire
            | StdHeader::Unsupported => {
                if is_token_list(value.as_bytes()) {
                    return Ok(());
                }
                // The general path finds and reports the fault.
                each(value, |s| values::token(s).map(drop))
            }
            _ => Ok(()),
        }
    }
}

/// True when `v` is `token *(LWS "," LWS token)` with optional whitespace
/// around the ends: what [`each`] with [`values::token`] accepts, in one pass.
fn is_token_list(v: &[u8]) -> bool {
    use crate::syntax::is_ws;
    let mut i = 0;
    loop {
        while i < v.len() && is_ws(v[i]) {
            i += 1;
        }
        let e = crate::charclass::span(v, i, crate::charclass::TOKEN);
        if e == i {
            return false;
        }
        i = e;
        while i < v.len() && is_ws(v[i]) {
            i += 1;
        }
        match v.get(i) {
            None => return true,
            Some(b',') => i += 1,
            Some(_) => return false,
        }
    }
}

fn each(value: &str, f: impl Fn(&str) -> Result<(), SyntaxError>) -> Result<(), SyntaxError> {
    // Most values hold one element: skip the list scan when there is no comma.
    if memchr::memchr(b',', value.as_bytes()).is_none() {
        let v = crate::syntax::trim_ws(value);
        if v.is_empty() {
            return Err(SyntaxError::EmptyElement(0));
        }
        return f(v);
    }
    for item in CommaIter::new(value) {
        f(item?.1)?;
    }
    Ok(())
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<Header> for Headers {
    fn from_iter<T: IntoIterator<Item = Header>>(iter: T) -> Self {
        Headers(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lists_agree_with_the_general_check() {
        for v in [
            "INVITE, ACK,CANCEL",
            " a ",
            "a,,b",
            "a b",
            "",
            ",a",
            "a,",
            "a;b",
            "\"a\"",
            "a\t,\tb",
        ] {
            let general = each(v, |s| values::token(s).map(drop)).is_ok();
            assert_eq!(is_token_list(v.as_bytes()), general, "{v:?}");
        }
    }
}
