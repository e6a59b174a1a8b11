//! Uploaded images are not kept, unless `[ocr] keep_images_min` sets a retention period:
//! then the image is written under `<data_dir>/ocr-images/` (owner-only), recorded in
//! `ocr_images` in the transaction of its `ocr.completed` event, and deleted on time.
//!
//! Deletion timers are recomputed from the stored `delete_at` at start, so a restart
//! neither keeps an image longer nor loses track of one; a file without a row (a crash
//! between writing it and the commit) is deleted at start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::json;

use crate::clock::rfc3339;
use crate::core::Core;
use crate::store::StoreError;

/// The table of kept images (the module's first migration).
pub const STEP_1: &str = "CREATE TABLE ocr_images (
         id TEXT PRIMARY KEY,
         file TEXT NOT NULL,
         kind TEXT NOT NULL,
         kept_at TEXT NOT NULL,
         delete_at TEXT NOT NULL
     ) STRICT;";

/// A kept image, as told in the OCR answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeptImage {
    /// Its id.
    pub id: String,
    /// When it will be deleted (RFC 3339).
    pub delete_at: String,
}

fn dir(core: &Core) -> PathBuf {
    core.cfg.branch.data_dir.join("ocr-images")
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Why an image could not be kept (the recognition answer still stands).
#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    /// Writing the file failed.
    #[error("cannot write the image: {0}")]
    Io(#[from] std::io::Error),
    /// Recording it failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Commit `event` (`ocr.completed`), keeping the image with it when a retention period is
/// configured. Returns the kept image.
pub async fn commit(
    core: &Core,
    bytes: Vec<u8>,
    ext: &'static str,
    kind: String,
    mut event: serde_json::Value,
) -> Result<Option<KeptImage>, KeepError> {
    let keep = core.cfg.ocr.keep_images;
    if keep.is_zero() {
        core.store
            .write(move |tx| tx.emit("ocr.completed", event))
            .await?;
        return Ok(None);
    }
    let id = ulid::Ulid::new().to_string();
    let file = dir(core).join(format!("{id}.{ext}"));
    let path = file.clone();
    tokio::task::spawn_blocking(move || write_private(&path, &bytes))
        .await
        .map_err(std::io::Error::other)??;
    event["image_kept"] = json!(true);
    let (id2, file2) = (id.clone(), file.to_string_lossy().into_owned());
    let written = core
        .store
        .write(move |tx| {
            let delete_at = rfc3339(tx.now() + keep);
            tx.conn().execute(
                "INSERT INTO ocr_images(id, file, kind, kept_at, delete_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id2, file2, kind, rfc3339(tx.now()), delete_at],
            )?;
            tx.emit("ocr.completed", event)?;
            Ok::<_, StoreError>(delete_at)
        })
        .await;
    match written {
        Ok(delete_at) => {
            schedule(core, id.clone(), keep);
            Ok(Some(KeptImage { id, delete_at }))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&file);
            Err(e.into())
        }
    }
}

fn schedule(core: &Core, id: String, after: Duration) {
    let core2 = core.clone();
    core.tracker.spawn(async move {
        tokio::select! {
            () = core2.cancel.cancelled() => {}
            () = tokio::time::sleep(after) => {
                if let Err(e) = delete(&core2, &id).await {
                    tracing::error!(image = %id, error = %e, "cannot delete a kept OCR image");
                }
            }
        }
    });
}

/// Delete one kept image: the file first (so a row never outlives a file it points to
/// for long), then its row, with an `ocr.image_deleted` event.
async fn delete(core: &Core, id: &str) -> Result<(), KeepError> {
    let key = id.to_string();
    let file: Option<String> = core
        .store
        .read(move |c| {
            Ok::<_, StoreError>(
                c.query_row("SELECT file FROM ocr_images WHERE id = ?1", [&key], |r| {
                    r.get(0)
                })
                .optional()?,
            )
        })
        .await?;
    let Some(file) = file else { return Ok(()) };
    match tokio::fs::remove_file(&file).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let key = id.to_string();
    core.store
        .write(move |tx| {
            tx.conn()
                .execute("DELETE FROM ocr_images WHERE id = ?1", [&key])?;
            tx.emit("ocr.image_deleted", json!({"image_id": key}))?;
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(())
}

/// At start: the deletion timers of kept images, from their stored times, and files no
/// row knows of removed.
pub fn resume(core: &Core) {
    let core2 = core.clone();
    core.tracker.spawn(async move {
        let rows: Result<Vec<(String, String, String)>, StoreError> = core2
            .store
            .read(|c| {
                let mut s = c.prepare("SELECT id, file, delete_at FROM ocr_images")?;
                let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await;
        let rows = match rows {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot list kept OCR images");
                return;
            }
        };
        let known: std::collections::HashSet<PathBuf> =
            rows.iter().map(|(_, f, _)| PathBuf::from(f)).collect();
        if let Ok(entries) = std::fs::read_dir(dir(&core2)) {
            for e in entries.flatten() {
                // (a file being written right now by an upload is younger than a minute)
                let settled = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(60));
                if settled && !known.contains(&e.path()) {
                    tracing::info!(file = %e.path().display(), "removing an OCR image no record knows of");
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let now = Utc::now();
        for (id, _, delete_at) in rows {
            let left = crate::clock::parse(&delete_at)
                .and_then(|t| (t - now).to_std().ok())
                .unwrap_or_default();
            schedule(&core2, id, left);
        }
    });
}
