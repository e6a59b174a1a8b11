//! The data dir's free space: `storage.low` below `[daemon] min_free_mb`, and a reserve
//! (`data_dir/reserve`, `[daemon] reserve_mb`) given back when the disk is full, so the
//! `storage.full` alert, and sign-outs, can still be committed. Both alerts clear, and the
//! reserve is taken again, by themselves when space returns.
//!
//! When the disk is full, writes fail in SQLite and answer 507 `storage_full`; nothing
//! committed is damaged (SQLite rolls the transaction back), and STM events are not
//! acknowledged (their ACK waits for the commit), so the devices keep them until space
//! returns.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::alerts::{self, Level, NewAlert};
use crate::core::Core;
use crate::store::StoreError;

const LOW: &str = "storage.low";
const FULL: &str = "storage.full";

/// What one look at the data dir found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// Above `min_free` (plus the reserve, if it must be taken again).
    Plenty,
    /// Below `min_free`.
    Low,
    /// A small write fails: nothing more can be stored.
    Full,
}

/// Free bytes for this (unprivileged) process under `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

fn reserve_path(dir: &Path) -> PathBuf {
    dir.join("reserve")
}

/// Take the reserve (a file of `bytes`, really allocated) unless it is there.
fn take_reserve(dir: &Path, bytes: u64) -> std::io::Result<()> {
    use std::io::Write;
    let path = reserve_path(dir);
    if bytes == 0 || path.metadata().is_ok_and(|m| m.len() >= bytes) {
        return Ok(());
    }
    let result = (|| {
        let mut f = std::fs::File::create(&path)?;
        // Allocated without writing where the file system can; written otherwise.
        if rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, bytes).is_err() {
            let chunk = vec![0u8; 1 << 16];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                f.write_all(&chunk[..n])?;
                left -= n as u64;
            }
        }
        f.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    result
}

/// Give the reserve back; whether there was one.
fn release_reserve(dir: &Path) -> bool {
    std::fs::remove_file(reserve_path(dir)).is_ok()
}

/// Look at the data dir once: release or take the reserve as needed, and say how it is.
pub fn check(dir: &Path, min_free: u64, reserve: u64) -> std::io::Result<Space> {
    if crate::store::probe_dir(dir).is_err() {
        if release_reserve(dir) {
            tracing::error!("data dir full: the reserve is given back for alerts and sign-outs");
        }
        return Ok(Space::Full);
    }
    let free = free_bytes(dir)?;
    let has_reserve = reserve_path(dir).exists();
    if free < min_free {
        return Ok(Space::Low);
    }
    if !has_reserve && free >= min_free + reserve {
        take_reserve(dir, reserve)?;
    }
    Ok(Space::Plenty)
}

/// Watch the data dir every `[daemon] storage_check_s` until the daemon stops.
pub fn start(core: &Core) {
    let core2 = core.clone();
    core.spawn(async move {
        let d = &core2.cfg.daemon;
        let (min_free, reserve) = (d.min_free, d.reserve);
        let mut tick = tokio::time::interval(d.storage_check);
        let mut last = None;
        loop {
            tokio::select! {
                _ = core2.cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let dir = core2.cfg.branch.data_dir.clone();
            let space = tokio::task::spawn_blocking(move || check(&dir, min_free, reserve)).await;
            let space = match space {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot look at the data dir's free space");
                    continue;
                }
                Err(_) => continue,
            };
            if last == Some(space) {
                continue;
            }
            match record(&core2, space).await {
                Ok(()) => last = Some(space),
                Err(StoreError::Closed) => return,
                Err(e) => tracing::error!(error = %e, ?space, "cannot record the storage state"),
            }
        }
    });
}

async fn record(core: &Core, space: Space) -> Result<(), StoreError> {
    let min_free_mb = core.cfg.daemon.min_free >> 20;
    core.store
        .write(move |tx| {
            let raise = |tx: &mut crate::store::Tx<'_>, kind: &str, level, message| {
                alerts::raise(
                    tx,
                    &NewAlert {
                        kind,
                        level,
                        source: None,
                        key: Some(kind),
                        message,
                        data: json!({"min_free_mb": min_free_mb}),
                    },
                )
                .map(|_| ())
            };
            match space {
                Space::Plenty => {
                    alerts::clear(tx, FULL)?;
                    alerts::clear(tx, LOW)?;
                }
                Space::Low => {
                    alerts::clear(tx, FULL)?;
                    raise(tx, LOW, Level::Warning, "the data disk is nearly full")?;
                }
                Space::Full => raise(
                    tx,
                    FULL,
                    Level::Critical,
                    "the data disk is full: changes cannot be saved",
                )?,
            }
            Ok(())
        })
        .await
}
