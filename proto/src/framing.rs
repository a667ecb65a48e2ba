//! Stream framing for TCP/TLS/WebSocket (RFC 3261 §18.3): messages are cut by
//! Content-Length, CRLF keep-alives (RFC 5626 §3.5.1) are reported, and the
//! size is bounded. Like mini-redis `Frame::check`, it tells *incomplete*
//! (wait for more) from *invalid* (close the connection).

use crate::error::ParseError;
use crate::header::{StdHeader, values};
use crate::message::{Message, head_end};
use crate::syntax::trim_ws;
use bytes::{Buf, Bytes, BytesMut};

/// Default bound on one framed message, header and body: 64 KiB.
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024;

/// What [`check`] found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// More bytes are needed.
    Incomplete,
    /// A double-CRLF keep-alive ping of this many bytes (answer with CRLF).
    Ping(usize),
    /// A single-CRLF pong (or stray line end) of this many bytes.
    Pong(usize),
    /// A whole message of this many bytes.
    Message(usize),
}

/// Looks at the start of `buf` without consuming it. `Err` means the stream
/// cannot be resynchronised and must be closed.
pub fn check(buf: &[u8], max: usize) -> Result<Check, ParseError> {
    match buf {
        [] | [b'\r'] | [b'\r', b'\n'] | [b'\r', b'\n', b'\r'] => return Ok(Check::Incomplete),
        [b'\r', b'\n', b'\r', b'\n', ..] => return Ok(Check::Ping(4)),
        [b'\r', b'\n', ..] => return Ok(Check::Pong(2)),
        [b'\n', ..] => return Ok(Check::Pong(1)),
        [b'\r', _, ..] => return Err(ParseError::StartLine("stray CR")),
        _ => {}
    }
    let Some((head_len, body_start)) = head_end(buf) else {
        if buf.len() > max {
            return Err(ParseError::TooLarge {
                size: buf.len(),
                limit: max,
            });
        }
        return Ok(Check::Incomplete);
    };
    let declared = content_length(&buf[..head_len])?;
    let total = body_start
        .checked_add(declared)
        .ok_or(ParseError::TooLarge {
            size: usize::MAX,
            limit: max,
        })?;
    if total > max {
        return Err(ParseError::TooLarge {
            size: total,
            limit: max,
        });
    }
    if buf.len() < total {
        return Ok(Check::Incomplete);
    }
    Ok(Check::Message(total))
}

/// Finds the single Content-Length of a header section (folding allowed).
fn content_length(head: &[u8]) -> Result<usize, ParseError> {
    let head = std::str::from_utf8(head).map_err(|e| ParseError::Utf8 {
        line: 1 + head[..e.valid_up_to()]
            .iter()
            .filter(|&&c| c == b'\n')
            .count(),
    })?;
    let mut found: Option<usize> = None;
    let mut lines = head
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .peekable();
    while let Some((n, line)) = lines.next() {
        let Some((name, first)) = line.split_once(':') else {
            continue;
        };
        if StdHeader::lookup(trim_ws(name)) != Some(StdHeader::ContentLength) {
            continue;
        }
        let mut value = trim_ws(first).to_owned();
        while let Some((_, cont)) = lines.next_if(|(_, l)| l.starts_with([' ', '\t'])) {
            value.push(' ');
            value.push_str(trim_ws(cont));
        }
        let v = values::content_length(&value).map_err(|source| ParseError::Header {
            name: StdHeader::ContentLength.as_str(),
            line: n + 1,
            source,
        })?;
        match found {
            Some(f) if f != v => return Err(ParseError::ConflictingContentLength),
            _ => found = Some(v),
        }
    }
    found.ok_or(ParseError::MissingContentLength)
}

/// One item cut from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framed {
    /// A parsed message.
    Message(Message),
    /// A correctly framed message that does not parse; the stream stays in
    /// sync, so a server may answer it (400/505) and go on.
    Invalid {
        /// Why it does not parse.
        error: ParseError,
        /// Its bytes.
        raw: Bytes,
    },
    /// A CRLFCRLF keep-alive ping; answer with a CRLF pong.
    Ping,
    /// A CRLF pong.
    Pong,
}

/// Buffers stream bytes and cuts them into [`Framed`] items.
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    max: usize,
}

impl Default for Framer {
    fn default() -> Self {
        Framer::new(DEFAULT_MAX_MESSAGE)
    }
}

impl Framer {
    /// A framer bounding each message to `max` bytes.
    pub fn new(max: usize) -> Framer {
        Framer {
            buf: BytesMut::new(),
            max,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered and not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next item, `Ok(None)` when more bytes are needed, `Err` when the
    /// stream is broken and must be closed.
    pub fn decode(&mut self) -> Result<Option<Framed>, ParseError> {
        match check(&self.buf, self.max)? {
            Check::Incomplete => Ok(None),
            Check::Ping(n) => {
                self.buf.advance(n);
                Ok(Some(Framed::Ping))
            }
            Check::Pong(n) => {
                self.buf.advance(n);
                Ok(Some(Framed::Pong))
            }
            Check::Message(n) => {
                let raw = self.buf.split_to(n).freeze();
                Ok(Some(match Message::parse_received(raw.clone()) {
                    Ok(m) => Framed::Message(m),
                    Err(error) => Framed::Invalid { error, raw },
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn keepalives_and_messages() {
        let mut f = Framer::default();
        f.push(b"\r\n\r\n");
        assert_eq!(f.decode().unwrap(), Some(Framed::Ping));
        f.push(b"\r\n");
        assert_eq!(f.decode().unwrap(), None);
        f.push(&MSG[..10]);
        assert_eq!(f.decode().unwrap(), Some(Framed::Pong));
        assert_eq!(f.decode().unwrap(), None);
        f.push(&MSG[10..]);
        match f.decode().unwrap() {
            Some(Framed::Message(m)) => assert_eq!(&m.body()[..], b"hello"),
            other => panic!("{other:?}"),
        }
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn invalid_streams() {
        let no_cl = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n";
        assert_eq!(check(no_cl, 1000), Err(ParseError::MissingContentLength));
        let two = b"OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab";
        assert_eq!(check(two, 1000), Err(ParseError::ConflictingContentLength));
        let neg = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n";
        assert!(matches!(check(neg, 1000), Err(ParseError::Header { .. })));
        let big = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999\r\n\r\n";
        assert!(matches!(check(big, 1000), Err(ParseError::TooLarge { .. })));
        assert!(matches!(
            check(&[b'A'; 2000], 1000),
            Err(ParseError::TooLarge { .. })
        ));
        assert_eq!(check(&MSG[..MSG.len() - 1], 1000), Ok(Check::Incomplete));
        assert_eq!(check(MSG, 1000), Ok(Check::Message(MSG.len())));
    }
}
