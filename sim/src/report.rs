//! What a run leaves behind: `results.json`, `calls.csv`, the SVG plots and
//! the closing table, all computed from the per-call records.

use crate::svg;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// One placed call or MESSAGE.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// Seconds from the start of the workload.
    pub t: f64,
    /// The caller's node.
    pub caller_node: usize,
    /// The callee AOR.
    pub callee: String,
    /// INVITE or MESSAGE.
    pub method: &'static str,
    /// What the truth said.
    pub expected: u16,
    /// What the overlay answered (0: the caller's own node left mid-call).
    pub actual: u16,
    /// Lookup time at the caller's node, when it looked up.
    pub lookup_ms: Option<f64>,
    /// How the lookup ended (`found`, `local`, `not_found`, …).
    pub lookup_outcome: &'static str,
    /// DHT requests the lookup sent.
    pub dht_requests: u32,
    /// Answered from the lookup cache.
    pub cached: bool,
    /// Request → final response.
    pub setup_ms: f64,
    /// The Warning of a failure.
    pub warning: Option<String>,
}

/// `{p50, p90, p99, max}` of a sample (nulls when empty).
pub fn quantiles(v: &mut [f64]) -> Value {
    if v.is_empty() {
        return json!({"p50": null, "p90": null, "p99": null, "max": null, "n": 0});
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
        (v[i] * 1000.0).round() / 1000.0
    };
    json!({"p50": q(0.50), "p90": q(0.90), "p99": q(0.99), "max": q(1.0), "n": v.len()})
}

/// Everything measured besides the call records.
#[derive(Debug, Clone, Default)]
pub struct RunFacts {
    /// Scenario name.
    pub scenario: String,
    /// Nodes.
    pub nodes: usize,
    /// Security of the in-memory links (`noise` or `plaintext`).
    pub link_security: String,
    /// Peers each record is stored at.
    pub replicas: usize,
    /// Workload seconds.
    pub duration_s: f64,
    /// Seed.
    pub seed: u64,
    /// Users simulated.
    pub users: usize,
    /// REGISTERs answered 200 / sent at start.
    pub registered: (usize, usize),
    /// Node joins and leaves during the workload.
    pub joins: usize,
    /// Leaves.
    pub leaves: usize,
    /// Rejoins that could not start (their data dir was still locked, …).
    pub failed_joins: usize,
    /// Peak resident memory.
    pub rss_bytes_peak: u64,
    /// Resident memory once the overlay had formed, before the workload.
    pub rss_bytes_formed: u64,
    /// CPU use (share of one core) while idle after registration.
    pub cpu_idle: f64,
    /// CPU use during the workload.
    pub cpu_load: f64,
    /// Seconds to start every node and register every user.
    pub setup_s: f64,
    /// Live nodes per second of the workload.
    pub live: Vec<(f64, usize)>,
    /// Mean and max Kademlia routing-table size at the end.
    pub routing_table: (f64, usize),
    /// Mean connected peers at the end.
    pub peers_mean: f64,
    /// A settle gave up waiting for the overlay to go quiet.
    pub busy_after_settle: bool,
    /// Why the run stopped early, if it did.
    pub aborted: Option<String>,
}

/// Calls that count for accuracy (the caller's node stayed up).
fn judged(calls: &[CallRecord]) -> impl Iterator<Item = &CallRecord> {
    calls.iter().filter(|c| c.actual != 0)
}

