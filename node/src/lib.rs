//! kadsip-node: the daemon around kadsip-proto.
//!
//! Layout:
//! - [`cli`]: the command line (clap derive), one doc comment per flag;
//! - [`inspect`]: `kadsip parse`, one SIP message to JSON.

pub mod cli;
pub mod inspect;
