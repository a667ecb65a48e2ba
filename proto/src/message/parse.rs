//! The message parser: start line, header lines with folding, the headers
//! kadsip relies on checked against their grammar, and the body.

use super::{Message, Request, Response};
use crate::bytestr::ByteStr;
use crate::error::ParseError;
use crate::header::{CSeq, HeaderName, Headers, NameAddr, StdHeader, values};
use crate::method::Method;
use crate::status::StatusCode;
use crate::syntax::{is_token_byte, is_ws, trim_ws};
use crate::uri::Uri;
use bytes::Bytes;

/// Most header fields one message may carry.
pub const MAX_HEADERS: usize = 256;

/// Finds the end of the header section: `(index of the empty line,
/// index of the first body byte)`. Leading CRLFs are skipped by callers.
/// Lines end in CRLF or, leniently, a bare LF.
pub fn head_end(buf: &[u8]) -> Option<(usize, usize)> {
    scan_head(buf, |_| {})
}

/// [`head_end`], reporting the position of every line feed before the
/// empty line so that the header loop does not search for them again.
#[inline(always)]
fn scan_head(buf: &[u8], mut on_nl: impl FnMut(usize)) -> Option<(usize, usize)> {
    let mut end = None;
    each_line_feed(buf, |nl| {
        let next = nl + 1;
        match buf.get(next) {
            Some(b'\n') => end = Some((next, next + 1)),
            Some(b'\r') if buf.get(next + 1) == Some(&b'\n') => end = Some((next, next + 2)),
            Some(_) => {
                on_nl(nl);
                return true;
            }
            None => {}
        }
        false
    });
    end
}

/// Calls `f` with the index of each `\n` in `buf`, in order, while it
/// returns true. One pass that tests 16 bytes per step and walks the
/// matches as bits: a head has a line feed every 30 bytes or so, and a
/// `memchr` call per line costs more in setup than in search.
#[inline(always)]
fn each_line_feed(buf: &[u8], mut f: impl FnMut(usize) -> bool) {
    let mut i = 0;
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        use std::arch::x86_64::{
            _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        };
        // SAFETY (all three blocks): SSE2 is enabled (checked by the cfg
        // above; it is part of the x86_64 baseline) and `chunk` is 16
        // readable bytes, loaded unaligned.
        let lf = unsafe { _mm_set1_epi8(b'\n' as i8) };
        while let Some(chunk) = buf.get(i..i + 16) {
            let v = unsafe { _mm_loadu_si128(chunk.as_ptr().cast()) };
            let mut bits = unsafe { _mm_movemask_epi8(_mm_cmpeq_epi8(v, lf)) } as u32;
            while bits != 0 {
                if !f(i + bits.trailing_zeros() as usize) {
                    return;
                }
                bits &= bits - 1;
            }
            i += 16;
        }
    }
    for (j, &c) in buf.iter().enumerate().skip(i) {
        if c == b'\n' && !f(j) {
            return;
        }
    }
}

/// Line feeds remembered by [`scan_head`]; longer heads fall back to memchr.
const NL_CAP: usize = 64;

/// Number of leading CR/LF bytes (keep-alives and stray line ends).
pub(crate) fn leading_crlf(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&c| c == b'\r' || c == b'\n')
        .count()
}

/// Which header values the parser checks against their grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Checks {
    /// Every known header (the strict [`Message::parse`]).
    All,
    /// Only what framing needs: Content-Length and CSeq.
    Framing,
    /// For requests, what an element needs before it can answer or relay
    /// them ([`check_received`]); Framing for responses
    /// ([`Message::parse_received`]).
    Received,
}

/// What an element must be able to read in a request before it answers or
/// relays it (RFC 3261 §16.3 step 1): transaction matching (Via, CSeq,
/// Call-ID, the From and To tags), loop and hop control (Max-Forwards),
/// routing (Route) and the extension check (Require, Proxy-Require,
/// §8.2.2.3). Every other component "SHOULD be ignored and remain unchanged
/// when the message is forwarded"; whatever reads one checks it through its
/// typed accessor (the registrar reads the To URI, Contact and Expires).
fn check_received(h: StdHeader, value: &str) -> Result<(), crate::syntax::SyntaxError> {
    match h {
        // The tags: the name-addr structure and its parameters, not the URI.
        StdHeader::From | StdHeader::To => NameAddr::check_params(value),
        StdHeader::Via
        | StdHeader::CallId
        | StdHeader::MaxForwards
        | StdHeader::Route
        | StdHeader::Require
        | StdHeader::ProxyRequire => Headers::validate_value(&HeaderName::Std(h), value),
        _ => Ok(()),
    }
}

