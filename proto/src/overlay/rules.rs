//! The rules storing peers apply on PUT and readers apply on every GET result:
//! signatures, trust-on-first-use ownership, increasing seq, bounded expiry
//! and size. Both sides run this same code.

use super::record::{AorRecord, RECORD_VERSION, RecordError, SignedEntry, hex, record_key};
use crate::uri::Aor;

/// Bounds a record must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded record.
    pub max_bytes: usize,
    /// Most node entries per record.
    pub max_entries: usize,
    /// Most contacts per entry.
    pub max_contacts: usize,
    /// Most addresses per entry.
    pub max_addrs: usize,
    /// Furthest an entry or contact expiry may lie ahead of `now`.
    pub max_entry_ahead: u64,
    /// Furthest a claim may lie ahead of `now`.
    pub max_claim_ahead: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 16 * 1024,
            max_entries: 16,
            max_contacts: 8,
            max_addrs: 8,
            max_entry_ahead: 2 * 86_400,
            max_claim_ahead: 31 * 86_400,
        }
    }
}

/// A record [`AorRecord::validated`] checked for one key: readers keep these,
/// so merging the answers of one lookup verifies each signature once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated(AorRecord);

impl Validated {
    /// The record.
    pub fn record(&self) -> &AorRecord {
        &self.0
    }

    /// The record, owned.
    pub fn into_record(self) -> AorRecord {
        self.0
    }
}

impl AorRecord {
    /// Checks a record on its own: version, key, bounds and every signature.
    pub fn validate(&self, key: &[u8], now: u64, limits: &Limits) -> Result<(), RecordError> {
        self.check(key, now, limits, |_| false)
    }

    /// [`AorRecord::validate`], keeping the proof in the type.
    pub fn validated(
        self,
        key: &[u8],
        now: u64,
        limits: &Limits,
    ) -> Result<Validated, RecordError> {
        self.validate(key, now, limits)?;
        Ok(Validated(self))
    }

    /// [`AorRecord::validate`], except that the signature of an entry
    /// `verified` vouches for (a byte-identical copy of one this peer
    /// verified before) is not checked again.
    fn check(
        &self,
        key: &[u8],
        now: u64,
        limits: &Limits,
        verified: impl Fn(&SignedEntry) -> bool,
    ) -> Result<(), RecordError> {
        if self.version != RECORD_VERSION {
            return Err(RecordError::Version(self.version));
        }
        let aor = Aor::parse(&self.aor).map_err(|_| RecordError::WrongKey)?;
        if aor.as_str() != self.aor || record_key(&aor)[..] != *key {
            return Err(RecordError::WrongKey);
        }
        let size = self.encode().len();
        if size > limits.max_bytes {
            return Err(RecordError::TooLarge(size));
        }
        if self.entries.len() > limits.max_entries {
            return Err(RecordError::TooMany("entries"));
        }
        for (i, e) in self.entries.iter().enumerate() {
            let n = &e.entry;
            if n.contacts.len() > limits.max_contacts {
                return Err(RecordError::TooMany("contacts"));
            }
            if n.addrs.len() > limits.max_addrs {
                return Err(RecordError::TooMany("addresses"));
            }
            let entry_limit = now.saturating_add(limits.max_entry_ahead);
            if n.expires > entry_limit || n.contacts.iter().any(|c| c.expires > entry_limit) {
                return Err(RecordError::ExpiryTooFar);
            }
            if n.claim_expires > now.saturating_add(limits.max_claim_ahead) {
                return Err(RecordError::ExpiryTooFar);
            }
            if self.entries[..i].iter().any(|o| o.entry.node == n.node) {
                return Err(RecordError::DuplicateNode);
            }
            if !verified(e) {
                e.verify(&self.aor, &self.owner)?;
            }
        }
        Ok(())
    }
}

