//! One simulation run: start N real nodes on the emulated network, register
//! every user, then play the call and churn plans in real time, judging
//! every answer against the oracle, and write the outputs.

use crate::config::{LinkSecurity, Scenario, tcp_listen_ip};
use crate::link::{LinkParams, SimNet, SimTransport};
use crate::oracle::{UserTruth, expected};
use crate::plan::{ChurnEvent, Plan, PlannedCall, Target};
use crate::progress::Progress;
use crate::report::{self, CallRecord, RunFacts};
use crate::ua::{CallOutcome, DOMAIN, UaCmd, UaHost};
use kadsip_node::config::Config;
use kadsip_node::node::{Running, StartOptions, Timers, start_with};
use kadsip_node::overlay::{BoxedTransport, OverlayTuning};
use kadsip_node::sip::{LookupTrace, ProxyConfig};
use libp2p::core::upgrade::Version;
use libp2p::{Multiaddr, PeerId, Transport, noise, tcp, yamux};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A node could not start.
    #[error("node {0} failed to start: {1}")]
    Node(usize, #[source] kadsip_node::node::NodeError),
    /// The outputs could not be written.
    #[error("cannot write results to {path}: {source}")]
    Output {
        /// Directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A temporary directory could not be created.
    #[error("cannot create the nodes' data directories: {0}")]
    TempDir(#[source] std::io::Error),
    /// The memory bound was exceeded (outputs were still written).
    #[error("stopped: resident memory {0} MiB exceeded memory_limit_mb {1}")]
    Memory(u64, u64),
}

/// What a finished run hands back.
pub struct Outcome {
    /// results.json as written.
    pub results: serde_json::Value,
    /// The closing table.
    pub table: String,
}

struct Slot {
    port: u64,
    dir: PathBuf,
    running: Option<Running>,
    ua: Option<mpsc::Sender<UaCmd>>,
    peer: Option<PeerId>,
    incarnation: u32,
    starting: bool,
}

enum SimEvent {
    Started {
        node: usize,
        incarnation: u32,
        result: Box<Result<(Running, mpsc::Sender<UaCmd>), kadsip_node::node::NodeError>>,
    },
    Registered {
        node: usize,
        incarnation: u32,
        user: usize,
        expires: u32,
        status: u16,
    },
    CallDone(CallRecord),
}

/// Node `i`'s synthetic SIP address (never bound; it names the node).
/// Seconds in a row under a third of a core that count as quiet.
const QUIET_SECONDS: u32 = 3;

/// How long [`Sim::settle`] waits for the overlay to go quiet.
fn quiet_limit(nodes: usize) -> Duration {
    Duration::from_secs(120).max(Duration::from_millis(500) * nodes as u32)
}

/// Noise for `key` (an ed25519 key always yields one).
fn noise(key: &libp2p::identity::Keypair) -> noise::Config {
    noise::Config::new(key).expect("an ed25519 key always yields a noise config")
}

fn sip_addr(i: usize, port: u16) -> SocketAddr {
    let i = i as u32 + 1;
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8)),
        port,
    )
}

/// Resident memory now and at its peak, from /proc (0 elsewhere).
pub fn rss() -> (u64, u64) {
    let Ok(s) = std::fs::read_to_string("/proc/self/status") else {
        return (0, 0);
    };
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU seconds this process has used (user + system).
fn cpu_seconds() -> f64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = s.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 here.
    (ticks(11) + ticks(12)) / 100.0
}

struct Sim {
    s: Scenario,
    plan: Plan,
    net: Arc<SimNet>,
    slots: Vec<Slot>,
    users: Vec<UserTruth>,
    traces: Arc<Mutex<HashMap<String, LookupTrace>>>,
    trace_tx: mpsc::Sender<LookupTrace>,
    events_tx: mpsc::Sender<SimEvent>,
    events: mpsc::Receiver<SimEvent>,
    calls: Vec<CallRecord>,
    outstanding: usize,
    facts: RunFacts,
    /// The overlay has formed: started nodes register their phones at once.
    formed: bool,
    _data: tempfile::TempDir,
    rng: crate::rng::Rng,
}

