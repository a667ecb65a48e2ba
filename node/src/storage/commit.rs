//! Group commit: writes that must be durable before the node answers are
//! queued to one writer thread, which applies everything waiting, flushes
//! once, and then acknowledges the whole group.

use super::StorageError;
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

/// Shortest and longest time between two flushes' starts. Each sled flush
/// costs far more CPU than the writes it carries (an I/O-thread hand-off,
/// a `sync_file_range`; about 1 ms on a 2-core VM), so the gap grows with
/// the arrival rate: an idle or lightly loaded node flushes at once, a busy
/// one gathers more writes per flush and keeps its CPU for answering.
const MIN_FLUSH_GAP: Duration = Duration::from_micros(1000);
const MAX_FLUSH_GAP: Duration = Duration::from_millis(10);
/// Arrival rate (requests/s) at which the gap is 1 ms; it grows in
/// proportion above that, up to [`MAX_FLUSH_GAP`].
const RATE_PER_MS_OF_GAP: f64 = 1000.0;

/// The flush gap for an estimated arrival rate (requests per second).
fn flush_gap(rate: f64) -> Duration {
    let ms = (rate / RATE_PER_MS_OF_GAP).clamp(
        MIN_FLUSH_GAP.as_secs_f64() * 1e3,
        MAX_FLUSH_GAP.as_secs_f64() * 1e3,
    );
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
    /// Starts the writer for `db` with room for `queue` waiting requests.
    pub fn start(db: sled::Db, queue: usize) -> Committer {
        let (tx, mut rx) = mpsc::channel::<Job>(queue);
        std::thread::Builder::new()
            .name("kadsip-commit".into())
            .spawn(move || {
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
                        let r = writes
                            .drain(..)
                            .try_for_each(|w| w.tree.insert(w.key, w.value).map(drop))
                            .map_err(|e| e.to_string());
                        results.push(r);
                    }
                    let flushed = db.flush().map(drop).map_err(|e| e.to_string());
                    for ((_, reply), r) in group.into_iter().zip(results) {
                        let r = r.and(flushed.clone());
                        let _ = reply.send(r);
                    }
                }
            })
            .expect("spawn commit thread");
        Committer { tx }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flush_gap_grows_with_the_arrival_rate_within_bounds() {
        assert_eq!(flush_gap(0.0), MIN_FLUSH_GAP);
        assert_eq!(flush_gap(500.0), MIN_FLUSH_GAP);
        assert_eq!(flush_gap(4000.0), Duration::from_millis(4));
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

    #[tokio::test]
    async fn concurrent_commits_are_durable() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("t").unwrap();
        let c = Committer::start(db.clone(), 64);
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
        drop(c);
        drop(tree);
        drop(db);
        // The writer thread releases its handle (and sled's lock) once it
        // sees the channel closed; retry the reopen for a bounded time.
        let mut reopened = None;
        for _ in 0..200 {
            match sled::open(dir.path()) {
                Ok(db) => {
                    reopened = Some(db);
                    break;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
        let db = reopened.expect("database reopens after the writer stops");
        assert_eq!(db.open_tree("t").unwrap().len(), 200);
    }
}
