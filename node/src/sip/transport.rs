//! SIP over UDP and TCP. One task reads the UDP socket; each TCP connection
//! has its own task. Both parse what arrives (stream framing for TCP) and
//! hand messages to the SIP core through a bounded channel; the core answers
//! through [`Transports::send`], which puts a datagram on the socket at once
//! (no task hand-off on the call path) and queues it only when the socket is full.

use bytes::Bytes;
use kadsip_proto::Message;
use kadsip_proto::framing::{Framed, Framer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// Largest UDP datagram or framed TCP message accepted.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Most simultaneous TCP connections.
pub const MAX_TCP_CONNECTIONS: usize = 1024;
/// A TCP connection with no traffic for this long is closed.
pub const TCP_IDLE: Duration = Duration::from_secs(300);
/// Kernel receive buffer asked for the UDP socket (the system may cap it at
/// `net.core.rmem_max`): a burst of datagrams waits there while the node
/// is busy instead of being dropped, as Kamailio raises its own.
pub const UDP_RECV_BUFFER: usize = 4 << 20;

/// Identifies one TCP connection.
pub type ConnId = u64;

/// Open TCP connections: remote address and the writer's queue.
type ConnTable = Arc<Mutex<HashMap<ConnId, (SocketAddr, mpsc::Sender<Bytes>)>>>;

/// Where a message came from, so responses can go back the same way.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A UDP datagram from this address.
    Udp(SocketAddr),
    /// A TCP connection.
    Tcp {
        /// The connection.
        conn: ConnId,
        /// The remote address.
        peer: SocketAddr,
    },
    /// Another kadsip node, over the `/kadsip/sip/1.0.0` overlay link.
    Overlay(libp2p::PeerId),
}

impl Source {
    /// The remote address (none for overlay peers).
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            Source::Udp(a) => Some(*a),
            Source::Tcp { peer, .. } => Some(*peer),
            Source::Overlay(_) => None,
        }
    }

    /// The transport token for Via (`UDP` / `TCP`; the overlay is reliable like TCP).
    pub fn transport(&self) -> &'static str {
        match self {
            Source::Udp(_) => "UDP",
            Source::Tcp { .. } | Source::Overlay(_) => "TCP",
        }
    }

    /// True for reliable transports (no retransmissions).
    pub fn reliable(&self) -> bool {
        !matches!(self, Source::Udp(_))
    }

    /// `udp:1.2.3.4:5060` / `tcp:…` / `p2p:<peer>`, stored with bindings.
    pub fn to_flow(&self) -> String {
        match self {
            Source::Udp(a) => format!("udp:{a}"),
            Source::Tcp { peer, .. } => format!("tcp:{peer}"),
            Source::Overlay(p) => format!("p2p:{p}"),
        }
    }
}

/// What the transports deliver to the SIP core.
#[derive(Debug)]
pub enum Inbound {
    /// A parsed message.
    Message(Message, Source),
    /// Bytes that do not parse; the core may answer 400/505 statelessly.
    Invalid(kadsip_proto::ParseError, Bytes, Source),
}

/// Handle for sending through the transports.
#[derive(Clone)]
pub struct Transports {
    udp: mpsc::Sender<(Bytes, SocketAddr)>,
    /// The UDP socket, for sends that need not wait (none without sockets).
    udp_sock: Option<Arc<UdpSocket>>,
    tcp: ConnTable,
    core: mpsc::Sender<Inbound>,
    stats: Arc<TransportStats>,
    /// The bound SIP address.
    pub local: SocketAddr,
}

/// Counters the transports keep.
#[derive(Default, Debug)]
pub struct TransportStats {
    /// Inbound items dropped because the core was saturated.
    pub dropped: AtomicU64,
    /// Messages that did not parse.
    pub invalid: AtomicU64,
}

impl Transports {
    /// Sends `bytes` back the way `to` came; false when the path is gone
    /// (overlay peers are reached through the overlay, not here).
    pub fn send(&self, to: &Source, bytes: Bytes) -> bool {
        match to {
            Source::Udp(a) => self.send_udp(*a, bytes),
            Source::Tcp { conn, .. } => {
                let tx = self
                    .tcp
                    .lock()
                    .ok()
                    .and_then(|m| m.get(conn).map(|c| c.1.clone()));
                tx.is_some_and(|t| t.try_send(bytes).is_ok())
            }
            Source::Overlay(_) => false,
        }
    }

    /// The open TCP connection from `peer`, if any (a UA's registered flow).
    pub fn tcp_flow(&self, peer: SocketAddr) -> Option<Source> {
        let m = self.tcp.lock().ok()?;
        m.iter()
            .find(|(_, (a, _))| *a == peer)
            .map(|(id, _)| Source::Tcp { conn: *id, peer })
    }

