//! The data dir's free space: `storage.low` below `[daemon] min_free_mb`,
//! `storage.headroom` when the data's growth of the last day would bring it there within
//! `[daemon] min_headroom_days` (an outage of head office grows the outbox), and a reserve
//! (`data_dir/reserve`, `[daemon] reserve_mb`) given back when the disk is full, so the
//! `storage.full` alert, and sign-outs, can still be committed. Both alerts clear, and the
//! reserve is taken again, by themselves when space returns.
//!
//! Once the reserve is given back, ordinary writes are refused (`StoreError::Full`) until
//! the disk has room again, so they cannot eat what was kept for the essential ones.
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
const HEADROOM: &str = "storage.headroom";

/// The span of samples the growth is measured over.
const GROWTH_WINDOW_S: f64 = 24.0 * 3600.0;
/// The shortest span that gives a growth figure.
const GROWTH_MIN_SPAN_S: f64 = 3600.0;
/// Samples closer together than this are not kept (one a minute is plenty).
const GROWTH_STEP_S: f64 = 60.0;

/// How fast the data grows: a least-squares line through the bytes the database holds
/// (pages in use, not the file, which does not shrink), sampled over the last day.
#[derive(Debug, Default, Clone)]
pub struct Growth {
    samples: std::collections::VecDeque<(f64, f64)>,
}

impl Growth {
    /// Add a sample: `bytes` held at `at_s` seconds (any fixed origin).
    pub fn push(&mut self, at_s: f64, bytes: u64) {
        if self
            .samples
            .back()
            .is_some_and(|(t, _)| at_s - t < GROWTH_STEP_S)
        {
            return;
        }
        self.samples.push_back((at_s, bytes as f64));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| at_s - t > GROWTH_WINDOW_S)
        {
            self.samples.pop_front();
        }
    }

    /// Bytes a day, once the samples span an hour.
    pub fn per_day(&self) -> Option<f64> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        if last.0 - first.0 < GROWTH_MIN_SPAN_S {
            return None;
        }
        let n = self.samples.len() as f64;
        let (mt, mb) = self
            .samples
            .iter()
            .fold((0.0, 0.0), |(a, b), (t, v)| (a + t / n, b + v / n));
        let (mut cov, mut var) = (0.0, 0.0);
        for (t, v) in &self.samples {
            cov += (t - mt) * (v - mb);
            var += (t - mt) * (t - mt);
        }
        (var > 0.0).then(|| cov / var * 86_400.0)
    }
}

/// Days until `free` bytes fall to `floor` at `per_day` bytes a day; `None` when the data
/// is not growing.
pub fn headroom_days(free: u64, floor: u64, per_day: f64) -> Option<f64> {
    (per_day > 0.0).then(|| free.saturating_sub(floor) as f64 / per_day)
}

/// Bytes the database holds: its pages in use (what its growth is measured by).
pub fn data_bytes(c: &rusqlite::Connection) -> Result<u64, StoreError> {
    let q = |p: &str| c.query_row(&format!("PRAGMA {p}"), [], |r| r.get::<_, i64>(0));
    let used = q("page_count")? - q("freelist_count")?;
    Ok((used.max(0) as u64).saturating_mul(q("page_size")? as u64))
}

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
        let mut growth = Growth::default();
        let mut short: Option<bool> = None;
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
            // Once the reserve was given back, ordinary writes stay off it until the disk
            // has room again (alerts, sign-outs and the link's bookkeeping still write).
            match space {
                Space::Full => core2.store.set_reserve_only(true),
                Space::Plenty => core2.store.set_reserve_only(false),
                Space::Low => {}
            }
            headroom(&core2, &mut growth, &mut short).await;
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

/// Sample the data's size, and raise or clear `storage.headroom` when the days left at
/// the last day's growth cross `[daemon] min_headroom_days`.
async fn headroom(core: &Core, growth: &mut Growth, short: &mut Option<bool>) {
    let Ok(bytes) = core.store.read(data_bytes).await else {
        return;
    };
    growth.push(core.clock.now().timestamp_millis() as f64 / 1000.0, bytes);
    let Some(per_day) = growth.per_day() else {
        return;
    };
    let dir = core.cfg.branch.data_dir.clone();
    let Ok(Ok(free)) = tokio::task::spawn_blocking(move || free_bytes(&dir)).await else {
        return;
    };
    let d = &core.cfg.daemon;
    let days = headroom_days(free, d.min_free, per_day);
    core.metrics
        .storage_headroom_days
        .set(days.map_or(-1, |d| d.min(1e6) as i64));
    let is_short = days.is_some_and(|x| x < f64::from(d.min_headroom_days));
    if *short == Some(is_short) {
        return;
    }
    let (min_days, free_mb, per_day_mb) = (d.min_headroom_days, free >> 20, per_day / 1048576.0);
    let days_left = days.map(|x| (x * 10.0).round() / 10.0);
    let done = core
        .store
        .write_essential(move |tx| {
            if is_short {
                alerts::raise(
                    tx,
                    &NewAlert {
                        kind: HEADROOM,
                        level: Level::Warning,
                        source: None,
                        key: Some(HEADROOM),
                        message: "the data disk fills within days at the current growth",
                        data: json!({"days": days_left, "min_days": min_days, "free_mb": free_mb,
                                     "growth_mb_per_day": (per_day_mb * 10.0).round() / 10.0}),
                    },
                )?;
            } else {
                alerts::clear(tx, HEADROOM)?;
            }
            Ok::<_, StoreError>(())
        })
        .await;
    match done {
        Ok(()) => *short = Some(is_short),
        Err(e) => tracing::warn!(error = %e, "cannot record the storage headroom"),
    }
}

async fn record(core: &Core, space: Space) -> Result<(), StoreError> {
    let min_free_mb = core.cfg.daemon.min_free >> 20;
    core.store
        .write_essential(move |tx| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_the_slope_of_the_last_day_once_it_spans_an_hour() {
        let mut g = Growth::default();
        // 100 MB a day, sampled every 30 s (one a minute is kept).
        let per_s = 100e6 / 86_400.0;
        for i in 0..120 {
            let t = f64::from(i) * 30.0;
            g.push(t, (5e8 + per_s * t) as u64);
        }
        assert!(g.samples.len() <= 61, "{}", g.samples.len());
        assert_eq!(g.per_day(), None, "under an hour: no figure yet");
        for i in 120..(2 * 86_400 / 30) {
            let t = f64::from(i) * 30.0;
            g.push(t, (5e8 + per_s * t) as u64);
        }
        let got = g.per_day().unwrap();
        assert!((got - 100e6).abs() < 1e3, "{got}");
        assert!(
            g.samples.len() <= 1_442,
            "a day's samples only: {}",
            g.samples.len()
        );
        // Pruning frees pages: a shrinking database is no growth.
        let mut down = Growth::default();
        for i in 0..200 {
            down.push(f64::from(i) * 60.0, 1_000_000_000 - i as u64 * 1_000);
        }
        assert!(down.per_day().unwrap() < 0.0);
        assert_eq!(
            headroom_days(10 << 30, 512 << 20, down.per_day().unwrap()),
            None
        );
    }

    #[test]
    fn headroom_counts_the_days_down_to_the_floor() {
        let gib = 1u64 << 30;
        assert_eq!(headroom_days(10 * gib, gib, 9.0 * gib as f64), Some(1.0));
        assert_eq!(
            headroom_days(gib / 2, gib, 1e6),
            Some(0.0),
            "already under the floor"
        );
        assert_eq!(headroom_days(gib, 0, 0.0), None);
    }
}
