//! Group commit: writes that must be durable before the node answers are
//! queued to one writer thread, which applies everything waiting, flushes
//! once, and then acknowledges the whole group.

use super::StorageError;
use tokio::sync::{mpsc, oneshot};

/// Writes to apply atomically per tree, then flush.
pub type Writes = Vec<(sled::Tree, sled::Batch)>;

type Job = (Writes, oneshot::Sender<Result<(), String>>);

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Job>,
}

/// Most writes in one group.
const MAX_GROUP: usize = 512;

/// Shortest time between two flushes' starts. Under load a group waits out
/// the rest of it, gathering more writes per flush (sled hands each flush to
/// its I/O threads, which costs more than the fsync); an idle node flushes
/// at once.
const MIN_FLUSH_GAP: std::time::Duration = std::time::Duration::from_micros(1000);

impl Committer {
    /// Starts the writer for `db` with room for `queue` waiting writes.
    pub fn start(db: sled::Db, queue: usize) -> Committer {
        let (tx, mut rx) = mpsc::channel::<Job>(queue);
        std::thread::Builder::new()
            .name("kadsip-commit".into())
            .spawn(move || {
                let mut last_flush: Option<std::time::Instant> = None;
                while let Some(first) = rx.blocking_recv() {
                    if let Some(gap) = last_flush.map(|t| t.elapsed())
                        && gap < MIN_FLUSH_GAP
                    {
                        std::thread::sleep(MIN_FLUSH_GAP - gap);
                    }
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match rx.try_recv() {
                            Ok(j) => group.push(j),
                            Err(_) => break,
                        }
                    }
                    let mut results = Vec::with_capacity(group.len());
                    for (writes, _) in &mut group {
                        let mut r = Ok(());
                        for (tree, batch) in writes.drain(..) {
                            if let Err(e) = tree.apply_batch(batch) {
                                r = Err(e.to_string());
                                break;
                            }
                        }
                        results.push(r);
                    }
                    last_flush = Some(std::time::Instant::now());
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
                let mut b = sled::Batch::default();
                b.insert(&i.to_be_bytes(), &[1u8][..]);
                c.commit(vec![(tree, b)]).await.unwrap();
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
