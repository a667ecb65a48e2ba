//! What nodes store in the DHT: one signed record per AOR (DESIGN.md "Overlay
//! data model"), its bincode wire form, and the rules every storing peer and
//! every reader applies. Time (`now`, unix seconds) is always an argument.

mod record;
mod rules;

pub use record::{
    AorRecord, ContactBinding, NodeEntry, RECORD_VERSION, RecordError, SignedEntry, record_key,
};
pub use rules::{Limits, Validated, merge_for_read, merge_for_store, merge_validated, node_hex};
