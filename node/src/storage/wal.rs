//! The commit log: acknowledged writes are made durable by appending them to
//! one file and `fdatasync`ing it (about 0.1 ms here), not by a sled flush
//! (an I/O-thread hand-off and ~1 ms of CPU). sled catches up in the
//! background; the log is replayed into sled on open and cut at checkpoints.
//!
//! Frame: `len: u32 LE | crc32(payload): u32 LE | payload`, where payload is
//! `seq: u64 LE | tree name len: u8 | tree name | key len: u32 LE | key |
//! value len: u32 LE | value`. Replay stops at the first torn, corrupt or
//! out-of-sequence frame: nothing after it was ever acknowledged.

use super::StorageError;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

/// Largest frame replay accepts (a bound against a corrupt length).
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// One logged write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The sled tree name.
    pub tree: Vec<u8>,
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
}

/// The open log, appended to by the commit thread only.
pub struct Wal {
    file: File,
    path: PathBuf,
    /// Sequence number of the next frame.
    next_seq: u64,
    /// Bytes in the file.
    len: u64,
    /// Frames built for the next [`Wal::sync`].
    buf: Vec<u8>,
    /// A failed write could not be cut back.
    broken: bool,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Wal {
    /// Reads every acknowledged entry of the log at `path` (none when the
    /// file does not exist), in write order.
    pub fn replay(path: &Path) -> Result<Vec<Entry>, StorageError> {
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(io(path))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(path)(e)),
        }
        Ok(decode_all(&bytes))
    }

    /// Opens the log at `path` empty (after its entries were replayed into
    /// sled and flushed), making the truncation durable.
    pub fn create(path: &Path) -> Result<Wal, StorageError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(path)
            .map_err(io(path))?;
        file.sync_all().map_err(io(path))?;
        if let Some(dir) = path.parent() {
            // The file's directory entry, for a freshly created log.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(Wal {
            file,
            path: path.to_owned(),
            next_seq: 1,
            len: 0,
            buf: Vec::with_capacity(64 * 1024),
            broken: false,
        })
    }

    /// Adds one write to the pending frames.
    pub fn push(&mut self, tree: &[u8], key: &[u8], value: &[u8]) {
        let tree = &tree[..tree.len().min(255)];
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0u8; 8]);
        self.buf.extend_from_slice(&self.next_seq.to_le_bytes());
        self.buf.push(tree.len() as u8);
        self.buf.extend_from_slice(tree);
        self.buf
            .extend_from_slice(&(key.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(key);
        self.buf
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(value);
        let payload = &self.buf[start + 8..];
        let (len, crc) = (payload.len() as u32, crc32fast::hash(payload));
        self.buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
        self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        self.next_seq += 1;
    }

    /// Writes the pending frames and waits until they are on disk. After a
    /// failed write the log is cut back to its last synced length, so a
    /// partial frame never sits in front of later ones; if even that fails,
    /// every later sync fails too (the node answers 500 instead of
    /// acknowledging writes replay could not reach).
    pub fn sync(&mut self) -> Result<(), StorageError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.broken {
            self.buf.clear();
            return Err(io(&self.path)(std::io::Error::other(
                "commit log unusable after an earlier write error",
            )));
        }
        let r = self
            .file
            .write_all(&self.buf)
            .and_then(|()| self.file.sync_data());
        self.buf.clear();
        match r {
            Ok(()) => {
                self.len = self.file.stream_position().map_err(io(&self.path))?;
                Ok(())
            }
            Err(e) => {
                let back = self
                    .file
                    .set_len(self.len)
                    .and_then(|()| self.file.seek(SeekFrom::Start(self.len)).map(drop));
                self.broken = back.is_err();
                Err(io(&self.path)(e))
            }
        }
    }

    /// Bytes in the log.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Empties the log once sled holds everything in it durably. The
    /// truncation is synced before the next append, so no old frame can
    /// follow new ones (replay also stops at a sequence gap).
    pub fn truncate(&mut self) -> Result<(), StorageError> {
        self.file.set_len(0).map_err(io(&self.path))?;
        self.file.sync_all().map_err(io(&self.path))?;
        self.file.seek(SeekFrom::Start(0)).map_err(io(&self.path))?;
        self.len = 0;
        self.broken = false;
        Ok(())
    }
}

