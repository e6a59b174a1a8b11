//! The daemon's lifecycle: start every part in order, run until told to stop, drain.
//!
//! This is where the daemon is composed: the store with every module's schema, the
//! [`Core`], the modules ([`Modules`]), the router over their routes. Nothing below imports
//! this file.
//!
//! Every long-lived task is spawned on the core's `TaskTracker` and watches its
//! `CancellationToken`; shutdown cancels the token, waits for the tracker with a grace
//! period, and says whether the grace period ran out.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::core::Core;
use crate::http::auth::Auth;
use crate::http::{self, RouteSpec, Router};
use crate::modules::Modules;
use crate::store::{Store, StoreError};

/// Open (creating and migrating if needed) the daemon's database with every module's
/// schema.
pub fn open_store(path: &Path) -> Result<Store, StoreError> {
    Store::open(path, crate::modules::SCHEMAS)
}

/// A started daemon.
#[derive(Debug)]
pub struct Running {
    /// The core every module shares.
    pub core: Core,
    /// The modules' handles.
    pub modules: Modules,
    /// The address the HTTP server is bound to.
    pub addr: SocketAddr,
    router: Arc<Router>,
}

/// Open the database, bind the HTTP port and start every service. The config has been
/// validated by the caller; nothing here is opened before that.
pub async fn start(cfg: Config) -> anyhow::Result<Running> {
    let data_dir = cfg.branch.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data_dir {}", data_dir.display()))?;
    let db_path = cfg.db_path();
    let store = tokio::task::spawn_blocking(move || open_store(&db_path))
        .await?
        .with_context(|| format!("cannot open the database in {}", data_dir.display()))?;
    let tls = cfg.http.tls.as_ref().map(http::tls_acceptor).transpose()?;
    let listener = TcpListener::bind(cfg.http.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.http.listen))?;
    let addr = listener.local_addr()?;
    let core = Core::new(cfg, store);
    // the model files head office replaced are in use before any engine can load
    crate::updates::restore_models(&core).await;
    let modules = Modules::new(&core);
    modules.start();
    let auth = Auth::new(&core);
    let router = Arc::new(Router::new(
        &core,
        auth.clone(),
        modules.routes(&core, &auth),
    ));
    core.spawn(http::serve(
        listener,
        tls,
        router.clone().filter(),
        core.cancel.clone(),
    ));
    let scheme = if core.cfg.http.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(%addr, scheme, branch = %core.cfg.branch.id, "branchd started");
    Ok(Running {
        core,
        modules,
        addr,
        router,
    })
}

impl Running {
    /// Every route the daemon answers, as declared.
    pub fn routes(&self) -> Vec<RouteSpec> {
        self.router.specs()
    }

    /// Stop every task and wait up to `grace` for them; then close the database.
    /// Returns false when the grace period ran out.
    pub async fn shutdown(self, grace: Duration) -> bool {
        let core = self.core;
        core.cancel.cancel();
        core.tracker.close();
        let drained = tokio::time::timeout(grace, core.tracker.wait())
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
        let store = core.store.clone();
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
pub fn notify_systemd(core: &Core) {
    let status = format!("STATUS=serving branch {}", core.cfg.branch.id);
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
    let core2 = core.clone();
    core.spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = core2.cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            // Only a daemon whose writer still commits deserves a ping: a wedged database
            // gets us restarted by systemd.
            let alive = tokio::time::timeout(
                period,
                core2
                    .store
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

/// How the daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Told to stop (SIGTERM/SIGINT).
    Stopped,
    /// A config change needs a restart: systemd starts the daemon again.
    Restart,
}

/// Start with a config head office changed and has not confirmed yet, rolling the change
/// back when the daemon cannot start with it, or when it already started once with it
/// without confirming it (a crash loop); any other config starts as it is.
pub async fn start_guarded(cfg: Config) -> anyhow::Result<Running> {
    use crate::updates::config as change;
    let Some(path) = cfg.source.clone() else {
        return start(cfg).await;
    };
    let Some(pending) = change::pending(&path) else {
        return start(cfg).await;
    };
    if pending.starts >= 1 {
        let prev = change::roll_back(
            &path,
            "the daemon restarted before the change was confirmed",
        )?;
        return start(prev).await;
    }
    change::count_start(&path, pending)
        .with_context(|| format!("cannot update the pending change of {}", path.display()))?;
    match start(cfg).await {
        Ok(r) => Ok(r),
        Err(e) => {
            let reason = format!("the daemon could not start with it: {e:#}");
            tracing::error!(%reason, "rolling the config change back");
            let prev = change::roll_back(&path, &reason)?;
            start(prev).await
        }
    }
}

/// The production daemon: start, notify systemd, run until SIGTERM/SIGINT or until a config
/// change needs a restart, drain.
pub async fn run(cfg: Config) -> anyhow::Result<Ended> {
    let grace = cfg.daemon.shutdown_grace;
    let running = start_guarded(cfg).await?;
    notify_systemd(&running.core);
    let ended = tokio::select! {
        _ = shutdown_signal() => Ended::Stopped,
        _ = running.core.restart.cancelled() => {
            tracing::info!("restarting to apply a config change");
            Ended::Restart
        }
    };
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    running.shutdown(grace).await;
    Ok(ended)
}
