//! The emulated link layer: an in-memory libp2p transport whose connections
//! carry bytes with per-pair latency, jitter, loss (as TCP would see it: a
//! late segment) and scheduled partitions, so real nodes feel a real network.

use crate::rng::Rng;
use futures::future::BoxFuture;
use futures::{AsyncRead, AsyncWrite};
use libp2p::Multiaddr;
use libp2p::core::transport::{DialOpts, ListenerId, Transport, TransportError, TransportEvent};
use libp2p::multiaddr::Protocol;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

/// Most bytes in flight on one direction of a connection (a TCP window).
const WINDOW: usize = 256 * 1024;
/// Largest segment one write produces.
const SEGMENT: usize = 16 * 1024;
/// Extra delay of a lost segment: TCP's minimum RTO on Linux (plus one RTT).
const MIN_RTO: Duration = Duration::from_millis(200);
/// How long a dial into a partition waits before it fails (lost SYNs).
const PARTITIONED_DIAL: Duration = Duration::from_secs(1);

/// Link behaviour, shared by every pair.
#[derive(Debug, Clone, Copy)]
pub struct LinkParams {
    /// One-way latency range; each pair gets a fixed value drawn uniformly in it.
    pub latency: (Duration, Duration),
    /// Extra per-segment delay, uniform in 0..jitter (order is kept).
    pub jitter: Duration,
    /// Probability that a segment (or a dial's SYN) is lost once.
    pub loss: f64,
}

type Incoming = (LinkStream, u64);
/// Both directions of an open connection between two nodes.
type OpenPipes = (usize, usize, Weak<Mutex<Pipe>>, Weak<Mutex<Pipe>>);

struct NetState {
    /// Listening port → (node, where its incoming connections go).
    listeners: HashMap<u64, (usize, mpsc::Sender<Incoming>)>,
    /// Partition group of each node (equal groups reach each other).
    group: HashMap<usize, u32>,
    /// Open connections, to reset when a partition cuts them.
    pipes: Vec<OpenPipes>,
    /// Prune `pipes` of closed connections when it reaches this length.
    prune_at: usize,
}

/// The emulated network every simulated node's transport plugs into.
pub struct SimNet {
    params: LinkParams,
    seed: u64,
    state: Mutex<NetState>,
}

impl SimNet {
    /// A network with `params`; per-pair latencies derive from `seed`.
    pub fn new(params: LinkParams, seed: u64) -> Arc<SimNet> {
        Arc::new(SimNet {
            params,
            seed,
            state: Mutex::new(NetState {
                listeners: HashMap::new(),
                group: HashMap::new(),
                pipes: Vec::new(),
                prune_at: 1024,
            }),
        })
    }

    /// The one-way latency between two nodes (fixed per pair).
    pub fn latency(&self, a: usize, b: usize) -> Duration {
        let (lo, hi) = self.params.latency;
        if hi <= lo {
            return lo;
        }
        let (x, y) = (a.min(b) as u64, a.max(b) as u64);
        let mut rng = Rng::fork(self.seed, (x << 32) ^ y ^ 0x11_4E);
        lo + (hi - lo).mul_f64(rng.unit())
    }

    fn cut(&self, st: &NetState, a: usize, b: usize) -> bool {
        st.group.get(&a).copied().unwrap_or(0) != st.group.get(&b).copied().unwrap_or(0)
    }

