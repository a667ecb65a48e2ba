//! Small typed header values: CSeq, numbers, Call-ID, Content-Type,
//! Retry-After and token lists.

use crate::method::Method;
use crate::syntax::{
    Params, SyntaxError, is_token, parse_u64, skip_ws, token_end, trim_ws, unexpected,
};

/// CSeq: sequence number (≤ 2^32−1) and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// The sequence number.
    pub seq: u32,
    /// The method.
    pub method: Method,
}

impl CSeq {
    /// Parses `1*DIGIT LWS Method`.
    pub fn parse(s: &str) -> Result<CSeq, SyntaxError> {
        let s = trim_ws(s);
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(unexpected(s, 0, "CSeq number"));
        }
        let seq = parse_u64(&s[..digits], u64::from(u32::MAX))? as u32;
        let m = skip_ws(s, digits);
        if m == digits {
            return Err(unexpected(s, digits, "whitespace before the CSeq method"));
        }
        let method = Method::parse(&s[m..]).map_err(|_| unexpected(s, m, "CSeq method token"))?;
        Ok(CSeq { seq, method })
    }
}

impl std::fmt::Display for CSeq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// Max-Forwards: 1*DIGIT, at most 255.
pub fn max_forwards(s: &str) -> Result<u8, SyntaxError> {
    parse_u64(s, 255).map(|v| v as u8)
}

/// delta-seconds as used by Expires, Min-Expires and contact expires (≤ 2^32−1).
pub fn delta_seconds(s: &str) -> Result<u32, SyntaxError> {
    parse_u64(s, u64::from(u32::MAX)).map(|v| v as u32)
}

/// Content-Length, bounded so that it always fits memory limits checks.
pub fn content_length(s: &str) -> Result<usize, SyntaxError> {
    parse_u64(s, u64::from(u32::MAX)).map(|v| v as usize)
}

/// Call-ID: `word [ "@" word ]`.
pub fn call_id(s: &str) -> Result<(), SyntaxError> {
    let (a, b) = match s.split_once('@') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let check = |w: &str, off: usize| {
        let end = crate::charclass::span(w.as_bytes(), 0, crate::charclass::WORD);
        if w.is_empty() {
            Err(unexpected(s, off, "Call-ID word"))
        } else if end < w.len() {
            Err(unexpected(s, off + end, "Call-ID word character"))
        } else {
            Ok(())
        }
    };
    check(a, 0)?;
    if let Some(b) = b {
        check(b, a.len() + 1)?;
    }
    Ok(())
}

/// A single token (list element of Allow, Supported, Require, …).
pub fn token(s: &str) -> Result<&str, SyntaxError> {
    let t = trim_ws(s);
    if is_token(t) {
        Ok(t)
    } else {
        Err(unexpected(
            t,
            t.bytes()
                .position(|c| !crate::syntax::is_token_byte(c))
                .unwrap_or(0),
            "token",
        ))
    }
}

/// Content-Type: `type "/" subtype *( SEMI m-parameter )`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType<'a> {
    /// Top-level type (`application`).
    pub kind: &'a str,
    /// Subtype (`sdp`).
    pub subtype: &'a str,
    /// Parameters (`charset`, `boundary`).
    pub params: Params<'a>,
}

impl<'a> ContentType<'a> {
    /// Parses a media-type.
    pub fn parse(s: &'a str) -> Result<ContentType<'a>, SyntaxError> {
        let b = s.as_bytes();
        let i = skip_ws(s, 0);
        let e = token_end(s, i);
        if e == i {
            return Err(unexpected(s, i, "media type"));
        }
        let slash = skip_ws(s, e);
        if b.get(slash) != Some(&b'/') {
            return Err(unexpected(s, slash, "'/' in media type"));
        }
        let j = skip_ws(s, slash + 1);
        let k = token_end(s, j);
        if k == j {
            return Err(unexpected(s, j, "media subtype"));
        }
        Ok(ContentType {
            kind: &s[i..e],
            subtype: &s[j..k],
            params: Params::parse(s, k)?,
        })
    }

    /// True when the type is `kind/subtype` (case-insensitive).
    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind) && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

/// Retry-After: `delta-seconds [ comment ] *( SEMI retry-param )`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryAfter<'a> {
    /// Seconds to wait.
    pub seconds: u32,
    /// The comment, without parentheses.
    pub comment: Option<&'a str>,
    /// Parameters (`duration`).
    pub params: Params<'a>,
}

impl<'a> RetryAfter<'a> {
    /// Parses a Retry-After value.
    pub fn parse(s: &'a str) -> Result<RetryAfter<'a>, SyntaxError> {
        let i = skip_ws(s, 0);
        let digits = s[i..].bytes().take_while(u8::is_ascii_digit).count();
        let seconds = delta_seconds(&s[i..i + digits])?;
        let mut j = skip_ws(s, i + digits);
        let mut comment = None;
        if s.as_bytes().get(j) == Some(&b'(') {
            let mut depth = 0usize;
            let mut end = None;
            for (k, c) in s.bytes().enumerate().skip(j) {
                match c {
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(k);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let end = end.ok_or_else(|| unexpected(s, s.len(), "')' closing the comment"))?;
            comment = Some(&s[j + 1..end]);
            j = end + 1;
        }
        let params = Params::parse(s, j)?;
        if let Some(d) = params.get("duration") {
            delta_seconds(d.unwrap_or(""))?;
        }
        Ok(RetryAfter {
            seconds,
            comment,
            params,
        })
    }

    /// The duration parameter.
    pub fn duration(&self) -> Option<u32> {
        self.params.get("duration")??.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq() {
        let c = CSeq::parse("0009 INVITE").unwrap();
        assert_eq!((c.seq, c.method), (9, Method::INVITE));
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("4294967295 REGISTER").is_ok());
        assert!(CSeq::parse("1INVITE").is_err());
        assert!(CSeq::parse("INVITE").is_err());
        assert!(CSeq::parse("1 IN VITE").is_err());
    }

    #[test]
    fn numbers_and_ids() {
        assert_eq!(max_forwards("0068"), Ok(68));
        assert!(max_forwards("300").is_err());
        assert!(delta_seconds("10000000000000000000000000").is_err());
        assert!(content_length("-999").is_err());
        assert!(call_id("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{").is_ok());
        assert!(call_id("a b").is_err());
        assert!(call_id("a@").is_err());
    }

    #[test]
    fn content_type_and_retry_after() {
        let c = ContentType::parse("multipart/mixed;boundary=7a9cbec02ceef655").unwrap();
        assert!(c.is("Multipart", "MIXED"));
        assert_eq!(c.params.get("boundary"), Some(Some("7a9cbec02ceef655")));
        let r = RetryAfter::parse("18000 (in a (meeting)) ;duration=3600").unwrap();
        assert_eq!(r.seconds, 18000);
        assert_eq!(r.comment, Some("in a (meeting)"));
        assert_eq!(r.duration(), Some(3600));
        assert!(RetryAfter::parse("949302838503028349304023988").is_err());
        assert!(RetryAfter::parse("5 (open").is_err());
    }
}
