//! kadsip-node: the daemon around kadsip-proto.
//!
//! Layout:
//! - [`cli`], [`config`]: the command line and the TOML config (flags win);
//! - [`node`]: start/run a node (shutdown is a future passed in);
//! - [`storage`]: sled (identity, accounts, bindings, DHT records), group commit;
//! - [`overlay`]: the libp2p swarm task and its handle;
//! - [`sip`]: UDP/TCP transports and the SIP core (transactions, dispatch);
//! - [`registrar`], [`lookup`], [`accounts`]: REGISTER, AOR resolution, users;
//! - [`http`], [`client`], [`metrics`]: status server, tiny client, Prometheus;
//! - [`inspect`]: `kadsip parse`, one SIP message to JSON.

pub mod accounts;
pub mod cli;
pub mod client;
pub mod config;
pub mod http;
pub mod inspect;
pub mod lookup;
pub mod metrics;
pub mod node;
pub mod overlay;
pub mod registrar;
pub mod sip;
pub mod storage;
