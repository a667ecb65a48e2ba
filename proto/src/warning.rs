//! TEMP STUB
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning;
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad warning")]
pub struct WarningError;
impl Warning {
    pub fn parse(s: &str) -> Result<Warning, WarningError> {
        if s.is_empty() {
            Err(WarningError)
        } else {
            Ok(Warning)
        }
    }
}
impl WarningError {
    pub fn from_syntax(_: crate::syntax::SyntaxError) -> Self {
        WarningError
    }
}
