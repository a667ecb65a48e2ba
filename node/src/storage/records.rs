//! The Kademlia `RecordStore` on sled, so the records a node holds for others
//! survive its restart. Every write goes through the overlay merge rules
//! (`kadsip_proto::overlay`), whoever asks for it: our own publications and
//! inbound PUTs (which kad hands us under `StoreInserts::FilterBoth`).

use kadsip_proto::overlay::{AorRecord, Limits, RecordError, merge_for_store};
use libp2p::kad::store::{self, RecordStore};
use libp2p::kad::{ProviderRecord, Record, RecordKey};
use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Unix seconds now (the driver's clock).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// sled-backed record store; values are merged [`AorRecord`]s.
pub struct SledRecordStore {
    tree: sled::Tree,
    limits: Limits,
    max_records: usize,
    /// Records held, counted here: sled's `Tree::len` walks the whole tree,
    /// and the bound is checked on every new record.
    held: AtomicUsize,
}

impl SledRecordStore {
    /// A store on `tree` holding at most `max_records` AORs.
    pub fn new(tree: sled::Tree, limits: Limits, max_records: usize) -> Self {
        let held = AtomicUsize::new(tree.len());
        SledRecordStore {
            tree,
            limits,
            max_records,
            held,
        }
    }

    fn removed(&self, key: &[u8]) {
        if let Ok(Some(_)) = self.tree.remove(key) {
            self.held.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The merge rules' bounds.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// True when none are held.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// The stored record for `key`, if valid and not expired at `now`.
    pub fn get_aor(&self, key: &[u8], now: u64) -> Option<AorRecord> {
        let v = self.tree.get(key).ok()??;
        let rec = AorRecord::decode(&v, self.limits.max_bytes * 2).ok()?;
        if rec.current(now).next().is_none() {
            self.removed(key);
            return None;
        }
        Some(rec)
    }

    /// Merges `value` into what is stored under `key` per the overlay rules.
    pub fn merge_put(&self, key: &[u8], value: &[u8], now: u64) -> Result<AorRecord, RecordError> {
        let incoming = AorRecord::decode(value, self.limits.max_bytes)?;
        let stored = self.get_aor(key, now);
        if stored.is_none() && self.len() >= self.max_records {
            return Err(RecordError::TooMany("records held"));
        }
        let merged = merge_for_store(key, stored.as_ref(), incoming, now, &self.limits)?;
        if let Ok(None) = self.tree.insert(key, merged.encode()) {
            self.held.fetch_add(1, Ordering::Relaxed);
        }
        Ok(merged)
    }

    fn to_record(&self, key: &[u8], rec: &AorRecord, now: u64) -> Record {
        let expires = rec
            .entries
            .iter()
            .map(|e| e.entry.expires)
            .max()
            .unwrap_or(now);
        Record {
            key: RecordKey::new(&key),
            value: rec.encode(),
            publisher: None,
            expires: Some(Instant::now() + Duration::from_secs(expires.saturating_sub(now))),
        }
    }
}

impl RecordStore for SledRecordStore {
    type RecordsIter<'a> = Box<dyn Iterator<Item = Cow<'a, Record>> + 'a>;
    type ProvidedIter<'a> = std::iter::Empty<Cow<'a, ProviderRecord>>;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        let now = unix_now();
        let rec = self.get_aor(k.as_ref(), now)?;
        Some(Cow::Owned(self.to_record(k.as_ref(), &rec, now)))
    }

    fn put(&mut self, r: Record) -> store::Result<()> {
        match self.merge_put(r.key.as_ref(), &r.value, unix_now()) {
            Ok(_) => Ok(()),
            Err(RecordError::TooLarge(_)) => Err(store::Error::ValueTooLarge),
            Err(RecordError::TooMany(_)) => Err(store::Error::MaxRecords),
            Err(e) => {
                tracing::debug!(error = %e, "record refused");
                // kad only distinguishes capacity errors; a refused merge is
                // reported as one so the record is not cached or counted.
                Err(store::Error::ValueTooLarge)
            }
        }
    }

    fn remove(&mut self, k: &RecordKey) {
        self.removed(k.as_ref());
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        let now = unix_now();
        Box::new(self.tree.iter().filter_map(move |kv| {
            let (k, v) = kv.ok()?;
            let rec = AorRecord::decode(&v, self.limits.max_bytes * 2).ok()?;
            rec.current(now).next()?;
            Some(Cow::Owned(self.to_record(&k, &rec, now)))
        }))
    }

    fn add_provider(&mut self, _record: ProviderRecord) -> store::Result<()> {
        // kadsip does not use provider records.
        Err(store::Error::MaxProvidedKeys)
    }

    fn providers(&self, _key: &RecordKey) -> Vec<ProviderRecord> {
        Vec::new()
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        std::iter::empty()
    }

    fn remove_provider(&mut self, _k: &RecordKey, _p: &libp2p::PeerId) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use kadsip_proto::Aor;
    use kadsip_proto::overlay::{ContactBinding, NodeEntry, record_key};

    fn record(user: &str, now: u64) -> (Vec<u8>, Vec<u8>) {
        let aor = Aor::parse(&format!("sip:{user}@campus.example")).unwrap();
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let entry = NodeEntry {
            node: libp2p::PeerId::random().to_bytes(),
            addrs: vec![],
            contacts: vec![ContactBinding {
                uri: format!("sip:{user}@192.0.2.1"),
                q: 1000,
                expires: now + 600,
            }],
            seq: 1,
            expires: now + 600,
            claim_expires: now + 86_400,
        };
        let rec = AorRecord::new(&aor, &key, entry);
        (record_key(&aor).to_vec(), rec.encode())
    }

    #[test]
    fn held_count_follows_puts_removes_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let now = unix_now();
        let db = sled::open(dir.path()).unwrap();
        let mut store = SledRecordStore::new(db.open_tree("r").unwrap(), Limits::default(), 3);
        let recs: Vec<_> = (0..4).map(|i| record(&format!("u{i}"), now)).collect();
        for (k, v) in &recs[..3] {
            store.merge_put(k, v, now).unwrap();
        }
        // The same record again is not a new one.
        store.merge_put(&recs[0].0, &recs[0].1, now).unwrap();
        assert_eq!(store.len(), 3);
        assert!(matches!(
            store.merge_put(&recs[3].0, &recs[3].1, now),
            Err(RecordError::TooMany(_))
        ));
        store.remove(&RecordKey::new(&recs[1].0));
        store.remove(&RecordKey::new(&recs[1].0));
        assert_eq!(store.len(), 2);
        store.merge_put(&recs[3].0, &recs[3].1, now).unwrap();
        drop(store);
        let store = SledRecordStore::new(db.open_tree("r").unwrap(), Limits::default(), 3);
        assert_eq!(store.len(), 3, "counted again on open");
        // Expired records leave the count when found expired.
        assert!(store.get_aor(&recs[0].0, now + 700).is_none());
        assert_eq!(store.len(), 2);
    }
}
