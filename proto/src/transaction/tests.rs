//! State-machine tests on a simulated clock.

use super::*;
use crate::status::StatusCode;

fn parse_req(s: &str) -> Request {
    match Message::parse(s.as_bytes().to_vec()).unwrap() {
        Message::Request(r) => r,
        _ => unreachable!(),
    }
}

fn request(method: &str, branch: &str) -> Request {
    parse_req(&format!(
        "{method} sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{branch}\r\n\
         Route: <sip:proxy.example.com;lr>\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a\r\n\
         To: <sip:bob@example.com>\r\nCall-ID: call-{branch}\r\nCSeq: 7 {method}\r\nContent-Length: 0\r\n\r\n"
    ))
}

fn response(req: &Request, code: u16) -> Response {
    Response::to_request(req, StatusCode::new(code).unwrap(), Some("b"))
}

/// Advances the clock to `until`, firing timers; returns the offsets (ms
/// from `t0`) at which something was transmitted, and the events.
fn run(table: &mut Transactions, t0: Instant, until: Duration) -> (Vec<u128>, Vec<Event>) {
    let mut sent = Vec::new();
    let mut events = Vec::new();
    let mut drain = |table: &mut Transactions, now: Instant| {
        while table.poll_transmit().is_some() {
            sent.push(now.duration_since(t0).as_millis());
        }
        while let Some((_, e)) = table.poll_event() {
            events.push(e);
        }
    };
    drain(table, t0);
    while let Some(at) = table.poll_timeout() {
        if at > t0 + until {
            break;
        }
        table.handle_timeout(at);
        drain(table, at);
    }
    (sent, events)
}

#[test]
fn invite_client_udp_retransmits_then_times_out() {
    let t0 = Instant::now();
    let mut t = Transactions::new(Config::default(), 16);
    t.new_client(request("INVITE", "a1"), Reliability::Unreliable, t0)
        .unwrap();
    let (sent, events) = run(&mut t, t0, Duration::from_secs(40));
    assert_eq!(sent, [0, 500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(events, [Event::Timeout, Event::Terminated]);
    assert!(t.is_empty());
}

#[test]
fn invite_client_tcp_sends_once_and_timer_b_still_fires() {
    let t0 = Instant::now();
    let mut t = Transactions::new(Config::default(), 16);
    t.new_client(request("INVITE", "a2"), Reliability::Reliable, t0)
        .unwrap();
    let (sent, events) = run(&mut t, t0, Duration::from_secs(40));
    assert_eq!(sent, [0]);
    assert_eq!(events, [Event::Timeout, Event::Terminated]);
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn non_invite_client_timer_e_caps_at_t2_and_f_times_out() {
    let t0 = Instant::now();
    let mut t = Transactions::new(Config::default(), 16);
    t.new_client(request("OPTIONS", "e1"), Reliability::Unreliable, t0)
        .unwrap();
    let (sent, events) = run(&mut t, t0, Duration::from_secs(40));
    assert_eq!(sent[..8], [0, 500, 1500, 3500, 7500, 11500, 15500, 19500]);
    assert_eq!(*sent.last().unwrap(), 31500);
    assert_eq!(events, [Event::Timeout, Event::Terminated]);
}

#[test]
fn non_invite_client_after_provisional_retransmits_every_t2() {
    let t0 = Instant::now();
    let mut t = Transactions::new(Config::default(), 16);
    let req = request("MESSAGE", "e2");
    t.new_client(req.clone(), Reliability::Unreliable, t0)
        .unwrap();
    let _ = t.poll_transmit();
    assert!(matches!(
        t.dispatch(Message::Response(response(&req, 100)), t0),
        Dispatch::Matched(_)
    ));
    let (sent, first) = run(&mut t, t0, Duration::from_secs(13));
    assert!(matches!(first[..], [Event::Response(ref r)] if r.status.as_u16() == 100));
    // E was armed for 0.5 s before the 100; then it keeps T2 = 4 s.
    assert_eq!(sent, [500, 4500, 8500, 12500]);
    let now = t0 + Duration::from_secs(13);
    t.dispatch(Message::Response(response(&req, 200)), now);
    let (_, events) = run(&mut t, now, Duration::from_secs(10));
    assert!(matches!(events[0], Event::Response(ref r) if r.status.as_u16() == 200));
    assert_eq!(events[1], Event::Terminated, "Timer K ends it");
}

#[test]
fn invite_client_acks_non_2xx_and_absorbs_retransmissions() {
    let t0 = Instant::now();
    let mut t = Transactions::new(Config::default(), 16);
    let req = request("INVITE", "c1");
    t.new_client(req.clone(), Reliability::Unreliable, t0)
        .unwrap();
    let _ = t.poll_transmit();
    let busy = response(&req, 486);
    t.dispatch(Message::Response(busy.clone()), t0);
    let (_, ack) = t.poll_transmit().expect("ACK");
    let Message::Request(ack) = ack else {
        panic!("ACK is a request")
    };
    assert_eq!(ack.method, Method::ACK);
    assert_eq!(ack.uri, req.uri);
    assert_eq!(ack.headers.call_id(), req.headers.call_id());
    assert_eq!(ack.headers.cseq().unwrap().unwrap().seq, 7);
    assert_eq!(ack.headers.cseq().unwrap().unwrap().method, Method::ACK);
    assert_eq!(ack.headers.to().unwrap().unwrap().tag(), Some("b"));
    assert_eq!(ack.headers.via().unwrap().len(), 1);
    assert_eq!(
        ack.headers.get(crate::header::StdHeader::Route),
        req.headers.get(crate::header::StdHeader::Route)
    );
    // the retransmitted 486 is answered with the same ACK and not passed up
    t.dispatch(Message::Response(busy), t0 + Duration::from_millis(600));
    assert!(matches!(t.poll_transmit(), Some((_, Message::Request(a))) if a == ack));
    let (_, events) = run(&mut t, t0, Duration::from_secs(40));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Response(_)))
            .count(),
        1
    );
    assert_eq!(events.last(), Some(&Event::Terminated), "Timer D");
}

