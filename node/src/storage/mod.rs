//! Everything the node keeps on disk, in one sled database under the data
//! dir: its identity, accounts, local bindings (durable before any 200) and
//! the DHT records it holds for others.

mod bindings;
mod commit;
pub mod records;
mod users;
mod wal;

pub use bindings::{AorState, Bindings};
pub use commit::{Committer, Write};
pub use records::SledRecordStore;
pub use users::{User, Users};

use std::path::{Path, PathBuf};

/// Storage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// sled could not open or write the database.
    #[error("database {path}: {source}")]
    Db {
        /// Database directory.
        path: PathBuf,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// A sled operation failed after opening.
    #[error("database: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value does not decode.
    #[error("corrupt stored value in {0}")]
    Corrupt(&'static str),
    /// The group-commit writer is gone (the node is shutting down).
    #[error("storage writer stopped")]
    WriterStopped,
    /// The database already has its group-commit writer.
    #[error("the database already has a writer (one node per data dir)")]
    WriterTaken,
    /// A file next to the database could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The open database and its trees.
#[derive(Clone)]
pub struct Storage {
    db: sled::Db,
    /// The commit log next to the database.
    wal_path: PathBuf,
    /// The opened, replayed log, until the [`Committer`] takes it (one
    /// writer per database).
    wal: std::sync::Arc<std::sync::Mutex<Option<wal::Wal>>>,
    /// Local users (accounts).
    pub users: Users,
    /// Local bindings per AOR.
    pub bindings: Bindings,
    /// Node metadata (identity key, nonce secret).
    pub meta: sled::Tree,
    /// DHT records held for the overlay.
    pub records: sled::Tree,
}

impl Storage {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Storage, StorageError> {
        std::fs::create_dir_all(dir).map_err(|source| StorageError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join("db");
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(64 * 1024 * 1024)
            .open()
            .map_err(|source| StorageError::Db {
                path: path.clone(),
                source,
            })?;
        let wal_path = dir.join("commit.wal");
        let wal = recover(&db, &wal_path)?;
        Ok(Storage {
            wal_path,
            wal: std::sync::Arc::new(std::sync::Mutex::new(Some(wal))),
            users: Users::new(db.open_tree("users")?),
            bindings: Bindings::new(db.open_tree("bindings")?),
            meta: db.open_tree("meta")?,
            records: db.open_tree("records")?,
            db,
        })
    }

    /// The database handle (for the group-commit writer and flushes).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// The commit log's path (see [`Committer`]).
    pub fn wal_path(&self) -> &Path {
        &self.wal_path
    }

    /// The commit log, replayed at open; `None` once a writer took it.
    pub(crate) fn take_wal(&self) -> Option<wal::Wal> {
        self.wal.lock().ok()?.take()
    }

    /// A 32-byte secret stored under `name`, created from OS randomness on first use.
    pub fn secret(&self, name: &str) -> Result<[u8; 32], StorageError> {
        if let Some(v) = self.meta.get(name)? {
            return v
                .as_ref()
                .try_into()
                .map_err(|_| StorageError::Corrupt("meta secret"));
        }
        let mut s = [0u8; 32];
        getrandom::fill(&mut s).map_err(|e| StorageError::Io {
            path: PathBuf::from("getrandom"),
            source: std::io::Error::other(e.to_string()),
        })?;
        self.meta.insert(name, &s[..])?;
        self.db.flush()?;
        Ok(s)
    }
}

/// Applies every acknowledged write still in the commit log at `path` to
/// sled, flushes sled, and returns the log emptied and ready for appends.
fn recover(db: &sled::Db, path: &Path) -> Result<wal::Wal, StorageError> {
    let entries = wal::Wal::replay(path)?;
    if !entries.is_empty() {
        for e in &entries {
            db.open_tree(&e.tree)?.insert(&e.key[..], &e.value[..])?;
        }
        db.flush()?;
        tracing::info!(writes = entries.len(), log = %path.display(), "commit log replayed into the database");
    }
    wal::Wal::create(path)
}

/// bincode 2 with the standard configuration, for stored values.
pub(crate) fn encode<T: bincode::Encode>(v: &T) -> Vec<u8> {
    bincode::encode_to_vec(v, bincode::config::standard()).unwrap_or_default()
}

/// Decodes a stored value, naming the tree on failure.
pub(crate) fn decode<T: bincode::Decode<()>>(
    b: &[u8],
    what: &'static str,
) -> Result<T, StorageError> {
    bincode::decode_from_slice(b, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|_| StorageError::Corrupt(what))
}
