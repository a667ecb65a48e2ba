//! The record layout, its versioned bincode encoding and entry signatures.

use crate::uri::Aor;
use bincode::{Decode, Encode};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// Wire version of [`AorRecord`]; readers refuse other versions.
pub const RECORD_VERSION: u8 = 1;

/// Domain separation for entry signatures.
const SIGNING_CONTEXT: &[u8] = b"kadsip/aor-entry/v1\0";

/// The DHT key of an AOR: SHA-256 of its canonical form.
pub fn record_key(aor: &Aor) -> [u8; 32] {
    Sha256::digest(aor.as_str().as_bytes()).into()
}

/// One AOR's record: the owner's key and one signed entry per serving node.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct AorRecord {
    /// [`RECORD_VERSION`].
    pub version: u8,
    /// The canonical AOR (`sip:user@host`).
    pub aor: String,
    /// The owner's ed25519 public key; every entry is signed with its secret.
    pub owner: [u8; 32],
    /// Per-node entries.
    pub entries: Vec<SignedEntry>,
}

/// A node's binding set for the AOR, signed by the owner key.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct SignedEntry {
    /// The signed content.
    pub entry: NodeEntry,
    /// ed25519 signature over [`SIGNING_CONTEXT`], the AOR, the owner and the entry.
    pub signature: [u8; 64],
}

/// What one node says about the AOR.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct NodeEntry {
    /// The serving node's PeerId (multihash bytes).
    pub node: Vec<u8>,
    /// Multiaddrs the node listens on, as text.
    pub addrs: Vec<String>,
    /// Registered contacts; empty is a tombstone (known but unreachable).
    pub contacts: Vec<ContactBinding>,
    /// Strictly increasing per (AOR, node).
    pub seq: u64,
    /// When the entry stops counting (unix seconds); tombstones too.
    pub expires: u64,
    /// Until when the owner claims the AOR (unix seconds).
    pub claim_expires: u64,
}

/// One registered contact.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ContactBinding {
    /// The Contact URI.
    pub uri: String,
    /// q in thousandths.
    pub q: u16,
    /// When the binding expires (unix seconds).
    pub expires: u64,
}

/// Why a record or entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The bytes are not a record of a known version.
    #[error("undecodable record: {0}")]
    Decode(String),
    /// The record uses a wire version this node does not know.
    #[error("record version {0} is not supported")]
    Version(u8),
    /// The encoded record is larger than allowed.
    #[error("record of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// More entries, contacts or addresses than allowed.
    #[error("too many {0}")]
    TooMany(&'static str),
    /// The AOR is not canonical or does not hash to the key.
    #[error("record AOR does not match its key or is not canonical")]
    WrongKey,
    /// The owner key is not a valid ed25519 point.
    #[error("invalid owner key")]
    BadOwnerKey,
    /// An entry signature does not verify under the owner key.
    #[error("bad signature on the entry of node {0}")]
    BadSignature(String),
    /// An expiry lies further ahead than allowed.
    #[error("expiry too far in the future")]
    ExpiryTooFar,
    /// A different owner holds an unexpired claim on the AOR.
    #[error("AOR is claimed by another owner until {0}")]
    OwnerConflict(u64),
    /// No entry is newer than what is already stored.
    #[error("stale entry: seq {got} is not above the stored {stored}")]
    StaleSeq {
        /// Offered seq.
        got: u64,
        /// Stored seq.
        stored: u64,
    },
    /// Two entries for the same node in one record.
    #[error("duplicate entry for one node")]
    DuplicateNode,
}

impl NodeEntry {
    fn signing_bytes(&self, aor: &str, owner: &[u8; 32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(SIGNING_CONTEXT);
        let cfg = bincode::config::standard();
        // Encoding into a Vec cannot fail for these types.
        if let Ok(b) = bincode::encode_to_vec((aor, owner, self), cfg) {
            out.extend_from_slice(&b);
        }
        out
    }

    /// Signs this entry for `aor` with the owner's key.
    pub fn sign(self, aor: &Aor, key: &SigningKey) -> SignedEntry {
        let owner = key.verifying_key().to_bytes();
        let sig = key.sign(&self.signing_bytes(aor.as_str(), &owner));
        SignedEntry {
            entry: self,
            signature: sig.to_bytes(),
        }
    }

    /// Contacts that have not expired at `now`.
    pub fn live_contacts(&self, now: u64) -> impl Iterator<Item = &ContactBinding> {
        self.contacts.iter().filter(move |c| c.expires > now)
    }
}

impl SignedEntry {
    /// Checks the signature under `owner` for `aor`.
    pub fn verify(&self, aor: &str, owner: &[u8; 32]) -> Result<(), RecordError> {
        let key = VerifyingKey::from_bytes(owner).map_err(|_| RecordError::BadOwnerKey)?;
        let sig = Signature::from_bytes(&self.signature);
        key.verify(&self.entry.signing_bytes(aor, owner), &sig)
            .map_err(|_| RecordError::BadSignature(hex(&self.entry.node)))
    }
}

impl AorRecord {
    /// A record holding one entry signed by `key`.
    pub fn new(aor: &Aor, key: &SigningKey, entry: NodeEntry) -> AorRecord {
        AorRecord {
            version: RECORD_VERSION,
            aor: aor.as_str().to_owned(),
            owner: key.verifying_key().to_bytes(),
            entries: vec![entry.sign(aor, key)],
        }
    }

    /// The bincode wire form (version byte first).
    pub fn encode(&self) -> Vec<u8> {
        bincode::encode_to_vec(self, bincode::config::standard()).unwrap_or_default()
    }

    /// Decodes at most `limit` bytes; refuses other versions and trailing bytes.
    pub fn decode(bytes: &[u8], limit: usize) -> Result<AorRecord, RecordError> {
        if bytes.len() > limit {
            return Err(RecordError::TooLarge(bytes.len()));
        }
        match bytes.first() {
            Some(&RECORD_VERSION) => {}
            Some(&v) => return Err(RecordError::Version(v)),
            None => return Err(RecordError::Decode("empty".into())),
        }
        let cfg = bincode::config::standard().with_limit::<{ 64 * 1024 }>();
        let (rec, used): (AorRecord, usize) = bincode::decode_from_slice(bytes, cfg)
            .map_err(|e| RecordError::Decode(e.to_string()))?;
        if used != bytes.len() {
            return Err(RecordError::Decode("trailing bytes".into()));
        }
        Ok(rec)
    }

    /// The latest claim expiry over all entries.
    pub fn claim_expires(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| e.entry.claim_expires)
            .max()
            .unwrap_or(0)
    }

    /// Entries that still count at `now` (tombstones included).
    pub fn current(&self, now: u64) -> impl Iterator<Item = &SignedEntry> {
        self.entries.iter().filter(move |e| e.entry.expires > now)
    }

    /// True when some current entry has a live contact.
    pub fn has_live_contact(&self, now: u64) -> bool {
        self.current(now)
            .any(|e| e.entry.live_contacts(now).next().is_some())
    }
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
