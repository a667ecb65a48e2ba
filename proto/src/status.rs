//! SIP response codes from one table: the IANA "Response Codes" registry plus
//! the RFC 2543-only codes (marked obsolete), each with its default reason
//! phrase and reference. Unknown codes are kept and still have a class.

use std::fmt;

/// The class of a status code, from its first digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusClass {
    /// 1xx.
    Provisional,
    /// 2xx.
    Success,
    /// 3xx.
    Redirection,
    /// 4xx.
    ClientError,
    /// 5xx.
    ServerError,
    /// 6xx.
    GlobalFailure,
}

impl StatusClass {
    /// The class of `code` (100–699; others are clamped to the nearest class).
    pub const fn of(code: u16) -> StatusClass {
        match code / 100 {
            0 | 1 => StatusClass::Provisional,
            2 => StatusClass::Success,
            3 => StatusClass::Redirection,
            4 => StatusClass::ClientError,
            5 => StatusClass::ServerError,
            _ => StatusClass::GlobalFailure,
        }
    }

    /// `provisional`, `success`, `redirection`, `client-error`, `server-error`, `global-failure`.
    pub const fn as_str(self) -> &'static str {
        match self {
            StatusClass::Provisional => "provisional",
            StatusClass::Success => "success",
            StatusClass::Redirection => "redirection",
            StatusClass::ClientError => "client-error",
            StatusClass::ServerError => "server-error",
            StatusClass::GlobalFailure => "global-failure",
        }
    }

    const fn generic_reason(self) -> &'static str {
        match self {
            StatusClass::Provisional => "Provisional",
            StatusClass::Success => "Success",
            StatusClass::Redirection => "Redirection",
            StatusClass::ClientError => "Client Error",
            StatusClass::ServerError => "Server Error",
            StatusClass::GlobalFailure => "Global Failure",
        }
    }
}

/// A SIP status code (100–699), known or not.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(u16);

/// A number outside 100–699.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error("status code {0} out of range 100-699")]
pub struct InvalidStatusCode(pub u16);

struct Row {
    code: u16,
    reason: &'static str,
    reference: &'static str,
    obsolete: bool,
}

macro_rules! status_codes {
    ($( $konst:ident = $code:literal, $reason:literal, $rfc:literal $(, $obsolete:ident)?; )*) => {
        impl StatusCode {
            $(
                #[doc = concat!("`", stringify!($code), " ", $reason, "` (", $rfc, ")")]
                pub const $konst: StatusCode = StatusCode($code);
            )*
        }

        const TABLE: &[Row] = &[
            $( Row { code: $code, reason: $reason, reference: $rfc, obsolete: status_codes!(@obs $($obsolete)?) }, )*
        ];
    };
    (@obs obsolete) => { true };
    (@obs) => { false };
}

