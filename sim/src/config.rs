//! What a simulation runs: a scenario from TOML (`deny_unknown_fields`, every
//! key defaulted) with command-line flags on top, and the presets we ship.

use crate::rng::{Dist, DistKind};
use clap::Parser;
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The shipped presets, by name.
pub const PRESETS: &[(&str, &str)] = &[
    ("smoke", include_str!("../scenarios/smoke.toml")),
    ("campus", include_str!("../scenarios/campus.toml")),
    ("community", include_str!("../scenarios/community.toml")),
    ("stress", include_str!("../scenarios/stress.toml")),
];

/// Why a scenario cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The scenario file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The scenario file is not valid TOML for a scenario.
    #[error("scenario {path}: {message}")]
    Toml {
        /// File.
        path: String,
        /// What is wrong, on one line.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("{field}: {message}")]
    Invalid {
        /// The flag / key.
        field: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// A duration written `500ms`, `5s`, `2m` or `1h`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        let s = String::deserialize(d)?;
        kadsip_node::config::parse_duration(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// One-way latency: `1ms`, or a range `20ms..200ms` drawn per node pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency(pub Duration, pub Duration);

impl std::str::FromStr for Latency {
    type Err = String;
    fn from_str(s: &str) -> Result<Latency, String> {
        let p = kadsip_node::config::parse_duration;
        match s.split_once("..") {
            Some((a, b)) => {
                let (a, b) = (p(a)?, p(b)?);
                if b < a {
                    return Err(format!("{s:?}: the range must go from low to high"));
                }
                Ok(Latency(a, b))
            }
            None => p(s).map(|d| Latency(d, d)),
        }
    }
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Latency, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A scheduled partition: a share of the nodes cut off, then healed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// When it starts (from the start of the workload).
    pub at: Dur,
    /// When it heals.
    pub heal: Dur,
    /// Share of the nodes on the far side (0..1).
    pub fraction: f64,
}

/// The security upgrade of the in-memory links between nodes of one shard.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkSecurity {
    /// Peer keys exchanged in the clear: no handshake or cipher cost, so the
    /// CPU and memory go to the protocols under study (large N).
    Plaintext,
    /// Noise XX, as every real kadsip connection (and every TCP shard link).
    Noise,
}

impl std::str::FromStr for LinkSecurity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "plaintext" => Ok(LinkSecurity::Plaintext),
            "noise" => Ok(LinkSecurity::Noise),
            _ => Err(format!(
                "{s:?} is not a link security; use plaintext or noise"
            )),
        }
    }
}

