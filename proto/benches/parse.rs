//! Parse/serialize throughput of kadsip-proto against rsip and ezk-sip-types
//! on the same bytes, in the same run. `cargo bench -p kadsip-proto --bench parse`
//! prints criterion's figures and then a messages/s table with our ratio to
//! the faster of the two anchors, for the node's parse (`parse_received`:
//! in requests the values a proxy or registrar needs before it answers or
//! relays, in responses only framing) and for the strict parse of both,
//! all four measured in interleaved slices so that machine noise cancels.

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, black_box};
use kadsip_proto::Message;
use std::time::{Duration, Instant};

const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, SUBSCRIBE, INFO, UPDATE\r\n\
Supported: replaces, timer\r\n\
User-Agent: Linphone/5.2.0 (belle-sip/5.2.0)\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 232\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com\r\n\
s=Session SDP\r\n\
c=IN IP4 192.0.2.101\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=sendrecv\r\n";

const REGISTER: &[u8] = b"REGISTER sip:registrar.biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Bob <sip:bob@biloxi.example.com>;tag=456248\r\n\
Call-ID: 843817637684230@998sdasdh09\r\n\
CSeq: 1826 REGISTER\r\n\
Contact: <sip:bob@192.0.2.4;transport=udp>;expires=7200;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1\r\n\
Expires: 7200\r\n\
User-Agent: baresip v3.10.1\r\n\
Content-Length: 0\r\n\
\r\n";

const OK: &[u8] = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP server10.biloxi.example.com;branch=z9hG4bKnashds8;received=192.0.2.3\r\n\
Via: SIP/2.0/UDP bigbox3.site3.atlanta.example.com;branch=z9hG4bK77ef4c2312983.1;received=192.0.2.2\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=192.0.2.1\r\n\
To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:bob@192.0.2.4>\r\n\
Record-Route: <sip:server10.biloxi.example.com;lr>, <sip:bigbox3.site3.atlanta.example.com;lr>\r\n\
Content-Length: 0\r\n\
\r\n";

const MESSAGES: [(&str, &[u8]); 3] = [
    ("invite_sdp", INVITE),
    ("register", REGISTER),
    ("200_ok", OK),
];

/// Strict: every known header value checked.
fn kadsip_parse(b: &'static [u8]) -> Message {
    Message::parse(Bytes::from_static(b)).expect("valid")
}

/// What the node does with a message off the wire.
fn kadsip_received(b: &'static [u8]) -> Message {
    Message::parse_received(Bytes::from_static(b)).expect("valid")
}

fn rsip_parse(b: &[u8]) -> rsip::SipMessage {
    rsip::SipMessage::try_from(b).expect("rsip parses")
}

