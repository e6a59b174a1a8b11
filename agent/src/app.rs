//! The daemon's lifecycle: start every part in order, run until told to stop, drain.
//!
//! Every long-lived task is spawned on the [`App`]'s `TaskTracker` and watches its
//! `CancellationToken`; shutdown cancels the token, waits for the tracker with a grace
//! period, and says whether the grace period ran out.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::http;
use crate::http::auth::Throttle;
use crate::http::metrics::Metrics;
use crate::store::Store;

/// Everything the services and handlers share.
#[derive(Debug)]
pub struct AppInner {
    /// The validated configuration.
    pub cfg: Arc<Config>,
    /// The database.
    pub store: Store,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Login throttling state. A std `Mutex` inside: it is held for microseconds and never
    /// across an `.await`.
    pub throttle: Throttle,
    /// When the daemon started.
    pub started: Instant,
    /// Cancelled once, when the daemon stops.
    pub cancel: CancellationToken,
    /// Owns every long-lived task.
    pub tracker: TaskTracker,
    /// In-process signals between modules (never leave the box).
    pub signals: tokio::sync::broadcast::Sender<crate::signals::Signal>,
    /// The lobby queue and the ticket printer.
    pub queue: crate::queue::State,
    /// STMs, the ID card reader, authorisation tasks.
    pub devices: crate::devices::State,
    /// The head-office link.
    pub sync: crate::sync::State,
    /// Head-office orders and their step timers.
    pub orders: crate::orders::State,
    /// The OCR worker pool.
    pub ocr: crate::ocr::State,
    /// VIP recognition: the gallery generation the camera workers follow.
    pub vision: crate::vision::State,
}

/// A cheap handle on the running daemon's shared state.
#[derive(Debug, Clone)]
pub struct App(Arc<AppInner>);

impl Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

/// A started daemon.
#[derive(Debug)]
pub struct Running {
    /// Its shared state.
    pub app: App,
    /// The address the HTTP server is bound to.
    pub addr: SocketAddr,
}

/// Open the database, bind the HTTP port and start every service. The config has been
/// validated by the caller; nothing here is opened before that.
pub async fn start(cfg: Config) -> anyhow::Result<Running> {
    let data_dir = cfg.branch.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data_dir {}", data_dir.display()))?;
    let db_path = cfg.db_path();
    let store = tokio::task::spawn_blocking(move || Store::open(&db_path))
        .await?
        .with_context(|| format!("cannot open the database in {}", data_dir.display()))?;
    let tls = cfg.http.tls.as_ref().map(http::tls_acceptor).transpose()?;
    let listener = TcpListener::bind(cfg.http.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.http.listen))?;
    let addr = listener.local_addr()?;
    let queue = crate::queue::State::new(&cfg)?;
    let devices = crate::devices::State::new(&cfg)?;
    let sync = crate::sync::State::new(&cfg)?;
    let orders = crate::orders::State::new(&cfg)?;
    let ocr = crate::ocr::State::new(&cfg)?;
    let vision = crate::vision::State::new(&cfg)?;
    let app = App(Arc::new(AppInner {
        signals: tokio::sync::broadcast::channel(256).0,
        queue,
        devices,
        sync,
        orders,
        ocr,
        vision,
        throttle: Throttle::new(cfg.http.login_max_failures, cfg.http.login_lockout),
        metrics: Metrics::new(store.clone()),
        cfg: Arc::new(cfg),
        store,
        started: Instant::now(),
        cancel: CancellationToken::new(),
        tracker: TaskTracker::new(),
    }));
    crate::modules::start(&app)?;
    app.tracker.spawn(http::serve(
        listener,
        tls,
        http::router(&app),
        app.cancel.clone(),
    ));
    let scheme = if app.cfg.http.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(%addr, scheme, branch = %app.cfg.branch.id, "branchd started");
    Ok(Running { app, addr })
}

impl Running {
    /// Stop every task and wait up to `grace` for them; then close the database.
    /// Returns false when the grace period ran out.
    pub async fn shutdown(self, grace: Duration) -> bool {
        let app = self.app;
        app.cancel.cancel();
        app.tracker.close();
        let drained = tokio::time::timeout(grace, app.tracker.wait())
            .await
            .is_ok();
        if drained {
            tracing::info!("all tasks finished");
        } else {
            tracing::warn!(
                grace_s = grace.as_secs(),
                "grace period ran out; exiting with tasks still running"
            );
        }
        let store = app.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
        drained
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

/// Tell systemd we are ready, and keep its watchdog fed while the database answers.
pub fn notify_systemd(app: &App) {
    let status = format!("STATUS=serving branch {}", app.cfg.branch.id);
    if let Err(e) = sd_notify::notify(
        false,
        &[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Custom(&status),
        ],
    ) {
        tracing::debug!(error = %e, "sd_notify ready");
    }
    let mut usec = 0u64;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let period = Duration::from_micros(usec) / 2;
    let app2 = app.clone();
    app.tracker.spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = app2.cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            // Only a daemon whose writer still commits deserves a ping: a wedged database
            // gets us restarted by systemd.
            let alive = tokio::time::timeout(
                period,
                app2.store
                    .write(|tx| -> Result<(), crate::store::StoreError> {
                        tx.conn().query_row("SELECT 1", [], |_| Ok(()))?;
                        Ok(())
                    }),
            )
            .await;
            match alive {
                Ok(Ok(())) => {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                }
                _ => tracing::error!("database writer unresponsive; withholding watchdog ping"),
            }
        }
    });
}

/// The production daemon: start, notify systemd, run until SIGTERM/SIGINT, drain.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let grace = cfg.daemon.shutdown_grace;
    let running = start(cfg).await?;
    notify_systemd(&running.app);
    shutdown_signal().await;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    running.shutdown(grace).await;
    Ok(())
}