#[test]
fn rfc6026_client_passes_every_2xx_until_timer_m() {
    let t0 = Instant::now();
    let mut t = Transactions::new(Config::default(), 16);
    let req = request("INVITE", "m1");
    let id = t
        .new_client(req.clone(), Reliability::Unreliable, t0)
        .unwrap();
    let ok = response(&req, 200);
    t.dispatch(Message::Response(ok.clone()), t0);
    assert_eq!(t.state(id), Some(State::Accepted));
    t.dispatch(Message::Response(ok), t0 + Duration::from_secs(1));
    let (sent, events) = run(&mut t, t0, Duration::from_secs(40));
    assert_eq!(
        sent,
        [0],
        "no retransmission and no ACK from the transaction for a 2xx"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Response(_)))
            .count(),
        2
    );
    assert_eq!(events.last(), Some(&Event::Terminated));
}

#[test]
fn rfc6026_server_accepted_passes_ack_up() {
    let t0 = Instant::now();
    let mut t = Transactions::new(Config::default(), 16);
    let req = request("INVITE", "l1");
    let id = t
        .new_server(req.clone(), Reliability::Unreliable, t0)
        .unwrap();
    t.respond(id, response(&req, 200), t0).unwrap();
    assert_eq!(t.state(id), Some(State::Accepted));
    t.respond(id, response(&req, 200), t0 + Duration::from_millis(500))
        .unwrap();
    assert_eq!(
        run(&mut t, t0, Duration::ZERO).0.len(),
        2,
        "the TU's 2xx retransmission is sent"
    );
    // a retransmitted INVITE is absorbed
    assert!(matches!(
        t.dispatch(Message::Request(req.clone()), t0),
        Dispatch::Matched(_)
    ));
    assert!(t.poll_transmit().is_none());
    let mut ack = req.clone();
    ack.method = Method::ACK;
    ack.headers.set(crate::header::StdHeader::CSeq, "7 ACK");
    t.dispatch(Message::Request(ack), t0 + Duration::from_secs(1));
    assert!(matches!(t.poll_event(), Some((_, Event::Request(a))) if a.method == Method::ACK));
    let (_, events) = run(&mut t, t0, Duration::from_secs(40));
    assert_eq!(events, [Event::Terminated], "Timer L");
}

