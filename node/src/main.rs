//! `kadsip` binary: parse the command line, run, print one error line.

use clap::Parser;
use kadsip_node::accounts;
use kadsip_node::cli::{Cli, Command, UserCommand};
use kadsip_node::storage::Storage;
use std::io::{IsTerminal, Read};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Node(args) => run_node(*args),
        Command::User(cmd) => user(cmd),
        Command::Lookup { aor, http } => lookup(&aor, http),
        Command::Parse { file } => return parse(file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_node(args: kadsip_node::cli::NodeArgs) -> Result<(), String> {
    let config = args.into_config().map_err(|e| e.to_string())?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KADSIP_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,libp2p_mdns=warn,libp2p_kad=error")
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let rt =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async {
        // Install the handlers before anything listens, so a SIGTERM that
        // arrives while the node starts is a graceful shutdown too.
        let shutdown =
            shutdown_signal().map_err(|e| format!("cannot install signal handlers: {e}"))?;
        kadsip_node::node::run(config, shutdown)
            .await
            .map_err(|e| e.to_string())
    })
}

/// SIGINT or SIGTERM, with the handlers installed now.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

fn open(dir: &Path) -> Result<Storage, String> {
    Storage::open(dir).map_err(|e| {
        let s = e.to_string();
        if s.contains("lock") {
            format!(
                "{} is in use by a running node; stop it or pass another --data-dir",
                dir.display()
            )
        } else {
            s
        }
    })
}

fn read_password(from_stdin: bool) -> Result<String, String> {
    let mut line = String::new();
    let prompt = !from_stdin && std::io::stdin().is_terminal();
    if prompt {
        eprint!("password: ");
        // Hide what is typed (POSIX terminals).
        let _ = std::process::Command::new("stty").arg("-echo").status();
    }
    let read = std::io::stdin().read_line(&mut line);
    if prompt {
        let _ = std::process::Command::new("stty").arg("echo").status();
        eprintln!();
    }
    read.map_err(|e| format!("cannot read the password: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn user(cmd: UserCommand) -> Result<(), String> {
    match cmd {
        UserCommand::Add {
            user,
            password_stdin,
            realm,
            data_dir,
        } => {
            let password = read_password(password_stdin)?;
            let s = open(&data_dir)?;
            let u =
                accounts::add(&s, &user, realm.as_deref(), &password).map_err(|e| e.to_string())?;
            println!("added {} (realm {})", u.aor, u.realm);
        }
        UserCommand::List { data_dir } => {
            let s = open(&data_dir)?;
            for u in s.users.all() {
                let u = u.map_err(|e| e.to_string())?;
                println!(
                    "{}\trealm={}\t{}",
                    u.aor,
                    u.realm,
                    if u.open { "open" } else { "digest" }
                );
            }
        }
        UserCommand::Remove { user, data_dir } => {
            let s = open(&data_dir)?;
            accounts::remove(&s, &user).map_err(|e| e.to_string())?;
            println!("removed {user}");
        }
        UserCommand::Export { user, data_dir } => {
            let s = open(&data_dir)?;
            println!(
                "{}",
                accounts::export(&s, &user).map_err(|e| e.to_string())?
            );
        }
        UserCommand::Import { file, data_dir } => {
            let text = match file.as_deref() {
                Some(p) if p.as_os_str() != "-" => std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read {}: {e}", p.display()))?,
                _ => {
                    let mut t = String::new();
                    std::io::stdin()
                        .read_to_string(&mut t)
                        .map_err(|e| format!("cannot read standard input: {e}"))?;
                    t
                }
            };
            let s = open(&data_dir)?;
            let u = accounts::import(&s, &text).map_err(|e| e.to_string())?;
            println!("imported {}", u.aor);
        }
    }
    Ok(())
}

fn lookup(aor: &str, http: std::net::SocketAddr) -> Result<(), String> {
    let body = kadsip_node::client::get(
        http,
        &format!("/lookup?aor={}", kadsip_node::client::urlencode(aor)),
    )
    .map_err(|e| {
        format!("cannot reach the node at {http}: {e} (is `kadsip node` running? use --http)")
    })?;
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("bad answer from the node: {e}"))?;
    if let Some(err) = v.get("error") {
        return Err(err.as_str().unwrap_or("lookup failed").to_owned());
    }
    println!(
        "{}  {}  ({:.1} ms, {} DHT requests{})",
        v["aor"].as_str().unwrap_or(aor),
        v["outcome"].as_str().unwrap_or("?"),
        v["latency_ms"].as_f64().unwrap_or(0.0),
        v["dht_requests"],
        if v["cached"].as_bool() == Some(true) {
            ", cached"
        } else {
            ""
        }
    );
    for c in v["contacts"].as_array().into_iter().flatten() {
        println!(
            "  contact {}  q={}  expires in {} s  node {}",
            c["uri"].as_str().unwrap_or(""),
            c["q"],
            c["expires_in"],
            c["node"].as_str().unwrap_or("")
        );
    }
    for n in v["nodes"].as_array().into_iter().flatten() {
        println!(
            "  node {}  seq {}  entry expires in {} s",
            n["peer_id"].as_str().unwrap_or(""),
            n["seq"],
            n["expires_in"]
        );
    }
    Ok(())
}

fn parse(file: Option<std::path::PathBuf>) -> ExitCode {
    let bytes = match file.as_deref() {
        Some(p) if p.as_os_str() != "-" => {
            std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        }
        _ => {
            let mut b = Vec::new();
            std::io::stdin()
                .read_to_end(&mut b)
                .map(|_| b)
                .map_err(|e| format!("cannot read standard input: {e}"))
        }
    };
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match kadsip_node::inspect::parse_to_json(&bytes) {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