/// Runs the scenario to the end and writes its outputs.
pub async fn run(s: Scenario) -> Result<Outcome, SimError> {
    let data = tempfile::Builder::new()
        .prefix("kadsip-sim-")
        .tempdir()
        .map_err(SimError::TempDir)?;
    let shard = s.listen.is_some() || !s.bootstrap.is_empty();
    // Shards pick distinct memory port ranges so a peer's in-memory address
    // learnt from another process never reaches a local node by mistake.
    let base_port = if shard {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
        ((u64::from(std::process::id()) * 7919 + t) % 1_000_000 + 1) * 100_000
    } else {
        0
    };
    let net = SimNet::new(
        LinkParams {
            latency: (s.latency.0, s.latency.1),
            jitter: s.jitter.0,
            loss: s.loss,
        },
        s.seed,
    );
    let plan = Plan::new(&s);
    let users: Vec<UserTruth> = (0..s.nodes * s.users_per_node)
        .map(|u| UserTruth {
            node: u / s.users_per_node,
            // Shards name their users apart (they share one overlay).
            name: match base_port {
                0 => format!("n{}u{}", u / s.users_per_node, u % s.users_per_node),
                b => format!(
                    "s{}n{}u{}",
                    b / 100_000,
                    u / s.users_per_node,
                    u % s.users_per_node
                ),
            },
            known: false,
            registered: false,
        })
        .collect();
    let slots = (0..s.nodes)
        .map(|i| Slot {
            port: base_port + i as u64 + 1,
            dir: data.path().join(format!("node{i}")),
            running: None,
            ua: None,
            peer: None,
            incarnation: 0,
            starting: false,
        })
        .collect();
    let (trace_tx, mut trace_rx) = mpsc::channel::<LookupTrace>(65_536);
    let traces: Arc<Mutex<HashMap<String, LookupTrace>>> = Arc::default();
    {
        let traces = traces.clone();
        tokio::spawn(async move {
            while let Some(t) = trace_rx.recv().await {
                if let Ok(mut m) = traces.lock() {
                    if m.len() < 1_000_000 {
                        m.insert(t.call_id.clone(), t);
                    }
                }
            }
        });
    }
    let (events_tx, events) = mpsc::channel(65_536);
    let facts = RunFacts {
        scenario: s.name.clone(),
        nodes: s.nodes,
        link_security: format!("{:?}", s.link_security).to_lowercase(),
        replicas: s.replicas,
        duration_s: s.duration.0.as_secs_f64(),
        seed: s.seed,
        users: users.len(),
        ..RunFacts::default()
    };
    let rng = crate::rng::Rng::fork(s.seed, 3);
    let mut sim = Sim {
        s,
        plan,
        net,
        slots,
        users,
        traces,
        trace_tx,
        events_tx,
        events,
        calls: Vec::new(),
        outstanding: 0,
        facts,
        formed: false,
        _data: data,
        rng,
    };
    let aborted = sim.execute().await;
    sim.calls.sort_by(|a, b| a.t.total_cmp(&b.t));
    sim.facts.aborted = aborted.as_ref().err().map(|e| e.to_string());
    sim.finish().await;
    let dir = sim.s.out.clone();
    let results =
        report::write_all(&dir, &sim.calls, &sim.facts).map_err(|source| SimError::Output {
            path: dir.clone(),
            source,
        })?;
    let table = report::table(&results);
    aborted?;
    Ok(Outcome { results, table })
}

impl Sim {
    fn memory_addr(&self, node: usize) -> Option<Multiaddr> {
        let slot = &self.slots[node];
        let peer = slot.peer?;
        format!("/memory/{}/p2p/{peer}", slot.port).parse().ok()
    }

