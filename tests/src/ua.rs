//! A small UDP SIP user agent for tests: sends requests, answers digest
//! challenges, and waits for the final response (with retransmission).

use kadsip_proto::digest::{Challenge, Credentials};
use kadsip_proto::header::StdHeader;
use kadsip_proto::{Message, Response};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::net::UdpSocket;

static SEQ: AtomicU32 = AtomicU32::new(1);

/// A test UA bound to an ephemeral loopback port.
pub struct Ua {
    sock: UdpSocket,
    /// Its local address.
    pub local: SocketAddr,
    /// The node it talks to.
    pub node: SocketAddr,
}

impl Ua {
    /// Binds a UA that talks to `node`.
    pub async fn new(node: SocketAddr) -> Ua {
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind ua");
        let local = sock.local_addr().expect("addr");
        Ua { sock, local, node }
    }

    fn next() -> u32 {
        SEQ.fetch_add(1, Ordering::Relaxed)
    }

    /// A REGISTER for `aor` (e.g. `sip:bob@campus.example`) with `expires`.
    pub fn register(
        &self,
        aor: &str,
        call_id: &str,
        cseq: u32,
        expires: u32,
        auth: Option<&str>,
    ) -> String {
        let n = Self::next();
        let host = aor.rsplit_once('@').map_or("kadsip", |(_, h)| h);
        let user = aor
            .trim_start_matches("sip:")
            .split('@')
            .next()
            .unwrap_or("u");
        let mut s = format!(
            "REGISTER sip:{host} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bKreg{n};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <{aor}>;tag=t{n}\r\n\
             To: <{aor}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@{local}>;expires={expires}\r\n",
            local = self.local
        );
        if let Some(a) = auth {
            s.push_str(&format!("Authorization: {a}\r\n"));
        }
        s.push_str("Content-Length: 0\r\n\r\n");
        s
    }

    /// Sends raw text and waits for a final response (retransmitting as UDP does).
    pub async fn request(&self, text: &str) -> Response {
        let mut wait = Duration::from_millis(500);
        for _ in 0..7 {
            self.sock
                .send_to(text.as_bytes(), self.node)
                .await
                .expect("send");
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let mut buf = vec![0u8; 65536];
                match tokio::time::timeout_at(deadline, self.sock.recv_from(&mut buf)).await {
                    Ok(Ok((n, _))) => {
                        if let Ok(Message::Response(r)) = Message::parse(buf[..n].to_vec()) {
                            if r.status.is_final() {
                                return r;
                            }
                        }
                    }
                    _ => break,
                }
            }
            wait = (wait * 2).min(Duration::from_secs(4));
        }
        panic!("no final response from {}", self.node);
    }

    /// REGISTERs, answering one digest challenge with `user`/`password` when given.
    pub async fn register_auth(
        &self,
        aor: &str,
        expires: u32,
        creds: Option<(&str, &str)>,
    ) -> Response {
        let call_id = format!("reg-{}-{}", self.local.port(), Self::next());
        let r = self
            .request(&self.register(aor, &call_id, 1, expires, None))
            .await;
        let Some((user, password)) = creds else {
            return r;
        };
        if r.status.as_u16() != 401 {
            return r;
        }
        let ch: Challenge = r
            .headers
            .get(StdHeader::WwwAuthenticate)
            .expect("challenge")
            .parse()
            .expect("challenge parses");
        let host = aor.rsplit_once('@').map_or("kadsip", |(_, h)| h);
        let c = Credentials::answer(
            &ch,
            "REGISTER",
            &format!("sip:{host}"),
            user,
            password,
            "0a4f113b",
            1,
        )
        .expect("answer");
        self.request(&self.register(aor, &call_id, 2, expires, Some(&c.to_string())))
            .await
    }
}

/// Reads the next SIP message within `wait`.
impl Ua {
    /// Sends raw text to `to`.
    pub async fn send_to(&self, text: &str, to: SocketAddr) {
        self.sock.send_to(text.as_bytes(), to).await.expect("send");
    }

