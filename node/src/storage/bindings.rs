//! Local registrations per AOR: the bindings and the seq of the DHT entry
//! last published for them.

use super::{StorageError, Write, decode, encode};
use bincode::{Decode, Encode};
use kadsip_proto::registrar::Binding;

/// What this node knows of one AOR registered with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode)]
pub struct AorState {
    /// Current bindings (may include expired ones until pruned).
    pub bindings: Vec<Binding>,
    /// Seq of the last DHT entry published for this AOR.
    pub seq: u64,
    /// Expiry of the last published entry (unix seconds).
    pub published_until: u64,
}

/// The `bindings` tree: canonical AOR → [`AorState`].
#[derive(Clone)]
pub struct Bindings {
    tree: sled::Tree,
}

impl Bindings {
    pub(super) fn new(tree: sled::Tree) -> Self {
        Bindings { tree }
    }

    /// The state of `aor`, empty when unknown.
    pub fn get(&self, aor: &str) -> Result<Option<AorState>, StorageError> {
        match self.tree.get(aor)? {
            Some(v) => decode(&v, "bindings").map(Some),
            None => Ok(None),
        }
    }

    /// The group-commit write storing `state` for `aor`.
    pub fn write(&self, aor: &str, state: &AorState) -> Write {
        Write {
            tree: self.tree.clone(),
            key: aor.as_bytes().to_vec(),
            value: encode(state),
        }
    }

    /// Every AOR with its state.
    pub fn all(&self) -> impl Iterator<Item = Result<(String, AorState), StorageError>> + '_ {
        self.tree.iter().map(|kv| {
            let (k, v) = kv?;
            let aor =
                String::from_utf8(k.to_vec()).map_err(|_| StorageError::Corrupt("bindings key"))?;
            Ok((aor, decode(&v, "bindings")?))
        })
    }

    /// Number of AORs.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}
