//! Lexical building blocks of the RFC 3261 §25 grammar (tokens, LWS, quoted
//! strings, parameter lists, comma lists) shared by every header parser.

use thiserror::Error;

/// What is wrong with a header value, with the byte offset inside the value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SyntaxError {
    /// The value is empty where the grammar needs something.
    #[error("empty value")]
    Empty,
    /// A character the grammar does not allow at this place.
    #[error("unexpected {found} at offset {at} (expected {expected})")]
    Unexpected {
        /// What was found, printed for humans (`'x'`, `end of value`).
        found: Found,
        /// Byte offset in the (unfolded) value.
        at: usize,
        /// What the grammar wanted there.
        expected: &'static str,
    },
    /// A quoted string without its closing quote.
    #[error("unterminated quoted string starting at offset {0}")]
    UnterminatedQuote(usize),
    /// A `<` without its `>`.
    #[error("unterminated '<' starting at offset {0}")]
    UnterminatedAngle(usize),
    /// A parameter with an empty name (`;;` or `;=x`).
    #[error("empty parameter name at offset {0}")]
    EmptyParam(usize),
    /// An empty element in a comma-separated list.
    #[error("empty list element at offset {0}")]
    EmptyElement(usize),
    /// A number that does not fit its field.
    #[error("number {0} out of range (maximum {1})")]
    OutOfRange(String, u64),
    /// A URI inside the value is malformed.
    #[error("bad URI: {0}")]
    Uri(#[from] crate::uri::UriError),
}

/// A character found by the parser, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found(pub Option<char>);

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(c) if c.is_ascii_graphic() => write!(f, "'{c}'"),
            Some(c) => write!(f, "{:?}", c),
            None => f.write_str("end of value"),
        }
    }
}

#[cold]
#[inline(never)]
pub(crate) fn unexpected(s: &str, at: usize, expected: &'static str) -> SyntaxError {
    SyntaxError::Unexpected {
        found: Found(s.get(at..).and_then(|r| r.chars().next())),
        at,
        expected,
    }
}

/// `token` characters: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~".
#[inline(always)]
pub fn is_token_byte(b: u8) -> bool {
    crate::charclass::is(b, crate::charclass::TOKEN)
}

/// True when `s` is a non-empty `token`.
#[inline]
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && crate::charclass::span(s.as_bytes(), 0, crate::charclass::TOKEN) == s.len()
}

/// `word` characters (Call-ID): token characters plus `( ) < > : \ " / [ ] ? { }`.
#[inline(always)]
pub fn is_word_byte(b: u8) -> bool {
    crate::charclass::is(b, crate::charclass::WORD)
}

/// Whitespace inside an unfolded header value.
#[inline(always)]
pub const fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Index of the first non-whitespace byte at or after `i`.
#[inline]
pub fn skip_ws(s: &str, mut i: usize) -> usize {
    let b = s.as_bytes();
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    i
}

/// Trims SP/HTAB on both sides.
#[inline]
pub fn trim_ws(s: &str) -> &str {
    let b = s.as_bytes();
    let mut start = 0;
    let mut end = b.len();
    while start < end && is_ws(b[start]) {
        start += 1;
    }
    while end > start && is_ws(b[end - 1]) {
        end -= 1;
    }
    // SP and HTAB are ASCII, so these are char boundaries.
    &s[start..end]
}

/// End index (exclusive) of the token starting at `i`.
#[inline]
pub fn token_end(s: &str, i: usize) -> usize {
    crate::charclass::span(s.as_bytes(), i, crate::charclass::TOKEN)
}

/// Scans a quoted-string whose opening `"` is at `start`; returns the index
/// just after the closing quote. Handles quoted-pair escapes.
pub fn quoted_end(s: &str, start: usize) -> Result<usize, SyntaxError> {
    let b = s.as_bytes();
    debug_assert_eq!(b.get(start), Some(&b'"'));
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'"' => return Ok(i + 1),
            b'\\' => {
                // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
                match b.get(i + 1) {
                    Some(&c) if c <= 0x7f && c != b'\r' && c != b'\n' => i += 2,
                    _ => return Err(SyntaxError::UnterminatedQuote(start)),
                }
            }
            b'\r' | b'\n' => return Err(SyntaxError::UnterminatedQuote(start)),
            _ => i += 1,
        }
    }
    Err(SyntaxError::UnterminatedQuote(start))
}