/// What a storing peer keeps when `incoming` is PUT over `stored`.
///
/// Refuses a different owner while the stored claim is unexpired (TOFU), and
/// refuses a PUT that brings no entry newer than the stored one for its node.
/// Entries past their expiry are dropped.
///
/// `stored` must be what this function returned before for `key` (the
/// peer's own store): its bounds are checked again, its signatures are not,
/// and an incoming entry identical to a stored one of the same owner needs
/// no new verification (a re-replicated or retried PUT costs no signature
/// check).
pub fn merge_for_store(
    key: &[u8],
    stored: Option<&AorRecord>,
    incoming: AorRecord,
    now: u64,
    limits: &Limits,
) -> Result<AorRecord, RecordError> {
    let stored = stored.filter(|s| s.check(key, now, limits, |_| true).is_ok());
    let known = |e: &SignedEntry| {
        stored.is_some_and(|s| s.owner == incoming.owner && s.entries.contains(e))
    };
    incoming.check(key, now, limits, known)?;
    let Some(stored) = stored else {
        return Ok(prune(incoming, now));
    };
    if stored.owner != incoming.owner {
        let claim = stored.claim_expires();
        if claim > now {
            return Err(RecordError::OwnerConflict(claim));
        }
        // The old claim lapsed: the new owner starts afresh.
        return Ok(prune(incoming, now));
    }
    let mut merged = stored.clone();
    let mut newer = 0usize;
    let mut same = 0usize;
    let mut worst: Option<(u64, u64)> = None;
    for e in incoming.entries {
        match merged
            .entries
            .iter_mut()
            .find(|m| m.entry.node == e.entry.node)
        {
            Some(m) if e.entry.seq > m.entry.seq => {
                *m = e;
                newer += 1;
            }
            // A retransmitted or re-replicated copy changes nothing.
            Some(m) if *m == e => same += 1,
            Some(m) => worst = Some((e.entry.seq, m.entry.seq)),
            None => {
                merged.entries.push(e);
                newer += 1;
            }
        }
    }
    if newer == 0 {
        if same > 0 && worst.is_none() {
            return Ok(prune(merged, now));
        }
        let (got, stored) = worst.unwrap_or((0, 0));
        return Err(RecordError::StaleSeq { got, stored });
    }
    let merged = prune(merged, now);
    if merged.entries.len() > limits.max_entries {
        return Err(RecordError::TooMany("entries"));
    }
    let size = merged.encode().len();
    if size > limits.max_bytes {
        return Err(RecordError::TooLarge(size));
    }
    Ok(merged)
}

/// Combines the records a lookup returned into one view.
///
/// Invalid records are dropped. The owner is `pinned` when this node already
/// trusts a key for the AOR; otherwise the owner most results agree on (a
/// tie gives no answer). Per node, the highest seq wins.
pub fn merge_for_read<I>(
    key: &[u8],
    results: I,
    pinned: Option<[u8; 32]>,
    now: u64,
    limits: &Limits,
) -> Option<AorRecord>
where
    I: IntoIterator<Item = AorRecord>,
{
    merge_validated(
        results
            .into_iter()
            .filter_map(|r| r.validated(key, now, limits).ok()),
        pinned,
        now,
    )
}

