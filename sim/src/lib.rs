//! kadsip-sim: the real kadsip node library, N times in one process, over an
//! emulated network, with a seeded workload, churn and a ground-truth oracle.
//!
//! Layout:
//! - [`config`]: scenario TOML + flags, presets in `sim/scenarios/`;
//! - [`rng`], [`plan`]: the seeded call and churn plans;
//! - [`link`]: the in-memory libp2p transport with latency, jitter, loss, partitions;
//! - [`ua`]: simulated phones speaking SIP to their node over an in-memory flow;
//! - [`oracle`]: the right answer to each call at the moment it is placed;
//! - [`run`]: the orchestrator; [`report`], [`svg`], [`progress`]: outputs.

pub mod config;
pub mod link;
pub mod oracle;
pub mod plan;
pub mod progress;
pub mod report;
pub mod rng;
pub mod run;
pub mod svg;
pub mod ua;

/// The multi-threaded runtime both binaries run on (a one-line error if the
/// OS refuses it).
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}
