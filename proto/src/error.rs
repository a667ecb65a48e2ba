//! The message-layer error: what is wrong with received bytes and where, and
//! which status a server answers with (400, 505, 513) when it answers at all.

use crate::status::StatusCode;
use crate::syntax::SyntaxError;
use crate::uri::UriError;
use thiserror::Error;

/// Why bytes are not a valid SIP message. Lines count from 1 (the start line).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The bytes end before the empty line that closes the header section.
    #[error("incomplete message: no empty line ends the header section")]
    Incomplete,
    /// The message is larger than the configured limit.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Bytes seen so far.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// More header fields than the limit allows.
    #[error("more than {0} header fields")]
    TooManyHeaders(usize),
    /// The header section is not UTF-8.
    #[error("line {line}: invalid UTF-8")]
    Utf8 {
        /// Line holding the bad byte.
        line: usize,
    },
    /// The start line is neither a Request-Line nor a Status-Line.
    #[error("line 1: malformed start line: {0}")]
    StartLine(&'static str),
    /// A SIP version other than 2.0.
    #[error("line 1: unsupported SIP version {0:?}")]
    Version(String),
    /// The method is not a token.
    #[error("line 1: {0}")]
    Method(#[from] crate::method::InvalidMethod),
    /// The Request-URI does not parse.
    #[error("line 1: invalid Request-URI: {0}")]
    RequestUri(#[source] UriError),
    /// The Request-URI has a form a Request-URI may not take.
    #[error("line 1: invalid Request-URI: {0}")]
    RequestUriForm(&'static str),
    /// The status code is not three digits.
    #[error("line 1: status code must be three digits")]
    StatusCode,
    /// The reason phrase holds control characters.
    #[error("line 1: control character in reason phrase")]
    Reason,
    /// A header line without a colon, or with a name that is not a token.
    #[error("line {line}: malformed header line: {reason}")]
    HeaderLine {
        /// Line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A header value that does not follow its grammar.
    #[error("line {line}: invalid {name} header: {source}")]
    Header {
        /// Canonical header name.
        name: &'static str,
        /// Line number.
        line: usize,
        /// What is wrong inside the value.
        #[source]
        source: SyntaxError,
    },
    /// Content-Length says more than the bytes that follow the headers.
    #[error("Content-Length {declared} exceeds the {available} body bytes present")]
    BodyTruncated {
        /// Content-Length.
        declared: usize,
        /// Bytes after the header section.
        available: usize,
    },
    /// A stream message without Content-Length (RFC 3261 §18.3).
    #[error("Content-Length is required on stream transports")]
    MissingContentLength,
    /// Several Content-Length values that disagree.
    #[error("conflicting Content-Length values")]
    ConflictingContentLength,
    /// The CSeq method differs from the request method (RFC 3261 §8.1.1.5).
    #[error("CSeq method {cseq} does not match request method {method}")]
    CSeqMismatch {
        /// Request-Line method.
        method: String,
        /// CSeq method.
        cseq: String,
    },
}

impl ParseError {
    /// The response a server sends for a request that failed this way
    /// (responses are dropped, never answered).
    pub fn status(&self) -> StatusCode {
        match self {
            ParseError::Version(_) => StatusCode::VERSION_NOT_SUPPORTED,
            ParseError::TooLarge { .. } => StatusCode::MESSAGE_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}
