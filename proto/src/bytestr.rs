//! A cheaply clonable, immutable UTF-8 slice of a received buffer, so parsed
//! messages point into the datagram instead of copying every header value.

use bytes::Bytes;
use std::{borrow::Borrow, fmt, hash::Hash, ops::Deref};

/// Immutable UTF-8 text backed by [`Bytes`]; clones share the buffer.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteStr(Bytes);

impl ByteStr {
    /// An empty string.
    pub const fn new() -> Self {
        ByteStr(Bytes::new())
    }

    /// A static string, no allocation.
    pub const fn from_static(s: &'static str) -> Self {
        ByteStr(Bytes::from_static(s.as_bytes()))
    }

    /// Wraps bytes after checking they are UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(ByteStr(bytes))
    }

    /// Wraps bytes the caller has just checked to be UTF-8 (`checked` is
    /// the `&str` view of exactly these bytes); avoids validating twice.
    pub(crate) fn from_checked(bytes: Bytes, checked: &str) -> Self {
        debug_assert_eq!(bytes.as_ptr(), checked.as_ptr());
        debug_assert_eq!(bytes.len(), checked.len());
        ByteStr(bytes)
    }

    /// The sub-slice of `self` that `part` occupies; `part` must borrow from `self`.
    /// Falls back to a copy when it does not (never panics).
    pub fn slice_ref(&self, part: &str) -> ByteStr {
        let base = self.0.as_ptr() as usize;
        let p = part.as_ptr() as usize;
        if p >= base && p + part.len() <= base + self.0.len() {
            ByteStr(self.0.slice(p - base..p - base + part.len()))
        } else {
            ByteStr::from(part)
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor checks or guarantees UTF-8, and slices are
        // only taken at the boundaries of a `&str` borrowed from this value.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }
}

impl Deref for ByteStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for ByteStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Hash for ByteStr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl From<&str> for ByteStr {
    fn from(s: &str) -> Self {
        ByteStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for ByteStr {
    fn from(s: String) -> Self {
        ByteStr(Bytes::from(s))
    }
}

impl PartialEq<str> for ByteStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ByteStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
