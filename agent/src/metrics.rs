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
    /// Open SSE streams.
    pub sse_clients: Gauge,
    /// Connections made to head office's broker (a config change is healthy only once the
    /// link came back).
    pub mqtt_connects: Counter,
    /// 1 while the head-office link is up.
    pub mqtt_up: Gauge,
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
                "committed write transactions",
                s.commits.load(Ordering::Relaxed),
            ),
            (
                "branchd_db_rollbacks",
                "rolled-back write transactions",
                s.rollbacks.load(Ordering::Relaxed),
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
            sse_clients,
            mqtt_connects,
            mqtt_up,
            outbox_depth,
        }
    }

    /// Count one answered request.
    pub fn count_request(&self, method: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                status: format!("{}xx", status / 100),
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
