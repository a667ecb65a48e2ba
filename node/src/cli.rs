//! The `kadsip` command line: subcommands and their flags (clap derive).

use crate::config::{Config, ConfigError, parse_duration};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// kadsip: a peer-to-peer SIP node on a Kademlia overlay.
#[derive(Debug, Parser)]
#[command(name = "kadsip", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// kadsip subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node: SIP registrar and proxy on UDP/TCP, DHT peer, HTTP status.
    Node(Box<NodeArgs>),
    /// Manage the accounts of this node.
    #[command(subcommand)]
    User(UserCommand),
    /// Resolve an AOR through a running node and print the outcome.
    Lookup {
        /// The AOR, e.g. sip:bob@campus.example.
        aor: String,
        /// HTTP address of the running node.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
    },
    /// Parse one SIP message and print it as JSON (exit 0 valid, 1 invalid).
    Parse {
        /// File holding the message; `-` or nothing reads standard input.
        file: Option<PathBuf>,
    },
}

/// Flags of `kadsip node`; each overrides the config file.
#[derive(Debug, Args, Default)]
pub struct NodeArgs {
    /// TOML config file (unknown keys are errors); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory for the sled database and the node key [default: ./kadsip-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// SIP address for UDP and TCP [default: 127.0.0.1:5060].
    #[arg(long, value_name = "ADDR:PORT")]
    pub sip: Option<SocketAddr>,
    /// libp2p listen multiaddr, repeatable [default: /ip4/0.0.0.0/tcp/0].
    #[arg(long, value_name = "MULTIADDR")]
    pub p2p: Vec<String>,
    /// Peer to join the overlay through, repeatable.
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<String>,
    /// HTTP status address (/healthz, /status, /metrics) [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR:PORT")]
    pub http: Option<SocketAddr>,
    /// SIP domain served by this node, repeatable; none serves every domain.
    #[arg(long, value_name = "NAME")]
    pub domain: Vec<String>,
    /// Digest realm [default: the domain of each registering AOR].
    #[arg(long)]
    pub realm: Option<String>,
    /// Lab mode: accept every REGISTER without authentication.
    #[arg(long)]
    pub open: bool,
    /// Digest algorithm to offer, repeatable, most preferred first [default: SHA-256, MD5].
    #[arg(long = "auth-algorithm", value_name = "SHA-256|MD5")]
    pub auth_algorithms: Vec<String>,
    /// Turn mDNS peer discovery off.
    #[arg(long)]
    pub no_mdns: bool,
    /// How long a positive lookup answer is reused [default: 10s; 0s disables the cache].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub lookup_cache_ttl: Option<Duration>,
    /// Most AORs kept in the positive lookup cache [default: 8192; 0 disables it].
    #[arg(long, value_name = "N")]
    pub lookup_cache_size: Option<usize>,
    /// Timer C: how long a proxied INVITE waits for a final response [default: 180s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timer_c: Option<Duration>,
    /// Deadline of one DHT lookup, e.g. 5s or 800ms [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub lookup_timeout: Option<Duration>,
    /// Peers each DHT record is stored at, 1-20 (Kademlia's k) [default: 20].
    #[arg(long, value_name = "K")]
    pub replicas: Option<usize>,
}

impl NodeArgs {
    /// The config file (if any) with these flags applied on top.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let mut c = match &self.config {
            Some(p) => Config::from_file(p)?,
            None => Config::default(),
        };
        if let Some(d) = self.data_dir {
            c.data_dir = d;
        }
        if let Some(s) = self.sip {
            c.sip = s;
        }
        if !self.p2p.is_empty() {
            c.p2p = self.p2p;
        }
        if !self.bootstrap.is_empty() {
            c.bootstrap = self.bootstrap;
        }
        if let Some(h) = self.http {
            c.http = h;
        }
        if !self.domain.is_empty() {
            c.domains = self.domain;
        }
        if self.realm.is_some() {
            c.realm = self.realm;
        }
        if self.open {
            c.open = true;
        }
        if !self.auth_algorithms.is_empty() {
            c.auth_algorithms = self.auth_algorithms;
        }
        if self.no_mdns {
            c.mdns = false;
        }
        if let Some(t) = self.lookup_timeout {
            c.lookup_timeout = t;
        }
        if let Some(t) = self.lookup_cache_ttl {
            c.lookup_cache_ttl = t;
        }
        if let Some(n) = self.lookup_cache_size {
            c.lookup_cache_size = n;
        }
        if let Some(t) = self.timer_c {
            c.timer_c = t;
        }
        if let Some(k) = self.replicas {
            c.replicas = k;
        }
        c.validate()?;
        Ok(c)
    }
}

/// `kadsip user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account (password from a prompt or --password-stdin).
    Add {
        /// The user, NAME@DOMAIN.
        user: String,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
        /// Digest realm [default: the domain].
        #[arg(long)]
        realm: Option<String>,
        /// Data directory [default: ./kadsip-data].
        #[arg(long, value_name = "DIR", default_value = "./kadsip-data")]
        data_dir: PathBuf,
    },
    /// List accounts.
    List {
        /// Data directory [default: ./kadsip-data].
        #[arg(long, value_name = "DIR", default_value = "./kadsip-data")]
        data_dir: PathBuf,
    },
    /// Remove an account.
    Remove {
        /// The user, NAME@DOMAIN.
        user: String,
        /// Data directory [default: ./kadsip-data].
        #[arg(long, value_name = "DIR", default_value = "./kadsip-data")]
        data_dir: PathBuf,
    },
    /// Print an account with its signing key, for `user import` on another device.
    Export {
        /// The user, NAME@DOMAIN.
        user: String,
        /// Data directory [default: ./kadsip-data].
        #[arg(long, value_name = "DIR", default_value = "./kadsip-data")]
        data_dir: PathBuf,
    },
    /// Import an account exported by `user export` (FILE or - for standard input).
    Import {
        /// The exported account; `-` or nothing reads standard input.
        file: Option<PathBuf>,
        /// Data directory [default: ./kadsip-data].
        #[arg(long, value_name = "DIR", default_value = "./kadsip-data")]
        data_dir: PathBuf,
    },
}
