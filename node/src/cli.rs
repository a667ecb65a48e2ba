//! The `kadsip` command line: subcommands and their flags.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

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
    /// Parse one SIP message and print it as JSON (exit 0 valid, 1 invalid).
    Parse {
        /// File holding the message; `-` or nothing reads standard input.
        file: Option<PathBuf>,
    },
}
