//! Group commit: writes that must be durable before the node answers are
//! queued to one writer thread, which applies everything waiting to sled,
//! appends it to the commit log with one `fdatasync`, and then acknowledges
//! the whole group.

use super::wal::Wal;
use super::{Storage, StorageError};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// One key to store durably.
pub struct Write {
    /// The tree it goes to.
    pub tree: sled::Tree,
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
}

/// The writes of one request, acknowledged together.
pub type Writes = Vec<Write>;

type Job = (Writes, oneshot::Sender<Result<(), String>>);

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Job>,
}

/// Most requests in one group.
const MAX_GROUP: usize = 1024;

/// Longest time between two log syncs' starts. A sync costs an
/// `fdatasync` (about 0.1 ms of waiting and some kernel CPU), so a lightly
/// loaded node syncs at once, and groups form by themselves while a sync
/// is in progress; above [`RATE_NO_GAP`] the writer also waits up to a gap
/// that grows with the arrival rate, so that a busy node syncs less often
/// and keeps its CPU for answering.
const MAX_FLUSH_GAP: Duration = Duration::from_millis(4);
/// Arrival rate (requests/s) up to which there is no gap.
const RATE_NO_GAP: f64 = 2000.0;
/// Requests/s per millisecond of gap above [`RATE_NO_GAP`].
const RATE_PER_MS_OF_GAP: f64 = 8000.0;
/// The log is cut (after a sled flush) once it holds this many bytes, which
/// bounds its size and the replay at start-up.
const CHECKPOINT_BYTES: u64 = 8 * 1024 * 1024;

/// The flush gap for an estimated arrival rate (requests per second).
fn flush_gap(rate: f64) -> Duration {
    if rate <= RATE_NO_GAP {
        return Duration::ZERO;
    }
    let ms = (rate / RATE_PER_MS_OF_GAP).min(MAX_FLUSH_GAP.as_secs_f64() * 1e3);
    Duration::from_secs_f64(ms / 1e3)
}

/// Exponentially weighted arrival rate, fed one group at a time.
struct RateEstimate {
    per_sec: f64,
}

impl RateEstimate {
    /// `n` requests arrived over `over` (the time since the last flush began).
    fn add(&mut self, n: usize, over: Duration) {
        let secs = over.as_secs_f64().max(1e-4);
        // Longer windows say more: weigh them more (a second or more of
        // quiet all but resets the estimate).
        let w = (secs * 20.0).clamp(0.1, 1.0);
        self.per_sec += w * (n as f64 / secs - self.per_sec);
    }
}

impl Committer {
    /// Starts the writer for `storage` (whose commit log was replayed when
    /// it was opened) with room for `queue` waiting requests. A database has
    /// one writer: a second start fails with [`StorageError::WriterTaken`].
    pub fn start(storage: &Storage, queue: usize) -> Result<Committer, StorageError> {
        let db = storage.db().clone();
        let path = storage.wal_path().to_owned();
        let wal = storage.take_wal().ok_or(StorageError::WriterTaken)?;
        let (tx, rx) = mpsc::channel::<Job>(queue);
        std::thread::Builder::new()
            .name("kadsip-commit".into())
            .spawn(move || writer(db, wal, rx))
            .map_err(|source| StorageError::Io { path, source })?;
        Ok(Committer { tx })
    }

    /// Applies `writes` and returns once they are on disk.
    pub async fn commit(&self, writes: Writes) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((writes, tx))
            .await
            .map_err(|_| StorageError::WriterStopped)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StorageError::Sled(sled::Error::Unsupported(e))),
            Err(_) => Err(StorageError::WriterStopped),
        }
    }
}

