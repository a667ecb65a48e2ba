//! kadsip end-to-end suites: real nodes (real libp2p swarm, real sled) on
//! loopback, driven over real SIP sockets.

mod hostile;
mod overlay;
mod process;
mod proxy;
mod registrar;
mod restart;
mod sipp;
mod soak;
mod support;
