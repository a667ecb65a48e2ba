//! Node configuration: a TOML file (`deny_unknown_fields`, every key has a
//! default) overlaid by command-line flags, which win.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why the configuration cannot be used; each message names the field and the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML for kadsip.
    #[error("config file {path}: {message}")]
    Toml {
        /// File.
        path: PathBuf,
        /// toml's message, on one line.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("invalid {field}: {problem}")]
    Invalid {
        /// The field or flag.
        field: &'static str,
        /// What is wrong and what to do.
        problem: String,
    },
}

/// Largest lookup cache allowed (entries).
pub const MAX_LOOKUP_CACHE: usize = 1 << 20;

/// Everything a node needs to run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Data directory (sled database, identity key).
    pub data_dir: PathBuf,
    /// SIP listen address, UDP and TCP.
    pub sip: SocketAddr,
    /// libp2p listen multiaddrs.
    pub p2p: Vec<String>,
    /// Peers to join through.
    pub bootstrap: Vec<String>,
    /// HTTP status listen address.
    pub http: SocketAddr,
    /// SIP domains served; empty means every domain.
    pub domains: Vec<String>,
    /// Digest realm (default: the domain of the AOR being registered).
    pub realm: Option<String>,
    /// Lab mode: accept any REGISTER without authentication.
    pub open: bool,
    /// Digest algorithms offered, most preferred first (`SHA-256`, `MD5`).
    pub auth_algorithms: Vec<String>,
    /// mDNS discovery on the LAN.
    pub mdns: bool,
    /// Deadline of one DHT lookup, e.g. `"5s"`.
    #[serde(with = "duration_str")]
    pub lookup_timeout: Duration,
    /// How long a positive lookup answer is reused, e.g. `"10s"` (`"0s"`: never).
    #[serde(with = "duration_str")]
    pub lookup_cache_ttl: Duration,
    /// Most AORs kept in the positive lookup cache (0: off).
    pub lookup_cache_size: usize,
    /// Timer C: how long a proxied INVITE may wait for a final response.
    #[serde(with = "duration_str")]
    pub timer_c: Duration,
    /// Peers each DHT record is stored at (Kademlia's k, 1..=20); every
    /// node of one overlay should use the same value.
    pub replicas: usize,
    /// Registrar bounds.
    pub registrar: RegistrarConfig,
}

/// `[registrar]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrarConfig {
    /// Shortest accepted registration, seconds (423 below).
    pub min_expires: u32,
    /// Longest granted registration, seconds.
    pub max_expires: u32,
    /// Registration time when the phone asks for none, seconds.
    pub default_expires: u32,
    /// Most contacts per AOR.
    pub max_bindings: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        let p = kadsip_proto::registrar::Policy::default();
        RegistrarConfig {
            min_expires: p.min_expires,
            max_expires: p.max_expires,
            default_expires: p.default_expires,
            max_bindings: p.max_bindings,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./kadsip-data"),
            sip: "127.0.0.1:5060".parse().expect("literal"),
            p2p: vec!["/ip4/0.0.0.0/tcp/0".into()],
            bootstrap: Vec::new(),
            http: "127.0.0.1:8080".parse().expect("literal"),
            domains: Vec::new(),
            realm: None,
            open: false,
            auth_algorithms: vec!["SHA-256".into(), "MD5".into()],
            mdns: true,
            lookup_timeout: Duration::from_secs(5),
            lookup_cache_ttl: Duration::from_secs(10),
            lookup_cache_size: 8192,
            timer_c: Duration::from_secs(180),
            replicas: 20,
            registrar: RegistrarConfig::default(),
        }
    }
}