/// ezk-sip-types has no one-call message parser; this is what ezk-sip's
/// transport decoder does: pull lines, parse the start line and every header
/// line into `Headers`, then cut the body by Content-Length.
fn ezk_parse(
    b: &'static [u8],
) -> (
    ezk_sip_types::msg::MessageLine,
    ezk_sip_types::Headers,
    Bytes,
) {
    use ezk_sip_types::msg::{Line, MessageLine, PullParser};
    use ezk_sip_types::parse::Parse;
    let src = Bytes::from_static(b);
    let mut parser = PullParser::new(&src, 0);
    let first = std::str::from_utf8(parser.next().unwrap().unwrap()).unwrap();
    let (_, line) = MessageLine::parse(&src)(first).expect("ezk start line");
    let mut headers = ezk_sip_types::Headers::with_capacity(16);
    for l in parser.by_ref() {
        let l = std::str::from_utf8(l.unwrap()).unwrap();
        let (_, line) = Line::parse(&src, l).expect("ezk header line");
        headers.insert(line.name, line.value);
    }
    let head_end = parser.head_end();
    let len: usize = headers
        .get_raw(&ezk_sip_types::Name::CONTENT_LENGTH)
        .next()
        .map_or(0, |v| v.trim().parse().unwrap());
    (line, headers, src.slice(head_end..head_end + len))
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    for (name, bytes) in MESSAGES {
        g.bench_with_input(BenchmarkId::new("kadsip", name), &bytes, |b, &m| {
            b.iter(|| kadsip_parse(black_box(m)))
        });
        g.bench_with_input(
            BenchmarkId::new("kadsip-received", name),
            &bytes,
            |b, &m| b.iter(|| kadsip_received(black_box(m))),
        );
        g.bench_with_input(BenchmarkId::new("rsip", name), &bytes, |b, &m| {
            b.iter(|| rsip_parse(black_box(m)))
        });
        g.bench_with_input(BenchmarkId::new("ezk", name), &bytes, |b, &m| {
            b.iter(|| ezk_parse(black_box(m)))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("serialize");
    g.throughput(Throughput::Elements(1));
    for (name, bytes) in MESSAGES {
        let ours = kadsip_parse(bytes);
        let theirs = rsip_parse(bytes);
        g.bench_function(BenchmarkId::new("kadsip", name), |b| {
            b.iter(|| black_box(&ours).to_bytes())
        });
        g.bench_function(BenchmarkId::new("rsip", name), |b| {
            b.iter(|| black_box(&theirs).to_string())
        });
    }
    g.finish();
}

/// Messages per second of `f` over about `secs` seconds.
fn rate(secs: f64, f: &mut dyn FnMut()) -> f64 {
    let budget = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..256 {
            f();
        }
        n += 256;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Rates of each parser measured in interleaved 50 ms slices for about
/// `secs` seconds each (so a change of clock speed or a noisy neighbour hits
/// all of them alike), as (median rate of each, median per-round ratio of
/// each kadsip parser to the faster anchor of that round).
fn interleaved(secs: f64, fs: &mut [&mut dyn FnMut(); 4]) -> ([f64; 4], [f64; 2]) {
    for f in fs.iter_mut() {
        for _ in 0..1000 {
            f();
        }
    }
    let rounds = ((secs / 0.05).round() as usize).max(5);
    let mut rates: [Vec<f64>; 4] = Default::default();
    let mut ratios: [Vec<f64>; 2] = Default::default();
    for round in 0..rounds {
        let mut r = [0.0; 4];
        // Rotate the order so no parser always runs right after another.
        for k in 0..4 {
            let i = (k + round) % 4;
            r[i] = rate(0.05, &mut *fs[i]);
            rates[i].push(r[i]);
        }
        let anchor = r[2].max(r[3]);
        ratios[0].push(r[0] / anchor);
        ratios[1].push(r[1] / anchor);
    }
    let [a, b, c, d] = rates;
    let [x, y] = ratios;
    (
        [median(a), median(b), median(c), median(d)],
        [median(x), median(y)],
    )
}

fn summary() {
    let secs = std::env::var("KADSIP_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    println!(
        "\nparse throughput (messages/s, same bytes, same run, {secs} s each in interleaved 50 ms slices;"
    );
    println!("medians of the slices, ratio = median of each round's kadsip / faster anchor)");
    println!(
        "node = Message::parse_received (requests: Via, From/To tags, Call-ID, CSeq, \
         Max-Forwards, Route, Require checked; responses: framing only),"
    );
    println!("strict = Message::parse (every known header value checked)");
    println!(
        "{:<12} {:>12} {:>12} {:>12} {:>12} {:>8} {:>8}",
        "message", "node", "strict", "rsip", "ezk", "node/x", "strict/x"
    );
    let (mut worst, mut worst_strict) = (f64::INFINITY, f64::INFINITY);
    for (name, bytes) in MESSAGES {
        let mut node = || drop(black_box(kadsip_received(black_box(bytes))));
        let mut strict = || drop(black_box(kadsip_parse(black_box(bytes))));
        let mut rs = || drop(black_box(rsip_parse(black_box(bytes))));
        let mut ez = || drop(black_box(ezk_parse(black_box(bytes))));
        let ([node, strict, r, e], [ratio, ratio_strict]) =
            interleaved(secs, &mut [&mut node, &mut strict, &mut rs, &mut ez]);
        worst = worst.min(ratio);
        worst_strict = worst_strict.min(ratio_strict);
        println!(
            "{name:<12} {node:>12.0} {strict:>12.0} {r:>12.0} {e:>12.0} {ratio:>7.2}x {ratio_strict:>7.2}x"
        );
    }
    println!(
        "kadsip / faster anchor, worst message: node {worst:.2}x, strict {worst_strict:.2}x (goal: 3x)"
    );
    let invite = kadsip_parse(INVITE);
    let ser = rate(secs, &mut || drop(black_box(&invite).to_bytes()));
    println!("serialize invite_sdp: {ser:.0} messages/s");
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    bench(&mut c);
    c.final_summary();
    summary();
}
