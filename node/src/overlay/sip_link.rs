//! `/kadsip/sip/1.0.0`: SIP messages between nodes over one long-lived,
//! Noise-secured libp2p stream per peer and direction, like a TCP flow
//! (RFC 3261 §18): length-prefixed frames, nothing retransmitted, all bounded.

use super::{Command, InboundSip, OverlayError};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

/// The protocol name.
pub const SIP_PROTOCOL: StreamProtocol = StreamProtocol::new("/kadsip/sip/1.0.0");
/// Largest SIP message carried.
pub const MAX_SIP_FRAME: usize = 64 * 1024;
/// Most messages queued to one peer; more get [`OverlayError::Busy`].
pub const MAX_QUEUED_PER_PEER: usize = 1024;
/// Most inbound streams one peer may hold open at once.
const MAX_INBOUND_PER_PEER: usize = 4;
/// Most frames (or bytes) written with one flush.
const BATCH_FRAMES: usize = 64;
const BATCH_BYTES: usize = 256 * 1024;
/// Streams one batch is tried on before it fails.
const WRITE_ATTEMPTS: usize = 3;
/// Pause before the last attempt.
const LAST_ATTEMPT_PAUSE: Duration = Duration::from_millis(50);

/// Link timing (shortened by tests).
#[derive(Debug, Clone, Copy)]
pub struct LinkTuning {
    /// How long opening a stream (dialing included) may take.
    pub open_timeout: Duration,
    /// How long one batch may take to write before the peer counts as stuck.
    pub write_timeout: Duration,
    /// An outbound stream with nothing to send is closed after this long;
    /// an inbound stream that carried nothing for twice as long is dropped.
    pub idle_timeout: Duration,
    /// Most inbound streams from all peers together.
    pub max_inbound: usize,
}

impl Default for LinkTuning {
    fn default() -> Self {
        LinkTuning {
            open_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_inbound: 1024,
        }
    }
}

type Reply = oneshot::Sender<Result<(), OverlayError>>;

struct Frame {
    bytes: Vec<u8>,
    reply: Option<Reply>,
}

struct Writer {
    tx: mpsc::Sender<Frame>,
    /// Addresses to dial with, set by the first sender that knew them.
    addrs: Arc<Mutex<Vec<Multiaddr>>>,
}

/// The SIP link: a cheap, cloneable handle. Sending never blocks: each peer
/// has one writer task draining a bounded queue into its stream.
#[derive(Clone)]
pub struct SipLink {
    inner: Arc<Inner>,
}

struct Inner {
    control: libp2p_stream::Control,
    /// The swarm task, asked to dial a peer at known addresses.
    swarm: mpsc::Sender<Command>,
    writers: Mutex<HashMap<PeerId, Writer>>,
    inbound: Arc<Mutex<HashMap<PeerId, usize>>>,
    inbound_slots: Arc<Semaphore>,
    tuning: LinkTuning,
}

impl SipLink {
    pub(crate) fn new(
        control: libp2p_stream::Control,
        swarm: mpsc::Sender<Command>,
        tuning: LinkTuning,
    ) -> SipLink {
        SipLink {
            inner: Arc::new(Inner {
                control,
                swarm,
                writers: Mutex::new(HashMap::new()),
                inbound: Arc::new(Mutex::new(HashMap::new())),
                inbound_slots: Arc::new(Semaphore::new(tuning.max_inbound)),
                tuning,
            }),
        }
    }

