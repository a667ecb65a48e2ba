//! kadsip-tests: the end-to-end suites live in `tests/e2e/` (one test binary
//! with a support module). This library only holds the SIP test clients they
//! share: a UDP user agent that builds requests and reads responses, and a
//! framed TCP flow.

pub mod tcp;
pub mod ua;
