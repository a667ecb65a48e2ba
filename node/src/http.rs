//! HTTP status: `/healthz`, `/status` (JSON), `/metrics` (Prometheus text)
//! and `/lookup?aor=…` (what `kadsip lookup` calls).

use crate::lookup::{Lookup, Outcome};
use crate::metrics::Metrics;
use crate::overlay::Overlay;
use crate::storage::{Storage, records::unix_now};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kadsip_proto::Aor;
use serde::Deserialize;
use serde_json::{Value, json};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// What the handlers read.
pub struct HttpState {
    /// Overlay handle.
    pub overlay: Overlay,
    /// Storage.
    pub storage: Storage,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Resolver.
    pub lookup: Arc<Lookup>,
    /// Gauges read on each /status (open transactions, TCP connections…).
    pub extra: Box<dyn Fn() -> Value + Send + Sync>,
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<HttpState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/lookup", get(lookup))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds the HTTP address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

async fn status(State(s): State<Arc<HttpState>>) -> Response {
    let Ok(o) = s.overlay.status().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "overlay stopped\n").into_response();
    };
    let now = unix_now();
    let mut regs = Vec::new();
    for item in s.storage.bindings.all() {
        let Ok((aor, state)) = item else { continue };
        let contacts: Vec<Value> = state
            .bindings
            .iter()
            .filter(|b| b.expires > now)
            .map(|b| json!({"uri": b.contact, "q": f64::from(b.q) / 1000.0, "expires_in": b.expires - now, "source": b.source}))
            .collect();
        if !contacts.is_empty() {
            regs.push(json!({"aor": aor, "contacts": contacts, "seq": state.seq}));
        }
    }
    Json(json!({
        "peer_id": o.peer_id,
        "listen_addrs": o.listen_addrs,
        "peers": o.peers,
        "routing_table": o.routing_table,
        "records_held": o.records_held,
        "registrations": regs,
        "users": s.storage.users.len(),
        "node": (s.extra)(),
    }))
    .into_response()
}

async fn metrics(State(s): State<Arc<HttpState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

#[derive(Deserialize)]
struct LookupQuery {
    aor: String,
}

async fn lookup(State(s): State<Arc<HttpState>>, Query(q): Query<LookupQuery>) -> Response {
    let aor = match Aor::parse(&q.aor) {
        Ok(a) => a,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("invalid AOR {:?}: {e}", q.aor)})),
            )
                .into_response();
        }
    };
    let r = s.lookup.resolve(&aor).await;
    Json(outcome_json(
        &aor,
        &r.outcome,
        r.latency.as_secs_f64() * 1000.0,
        r.requests,
        r.cached,
    ))
    .into_response()
}

/// The JSON form of a lookup outcome.
pub fn outcome_json(
    aor: &Aor,
    outcome: &Outcome,
    latency_ms: f64,
    requests: u32,
    cached: bool,
) -> Value {
    let now = unix_now();
    let mut contacts = Vec::new();
    let mut nodes = Vec::new();
    match outcome {
        Outcome::Local(bs) => {
            for b in bs {
                contacts.push(json!({"uri": b.contact, "q": f64::from(b.q) / 1000.0, "expires_in": b.expires.saturating_sub(now), "node": "local"}));
            }
        }
        Outcome::Found(rec) => {
            for e in rec.current(now) {
                let node = libp2p::PeerId::from_bytes(&e.entry.node)
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                for c in e.entry.live_contacts(now) {
                    contacts.push(json!({"uri": c.uri, "q": f64::from(c.q) / 1000.0, "expires_in": c.expires - now, "node": node}));
                }
                nodes.push(json!({"peer_id": node, "addrs": e.entry.addrs, "seq": e.entry.seq, "expires_in": e.entry.expires.saturating_sub(now)}));
            }
        }
        _ => {}
    }
    json!({
        "aor": aor.as_str(),
        "outcome": outcome.name(),
        "contacts": contacts,
        "nodes": nodes,
        "latency_ms": latency_ms,
        "dht_requests": requests,
        "cached": cached,
    })
}