    /// Queues `bytes` for `peer` (dialing `addrs` when not connected); the
    /// reply says when it is written, or why it could not be.
    fn enqueue(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        bytes: Vec<u8>,
        reply: Option<Reply>,
    ) -> Result<(), OverlayError> {
        if bytes.len() > MAX_SIP_FRAME {
            return Err(OverlayError::TooLarge);
        }
        let mut frame = Frame { bytes, reply };
        let mut writers = lock(&self.inner.writers);
        // A writer that ended (idle, failed) left a closed queue: replace it
        // once and try again.
        for _ in 0..2 {
            let w = writers
                .entry(peer)
                .or_insert_with(|| self.spawn_writer(peer));
            if !addrs.is_empty() {
                let mut known = lock(&w.addrs);
                if known.is_empty() {
                    *known = addrs.clone();
                }
            }
            match w.tx.try_send(frame) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => return Err(OverlayError::Busy),
                Err(mpsc::error::TrySendError::Closed(f)) => {
                    frame = f;
                    writers.remove(&peer);
                }
            }
        }
        Err(OverlayError::Stopped)
    }

    /// Sends `bytes` to `peer` and waits until it is written to the stream.
    pub async fn send(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        bytes: Vec<u8>,
    ) -> Result<(), OverlayError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(peer, addrs, bytes, Some(tx))?;
        rx.await.map_err(|_| OverlayError::Stopped)?
    }

    /// Queues `bytes` for `peer` without waiting; false when it cannot.
    pub fn try_send(&self, peer: PeerId, bytes: Vec<u8>) -> bool {
        self.enqueue(peer, Vec::new(), bytes, None).is_ok()
    }

    /// Starts accepting streams from other nodes; their messages go to `sink`.
    pub fn attach(&self, sink: mpsc::Sender<InboundSip>) -> Result<(), OverlayError> {
        let mut control = self.inner.control.clone();
        let mut incoming = control
            .accept(SIP_PROTOCOL)
            .map_err(|_| OverlayError::AlreadyAttached)?;
        let inner = self.inner.clone();
        tokio::spawn(async move {
            while let Some((peer, stream)) = incoming.next().await {
                let Some(guard) = InboundGuard::take(&inner, peer) else {
                    tracing::debug!(%peer, "too many SIP streams; dropped one");
                    continue;
                };
                let (sink, idle) = (sink.clone(), inner.tuning.idle_timeout * 2);
                tokio::spawn(async move {
                    if let Err(e) = read_frames(peer, stream, sink, idle).await {
                        tracing::debug!(%peer, error = %e, "SIP stream from peer ended");
                    }
                    drop(guard);
                });
            }
        });
        Ok(())
    }

    /// Peers with an outbound SIP stream (or one being opened).
    pub fn peers(&self) -> usize {
        lock(&self.inner.writers).len()
    }

    fn spawn_writer(&self, peer: PeerId) -> Writer {
        let (tx, rx) = mpsc::channel(MAX_QUEUED_PER_PEER);
        let addrs = Arc::new(Mutex::new(Vec::new()));
        let task = WriterTask {
            peer,
            rx,
            addrs: addrs.clone(),
            control: self.inner.control.clone(),
            swarm: self.inner.swarm.downgrade(),
            tuning: self.inner.tuning,
        };
        let link = Arc::downgrade(&self.inner);
        let mine = tx.clone();
        tokio::spawn(async move {
            task.run().await;
            // Forget this writer unless a newer one took its place.
            if let Some(inner) = link.upgrade() {
                let mut writers = lock(&inner.writers);
                if writers.get(&peer).is_some_and(|w| w.tx.same_channel(&mine)) {
                    writers.remove(&peer);
                }
            }
        });
        Writer { tx, addrs }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One inbound stream's slot, given back when the stream ends.
struct InboundGuard {
    peer: PeerId,
    per_peer: Arc<Mutex<HashMap<PeerId, usize>>>,
    _slot: OwnedSemaphorePermit,
}

impl InboundGuard {
    fn take(inner: &Inner, peer: PeerId) -> Option<InboundGuard> {
        let slot = inner.inbound_slots.clone().try_acquire_owned().ok()?;
        let mut per_peer = lock(&inner.inbound);
        let n = per_peer.entry(peer).or_default();
        if *n >= MAX_INBOUND_PER_PEER {
            return None;
        }
        *n += 1;
        Some(InboundGuard {
            peer,
            per_peer: inner.inbound.clone(),
            _slot: slot,
        })
    }
}

impl Drop for InboundGuard {
    fn drop(&mut self) {
        let mut per_peer = lock(&self.per_peer);
        if let Some(n) = per_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                per_peer.remove(&self.peer);
            }
        }
    }
}

/// Reads frames until the stream ends, is idle too long or breaks a bound.
/// A full sink holds the reader back, and with it the sender (flow control).
async fn read_frames(
    peer: PeerId,
    mut stream: Stream,
    sink: mpsc::Sender<InboundSip>,
    idle: Duration,
) -> std::io::Result<()> {
    loop {
        let mut len = [0u8; 4];
        match tokio::time::timeout(idle, stream.read_exact(&mut len)).await {
            Err(_) => return Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(r) => r?,
        }
        let n = u32::from_be_bytes(len) as usize;
        if n > MAX_SIP_FRAME {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("SIP frame of {n} bytes is over the {MAX_SIP_FRAME}-byte bound"),
            ));
        }
        let mut buf = vec![0u8; n];
        tokio::time::timeout(idle, stream.read_exact(&mut buf))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if sink.send((peer, buf)).await.is_err() {
            return Ok(());
        }
    }
}

