//! `/metrics`: Prometheus text, from real counters of the HTTP layer and the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use crate::store::Store;

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method.
    pub method: String,
    /// Status class, e.g. `2xx`.
    pub status: String,
}

/// The daemon's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by method and status class.
    pub requests: Family<RequestLabels, Counter>,
    /// Failed logins.
    pub login_failures: Counter,
    /// Logins answered 503 because every password check slot was busy.
    pub login_busy: Counter,
    /// Open HTTP connections.
    pub http_connections: Gauge,
    /// Connections closed at once because a connection cap was reached.
    pub http_connections_refused: Counter,
    /// Connections closed because they sent no request, or no TLS handshake, in time.
    pub http_connections_timed_out: Counter,
    /// Open SSE streams.
    pub sse_clients: Gauge,
    /// Connections made to head office's broker (a config change is healthy only once the
    /// link came back).
    pub mqtt_connects: Counter,
    /// 1 while the head-office link is up.
    pub mqtt_up: Gauge,
    /// The ceiling of the head-office link's reconnection back-off, in milliseconds.
    pub mqtt_backoff_ms: Gauge,
    /// Days until the data disk reaches `min_free` at the last day's growth (-1: not
    /// growing, or not measured yet).
    pub storage_headroom_days: Gauge,
    /// Outbox depth, refreshed on each scrape.
    outbox_depth: Arc<AtomicI64>,
}

#[derive(Debug)]
struct StoreCollector {
    store: Store,
    started: std::time::Instant,
    outbox_depth: Arc<AtomicI64>,
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.store.stats();
        let counters = [
            (
                "branchd_db_commits",
                "committed writes",
                s.commits.load(Ordering::Relaxed),
            ),
            (
                "branchd_db_rollbacks",
                "writes rolled back",
                s.rollbacks.load(Ordering::Relaxed),
            ),
            (
                "branchd_db_transactions",
                "committed database transactions (writes queued together share one)",
                s.transactions.load(Ordering::Relaxed),
            ),
            (
                "branchd_events_committed",
                "events committed to the outbox",
                s.events.load(Ordering::Relaxed),
            ),
            (
                "branchd_db_commit_microseconds",
                "time spent in committed write transactions",
                s.commit_micros.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(m)?;
        }
        let last_seq = *self.store.committed().borrow();
        let gauges = [
            (
                "branchd_event_seq",
                "seq of the last committed event",
                last_seq as i64,
            ),
            (
                "branchd_outbox_depth",
                "events not yet acknowledged by head office",
                self.outbox_depth.load(Ordering::Relaxed),
            ),
            (
                "branchd_uptime_seconds",
                "seconds since the daemon started",
                self.started.elapsed().as_secs() as i64,
            ),
        ];
        for (name, help, value) in gauges {
            let m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(value).encode(m)?;
        }
        Ok(())
    }
}

impl Metrics {
    /// Register everything.
    pub fn new(store: Store) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "branchd_http_requests",
            "HTTP requests answered",
            requests.clone(),
        );
        let login_failures = Counter::default();
        registry.register(
            "branchd_login_failures",
            "failed logins",
            login_failures.clone(),
        );
        let login_busy = Counter::default();
        registry.register(
            "branchd_login_busy",
            "logins refused because every password check slot was busy",
            login_busy.clone(),
        );
        let http_connections = Gauge::default();
        registry.register(
            "branchd_http_connections",
            "open HTTP connections",
            http_connections.clone(),
        );
        let http_connections_refused = Counter::default();
        registry.register(
            "branchd_http_connections_refused",
            "connections closed at once because a connection cap was reached",
            http_connections_refused.clone(),
        );
        let http_connections_timed_out = Counter::default();
        registry.register(
            "branchd_http_connections_timed_out",
            "connections closed for sending no request or TLS handshake in time",
            http_connections_timed_out.clone(),
        );
        let sse_clients = Gauge::default();
        registry.register(
            "branchd_sse_clients",
            "open event streams",
            sse_clients.clone(),
        );
        let mqtt_connects = Counter::default();
        registry.register(
            "branchd_mqtt_connects",
            "connections made to head office's broker",
            mqtt_connects.clone(),
        );
        let mqtt_up = Gauge::default();
        registry.register(
            "branchd_mqtt_up",
            "1 while the head-office link is up",
            mqtt_up.clone(),
        );
        let mqtt_backoff_ms = Gauge::default();
        registry.register(
            "branchd_mqtt_backoff_ms",
            "ceiling of the head-office link's reconnection back-off",
            mqtt_backoff_ms.clone(),
        );
        let storage_headroom_days = Gauge::default();
        storage_headroom_days.set(-1);
        registry.register(
            "branchd_storage_headroom_days",
            "days until the data disk reaches min_free at the last day's growth (-1: not growing or not measured yet)",
            storage_headroom_days.clone(),
        );
        let outbox_depth = Arc::new(AtomicI64::new(0));
        registry.register_collector(Box::new(StoreCollector {
            store,
            started: std::time::Instant::now(),
            outbox_depth: outbox_depth.clone(),
        }));
        Metrics {
            registry,
            requests,
            login_failures,
            login_busy,
            http_connections,
            http_connections_refused,
            http_connections_timed_out,
            sse_clients,
            mqtt_connects,
            mqtt_up,
            mqtt_backoff_ms,
            storage_headroom_days,
            outbox_depth,
        }
    }

    /// Count one answered request. Labels come from fixed sets (a client can send any
    /// method name, and every distinct label would be kept for good).
    pub fn count_request(&self, method: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method_label(method).to_string(),
                status: match status {
                    100..=199 => "1xx",
                    200..=299 => "2xx",
                    300..=399 => "3xx",
                    400..=499 => "4xx",
                    500..=599 => "5xx",
                    _ => "other",
                }
                .to_string(),
            })
            .inc();
    }

    /// Set the outbox depth shown on the next scrape.
    pub fn set_outbox_depth(&self, depth: u64) {
        self.outbox_depth.store(depth as i64, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The request counter's method label: the methods of HTTP's own registry that a client
/// may send, and `other` for anything else.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_labels_come_from_a_fixed_set() {
        let cases = [
            ("GET", 200, "GET", "2xx"),
            ("DELETE", 404, "DELETE", "4xx"),
            ("BREW", 405, "other", "4xx"),
            ("get", 200, "other", "2xx"),
            ("POST", 999, "POST", "other"),
        ];
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("m.db"), &[]).unwrap();
        let m = Metrics::new(store.clone());
        for (method, status, _, _) in cases {
            m.count_request(method, status);
        }
        let text = m.render();
        for (_, _, method, status) in cases {
            let line = format!("method=\"{method}\",status=\"{status}\"");
            assert!(text.contains(&line), "{line} missing in {text}");
        }
        assert!(
            !text.contains("BREW") && !text.contains("\"get\""),
            "{text}"
        );
        store.close();
    }
}