pub(super) fn parse(buf: Bytes, checks: Checks) -> Result<Message, ParseError> {
    let skip = leading_crlf(&buf);
    let buf = buf.slice(skip..);
    // The first line feeds, in order, without gaps (a head too long for
    // the array or for u32 positions continues with memchr).
    let mut nls = [0u32; NL_CAP];
    let (mut stored, mut seen) = (0usize, 0usize);
    let (head_len, body_start) = scan_head(&buf, |nl| {
        if stored == seen && stored < NL_CAP {
            if let Ok(p) = u32::try_from(nl) {
                nls[stored] = p;
                stored += 1;
            }
        }
        seen += 1;
    })
    .ok_or(ParseError::Incomplete)?;
    let head = match std::str::from_utf8(&buf[..head_len]) {
        Ok(h) => h,
        Err(e) => {
            let line = 1 + buf[..e.valid_up_to()]
                .iter()
                .filter(|&&c| c == b'\n')
                .count();
            return Err(ParseError::Utf8 { line });
        }
    };
    let head_bytes = ByteStr::from_checked(buf.slice(..head_len), head);
    let head_bs = head_bytes.as_str();
    debug_assert_eq!(head_bs, head);

    let mut lines = Lines {
        s: head_bs,
        pos: 0,
        line: 0,
        // Every line feed of the head but the last (whose successor is the
        // empty line), so the line after the last known one is found by memchr.
        nls: &nls[..stored],
    };
    let start = lines.next_line().ok_or(ParseError::StartLine("empty"))?;
    let start_line = Start::parse(start, &head_bytes)?;
    let request = matches!(start_line, Start::Request(..));

    let mut headers = Headers::with_capacity(16);
    // From the first Content-Length and CSeq fields.
    let mut content_length: Option<usize> = None;
    let mut cseq_method: Option<Method> = None;
    while let Some(line) = lines.next_line() {
        let line_no = lines.line;
        if line.is_empty() {
            break;
        }
        if is_ws(line.as_bytes()[0]) {
            return Err(ParseError::HeaderLine {
                line: line_no,
                reason: "continuation line without a header",
            });
        }
        let (name, colon) = header_name(line, line_no)?;
        let first = &line[colon + 1..];
        // A folded value is joined into its own buffer; an unfolded one is
        // checked in place and shares the datagram.
        let folded = lines.continues().then(|| {
            let mut v = String::from(trim_ws(first));
            while lines.continues() {
                let cont = lines.next_line().unwrap_or("");
                let cont = trim_ws(cont);
                if !cont.is_empty() {
                    if !v.is_empty() {
                        v.push(' ');
                    }
                    v.push_str(cont);
                }
            }
            v
        });
        let value: &str = match &folded {
            Some(v) => v,
            None => trim_ws(first),
        };
        let std = StdHeader::lookup(name);
        if let Some(h) = std {
            let err = |source| ParseError::Header {
                name: h.as_str(),
                line: line_no,
                source,
            };
            // The values the parser itself needs are kept from their check.
            match h {
                StdHeader::ContentLength => {
                    let n = values::content_length(value).map_err(err)?;
                    content_length.get_or_insert(n);
                }
                StdHeader::CSeq => {
                    let c = CSeq::parse(value).map_err(err)?;
                    cseq_method.get_or_insert(c.method);
                }
                _ => match checks {
                    Checks::All => {
                        Headers::validate_value(&HeaderName::Std(h), value).map_err(err)?
                    }
                    Checks::Received if request => check_received(h, value).map_err(err)?,
                    Checks::Received | Checks::Framing => {}
                },
            }
        }
        if headers.len() == MAX_HEADERS {
            return Err(ParseError::TooManyHeaders(MAX_HEADERS));
        }
        // The shared slices are taken once the checks passed (a refused
        // line costs none).
        let value = match folded {
            Some(v) => ByteStr::from(v),
            None => head_bytes.slice_ref(value),
        };
        match std {
            Some(h) => headers.push(HeaderName::Std(h), value),
            None => headers.push(HeaderName::Other(head_bytes.slice_ref(name)), value),
        }
    }

    let available = buf.len() - body_start;
    let body = match content_length {
        Some(declared) => {
            if declared > available {
                return Err(ParseError::BodyTruncated {
                    declared,
                    available,
                });
            }
            buf.slice(body_start..body_start + declared)
        }
        None => buf.slice(body_start..),
    };

    Ok(match start_line {
        Start::Request(method, uri) => {
            if let Some(cseq) = cseq_method {
                // (The first CSeq, as every CSeq, was validated above.)
                if cseq != method {
                    return Err(ParseError::CSeqMismatch {
                        method: method.to_string(),
                        cseq: cseq.to_string(),
                    });
                }
            }
            Message::Request(Request {
                method,
                uri,
                headers,
                body,
            })
        }
        Start::Response(status, reason) => Message::Response(Response {
            status,
            reason,
            headers,
            body,
        }),
    })
}

