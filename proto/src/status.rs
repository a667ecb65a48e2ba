//! TEMP STUB
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct StatusCode(u16);
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum StatusClass {
    Provisional,
}
impl StatusCode {
    pub const BAD_REQUEST: StatusCode = StatusCode(400);
    pub const VERSION_NOT_SUPPORTED: StatusCode = StatusCode(505);
    pub const MESSAGE_TOO_LARGE: StatusCode = StatusCode(513);
    pub fn new(c: u16) -> Result<StatusCode, ()> {
        if (100..700).contains(&c) {
            Ok(StatusCode(c))
        } else {
            Err(())
        }
    }
    pub fn class(&self) -> StatusClass {
        StatusClass::Provisional
    }
    pub fn as_u16(&self) -> u16 {
        self.0
    }
    pub fn reason(&self) -> &'static str {
        "x"
    }
}