/// The writer thread: one group per turn, acknowledged after its log sync.
fn writer(db: sled::Db, mut wal: Wal, mut rx: mpsc::Receiver<Job>) {
    let mut last_flush: Option<Instant> = None;
    let mut rate = RateEstimate { per_sec: 0.0 };
    while let Some(first) = rx.blocking_recv() {
        if let Some(since) = last_flush.map(|t| t.elapsed()) {
            let gap = flush_gap(rate.per_sec);
            if since < gap {
                std::thread::sleep(gap - since);
            }
        }
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        let start = Instant::now();
        if let Some(t) = last_flush {
            rate.add(group.len(), start - t);
        }
        last_flush = Some(start);
        let mut results = Vec::with_capacity(group.len());
        for (writes, _) in &mut group {
            let r = writes.drain(..).try_for_each(|w| {
                wal.push(&w.tree.name(), &w.key, &w.value);
                w.tree.insert(w.key, w.value).map(drop)
            });
            results.push(r.map_err(|e| e.to_string()));
        }
        let synced = wal.sync().map_err(|e| e.to_string());
        for ((_, reply), r) in group.into_iter().zip(results) {
            let _ = reply.send(r.and(synced.clone()));
        }
        if wal.len() >= CHECKPOINT_BYTES {
            // Everything logged is in sled; once sled is durable the log
            // can go. A failed flush keeps the log (it is replayed at start).
            match db.flush() {
                Ok(_) => {
                    if let Err(e) = wal.truncate() {
                        tracing::warn!(error = %e, "commit log not truncated");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "database flush at checkpoint failed"),
            }
        }
    }
    // Shutting down: leave sled durable and the log empty.
    if db.flush().is_ok() {
        let _ = wal.truncate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flush_gap_grows_with_the_arrival_rate_within_bounds() {
        assert_eq!(flush_gap(0.0), Duration::ZERO);
        assert_eq!(flush_gap(2000.0), Duration::ZERO);
        assert_eq!(flush_gap(16000.0), Duration::from_millis(2));
        assert_eq!(flush_gap(1e9), MAX_FLUSH_GAP);
    }

    #[test]
    fn the_rate_estimate_follows_load_and_forgets_it() {
        let mut r = RateEstimate { per_sec: 0.0 };
        // 10 requests every 2 ms: 5,000/s.
        for _ in 0..200 {
            r.add(10, Duration::from_millis(2));
        }
        assert!((r.per_sec - 5000.0).abs() < 50.0, "{}", r.per_sec);
        // One request after a quiet second: back to about 1/s.
        r.add(1, Duration::from_secs(1));
        assert!(r.per_sec < 2.0, "{}", r.per_sec);
    }

    /// Opens the storage in `dir`, retrying while a writer thread from a
    /// dropped committer still holds sled's lock (bounded).
    fn reopen(dir: &std::path::Path) -> Storage {
        for _ in 0..200 {
            if let Ok(s) = Storage::open(dir) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("database did not reopen after the writer stopped");
    }

    #[tokio::test]
    async fn concurrent_commits_are_durable() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let tree = storage.meta.clone();
        let c = Committer::start(&storage, 64).unwrap();
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let (c, tree) = (c.clone(), tree.clone());
            tasks.push(tokio::spawn(async move {
                let w = Write {
                    tree,
                    key: i.to_be_bytes().to_vec(),
                    value: vec![1u8],
                };
                c.commit(vec![w]).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(tree.len(), 200);
        assert!(std::fs::metadata(storage.wal_path()).unwrap().len() > 0);
        drop((c, tree, storage));
        let s = reopen(dir.path());
        assert_eq!(s.meta.len(), 200);
    }

    #[test]
    fn a_database_has_one_writer() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let _first = Committer::start(&storage, 4).unwrap();
        assert!(matches!(
            Committer::start(&storage.clone(), 4),
            Err(StorageError::WriterTaken)
        ));
    }

    #[test]
    fn a_logged_write_sled_never_flushed_is_replayed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let wal_path = storage.wal_path().to_owned();
        drop(storage);
        // As a kill -9 leaves it: the write acknowledged from the log, sled
        // without it.
        let mut wal = Wal::create(&wal_path).unwrap();
        wal.push(b"bindings", b"sip:alice@example.com", b"state");
        wal.push(b"bindings", b"sip:alice@example.com", b"newer state");
        wal.sync().unwrap();
        drop(wal);
        let s = reopen(dir.path());
        let got = s.db().open_tree("bindings").unwrap();
        assert_eq!(
            got.get("sip:alice@example.com").unwrap().as_deref(),
            Some(&b"newer state"[..])
        );
        // Replayed into sled and flushed, so the log is empty again.
        assert_eq!(std::fs::metadata(&wal_path).unwrap().len(), 0);
    }
}
