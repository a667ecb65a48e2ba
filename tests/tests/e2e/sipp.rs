//! SIPp interop against a real `kadsip node` binary: REGISTER through digest
//! auth, and wrong-password / unknown-user 401s that cannot be told apart.

use crate::process::{NodeProcess, free_port, have, kadsip_bin, run, sipp_dir};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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
            .arg("-p")
            .arg(free_port().to_string())
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

/// A SIPp UAS in the background, answering one call with `scenario`.
fn uas(scenario: &str, port: u16, work: &Path) -> std::process::Child {
    Command::new("sipp")
        .current_dir(work)
        .arg("-sf")
        .arg(sipp_dir().join(format!("{scenario}.xml")))
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            "1",
            "-nostdin",
            "-timeout",
            "30s",
        ])
        .args(["-trace_err", "-error_file"])
        .arg(work.join(format!("uas-{scenario}.err")))
        .args(["-trace_msg", "-message_file"])
        .arg(work.join(format!("uas-{scenario}.log")))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn sipp uas")
}

fn wait_child(mut c: std::process::Child, what: &str, logs: &[PathBuf]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            let text: String = logs
                .iter()
                .map(|p| std::fs::read_to_string(p).unwrap_or_default())
                .collect();
            assert!(s.success(), "{what} failed: {s}\n{text}");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Resolves `aor` at a node over HTTP until the outcome is `want`.
fn http_resolve_until(node: &NodeProcess, aor: &str, want: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v = node.get(&format!(
            "/lookup?aor={}",
            kadsip_node::client::urlencode(aor)
        ));
        if v["outcome"] == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{aor} never became {want}: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_calls_through_two_kadsip_binaries() {
    if !have("sipp") {
        return;
    }
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = NodeProcess::start(da.path(), &["--open", "--timer-c", "2s"]);
    let b = NodeProcess::start(
        db.path(),
        &["--open", "--timer-c", "2s", "--bootstrap", &a.p2p],
    );
    let work = tempfile::tempdir().unwrap();
    let reg = kadsip_tests::ua::Ua::new(b.sip).await;

    // Callees: SIPp UASes registered at node B.
    let (p_bob, p_ringo, p_sleepy) = (free_port(), free_port(), free_port());
    for (user, port) in [("bob", p_bob), ("ringo", p_ringo), ("sleepy", p_sleepy)] {
        let r = reg
            .register_contact(
                &format!("sip:{user}@campus.example"),
                &format!("sip:{user}@127.0.0.1:{port}"),
                600,
            )
            .await;
        assert_eq!(r.status.as_u16(), 200);
    }
    // ghost: registered, then unregistered (→ 480)
    reg.register_contact("sip:ghost@campus.example", "sip:ghost@127.0.0.1:9", 600)
        .await;
    reg.register_contact("sip:ghost@campus.example", "sip:ghost@127.0.0.1:9", 0)
        .await;
    let a_ref = &a;
    tokio::task::block_in_place(|| {
        for u in ["bob", "ringo", "sleepy"] {
            http_resolve_until(a_ref, &format!("sip:{u}@campus.example"), "found");
        }
        http_resolve_until(a_ref, "sip:ghost@campus.example", "offline");
    });

    tokio::task::block_in_place(|| {
        // The full call flow.
        let u = uas("uas_answer", p_bob, work.path());
        sipp("uac_call", "bob", a.sip, work.path());
        wait_child(
            u,
            "UAS bob",
            &[
                work.path().join("uas-uas_answer.err"),
                work.path().join("uas-uas_answer.log"),
            ],
        );
        // 404, 480.
        sipp("uac_404", "nobody", a.sip, work.path());
        sipp("uac_480", "ghost", a.sip, work.path());
        // 408: the callee never answers; Timer C (2 s) cancels it.
        let u = uas("uas_silent", p_sleepy, work.path());
        sipp("uac_408", "sleepy", a.sip, work.path());
        wait_child(
            u,
            "UAS sleepy",
            &[
                work.path().join("uas-uas_silent.err"),
                work.path().join("uas-uas_silent.log"),
            ],
        );
        // CANCEL → 487.
        let u = uas("uas_cancelled", p_ringo, work.path());
        sipp("uac_cancel", "ringo", a.sip, work.path());
        wait_child(
            u,
            "UAS ringo",
            &[
                work.path().join("uas-uas_cancelled.err"),
                work.path().join("uas-uas_cancelled.log"),
            ],
        );
    });
    let status = tokio::task::block_in_place(|| a.get("/status"));
    assert_eq!(status["node"]["invalid_messages"], 0, "{status}");
}
