//! kadsip-node: the daemon around kadsip-proto.
//!
//! Layout:
//! - [`cli`], [`config`]: the command line and the TOML config (flags win);
//! - [`storage`]: sled (identity, accounts, bindings, DHT records), group commit;
//! - [`overlay`]: the libp2p swarm task and its handle;
//! - [`metrics`]: Prometheus metrics;
//! - [`inspect`]: `kadsip parse`, one SIP message to JSON.

pub mod cli;
pub mod inspect;
pub mod metrics;
pub mod overlay;
pub mod storage;
