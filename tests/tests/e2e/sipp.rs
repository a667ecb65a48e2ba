//! SIPp interop against a real `kadsip node` binary: REGISTER through digest
//! auth, and wrong-password / unknown-user 401s that cannot be told apart.

use crate::process::{NodeProcess, have, kadsip_bin, run};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn sipp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sipp")
}

fn add_user(dir: &Path, user: &str, password: &str) {
    let mut c = Command::new(kadsip_bin());
    c.args(["user", "add", user, "--password-stdin", "--data-dir"])
        .arg(dir);
    c.stdin(std::process::Stdio::piped());
    let mut child = c.stdout(std::process::Stdio::null()).spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

/// Runs one SIPp scenario once with a one-line injection file; returns the
/// message log.
fn sipp(scenario: &str, inf_line: &str, target: std::net::SocketAddr, work: &Path) -> String {
    let inf = work.join(format!("{scenario}.csv"));
    std::fs::write(&inf, format!("SEQUENTIAL\n{inf_line}\n")).unwrap();
    let log = work.join(format!("{scenario}.log"));
    let (ok, out) = run(
        Command::new("sipp")
            .current_dir(work)
            .arg("-sf")
            .arg(sipp_dir().join(format!("{scenario}.xml")))
            .arg("-inf")
            .arg(&inf)
            .args([
                "-m",
                "1",
                "-i",
                "127.0.0.1",
                "-p",
                "0",
                "-nostdin",
                "-trace_msg",
                "-message_file",
            ])
            .arg(&log)
            .arg("-timeout")
            .arg("15s")
            .arg(target.to_string()),
        Duration::from_secs(30),
    );
    let messages = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(ok, "sipp {scenario} failed:\n{out}\n{messages}");
    messages
}

/// The last 401 SIPp received, with per-request values blanked.
fn last_401(log: &str) -> String {
    let start = log.rfind("SIP/2.0 401").expect("a 401 in the log");
    let msg = &log[start..];
    let end = msg.find("\n\n\n").unwrap_or(msg.len());
    msg[..end]
        .lines()
        .filter(|l| {
            !["Via:", "From:", "To:", "Call-ID:"]
                .iter()
                .any(|h| l.starts_with(h))
        })
        .map(|l| match l.find("nonce=\"") {
            Some(i) => {
                let rest = &l[i + 7..];
                let end = rest.find('"').unwrap_or(rest.len());
                format!("{}N{}", &l[..i + 7], &rest[end..])
            }
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn sipp_registers_with_digest_and_401s_do_not_enumerate_users() {
    if !have("sipp") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "alice@campus.example", "wonderland");
    // SIPp 3.6 answers only the first challenge and only with MD5.
    let node = NodeProcess::start(
        dir.path(),
        &[
            "--domain",
            "campus.example",
            "--auth-algorithm",
            "MD5",
            "--auth-algorithm",
            "SHA-256",
        ],
    );
    let work = tempfile::tempdir().unwrap();
    sipp(
        "register_auth",
        "alice;campus.example;[authentication username=alice password=wonderland]",
        node.sip,
        work.path(),
    );
    let status = node.get("/status");
    let regs = status["registrations"].as_array().unwrap();
    assert!(
        regs.iter().any(|r| r["aor"] == "sip:alice@campus.example"),
        "{status}"
    );

    let wrong = sipp(
        "register_rejected",
        "alice;campus.example;[authentication username=alice password=not-it]",
        node.sip,
        work.path(),
    );
    let unknown = sipp(
        "register_rejected",
        "mallory;campus.example;[authentication username=mallory password=whatever]",
        node.sip,
        work.path(),
    );
    assert_eq!(
        last_401(&wrong),
        last_401(&unknown),
        "401s must not reveal whether the user exists"
    );
}