impl Config {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Toml {
            path: path.to_owned(),
            message: e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        })
    }

    /// The configured digest realm (`None`: each AOR's own domain).
    pub fn realm(&self) -> Option<&str> {
        self.realm.as_deref()
    }

    /// The registrar policy.
    pub fn policy(&self) -> kadsip_proto::registrar::Policy {
        kadsip_proto::registrar::Policy {
            min_expires: self.registrar.min_expires,
            max_expires: self.registrar.max_expires,
            default_expires: self.registrar.default_expires,
            max_bindings: self.registrar.max_bindings,
        }
    }

    /// Checks cross-field rules and address syntax.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let r = &self.registrar;
        if r.min_expires == 0 || r.min_expires > r.max_expires {
            return Err(ConfigError::Invalid {
                field: "registrar.min_expires",
                problem: format!(
                    "{} must be between 1 and registrar.max_expires ({})",
                    r.min_expires, r.max_expires
                ),
            });
        }
        if r.default_expires < r.min_expires || r.default_expires > r.max_expires {
            return Err(ConfigError::Invalid {
                field: "registrar.default_expires",
                problem: "must lie between registrar.min_expires and registrar.max_expires".into(),
            });
        }
        if r.max_bindings == 0 || r.max_bindings > 64 {
            return Err(ConfigError::Invalid {
                field: "registrar.max_bindings",
                problem: "must be between 1 and 64".into(),
            });
        }
        for (field, list) in [("p2p", &self.p2p), ("bootstrap", &self.bootstrap)] {
            for a in list {
                a.parse::<libp2p::Multiaddr>()
                    .map_err(|e| ConfigError::Invalid {
                        field,
                        problem: format!(
                            "{a:?} is not a multiaddr ({e}); write e.g. /ip4/127.0.0.1/tcp/4001"
                        ),
                    })?;
            }
        }
        if self.p2p.is_empty() {
            return Err(ConfigError::Invalid {
                field: "p2p",
                problem: "at least one listen multiaddr is needed, e.g. /ip4/0.0.0.0/tcp/0".into(),
            });
        }
        if self.lookup_timeout.is_zero() || self.lookup_timeout > Duration::from_secs(120) {
            return Err(ConfigError::Invalid {
                field: "lookup_timeout",
                problem: "must be between 1ms and 120s".into(),
            });
        }
        if self.lookup_cache_size > MAX_LOOKUP_CACHE {
            return Err(ConfigError::Invalid {
                field: "lookup_cache_size",
                problem: format!(
                    "{} is too large; use at most {MAX_LOOKUP_CACHE} (about 1 KB each)",
                    self.lookup_cache_size
                ),
            });
        }
        if !(1..=20).contains(&self.replicas) {
            return Err(ConfigError::Invalid {
                field: "replicas",
                problem: format!(
                    "{} is out of range; use 1 to 20 (Kademlia's k is 20, OpenDHT stores at 8)",
                    self.replicas
                ),
            });
        }
        if self.auth_algorithms.is_empty()
            || self
                .auth_algorithms
                .iter()
                .any(|a| !a.eq_ignore_ascii_case("SHA-256") && !a.eq_ignore_ascii_case("MD5"))
        {
            return Err(ConfigError::Invalid {
                field: "auth_algorithms",
                problem: format!(
                    "{:?}: list SHA-256 and/or MD5, most preferred first",
                    self.auth_algorithms
                ),
            });
        }
        if self.timer_c < Duration::from_secs(1) || self.timer_c > Duration::from_secs(600) {
            return Err(ConfigError::Invalid {
                field: "timer_c",
                problem: "must be between 1s and 600s (RFC 3261 suggests more than 3 minutes)"
                    .into(),
            });
        }
        for d in &self.domains {
            kadsip_proto::uri::Host::parse(d).map_err(|e| ConfigError::Invalid {
                field: "domain",
                problem: format!("{d:?} is not a host name: {e}"),
            })?;
        }
        Ok(())
    }
}

/// Parses `500ms`, `5s`, `2m`, `1h` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; write e.g. 500ms, 5s, 2m or 1h"))?;
    let secs = match unit.trim() {
        "ms" => v / 1000.0,
        "" | "s" => v,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        u => return Err(format!("unknown unit {u:?} in {s:?}; use ms, s, m or h")),
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

mod duration_str {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_file() {
        let c = Config::default();
        assert_eq!(c.sip.to_string(), "127.0.0.1:5060");
        assert_eq!(c.http.to_string(), "127.0.0.1:8080");
        c.validate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.toml");
        std::fs::write(
            &p,
            "open = true\nlookup_timeout = \"750ms\"\nreplicas = 8\n[registrar]\nmin_expires = 30\n",
        )
        .unwrap();
        let c = Config::from_file(&p).unwrap();
        assert!(c.open);
        assert_eq!(c.lookup_timeout, Duration::from_millis(750));
        assert_eq!(c.replicas, 8);
        assert_eq!(c.registrar.min_expires, 30);
        std::fs::write(&p, "opn = true\n").unwrap();
        let e = Config::from_file(&p).unwrap_err().to_string();
        assert!(
            e.contains("unknown field") && e.contains("opn") && !e.contains('\n'),
            "{e}"
        );
    }

    #[test]
    fn validation_names_the_field() {
        let c = Config {
            bootstrap: vec!["not-a-multiaddr".into()],
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("bootstrap"));
        let mut c = Config::default();
        c.registrar.min_expires = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("registrar.min_expires")
        );
        let c = Config {
            replicas: 21,
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("replicas") && e.contains("1 to 20"), "{e}");
        let c = Config {
            lookup_cache_size: MAX_LOOKUP_CACHE + 1,
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("lookup_cache_size"), "{e}");
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5 parsecs").is_err());
    }
}