    /// The next message (request or response) within `wait`.
    pub async fn recv(&self, wait: Duration) -> Option<(Message, SocketAddr)> {
        let (bytes, from) = self.recv_bytes(wait).await?;
        Message::parse(bytes).ok().map(|m| (m, from))
    }

    /// The next datagram within `wait`, unparsed.
    pub async fn recv_bytes(&self, wait: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        let mut buf = vec![0u8; 65536];
        let (n, from) = tokio::time::timeout(wait, self.sock.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        buf.truncate(n);
        Some((buf, from))
    }

    /// The next message of dialog `call_id` within `wait`, parsed relaxed
    /// (header values unchecked, as a proxy relays them), skipping others.
    pub async fn expect_relaxed(&self, call_id: &str, wait: Duration) -> Message {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (bytes, _) = self
                .recv_bytes(left)
                .await
                .unwrap_or_else(|| panic!("no message of {call_id} within {wait:?}"));
            if let Ok(m) = Message::parse_relaxed(bytes) {
                if m.headers().call_id() == Some(call_id) {
                    return m;
                }
            }
        }
    }

    /// The next request with `method`, skipping anything else, within `wait`.
    pub async fn expect_request(
        &self,
        method: &str,
        wait: Duration,
    ) -> (kadsip_proto::Request, SocketAddr) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                Some((Message::Request(r), from)) if r.method.as_str() == method => {
                    return (r, from);
                }
                Some(_) => continue,
                None => panic!("no {method} within {wait:?}"),
            }
        }
    }

    /// The next response in call `call_id` whose CSeq method is `method` and
    /// whose status is at least `min`, within `wait`.
    pub async fn expect_response(
        &self,
        call_id: &str,
        method: &str,
        min: u16,
        wait: Duration,
    ) -> Response {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                Some((Message::Response(r), _)) => {
                    let m = r
                        .headers
                        .cseq()
                        .and_then(Result::ok)
                        .map(|c| c.method.to_string());
                    if m.as_deref() == Some(method)
                        && r.status.as_u16() >= min
                        && r.headers.call_id() == Some(call_id)
                    {
                        return r;
                    }
                }
                Some(_) => continue,
                None => panic!("no response ≥ {min} to {method} within {wait:?}"),
            }
        }
    }

    /// A response to `req` as a UAS would send it: Via, From, Call-ID,
    /// CSeq and Record-Route copied, To tagged, our Contact added.
    pub fn reply(&self, req: &kadsip_proto::Request, code: u16, to_tag: &str) -> String {
        let mut r = Response::to_request(
            req,
            kadsip_proto::StatusCode::new(code).unwrap(),
            Some(to_tag),
        );
        for rr in req.headers.get_all(StdHeader::RecordRoute) {
            r.headers.push(StdHeader::RecordRoute, rr.clone());
        }
        if (200..300).contains(&code) || (101..200).contains(&code) {
            r.headers
                .push(StdHeader::Contact, format!("<sip:ua@{}>", self.local));
        }
        String::from_utf8(r.to_bytes()).unwrap()
    }

    /// An out-of-dialog request from this UA to `target` through its node.
    pub fn request_to(
        &self,
        method: &str,
        target: &str,
        call_id: &str,
        cseq: u32,
        extra: &str,
    ) -> String {
        let n = Self::next();
        format!(
            "{method} {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bKua{n};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:caller@campus.example>;tag=c{n}\r\n\
             To: <{target}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:caller@{local}>\r\n\
             {extra}Content-Length: 0\r\n\r\n",
            local = self.local
        )
    }
}

impl Ua {
    /// REGISTERs `aor` (open mode) with an explicit Contact, e.g. a SIPp UAS.
    pub async fn register_contact(&self, aor: &str, contact: &str, expires: u32) -> Response {
        let call_id = format!("regc-{}-{}", self.local.port(), Self::next());
        let text = self
            .register(aor, &call_id, 1, expires, None)
            .lines()
            .map(|l| {
                if l.starts_with("Contact:") {
                    format!("Contact: <{contact}>;expires={expires}")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\r\n");
        self.request(&format!("{}\r\n\r\n", text.trim_end())).await
    }
}