status_codes! {
    TRYING = 100, "Trying", "RFC 3261";
    RINGING = 180, "Ringing", "RFC 3261";
    CALL_IS_BEING_FORWARDED = 181, "Call Is Being Forwarded", "RFC 3261";
    QUEUED = 182, "Queued", "RFC 3261";
    SESSION_PROGRESS = 183, "Session Progress", "RFC 3261";
    EARLY_DIALOG_TERMINATED = 199, "Early Dialog Terminated", "RFC 6228";
    OK = 200, "OK", "RFC 3261";
    ACCEPTED = 202, "Accepted", "RFC 6665", obsolete;
    NO_NOTIFICATION = 204, "No Notification", "RFC 5839";
    MULTIPLE_CHOICES = 300, "Multiple Choices", "RFC 3261";
    MOVED_PERMANENTLY = 301, "Moved Permanently", "RFC 3261";
    MOVED_TEMPORARILY = 302, "Moved Temporarily", "RFC 3261";
    USE_PROXY = 305, "Use Proxy", "RFC 3261";
    ALTERNATIVE_SERVICE = 380, "Alternative Service", "RFC 3261";
    BAD_REQUEST = 400, "Bad Request", "RFC 3261";
    UNAUTHORIZED = 401, "Unauthorized", "RFC 3261";
    PAYMENT_REQUIRED = 402, "Payment Required", "RFC 3261";
    FORBIDDEN = 403, "Forbidden", "RFC 3261";
    NOT_FOUND = 404, "Not Found", "RFC 3261";
    METHOD_NOT_ALLOWED = 405, "Method Not Allowed", "RFC 3261";
    NOT_ACCEPTABLE = 406, "Not Acceptable", "RFC 3261";
    PROXY_AUTHENTICATION_REQUIRED = 407, "Proxy Authentication Required", "RFC 3261";
    REQUEST_TIMEOUT = 408, "Request Timeout", "RFC 3261";
    CONFLICT = 409, "Conflict", "RFC 2543", obsolete;
    GONE = 410, "Gone", "RFC 3261";
    LENGTH_REQUIRED = 411, "Length Required", "RFC 2543", obsolete;
    CONDITIONAL_REQUEST_FAILED = 412, "Conditional Request Failed", "RFC 3903";
    REQUEST_ENTITY_TOO_LARGE = 413, "Request Entity Too Large", "RFC 3261";
    REQUEST_URI_TOO_LONG = 414, "Request-URI Too Long", "RFC 3261";
    UNSUPPORTED_MEDIA_TYPE = 415, "Unsupported Media Type", "RFC 3261";
    UNSUPPORTED_URI_SCHEME = 416, "Unsupported URI Scheme", "RFC 3261";
    UNKNOWN_RESOURCE_PRIORITY = 417, "Unknown Resource-Priority", "RFC 4412";
    BAD_EXTENSION = 420, "Bad Extension", "RFC 3261";
    EXTENSION_REQUIRED = 421, "Extension Required", "RFC 3261";
    SESSION_INTERVAL_TOO_SMALL = 422, "Session Interval Too Small", "RFC 4028";
    INTERVAL_TOO_BRIEF = 423, "Interval Too Brief", "RFC 3261";
    BAD_LOCATION_INFORMATION = 424, "Bad Location Information", "RFC 6442";
    BAD_ALERT_MESSAGE = 425, "Bad Alert Message", "RFC 8876";
    USE_IDENTITY_HEADER = 428, "Use Identity Header", "RFC 8224";
    PROVIDE_REFERRER_IDENTITY = 429, "Provide Referrer Identity", "RFC 3892";
    FLOW_FAILED = 430, "Flow Failed", "RFC 5626";
    ANONYMITY_DISALLOWED = 433, "Anonymity Disallowed", "RFC 5079";
    BAD_IDENTITY_INFO = 436, "Bad Identity-Info", "RFC 4474", obsolete;
    UNSUPPORTED_CREDENTIAL = 437, "Unsupported Credential", "RFC 8224";
    INVALID_IDENTITY_HEADER = 438, "Invalid Identity Header", "RFC 8224";
    FIRST_HOP_LACKS_OUTBOUND_SUPPORT = 439, "First Hop Lacks Outbound Support", "RFC 5626";
    MAX_BREADTH_EXCEEDED = 440, "Max-Breadth Exceeded", "RFC 5393";
    BAD_INFO_PACKAGE = 469, "Bad Info Package", "RFC 6086";
    CONSENT_NEEDED = 470, "Consent Needed", "RFC 5360";
    TEMPORARILY_UNAVAILABLE = 480, "Temporarily Unavailable", "RFC 3261";
    CALL_OR_TRANSACTION_DOES_NOT_EXIST = 481, "Call/Transaction Does Not Exist", "RFC 3261";
    LOOP_DETECTED = 482, "Loop Detected", "RFC 3261";
    TOO_MANY_HOPS = 483, "Too Many Hops", "RFC 3261";
    ADDRESS_INCOMPLETE = 484, "Address Incomplete", "RFC 3261";
    AMBIGUOUS = 485, "Ambiguous", "RFC 3261";
    BUSY_HERE = 486, "Busy Here", "RFC 3261";
    REQUEST_TERMINATED = 487, "Request Terminated", "RFC 3261";
    NOT_ACCEPTABLE_HERE = 488, "Not Acceptable Here", "RFC 3261";
    BAD_EVENT = 489, "Bad Event", "RFC 6665";
    REQUEST_PENDING = 491, "Request Pending", "RFC 3261";
    UNDECIPHERABLE = 493, "Undecipherable", "RFC 3261";
    SECURITY_AGREEMENT_REQUIRED = 494, "Security Agreement Required", "RFC 3329";
    SERVER_INTERNAL_ERROR = 500, "Server Internal Error", "RFC 3261";
    NOT_IMPLEMENTED = 501, "Not Implemented", "RFC 3261";
    BAD_GATEWAY = 502, "Bad Gateway", "RFC 3261";
    SERVICE_UNAVAILABLE = 503, "Service Unavailable", "RFC 3261";
    SERVER_TIMEOUT = 504, "Server Time-out", "RFC 3261";
    VERSION_NOT_SUPPORTED = 505, "Version Not Supported", "RFC 3261";
    MESSAGE_TOO_LARGE = 513, "Message Too Large", "RFC 3261";
    PUSH_NOTIFICATION_SERVICE_NOT_SUPPORTED = 555, "Push Notification Service Not Supported", "RFC 8599";
    PRECONDITION_FAILURE = 580, "Precondition Failure", "RFC 3312";
    BUSY_EVERYWHERE = 600, "Busy Everywhere", "RFC 3261";
    DECLINE = 603, "Decline", "RFC 3261";
    DOES_NOT_EXIST_ANYWHERE = 604, "Does Not Exist Anywhere", "RFC 3261";
    NOT_ACCEPTABLE_GLOBAL = 606, "Not Acceptable", "RFC 3261";
    UNWANTED = 607, "Unwanted", "RFC 8197";
    REJECTED = 608, "Rejected", "RFC 8688";
}