    /// Puts `nodes` in partition group `g` (0 is everyone else) and resets
    /// every connection that now crosses groups.
    pub fn partition(&self, nodes: &[usize], g: u32) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        for &n in nodes {
            st.group.insert(n, g);
        }
        let st = &mut *st;
        let mut keep = Vec::with_capacity(st.pipes.len());
        for (a, b, p, q) in st.pipes.drain(..) {
            let (Some(p), Some(q)) = (p.upgrade(), q.upgrade()) else {
                continue;
            };
            let cross =
                st.group.get(&a).copied().unwrap_or(0) != st.group.get(&b).copied().unwrap_or(0);
            if cross {
                for pipe in [&p, &q] {
                    if let Ok(mut x) = pipe.lock() {
                        x.reset = true;
                        x.wake_all();
                    }
                }
            } else {
                keep.push((a, b, Arc::downgrade(&p), Arc::downgrade(&q)));
            }
        }
        st.pipes = keep;
    }

    /// Heals every partition.
    pub fn heal(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.group.clear();
        }
    }

    fn listen(&self, port: u64, node: usize) -> Option<mpsc::Receiver<Incoming>> {
        let mut st = self.state.lock().ok()?;
        if st.listeners.contains_key(&port) {
            return None;
        }
        let (tx, rx) = mpsc::channel(64);
        st.listeners.insert(port, (node, tx));
        Some(rx)
    }

    fn unlisten(&self, port: u64) {
        if let Ok(mut st) = self.state.lock() {
            st.listeners.remove(&port);
        }
    }

    fn link(&self, a: usize, b: usize, rng: u64) -> Link {
        Link {
            latency: self.latency(a, b),
            jitter: self.params.jitter,
            loss: self.params.loss,
            rng: Rng::new(rng),
        }
    }

    /// Opens a connection from node `from` to whoever listens on `port`.
    async fn connect(
        self: Arc<Self>,
        from: usize,
        from_port: u64,
        port: u64,
    ) -> io::Result<LinkStream> {
        let refused = || io::Error::new(io::ErrorKind::ConnectionRefused, "no listener");
        let (to, tx, cut) = {
            let st = self.state.lock().map_err(|_| refused())?;
            let (to, tx) = st.listeners.get(&port).cloned().ok_or_else(refused)?;
            (to, tx, self.cut(&st, from, to))
        };
        if cut {
            tokio::time::sleep(PARTITIONED_DIAL).await;
            return Err(io::Error::new(io::ErrorKind::TimedOut, "partitioned"));
        }
        // SYN, SYN-ACK: one round trip (a lost SYN is resent after 1 s).
        let mut rtt = self.latency(from, to) * 2;
        let seed = (from as u64) << 32 ^ port ^ self.seed;
        if Rng::new(seed).chance(self.params.loss) {
            rtt += Duration::from_secs(1);
        }
        tokio::time::sleep(rtt).await;
        let ab = Arc::new(Mutex::new(Pipe::default()));
        let ba = Arc::new(Mutex::new(Pipe::default()));
        let ours = LinkStream {
            rx: ba.clone(),
            tx: ab.clone(),
            link: self.link(from, to, seed ^ 1),
            sleep: None,
        };
        let theirs = LinkStream {
            rx: ab.clone(),
            tx: ba.clone(),
            link: self.link(from, to, seed ^ 2),
            sleep: None,
        };
        if let Ok(mut st) = self.state.lock() {
            // Forget closed connections now and then (amortised O(1) per dial).
            if st.pipes.len() >= st.prune_at {
                st.pipes.retain(|(_, _, p, _)| p.strong_count() > 0);
                st.prune_at = (st.pipes.len() * 2).max(1024);
            }
            st.pipes
                .push((from, to, Arc::downgrade(&ab), Arc::downgrade(&ba)));
        }
        tx.send((theirs, from_port)).await.map_err(|_| refused())?;
        Ok(ours)
    }
}

/// One direction of a connection: segments stamped with their arrival time.
#[derive(Default)]
struct Pipe {
    segments: VecDeque<(Instant, Vec<u8>)>,
    offset: usize,
    bytes: usize,
    last: Option<Instant>,
    eof: bool,
    reset: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Pipe {
    fn wake_all(&mut self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }
}

struct Link {
    latency: Duration,
    jitter: Duration,
    loss: f64,
    rng: Rng,
}

/// One end of an emulated connection.
pub struct LinkStream {
    rx: Arc<Mutex<Pipe>>,
    tx: Arc<Mutex<Pipe>>,
    link: Link,
    sleep: Option<Pin<Box<Sleep>>>,
}

fn broken() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "link reset")
}