    /// Sends a datagram to `addr`.
    pub fn send_udp(&self, addr: SocketAddr, bytes: Bytes) -> bool {
        // Straight onto the socket unless datagrams already wait in the
        // queue (they go first: no reordering) or the socket buffer is full.
        if let Some(sock) = &self.udp_sock {
            if self.udp.capacity() == self.udp.max_capacity() {
                match sock.try_send_to(&bytes, addr) {
                    Ok(_) => return true,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        tracing::debug!(to = %addr, error = %e, "udp send failed");
                        return true;
                    }
                }
            }
        }
        self.udp.try_send((bytes, addr)).is_ok()
    }

    /// Open TCP connections.
    pub fn tcp_connections(&self) -> usize {
        self.tcp.lock().map_or(0, |m| m.len())
    }

    /// Opens an in-memory flow from a UA at `peer` (the simulator's SIP
    /// transport). It behaves like a TCP connection: reliable, whole
    /// messages, and the node reaches the UA back through it. None when the
    /// connection table is full.
    pub fn connect_memory(&self, peer: SocketAddr) -> Option<MemoryFlow> {
        let id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        let (out_tx, out_rx) = mpsc::channel(256);
        {
            let mut m = self.tcp.lock().ok()?;
            if m.len() >= MAX_TCP_CONNECTIONS {
                return None;
            }
            m.insert(id, (peer, out_tx));
        }
        let (in_tx, mut in_rx) = mpsc::channel::<Bytes>(256);
        let (conns, core, stats) = (self.tcp.clone(), self.core.clone(), self.stats.clone());
        tokio::spawn(async move {
            let source = Source::Tcp { conn: id, peer };
            while let Some(data) = in_rx.recv().await {
                if data.len() > MAX_MESSAGE {
                    stats.invalid.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let item = match Message::parse_received(data.clone()) {
                    Ok(m) => Inbound::Message(m, source.clone()),
                    Err(e) => {
                        stats.invalid.fetch_add(1, Ordering::Relaxed);
                        Inbound::Invalid(e, data, source.clone())
                    }
                };
                if core.send(item).await.is_err() {
                    break;
                }
            }
            if let Ok(mut m) = conns.lock() {
                m.remove(&id);
            }
        });
        Some(MemoryFlow {
            tx: in_tx,
            rx: out_rx,
        })
    }
}

/// A UA's in-memory connection to its node: whole SIP messages each way.
#[derive(Debug)]
pub struct MemoryFlow {
    /// Messages to the node.
    pub tx: mpsc::Sender<Bytes>,
    /// Messages from the node.
    pub rx: mpsc::Receiver<Bytes>,
}

/// Binds UDP and TCP on `addr` and starts their tasks; inbound messages go
/// to `core`. Without `sockets` nothing is bound: `addr` only names the node
/// and UAs connect through [`Transports::connect_memory`].
pub async fn start(
    addr: SocketAddr,
    sockets: bool,
    core: mpsc::Sender<Inbound>,
    stats: Arc<TransportStats>,
) -> std::io::Result<Transports> {
    if !sockets {
        let (udp, _) = mpsc::channel(1);
        return Ok(Transports {
            udp,
            udp_sock: None,
            tcp: Arc::default(),
            core,
            stats,
            local: addr,
        });
    }
    let (udp, tcp, local) = bind_pair(addr).await?;
    let udp = Arc::new(udp);
    let (udp_tx, udp_rx) = mpsc::channel(4096);
    let conns: ConnTable = Arc::default();
    tokio::spawn(udp_task(udp.clone(), udp_rx, core.clone(), stats.clone()));
    tokio::spawn(tcp_accept(tcp, conns.clone(), core.clone(), stats.clone()));
    Ok(Transports {
        udp: udp_tx,
        udp_sock: Some(udp),
        tcp: conns,
        core,
        stats,
        local,
    })
}