impl StatusCode {
    /// A code in 100–699; unknown codes are accepted and keep their class.
    pub const fn new(code: u16) -> Result<StatusCode, InvalidStatusCode> {
        if code >= 100 && code <= 699 {
            Ok(StatusCode(code))
        } else {
            Err(InvalidStatusCode(code))
        }
    }

    /// The number.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    fn row(self) -> Option<&'static Row> {
        TABLE
            .binary_search_by_key(&self.0, |r| r.code)
            .ok()
            .map(|i| &TABLE[i])
    }

    /// The default reason phrase (the class's generic phrase when unknown).
    pub fn reason(self) -> &'static str {
        self.row()
            .map_or(self.class().generic_reason(), |r| r.reason)
    }

    /// True when the code is in the table.
    pub fn is_known(self) -> bool {
        self.row().is_some()
    }

    /// True for codes only RFC 2543 defined, and codes deprecated since.
    pub fn is_obsolete(self) -> bool {
        self.row().is_some_and(|r| r.obsolete)
    }

    /// The defining document.
    pub fn reference(self) -> Option<&'static str> {
        self.row().map(|r| r.reference)
    }

    /// The class.
    pub const fn class(self) -> StatusClass {
        StatusClass::of(self.0)
    }

    /// 1xx.
    pub const fn is_provisional(self) -> bool {
        self.0 < 200
    }

    /// 2xx.
    pub const fn is_success(self) -> bool {
        self.0 >= 200 && self.0 < 300
    }

    /// 200–699.
    pub const fn is_final(self) -> bool {
        self.0 >= 200
    }
}

/// Every code in the table, ascending.
pub fn all() -> impl Iterator<Item = StatusCode> {
    TABLE.iter().map(|r| StatusCode(r.code))
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.reason())
    }
}

impl fmt::Debug for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatusCode({} {})", self.0, self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_and_classed() {
        let codes: Vec<u16> = all().map(StatusCode::as_u16).collect();
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            codes, sorted,
            "table must be sorted and unique for binary search"
        );
        for c in all() {
            assert_eq!(c.class(), StatusClass::of(c.as_u16()));
            assert_eq!(u16::from(c.class() as u8) + 1, c.as_u16() / 100, "{c}");
        }
    }

    #[test]
    fn reasons_and_unknown_codes() {
        assert_eq!(
            StatusCode::TEMPORARILY_UNAVAILABLE.to_string(),
            "480 Temporarily Unavailable"
        );
        assert_eq!(
            StatusCode::TEMPORARILY_UNAVAILABLE.class().as_str(),
            "client-error"
        );
        assert_eq!(StatusCode::REJECTED.reference(), Some("RFC 8688"));
        let u = StatusCode::new(499).unwrap();
        assert!(!u.is_known());
        assert_eq!(u.as_u16(), 499);
        assert_eq!(u.class(), StatusClass::ClientError);
        assert_eq!(u.reason(), "Client Error");
        assert_eq!(
            StatusCode::new(699).unwrap().class(),
            StatusClass::GlobalFailure
        );
        for bad in [0, 99, 700, 4294] {
            assert!(StatusCode::new(bad).is_err());
        }
        assert!(StatusCode::LENGTH_REQUIRED.is_obsolete());
        assert!(!StatusCode::OK.is_obsolete());
        assert!(StatusCode::RINGING.is_provisional() && !StatusCode::RINGING.is_final());
    }
}
