//! Starting and stopping real kadsip nodes (in process, on loopback) and
//! waiting for conditions with a deadline instead of sleeping.

use kadsip_node::config::Config;
use kadsip_node::node::{self, Running, Timers};
use kadsip_proto::Aor;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

/// A node under test and its data dir.
pub struct TestNode {
    /// The running node (None once stopped).
    pub node: Option<Running>,
    /// Its data dir (kept for restarts; removed on drop).
    pub _dir: tempfile::TempDir,
    /// Its full p2p address (ends in /p2p/<id>).
    pub addr: String,
}

impl TestNode {
    /// The running node.
    pub fn running(&self) -> &Running {
        self.node.as_ref().expect("node is running")
    }

    /// Stops it (graceful).
    pub async fn stop(&mut self) {
        if let Some(n) = self.node.take() {
            n.shutdown().await;
        }
    }
}

/// Config for a loopback test node.
pub fn config(dir: PathBuf, bootstrap: Vec<String>, open: bool) -> Config {
    Config {
        data_dir: dir,
        sip: "127.0.0.1:0".parse().unwrap(),
        http: "127.0.0.1:0".parse().unwrap(),
        p2p: vec!["/ip4/127.0.0.1/tcp/0".into()],
        bootstrap,
        mdns: false,
        open,
        lookup_timeout: Duration::from_secs(3),
        // Short so that changes show quickly and Timer C fits in a test.
        lookup_cache_ttl: Duration::from_secs(1),
        timer_c: Duration::from_secs(3),
        ..Config::default()
    }
}

/// Timers for tests: a short T1 so transaction timeouts fit in a test.
pub fn timers() -> Timers {
    let mut proxy = kadsip_node::sip::ProxyConfig::default();
    proxy.tx.t1 = Duration::from_millis(100);
    Timers {
        proxy,
        ..Timers::default()
    }
}

/// Polls `f` until it returns `Some`, failing after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts one node with `bootstrap` peers.
pub async fn start(dir: tempfile::TempDir, bootstrap: Vec<String>, open: bool) -> TestNode {
    // A node that was just stopped on this dir may still be releasing
    // sled's lock (its writer thread exits once the last handle drops).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let running = loop {
        let cfg = config(dir.path().to_owned(), bootstrap.clone(), open);
        match node::start(cfg, timers()).await {
            Ok(r) => break r,
            Err(e) if e.to_string().contains("lock") && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("node starts: {e}"),
        }
    };
    let overlay = running.overlay.clone();
    let addr = wait_for("a p2p listen address", Duration::from_secs(10), || {
        let o = overlay.clone();
        async move { o.status().await.ok()?.listen_addrs.into_iter().next() }
    })
    .await;
    TestNode {
        node: Some(running),
        _dir: dir,
        addr,
    }
}

/// `n` nodes, all bootstrapped through the first, each with a populated
/// routing table.
pub async fn network(n: usize, open: bool) -> Vec<TestNode> {
    network_in((0..n).map(|_| tempfile::tempdir().unwrap()).collect(), open).await
}

/// Like [`network`], on data dirs prepared by the caller (accounts seeded).
pub async fn network_in(dirs: Vec<tempfile::TempDir>, open: bool) -> Vec<TestNode> {
    let n = dirs.len();
    let mut dirs = dirs.into_iter();
    let first = start(dirs.next().expect("one node"), vec![], open).await;
    let boot = vec![first.addr.clone()];
    let mut nodes = vec![first];
    for d in dirs {
        nodes.push(start(d, boot.clone(), open).await);
    }
    for (i, t) in nodes.iter().enumerate() {
        let o = t.running().overlay.clone();
        let want = (n - 1).min(3);
        wait_for(
            &format!("node {i} to know {want} peers"),
            Duration::from_secs(20),
            || {
                let o = o.clone();
                async move {
                    o.status()
                        .await
                        .ok()
                        .filter(|s| s.routing_table >= want)
                        .map(|_| ())
                }
            },
        )
        .await;
    }
    nodes
}

/// Resolves `aor` at `node` until the outcome is named `want`.
pub async fn resolve_until(
    node: &Running,
    aor: &str,
    want: &str,
    timeout: Duration,
) -> kadsip_node::lookup::Outcome {
    let aor = Aor::parse(aor).unwrap();
    let lookup = node.lookup.clone();
    wait_for(&format!("{aor} to resolve as {want}"), timeout, || {
        let (lookup, aor) = (lookup.clone(), aor.clone());
        async move {
            let r = lookup.resolve(&aor).await;
            if r.outcome.name() != want {
                eprintln!("{aor}: {} (want {want})", r.outcome.name());
            }
            (r.outcome.name() == want).then_some(r.outcome)
        }
    })
    .await
}
