//! Warning header values (RFC 3261 §20.43) and the warn-code registry from one
//! table, so kadsip can say *why* the overlay answered as it did
//! (`Warning: 399 <node> "lookup timed out"`).

use crate::syntax::{is_token_byte, quote, quoted_end, skip_ws, unquote};
use std::fmt;

/// A three-digit warn-code, registered or not.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct WarnCode(u16);

macro_rules! warn_codes {
    ($( $konst:ident = $code:literal, $text:literal, $rfc:literal; )*) => {
        impl WarnCode {
            $(
                #[doc = concat!("`", stringify!($code), "` ", $text, " (", $rfc, ")")]
                pub const $konst: WarnCode = WarnCode($code);
            )*
        }
        const TABLE: &[(u16, &str, &str)] = &[ $( ($code, $text, $rfc), )* ];
    };
}

warn_codes! {
    INCOMPATIBLE_NETWORK_PROTOCOL = 300, "Incompatible network protocol", "RFC 3261";
    INCOMPATIBLE_NETWORK_ADDRESS_FORMATS = 301, "Incompatible network address formats", "RFC 3261";
    INCOMPATIBLE_TRANSPORT_PROTOCOL = 302, "Incompatible transport protocol", "RFC 3261";
    INCOMPATIBLE_BANDWIDTH_UNITS = 303, "Incompatible bandwidth units", "RFC 3261";
    MEDIA_TYPE_NOT_AVAILABLE = 304, "Media type not available", "RFC 3261";
    INCOMPATIBLE_MEDIA_FORMAT = 305, "Incompatible media format", "RFC 3261";
    ATTRIBUTE_NOT_UNDERSTOOD = 306, "Attribute not understood", "RFC 3261";
    SESSION_DESCRIPTION_PARAMETER_NOT_UNDERSTOOD = 307, "Session description parameter not understood", "RFC 3261";
    INCOMPATIBLE_LANGUAGE_SPECIFICATION = 308, "Incompatible language specification", "RFC 8829";
    MULTICAST_NOT_AVAILABLE = 330, "Multicast not available", "RFC 3261";
    UNICAST_NOT_AVAILABLE = 331, "Unicast not available", "RFC 3261";
    INSUFFICIENT_BANDWIDTH = 370, "Insufficient bandwidth", "RFC 3261";
    SIPS_NOT_ALLOWED = 380, "SIPS Not Allowed", "RFC 5630";
    SIPS_REQUIRED = 381, "SIPS Required", "RFC 5630";
    MISCELLANEOUS_WARNING = 399, "Miscellaneous warning", "RFC 3261";
}

impl WarnCode {
    /// Any three-digit code (100–999); unknown codes are kept.
    pub const fn new(code: u16) -> Option<WarnCode> {
        if code >= 100 && code <= 999 {
            Some(WarnCode(code))
        } else {
            None
        }
    }

    /// The number.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// The registry's description.
    pub fn text(self) -> Option<&'static str> {
        TABLE.iter().find(|r| r.0 == self.0).map(|r| r.1)
    }

    /// The defining document.
    pub fn reference(self) -> Option<&'static str> {
        TABLE.iter().find(|r| r.0 == self.0).map(|r| r.2)
    }

    /// Every registered code.
    pub fn all() -> impl Iterator<Item = WarnCode> {
        TABLE.iter().map(|r| WarnCode(r.0))
    }
}

impl fmt::Display for WarnCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}", self.0)
    }
}

/// Why a warning-value does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WarningError {
    /// The warn-code is not exactly three digits.
    #[error("warn-code must be three digits")]
    Code,
    /// The warn-agent (host[:port] or token) is missing or malformed.
    #[error("missing or malformed warn-agent")]
    Agent,
    /// The warn-text is not a quoted string.
    #[error("warn-text must be a quoted string")]
    Text,
    /// The Warning header's comma list is malformed.
    #[error("malformed Warning list: {0}")]
    List(crate::syntax::SyntaxError),
}

impl WarningError {
    /// Wraps a list-splitting error.
    pub fn from_syntax(e: crate::syntax::SyntaxError) -> Self {
        WarningError::List(e)
    }
}

/// One warning-value: `warn-code SP warn-agent SP warn-text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The code.
    pub code: WarnCode,
    /// Who added it (host[:port] or a pseudonym).
    pub agent: String,
    /// The text, unquoted.
    pub text: String,
}

impl Warning {
    /// A warning.
    pub fn new(code: WarnCode, agent: impl Into<String>, text: impl Into<String>) -> Warning {
        Warning {
            code,
            agent: agent.into(),
            text: text.into(),
        }
    }

    /// Parses one warning-value.
    pub fn parse(s: &str) -> Result<Warning, WarningError> {
        let s = crate::syntax::trim_ws(s);
        let b = s.as_bytes();
        if b.len() < 4 || !b[..3].iter().all(u8::is_ascii_digit) || !crate::syntax::is_ws(b[3]) {
            return Err(WarningError::Code);
        }
        let code = WarnCode(s[..3].parse().map_err(|_| WarningError::Code)?);
        let a = skip_ws(s, 3);
        let mut e = a;
        while e < b.len() && (is_token_byte(b[e]) || matches!(b[e], b':' | b'[' | b']')) {
            e += 1;
        }
        if e == a || e >= b.len() || !crate::syntax::is_ws(b[e]) {
            return Err(WarningError::Agent);
        }
        let agent = &s[a..e];
        let t = skip_ws(s, e);
        if b.get(t) != Some(&b'"') {
            return Err(WarningError::Text);
        }
        let end = quoted_end(s, t).map_err(|_| WarningError::Text)?;
        if end != s.len() {
            return Err(WarningError::Text);
        }
        Ok(Warning {
            code,
            agent: agent.to_owned(),
            text: unquote(&s[t..end]).into_owned(),
        })
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.code, self.agent, quote(&self.text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_registry() {
        let w = Warning::new(
            WarnCode::MISCELLANEOUS_WARNING,
            "node1.example:5060",
            "lookup \"timed\" out",
        );
        let s = w.to_string();
        assert_eq!(s, r#"399 node1.example:5060 "lookup \"timed\" out""#);
        assert_eq!(Warning::parse(&s).unwrap(), w);
        assert_eq!(WarnCode::SIPS_REQUIRED.text(), Some("SIPS Required"));
        assert_eq!(WarnCode::new(123).unwrap().text(), None);
        let p = Warning::parse(r#"307 isi.edu "Session parameter 'foo' not understood""#).unwrap();
        assert_eq!(
            p.code,
            WarnCode::SESSION_DESCRIPTION_PARAMETER_NOT_UNDERSTOOD
        );
    }

    #[test]
    fn rejects_without_panicking() {
        for bad in [
            "1812 overture \"In Progress\"",
            "39 a \"x\"",
            "399 \"x\"",
            "399 a x",
            "399 a \"x",
            "",
        ] {
            assert!(Warning::parse(bad).is_err(), "{bad}");
        }
        let good = r#"399 [2001:db8::1]:5060 "é ok""#;
        assert!(Warning::parse(good).is_ok());
        for i in 0..good.len() {
            if good.is_char_boundary(i) {
                let _ = Warning::parse(&good[..i]);
            }
        }
    }
}
