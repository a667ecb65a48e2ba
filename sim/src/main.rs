//! `kadsip-sim`: parse the scenario, run it, print the closing table.

use clap::Parser;
use kadsip_sim::config::{Cli, Scenario};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let scenario = match Scenario::from_cli(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KADSIP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,libp2p_kad=error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let rt = match kadsip_sim::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = scenario.out.clone();
    match rt.block_on(kadsip_sim::run::run(scenario)) {
        Ok(o) => {
            print!("{}", o.table);
            println!("  outputs             {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
