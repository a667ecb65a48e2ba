//! Real `kadsip` processes for the tests that need a binary (kill -9,
//! SIPp interop): start, read the addresses it logs, kill.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `kadsip` binary: `$KADSIP_BIN`, or the one cargo built next to this
/// test binary (building it when missing).
pub fn kadsip_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KADSIP_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("kadsip");
    if !bin.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "kadsip-node", "--bin", "kadsip"])
            .status()
            .expect("cargo build");
        assert!(status.success(), "building kadsip failed");
    }
    bin
}

/// True when `cmd` is on PATH. Under CI a missing tool is a failure.
pub fn have(cmd: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        let msg = format!("{cmd} is not installed (apt-get install -y sip-tester)");
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
    }
    found
}

/// A running `kadsip node` process.
pub struct NodeProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// SIP address it bound.
    pub sip: std::net::SocketAddr,
    /// HTTP address it bound.
    pub http: std::net::SocketAddr,
    /// Its loopback p2p address with /p2p/<id>.
    pub p2p: String,
    /// Everything it logged so far.
    pub log: Vec<String>,
}

impl NodeProcess {
    /// Starts `kadsip node` with `--data-dir dir` and `args`, waiting for its addresses.
    pub fn start(dir: &Path, args: &[&str]) -> NodeProcess {
        let mut child = Command::new(kadsip_bin())
            .arg("node")
            .arg("--data-dir")
            .arg(dir)
            .args([
                "--sip",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
                "--p2p",
                "/ip4/127.0.0.1/tcp/0",
                "--no-mdns",
            ])
            .args(args)
            .env("KADSIP_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kadsip");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = NodeProcess {
            child,
            lines,
            sip: "0.0.0.0:0".parse().unwrap(),
            http: "0.0.0.0:0".parse().unwrap(),
            p2p: String::new(),
            log: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let (mut sip, mut http, mut p2p) = (None, None, None);
        while sip.is_none() || http.is_none() || p2p.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = p
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("kadsip did not start; log:\n{}", p.log.join("\n")));
            if let Some(a) = line.split("SIP on udp/tcp ").nth(1) {
                sip = a.trim().parse().ok();
            }
            if let Some(a) = line.split("HTTP status on http://").nth(1) {
                http = a.trim().trim_end_matches("/status").parse().ok();
            }
            if let Some(a) = line.split("listening on ").nth(1) {
                if a.starts_with("/ip4/127.0.0.1/") {
                    p2p = Some(a.trim().to_owned());
                }
            }
            p.log.push(line);
        }
        p.sip = sip.unwrap();
        p.http = http.unwrap();
        p.p2p = p2p.unwrap();
        p
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (bounded) for the exit; returns whether it exited
    /// cleanly and what it logged.
    pub fn terminate(mut self) -> (bool, Vec<String>) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break Some(s);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(l) = self.lines.try_recv() {
            self.log.push(l);
        }
        let log = std::mem::take(&mut self.log);
        (status.is_some_and(|s| s.success()), log)
    }

    /// GETs a path from its HTTP server.
    pub fn get(&self, path: &str) -> serde_json::Value {
        let body = kadsip_node::client::get(self.http, path).expect("http");
        serde_json::from_str(&body).expect("json")
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command to completion with a time bound; returns (success, output).
pub fn run(cmd: &mut Command, timeout: Duration) -> (bool, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let out = child.wait_with_output().expect("output");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (status.success(), text);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            return (
                false,
                format!("timed out\n{}", String::from_utf8_lossy(&out.stdout)),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The SIPp scenarios kept in `tests/sipp/`.
pub fn sipp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sipp")
}

/// A free UDP port on loopback (bound, then released for SIPp).
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