/// Everything a run needs; every key has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// Name shown in outputs.
    pub name: String,
    /// Nodes in this process.
    pub nodes: usize,
    /// Length of the workload (calls are placed during it).
    pub duration: Dur,
    /// Seed of the call plan and the churn plan.
    pub seed: u64,
    /// Output directory.
    pub out: PathBuf,
    /// Simulated users per node.
    pub users_per_node: usize,
    /// Calls (and MESSAGEs) placed per second, over all nodes.
    pub call_rate: f64,
    /// Share of the placed requests that are MESSAGE instead of INVITE.
    pub message_fraction: f64,
    /// Share of calls to AORs that were never registered.
    pub unknown_fraction: f64,
    /// Share of calls to users who unregistered (known, offline).
    pub offline_fraction: f64,
    /// Share of users who unregister before the workload starts.
    pub offline_users: f64,
    /// One-way latency per node pair.
    pub latency: Latency,
    /// Extra per-segment delay, uniform in 0..jitter.
    pub jitter: Dur,
    /// Probability that a segment is lost once (and resent, as TCP does).
    pub loss: f64,
    /// Security upgrade of the in-memory links (TCP shard links always use Noise).
    pub link_security: LinkSecurity,
    /// Median node session; none means no churn.
    pub churn_median_session: Option<Dur>,
    /// Median node downtime (defaults to the session median).
    pub churn_median_downtime: Option<Dur>,
    /// Session and downtime distribution.
    pub churn_distribution: DistKind,
    /// Shape of Weibull (k) or Pareto (alpha); default 0.5 / 1.5.
    pub churn_shape: Option<f64>,
    /// A returning node keeps its data dir (sled) instead of starting fresh.
    pub churn_keep_data: bool,
    /// REGISTER Expires of the simulated phones (records live as long).
    pub registration_expiry: Dur,
    /// How often nodes republish their entries.
    pub republish: Dur,
    /// How often nodes re-replicate the records they hold.
    pub replication: Dur,
    /// Peers each record is stored at (Kademlia's k, 1..=20).
    pub replicas: usize,
    /// DHT lookup deadline.
    pub lookup_timeout: Dur,
    /// Positive lookup cache lifetime.
    pub lookup_cache_ttl: Dur,
    /// Timer C of the proxies.
    pub timer_c: Dur,
    /// Overlay connections with no open stream close after this long.
    pub idle_connection_timeout: Dur,
    /// SIP T1 (transaction timers scale from it).
    pub t1: Dur,
    /// Pause after the overlay forms (before registering) and again before
    /// the first call.
    pub settle: Dur,
    /// Nodes started per second while the overlay forms.
    pub join_rate: f64,
    /// Initial REGISTERs per second once the overlay has formed.
    pub register_rate: f64,
    /// Stop with an error above this resident memory (MiB; 0: no bound).
    pub memory_limit_mb: u64,
    /// Also listen on this TCP multiaddr (node 0; the others take port 0 on
    /// its IP) so shards in other processes can join.
    pub listen: Option<String>,
    /// Dial these multiaddrs (other shards) when joining.
    pub bootstrap: Vec<String>,
    /// Scheduled partitions.
    pub partition: Vec<Partition>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: "custom".into(),
            nodes: 30,
            duration: Dur(Duration::from_secs(40)),
            seed: 1,
            out: PathBuf::from("sim-out"),
            users_per_node: 2,
            call_rate: 5.0,
            message_fraction: 0.2,
            unknown_fraction: 0.05,
            offline_fraction: 0.05,
            offline_users: 0.1,
            latency: Latency(Duration::from_millis(1), Duration::from_millis(1)),
            jitter: Dur(Duration::ZERO),
            loss: 0.0,
            link_security: LinkSecurity::Noise,
            churn_median_session: None,
            churn_median_downtime: None,
            churn_distribution: DistKind::Exponential,
            churn_shape: None,
            churn_keep_data: true,
            registration_expiry: Dur(Duration::from_secs(120)),
            republish: Dur(Duration::from_secs(60)),
            replication: Dur(Duration::from_secs(600)),
            replicas: 20,
            lookup_timeout: Dur(Duration::from_secs(3)),
            lookup_cache_ttl: Dur(Duration::from_secs(2)),
            timer_c: Dur(Duration::from_secs(10)),
            idle_connection_timeout: Dur(Duration::from_secs(30)),
            t1: Dur(Duration::from_millis(500)),
            settle: Dur(Duration::from_secs(2)),
            join_rate: 100.0,
            register_rate: 50.0,
            memory_limit_mb: 0,
            listen: None,
            bootstrap: Vec::new(),
            partition: Vec::new(),
        }
    }
}

/// `kadsip-sim`: runs N real kadsip nodes in one process over an emulated
/// network, places calls, and checks every answer against the truth.
#[derive(Debug, Parser)]
#[command(name = "kadsip-sim", version)]
pub struct Cli {
    /// Scenario: a preset name (smoke, campus, community, stress) or a TOML file.
    #[arg(long)]
    pub scenario: Option<String>,
    /// Nodes in this process.
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Length of the workload, e.g. 40s or 10m.
    #[arg(long)]
    pub duration: Option<String>,
    /// Seed of the call and churn plans.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output directory for results.json, calls.csv and the SVG plots.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Median node session, e.g. 30s (omit for no churn).
    #[arg(long)]
    pub churn_median_session: Option<String>,
    /// Median node downtime (default: the session median).
    #[arg(long)]
    pub churn_median_downtime: Option<String>,
    /// Churn distribution: exponential, weibull or pareto.
    #[arg(long)]
    pub churn_distribution: Option<String>,
    /// Calls placed per second over all nodes.
    #[arg(long)]
    pub call_rate: Option<f64>,
    /// Segment loss probability, e.g. 0.05.
    #[arg(long)]
    pub loss: Option<f64>,
    /// One-way latency per node pair: 1ms, or a range 20ms..200ms.
    #[arg(long)]
    pub latency: Option<String>,
    /// Jitter per segment, e.g. 2ms.
    #[arg(long)]
    pub jitter: Option<String>,
    /// In-memory link security: noise (as real nodes) or plaintext (cheaper, for large N).
    #[arg(long)]
    pub link_security: Option<String>,
    /// Simulated users per node.
    #[arg(long)]
    pub users_per_node: Option<usize>,
    /// Peers each record is stored at (Kademlia's k, 1..=20; default 20).
    #[arg(long)]
    pub replicas: Option<usize>,
    /// Stop with an error above this resident memory, in MiB.
    #[arg(long)]
    pub memory_limit_mb: Option<u64>,
    /// Also listen on this TCP multiaddr so other shards can join.
    #[arg(long)]
    pub listen: Option<String>,
    /// Join the overlay of another shard at this multiaddr (repeatable).
    #[arg(long)]
    pub bootstrap: Vec<String>,
}