struct Lines<'a> {
    s: &'a str,
    pos: usize,
    line: usize,
    /// Positions of the line feeds not yet consumed, in order.
    nls: &'a [u32],
}

impl<'a> Lines<'a> {
    fn next_line(&mut self) -> Option<&'a str> {
        if self.pos > self.s.len() {
            return None;
        }
        let rest = &self.s[self.pos..];
        let nl = match self.nls.split_first() {
            Some((&nl, more)) => {
                self.nls = more;
                Some(nl as usize - self.pos)
            }
            None => memchr::memchr(b'\n', rest.as_bytes()),
        };
        let (line, adv) = match nl {
            Some(p) => (&rest[..p], p + 1),
            None => (rest, rest.len() + 1),
        };
        self.pos += adv;
        self.line += 1;
        Some(line.strip_suffix('\r').unwrap_or(line))
    }

    /// True when the next line is a folded continuation.
    fn continues(&self) -> bool {
        self.s.as_bytes().get(self.pos).is_some_and(|&c| is_ws(c))
    }
}

/// The name of a header line and the index of its colon. The usual
/// `Name:` / `Name :` form is read in one pass; anything else goes
/// through the general checks, which pick the error to report.
#[inline]
fn header_name(line: &str, line_no: usize) -> Result<(&str, usize), ParseError> {
    let b = line.as_bytes();
    let i = crate::charclass::span(b, 0, crate::charclass::TOKEN);
    let mut j = i;
    while j < b.len() && is_ws(b[j]) {
        j += 1;
    }
    if i > 0 && b.get(j) == Some(&b':') {
        return Ok((&line[..i], j));
    }
    let colon = memchr::memchr(b':', b).ok_or(ParseError::HeaderLine {
        line: line_no,
        reason: "no ':'",
    })?;
    let name = line[..colon].trim_end_matches([' ', '\t']);
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(ParseError::HeaderLine {
            line: line_no,
            reason: "header name is not a token",
        });
    }
    Ok((name, colon))
}

enum Start {
    Request(Method, Uri),
    Response(StatusCode, ByteStr),
}

impl Start {
    fn parse(line: &str, head: &ByteStr) -> Result<Start, ParseError> {
        if line.len() > 4 && line.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/") {
            let (version, rest) = line
                .split_once(' ')
                .ok_or(ParseError::StartLine("no status code"))?;
            check_version(version)?;
            let code = rest.get(..3).ok_or(ParseError::StatusCode)?;
            let after = &rest.as_bytes()[3..];
            if !code.bytes().all(|c| c.is_ascii_digit())
                || after.first().is_some_and(|&c| c != b' ')
            {
                return Err(ParseError::StatusCode);
            }
            let status = StatusCode::new(code.parse().map_err(|_| ParseError::StatusCode)?)
                .map_err(|_| ParseError::StatusCode)?;
            let reason = rest.get(4..).unwrap_or("");
            if reason.chars().any(|c| c.is_control() && c != '\t') {
                return Err(ParseError::Reason);
            }
            return Ok(Start::Response(status, head.slice_ref(reason)));
        }
        let mut parts = line.split(' ');
        let (Some(m), Some(u), Some(v), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseError::StartLine(
                "a Request-Line is Method SP Request-URI SP SIP-Version, single spaces",
            ));
        };
        if m.is_empty() || u.is_empty() {
            return Err(ParseError::StartLine(
                "a Request-Line is Method SP Request-URI SP SIP-Version, single spaces",
            ));
        }
        check_version(v)?;
        let method = Method::from_bytestr(&head.slice_ref(m))?;
        if u.starts_with('<') {
            return Err(ParseError::RequestUriForm("enclosed in <>"));
        }
        let uri = Uri::parse(u).map_err(ParseError::RequestUri)?;
        if let Some(sip) = uri.as_sip() {
            if !sip.headers.is_empty() {
                return Err(ParseError::RequestUriForm(
                    "headers are not allowed in a Request-URI",
                ));
            }
        }
        Ok(Start::Request(method, uri))
    }
}