/// [`merge_for_read`] over records validated already (one lookup's answers,
/// each checked once as it arrived).
pub fn merge_validated<I>(results: I, pinned: Option<[u8; 32]>, now: u64) -> Option<AorRecord>
where
    I: IntoIterator<Item = Validated>,
{
    let valid: Vec<AorRecord> = results.into_iter().map(Validated::into_record).collect();
    let owner = pinned.or_else(|| {
        let mut owners: Vec<([u8; 32], usize, u64)> = Vec::new();
        for r in &valid {
            match owners.iter_mut().find(|o| o.0 == r.owner) {
                Some(o) => {
                    o.1 += 1;
                    o.2 = o.2.max(r.claim_expires());
                }
                None => owners.push((r.owner, 1, r.claim_expires())),
            }
        }
        // Most votes wins; a tie between owners is no answer at all (a
        // hostile peer must not win by claiming a longer expiry).
        owners.sort_by_key(|o| std::cmp::Reverse(o.1));
        match owners.as_slice() {
            [] => None,
            [only] => Some(only.0),
            [first, second, ..] if first.1 > second.1 => Some(first.0),
            _ => None,
        }
    })?;
    let mut out: Option<AorRecord> = None;
    for r in valid.into_iter().filter(|r| r.owner == owner) {
        match &mut out {
            None => out = Some(r),
            Some(acc) => {
                for e in r.entries {
                    match acc
                        .entries
                        .iter_mut()
                        .find(|m| m.entry.node == e.entry.node)
                    {
                        Some(m) if e.entry.seq > m.entry.seq => *m = e,
                        Some(_) => {}
                        None => acc.entries.push(e),
                    }
                }
            }
        }
    }
    out.map(|r| prune(r, now))
}

fn prune(mut r: AorRecord, now: u64) -> AorRecord {
    r.entries.retain(|e: &SignedEntry| e.entry.expires > now);
    r
}