/// The content of a quoted string (without quotes) with escapes resolved.
pub fn unquote(quoted: &str) -> std::borrow::Cow<'_, str> {
    let inner = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or(quoted);
    if !inner.contains('\\') {
        return inner.into();
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// Writes `text` as a quoted-string, escaping `"` and `\`.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Splits a header value at commas that are outside quoted strings and `<>`,
/// returning each trimmed element with its offset. Empty elements are errors.
pub fn split_commas(s: &str) -> Result<Vec<(usize, &str)>, SyntaxError> {
    let mut out = Vec::new();
    for item in CommaIter::new(s) {
        out.push(item?);
    }
    Ok(out)
}

/// Iterator behind [`split_commas`].
pub struct CommaIter<'a> {
    s: &'a str,
    pos: usize,
    done: bool,
}

impl<'a> CommaIter<'a> {
    /// Iterates over the comma-separated elements of `s`.
    pub fn new(s: &'a str) -> Self {
        CommaIter {
            s,
            pos: 0,
            done: false,
        }
    }
}

impl<'a> Iterator for CommaIter<'a> {
    type Item = Result<(usize, &'a str), SyntaxError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let b = self.s.as_bytes();
        let start = self.pos;
        let mut i = start;
        while i < b.len() {
            match b[i] {
                b'"' => match quoted_end(self.s, i) {
                    Ok(e) => i = e,
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                },
                b'<' => match b[i..].iter().position(|&c| c == b'>') {
                    Some(p) => i += p + 1,
                    None => {
                        self.done = true;
                        return Some(Err(SyntaxError::UnterminatedAngle(i)));
                    }
                },
                b',' => break,
                _ => i += 1,
            }
        }
        if i >= b.len() {
            self.done = true;
        } else {
            self.pos = i + 1;
        }
        let raw = &self.s[start..i.min(b.len())];
        let lead = raw.len() - raw.trim_start_matches([' ', '\t']).len();
        let item = trim_ws(raw);
        if item.is_empty() {
            self.done = true;
            return Some(Err(SyntaxError::EmptyElement(start)));
        }
        Some(Ok((start + lead, item)))
    }
}

/// A validated `*( SEMI generic-param )` list kept as its original text;
/// lookups scan it, so parsing allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a> {
    raw: &'a str,
}

impl<'a> Params<'a> {
    /// Parses parameters starting at `i` (which must be at `;` or the end).
    /// Returns the params and the index where they stop (end, or a `,`
    /// when `stop_at_comma`).
    pub fn parse(s: &'a str, i: usize) -> Result<Params<'a>, SyntaxError> {
        Self::parse_with(s, i, |_, _| Ok(()))
    }

    /// Like [`Params::parse`], calling `check(name, value)` for each
    /// parameter in the same pass (values keep their quotes).
    pub fn parse_with(
        s: &'a str,
        i: usize,
        mut check: impl FnMut(&'a str, Option<&'a str>) -> Result<(), SyntaxError>,
    ) -> Result<Params<'a>, SyntaxError> {
        let b = s.as_bytes();
        let start = i;
        let mut i = skip_ws(s, i);
        while i < b.len() {
            if b[i] != b';' {
                return Err(unexpected(s, i, "';'"));
            }
            i = skip_ws(s, i + 1);
            let name_end = token_end(s, i);
            if name_end == i {
                return Err(SyntaxError::EmptyParam(i));
            }
            let name = &s[i..name_end];
            i = skip_ws(s, name_end);
            let mut value = None;
            if i < b.len() && b[i] == b'=' {
                let vs = skip_ws(s, i + 1);
                let ve = gen_value_end(s, vs)?;
                value = Some(&s[vs..ve]);
                i = skip_ws(s, ve);
            }
            check(name, value)?;
        }
        Ok(Params { raw: &s[start..] })
    }

    /// The original text of the parameters (starting with `;` or empty).
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// Iterates `(name, value)`; values keep their quotes if quoted.
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter { s: self.raw, i: 0 }
    }

    /// The value of parameter `name` (case-insensitive): `Some(None)` when it
    /// is present without a value.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// True when `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// True when there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// Iterator over [`Params`].
