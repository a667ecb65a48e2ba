//! `kadsip user …`: accounts stored as digest HA1 values (MD5 and SHA-256,
//! never the password) plus the ed25519 key that owns the user's AOR;
//! export/import moves an account with its key to another device.

use crate::storage::{Storage, StorageError, User, records::unix_now};
use kadsip_proto::Aor;
use kadsip_proto::digest::Algorithm;
use serde::{Deserialize, Serialize};

/// Account errors, each naming what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// The user is not NAME@DOMAIN.
    #[error("invalid user {0:?}: write NAME@DOMAIN, e.g. alice@campus.example")]
    BadUser(String),
    /// The user exists already.
    #[error("user {0} already exists; remove it first")]
    Exists(String),
    /// No such user.
    #[error("no user {0} on this node")]
    Unknown(String),
    /// The password is empty.
    #[error("empty password")]
    EmptyPassword,
    /// The export text does not parse.
    #[error("not a kadsip account export: {0}")]
    BadExport(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Canonical AOR and user part of `NAME@DOMAIN` (a `sip:` prefix is allowed).
pub fn parse_user(s: &str) -> Result<(Aor, String), AccountError> {
    let uri = if s.starts_with("sip:") || s.starts_with("sips:") {
        s.to_owned()
    } else {
        format!("sip:{s}")
    };
    let aor = Aor::parse(&uri).map_err(|_| AccountError::BadUser(s.into()))?;
    let user = aor
        .as_str()
        .split_once(':')
        .and_then(|(_, r)| r.rsplit_once('@'))
        .map(|(u, _)| u.to_owned())
        .filter(|u| !u.is_empty())
        .ok_or_else(|| AccountError::BadUser(s.into()))?;
    Ok((aor, user))
}

fn domain_of(aor: &Aor) -> String {
    aor.as_str()
        .rsplit_once('@')
        .map(|(_, d)| d.to_owned())
        .unwrap_or_default()
}

/// Builds a user record with fresh key material.
pub fn new_user(
    aor: &Aor,
    username: &str,
    realm: &str,
    password: &str,
    open: bool,
) -> Result<User, AccountError> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| {
        AccountError::Storage(StorageError::Io {
            path: "getrandom".into(),
            source: std::io::Error::other(e.to_string()),
        })
    })?;
    let ha1 = |alg: Algorithm| {
        alg.hash(format!("{username}:{realm}:{password}").as_bytes())
            .unwrap_or_default()
    };
    Ok(User {
        aor: aor.as_str().to_owned(),
        realm: realm.to_owned(),
        username: username.to_owned(),
        ha1_md5: ha1(Algorithm::Md5),
        ha1_sha256: ha1(Algorithm::Sha256),
        signing_key: key,
        created: unix_now(),
        open,
    })
}

/// `user add`.
pub fn add(
    storage: &Storage,
    user: &str,
    realm: Option<&str>,
    password: &str,
) -> Result<User, AccountError> {
    if password.is_empty() {
        return Err(AccountError::EmptyPassword);
    }
    let (aor, name) = parse_user(user)?;
    if storage.users.get(aor.as_str())?.is_some() {
        return Err(AccountError::Exists(aor.to_string()));
    }
    let realm = realm.map(str::to_owned).unwrap_or_else(|| domain_of(&aor));
    let u = new_user(&aor, &name, &realm, password, false)?;
    storage.users.put(&u)?;
    Ok(u)
}

/// `user remove`.
pub fn remove(storage: &Storage, user: &str) -> Result<(), AccountError> {
    let (aor, _) = parse_user(user)?;
    if !storage.users.remove(aor.as_str())? {
        return Err(AccountError::Unknown(aor.to_string()));
    }
    Ok(())
}

/// The portable form of an account (contains its secret key).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    /// Format marker.
    pub kadsip_account: u32,
    /// Canonical AOR.
    pub aor: String,
    /// Digest realm.
    pub realm: String,
    /// Digest user name.
    pub username: String,
    /// MD5 HA1.
    pub ha1_md5: String,
    /// SHA-256 HA1.
    pub ha1_sha256: String,
    /// ed25519 secret key, hex.
    pub signing_key: String,
    /// Creation time.
    pub created: u64,
}

/// `user export`: one JSON line.
pub fn export(storage: &Storage, user: &str) -> Result<String, AccountError> {
    let (aor, _) = parse_user(user)?;
    let u = storage
        .users
        .get(aor.as_str())?
        .ok_or_else(|| AccountError::Unknown(aor.to_string()))?;
    let e = Export {
        kadsip_account: 1,
        aor: u.aor,
        realm: u.realm,
        username: u.username,
        ha1_md5: u.ha1_md5,
        ha1_sha256: u.ha1_sha256,
        signing_key: u.signing_key.iter().map(|b| format!("{b:02x}")).collect(),
        created: u.created,
    };
    Ok(serde_json::to_string(&e).unwrap_or_default())
}

/// `user import`.
pub fn import(storage: &Storage, text: &str) -> Result<User, AccountError> {
    let e: Export =
        serde_json::from_str(text.trim()).map_err(|e| AccountError::BadExport(e.to_string()))?;
    if e.kadsip_account != 1 {
        return Err(AccountError::BadExport(format!(
            "unknown version {}",
            e.kadsip_account
        )));
    }
    let (aor, _) = parse_user(&e.aor)?;
    let key = hex32(&e.signing_key)
        .ok_or_else(|| AccountError::BadExport("signing_key is not 64 hex digits".into()))?;
    if storage.users.get(aor.as_str())?.is_some() {
        return Err(AccountError::Exists(aor.to_string()));
    }
    let u = User {
        aor: aor.as_str().to_owned(),
        realm: e.realm,
        username: e.username,
        ha1_md5: e.ha1_md5,
        ha1_sha256: e.ha1_sha256,
        signing_key: key,
        created: e.created,
        open: false,
    };
    storage.users.put(&u)?;
    Ok(u)
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_export_import_remove() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let sa = Storage::open(a.path()).unwrap();
        let sb = Storage::open(b.path()).unwrap();
        let u = add(&sa, "Alice@Campus.Example", None, "s3cret").unwrap();
        assert_eq!(u.aor, "sip:Alice@campus.example");
        assert_eq!(u.realm, "campus.example");
        assert_eq!(
            u.ha1_md5,
            Algorithm::Md5.hash(b"Alice:campus.example:s3cret").unwrap()
        );
        assert!(
            add(&sa, "alice@campus.example", None, "x").is_ok(),
            "user part is case-sensitive"
        );
        assert!(matches!(
            add(&sa, "Alice@campus.example", None, "x"),
            Err(AccountError::Exists(_))
        ));
        let text = export(&sa, "Alice@campus.example").unwrap();
        let v = import(&sb, &text).unwrap();
        assert_eq!(v.signing_key, u.signing_key);
        assert_eq!(v.ha1_sha256, u.ha1_sha256);
        remove(&sa, "Alice@campus.example").unwrap();
        assert!(matches!(
            remove(&sa, "Alice@campus.example"),
            Err(AccountError::Unknown(_))
        ));
        assert!(matches!(
            parse_user("nodomain"),
            Err(AccountError::BadUser(_))
        ));
        assert!(matches!(import(&sb, "{}"), Err(AccountError::BadExport(_))));
    }
}
