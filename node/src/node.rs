//! `kadsip node`: opens storage, starts the overlay, the SIP transports and
//! core, the HTTP status server and the republisher, and runs until the
//! shutdown future completes (mini-redis `server::run` style).

use crate::config::Config;
use crate::http::{self, HttpState};
use crate::lookup::Lookup;
use crate::metrics::Metrics;
use crate::overlay::{self, OverlayTask, OverlayTuning};
use crate::registrar::{Registrar, RegistrarConfig};
use crate::sip::{ProxyConfig, SipCore, Transports};
use crate::storage::{Committer, SledRecordStore, Storage, StorageError};
use kadsip_proto::overlay::Limits;
use libp2p::Multiaddr;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Storage could not be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A listen address could not be bound.
    #[error("cannot listen on {what} {addr}: {source} (choose another address with --{what})")]
    Bind {
        /// sip, http or p2p.
        what: &'static str,
        /// The address.
        addr: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The libp2p swarm could not be built.
    #[error("overlay: {0}")]
    Overlay(String),
}

/// Timers shortened by tests and the simulator.
#[derive(Debug, Clone)]
pub struct Timers {
    /// Republish local entries this often.
    pub republish: Duration,
    /// Overlay tuning.
    pub overlay: OverlayTuning,
    /// Transaction timers (T1/T2/T4); Timer C comes from the config.
    pub proxy: ProxyConfig,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            republish: Duration::from_secs(600),
            overlay: OverlayTuning::default(),
            proxy: ProxyConfig::default(),
        }
    }
}

/// How a node is started beyond its config (the simulator's knobs).
pub struct StartOptions {
    /// Protocol timers.
    pub timers: Timers,
    /// The libp2p transport; None builds TCP + Noise + Yamux.
    pub transport: Option<overlay::TransportFactory>,
    /// Serve the HTTP status endpoints.
    pub http: bool,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            timers: Timers::default(),
            transport: None,
            http: true,
        }
    }
}

