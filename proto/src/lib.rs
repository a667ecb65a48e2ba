//! kadsip-proto: the SIP engine without I/O.
//!
//! Nothing here opens a socket, spawns a task or reads the clock: time is an
//! argument (`handle(msg, now)`, `handle_timeout(now)`), so the same code runs
//! in the daemon, the simulator and in tests on a simulated clock.
//!
//! Layout:
//! - [`status`], [`warning`], [`method`]: registries, each generated from one table;
//! - [`uri`]: SIP/SIPS URIs (RFC 3261 §19), comparison (§19.1.4) and canonical AORs (§10.3);
//! - [`message`]: requests and responses, parsing (§7, §25) and serialization;
//! - [`header`]: header names (with compact forms) and typed views of header values;
//! - [`framing`]: stream framing by Content-Length for TCP/WebSocket;
//! - [`transaction`]: the §17 state machines with RFC 6026 corrections;
//! - [`digest`]: RFC 7616/8760 digest authentication and stateless nonces.

pub mod bytestr;
pub mod digest;
pub mod error;
pub mod header;
pub mod message;
pub mod method;
pub mod status;
pub mod syntax;
pub mod uri;
pub mod warning;

pub use bytestr::ByteStr;
pub use error::ParseError;
pub use header::{HeaderName, Headers, StdHeader};
pub use message::{Message, Request, Response};
pub use method::Method;
pub use status::{StatusClass, StatusCode};
pub use uri::{Aor, SipUri, Uri};
pub mod charclass;
pub mod framing;
pub mod overlay;
pub mod registrar;
pub mod routing;
pub mod transaction;
