//! SIP on the node: the UDP/TCP transports and the core that owns the
//! transaction table and dispatches requests to the registrar (and, with the
//! proxy, across the overlay).

mod core;
mod proxy;
pub mod transport;

pub use core::{LookupTrace, ProxyConfig, SipCore};
pub use transport::{MemoryFlow, Transports};