/// Hex form of a node id, for logs.
pub fn node_hex(node: &[u8]) -> String {
    hex(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::{ContactBinding, NodeEntry};
    use ed25519_dalek::SigningKey;

    const NOW: u64 = 1_700_000_000;

    fn aor() -> Aor {
        Aor::parse("sip:bob@campus.example").unwrap()
    }

    fn entry(node: u8, seq: u64, contacts: usize) -> NodeEntry {
        NodeEntry {
            node: vec![node; 8],
            addrs: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            contacts: (0..contacts)
                .map(|i| ContactBinding {
                    uri: format!("sip:bob@192.0.2.{i}:5060"),
                    q: 1000,
                    expires: NOW + 3600,
                })
                .collect(),
            seq,
            expires: NOW + 3600,
            claim_expires: NOW + 30 * 86_400,
        }
    }

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    #[test]
    fn encode_decode_validate() {
        let r = AorRecord::new(&aor(), &key(1), entry(1, 1, 1));
        let k = record_key(&aor());
        let bytes = r.encode();
        assert_eq!(bytes[0], RECORD_VERSION);
        let d = AorRecord::decode(&bytes, 8192).unwrap();
        assert_eq!(d, r);
        d.validate(&k, NOW, &Limits::default()).unwrap();
        assert!(d.has_live_contact(NOW));
        assert!(!d.has_live_contact(NOW + 3601));
        assert!(AorRecord::decode(&bytes[..bytes.len() - 1], 8192).is_err());
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(AorRecord::decode(&v2, 8192), Err(RecordError::Version(2)));
        assert!(matches!(
            AorRecord::decode(&bytes, 10),
            Err(RecordError::TooLarge(_))
        ));
    }

    #[test]
    fn hostile_records_refused() {
        let k = record_key(&aor());
        let l = Limits::default();
        let honest = AorRecord::new(&aor(), &key(1), entry(1, 5, 1));
        // forged signature
        let mut forged = honest.clone();
        forged.entries[0].entry.contacts[0].uri = "sip:evil@203.0.113.1".into();
        assert!(matches!(
            forged.validate(&k, NOW, &l),
            Err(RecordError::BadSignature(_))
        ));
        // different owner while the claim is live
        let hijack = AorRecord::new(&aor(), &key(2), entry(9, 100, 1));
        assert!(matches!(
            merge_for_store(&k, Some(&honest), hijack.clone(), NOW, &l),
            Err(RecordError::OwnerConflict(_))
        ));
        // lower or equal seq
        let old = AorRecord::new(&aor(), &key(1), entry(1, 5, 0));
        assert!(matches!(
            merge_for_store(&k, Some(&honest), old, NOW, &l),
            Err(RecordError::StaleSeq { got: 5, stored: 5 })
        ));
        // a forged copy of the stored entry is verified, not taken as known
        assert!(matches!(
            merge_for_store(&k, Some(&honest), forged.clone(), NOW, &l),
            Err(RecordError::BadSignature(_))
        ));
        // the identical signed entry again (a retried PUT, replication) is a no-op
        assert_eq!(
            merge_for_store(&k, Some(&honest), honest.clone(), NOW, &l).unwrap(),
            honest
        );
        // expiry years ahead
        let mut far = entry(1, 6, 1);
        far.expires = NOW + 5 * 365 * 86_400;
        let far = AorRecord::new(&aor(), &key(1), far);
        assert_eq!(far.validate(&k, NOW, &l), Err(RecordError::ExpiryTooFar));
        // oversized
        let mut big = entry(1, 7, 1);
        big.addrs = vec!["x".repeat(17_000)];
        let big = AorRecord::new(&aor(), &key(1), big);
        assert!(matches!(
            big.validate(&k, NOW, &l),
            Err(RecordError::TooLarge(_))
        ));
        // wrong key
        assert_eq!(
            honest.validate(&[0; 32], NOW, &l),
            Err(RecordError::WrongKey)
        );
        // on read, hostile results are ignored and the honest one resolves
        let got = merge_for_read(
            &k,
            [
                forged.clone(),
                hijack.clone(),
                honest.clone(),
                honest.clone(),
            ],
            None,
            NOW,
            &l,
        )
        .unwrap();
        assert_eq!(got.owner, honest.owner);
        assert_eq!(got.entries, honest.entries);
        // answers validated on arrival merge the same way
        let checked = [honest.clone(), honest.clone()].map(|r| r.validated(&k, NOW, &l).unwrap());
        assert_eq!(merge_validated(checked, None, NOW), Some(got));
        assert!(forged.clone().validated(&k, NOW, &l).is_err());
        // one honest and one hijacked answer: no answer rather than a guess
        assert_eq!(
            merge_for_read(&k, [hijack, honest.clone()], None, NOW, &l),
            None
        );
        // a pinned owner wins even against a majority
        let other = AorRecord::new(&aor(), &key(2), entry(2, 1, 1));
        let got = merge_for_read(
            &k,
            [other.clone(), other, honest.clone()],
            Some(honest.owner),
            NOW,
            &l,
        )
        .unwrap();
        assert_eq!(got.owner, honest.owner);
    }

    #[test]
    fn merge_keeps_highest_seq_per_node() {
        let k = record_key(&aor());
        let l = Limits::default();
        let a = AorRecord::new(&aor(), &key(1), entry(1, 1, 1));
        let b = AorRecord::new(&aor(), &key(1), entry(2, 1, 1));
        let ab = merge_for_store(&k, Some(&a), b, NOW, &l).unwrap();
        assert_eq!(ab.entries.len(), 2);
        let a2 = AorRecord::new(&aor(), &key(1), entry(1, 2, 0));
        let m = merge_for_store(&k, Some(&ab), a2, NOW, &l).unwrap();
        assert_eq!(m.entries.len(), 2);
        let e1 = m
            .entries
            .iter()
            .find(|e| e.entry.node == vec![1; 8])
            .unwrap();
        assert_eq!(e1.entry.seq, 2);
        assert!(
            e1.entry.contacts.is_empty(),
            "tombstone replaced the binding"
        );
        // after the claim lapses, a new owner may take the AOR
        let late = NOW + 31 * 86_400;
        let mut e = entry(3, 1, 1);
        e.expires = late + 10;
        e.claim_expires = late + 100;
        for c in &mut e.contacts {
            c.expires = late + 10;
        }
        let newcomer = AorRecord::new(&aor(), &key(3), e);
        let m2 = merge_for_store(&k, Some(&m), newcomer, late, &l).unwrap();
        assert_eq!(m2.owner, key(3).verifying_key().to_bytes());
    }
}
