//! The simulator end to end, through its binary: a small accurate run, a
//! churn run within its memory bound, and two shards joining one overlay.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn sim() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kadsip-sim"));
    c.env("KADSIP_LOG", "error");
    c
}

/// Runs the simulator to completion (bounded) and returns results.json.
fn run(args: &[&str], out: &Path, limit: Duration) -> Value {
    let mut child = sim()
        .args(args)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kadsip-sim runs");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            let mut stdout = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut stdout)
                .unwrap();
            assert!(status.success(), "kadsip-sim failed:\n{stdout}\n{stderr}");
            assert!(
                stdout.contains("accuracy"),
                "closing table on stdout:\n{stdout}"
            );
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("kadsip-sim did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(out.join("results.json")).expect("results.json written");
    serde_json::from_str(&text).expect("results.json parses")
}

fn check_outputs(out: &Path, r: &Value) {
    let csv = std::fs::read_to_string(out.join("calls.csv")).unwrap();
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("time_s,caller_node,callee,")
    );
    assert_eq!(
        lines.count() as u64,
        r["calls"]["attempted"].as_u64().unwrap()
    );
    for svg in ["lookup_cdf.svg", "timeline.svg", "outcomes.svg"] {
        let s = std::fs::read_to_string(out.join(svg)).unwrap();
        assert!(
            s.starts_with("<svg") && s.trim_end().ends_with("</svg>"),
            "{svg}"
        );
    }
    for key in ["nodes", "duration_s", "seed", "rss_bytes_peak"] {
        assert!(r[key].is_number(), "results.json lacks {key}");
    }
    for p in [
        "/lookup_ms/p50",
        "/setup_ms/p99",
        "/dht/requests_per_lookup",
        "/churn/joins",
        "/churn/leaves",
    ] {
        assert!(
            r.pointer(p).is_some_and(|v| !v.is_null()),
            "results.json lacks {p}: {r}"
        );
    }
}

#[test]
fn thirty_nodes_answer_as_the_truth_says() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        &[
            "--nodes",
            "30",
            "--duration",
            "20s",
            "--seed",
            "7",
            "--call-rate",
            "5",
        ],
        dir.path(),
        Duration::from_secs(240),
    );
    check_outputs(dir.path(), &r);
    let attempted = r["calls"]["attempted"].as_u64().unwrap();
    assert!(attempted >= 50, "{attempted} calls");
    let acc = r["calls"]["accuracy"].as_f64().unwrap();
    assert!(acc >= 0.99, "accuracy {acc}: {}", r["calls"]);
    let by = &r["calls"]["by_expected_and_actual"];
    let expected_404: u64 = by["404"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
    assert!(expected_404 > 0, "the plan calls never-registered AORs");
    assert_eq!(
        by["404"]["404"].as_u64(),
        Some(expected_404),
        "every expected 404 got 404: {by}"
    );
    assert_eq!(r["registrations"]["ok"], r["registrations"]["sent"]);
}

/// Phones refresh their registrations: with a 6 s expiry, calls placed long
/// after it still reach the callees (a UA that read its REGISTER
/// transaction's end as a failure once stopped refreshing, and they got 404).
#[test]
fn registrations_are_refreshed_past_their_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("refresh.toml");
    std::fs::write(
        &scenario,
        "name = \"refresh\"\nnodes = 8\nduration = \"16s\"\ncall_rate = 4.0\n\
         registration_expiry = \"6s\"\nrepublish = \"3s\"\nlink_security = \"plaintext\"\nreplicas = 8\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let r = run(
        &["--scenario", scenario.to_str().unwrap(), "--seed", "3"],
        &out,
        Duration::from_secs(180),
    );
    let by = &r["calls"]["by_expected_and_actual"];
    let expected_200: u64 = by["200"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
    assert!(expected_200 >= 30, "{by}");
    let acc = r["calls"]["accuracy"].as_f64().unwrap();
    assert!(acc >= 0.99, "accuracy {acc}: {by}");
    assert_eq!(r["link_security"], "plaintext");
    assert_eq!(r["replicas"], 8);
}

#[test]
fn churn_runs_within_its_memory_bound() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        &[
            "--nodes",
            "50",
            "--duration",
            "30s",
            "--seed",
            "3",
            "--churn-median-session",
            "60s",
            "--churn-median-downtime",
            "10s",
            "--memory-limit-mb",
            "3072",
            "--users-per-node",
            "1",
        ],
        dir.path(),
        Duration::from_secs(300),
    );
    check_outputs(dir.path(), &r);
    assert!(r["aborted"].is_null());
    let leaves = r["churn"]["leaves"].as_u64().unwrap();
    assert!(leaves > 0, "nodes left during the run");
    assert!(r["calls"]["accuracy"].is_number());
    assert!(r["calls"]["mismatches"].is_object());
    assert!(r["rss_bytes_peak"].as_u64().unwrap() < 3072 * 1_048_576);
}

#[test]
fn two_shards_join_one_overlay_over_tcp() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = sim()
        .args([
            "--nodes",
            "6",
            "--duration",
            "25s",
            "--seed",
            "1",
            "--listen",
            &listen,
            "--out",
        ])
        .arg(da.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for shard A's bootstrap address.
    let mut stderr = BufReader::new(a.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "shard A exited early"
        );
        if let Some(addr) = line.trim().strip_prefix("shard listening on ") {
            break addr.to_owned();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let rb = run(
        &[
            "--nodes",
            "6",
            "--duration",
            "8s",
            "--seed",
            "2",
            // Plaintext in-memory links beside the Noise TCP shard link.
            "--link-security",
            "plaintext",
            "--bootstrap",
            &addr,
        ],
        db.path(),
        Duration::from_secs(120),
    );
    let status = a.wait().unwrap();
    assert!(status.success());
    let ra: Value =
        serde_json::from_str(&std::fs::read_to_string(da.path().join("results.json")).unwrap())
            .unwrap();
    // Six local nodes know five local peers; more means the other shard.
    for r in [&ra, &rb] {
        let max = r["overlay"]["routing_table_max"].as_u64().unwrap();
        assert!(
            max > 5,
            "a shard's routing tables hold peers of the other shard: {}",
            r["overlay"]
        );
        assert!(
            r["calls"]["accuracy"].as_f64().unwrap() >= 0.9,
            "{}",
            r["calls"]
        );
    }
}