/// results.json.
pub fn results(calls: &[CallRecord], f: &RunFacts) -> Value {
    let n = judged(calls).count();
    let ok = judged(calls).filter(|c| c.actual == c.expected).count();
    let mut by: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for c in judged(calls) {
        *by.entry(c.expected.to_string())
            .or_default()
            .entry(c.actual.to_string())
            .or_default() += 1;
    }
    let mut mismatches: BTreeMap<String, usize> = BTreeMap::new();
    for c in judged(calls).filter(|c| c.actual != c.expected) {
        *mismatches
            .entry(format!("expected {} got {}", c.expected, c.actual))
            .or_default() += 1;
    }
    let mut lookups: Vec<f64> = calls.iter().filter_map(|c| c.lookup_ms).collect();
    let mut dht_lookups: Vec<f64> = calls
        .iter()
        .filter(|c| c.dht_requests > 0)
        .filter_map(|c| c.lookup_ms)
        .collect();
    let mut setup: Vec<f64> = judged(calls)
        .filter(|c| c.actual == 200)
        .map(|c| c.setup_ms)
        .collect();
    let reqs: Vec<f64> = calls
        .iter()
        .filter(|c| c.dht_requests > 0)
        .map(|c| f64::from(c.dht_requests))
        .collect();
    let mean = |v: &[f64]| {
        if v.is_empty() {
            Value::Null
        } else {
            json!((v.iter().sum::<f64>() / v.len() as f64 * 100.0).round() / 100.0)
        }
    };
    let accuracy = if n == 0 {
        Value::Null
    } else {
        json!((ok as f64 / n as f64 * 10_000.0).round() / 10_000.0)
    };
    json!({
        "scenario": f.scenario,
        "nodes": f.nodes,
        "link_security": f.link_security,
        "replicas": f.replicas,
        "duration_s": f.duration_s,
        "seed": f.seed,
        "users": f.users,
        "registrations": {"ok": f.registered.0, "sent": f.registered.1},
        "setup_s": (f.setup_s * 10.0).round() / 10.0,
        "calls": {
            "attempted": calls.len(),
            "judged": n,
            "aborted": calls.len() - n,
            "correct": ok,
            "accuracy": accuracy,
            "by_expected_and_actual": by,
            "mismatches": mismatches,
            "by_method": {
                "INVITE": calls.iter().filter(|c| c.method == "INVITE").count(),
                "MESSAGE": calls.iter().filter(|c| c.method == "MESSAGE").count(),
            },
        },
        "lookup_ms": quantiles(&mut lookups),
        "dht_lookup_ms": quantiles(&mut dht_lookups),
        "setup_ms": quantiles(&mut setup),
        "dht": {
            "lookups": reqs.len(),
            "requests_per_lookup": mean(&reqs),
        },
        "churn": {"joins": f.joins, "leaves": f.leaves, "failed_joins": f.failed_joins},
        "overlay": {
            "routing_table_mean": (f.routing_table.0 * 10.0).round() / 10.0,
            "routing_table_max": f.routing_table.1,
            "peers_mean": (f.peers_mean * 10.0).round() / 10.0,
            "busy_after_settle": f.busy_after_settle,
        },
        "rss_bytes_peak": f.rss_bytes_peak,
        "rss_bytes_formed": f.rss_bytes_formed,
        "rss_bytes_per_node": f.rss_bytes_formed / f.nodes.max(1) as u64,
        "cpu": {"idle_cores": round2(f.cpu_idle), "load_cores": round2(f.cpu_load)},
        "aborted": f.aborted,
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// calls.csv.
pub fn csv(calls: &[CallRecord]) -> String {
    let mut out = String::from(
        "time_s,caller_node,callee,method,expected,actual,lookup_ms,lookup_outcome,dht_requests,cached,setup_ms,warning\n",
    );
    for c in calls {
        let _ = writeln!(
            out,
            "{:.3},{},{},{},{},{},{},{},{},{},{:.3},{}",
            c.t,
            c.caller_node,
            csv_field(&c.callee),
            c.method,
            c.expected,
            c.actual,
            c.lookup_ms.map(|x| format!("{x:.3}")).unwrap_or_default(),
            c.lookup_outcome,
            c.dht_requests,
            c.cached,
            c.setup_ms,
            csv_field(c.warning.as_deref().unwrap_or("")),
        );
    }
    out
}

/// The closing table.
pub fn table(r: &Value) -> String {
    let g = |p: &str| r.pointer(p).cloned().unwrap_or(Value::Null);
    let q = |p: &str| {
        format!(
            "p50 {}  p90 {}  p99 {}  max {}",
            g(&format!("{p}/p50")),
            g(&format!("{p}/p90")),
            g(&format!("{p}/p99")),
            g(&format!("{p}/max"))
        )
    };
    let mut t = String::new();
    let _ = writeln!(
        t,
        "kadsip-sim {} — {} nodes ({} links), {} s, seed {}",
        g("/scenario"),
        g("/nodes"),
        g("/link_security"),
        g("/duration_s"),
        g("/seed")
    );
    let _ = writeln!(
        t,
        "  calls attempted     {} (judged {}, aborted {})",
        g("/calls/attempted"),
        g("/calls/judged"),
        g("/calls/aborted")
    );
    let acc = r
        .pointer("/calls/accuracy")
        .and_then(Value::as_f64)
        .map_or("n/a".into(), |a| format!("{:.2}%", a * 100.0));
    let _ = writeln!(t, "  accuracy            {acc}");
    if let Some(m) = r
        .pointer("/calls/by_expected_and_actual")
        .and_then(Value::as_object)
    {
        for (exp, row) in m {
            let cells: Vec<String> = row
                .as_object()
                .map(|o| o.iter().map(|(a, n)| format!("{a}:{n}")).collect())
                .unwrap_or_default();
            let _ = writeln!(t, "    expected {exp} → {}", cells.join("  "));
        }
    }
    let _ = writeln!(t, "  lookup ms           {}", q("/lookup_ms"));
    let _ = writeln!(t, "  DHT lookup ms       {}", q("/dht_lookup_ms"));
    let _ = writeln!(t, "  setup ms (200s)     {}", q("/setup_ms"));
    let _ = writeln!(t, "  DHT requests/lookup {}", g("/dht/requests_per_lookup"));
    let _ = writeln!(
        t,
        "  churn               joins {}  leaves {}",
        g("/churn/joins"),
        g("/churn/leaves")
    );
    let mb = |p: &str| {
        r.pointer(p)
            .and_then(Value::as_u64)
            .map_or(0.0, |b| b as f64 / 1_048_576.0)
    };
    let _ = writeln!(
        t,
        "  memory              peak {:.0} MiB, {:.2} MiB per node once formed",
        mb("/rss_bytes_peak"),
        mb("/rss_bytes_per_node")
    );
    let _ = writeln!(
        t,
        "  CPU (cores)         idle {}  under load {}",
        g("/cpu/idle_cores"),
        g("/cpu/load_cores")
    );
    if r.pointer("/overlay/busy_after_settle") == Some(&Value::Bool(true)) {
        let _ = writeln!(
            t,
            "  warning             the overlay was still busy when the workload began (CPU-bound)"
        );
    }
    if let Some(a) = r.get("aborted").and_then(Value::as_str) {
        let _ = writeln!(t, "  ABORTED: {a}");
    }
    t
}

/// Writes every output file into `dir`.
pub fn write_all(dir: &Path, calls: &[CallRecord], f: &RunFacts) -> std::io::Result<Value> {
    std::fs::create_dir_all(dir)?;
    let r = results(calls, f);
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&r)? + "\n",
    )?;
    std::fs::write(dir.join("calls.csv"), csv(calls))?;
    let mut lookups: Vec<f64> = calls.iter().filter_map(|c| c.lookup_ms).collect();
    lookups.sort_by(f64::total_cmp);
    std::fs::write(
        dir.join("lookup_cdf.svg"),
        svg::cdf("Lookup latency (caller's node)", "ms", &lookups),
    )?;
    // Accuracy per second of the workload, and live nodes.
    let secs = f.duration_s.ceil().max(1.0) as usize;
    let mut per = vec![(0usize, 0usize); secs + 1];
    for c in judged(calls) {
        let i = (c.t as usize).min(secs);
        per[i].0 += 1;
        if c.actual == c.expected {
            per[i].1 += 1;
        }
    }
    let acc: Vec<(f64, f64)> = per
        .iter()
        .enumerate()
        .filter(|(_, (n, _))| *n > 0)
        .map(|(i, (n, ok))| (i as f64, *ok as f64 / *n as f64 * 100.0))
        .collect();
    let live: Vec<(f64, f64)> = f.live.iter().map(|(t, n)| (*t, *n as f64)).collect();
    std::fs::write(
        dir.join("timeline.svg"),
        svg::timeline(&acc, &live, f.nodes as f64),
    )?;
    let mut bars: BTreeMap<u16, BTreeMap<u16, usize>> = BTreeMap::new();
    for c in judged(calls) {
        *bars
            .entry(c.expected)
            .or_default()
            .entry(c.actual)
            .or_default() += 1;
    }
    std::fs::write(dir.join("outcomes.svg"), svg::bars(&bars))?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(expected: u16, actual: u16, lookup: f64) -> CallRecord {
        CallRecord {
            t: 1.5,
            caller_node: 3,
            callee: "sip:a@sim.example".into(),
            method: "INVITE",
            expected,
            actual,
            lookup_ms: Some(lookup),
            lookup_outcome: "found",
            dht_requests: 4,
            cached: false,
            setup_ms: 2.0,
            warning: Some("399 x \"a, b\"".into()),
        }
    }

    #[test]
    fn accuracy_breakdown_and_quantiles() {
        let calls = vec![
            call(200, 200, 1.0),
            call(200, 408, 3.0),
            call(404, 404, 2.0),
            call(480, 0, 9.0),
        ];
        let f = RunFacts {
            nodes: 2,
            duration_s: 3.0,
            ..RunFacts::default()
        };
        let r = results(&calls, &f);
        assert_eq!(r["calls"]["attempted"], 4);
        assert_eq!(r["calls"]["judged"], 3);
        assert_eq!(r["calls"]["accuracy"], 0.6667);
        assert_eq!(r["calls"]["by_expected_and_actual"]["200"]["408"], 1);
        assert_eq!(r["calls"]["mismatches"]["expected 200 got 408"], 1);
        assert_eq!(r["lookup_ms"]["p50"], 2.0);
        assert_eq!(r["lookup_ms"]["max"], 9.0);
        assert_eq!(r["dht"]["requests_per_lookup"], 4.0);
        let csv = csv(&calls);
        assert_eq!(csv.lines().count(), 5);
        assert!(csv.contains("\"399 x \"\"a, b\"\"\""), "{csv}");
        assert!(table(&r).contains("66.67%"));
    }
}