#[test]
fn invite_server_retransmits_final_until_ack_then_timer_i() {
    let t0 = Instant::now();
    let mut t = Transactions::new(Config::default(), 16);
    let req = request("INVITE", "g1");
    let id = t
        .new_server(req.clone(), Reliability::Unreliable, t0)
        .unwrap();
    t.respond(id, response(&req, 486), t0).unwrap();
    let (sent, _) = run(&mut t, t0, Duration::from_millis(4000));
    assert_eq!(sent, [0, 500, 1500, 3500]);
    let mut ack = req.clone();
    ack.method = Method::ACK;
    ack.headers.set(crate::header::StdHeader::CSeq, "7 ACK");
    let at = t0 + Duration::from_millis(4000);
    t.dispatch(Message::Request(ack.clone()), at);
    assert_eq!(t.state(id), Some(State::Confirmed));
    assert!(t.poll_event().is_none(), "ACK absorbed");
    t.dispatch(Message::Request(ack), at);
    let (sent, events) = run(&mut t, at, Duration::from_secs(10));
    assert!(sent.is_empty());
    assert_eq!(events, [Event::Terminated]);
}

#[test]
fn invite_server_without_ack_times_out_with_h() {
    let t0 = Instant::now();
    let mut t = Transactions::new(Config::default(), 16);
    let req = request("INVITE", "h1");
    let id = t
        .new_server(req.clone(), Reliability::Unreliable, t0)
        .unwrap();
    t.respond(id, response(&req, 404), t0).unwrap();
    let (sent, events) = run(&mut t, t0, Duration::from_secs(40));
    assert_eq!(&sent[..6], [0, 500, 1500, 3500, 7500, 11500]);
    assert_eq!(events, [Event::Timeout, Event::Terminated]);
}

#[test]
fn invite_server_sends_100_trying_when_tu_is_slow() {
    let t0 = Instant::now();
    let mut t = Transactions::new(Config::default(), 16);
    let req = request("INVITE", "t1");
    t.new_server(req, Reliability::Unreliable, t0).unwrap();
    let at = t.poll_timeout().unwrap();
    assert_eq!(at - t0, Duration::from_millis(200));
    t.handle_timeout(at);
    assert!(
        matches!(t.poll_transmit(), Some((_, Message::Response(r))) if r.status.as_u16() == 100)
    );
}