struct WriterTask {
    peer: PeerId,
    rx: mpsc::Receiver<Frame>,
    addrs: Arc<Mutex<Vec<Multiaddr>>>,
    control: libp2p_stream::Control,
    /// Weak, so a forgotten writer does not keep the swarm task alive.
    swarm: mpsc::WeakSender<Command>,
    tuning: LinkTuning,
}

impl WriterTask {
    /// Drains the queue into the stream in batches. A failed batch is sent
    /// again on a fresh stream, up to [`WRITE_ATTEMPTS`] times (the receiving
    /// transactions absorb a duplicate); if every attempt fails, it and
    /// everything queued fail.
    async fn run(mut self) {
        let mut stream: Option<Stream> = None;
        let mut buf = Vec::with_capacity(BATCH_BYTES);
        let mut batch: Vec<Option<Reply>> = Vec::with_capacity(BATCH_FRAMES);
        loop {
            let first = match tokio::time::timeout(self.tuning.idle_timeout, self.rx.recv()).await {
                Ok(Some(f)) => f,
                Ok(None) | Err(_) => break,
            };
            buf.clear();
            push_frame(&mut buf, &mut batch, first);
            while batch.len() < BATCH_FRAMES && buf.len() < BATCH_BYTES {
                match self.rx.try_recv() {
                    Ok(f) => push_frame(&mut buf, &mut batch, f),
                    Err(_) => break,
                }
            }
            let mut result = Err(OverlayError::Stopped);
            for attempt in 0..WRITE_ATTEMPTS {
                if attempt == WRITE_ATTEMPTS - 1 {
                    // Two streams broke at once: typically both were on a
                    // connection being closed (a duplicate from a
                    // simultaneous dial, refused by the per-peer limit) that
                    // the stream layer had not yet forgotten. Give the swarm
                    // a moment to drop it, then use the one that stays.
                    tokio::time::sleep(LAST_ATTEMPT_PAUSE).await;
                }
                let s = match stream.as_mut() {
                    Some(s) => s,
                    None => match self.open().await {
                        Ok(s) => stream.insert(s),
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    },
                };
                match tokio::time::timeout(self.tuning.write_timeout, write_all(s, &buf)).await {
                    Ok(Ok(())) => {
                        result = Ok(());
                        break;
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %self.peer, error = %e, "SIP stream broke");
                        result = Err(OverlayError::Unreachable(e.to_string()));
                    }
                    Err(_) => {
                        result = Err(OverlayError::Unreachable(
                            "peer stopped reading its SIP stream".into(),
                        ));
                    }
                }
                stream = None;
            }
            let failed = result.is_err();
            if let Err(e) = &result {
                tracing::debug!(peer = %self.peer, frames = batch.len(), error = %e, "SIP frames to the peer failed");
            }
            for reply in batch.drain(..).flatten() {
                let _ = reply.send(result.clone());
            }
            if failed {
                // Whatever is queued would meet the same fate: fail it now
                // rather than let it wait behind another dial.
                self.rx.close();
                while let Ok(f) = self.rx.try_recv() {
                    if let Some(reply) = f.reply {
                        let _ = reply.send(result.clone());
                    }
                }
                break;
            }
        }
        if let Some(mut s) = stream {
            let _ = tokio::time::timeout(self.tuning.write_timeout, s.close()).await;
        }
    }

    async fn open(&mut self) -> Result<Stream, OverlayError> {
        let addrs = lock(&self.addrs).clone();
        // Dial at the record's addresses first and wait until the dial is
        // under way: opening a stream to a peer we are not connected to
        // dials with the addresses Kademlia knows, which may be none.
        if let (false, Some(swarm)) = (addrs.is_empty(), self.swarm.upgrade()) {
            let (reply, dialing) = oneshot::channel();
            let cmd = Command::DialPeer {
                peer: self.peer,
                addrs,
                reply,
            };
            if swarm.send(cmd).await.is_ok() {
                let _ = dialing.await;
            }
        }
        match tokio::time::timeout(
            self.tuning.open_timeout,
            self.control.open_stream(self.peer, SIP_PROTOCOL),
        )
        .await
        {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(OverlayError::Unreachable(e.to_string())),
            Err(_) => Err(OverlayError::Unreachable(
                "no SIP stream to the peer in time".into(),
            )),
        }
    }
}

fn push_frame(buf: &mut Vec<u8>, batch: &mut Vec<Option<Reply>>, f: Frame) {
    buf.extend_from_slice(&(f.bytes.len() as u32).to_be_bytes());
    buf.extend_from_slice(&f.bytes);
    batch.push(f.reply);
}

async fn write_all(s: &mut Stream, buf: &[u8]) -> std::io::Result<()> {
    s.write_all(buf).await?;
    s.flush().await
}