fn dur(field: &'static str, s: &str) -> Result<Dur, ConfigError> {
    kadsip_node::config::parse_duration(s)
        .map(Dur)
        .map_err(|message| ConfigError::Invalid { field, message })
}

impl Scenario {
    /// Parses a scenario from TOML text (`origin` names it in errors).
    pub fn from_toml(text: &str, origin: &str) -> Result<Scenario, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Toml {
            path: origin.to_owned(),
            message: e.message().replace('\n', " "),
        })
    }

    /// A preset by name, or a scenario file.
    pub fn load(spec: &str) -> Result<Scenario, ConfigError> {
        if let Some((name, text)) = PRESETS.iter().find(|(n, _)| *n == spec) {
            return Scenario::from_toml(text, name);
        }
        let path = Path::new(spec);
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Scenario::from_toml(&text, spec)
    }

    /// The scenario the command line asks for: file or preset, then flags.
    pub fn from_cli(cli: &Cli) -> Result<Scenario, ConfigError> {
        let mut s = match &cli.scenario {
            Some(spec) => Scenario::load(spec)?,
            None => Scenario::default(),
        };
        if let Some(v) = cli.nodes {
            s.nodes = v;
        }
        if let Some(v) = &cli.duration {
            s.duration = dur("--duration", v)?;
        }
        if let Some(v) = cli.seed {
            s.seed = v;
        }
        if let Some(v) = &cli.out {
            s.out = v.clone();
        }
        if let Some(v) = &cli.churn_median_session {
            s.churn_median_session = Some(dur("--churn-median-session", v)?);
        }
        if let Some(v) = &cli.churn_median_downtime {
            s.churn_median_downtime = Some(dur("--churn-median-downtime", v)?);
        }
        if let Some(v) = &cli.churn_distribution {
            s.churn_distribution = v.parse().map_err(|message| ConfigError::Invalid {
                field: "--churn-distribution",
                message,
            })?;
        }
        if let Some(v) = cli.call_rate {
            s.call_rate = v;
        }
        if let Some(v) = cli.loss {
            s.loss = v;
        }
        if let Some(v) = &cli.latency {
            s.latency = v.parse().map_err(|message| ConfigError::Invalid {
                field: "--latency",
                message,
            })?;
        }
        if let Some(v) = &cli.jitter {
            s.jitter = dur("--jitter", v)?;
        }
        if let Some(v) = &cli.link_security {
            s.link_security = v.parse().map_err(|message| ConfigError::Invalid {
                field: "--link-security",
                message,
            })?;
        }
        if let Some(v) = cli.users_per_node {
            s.users_per_node = v;
        }
        if let Some(v) = cli.replicas {
            s.replicas = v;
        }
        if let Some(v) = cli.memory_limit_mb {
            s.memory_limit_mb = v;
        }
        if let Some(v) = &cli.listen {
            s.listen = Some(v.clone());
        }
        if !cli.bootstrap.is_empty() {
            s.bootstrap = cli.bootstrap.clone();
        }
        s.validate()?;
        Ok(s)
    }

    /// Checks ranges; the error names the key and the fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, message: &str| {
            Err(ConfigError::Invalid {
                field,
                message: message.to_owned(),
            })
        };
        if !(1..=20_000).contains(&self.nodes) {
            return bad("nodes", "must be between 1 and 20000");
        }
        if self.users_per_node == 0 || self.users_per_node > 1000 {
            return bad("users_per_node", "must be between 1 and 1000");
        }
        if self.duration.0.is_zero() {
            return bad("duration", "must be more than 0s, e.g. 40s");
        }
        if !(self.call_rate >= 0.0 && self.call_rate <= 100_000.0) {
            return bad("call_rate", "must be between 0 and 100000 per second");
        }
        for (field, v) in [
            ("message_fraction", self.message_fraction),
            ("unknown_fraction", self.unknown_fraction),
            ("offline_fraction", self.offline_fraction),
            ("offline_users", self.offline_users),
            ("loss", self.loss),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(field, "must be between 0 and 1, e.g. 0.05");
            }
        }
        if self.loss >= 0.5 {
            return bad("loss", "must be below 0.5 (each lost segment costs an RTO)");
        }
        if self.unknown_fraction + self.offline_fraction > 1.0 {
            return bad(
                "unknown_fraction",
                "unknown_fraction + offline_fraction must not exceed 1",
            );
        }
        if self.registration_expiry.0 < Duration::from_secs(2) {
            return bad("registration_expiry", "must be at least 2s");
        }
        if !(1..=20).contains(&self.replicas) {
            return bad("replicas", "must be between 1 and 20 (Kademlia's k is 20)");
        }
        if self.join_rate <= 0.0 {
            return bad("join_rate", "must be above 0 nodes per second");
        }
        if self.register_rate <= 0.0 {
            return bad("register_rate", "must be above 0 REGISTERs per second");
        }
        if let Some(s) = self.churn_shape {
            if !(s > 0.05 && s < 20.0) {
                return bad("churn_shape", "must be between 0.05 and 20");
            }
        }
        for p in &self.partition {
            if !(0.0..1.0).contains(&p.fraction) || p.heal.0 <= p.at.0 {
                return bad(
                    "partition",
                    "each needs 0 <= fraction < 1 and heal after at",
                );
            }
        }
        for b in &self.bootstrap {
            if b.parse::<libp2p::Multiaddr>().is_err() {
                return bad(
                    "bootstrap",
                    "must be a multiaddr like /ip4/127.0.0.1/tcp/4001",
                );
            }
        }
        if let Some(l) = &self.listen {
            let ok = l
                .parse::<libp2p::Multiaddr>()
                .ok()
                .and_then(|m| tcp_listen_ip(&m))
                .is_some();
            if !ok {
                return bad(
                    "listen",
                    "must be a TCP multiaddr like /ip4/127.0.0.1/tcp/4001",
                );
            }
        }
        Ok(())
    }

    /// The churn session distribution, when churn is on.
    pub fn churn(&self) -> Option<(Dist, Dist)> {
        let session = self.churn_median_session?.0;
        let down = self.churn_median_downtime.map_or(session, |d| d.0);
        let kind = self.churn_distribution;
        let shape = self.churn_shape.unwrap_or(Dist::default_shape(kind));
        Some((
            Dist {
                kind,
                median: session,
                shape,
            },
            Dist {
                kind,
                median: down,
                shape,
            },
        ))
    }
}

