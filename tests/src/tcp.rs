//! A SIP flow over TCP for tests: reliable, so a burst of requests and their
//! answers can be counted exactly (no UDP drops to excuse).

use kadsip_proto::Message;
use kadsip_proto::framing::{Framed, Framer};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// The reading half: a framer over the socket.
pub struct TcpReader {
    rd: OwnedReadHalf,
    framer: Framer,
    buf: Vec<u8>,
}

impl TcpReader {
    /// The next framed message within `wait`; None on timeout or close.
    pub async fn next(&mut self, wait: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.framer.decode() {
                Ok(Some(Framed::Message(m))) => return Some(m),
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => panic!("invalid SIP on the test flow: {e}"),
            }
            let n = tokio::time::timeout_at(deadline, self.rd.read(&mut self.buf))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.framer.push(&self.buf[..n]);
        }
    }
}

/// Connects to `node`; returns the local address and both halves.
pub async fn connect(node: SocketAddr) -> (SocketAddr, TcpReader, OwnedWriteHalf) {
    let s = tokio::net::TcpStream::connect(node).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let local = s.local_addr().expect("local addr");
    let (rd, wr) = s.into_split();
    let reader = TcpReader {
        rd,
        framer: Framer::default(),
        buf: vec![0u8; 64 * 1024],
    };
    (local, reader, wr)
}

/// Writes `bytes` in full.
pub async fn send(wr: &mut OwnedWriteHalf, bytes: &[u8]) {
    wr.write_all(bytes).await.expect("write");
}
