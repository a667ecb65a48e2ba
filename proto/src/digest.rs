//! TEMP STUB
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge;
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials;
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad digest")]
pub struct DigestError;
impl Challenge {
    pub fn parse(_: &str) -> Result<Challenge, DigestError> {
        Ok(Challenge)
    }
}
impl Credentials {
    pub fn parse(_: &str) -> Result<Credentials, DigestError> {
        Ok(Credentials)
    }
}