/// The IP of a `/ip4|ip6/…/tcp/…` multiaddr.
pub fn tcp_listen_ip(m: &libp2p::Multiaddr) -> Option<std::net::IpAddr> {
    use libp2p::multiaddr::Protocol;
    let mut it = m.iter();
    let ip = match it.next()? {
        Protocol::Ip4(a) => std::net::IpAddr::V4(a),
        Protocol::Ip6(a) => std::net::IpAddr::V6(a),
        _ => return None,
    };
    matches!(it.next()?, Protocol::Tcp(_)).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_validate() {
        for (name, _) in PRESETS {
            let s = Scenario::load(name).unwrap();
            s.validate().unwrap();
        }
        assert_eq!(Scenario::load("campus").unwrap().nodes, 200);
        assert_eq!(Scenario::load("community").unwrap().nodes, 1000);
    }

    #[test]
    fn flags_override_the_file_and_errors_name_the_field() {
        let cli = Cli::parse_from([
            "kadsip-sim",
            "--scenario",
            "campus",
            "--nodes",
            "7",
            "--latency",
            "20ms..200ms",
        ]);
        let s = Scenario::from_cli(&cli).unwrap();
        assert_eq!(s.nodes, 7);
        assert_eq!(
            s.latency,
            Latency(Duration::from_millis(20), Duration::from_millis(200))
        );
        let cli = Cli::parse_from(["kadsip-sim", "--duration", "4 parsecs"]);
        let e = Scenario::from_cli(&cli).unwrap_err().to_string();
        assert!(e.starts_with("--duration:") && !e.contains('\n'), "{e}");
        let e = Scenario::from_toml("nodez = 3", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nodez") && !e.contains('\n'), "{e}");
        let cli = Cli::parse_from(["kadsip-sim", "--link-security", "plaintext"]);
        let s = Scenario::from_cli(&cli).unwrap();
        assert_eq!(s.link_security, LinkSecurity::Plaintext);
        assert_eq!(Scenario::default().link_security, LinkSecurity::Noise);
        let cli = Cli::parse_from(["kadsip-sim", "--link-security", "tls"]);
        let e = Scenario::from_cli(&cli).unwrap_err().to_string();
        assert!(
            e.starts_with("--link-security:") && e.contains("plaintext or noise"),
            "{e}"
        );
        let cli = Cli::parse_from(["kadsip-sim", "--loss", "2"]);
        assert!(
            Scenario::from_cli(&cli)
                .unwrap_err()
                .to_string()
                .starts_with("loss:")
        );
    }
}