impl AsyncRead for LinkStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let rx = self.rx.clone();
            let mut p = rx.lock().map_err(|_| broken())?;
            if p.reset {
                return Poll::Ready(Err(broken()));
            }
            let Some((at, _)) = p.segments.front() else {
                if p.eof {
                    return Poll::Ready(Ok(0));
                }
                p.reader = Some(cx.waker().clone());
                return Poll::Pending;
            };
            let at = *at;
            if at > Instant::now() {
                p.reader = Some(cx.waker().clone());
                drop(p);
                let sleep = self
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                if sleep.deadline() != at {
                    sleep.as_mut().reset(at);
                }
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                continue;
            }
            let off = p.offset;
            let Some((_, seg)) = p.segments.front() else {
                continue;
            };
            let n = buf.len().min(seg.len() - off);
            buf[..n].copy_from_slice(&seg[off..off + n]);
            let done = off + n == seg.len();
            if done {
                p.segments.pop_front();
                p.offset = 0;
            } else {
                p.offset += n;
            }
            p.bytes -= n;
            if let Some(w) = p.writer.take() {
                w.wake();
            }
            return Poll::Ready(Ok(n));
        }
    }
}

impl AsyncWrite for LinkStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let tx = self.tx.clone();
        let mut p = tx.lock().map_err(|_| broken())?;
        if p.reset || p.eof {
            return Poll::Ready(Err(broken()));
        }
        if p.bytes >= WINDOW {
            p.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(WINDOW - p.bytes).min(SEGMENT);
        let link = &mut self.link;
        let mut delay = link.latency;
        if !link.jitter.is_zero() {
            delay += link.jitter.mul_f64(link.rng.unit());
        }
        if link.rng.chance(link.loss) {
            delay += MIN_RTO + link.latency * 2;
        }
        let mut at = Instant::now() + delay;
        if let Some(last) = p.last {
            at = at.max(last);
        }
        p.last = Some(at);
        p.segments.push_back((at, buf[..n].to_vec()));
        p.bytes += n;
        if let Some(w) = p.reader.take() {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Ok(mut p) = self.tx.lock() {
            p.eof = true;
            p.wake_all();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for LinkStream {
    fn drop(&mut self) {
        if let Ok(mut p) = self.tx.lock() {
            p.eof = true;
            p.wake_all();
        }
        if let Ok(mut p) = self.rx.lock() {
            p.reset = true;
            p.wake_all();
        }
    }
}

/// A node's transport on the emulated network: `/memory/<port>` addresses.
pub struct SimTransport {
    net: Arc<SimNet>,
    node: usize,
    port: Option<u64>,
    listener: Option<(ListenerId, u64, mpsc::Receiver<Incoming>, bool)>,
}

impl SimTransport {
    /// The transport of node `node`.
    pub fn new(net: Arc<SimNet>, node: usize) -> SimTransport {
        SimTransport {
            net,
            node,
            port: None,
            listener: None,
        }
    }
}

impl Drop for SimTransport {
    fn drop(&mut self) {
        if let Some((_, port, _, _)) = &self.listener {
            self.net.unlisten(*port);
        }
    }
}

fn memory_port(addr: &Multiaddr) -> Option<u64> {
    let mut it = addr.iter();
    let p = match it.next()? {
        Protocol::Memory(p) => p,
        _ => return None,
    };
    match it.next() {
        None | Some(Protocol::P2p(_)) => Some(p),
        _ => None,
    }
}

impl Transport for SimTransport {
    type Output = LinkStream;
    type Error = io::Error;
    type ListenerUpgrade = futures::future::Ready<Result<LinkStream, io::Error>>;
    type Dial = BoxFuture<'static, Result<LinkStream, io::Error>>;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<io::Error>> {
        let Some(port) = memory_port(&addr).filter(|p| *p != 0) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        if self.listener.is_some() {
            return Err(TransportError::Other(io::Error::other(
                "one listener per node",
            )));
        }
        let rx = self
            .net
            .listen(port, self.node)
            .ok_or_else(|| TransportError::Other(io::Error::from(io::ErrorKind::AddrInUse)))?;
        self.port = Some(port);
        self.listener = Some((id, port, rx, true));
        Ok(())
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        match &self.listener {
            Some((l, port, _, _)) if *l == id => {
                self.net.unlisten(*port);
                self.listener = None;
                true
            }
            _ => false,
        }
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        _: DialOpts,
    ) -> Result<Self::Dial, TransportError<io::Error>> {
        let Some(port) = memory_port(&addr).filter(|p| *p != 0) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        let net = self.net.clone();
        Ok(Box::pin(net.connect(
            self.node,
            self.port.unwrap_or(0),
            port,
        )))
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, io::Error>> {
        let Some((id, port, rx, announce)) = self.listener.as_mut() else {
            return Poll::Pending;
        };
        let local: Multiaddr = Protocol::Memory(*port).into();
        if *announce {
            *announce = false;
            return Poll::Ready(TransportEvent::NewAddress {
                listener_id: *id,
                listen_addr: local,
            });
        }
        match rx.poll_recv(cx) {
            Poll::Ready(Some((stream, from))) => Poll::Ready(TransportEvent::Incoming {
                listener_id: *id,
                upgrade: futures::future::ready(Ok(stream)),
                local_addr: local,
                send_back_addr: Protocol::Memory(from).into(),
            }),
            Poll::Ready(None) => Poll::Pending,
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{AsyncReadExt, AsyncWriteExt};

    fn net(lat_ms: u64, loss: f64) -> Arc<SimNet> {
        SimNet::new(
            LinkParams {
                latency: (Duration::from_millis(lat_ms), Duration::from_millis(lat_ms)),
                jitter: Duration::from_millis(2),
                loss,
            },
            1,
        )
    }

    #[tokio::test]
    async fn bytes_arrive_in_order_after_the_latency() {
        let net = net(20, 0.0);
        let mut rx = net.listen(7, 1).unwrap();
        let start = Instant::now();
        let mut a = net.clone().connect(0, 3, 7).await.unwrap();
        let (mut b, from) = rx.recv().await.unwrap();
        assert_eq!(from, 3);
        assert!(
            start.elapsed() >= Duration::from_millis(40),
            "one RTT to connect"
        );
        let sent = Instant::now();
        for i in 0..100u8 {
            a.write_all(&[i; 100]).await.unwrap();
        }
        let mut got = vec![0u8; 10_000];
        b.read_exact(&mut got).await.unwrap();
        assert!(sent.elapsed() >= Duration::from_millis(20));
        for i in 0..100usize {
            assert!(got[i * 100..(i + 1) * 100].iter().all(|&x| x == i as u8));
        }
        drop(a);
        let mut rest = Vec::new();
        assert_eq!(b.read_to_end(&mut rest).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_partition_resets_connections_and_refuses_dials() {
        let net = net(1, 0.0);
        let mut rx = net.listen(9, 1).unwrap();
        let mut a = net.clone().connect(0, 3, 9).await.unwrap();
        let (mut b, _) = rx.recv().await.unwrap();
        net.partition(&[1], 1);
        let mut buf = [0u8; 4];
        assert!(b.read(&mut buf).await.is_err());
        assert!(a.write_all(b"x").await.is_err());
        assert!(net.clone().connect(0, 3, 9).await.is_err());
        net.heal();
        assert!(net.clone().connect(0, 3, 9).await.is_ok());
        assert!(
            net.clone().connect(0, 3, 10).await.is_err(),
            "nobody listens"
        );
    }

    #[tokio::test]
    async fn loss_delays_but_never_drops() {
        let net = net(1, 1.0);
        let mut rx = net.listen(5, 1).unwrap();
        let t = Instant::now();
        let mut a = net.clone().connect(0, 3, 5).await.unwrap();
        assert!(
            t.elapsed() >= Duration::from_secs(1),
            "the lost SYN is resent"
        );
        let (mut b, _) = rx.recv().await.unwrap();
        let t = Instant::now();
        a.write_all(&[1; 1000]).await.unwrap();
        a.write_all(&[3; 1000]).await.unwrap();
        let mut got = vec![0u8; 2000];
        b.read_exact(&mut got).await.unwrap();
        assert!(t.elapsed() >= MIN_RTO, "every segment was lost once");
        assert_eq!((got[0], got[1999]), (1, 3));
    }
}
