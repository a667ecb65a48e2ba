//! The stateful proxy (RFC 3261 §16) on top of the core's transaction table:
//! route by Route headers or by resolving the AOR through the overlay, fork
//! one branch per callee node (or per local contact), pick the best response
//! (§16.7), CANCEL the rest, and answer 404/480/408/503 from the overlay
//! outcome with a `Warning: 399` that says why.

use super::core::{Core, CoreEvent, LookupTrace, MAX_CONTEXTS};
use super::transport::Source;
use crate::lookup::{Outcome as Lookup, Resolved};
use crate::metrics::MethodCode;
use kadsip_proto::header::StdHeader;
use kadsip_proto::routing::{Outcome, best_response};
use kadsip_proto::transaction::{Event, Reliability, State, TxId};
use kadsip_proto::{Aor, Message, Method, Request, Response, StatusCode, Uri};
use libp2p::{Multiaddr, PeerId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;
use tokio::sync::mpsc;

/// One request being proxied.
pub(super) struct ProxyCtx {
    request: Request,
    aor: Option<Aor>,
    branches: Vec<TxId>,
    finals: Vec<(Response, Option<Outcome>)>,
    answered: bool,
    started: Instant,
    peer_addrs: HashMap<TxId, Vec<Multiaddr>>,
    timer_c: Option<Instant>,
    /// Branches already CANCELled (never twice).
    cancelled: Vec<TxId>,
}

impl Core {
    /// True when the request has no Route, or only routes through us.
    pub(super) fn routes_empty_or_ours(&self, req: &Request) -> bool {
        match req.headers.routes() {
            Ok(r) => r.iter().all(|n| self.is_us(n.uri)),
            Err(_) => true,
        }
    }

    fn is_us(&self, uri: &str) -> bool {
        match Uri::parse(uri) {
            Ok(Uri::Sip(u)) => {
                u.param("kadsip") == Some(Some(self.me.as_str()))
                    || (u.host.to_string() == self.local.ip().to_string()
                        && u.port.unwrap_or(5060) == self.local.port())
            }
            _ => false,
        }
    }

    /// Starts proxying a new request whose server transaction is `id`.
    pub(super) fn proxy(&mut self, id: TxId, mut req: Request, src: Source) {
        if self.contexts.len() >= MAX_CONTEXTS {
            self.stats
                .overloaded
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut r = Response::to_request(
                &req,
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&self.tags.next()),
            );
            r.headers.push(StdHeader::RetryAfter, "5");
            let _ = self.table.respond(id, r, Instant::now());
            return;
        }
        // §16.4: remove the Route entries that name us.
        while let Some(first) = first_route(&req) {
            if !self.is_us(&first) {
                break;
            }
            let _ = req.headers.pop_first(StdHeader::Route);
        }
        let ctx = ProxyCtx {
            request: req.clone(),
            aor: None,
            branches: Vec::new(),
            finals: Vec::new(),
            answered: false,
            started: Instant::now(),
            peer_addrs: HashMap::new(),
            timer_c: None,
            cancelled: Vec::new(),
        };
        self.contexts.insert(id, ctx);
        // A remaining Route decides the next hop.
        if let Ok(routes) = req.headers.routes() {
            if let Some(next) = routes.first() {
                let dest = self.dest_for_uri(next.uri);
                match dest {
                    Some(d) => self.fork(id, vec![(req.uri.clone(), d, Vec::new())]),
                    None => self.fail(id, StatusCode::BAD_REQUEST, "unusable Route", None),
                }
                return;
            }
        }
        let Uri::Sip(target) = &req.uri else { return };
        // A Request-URI naming an address (not ours) is a contact: go there.
        let ip_literal = !matches!(target.host, kadsip_proto::uri::Host::Domain(_));
        if ip_literal && !self.is_us(&req.uri.to_string()) {
            match self.dest_for_uri(&req.uri.to_string()) {
                Some(d) => self.fork(id, vec![(req.uri.clone(), d, Vec::new())]),
                None => self.fail(id, StatusCode::BAD_REQUEST, "unusable Request-URI", None),
            }
            return;
        }
        let aor = target.aor();
        if let Some(c) = self.contexts.get_mut(&id) {
            c.aor = Some(aor.clone());
        }
        if matches!(src, Source::Overlay(_)) {
            // Another node forwarded this to us because we serve the AOR:
            // deliver to our own registrations, never back into the overlay.
            let bindings = self.lookup.local(&aor);
            let outcome = if bindings.is_empty() {
                Lookup::Offline
            } else {
                Lookup::Local(bindings)
            };
            let r = Resolved {
                outcome,
                latency: std::time::Duration::ZERO,
                requests: 0,
                cached: false,
            };
            self.on_resolved(id, r);
            return;
        }
        let trace = self
            .cfg
            .trace
            .clone()
            .map(|t| (t, req.headers.call_id().unwrap_or_default().to_string()));
        // Registered here or cached: forward now, in this task.
        if let Some(r) = self.lookup.resolve_now(&aor) {
            report_lookup(trace, &aor, &r);
            self.on_resolved(id, r);
            return;
        }
        let (lookup, events) = (self.lookup.clone(), self.events.clone());
        tokio::spawn(async move {
            let r = lookup.resolve(&aor).await;
            report_lookup(trace, &aor, &r);
            let _ = events.send(CoreEvent::Resolved(id, r)).await;
        });
    }

    /// Where a SIP URI leads: an overlay peer (`kadsip=` parameter) or an address.
    fn dest_for_uri(&self, uri: &str) -> Option<Source> {
        let Ok(Uri::Sip(u)) = Uri::parse(uri) else {
            return None;
        };
        if let Some(Some(p)) = u.param("kadsip") {
            return p.parse::<PeerId>().ok().map(Source::Overlay);
        }
        let port = u.port.unwrap_or(5060);
        let ip: std::net::IpAddr = match &u.host {
            kadsip_proto::uri::Host::V4(a) => (*a).into(),
            kadsip_proto::uri::Host::V6(a) => (*a).into(),
            kadsip_proto::uri::Host::Domain(_) => return None,
        };
        let addr = SocketAddr::new(ip, port);
        if u.transport().is_some_and(|t| t.eq_ignore_ascii_case("tcp")) {
            if let Some(flow) = self.transports.tcp_flow(addr) {
                return Some(flow);
            }
        }
        Some(Source::Udp(addr))
    }

    /// The lookup for a proxied request finished.
    pub(super) fn on_resolved(&mut self, id: TxId, r: Resolved) {
        if !self.contexts.contains_key(&id) || self.table.state(id).is_none() {
            self.contexts.remove(&id);
            return;
        }
        let now = kadsip_node_now();
        match r.outcome {
            Lookup::Local(bindings) => {
                let mut targets = Vec::new();
                for b in bindings {
                    let Ok(uri) = Uri::parse(&b.contact) else {
                        continue;
                    };
                    let dest =
                        self.binding_dest(&b.contact, b.source.as_deref(), b.instance.is_some());
                    if let Some(d) = dest {
                        targets.push((uri, d, Vec::new()));
                    }
                }
                if targets.is_empty() {
                    self.fail_outcome(id, Outcome::Offline);
                } else {
                    self.fork(id, targets);
                }
            }
            Lookup::Found(rec) => {
                let me = self.overlay.peer_id();
                let uri = self.contexts[&id].request.uri.clone();
                let mut targets = Vec::new();
                for e in rec.current(now) {
                    let Ok(peer) = PeerId::from_bytes(&e.entry.node) else {
                        continue;
                    };
                    if peer == me || e.entry.live_contacts(now).next().is_none() {
                        continue;
                    }
                    let addrs = e
                        .entry
                        .addrs
                        .iter()
                        .filter_map(|a| a.parse().ok())
                        .collect();
                    targets.push((uri.clone(), Source::Overlay(peer), addrs));
                }
                if targets.is_empty() {
                    self.fail_outcome(id, Outcome::Offline);
                } else {
                    self.fork(id, targets);
                }
            }
            Lookup::NotFound => self.fail_outcome(id, Outcome::NotFound),
            Lookup::Offline => self.fail_outcome(id, Outcome::Offline),
            Lookup::TimedOut => self.fail_outcome(id, Outcome::LookupTimedOut),
            Lookup::NoPeers => self.fail_outcome(id, Outcome::NoPeers),
        }
    }

    /// Where to reach a registered contact: its TCP connection or outbound
    /// flow when it has one, the address the REGISTER came from when the
    /// Contact is behind NAT (private or unresolvable), else the Contact.
    fn binding_dest(&self, contact: &str, flow: Option<&str>, outbound: bool) -> Option<Source> {
        let by_flow = self.flow_dest(flow);
        let tcp = matches!(by_flow, Some(Source::Tcp { .. }));
        if tcp || outbound {
            if let Some(f) = by_flow {
                return Some(f);
            }
        }
        let by_contact = self.dest_for_uri(contact);
        let flow_ip = flow
            .and_then(|f| f.split_once(':'))
            .and_then(|(_, a)| a.parse::<SocketAddr>().ok())
            .map(|a| a.ip());
        match (by_contact, by_flow) {
            (Some(Source::Udp(c)), Some(f))
                if flow_ip.is_some_and(|ip| ip != c.ip()) && is_private(c.ip()) =>
            {
                Some(f)
            }
            (Some(c), _) => Some(c),
            (None, f) => f,
        }
    }

    fn flow_dest(&self, flow: Option<&str>) -> Option<Source> {
        let flow = flow?;
        let (kind, addr) = flow.split_once(':')?;
        let addr: SocketAddr = addr.parse().ok()?;
        match kind {
            "udp" => Some(Source::Udp(addr)),
            "tcp" => self.transports.tcp_flow(addr),
            _ => None,
        }
    }

    /// Sends one branch per target (§16.6).
    fn fork(&mut self, id: TxId, targets: Vec<(Uri, Source, Vec<Multiaddr>)>) {
        let now = Instant::now();
        let Some(ctx) = self.contexts.get(&id) else {
            return;
        };
        let base = ctx.request.clone();
        let invite = base.method == Method::INVITE;
        let dialog_forming = matches!(
            base.method.as_str(),
            "INVITE" | "SUBSCRIBE" | "REFER" | "NOTIFY"
        );
        let mut started = Vec::new();
        for (uri, dest, addrs) in targets {
            let mut req = base.clone();
            req.uri = uri;
            let mf = match req.headers.max_forwards() {
                Some(Ok(n)) => n.saturating_sub(1),
                _ => 70,
            };
            req.headers.set(StdHeader::MaxForwards, mf.to_string());
            if dialog_forming
                && !req
                    .headers
                    .get(StdHeader::To)
                    .is_some_and(|t| t.contains("tag="))
            {
                req.headers.push_front(
                    StdHeader::RecordRoute,
                    format!("<sip:{};lr;kadsip={}>", self.local, self.me),
                );
            }
            let via = self.our_via(&dest);
            req.headers.push_front(StdHeader::Via, via);
            let rel = if dest.reliable() {
                Reliability::Reliable
            } else {
                Reliability::Unreliable
            };
            match self.table.new_client(req, rel, now) {
                Ok(cid) => {
                    self.dests.insert(cid, dest);
                    self.branch_of.insert(cid, id);
                    started.push((cid, addrs));
                }
                Err(e) => tracing::debug!(error = %e, "cannot start branch"),
            }
        }
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        if started.is_empty() {
            self.fail(
                id,
                StatusCode::SERVICE_UNAVAILABLE,
                "no transaction available",
                Some(5),
            );
            return;
        }
        for (cid, addrs) in started {
            ctx.branches.push(cid);
            ctx.peer_addrs.insert(cid, addrs);
        }
        if invite && ctx.timer_c.is_none() {
            let at = now + self.cfg.timer_c;
            ctx.timer_c = Some(at);
            self.timer_c.insert((at, id));
        }
    }

    /// A Via for a request we send towards `dest`, with a fresh branch and
    /// our PeerId (for loop detection and stateless response routing).
    fn our_via(&mut self, dest: &Source) -> String {
        format!(
            "SIP/2.0/{} {};branch=z9hG4bK-ks{};kadsip={}",
            dest.transport(),
            self.local,
            self.tags.next(),
            self.me
        )
    }

    /// Addresses to dial for an overlay branch.
    pub(super) fn peer_addrs(&self, client: TxId) -> Vec<Multiaddr> {
        self.branch_of
            .get(&client)
            .and_then(|s| self.contexts.get(s))
            .and_then(|c| c.peer_addrs.get(&client).cloned())
            .unwrap_or_default()
    }

    fn fail_outcome(&mut self, id: TxId, outcome: Outcome) {
        if let Some(f) = outcome.failure() {
            self.fail(id, f.status, f.reason, f.retry_after);
        }
    }

    /// Answers a proxied request with a locally generated failure.
    fn fail(&mut self, id: TxId, status: StatusCode, reason: &str, retry_after: Option<u32>) {
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        if ctx.answered {
            return;
        }
        ctx.answered = true;
        let mut r = Response::to_request(&ctx.request, status, Some(&self.tags.next()));
        r.headers
            .push(StdHeader::Warning, format!("399 {} \"{reason}\"", self.me));
        if let Some(s) = retry_after {
            r.headers.push(StdHeader::RetryAfter, s.to_string());
        }
        self.answer(id, r);
    }

    /// Sends a final response upstream and logs the routed request.
    fn answer(&mut self, id: TxId, r: Response) {
        let Some(ctx) = self.contexts.get(&id) else {
            return;
        };
        let method = ctx.request.method.to_string();
        let aor = ctx
            .aor
            .as_ref()
            .map_or_else(|| ctx.request.uri.to_string(), |a| a.to_string());
        let ms = ctx.started.elapsed().as_secs_f64() * 1000.0;
        let code = r.status.as_u16();
        tracing::info!(%method, %aor, code, ms = format!("{ms:.1}"), "routed");
        self.metrics
            .routed
            .get_or_create(&MethodCode {
                method: method.clone(),
                code,
            })
            .inc();
        if method == "INVITE" && (200..300).contains(&code) {
            self.metrics.call_setup.observe(ms / 1000.0);
        }
        if let Err(e) = self.table.respond(id, r, Instant::now()) {
            tracing::debug!(error = %e, "response after the server transaction ended");
        }
        if let Some(ctx) = self.contexts.get_mut(&id) {
            ctx.answered = true;
        }
        self.maybe_drop(id);
    }

    /// A transaction event: client responses go through the proxy logic.
    pub(super) fn on_tx_event(&mut self, id: TxId, ev: Event) {
        match ev {
            Event::Response(resp) => self.on_branch_response(id, resp),
            Event::Timeout => {
                if self.branch_of.contains_key(&id) {
                    self.on_branch_final(id, None, Some(Outcome::NoFinalResponse));
                }
            }
            Event::Terminated => {
                self.sources.remove(&id);
                self.dests.remove(&id);
                if let Some(server) = self.branch_of.remove(&id) {
                    self.maybe_drop(server);
                } else if let Some(ctx) = self.contexts.get(&id) {
                    if ctx.answered || ctx.branches.is_empty() {
                        if let Some(at) = ctx.timer_c {
                            self.timer_c.remove(&(at, id));
                        }
                        self.contexts.remove(&id);
                    }
                }
            }
            Event::Request(_ack) => {} // ACK for our 2xx: the UAC's ACK is routed by Route.
        }
    }

    /// Forgets a request's proxy state once nothing needs it: it is answered
    /// and no branch still waits for a final response (the transactions
    /// that linger for retransmissions — up to 64*T1 — carry on without it:
    /// a 2xx retransmission passes through by its branch), or its server
    /// transaction ended with no branch left.
    fn maybe_drop(&mut self, server: TxId) {
        let Some(ctx) = self.contexts.get(&server) else {
            return;
        };
        let pending = ctx.branches.iter().any(|b| {
            matches!(
                self.table.state(*b),
                Some(State::Calling | State::Trying | State::Proceeding)
            )
        });
        let alive = ctx.branches.iter().any(|b| self.branch_of.contains_key(b));
        let done = (ctx.answered && !pending) || (!alive && self.table.state(server).is_none());
        if done {
            if let Some(ctx) = self.contexts.remove(&server) {
                if let Some(at) = ctx.timer_c {
                    self.timer_c.remove(&(at, server));
                }
            }
        }
    }

    fn on_branch_response(&mut self, client: TxId, mut resp: Response) {
        let Some(&server) = self.branch_of.get(&client) else {
            return;
        };
        let code = resp.status.as_u16();
        self.restore_vias(server, &mut resp);
        if code == 100 {
            return;
        }
        if code < 200 {
            if let Some(ctx) = self.contexts.get_mut(&server) {
                if ctx.answered {
                    return;
                }
                if let Some(at) = ctx.timer_c {
                    // Timer C restarts on each provisional (§16.7 step 2).
                    self.timer_c.remove(&(at, server));
                    let next = Instant::now() + self.cfg.timer_c;
                    ctx.timer_c = Some(next);
                    self.timer_c.insert((next, server));
                }
            }
            let _ = self.table.respond(server, resp, Instant::now());
            return;
        }
        if code < 300 {
            let first = self.contexts.get(&server).is_some_and(|c| !c.answered);
            if let Some(ctx) = self.contexts.get_mut(&server) {
                ctx.answered = true;
            }
            if first {
                // Cancel the other branches before the answer may let the
                // request's state go.
                self.cancel_pending(server, Some(client));
                self.answer(server, resp);
            } else {
                // 2xx retransmissions and other branches' 2xx pass through.
                let _ = self.table.respond(server, resp, Instant::now());
            }
            return;
        }
        self.on_branch_final(client, Some(resp), None);
        self.maybe_drop(server);
    }

    /// Gives a response going upstream exactly the Vias of the request we
    /// received (§16.7 step 3: ours removed). Using the server transaction's
    /// copy also mends downstream UAs that answer a CANCELled INVITE with the
    /// CANCEL's single Via.
    fn restore_vias(&self, server: TxId, resp: &mut Response) {
        let Some(ctx) = self.contexts.get(&server) else {
            let _ = resp.headers.pop_first(StdHeader::Via);
            return;
        };
        resp.headers.remove(StdHeader::Via);
        let vias: Vec<_> = ctx
            .request
            .headers
            .get_all(StdHeader::Via)
            .cloned()
            .collect();
        for v in vias.into_iter().rev() {
            resp.headers.push_front(StdHeader::Via, v);
        }
    }

    fn on_branch_final(&mut self, client: TxId, resp: Option<Response>, synth: Option<Outcome>) {
        let Some(&server) = self.branch_of.get(&client) else {
            return;
        };
        let Some(ctx) = self.contexts.get_mut(&server) else {
            return;
        };
        let r = resp.unwrap_or_else(|| {
            let f = synth.and_then(Outcome::failure);
            Response::new(f.map_or(StatusCode::REQUEST_TIMEOUT, |f| f.status))
        });
        ctx.finals.push((r, synth));
        if ctx.answered {
            return;
        }
        let done = ctx.branches.iter().all(|b| {
            *b == client
                || !matches!(
                    self.table.state(*b),
                    Some(State::Calling | State::Trying | State::Proceeding)
                )
        });
        if !done {
            return;
        }
        let codes: Vec<u16> = ctx.finals.iter().map(|(r, _)| r.status.as_u16()).collect();
        let Some(i) = best_response(&codes) else {
            return;
        };
        let (best, synthesized) = ctx.finals[i].clone();
        match synthesized {
            Some(outcome) => self.fail_outcome(server, outcome),
            None => {
                ctx.answered = true;
                let mut best = best;
                if best.status.as_u16() == 503 {
                    // §16.7 step 6: a 503 from downstream becomes 500.
                    best.status = StatusCode::SERVER_INTERNAL_ERROR;
                    best.reason = StatusCode::SERVER_INTERNAL_ERROR.reason().into();
                }
                self.answer(server, best);
            }
        }
    }

    /// The overlay could not deliver a branch: 480, and forget the cached record.
    pub(super) fn on_branch_unreachable(&mut self, client: TxId) {
        let Some(&server) = self.branch_of.get(&client) else {
            return;
        };
        if let Some(aor) = self.contexts.get(&server).and_then(|c| c.aor.clone()) {
            self.lookup.invalidate(&aor);
        }
        self.on_branch_final(client, None, Some(Outcome::Unreachable));
    }

    /// The overlay link to the branch's node is full: 503 for this branch,
    /// the record stays cached (the node is alive, just busy).
    pub(super) fn on_branch_congested(&mut self, client: TxId) {
        self.on_branch_final(client, None, Some(Outcome::Congested));
    }

    /// Timer C fired: cancel what is pending and answer 408.
    pub(super) fn fire_timer_c(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.timer_c.first() {
            if at > now {
                break;
            }
            self.timer_c.pop_first();
            if let Some(ctx) = self.contexts.get_mut(&id) {
                ctx.timer_c = None;
            }
            self.cancel_pending(id, None);
            self.fail_outcome(id, Outcome::NoFinalResponse);
        }
    }

    /// CANCELs every branch still waiting for a final response (except `keep`).
    fn cancel_pending(&mut self, server: TxId, keep: Option<TxId>) {
        let Some(ctx) = self.contexts.get_mut(&server) else {
            return;
        };
        let branches: Vec<TxId> = ctx
            .branches
            .iter()
            .copied()
            .filter(|b| Some(*b) != keep && !ctx.cancelled.contains(b))
            .collect();
        ctx.cancelled.extend(branches.iter().copied());
        let now = Instant::now();
        for b in branches {
            if !matches!(
                self.table.state(b),
                Some(State::Calling | State::Proceeding)
            ) {
                continue;
            }
            let Some(inv) = self.table.request(b) else {
                continue;
            };
            let mut c = Request::new(Method::CANCEL, inv.uri.clone());
            if let Some(Ok(v)) = inv
                .headers
                .list(StdHeader::Via)
                .next()
                .map(|r| r.map(str::to_owned))
            {
                c.headers.push(StdHeader::Via, v);
            }
            for h in [
                StdHeader::Route,
                StdHeader::From,
                StdHeader::To,
                StdHeader::CallId,
            ] {
                for v in inv.headers.get_all(h) {
                    c.headers.push(h, v.clone());
                }
            }
            let seq = inv.headers.cseq().and_then(Result::ok).map_or(1, |s| s.seq);
            c.headers.push(StdHeader::CSeq, format!("{seq} CANCEL"));
            c.headers.push(StdHeader::MaxForwards, "70");
            c.headers.push(StdHeader::ContentLength, "0");
            let Some(dest) = self.dests.get(&b).cloned() else {
                continue;
            };
            let rel = if dest.reliable() {
                Reliability::Reliable
            } else {
                Reliability::Unreliable
            };
            if let Ok(cid) = self.table.new_client(c, rel, now) {
                self.dests.insert(cid, dest);
            }
        }
    }

    /// An incoming CANCEL (§16.10): 200 for it, then cancel the INVITE's branches.
    pub(super) fn on_cancel(&mut self, id: TxId, cancel: &Request, tag: &str) {
        let now = Instant::now();
        let Some(inv) = self.table.cancel_target(cancel) else {
            let r = Response::to_request(
                cancel,
                StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST,
                Some(tag),
            );
            let _ = self.table.respond(id, r, now);
            return;
        };
        let _ = self.table.respond(
            id,
            Response::to_request(cancel, StatusCode::OK, Some(tag)),
            now,
        );
        let has_branches = self
            .contexts
            .get(&inv)
            .is_some_and(|c| !c.branches.is_empty());
        if has_branches {
            self.cancel_pending(inv, None);
        } else if let Some(ctx) = self.contexts.get_mut(&inv) {
            // Still resolving: nothing downstream to cancel.
            if !ctx.answered {
                ctx.answered = true;
                let r =
                    Response::to_request(&ctx.request, StatusCode::REQUEST_TERMINATED, Some(tag));
                self.answer(inv, r);
            }
        } else {
            let r = self
                .table
                .request(inv)
                .map(|r| Response::to_request(r, StatusCode::REQUEST_TERMINATED, Some(tag)));
            if let Some(r) = r {
                let _ = self.table.respond(inv, r, now);
            }
        }
    }

    /// ACK for a 2xx (no transaction): forwarded statelessly along its Route
    /// or to its Request-URI (§16.11-style, with our Via).
    pub(super) fn forward_ack(&mut self, mut ack: Request) {
        while let Some(first) = first_route(&ack) {
            if !self.is_us(&first) {
                break;
            }
            let _ = ack.headers.pop_first(StdHeader::Route);
        }
        let next = match ack.headers.routes() {
            Ok(r) if !r.is_empty() => r[0].uri.to_owned(),
            _ => ack.uri.to_string(),
        };
        let Some(dest) = self.dest_for_uri(&next) else {
            return;
        };
        let via = self.our_via(&dest);
        ack.headers.push_front(StdHeader::Via, via);
        let mf = match ack.headers.max_forwards() {
            Some(Ok(0)) => return,
            Some(Ok(n)) => n - 1,
            _ => 70,
        };
        ack.headers.set(StdHeader::MaxForwards, mf.to_string());
        self.send(&dest, &Message::Request(ack), None);
    }

    /// A response no transaction knows (e.g. a late 2xx retransmission):
    /// pop our Via and send it to the next one (§16.7 stateless forwarding).
    pub(super) fn forward_stray_response(&mut self, mut resp: Response) {
        let Some(Ok(top)) = resp.headers.top_via() else {
            return;
        };
        if top.params.get("kadsip") != Some(Some(self.me.as_str())) {
            return; // not ours: drop (RFC 4475 bcast and friends)
        }
        let _ = resp.headers.pop_first(StdHeader::Via);
        let Some(Ok(next)) = resp.headers.top_via() else {
            return;
        };
        let dest = if let Some(Some(p)) = next.params.get("kadsip") {
            p.parse::<PeerId>().ok().map(Source::Overlay)
        } else {
            let host = next
                .received()
                .unwrap_or(next.host)
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = next.rport().flatten().unwrap_or(next.port_or_default());
            host.parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| Source::Udp(SocketAddr::new(ip, port)))
        };
        if let Some(d) = dest {
            self.send(&d, &Message::Response(resp), None);
        }
    }
}

/// Tells the simulator (when it listens) how a proxied request's lookup went.
fn report_lookup(trace: Option<(mpsc::Sender<LookupTrace>, String)>, aor: &Aor, r: &Resolved) {
    if let Some((t, call_id)) = trace {
        let _ = t.try_send(LookupTrace {
            call_id,
            aor: aor.to_string(),
            outcome: r.outcome.name(),
            latency: r.latency,
            requests: r.requests,
            cached: r.cached,
        });
    }
}

/// Addresses a Contact behind NAT would carry.
fn is_private(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_link_local()
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// The URI of the topmost Route, if any.
fn first_route(req: &Request) -> Option<String> {
    req.headers.routes().ok()?.first().map(|r| r.uri.to_owned())
}

fn kadsip_node_now() -> u64 {
    crate::storage::records::unix_now()
}