    fn config(&self, node: usize, bootstrap: Vec<String>) -> Config {
        let s = &self.s;
        let mut c = Config {
            data_dir: self.slots[node].dir.clone(),
            sip: sip_addr(node, 5060),
            p2p: vec![format!("/memory/{}", self.slots[node].port)],
            bootstrap,
            open: true,
            mdns: false,
            lookup_timeout: s.lookup_timeout.0,
            lookup_cache_ttl: s.lookup_cache_ttl.0,
            timer_c: s.timer_c.0,
            replicas: s.replicas,
            ..Config::default()
        };
        c.registrar.min_expires = 1;
        if let Some(l) = s.listen.as_ref().and_then(|l| l.parse::<Multiaddr>().ok()) {
            if node == 0 {
                c.p2p.push(l.to_string());
            } else if let Some(ip) = tcp_listen_ip(&l) {
                let proto = if ip.is_ipv4() { "ip4" } else { "ip6" };
                c.p2p.push(format!("/{proto}/{ip}/tcp/0"));
            }
        }
        c
    }

    /// Builds a node's start options (once per start attempt: the transport
    /// factory is consumed).
    fn options(&self, node: usize) -> impl Fn() -> StartOptions + Send + 'static {
        let s = self.s.clone();
        let net = self.net.clone();
        let trace = self.trace_tx.clone();
        move || {
            let net = net.clone();
            let tcp_too = s.listen.is_some() || !s.bootstrap.is_empty();
            let security = s.link_security;
            let transport = Box::new(move |key: &libp2p::identity::Keypair| -> BoxedTransport {
                let mem = SimTransport::new(net, node).upgrade(Version::V1);
                let mem = match security {
                    LinkSecurity::Noise => mem
                        .authenticate(noise(key))
                        .multiplex(yamux::Config::default())
                        .boxed(),
                    LinkSecurity::Plaintext => mem
                        .authenticate(libp2p::plaintext::Config::new(key))
                        .multiplex(yamux::Config::default())
                        .boxed(),
                };
                if !tcp_too {
                    return mem;
                }
                // Shard links cross real networks: always Noise.
                let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                    .upgrade(Version::V1)
                    .authenticate(noise(key))
                    .multiplex(yamux::Config::default())
                    .boxed();
                mem.or_transport(tcp)
                    .map(|either, _| either.into_inner())
                    .boxed()
            });
            let mut proxy = ProxyConfig {
                sockets: false,
                trace: Some(trace.clone()),
                ..ProxyConfig::default()
            };
            proxy.tx.t1 = s.t1.0;
            proxy.tx.t2 = s.t1.0 * 8;
            proxy.tx.t4 = s.t1.0 * 10;
            StartOptions {
                timers: Timers {
                    republish: s.republish.0,
                    overlay: OverlayTuning {
                        lookup_deadline: s.lookup_timeout.0,
                        query_timeout: Duration::from_secs(10),
                        replication_interval: Some(s.replication.0),
                        max_connections: 512,
                        mdns: false,
                        idle_timeout: s.idle_connection_timeout.0,
                        // From the node config (`replicas`).
                        replication_factor: libp2p::kad::K_VALUE,
                    },
                    proxy,
                },
                transport: Some(transport),
                http: false,
            }
        }
    }

    /// Up to three live nodes to join through (node 0 when nothing else).
    fn bootstrap_for(&mut self, node: usize) -> Vec<String> {
        let live: Vec<usize> = (0..self.slots.len())
            .filter(|&i| i != node && self.slots[i].running.is_some())
            .collect();
        let mut out = Vec::new();
        for _ in 0..3.min(live.len()) {
            let pick = live[self.rng.below(live.len())];
            if let Some(a) = self.memory_addr(pick) {
                let a = a.to_string();
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        if node < 3 || out.is_empty() {
            out.extend(self.s.bootstrap.iter().cloned());
        }
        out
    }

    /// Starts node `node` in the background; a `Started` event follows.
    fn spawn_node(&mut self, node: usize) {
        let bootstrap = self.bootstrap_for(node);
        let config = self.config(node, bootstrap);
        let opts = self.options(node);
        let slot = &mut self.slots[node];
        slot.incarnation += 1;
        slot.starting = true;
        let incarnation = slot.incarnation;
        let (events, t1) = (self.events_tx.clone(), self.s.t1.0);
        tokio::spawn(async move {
            // A node that just left may still hold its database lock briefly.
            let mut tries = 0;
            let result = loop {
                match start_with(config.clone(), opts()).await {
                    Ok(r) => break Ok(r),
                    Err(e) if tries < 20 && e.to_string().contains("lock") => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    Err(e) => break Err(e),
                }
            };
            let result = result.and_then(|r| {
                let flow = r
                    .transports
                    .connect_memory(sip_addr(node, 5062))
                    .ok_or_else(|| overlay_err("the SIP core refused the phones' flow"))?;
                let ua = UaHost::spawn(
                    flow,
                    sip_addr(node, 5062),
                    format!("{node}i{incarnation}"),
                    t1,
                );
                Ok((r, ua))
            });
            let _ = events
                .send(SimEvent::Started {
                    node,
                    incarnation,
                    result: Box::new(result),
                })
                .await;
        });
    }

    fn on_started(
        &mut self,
        node: usize,
        incarnation: u32,
        result: Result<(Running, mpsc::Sender<UaCmd>), kadsip_node::node::NodeError>,
    ) -> Result<(), SimError> {
        let slot = &mut self.slots[node];
        if slot.incarnation != incarnation {
            return Ok(());
        }
        slot.starting = false;
        let (running, ua) = result.map_err(|e| SimError::Node(node, e))?;
        slot.peer = Some(running.peer_id);
        if node == 0 {
            if let Some(l) = &self.s.listen {
                // Other shards bootstrap from this address.
                eprintln!("shard listening on {l}/p2p/{}", running.peer_id);
            }
        }
        slot.running = Some(running);
        slot.ua = Some(ua);
        if !self.formed {
            return Ok(());
        }
        self.register_node(node);
        Ok(())
    }

    /// The phones of `node` register (those not meant to be offline).
    fn register_node(&mut self, node: usize) {
        let expires = self.s.registration_expiry.0.as_secs() as u32;
        let users: Vec<usize> = (0..self.users.len())
            .filter(|&u| self.users[u].node == node)
            .collect();
        for u in users {
            let offline = self.plan.offline.contains(&u) && self.users[u].known;
            if !offline {
                self.register(u, expires);
            }
        }
    }

    fn register(&mut self, user: usize, expires: u32) {
        let node = self.users[user].node;
        let Some(ua) = self.slots[node].ua.clone() else {
            return;
        };
        let incarnation = self.slots[node].incarnation;
        let (events, name) = (self.events_tx.clone(), self.users[user].name.clone());
        self.outstanding += 1;
        tokio::spawn(async move {
            let (tx, rx) = oneshot::channel();
            let status = if ua
                .send(UaCmd::Register {
                    user: name,
                    expires,
                    reply: tx,
                })
                .await
                .is_ok()
            {
                rx.await.unwrap_or(0)
            } else {
                0
            };
            let _ = events
                .send(SimEvent::Registered {
                    node,
                    incarnation,
                    user,
                    expires,
                    status,
                })
                .await;
        });
    }

    fn on_event(&mut self, ev: SimEvent) -> Result<(), SimError> {
        match ev {
            SimEvent::Started {
                node,
                incarnation,
                result,
            } => self.on_started(node, incarnation, *result)?,
            SimEvent::Registered {
                node,
                incarnation,
                user,
                expires,
                status,
            } => {
                self.outstanding -= 1;
                if self.slots[node].incarnation == incarnation
                    && self.slots[node].running.is_some()
                    && status == 200
                {
                    let u = &mut self.users[user];
                    u.known = true;
                    u.registered = expires > 0;
                }
                if status != 200 {
                    tracing::debug!(user, status, "registration failed");
                }
            }
            SimEvent::CallDone(c) => {
                self.outstanding -= 1;
                self.calls.push(c);
            }
        }
        Ok(())
    }

    /// Waits at least `settle`, then until the overlay is quiet: the nodes'
    /// bootstrap queries are done when the process uses under a third of a
    /// core for [`QUIET_SECONDS`] seconds in a row (one quiet second was seen
    /// amid saturation at 800 nodes). Joining costs every node a few dozen
    /// queries, so the wait is bounded by half a second per node (at least
    /// two minutes); a run that goes on busy says so in its log and
    /// `results.json`.
    async fn settle(&mut self) -> Result<(), SimError> {
        self.pump_until(self.s.settle.0, |_| false).await?;
        let limit = quiet_limit(self.s.nodes);
        let give_up = Instant::now() + limit;
        let mut quiet = 0;
        while Instant::now() < give_up {
            let (c0, t0) = (cpu_seconds(), Instant::now());
            self.pump_until(Duration::from_secs(1), |_| false).await?;
            let load = (cpu_seconds() - c0) / t0.elapsed().as_secs_f64();
            quiet = if load < 0.33 { quiet + 1 } else { 0 };
            if quiet >= QUIET_SECONDS {
                return Ok(());
            }
        }
        tracing::warn!(
            secs = limit.as_secs(),
            "the overlay is still busy (joins, publications); going on"
        );
        self.facts.busy_after_settle = true;
        Ok(())
    }

    /// Waits for events until `cond` holds or `limit` passes.
    async fn pump_until(
        &mut self,
        limit: Duration,
        mut cond: impl FnMut(&Sim) -> bool,
    ) -> Result<(), SimError> {
        let deadline = Instant::now() + limit;
        while !cond(self) {
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(ev) => self.on_event(ev)?,
                    None => return Ok(()),
                },
                _ = tokio::time::sleep_until(deadline) => return Ok(()),
            }
        }
        Ok(())
    }

    async fn execute(&mut self) -> Result<(), SimError> {
        let setup = Instant::now();
        let mut progress = Progress::new(self.s.duration.0);
        // Form the overlay: node 0 first, then the others at join_rate.
        let gap = Duration::from_secs_f64(1.0 / self.s.join_rate);
        for node in 0..self.s.nodes {
            self.spawn_node(node);
            if node == 0 {
                self.pump_until(Duration::from_secs(30), |s| {
                    s.slots[0].running.is_some() || !s.slots[0].starting
                })
                .await?;
                if self.slots[0].running.is_none() {
                    return Err(SimError::Node(0, overlay_err("did not start within 30 s")));
                }
            } else {
                let next = Instant::now() + gap;
                self.pump_until(gap, |_| false).await?;
                tokio::time::sleep_until(next).await;
            }
            progress.setup(node + 1, self.s.nodes);
        }
        // Every node up; the routing tables fill; then every phone registers.
        let n = self.s.nodes;
        self.pump_until(Duration::from_secs(120), |s| {
            s.slots.iter().all(|x| !x.starting)
        })
        .await?;
        self.settle().await?;
        self.formed = true;
        // Phones boot at register_rate, as after a campus-wide power cut.
        let per_node = Duration::from_secs_f64(self.s.users_per_node as f64 / self.s.register_rate);
        for node in 0..n {
            if self.slots[node].running.is_some() {
                let next = Instant::now() + per_node;
                self.register_node(node);
                self.pump_until(per_node, |_| false).await?;
                tokio::time::sleep_until(next).await;
            }
        }
        self.pump_until(Duration::from_secs(120), |s| s.outstanding == 0)
            .await?;
        let sent = self.users.len();
        let ok = self.users.iter().filter(|u| u.known).count();
        self.facts.registered = (ok, sent);
        // Offline users unregister: known, but no live contact.
        let offline = self.plan.offline.clone();
        for &u in &offline {
            if self.users[u].known {
                self.register(u, 0);
            }
        }
        self.pump_until(Duration::from_secs(60), |s| s.outstanding == 0)
            .await?;
        self.facts.setup_s = setup.elapsed().as_secs_f64();
        tracing::info!(
            nodes = n,
            registered = ok,
            of = sent,
            secs = self.facts.setup_s,
            "overlay formed"
        );
        // Settle, measuring idle CPU.
        self.settle().await?;
        let (c0, t0) = (cpu_seconds(), Instant::now());
        self.pump_until(Duration::from_secs(2), |_| false).await?;
        self.facts.cpu_idle = (cpu_seconds() - c0) / t0.elapsed().as_secs_f64().max(1e-3);
        self.facts.rss_bytes_formed = rss().0;

        // The workload.
        let start = Instant::now();
        let (c0, t0) = (cpu_seconds(), Instant::now());
        let calls = self.plan.calls.clone();
        let churn = self.plan.churn.clone();
        let mut partitions: Vec<(Duration, bool, usize)> = Vec::new();
        for (k, p) in self.s.partition.iter().enumerate() {
            partitions.push((p.at.0, true, k));
            partitions.push((p.heal.0, false, k));
        }
        partitions.sort_by_key(|x| x.0);
        let (mut ci, mut hi, mut pi) = (0, 0, 0);
        let mut next_sample = Duration::ZERO;
        let end = self.s.duration.0;
        loop {
            let off = start.elapsed();
            while ci < calls.len() && calls[ci].at <= off {
                self.place(calls[ci], off);
                ci += 1;
            }
            while hi < churn.len() && churn[hi].at <= off {
                self.churn(churn[hi]);
                hi += 1;
            }
            while pi < partitions.len() && partitions[pi].0 <= off {
                let (_, cut, k) = partitions[pi];
                self.partition(cut, k);
                pi += 1;
            }
            if off >= next_sample {
                let live = self.slots.iter().filter(|x| x.running.is_some()).count();
                self.facts.live.push((off.as_secs_f64().round(), live));
                let (now_rss, _) = rss();
                self.facts.rss_bytes_peak = self.facts.rss_bytes_peak.max(now_rss);
                let judged = self.calls.iter().filter(|c| c.actual != 0);
                let (n, ok) = judged.fold((0, 0), |(n, ok), c| {
                    (n + 1, ok + usize::from(c.actual == c.expected))
                });
                progress.tick(off, self.calls.len(), n, ok, live);
                next_sample += Duration::from_secs(1);
                let limit = self.s.memory_limit_mb;
                if limit > 0 && now_rss > limit * 1_048_576 {
                    return Err(SimError::Memory(now_rss / 1_048_576, limit));
                }
            }
            if off >= end {
                break;
            }
            let mut next = (start + next_sample).min(start + end);
            if let Some(c) = calls.get(ci) {
                next = next.min(start + c.at);
            }
            if let Some(c) = churn.get(hi) {
                next = next.min(start + c.at);
            }
            if let Some(p) = partitions.get(pi) {
                next = next.min(start + p.0);
            }
            tokio::select! {
                ev = self.events.recv() => if let Some(ev) = ev {
                    if let Err(e) = self.on_event(ev) {
                        tracing::warn!(error = %e, "a node failed to rejoin");
                        self.facts.failed_joins += 1;
                    }
                },
                _ = tokio::time::sleep_until(next) => {}
            }
        }
        // Let calls under way finish (their own timers bound them).
        let drain = self.s.lookup_timeout.0 + self.s.timer_c.0 + self.s.t1.0 * 64;
        self.pump_until(drain, |s| s.outstanding == 0).await.ok();
        self.facts.cpu_load = (cpu_seconds() - c0) / t0.elapsed().as_secs_f64().max(1e-3);
        progress.done();
        Ok(())
    }

    /// Places one planned call, judging it against the truth right now.
    fn place(&mut self, pc: PlannedCall, off: Duration) {
        let n = self.users.len();
        let Some(caller) = (0..n)
            .map(|k| (pc.caller + k) % n)
            .find(|&u| self.slots[self.users[u].node].ua.is_some())
        else {
            return;
        };
        let (callee, truth) = match pc.target {
            Target::Ghost(j) => (format!("sip:ghost{j}@{DOMAIN}"), expected(None, false)),
            Target::Offline(k) => {
                let u = self.plan.offline[k];
                (self.aor(u), self.truth(u))
            }
            Target::User(u) => (self.aor(u), self.truth(u)),
        };
        let caller_node = self.users[caller].node;
        let Some(ua) = self.slots[caller_node].ua.clone() else {
            return;
        };
        let name = self.users[caller].name.clone();
        let (events, traces) = (self.events_tx.clone(), self.traces.clone());
        let method = if pc.message { "MESSAGE" } else { "INVITE" };
        let limit =
            self.s.lookup_timeout.0 + self.s.timer_c.0 + self.s.t1.0 * 64 + Duration::from_secs(5);
        self.outstanding += 1;
        tokio::spawn(async move {
            let (tx, rx) = oneshot::channel();
            let sent = ua
                .send(UaCmd::Call {
                    user: name,
                    to: callee.clone(),
                    message: pc.message,
                    reply: tx,
                })
                .await
                .is_ok();
            let out: Option<CallOutcome> = if sent {
                tokio::time::timeout(limit, rx)
                    .await
                    .ok()
                    .and_then(Result::ok)
            } else {
                None
            };
            let trace = out
                .as_ref()
                .and_then(|o| traces.lock().ok().and_then(|mut m| m.remove(&o.call_id)));
            let rec = CallRecord {
                t: off.as_secs_f64(),
                caller_node,
                callee,
                method,
                expected: truth,
                actual: out.as_ref().map_or(0, |o| o.status),
                lookup_ms: trace.as_ref().map(|t| t.latency.as_secs_f64() * 1000.0),
                lookup_outcome: trace.as_ref().map_or("none", |t| t.outcome),
                dht_requests: trace.as_ref().map_or(0, |t| t.requests),
                cached: trace.as_ref().is_some_and(|t| t.cached),
                setup_ms: out.as_ref().map_or(0.0, |o| o.setup.as_secs_f64() * 1000.0),
                warning: out.and_then(|o| o.warning),
            };
            let _ = events.send(SimEvent::CallDone(rec)).await;
        });
    }

    fn aor(&self, u: usize) -> String {
        format!("sip:{}@{DOMAIN}", self.users[u].name)
    }

    fn truth(&self, u: usize) -> u16 {
        let user = &self.users[u];
        expected(Some(user), self.slots[user.node].running.is_some())
    }

    fn churn(&mut self, ev: ChurnEvent) {
        let node = ev.node;
        if ev.join {
            if self.slots[node].running.is_none() && !self.slots[node].starting {
                if !self.s.churn_keep_data {
                    let _ = std::fs::remove_dir_all(&self.slots[node].dir);
                }
                self.facts.joins += 1;
                self.spawn_node(node);
            }
        } else if let Some(r) = self.slots[node].running.take() {
            self.facts.leaves += 1;
            self.slots[node].ua = None;
            for u in self.users.iter_mut().filter(|u| u.node == node) {
                u.registered = false;
            }
            tokio::spawn(r.shutdown());
        }
    }

    fn partition(&mut self, cut: bool, k: usize) {
        if !cut {
            self.net.heal();
            return;
        }
        let f = self.s.partition[k].fraction;
        let far: Vec<usize> = (0..self.slots.len())
            .filter(|i| (*i as f64) >= self.slots.len() as f64 * (1.0 - f))
            .collect();
        self.net.partition(&far, k as u32 + 1);
    }

    async fn finish(&mut self) {
        // Overlay shape at the end, then stop every node.
        let mut tables = Vec::new();
        let mut peers = Vec::new();
        for slot in &self.slots {
            if let Some(r) = &slot.running {
                if let Ok(Ok(st)) =
                    tokio::time::timeout(Duration::from_secs(2), r.overlay.status()).await
                {
                    tables.push(st.routing_table);
                    peers.push(st.peers);
                }
            }
        }
        if !tables.is_empty() {
            self.facts.routing_table = (
                tables.iter().sum::<usize>() as f64 / tables.len() as f64,
                tables.iter().copied().max().unwrap_or(0),
            );
            self.facts.peers_mean = peers.iter().sum::<usize>() as f64 / peers.len() as f64;
        }
        let (_, peak) = rss();
        self.facts.rss_bytes_peak = self.facts.rss_bytes_peak.max(peak);
        let stops: Vec<_> = self
            .slots
            .iter_mut()
            .filter_map(|s| {
                s.ua = None;
                s.running.take()
            })
            .map(|r| tokio::spawn(r.shutdown()))
            .collect();
        for s in stops {
            let _ = tokio::time::timeout(Duration::from_secs(10), s).await;
        }
    }
}

fn overlay_err(e: &str) -> kadsip_node::node::NodeError {
    kadsip_node::node::NodeError::Overlay(e.to_owned())
}
