//! The node's libp2p identity, kept in the data dir so a restarted node
//! keeps its PeerId.

use crate::storage::StorageError;
use libp2p::identity::Keypair;
use std::path::Path;

/// Loads `dir/identity.key` or creates it (ed25519, protobuf encoding).
pub fn load_or_create(dir: &Path) -> Result<Keypair, StorageError> {
    let path = dir.join("identity.key");
    let io = |source| StorageError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read(&path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes)
            .map_err(|_| StorageError::Corrupt("identity.key")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io)?;
            let key = Keypair::generate_ed25519();
            let bytes = key
                .to_protobuf_encoding()
                .map_err(|_| StorageError::Corrupt("identity.key"))?;
            let tmp = dir.join("identity.key.tmp");
            std::fs::write(&tmp, bytes).map_err(io)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                    .map_err(io)?;
            }
            std::fs::rename(&tmp, &path).map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn identity_persists() {
        let dir = tempfile::tempdir().unwrap();
        let a = super::load_or_create(dir.path()).unwrap();
        let b = super::load_or_create(dir.path()).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
    }
}
