//! Accounts: per user the digest HA1 values (never the password) and the
//! ed25519 key that owns the user's AOR in the overlay.

use super::{StorageError, Write, decode, encode};
use bincode::{Decode, Encode};

/// One account.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct User {
    /// Canonical AOR, `sip:name@domain`.
    pub aor: String,
    /// Digest realm the HA1 values were computed for.
    pub realm: String,
    /// Digest user name.
    pub username: String,
    /// MD5(username:realm:password), hex.
    pub ha1_md5: String,
    /// SHA-256(username:realm:password), hex.
    pub ha1_sha256: String,
    /// ed25519 secret key owning the AOR.
    pub signing_key: [u8; 32],
    /// Creation time, unix seconds.
    pub created: u64,
    /// True when created by `--open` lab mode on first REGISTER (no password).
    pub open: bool,
}

/// The `users` tree: canonical AOR → [`User`].
#[derive(Clone)]
pub struct Users {
    tree: sled::Tree,
}

impl Users {
    pub(super) fn new(tree: sled::Tree) -> Self {
        Users { tree }
    }

    /// Looks a user up by canonical AOR.
    pub fn get(&self, aor: &str) -> Result<Option<User>, StorageError> {
        match self.tree.get(aor)? {
            Some(v) => decode(&v, "users").map(Some),
            None => Ok(None),
        }
    }

    /// Stores a user and flushes.
    pub fn put(&self, user: &User) -> Result<(), StorageError> {
        self.tree.insert(user.aor.as_bytes(), encode(user))?;
        self.tree.flush()?;
        Ok(())
    }

    /// The group-commit write storing `user`.
    pub fn write(&self, user: &User) -> Write {
        Write {
            tree: self.tree.clone(),
            key: user.aor.as_bytes().to_vec(),
            value: encode(user),
        }
    }

    /// Removes a user; true when it existed.
    pub fn remove(&self, aor: &str) -> Result<bool, StorageError> {
        let existed = self.tree.remove(aor)?.is_some();
        self.tree.flush()?;
        Ok(existed)
    }

    /// Every user.
    pub fn all(&self) -> impl Iterator<Item = Result<User, StorageError>> + '_ {
        self.tree.iter().map(|kv| decode(&kv?.1, "users"))
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}
