//! `/kadsip/sip/1.0.0`: SIP messages between nodes over Noise-secured libp2p
//! streams. Each message (request or response, independently) is one
//! length-prefixed frame answered by a one-byte acknowledgement, so the link
//! is reliable and nothing is retransmitted across it. Frames are bounded.

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;
use std::io;

/// The protocol name.
pub const SIP_PROTOCOL: StreamProtocol = StreamProtocol::new("/kadsip/sip/1.0.0");
/// Largest SIP message carried.
pub const MAX_SIP_FRAME: usize = 64 * 1024;

/// Length-prefixed SIP frames, acknowledged with one byte.
#[derive(Debug, Clone, Default)]
pub struct SipCodec;

impl request_response::Codec for SipCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = ();

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        let mut len = [0u8; 4];
        io.read_exact(&mut len).await?;
        let n = u32::from_be_bytes(len) as usize;
        if n > MAX_SIP_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "SIP frame too large",
            ));
        }
        let mut buf = vec![0u8; n];
        io.read_exact(&mut buf).await?;
        Ok(buf)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<()>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        let mut ack = [0u8; 1];
        io.read_exact(&mut ack).await?;
        Ok(())
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        if req.len() > MAX_SIP_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "SIP frame too large",
            ));
        }
        io.write_all(&(req.len() as u32).to_be_bytes()).await?;
        io.write_all(&req).await?;
        io.flush().await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, _: ()) -> io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        io.write_all(&[1]).await?;
        io.flush().await
    }
}