pub struct ParamIter<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a str, Option<&'a str>);

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.s;
        let b = s.as_bytes();
        let mut i = skip_ws(s, self.i);
        if i >= b.len() || b[i] != b';' {
            return None;
        }
        i = skip_ws(s, i + 1);
        let ne = token_end(s, i);
        let name = &s[i..ne];
        i = skip_ws(s, ne);
        let mut value = None;
        if i < b.len() && b[i] == b'=' {
            let vs = skip_ws(s, i + 1);
            let ve = gen_value_end(s, vs).unwrap_or(b.len());
            value = Some(&s[vs..ve]);
            i = ve;
        }
        self.i = i;
        Some((name, value))
    }
}

/// End of a `gen-value` (token / host / quoted-string) starting at `i`.
/// Hosts include IPv6 references, so `[`, `]` and `:` are accepted.
#[inline]
pub fn gen_value_end(s: &str, i: usize) -> Result<usize, SyntaxError> {
    let b = s.as_bytes();
    if b.get(i) == Some(&b'"') {
        return quoted_end(s, i);
    }
    let j = crate::charclass::span(b, i, crate::charclass::GEN_VALUE);
    if j == i {
        return Err(unexpected(s, i, "parameter value"));
    }
    Ok(j)
}

/// Parses an unsigned decimal with an upper bound, naming `what` in errors.
#[inline]
pub fn parse_u64(s: &str, max: u64) -> Result<u64, SyntaxError> {
    let t = trim_ws(s);
    if t.is_empty() {
        return Err(SyntaxError::Empty);
    }
    if let Some(p) = t.bytes().position(|b| !b.is_ascii_digit()) {
        return Err(unexpected(t, p, "digit"));
    }
    let mut v: u64 = 0;
    for b in t.bytes() {
        v = match v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
        {
            Some(v) if v <= max => v,
            _ => return Err(SyntaxError::OutOfRange(t.chars().take(40).collect(), max)),
        };
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_respect_quotes_and_angles() {
        let v = r#""a, b" <sip:x@y;p=1,2>, <sip:z@w> ;q=0.5"#;
        let parts: Vec<_> = split_commas(v).unwrap().into_iter().map(|p| p.1).collect();
        assert_eq!(parts, [r#""a, b" <sip:x@y;p=1,2>"#, "<sip:z@w> ;q=0.5"]);
        assert!(matches!(
            split_commas("a,,b"),
            Err(SyntaxError::EmptyElement(_))
        ));
        assert!(matches!(
            split_commas("\"a, b"),
            Err(SyntaxError::UnterminatedQuote(0))
        ));
    }

    #[test]
    fn params_validate_and_lookup() {
        let p = Params::parse(" ; tag = 98asjd8 ;lr; q=\"x;y\"", 0).unwrap();
        assert_eq!(p.get("TAG"), Some(Some("98asjd8")));
        assert_eq!(p.get("lr"), Some(None));
        assert_eq!(p.get("q"), Some(Some("\"x;y\"")));
        assert_eq!(p.get("nope"), None);
        assert!(matches!(
            Params::parse(";;", 0),
            Err(SyntaxError::EmptyParam(1))
        ));
        assert!(Params::parse(";a=", 0).is_err());
        assert!(Params::parse(" x", 0).is_err());
    }

    #[test]
    fn quoted_strings() {
        assert_eq!(quoted_end(r#""a\"b" c"#, 0), Ok(6));
        assert_eq!(unquote(r#""a\"b\\""#), "a\"b\\");
        assert_eq!(quote("a\"b"), r#""a\"b""#);
        assert!(quoted_end("\"abc\\", 0).is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(" 0068 ", 255), Ok(68));
        assert!(matches!(
            parse_u64("300", 255),
            Err(SyntaxError::OutOfRange(..))
        ));
        assert!(parse_u64("-1", 100).is_err());
        assert!(matches!(
            parse_u64("99999999999999999999999999", u64::MAX),
            Err(SyntaxError::OutOfRange(..))
        ));
        // A stray character is named even after the value overflowed.
        assert!(matches!(
            parse_u64("99999999999999999999999999x", u64::MAX),
            Err(SyntaxError::Unexpected { at: 26, .. })
        ));
        assert_eq!(parse_u64("18446744073709551615", u64::MAX), Ok(u64::MAX));
        assert!(parse_u64("18446744073709551616", u64::MAX).is_err());
        assert!(matches!(parse_u64(" ", 9), Err(SyntaxError::Empty)));
    }
}
