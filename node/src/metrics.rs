//! Prometheus metrics for `/metrics`: libp2p's own plus registrations,
//! lookups by outcome and lookup latency.

use kadsip_proto::overlay::RecordError;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label: a lookup outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// found, local, not_found, offline, timed_out, no_peers.
    pub outcome: &'static str,
}

/// Label: why a record was refused.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// Short reason.
    pub reason: &'static str,
}

/// Label: a SIP request method and its final status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodCode {
    /// Request method.
    pub method: String,
    /// Final status code.
    pub code: u16,
}

/// Every metric the node exports.
pub struct Metrics {
    registry: Registry,
    /// libp2p's swarm, kad, identify and ping metrics.
    pub libp2p: libp2p::metrics::Metrics,
    /// Local AORs with at least one live binding.
    pub registrations: Gauge,
    /// REGISTER requests answered, by status.
    pub register_requests: Family<MethodCode, Counter>,
    /// Lookups by outcome.
    pub lookups: Family<Outcome, Counter>,
    /// Lookup latency in seconds.
    pub lookup_latency: Histogram,
    /// Proxied requests by method and final status.
    pub routed: Family<MethodCode, Counter>,
    /// INVITE → 2xx setup time through this node, seconds.
    pub call_setup: Histogram,
    /// Own publications finished, by outcome (replicated / partial).
    pub publishes: Family<Outcome, Counter>,
    /// Inbound records stored.
    pub records_stored: Counter,
    /// Records refused on PUT or ignored on GET, by reason.
    pub records_refused: Family<Reason, Counter>,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("kadsip");
        let libp2p = libp2p::metrics::Metrics::new(registry.sub_registry_with_prefix("libp2p"));
        let registrations = Gauge::default();
        registry.register(
            "registrations",
            "Local AORs with a live binding",
            registrations.clone(),
        );
        let register_requests = Family::<MethodCode, Counter>::default();
        registry.register(
            "register_requests",
            "REGISTER requests by final status",
            register_requests.clone(),
        );
        let lookups = Family::<Outcome, Counter>::default();
        registry.register("lookups", "AOR lookups by outcome", lookups.clone());
        let lookup_latency = Histogram::new([
            0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
        ]);
        registry.register(
            "lookup_latency_seconds",
            "AOR lookup latency",
            lookup_latency.clone(),
        );
        let routed = Family::<MethodCode, Counter>::default();
        registry.register(
            "routed_requests",
            "Proxied requests by method and final status",
            routed.clone(),
        );
        let call_setup = Histogram::new([
            0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
        ]);
        registry.register(
            "call_setup_seconds",
            "INVITE to 2xx through this node",
            call_setup.clone(),
        );
        let publishes = Family::<Outcome, Counter>::default();
        registry.register(
            "publishes",
            "Own DHT publications finished, by outcome",
            publishes.clone(),
        );
        let records_stored = Counter::default();
        registry.register(
            "records_stored",
            "Inbound DHT records accepted",
            records_stored.clone(),
        );
        let records_refused = Family::<Reason, Counter>::default();
        registry.register(
            "records_refused",
            "DHT records refused or ignored, by reason",
            records_refused.clone(),
        );
        Metrics {
            registry,
            libp2p,
            registrations,
            register_requests,
            lookups,
            lookup_latency,
            routed,
            call_setup,
            publishes,
            records_stored,
            records_refused,
        }
    }

    /// Counts a refused record.
    pub fn record_refused(&self, e: &RecordError) {
        let reason = match e {
            RecordError::BadSignature(_) => "bad_signature",
            RecordError::OwnerConflict(_) => "owner_conflict",
            RecordError::StaleSeq { .. } => "stale_seq",
            RecordError::ExpiryTooFar => "expiry_too_far",
            RecordError::TooLarge(_) | RecordError::TooMany(_) => "too_large",
            RecordError::WrongKey => "wrong_key",
            _ => "malformed",
        };
        self.records_refused.get_or_create(&Reason { reason }).inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
