//! The narrow core every module is built on: the validated config, the store, the clock,
//! the task tracker and its cancellation token, the metrics and the in-process signals.
//!
//! Nothing here knows a domain module. Each module keeps its own state behind its own
//! handle and gets a [`Core`] (and the handles of the few modules it really needs) when the
//! daemon is composed in `app.rs`.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::signals::Signal;
use crate::store::Store;

/// What every module shares.
#[derive(Debug)]
pub struct CoreInner {
    /// The validated configuration.
    pub cfg: Arc<Config>,
    /// The database.
    pub store: Store,
    /// Domain time and timers.
    pub clock: Clock,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// When the daemon started.
    pub started: Instant,
    /// Cancelled once, when the daemon stops.
    pub cancel: CancellationToken,
    /// Owns every long-lived task.
    pub tracker: TaskTracker,
    /// In-process signals between modules (they carry personal data, so they never leave
    /// the box and are not events).
    pub signals: broadcast::Sender<Signal>,
}

/// A cheap handle on the core.
#[derive(Debug, Clone)]
pub struct Core(Arc<CoreInner>);

impl Deref for Core {
    type Target = CoreInner;
    fn deref(&self) -> &CoreInner {
        &self.0
    }
}

impl Core {
    /// A core over an open store, with a fresh clock, tracker and cancellation token.
    pub fn new(cfg: Config, store: Store) -> Core {
        Core(Arc::new(CoreInner {
            metrics: Metrics::new(store.clone()),
            cfg: Arc::new(cfg),
            store,
            clock: Clock::new(),
            started: Instant::now(),
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
            signals: broadcast::channel(256).0,
        }))
    }

    /// Spawn a long-lived task on the tracker (it must end when [`CoreInner::cancel`] is
    /// cancelled).
    pub fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(task);
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; only SIGINT will stop the daemon");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}