/// Binds UDP and TCP on one port. With port 0 the UDP socket picks it; if
/// that port is taken for TCP, another is tried (a bounded number of times).
async fn bind_pair(addr: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener, SocketAddr)> {
    const EPHEMERAL_TRIES: usize = 16;
    let mut tries = 0;
    loop {
        let udp = UdpSocket::bind(addr).await?;
        let local = udp.local_addr()?;
        if let Err(e) = socket2::SockRef::from(&udp).set_recv_buffer_size(UDP_RECV_BUFFER) {
            tracing::debug!(error = %e, "cannot enlarge the UDP receive buffer");
        }
        match TcpListener::bind(local).await {
            Ok(tcp) => return Ok((udp, tcp, local)),
            Err(e)
                if addr.port() == 0
                    && e.kind() == std::io::ErrorKind::AddrInUse
                    && tries < EPHEMERAL_TRIES =>
            {
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn udp_task(
    sock: Arc<UdpSocket>,
    mut out: mpsc::Receiver<(Bytes, SocketAddr)>,
    core: mpsc::Sender<Inbound>,
    stats: Arc<TransportStats>,
) {
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    loop {
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                if n > MAX_MESSAGE {
                    stats.invalid.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let data = Bytes::copy_from_slice(&buf[..n]);
                if data.iter().all(|&b| b == b'\r' || b == b'\n') {
                    continue; // keep-alive
                }
                let item = match Message::parse_received(data.clone()) {
                    Ok(m) => Inbound::Message(m, Source::Udp(from)),
                    Err(e) => {
                        stats.invalid.fetch_add(1, Ordering::Relaxed);
                        Inbound::Invalid(e, data, Source::Udp(from))
                    }
                };
                if core.try_send(item).is_err() {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            o = out.recv() => {
                let Some((bytes, to)) = o else { break };
                if let Err(e) = sock.send_to(&bytes, to).await {
                    tracing::debug!(%to, error = %e, "udp send failed");
                }
            }
        }
    }
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

async fn tcp_accept(
    listener: TcpListener,
    conns: ConnTable,
    core: mpsc::Sender<Inbound>,
    stats: Arc<TransportStats>,
) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let full = conns
            .lock()
            .map_or(true, |m| m.len() >= MAX_TCP_CONNECTIONS);
        if full {
            tracing::warn!(%peer, "too many TCP connections; refusing");
            continue;
        }
        let id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(256);
        if let Ok(mut m) = conns.lock() {
            m.insert(id, (peer, tx));
        }
        let (conns, core, stats) = (conns.clone(), core.clone(), stats.clone());
        tokio::spawn(async move {
            tcp_conn(stream, peer, id, rx, core, stats).await;
            if let Ok(mut m) = conns.lock() {
                m.remove(&id);
            }
        });
    }
}

async fn tcp_conn(
    mut stream: TcpStream,
    peer: SocketAddr,
    id: ConnId,
    mut out: mpsc::Receiver<Bytes>,
    core: mpsc::Sender<Inbound>,
    stats: Arc<TransportStats>,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.split();
    let mut framer = Framer::new(MAX_MESSAGE);
    let mut buf = vec![0u8; 16 * 1024];
    let source = Source::Tcp { conn: id, peer };
    loop {
        tokio::select! {
            r = tokio::time::timeout(TCP_IDLE, rd.read(&mut buf)) => {
                let n = match r {
                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                    Ok(Ok(n)) => n,
                };
                framer.push(&buf[..n]);
                loop {
                    match framer.decode() {
                        Ok(None) => break,
                        Ok(Some(Framed::Ping)) => {
                            if wr.write_all(b"\r\n").await.is_err() {
                                return;
                            }
                        }
                        Ok(Some(Framed::Pong)) => {}
                        Ok(Some(Framed::Message(m))) => {
                            // A stream applies back-pressure instead of dropping.
                            if core.send(Inbound::Message(m, source.clone())).await.is_err() {
                                return;
                            }
                        }
                        Ok(Some(Framed::Invalid { error, raw })) => {
                            stats.invalid.fetch_add(1, Ordering::Relaxed);
                            let _ = core.send(Inbound::Invalid(error, raw, source.clone())).await;
                        }
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "closing broken TCP stream");
                            stats.invalid.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                }
            }
            o = out.recv() => {
                let Some(bytes) = o else { break };
                if wr.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn udp_and_tcp_share_the_chosen_port() {
        let (udp, tcp, local) = bind_pair("127.0.0.1:0".parse().unwrap()).await.unwrap();
        assert_ne!(local.port(), 0);
        assert_eq!(udp.local_addr().unwrap(), local);
        assert_eq!(tcp.local_addr().unwrap(), local);
    }

    #[tokio::test]
    async fn udp_receive_buffer_is_enlarged_up_to_the_system_cap() {
        let (udp, _tcp, _) = bind_pair("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let got = socket2::SockRef::from(&udp).recv_buffer_size().unwrap();
        let plain = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let default = socket2::SockRef::from(&plain).recv_buffer_size().unwrap();
        // Linux caps the request at net.core.rmem_max (and reports double).
        let Some(max) = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
        else {
            eprintln!("skipped: no /proc/sys/net/core/rmem_max to compare with");
            return;
        };
        assert!(
            got >= UDP_RECV_BUFFER.min(max),
            "{got} < min({UDP_RECV_BUFFER}, {max})"
        );
        if max > default {
            assert!(
                got > default,
                "{got} is no more than a plain socket's {default}"
            );
        } else {
            eprintln!("net.core.rmem_max ({max}) allows no more than the default ({default})");
        }
    }

    #[tokio::test]
    async fn a_named_port_taken_for_tcp_is_an_error_not_another_port() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = taken.local_addr().unwrap();
        // Its UDP twin is usually free, so only the TCP bind fails.
        match bind_pair(port).await {
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse),
            Ok((_, _, local)) => panic!("bound {local} although {port} is taken for TCP"),
        }
    }
}