#[test]
fn non_invite_server_resends_final_on_retransmission_then_timer_j() {
    let t0 = Instant::now();
    let mut t = Transactions::new(Config::default(), 16);
    let req = request("REGISTER", "j1");
    let id = t
        .new_server(req.clone(), Reliability::Unreliable, t0)
        .unwrap();
    assert!(matches!(
        t.dispatch(Message::Request(req.clone()), t0),
        Dispatch::Matched(_)
    ));
    assert!(t.poll_transmit().is_none(), "nothing to resend in Trying");
    t.respond(id, response(&req, 200), t0).unwrap();
    let _ = t.poll_transmit();
    t.dispatch(Message::Request(req), t0 + Duration::from_secs(1));
    assert!(
        matches!(t.poll_transmit(), Some((_, Message::Response(r))) if r.status.as_u16() == 200)
    );
    let (_, events) = run(&mut t, t0, Duration::from_secs(40));
    assert_eq!(events, [Event::Terminated]);
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn completed_udp_non_invite_servers_leave_the_working_cap() {
    let t0 = Instant::now();
    let mut t = Transactions::new(Config::default(), 2);
    // Ten REGISTERs answered one after another through a table of 2 working
    // slots: each leaves the cap once answered, yet still absorbs its
    // retransmissions until Timer J.
    let mut reqs = Vec::new();
    for i in 0..10 {
        let now = t0 + Duration::from_millis(i);
        let req = request("REGISTER", &format!("k{i}"));
        let id = t
            .new_server(req.clone(), Reliability::Unreliable, now)
            .unwrap();
        t.respond(id, response(&req, 200), now).unwrap();
        assert!(t.poll_transmit().is_some());
        assert_eq!(t.working(), 0);
        assert_eq!(t.state(id), Some(State::Completed));
        assert_eq!(t.request(id), None, "the request is not kept");
        reqs.push((id, req));
    }
    // The absorbing bound is 4 × cap = 8: the two oldest ended early.
    assert_eq!(t.len(), 8);
    let ended: Vec<TxId> = std::iter::from_fn(|| t.poll_event())
        .map(|(id, e)| {
            assert_eq!(e, Event::Terminated);
            id
        })
        .collect();
    assert_eq!(ended, [reqs[0].0, reqs[1].0]);
    // A retransmission of a live one gets the same 200 again.
    let (id, req) = reqs[5].clone();
    let later = t0 + Duration::from_secs(5);
    assert_eq!(
        t.dispatch(Message::Request(req.clone()), later),
        Dispatch::Matched(id)
    );
    match t.poll_transmit() {
        Some((got, Message::Response(r))) => assert_eq!((got, r.status.as_u16()), (id, 200)),
        other => panic!("expected the 200 again, got {other:?}"),
    }
    assert_eq!(
        t.new_server(req, Reliability::Unreliable, later),
        Err(TransactionError::Duplicate)
    );
    // Timer J (64·T1 = 32 s) ends the rest, in order.
    assert_eq!(
        t.poll_timeout(),
        Some(t0 + Duration::from_millis(2) + Duration::from_secs(32))
    );
    let (_, events) = run(&mut t, later, Duration::from_secs(40));
    assert_eq!(events, vec![Event::Terminated; 8]);
    assert!(t.is_empty());
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn accepted_invites_leave_the_working_cap_hollowed_and_bounded() {
    let t0 = Instant::now();
    // 2 working slots; Accepted INVITEs (server and client) may number 4 × 2.
    let mut t = Transactions::new(Config::default(), 2);
    let mut servers = Vec::new();
    for i in 0..5 {
        let now = t0 + Duration::from_millis(i);
        let req = request("INVITE", &format!("s{i}"));
        let id = t
            .new_server(req.clone(), Reliability::Unreliable, now)
            .unwrap();
        t.respond(id, response(&req, 200), now).unwrap();
        assert_eq!(t.state(id), Some(State::Accepted));
        assert_eq!(t.working(), 0, "an Accepted INVITE is outside the cap");
        let kept = t.request(id).unwrap();
        assert!(kept.headers.is_empty() && kept.method == Method::INVITE);
        servers.push((id, req));
    }
    let mut clients = Vec::new();
    for i in 0..4 {
        let now = t0 + Duration::from_millis(10 + i);
        let req = request("INVITE", &format!("c{i}"));
        let id = t
            .new_client(req.clone(), Reliability::Reliable, now)
            .unwrap();
        t.dispatch(Message::Response(response(&req, 200)), now);
        assert_eq!(t.state(id), Some(State::Accepted));
        clients.push((id, req));
    }
    // Two working transactions still fit beside the nine Accepted ones ...
    let w1 = t
        .new_server(request("OPTIONS", "w1"), Reliability::Reliable, t0)
        .unwrap();
    t.new_client(request("OPTIONS", "w2"), Reliability::Reliable, t0)
        .unwrap();
    assert!(matches!(
        t.new_server(request("OPTIONS", "w3"), Reliability::Reliable, t0),
        Err(TransactionError::Full(2))
    ));
    // ... and past 4 × 2 Accepted the oldest ended early, in order.
    while t.poll_transmit().is_some() {}
    let ended: Vec<TxId> = std::iter::from_fn(|| t.poll_event())
        .filter(|(_, e)| *e == Event::Terminated)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ended, [servers[0].0]);
    assert_eq!(t.state(servers[0].0), None);
    // The hollowed ones still do their job: a server passes the TU's 2xx
    // retransmission and the ACK, a client passes a retransmitted 2xx.
    let (sid, sreq) = servers[1].clone();
    t.respond(sid, response(&sreq, 200), t0 + Duration::from_secs(1))
        .unwrap();
    assert!(matches!(t.poll_transmit(), Some((id, Message::Response(_))) if id == sid));
    let mut ack = sreq.clone();
    ack.method = Method::ACK;
    ack.headers.set(crate::header::StdHeader::CSeq, "7 ACK");
    t.dispatch(Message::Request(ack), t0 + Duration::from_secs(1));
    assert!(matches!(t.poll_event(), Some((id, Event::Request(_))) if id == sid));
    let (cid, creq) = clients[3].clone();
    t.dispatch(
        Message::Response(response(&creq, 200)),
        t0 + Duration::from_secs(2),
    );
    assert!(matches!(t.poll_event(), Some((id, Event::Response(_))) if id == cid));
    // Timers L and M end the rest; the working OPTIONS server goes too.
    t.respond(w1, response(&request("OPTIONS", "w1"), 200), t0)
        .unwrap();
    let (_, events) = run(&mut t, t0 + Duration::from_secs(2), Duration::from_secs(60));
    assert_eq!(
        events.iter().filter(|e| **e == Event::Terminated).count(),
        10
    );
    assert_eq!(t.working(), 0);
    assert!(t.is_empty());
}

#[test]
fn reliable_server_terminates_at_once() {
    let t0 = Instant::now();
    let mut t = Transactions::new(Config::default(), 16);
    let req = request("REGISTER", "j2");
    let id = t
        .new_server(req.clone(), Reliability::Reliable, t0)
        .unwrap();
    t.respond(id, response(&req, 200), t0).unwrap();
    assert_eq!(t.poll_timeout(), Some(t0), "Timer J is zero on TCP");
    t.handle_timeout(t0);
    assert!(t.is_empty());
}

#[test]
fn cancel_finds_its_invite_and_capacity_is_bounded() {
    let t0 = Instant::now();
    let mut t = Transactions::new(Config::default(), 2);
    let inv = request("INVITE", "x1");
    let id = t
        .new_server(inv.clone(), Reliability::Unreliable, t0)
        .unwrap();
    let mut cancel = inv.clone();
    cancel.method = Method::CANCEL;
    cancel
        .headers
        .set(crate::header::StdHeader::CSeq, "7 CANCEL");
    assert_eq!(t.cancel_target(&cancel), Some(id));
    assert!(matches!(
        t.dispatch(Message::Request(cancel.clone()), t0),
        Dispatch::NewRequest(_)
    ));
    t.new_server(cancel, Reliability::Unreliable, t0).unwrap();
    assert_eq!(
        t.new_server(request("OPTIONS", "x2"), Reliability::Unreliable, t0),
        Err(TransactionError::Full(2))
    );
    assert_eq!(
        t.new_server(inv, Reliability::Unreliable, t0),
        Err(TransactionError::Duplicate)
    );
}

#[test]
fn responses_match_client_by_branch_and_method() {
    let t0 = Instant::now();
    let mut t = Transactions::new(Config::default(), 16);
    let req = request("INVITE", "r1");
    let id = t
        .new_client(req.clone(), Reliability::Reliable, t0)
        .unwrap();
    assert_eq!(
        t.dispatch(Message::Response(response(&req, 180)), t0),
        Dispatch::Matched(id)
    );
    let other = request("INVITE", "r2");
    assert!(matches!(
        t.dispatch(Message::Response(response(&other, 180)), t0),
        Dispatch::Stray(_)
    ));
    // same branch, different CSeq method (a CANCEL's response) does not match the INVITE
    let mut c = req.clone();
    c.method = Method::CANCEL;
    c.headers.set(crate::header::StdHeader::CSeq, "7 CANCEL");
    assert!(matches!(
        t.dispatch(Message::Response(response(&c, 200)), t0),
        Dispatch::Stray(_)
    ));
}
