//! TEMP STUB
use std::fmt;
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Uri {
    Sip(SipUri),
    Other(String),
}
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SipUri {
    pub secure: bool,
    pub user: Option<String>,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Vec<(String, Option<String>)>,
    pub headers: Vec<(String, String)>,
}
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Domain(String),
}
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad uri")]
pub struct UriError;
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Aor(String);
impl Uri {
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        if s.contains(' ') || s.is_empty() {
            return Err(UriError);
        }
        Ok(Uri::Other(s.into()))
    }
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(s) => Some(s),
            _ => None,
        }
    }
}
impl Host {
    pub fn parse(s: &str) -> Result<Host, UriError> {
        Ok(Host::Domain(s.into()))
    }
}
impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Other(s) => f.write_str(s),
            Uri::Sip(_) => f.write_str("sip:x"),
        }
    }
}
impl Aor {
    pub fn parse(s: &str) -> Result<Aor, UriError> {
        Ok(Aor(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