/// A started node: its addresses and handles (used by tests and the simulator).
pub struct Running {
    /// Bound SIP address.
    pub sip: SocketAddr,
    /// Bound HTTP address.
    pub http: SocketAddr,
    /// Our PeerId.
    pub peer_id: libp2p::PeerId,
    /// The overlay handle.
    pub overlay: overlay::Overlay,
    /// The resolver.
    pub lookup: Arc<Lookup>,
    /// The SIP transports (in-memory UAs connect through them).
    pub transports: Transports,
    /// Stops everything when set to true.
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops the node and waits for its tasks.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Starts a node and returns once every listener is bound.
pub async fn start(config: Config, timers: Timers) -> Result<Running, NodeError> {
    start_with(
        config,
        StartOptions {
            timers,
            ..StartOptions::default()
        },
    )
    .await
}

/// [`start`] with a custom transport and without HTTP (the simulator).
pub async fn start_with(config: Config, opts: StartOptions) -> Result<Running, NodeError> {
    let timers = opts.timers;
    let storage = Storage::open(&config.data_dir)?;
    let metrics = Arc::new(Metrics::new());
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();

    // Overlay.
    let key = overlay::identity::load_or_create(&config.data_dir)?;
    let store = SledRecordStore::new(storage.records.clone(), Limits::default(), 1_000_000);
    let mut tuning = timers.overlay.clone();
    tuning.lookup_deadline = config.lookup_timeout;
    tuning.replication_factor =
        std::num::NonZeroUsize::new(config.replicas).unwrap_or(libp2p::kad::K_VALUE);
    tuning.mdns = config.mdns;
    let swarm = overlay::build_swarm(key, store, &tuning, opts.transport)
        .map_err(|e| NodeError::Overlay(e.to_string()))?;
    let (mut task, overlay) =
        OverlayTask::new(swarm, metrics.clone(), 1024, tuning.lookup_deadline);
    for a in &config.p2p {
        let addr: Multiaddr = a
            .parse()
            .map_err(|e| NodeError::Overlay(format!("{a}: {e}")))?;
        task.swarm_mut()
            .listen_on(addr)
            .map_err(|e| NodeError::Bind {
                what: "p2p",
                addr: a.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
    }
    for b in &config.bootstrap {
        if let Ok(addr) = b.parse::<Multiaddr>() {
            if let Err(e) = task.swarm_mut().dial(addr) {
                tracing::warn!(bootstrap = %b, error = %e, "cannot dial bootstrap peer");
            }
        }
    }
    let peer_id = overlay.peer_id();
    tasks.push(tokio::spawn(task.run(stopped(stop_rx.clone()))));

    // Our advertised addresses follow the overlay's listeners.
    let addrs = Arc::new(Mutex::new(Vec::new()));
    {
        let (overlay, addrs, mut rx) = (overlay.clone(), addrs.clone(), stop_rx.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                if let Ok(s) = overlay.status().await {
                    if let Ok(mut a) = addrs.lock() {
                        *a = s.listen_addrs;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = rx.changed() => return,
                }
            }
        }));
    }

    let committer = Committer::start(&storage, 4096)?;
    let lookup = Arc::new(Lookup::new(
        storage.clone(),
        overlay.clone(),
        metrics.clone(),
        config.lookup_cache_size,
        config.lookup_cache_ttl,
    ));
    let registrar = Arc::new(Registrar::new(
        RegistrarConfig {
            realm: config.realm().map(str::to_owned),
            domains: config.domains.clone(),
            open: config.open,
            policy: config.policy(),
            algorithms: config
                .auth_algorithms
                .iter()
                .map(|a| kadsip_proto::digest::Algorithm::from_token(a))
                .collect(),
        },
        storage.clone(),
        committer,
        overlay.clone(),
        metrics.clone(),
        storage.secret("nonce-key")?,
        addrs.clone(),
    ));

    // SIP.
    let mut proxy = timers.proxy.clone();
    proxy.timer_c = config.timer_c;
    let core = SipCore::start(
        config.sip,
        proxy,
        registrar.clone(),
        lookup.clone(),
        overlay.clone(),
        metrics.clone(),
        stopped(stop_rx.clone()),
    )
    .await
    .map_err(|source| NodeError::Bind {
        what: "sip",
        addr: config.sip.to_string(),
        source,
    })?;
    let sip_addr = core.local;
    tracing::info!("SIP on udp/tcp {sip_addr}");

    // Republish at start (after restart) and periodically.
    {
        let (registrar, mut rx, every) = (registrar.clone(), stop_rx.clone(), timers.republish);
        tasks.push(tokio::spawn(async move {
            // Give the overlay a moment to connect before the first publication.
            tokio::time::sleep(Duration::from_millis(500)).await;
            loop {
                let n = registrar.republish_all().await;
                tracing::debug!(aors = n, "republished local entries");
                tokio::select! {
                    _ = tokio::time::sleep(jittered(every)) => {}
                    _ = rx.changed() => return,
                }
            }
        }));
    }

    let transports = core.transports();
    let http_addr = if opts.http {
        serve_http(
            &config, &core, &overlay, &storage, &metrics, &lookup, &stop_rx, &mut tasks,
        )
        .await?
    } else {
        SocketAddr::from(([0, 0, 0, 0], 0))
    };
    tasks.push(core.task);

    Ok(Running {
        sip: sip_addr,
        http: http_addr,
        peer_id,
        overlay,
        lookup,
        transports,
        stop,
        tasks,
    })
}

#[allow(clippy::too_many_arguments)]
async fn serve_http(
    config: &Config,
    core: &SipCore,
    overlay: &overlay::Overlay,
    storage: &Storage,
    metrics: &Arc<Metrics>,
    lookup: &Arc<Lookup>,
    stop_rx: &watch::Receiver<bool>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<SocketAddr, NodeError> {
    let listener = http::bind(config.http)
        .await
        .map_err(|source| NodeError::Bind {
            what: "http",
            addr: config.http.to_string(),
            source,
        })?;
    let http_addr = listener.local_addr().map_err(|source| NodeError::Bind {
        what: "http",
        addr: config.http.to_string(),
        source,
    })?;
    let core_stats = core.stats();
    let state = Arc::new(HttpState {
        overlay: overlay.clone(),
        storage: storage.clone(),
        metrics: metrics.clone(),
        lookup: lookup.clone(),
        extra: Box::new(core_stats),
    });
    let shutdown = stopped(stop_rx.clone());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = http::serve(listener, state, shutdown).await {
            tracing::error!(error = %e, "http server failed");
        }
    }));
    tracing::info!("HTTP status on http://{http_addr}/status");
    Ok(http_addr)
}

/// Runs a node until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
    let running = start(config, Timers::default()).await?;
    shutdown.await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

/// `every` shortened by up to a quarter at random, so nodes started (or
/// registered) together do not republish in one synchronised wave.
fn jittered(every: Duration) -> Duration {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    let r = f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX);
    every.mul_f64(1.0 - 0.25 * r)
}

#[cfg(test)]
mod tests {
    use super::jittered;
    use std::time::Duration;

    #[test]
    fn republish_jitter_stays_within_the_last_quarter_and_varies() {
        let every = Duration::from_secs(600);
        let draws: Vec<Duration> = (0..200).map(|_| jittered(every)).collect();
        assert!(
            draws
                .iter()
                .all(|d| *d >= every.mul_f64(0.75) && *d <= every)
        );
        let distinct: std::collections::HashSet<_> = draws.iter().collect();
        assert!(
            distinct.len() > 100,
            "jitter barely varies: {}",
            distinct.len()
        );
    }
}
