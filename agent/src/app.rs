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

use crate::clock::Clock;
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

/// The data dir takes no writes (mounted read-only, full, or not ours): the daemon
/// refuses to start rather than serve a database it cannot change (`branchd run` exits
/// with [`crate::cli::EX_CANTCREAT`]).
#[derive(Debug, thiserror::Error)]
#[error(
    "data_dir {} takes no writes ({source}); branchd keeps its database there and will not \
     start until it can write (is it mounted read-only, full, or owned by another user?)",
    dir.display()
)]
pub struct DataDirUnwritable {
    /// The data dir.
    pub dir: std::path::PathBuf,
    /// The write that failed.
    pub source: std::io::Error,
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
    start_with_clock(cfg, Clock::new()).await
}

/// Like [`start`], with the daemon's clock reading what `clock` reads (a test pins the wall
/// time so that what it checks does not depend on the hour it runs at).
pub async fn start_with_clock(cfg: Config, clock: Clock) -> anyhow::Result<Running> {
    let data_dir = cfg.branch.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data_dir {}", data_dir.display()))?;
    let probe = data_dir.clone();
    tokio::task::spawn_blocking(move || crate::store::probe_dir(&probe))
        .await?
        .map_err(|source| DataDirUnwritable {
            dir: data_dir.clone(),
            source,
        })?;
    let db_path = cfg.db_path();
    let store = tokio::task::spawn_blocking(move || open_store(&db_path))
        .await?
        .with_context(|| format!("cannot open the database in {}", data_dir.display()))?;
    let tls = cfg.http.tls.as_ref().map(http::tls_acceptor).transpose()?;
    let listener = TcpListener::bind(cfg.http.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.http.listen))?;
    let addr = listener.local_addr()?;
    let core = Core::with_clock(cfg, store, clock);
    // the model files head office replaced are in use before any engine can load
    crate::updates::restore_models(&core).await;
    let modules = Modules::new(&core);
    modules.start();
    crate::storage::start(&core);
    crate::retention::start(&core, crate::modules::RETENTION);
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
        core.clone(),
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
pub use crate::core::shutdown_signal;

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
            // Only a daemon whose writer still commits, and whose data dir still takes a
            // real write, deserves a ping: a wedged database gets us restarted by systemd.
            let dir = core2.cfg.branch.data_dir.clone();
            let alive = tokio::time::timeout(period, async {
                core2
                    .store
                    .write(|tx| -> Result<(), crate::store::StoreError> {
                        tx.conn().query_row("SELECT 1", [], |_| Ok(()))?;
                        Ok(())
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::task::spawn_blocking(move || crate::store::probe_dir(&dir))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("data dir takes no writes: {e}"))
            })
            .await;
            match alive {
                Ok(Ok(())) => {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                }
                Ok(Err(e)) => tracing::error!(error = %e, "withholding watchdog ping"),
                Err(_) => {
                    tracing::error!("database writer unresponsive; withholding watchdog ping")
                }
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

/// The production daemon: wait out the back-off after unclean stops, start, notify
/// systemd, run until SIGTERM/SIGINT or until a config change needs a restart, drain.
pub async fn run(cfg: Config) -> anyhow::Result<Ended> {
    let grace = cfg.daemon.shutdown_grace;
    // Watch for SIGTERM/SIGINT from the first moment: one that comes while the daemon is
    // still starting stops it cleanly once started, instead of killing it mid-start.
    let stop = tokio::spawn(shutdown_signal());
    let marker = RunMarker::begin(&cfg.branch.data_dir);
    if let Some(wait) = marker.backoff() {
        tracing::error!(
            unclean_stops_in_a_row = marker.unclean,
            wait_s = wait.as_secs(),
            "the previous run ended without a clean stop (crash, kill or watchdog); \
             waiting before starting again"
        );
        let status = format!(
            "STATUS=restart {} after unclean stops; waiting {} s",
            marker.unclean,
            wait.as_secs()
        );
        let extend = format!("EXTEND_TIMEOUT_USEC={}", (wait + START_MARGIN).as_micros());
        let _ = sd_notify::notify(
            false,
            &[
                sd_notify::NotifyState::Custom(&status),
                sd_notify::NotifyState::Custom(&extend),
            ],
        );
        tokio::time::sleep(wait).await;
    }
    let running = start_guarded(cfg).await?;
    notify_systemd(&running.core);
    let ended = tokio::select! {
        _ = stop => Ended::Stopped,
        _ = running.core.restart.cancelled() => {
            tracing::info!("restarting to apply a config change");
            Ended::Restart
        }
    };
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    running.shutdown(grace).await;
    marker.clean();
    Ok(ended)
}

/// Time a start may take after its back-off (systemd's start timeout is extended by the
/// back-off plus this).
const START_MARGIN: Duration = Duration::from_secs(90);

/// The longest back-off between restarts after unclean stops.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The wait before the next start after `unclean` unclean stops in a row: none after a
/// clean stop, then 1 s doubling to [`MAX_BACKOFF`]. systemd restarts the unit forever
/// (`StartLimitIntervalSec=0`); the daemon itself spaces the restarts out, so a crash loop
/// neither hammers the box nor leaves the unit failed.
pub fn backoff(unclean: u32) -> Option<Duration> {
    let n = unclean.checked_sub(1)?;
    Some(Duration::from_secs(1u64 << n.min(16)).min(MAX_BACKOFF))
}

/// `data_dir/run.marker`: present while the daemon runs, removed by a clean stop. Found at
/// start, it says the previous run crashed or was killed; it counts such stops in a row.
#[derive(Debug)]
pub struct RunMarker {
    path: std::path::PathBuf,
    /// Unclean stops in a row before this start.
    pub unclean: u32,
}

impl RunMarker {
    /// Read the marker left by the previous run and write this run's. A data dir that
    /// cannot be written is reported by the start-up that follows; the marker is then only
    /// best effort.
    pub fn begin(data_dir: &std::path::Path) -> RunMarker {
        let _ = std::fs::create_dir_all(data_dir);
        let path = data_dir.join("run.marker");
        let unclean = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<u32>().unwrap_or(0).saturating_add(1),
            Err(_) => 0,
        };
        if let Err(e) = std::fs::write(&path, unclean.to_string()) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the run marker");
        }
        RunMarker { path, unclean }
    }

    /// How long to wait before starting.
    pub fn backoff(&self) -> Option<Duration> {
        backoff(self.unclean)
    }

    /// The run ended cleanly: the next start waits for nothing.
    pub fn clean(self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the run marker");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_after_unclean_stops_back_off_forever_up_to_a_ceiling() {
        let cases = [
            (0, None),
            (1, Some(1)),
            (2, Some(2)),
            (5, Some(16)),
            (9, Some(256)),
            (10, Some(300)),
            (1_000, Some(300)),
            (u32::MAX, Some(300)),
        ];
        for (unclean, secs) in cases {
            assert_eq!(
                backoff(unclean),
                secs.map(Duration::from_secs),
                "{unclean} unclean stops"
            );
        }
    }

    #[test]
    fn the_run_marker_counts_unclean_stops_until_a_clean_one() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunMarker::begin(dir.path());
        assert_eq!(first.unclean, 0);
        first.clean();
        // Killed twice without a clean stop.
        assert_eq!(RunMarker::begin(dir.path()).unclean, 0);
        assert_eq!(RunMarker::begin(dir.path()).unclean, 1);
        let third = RunMarker::begin(dir.path());
        assert_eq!(third.unclean, 2);
        assert_eq!(third.backoff(), Some(Duration::from_secs(2)));
        third.clean();
        assert_eq!(RunMarker::begin(dir.path()).unclean, 0);
    }
}
