//! The narrow core every module is built on: the validated config, the store, the clock,
//! the active model files, the task tracker and its cancellation token, the metrics and the in-process signals.
//!
//! Nothing here knows a domain module. Each module keeps its own state behind its own
//! handle and gets a [`Core`] (and the handles of the few modules it really needs) when the
//! daemon is composed in `app.rs`.

use std::ops::Deref;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::models::ModelSet;
use crate::signals::Signal;
use crate::store::Store;

/// What every module shares.
#[derive(Debug)]
pub struct CoreInner {
    /// The validated configuration the daemon started with.
    pub cfg: Arc<Config>,
    /// The configuration as head office last changed it live (`config.update`); the code
    /// that applies a key live reads [`Core::config`], everything else `cfg`.
    live: RwLock<Arc<Config>>,
    /// Cancelled when a config change needs a restart: the daemon drains and exits for
    /// systemd to start it again.
    pub restart: CancellationToken,
    /// The database.
    pub store: Store,
    /// Domain time and timers.
    pub clock: Clock,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Which file each model is loaded from (the shipped ones, or head office's
    /// replacements); inference engines reload between two inferences when it changes.
    pub models: ModelSet,
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
    /// A core over an open store, with a clock starting at the wall time, a fresh tracker
    /// and cancellation token.
    pub fn new(cfg: Config, store: Store) -> Core {
        Core::with_clock(cfg, store, Clock::new())
    }

    /// Like [`Core::new`], with the given clock (a test pins the wall time it starts at).
    pub fn with_clock(cfg: Config, store: Store, clock: Clock) -> Core {
        Core(Arc::new(CoreInner {
            metrics: Metrics::new(store.clone()),
            models: ModelSet::shipped(&cfg.models.dir),
            live: RwLock::new(Arc::new(cfg.clone())),
            cfg: Arc::new(cfg),
            restart: CancellationToken::new(),
            store,
            clock,
            started: Instant::now(),
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
            signals: broadcast::channel(256).0,
        }))
    }

    /// The configuration now: the start-up one with the keys head office changed live.
    pub fn config(&self) -> Arc<Config> {
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Apply a validated configuration live (only keys that allow it differ from `cfg`).
    pub fn set_config(&self, cfg: Config) {
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(cfg);
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
