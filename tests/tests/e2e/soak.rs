//! Soak: 3 real nodes, a SIPp UAC placing 50 calls/s for 60 s through node A
//! to a SIPp UAS registered at node C. Every call must succeed, and once the
//! transaction timers have run out no transaction or proxy state is left.

use crate::process::{NodeProcess, free_port, have, run, sipp_dir};
use std::process::Command;
use std::time::{Duration, Instant};

const RATE: u32 = 50;
const SECONDS: u32 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_50_calls_per_second_for_60_seconds() {
    if !have("sipp") {
        return;
    }
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = NodeProcess::start(dirs[0].path(), &["--open"]);
    let b = NodeProcess::start(dirs[1].path(), &["--open", "--bootstrap", &a.p2p]);
    let c = NodeProcess::start(dirs[2].path(), &["--open", "--bootstrap", &a.p2p]);
    let work = tempfile::tempdir().unwrap();
    let calls = RATE * SECONDS;

    let uas_port = free_port();
    let mut uas = Command::new("sipp")
        .current_dir(work.path())
        .arg("-sf")
        .arg(sipp_dir().join("uas_answer.xml"))
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &uas_port.to_string(),
            "-m",
            &calls.to_string(),
            "-nostdin",
        ])
        .args(["-timeout", "150s", "-trace_err"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sipp uas");
    let reg = kadsip_tests::ua::Ua::new(c.sip).await;
    let r = reg
        .register_contact(
            "sip:bob@campus.example",
            &format!("sip:bob@127.0.0.1:{uas_port}"),
            3600,
        )
        .await;
    assert_eq!(r.status.as_u16(), 200);

    tokio::task::block_in_place(|| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while a.get("/lookup?aor=sip%3Abob%40campus.example")["outcome"] != "found" {
            assert!(Instant::now() < deadline, "bob never resolved at node A");
            std::thread::sleep(Duration::from_millis(100));
        }
        let before = a.get("/status")["node"]["transactions"].as_u64().unwrap();

        let inf = work.path().join("callee.csv");
        std::fs::write(&inf, "SEQUENTIAL\nbob\n").unwrap();
        let (ok, out) = run(
            Command::new("sipp")
                .current_dir(work.path())
                .arg("-sf")
                .arg(sipp_dir().join("uac_call.xml"))
                .arg("-inf")
                .arg(&inf)
                .args(["-i", "127.0.0.1", "-p", &free_port().to_string()])
                .args([
                    "-r",
                    &RATE.to_string(),
                    "-m",
                    &calls.to_string(),
                    "-l",
                    "500",
                ])
                .args([
                    "-nostdin",
                    "-timeout",
                    "100s",
                    "-recv_timeout",
                    "10s",
                    "-trace_err",
                ])
                .arg(a.sip.to_string()),
            Duration::from_secs(110),
        );
        assert!(ok, "the soak had failed calls:\n{out}");

        // Drain: Timer J/L (32 s on UDP) end the last transactions.
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            let (sa, sc) = (a.get("/status"), c.get("/status"));
            let open = |s: &serde_json::Value| {
                s["node"]["transactions"].as_u64().unwrap() + s["node"]["proxied"].as_u64().unwrap()
            };
            if open(&sa) <= before && open(&sc) == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "transactions did not drain: A {} C {}",
                sa["node"],
                sc["node"]
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = uas.try_wait().unwrap() {
                assert!(s.success(), "the UAS saw failures");
                break;
            }
            assert!(Instant::now() < deadline, "the UAS did not finish");
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    drop(b);
}