fn check_version(v: &str) -> Result<(), ParseError> {
    let b = v.as_bytes();
    if b.len() >= 4 && b[..4].eq_ignore_ascii_case(b"SIP/") {
        if &v[4..] == "2.0" {
            return Ok(());
        }
        let (maj, min) = v[4..].split_once('.').unwrap_or(("", ""));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        if digits(maj) && digits(min) {
            return Err(ParseError::Version(v.chars().take(32).collect()));
        }
    }
    Err(ParseError::StartLine("bad SIP-Version"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_feeds_found_in_order_across_blocks_and_stop_on_request() {
        // Line feeds at every offset around the 16-byte steps, and none.
        for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 100] {
            for step in [1usize, 2, 3, 7, 16, 17] {
                let buf: Vec<u8> = (0..len)
                    .map(|i| if i % step == step - 1 { b'\n' } else { b'x' })
                    .collect();
                let want: Vec<usize> = (0..len).filter(|&i| buf[i] == b'\n').collect();
                let mut got = Vec::new();
                each_line_feed(&buf, |p| {
                    got.push(p);
                    true
                });
                assert_eq!(got, want, "len {len} step {step}");
                // Stopping after the second match calls no further.
                let mut seen = 0;
                each_line_feed(&buf, |_| {
                    seen += 1;
                    seen < 2
                });
                assert_eq!(seen, want.len().min(2), "len {len} step {step}");
            }
        }
    }

    #[test]
    fn status_lines() {
        let status = |line: &str| {
            let msg = format!("{line}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
            match parse(Bytes::from(msg), Checks::All) {
                Ok(Message::Response(r)) => Ok((r.status.as_u16(), r.reason.to_string())),
                Ok(Message::Request(_)) => panic!("{line}: a request"),
                Err(e) => Err(e),
            }
        };
        assert_eq!(status("SIP/2.0 200 OK").unwrap(), (200, "OK".into()));
        assert_eq!(status("sip/2.0 486 Busy").unwrap(), (486, "Busy".into()));
        assert_eq!(status("SIP/2.0 180").unwrap(), (180, String::new()));
        assert_eq!(status("SIP/2.0 200 Très\tbien").unwrap().1, "Très\tbien");
        for bad in [
            "SIP/2.0 2000 OK",
            "SIP/2.0 20 OK",
            "SIP/2.0 2x0 OK",
            "SIP/2.0 099 X",
        ] {
            assert_eq!(status(bad), Err(ParseError::StatusCode), "{bad}");
        }
        for bad in [
            "SIP/2.0 200 O\u{7f}K",
            "SIP/2.0 200 O\u{85}K",
            "SIP/2.0 200 O\u{1}K",
        ] {
            assert_eq!(status(bad), Err(ParseError::Reason), "{bad:?}");
        }
        assert!(matches!(
            status("SIP/3.0 200 OK"),
            Err(ParseError::Version(_))
        ));
    }

    #[test]
    fn head_end_needs_the_empty_line() {
        assert_eq!(head_end(b"A: b\r\n\r\nbody"), Some((6, 8)));
        assert_eq!(head_end(b"A: b\n\nbody"), Some((5, 6)));
        assert_eq!(head_end(b"A: b\r\n"), None);
        assert_eq!(head_end(b"A: b\r\n\r"), None);
        let long = format!("{}\r\n\r\n", "Via: x\r\n".repeat(40));
        assert_eq!(head_end(long.as_bytes()), Some((320, 322)));
    }
}
