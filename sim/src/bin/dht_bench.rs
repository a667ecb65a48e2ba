//! `kadsip-dht-bench`: N real kadsip overlay nodes on loopback TCP in one
//! process; times signed-record puts (Quorum::All to the k closest) and gets
//! (read quorum 2; the time to the first valid record is kept too) for a set of
//! keys — the overlay half of `tests/bench/dht.sh`.

use clap::Parser;
use ed25519_dalek::SigningKey;
use kadsip_node::config::Config;
use kadsip_node::node::{Running, StartOptions, start_with};
use kadsip_node::overlay::DhtLookup;
use kadsip_node::sip::ProxyConfig;
use kadsip_proto::Aor;
use kadsip_proto::overlay::{AorRecord, ContactBinding, NodeEntry, record_key};
use kadsip_sim::rng::Rng;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Times DHT puts and gets on N kadsip nodes over loopback TCP.
#[derive(Debug, Parser)]
#[command(name = "kadsip-dht-bench", version)]
struct Args {
    /// Overlay nodes to start.
    #[arg(long, default_value_t = 50)]
    nodes: usize,
    /// Keys to put and then get.
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// Peers each record is stored at (Kademlia's k; OpenDHT stores at 8).
    #[arg(long, default_value_t = 20)]
    replication: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

fn quantile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

async fn start(
    dir: &std::path::Path,
    i: usize,
    bootstrap: Vec<String>,
    replication: std::num::NonZeroUsize,
) -> Result<Running, String> {
    let config = Config {
        data_dir: dir.join(format!("n{i}")),
        sip: format!("127.0.0.{}:5060", 2 + i % 200)
            .parse()
            .map_err(|e| format!("{e}"))?,
        p2p: vec!["/ip4/127.0.0.1/tcp/0".into()],
        bootstrap,
        mdns: false,
        open: true,
        replicas: replication.get(),
        ..Config::default()
    };
    let mut opts = StartOptions {
        http: false,
        ..StartOptions::default()
    };
    opts.timers.overlay.mdns = false;

    opts.timers.proxy = ProxyConfig {
        sockets: false,
        ..ProxyConfig::default()
    };
    start_with(config, opts)
        .await
        .map_err(|e| format!("node {i}: {e}"))
}

async fn run(args: Args) -> Result<serde_json::Value, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let k =
        std::num::NonZeroUsize::new(args.replication).ok_or("--replication must be at least 1")?;
    let mut nodes = vec![start(dir.path(), 0, vec![], k).await?];
    let first = loop {
        let st = nodes[0].overlay.status().await.map_err(|e| e.to_string())?;
        if let Some(a) = st.listen_addrs.into_iter().find(|a| a.contains("/tcp/")) {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for i in 1..args.nodes {
        nodes.push(start(dir.path(), i, vec![first.clone()], k).await?);
    }
    // Formed: every routing table holds min(N-1, 15) peers, then a quiet second.
    let want = (args.nodes - 1).min(15);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut ok = true;
        for n in &nodes {
            let st = n.overlay.status().await.map_err(|e| e.to_string())?;
            ok &= st.routing_table >= want;
        }
        if ok || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss, _) = kadsip_sim::run::rss();

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let mut rng = Rng::new(7);
    let n = nodes.len();
    let mut puts = Vec::with_capacity(args.keys);
    let mut keys = Vec::with_capacity(args.keys);
    for i in 0..args.keys {
        let aor = Aor::parse(&format!("sip:k{i}@bench.example")).map_err(|e| e.to_string())?;
        let mut secret = [0u8; 32];
        for c in secret.chunks_mut(8) {
            c.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        let key = SigningKey::from_bytes(&secret);
        let node = &nodes[i % n];
        let entry = NodeEntry {
            node: node.peer_id.to_bytes(),
            addrs: vec![],
            contacts: vec![ContactBinding {
                uri: format!("sip:k{i}@192.0.2.1"),
                q: 1000,
                expires: now + 3600,
            }],
            seq: 1,
            expires: now + 3600,
            claim_expires: now + 86_400,
        };
        let rec = AorRecord::new(&aor, &key, entry);
        let k = record_key(&aor).to_vec();
        let t = Instant::now();
        let r = node.overlay.publish(k.clone(), rec.encode()).await;
        puts.push(t.elapsed().as_secs_f64() * 1000.0);
        if let Err(e) = r {
            eprintln!("put {i}: {e}");
        }
        keys.push(k);
    }
    let mut gets = Vec::with_capacity(args.keys);
    // Time to the first valid record, as OpenDHT's get is timed.
    let mut firsts = Vec::with_capacity(args.keys);
    let mut found = 0;
    for (i, k) in keys.iter().enumerate() {
        let node = &nodes[(i + n / 2 + 1) % n];
        let t = Instant::now();
        let r = node
            .overlay
            .lookup(k.clone(), None)
            .await
            .map_err(|e| e.to_string())?;
        gets.push(t.elapsed().as_secs_f64() * 1000.0);
        if matches!(r.result, DhtLookup::Found(_)) {
            found += 1;
        }
        if let Some(first) = r.first_valid {
            firsts.push(first.as_secs_f64() * 1000.0);
        }
    }
    for node in nodes {
        node.shutdown().await;
    }
    let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
    Ok(serde_json::json!({
        "overlay": "kadsip",
        "nodes": n,
        "keys": args.keys,
        "replication": args.replication,
        "put_ms": {"p50": r3(quantile(&mut puts, 0.5)), "p99": r3(quantile(&mut puts, 0.99))},
        "get_ms": {"p50": r3(quantile(&mut gets, 0.5)), "p99": r3(quantile(&mut gets, 0.99))},
        "get_first_ms": {"p50": r3(quantile(&mut firsts, 0.5)), "p99": r3(quantile(&mut firsts, 0.99))},
        "found": found,
        "rss_bytes_per_node": rss / n.max(1) as u64,
    }))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.nodes < 2 || args.keys == 0 {
        eprintln!("error: --nodes must be at least 2 and --keys at least 1");
        return ExitCode::from(2);
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KADSIP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let json = args.json;
    let rt = match kadsip_sim::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(v) if json => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Ok(v) => {
            println!(
                "kadsip  N={}  put p50 {} ms p99 {} ms  get p50 {} ms p99 {} ms  \
                 (first valid record p50 {} ms p99 {} ms)  found {}/{}",
                v["nodes"],
                v["put_ms"]["p50"],
                v["put_ms"]["p99"],
                v["get_ms"]["p50"],
                v["get_ms"]["p99"],
                v["get_first_ms"]["p50"],
                v["get_first_ms"]["p99"],
                v["found"],
                v["keys"]
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
