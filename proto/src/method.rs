//! SIP methods from one table (RFC 3261 and its extensions); any other
//! `token` is kept as an extension method so proxies forward what they do not know.

use crate::bytestr::ByteStr;
use crate::syntax::is_token;
use std::fmt;

macro_rules! methods {
    ($( $(#[$doc:meta])* $konst:ident = $name:literal, $rfc:literal; )*) => {
        /// A request method: one of the registered ones or an extension token.
        /// Methods are case-sensitive (RFC 3261 §7.1).
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct Method(Repr);

        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        enum Repr {
            Known(&'static str, &'static str),
            Extension(ByteStr),
        }

        impl Method {
            $( $(#[$doc])* pub const $konst: Method = Method(Repr::Known($name, $rfc)); )*

            /// Every registered method, in table order.
            pub const ALL: &'static [Method] = &[$(Method::$konst),*];

            fn known(s: &str) -> Option<Method> {
                match s {
                    $( $name => Some(Method::$konst), )*
                    _ => None,
                }
            }
        }
    };
}

methods! {
    /// Establishes a session (RFC 3261).
    INVITE = "INVITE", "RFC 3261";
    /// Acknowledges a final response to INVITE (RFC 3261).
    ACK = "ACK", "RFC 3261";
    /// Ends a dialog (RFC 3261).
    BYE = "BYE", "RFC 3261";
    /// Cancels a pending request (RFC 3261).
    CANCEL = "CANCEL", "RFC 3261";
    /// Queries capabilities (RFC 3261).
    OPTIONS = "OPTIONS", "RFC 3261";
    /// Binds contacts to an address of record (RFC 3261).
    REGISTER = "REGISTER", "RFC 3261";
    /// Provisional response acknowledgement (RFC 3262).
    PRACK = "PRACK", "RFC 3262";
    /// Subscribes to an event package (RFC 6665).
    SUBSCRIBE = "SUBSCRIBE", "RFC 6665";
    /// Notifies of an event (RFC 6665).
    NOTIFY = "NOTIFY", "RFC 6665";
    /// Publishes event state (RFC 3903).
    PUBLISH = "PUBLISH", "RFC 3903";
    /// Mid-dialog application information (RFC 6086).
    INFO = "INFO", "RFC 6086";
    /// Asks the recipient to issue a request (RFC 3515).
    REFER = "REFER", "RFC 3515";
    /// Instant message (RFC 3428).
    MESSAGE = "MESSAGE", "RFC 3428";
    /// Updates session parameters (RFC 3311).
    UPDATE = "UPDATE", "RFC 3311";
}

/// The text is not a `token`, so it cannot be a method.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid method {0:?}: a method is a token")]
pub struct InvalidMethod(pub String);

impl Method {
    /// Parses a method token; unregistered tokens become extension methods.
    pub fn parse(s: &str) -> Result<Method, InvalidMethod> {
        if let Some(m) = Method::known(s) {
            return Ok(m);
        }
        if !is_token(s) {
            return Err(InvalidMethod(s.chars().take(64).collect()));
        }
        Ok(Method(Repr::Extension(ByteStr::from(s))))
    }

    /// Like [`Method::parse`] but keeps the received buffer for extensions.
    pub(crate) fn from_bytestr(s: &ByteStr) -> Result<Method, InvalidMethod> {
        if let Some(m) = Method::known(s) {
            return Ok(m);
        }
        if !is_token(s) {
            return Err(InvalidMethod(s.chars().take(64).collect()));
        }
        Ok(Method(Repr::Extension(s.clone())))
    }

    /// The method name.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Known(n, _) => n,
            Repr::Extension(s) => s,
        }
    }

    /// True for methods not in the table.
    pub fn is_extension(&self) -> bool {
        matches!(self.0, Repr::Extension(_))
    }

    /// The RFC defining a registered method.
    pub fn reference(&self) -> Option<&'static str> {
        match self.0 {
            Repr::Known(_, r) => Some(r),
            Repr::Extension(_) => None,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Method({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_extension() {
        assert_eq!(Method::parse("INVITE").unwrap(), Method::INVITE);
        assert!(!Method::INVITE.is_extension());
        let m = Method::parse("!interesting-Method0123456789_*+`.%indeed'~").unwrap();
        assert!(m.is_extension());
        assert_eq!(m.as_str(), "!interesting-Method0123456789_*+`.%indeed'~");
        // case-sensitive: "invite" is an extension method
        assert!(Method::parse("invite").unwrap().is_extension());
        assert!(Method::parse("IN VITE").is_err());
        assert!(Method::parse("").is_err());
        assert_eq!(Method::ALL.len(), 14);
        assert_eq!(
            Method::parse("RE%47IST%45R").unwrap().as_str(),
            "RE%47IST%45R"
        );
    }
}