/// Every intact frame from the start, in order, up to the first bad one.
fn decode_all(bytes: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut expect: Option<u64> = None;
    while let Some((entry, seq, next)) = decode_one(bytes, at) {
        if expect.is_some_and(|e| e != seq) {
            break;
        }
        expect = Some(seq + 1);
        out.push(entry);
        at = next;
    }
    out
}

fn decode_one(b: &[u8], at: usize) -> Option<(Entry, u64, usize)> {
    let u32_at = |i: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            b.get(i..i.checked_add(4)?)?.try_into().ok()?,
        ))
    };
    let len = u32_at(at)? as usize;
    let crc = u32_at(at + 4)?;
    if len > MAX_FRAME {
        return None;
    }
    let p = b.get(at + 8..at + 8 + len)?;
    if crc32fast::hash(p) != crc {
        return None;
    }
    let seq = u64::from_le_bytes(p.get(..8)?.try_into().ok()?);
    let mut i = 8;
    let tl = *p.get(i)? as usize;
    i += 1;
    let tree = p.get(i..i + tl)?.to_vec();
    i += tl;
    let field = |i: &mut usize| -> Option<Vec<u8>> {
        let n = u32::from_le_bytes(p.get(*i..*i + 4)?.try_into().ok()?) as usize;
        *i += 4;
        let v = p.get(*i..i.checked_add(n)?)?.to_vec();
        *i += n;
        Some(v)
    };
    let key = field(&mut i)?;
    let value = field(&mut i)?;
    (i == p.len()).then_some((Entry { tree, key, value }, seq, at + 8 + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u32) -> Entry {
        Entry {
            tree: b"bindings".to_vec(),
            key: format!("sip:u{i}@example.com").into_bytes(),
            value: vec![i as u8; (i % 7) as usize],
        }
    }

    fn log(entries: &[Entry]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("commit.wal");
        let mut w = Wal::create(&path).unwrap();
        for (n, e) in entries.iter().enumerate() {
            w.push(&e.tree, &e.key, &e.value);
            if n % 3 == 2 {
                w.sync().unwrap();
            }
        }
        w.sync().unwrap();
        (dir, path)
    }

    #[test]
    fn synced_entries_replay_in_order() {
        let es: Vec<_> = (0..20).map(entry).collect();
        let (_d, path) = log(&es);
        assert_eq!(Wal::replay(&path).unwrap(), es);
    }

    #[test]
    fn a_missing_log_replays_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Wal::replay(&dir.path().join("none")).unwrap().is_empty());
    }

    #[test]
    fn replay_stops_at_a_torn_or_corrupt_tail() {
        let es: Vec<_> = (0..10).map(entry).collect();
        let (_d, path) = log(&es);
        let full = std::fs::read(&path).unwrap();
        // Every cut inside the last frame leaves the first nine.
        let last_start = full.len() - (8 + 8 + 1 + 8 + 4 + es[9].key.len() + 4 + es[9].value.len());
        for cut in last_start..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            assert_eq!(Wal::replay(&path).unwrap(), es[..9], "cut at {cut}");
        }
        // A flipped byte in frame 5 ends replay before it.
        let mut bad = full.clone();
        let mut at = 0;
        for _ in 0..5 {
            at += 8 + u32::from_le_bytes(bad[at..at + 4].try_into().unwrap()) as usize;
        }
        bad[at + 20] ^= 0x40;
        std::fs::write(&path, &bad).unwrap();
        assert_eq!(Wal::replay(&path).unwrap(), es[..5]);
    }

    #[test]
    fn frames_left_from_before_a_truncation_are_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("commit.wal");
        let mut w = Wal::create(&path).unwrap();
        for i in 0..6 {
            let e = entry(i);
            w.push(&e.tree, &e.key, &e.value);
        }
        w.sync().unwrap();
        let old = std::fs::read(&path).unwrap();
        w.truncate().unwrap();
        let e = entry(100);
        w.push(&e.tree, &e.key, &e.value);
        w.sync().unwrap();
        assert_eq!(Wal::replay(&path).unwrap(), vec![e.clone()]);
        // Had the truncation been lost, old frames would follow the new one;
        // their sequence numbers are lower, so replay ignores them.
        let mut mixed = std::fs::read(&path).unwrap();
        mixed.extend_from_slice(&old);
        std::fs::write(&path, &mixed).unwrap();
        assert_eq!(Wal::replay(&path).unwrap(), vec![e]);
    }
}
