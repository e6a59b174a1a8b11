//! The model jobs, one at a time in the order head office sent them.
//!
//! Files live on the data disk, under `<data_dir>/updates/`: `staging/<sha256>.part` while
//! downloading (kept across restarts and failed downloads, so the next attempt resumes),
//! then `models/<name>/<sha256>.onnx` once verified and self-tested. Only the current and the
//! previous file of each model are kept.
//!
//! Events (each with the `command` id and the model `name`):
//! `model.update.progress` (`stage`: `download` with `received` and `size`, every quarter;
//! `verify`; `selftest`), `model.updated` (`sha256`, `previous_sha256`),
//! `model.update.failed` (`code` and its `params`), `model.rolled_back` (`sha256`,
//! `previous_sha256`), `model.rollback.failed` (`code`, `params`).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::download::{self, FetchError};
use super::{JobState, Updates};
use crate::clock::rfc3339;
use crate::models::{ModelSet, Replacement};
use crate::store::StoreError;

/// The model files replacing shipped ones: name → file and hash.
pub fn installed(c: &Connection) -> Result<Vec<(String, Replacement)>, StoreError> {
    let mut st = c.prepare(
        "SELECT name, file, sha256 FROM updates_models WHERE file IS NOT NULL ORDER BY name",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, file, sha256) = row?;
        out.push((
            name,
            Replacement {
                path: PathBuf::from(file),
                sha256,
            },
        ));
    }
    Ok(out)
}

/// One job as recorded.
#[derive(Debug, Clone)]
struct Job {
    id: String,
    kind: String,
    name: String,
    sha256: String,
    size: u64,
    url: String,
}

fn next_pending(c: &Connection) -> Result<Option<Job>, StoreError> {
    Ok(c.query_row(
        "SELECT id, kind, name, coalesce(sha256, ''), coalesce(size, 0), coalesce(url, '') \
         FROM updates_jobs WHERE state = ?1 ORDER BY seq LIMIT 1",
        [JobState::Pending.as_str()],
        |r| {
            Ok(Job {
                id: r.get(0)?,
                kind: r.get(1)?,
                name: r.get(2)?,
                sha256: r.get(3)?,
                size: r.get::<_, i64>(4)? as u64,
                url: r.get(5)?,
            })
        },
    )
    .optional()?)
}

/// Work through pending jobs, then wait for the next request; until the daemon stops. A
/// job interrupted by a stop is taken up again at the next start.
pub async fn run(up: Updates) {
    let core = up.core.clone();
    let mut events = core.store.subscribe();
    loop {
        loop {
            let job = match core.store.read(next_pending).await {
                Ok(Some(j)) => j,
                Ok(None) => break,
                Err(StoreError::Closed) => return,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the update jobs");
                    break;
                }
            };
            let done = if job.kind == "model.rollback" {
                rollback(&up, &job).await
            } else {
                update(&up, &job).await
            };
            match done {
                Ok(()) => {}
                Err(Stop) => return,
            }
        }
        loop {
            tokio::select! {
                _ = core.cancel.cancelled() => return,
                ev = events.recv() => match ev {
                    Ok(ev) if ev.kind.starts_with("model.") && ev.kind.ends_with(".requested") => break,
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }
}

/// The daemon is stopping (or its database is): the job stays pending.
#[derive(Debug)]
struct Stop;

fn data_dir(up: &Updates) -> PathBuf {
    up.core.cfg.branch.data_dir.join("updates")
}

/// Emit an event (no state change).
async fn emit(up: &Updates, kind: &'static str, data: Value) -> Result<(), Stop> {
    up.core
        .store
        .write(move |tx| tx.emit(kind, data).map(|_| ()))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, kind, "cannot record an update event");
            Stop
        })
}

/// Mark the job failed with `code` and say so.
async fn fail(
    up: &Updates,
    job: &Job,
    event: &'static str,
    code: &'static str,
    params: Value,
) -> Result<(), Stop> {
    tracing::warn!(command = %job.id, model = %job.name, code, %params, "{event}");
    let (id, name) = (job.id.clone(), job.name.clone());
    up.core
        .store
        .write(move |tx| {
            finish(tx.conn(), &id, JobState::Failed, Some(code), tx.now())?;
            tx.emit(
                event,
                json!({"command": id, "name": name, "code": code, "params": params}),
            )?;
            Ok::<_, StoreError>(())
        })
        .await
        .map_err(|_| Stop)
}

fn finish(
    c: &Connection,
    id: &str,
    state: JobState,
    code: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE updates_jobs SET state = ?2, code = ?3, finished_at = ?4 WHERE id = ?1",
        params![id, state.as_str(), code, rfc3339(now)],
    )?;
    Ok(())
}

/// Load the candidate file in a worker thread and run the model's owner's self-test on it.
async fn selftest(up: &Updates, name: &str, candidate: ModelSet) -> Result<String, String> {
    let entries = crate::models::manifest().map_err(|e| e.to_string())?;
    let role = entries
        .iter()
        .find(|e| e.name == name)
        .map(|e| e.role.clone())
        .unwrap_or_default();
    let (name, faces, ocr) = (
        name.to_string(),
        up.core.cfg.faces.threads,
        up.core.cfg.ocr.threads,
    );
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("model-selftest".into())
        .spawn(move || {
            let r = std::panic::catch_unwind(move || match role.as_str() {
                "face_detector" => crate::vision::selftest(&candidate, &name, faces)
                    .map(|n| format!("{n} face(s) found in the self-test photo")),
                _ => crate::ocr::selftest(&candidate, ocr)
                    .map(|()| "the self-test card was read exactly".to_string()),
            })
            .unwrap_or_else(|_| Err("the self-test crashed".into()));
            let _ = tx.send(r);
        })
        .map_err(|e| format!("cannot start the self-test: {e}"))?;
    rx.await
        .unwrap_or_else(|_| Err("the self-test crashed".into()))
}

async fn update(up: &Updates, job: &Job) -> Result<(), Stop> {
    const FAILED: &str = "model.update.failed";
    let core = &up.core;
    let root = data_dir(up);
    let staging = root.join("staging");
    if let Err(e) = tokio::fs::create_dir_all(&staging).await {
        return fail(
            up,
            job,
            FAILED,
            "storage_failed",
            json!({"error": e.to_string()}),
        )
        .await;
    }
    let part = staging.join(format!("{}.part", job.sha256));
    let client = match download::client(&core.cfg.updates) {
        Ok(c) => c,
        Err(e) => {
            return fail(
                up,
                job,
                FAILED,
                "download_failed",
                json!({"error": format!("{e:#}")}),
            )
            .await;
        }
    };
    // progress: when the download starts or resumes, then at each quarter
    let (progress, mut received) = tokio::sync::watch::channel(0u64);
    let fetching = download::fetch(
        &client,
        &core.cfg.updates,
        &job.url,
        &part,
        job.size,
        &core.cancel,
        &progress,
    );
    tokio::pin!(fetching);
    let mut next_quarter = 0u64;
    let fetched = loop {
        tokio::select! {
            r = &mut fetching => break r,
            _ = received.changed() => {
                let n = *received.borrow_and_update();
                if let Some(data) = quarter(job, n, &mut next_quarter) {
                    emit(up, "model.update.progress", data).await?;
                }
            }
        }
    };
    let n = *received.borrow();
    if let Some(data) = quarter(job, n, &mut next_quarter) {
        emit(up, "model.update.progress", data).await?;
    }
    match fetched {
        Ok(()) => {}
        Err(FetchError::Cancelled) => return Err(Stop),
        Err(e @ FetchError::TooLong { .. }) => {
            return fail(
                up,
                job,
                FAILED,
                "size_mismatch",
                json!({"expected": job.size, "error": e.to_string()}),
            )
            .await;
        }
        Err(e) => {
            return fail(
                up,
                job,
                FAILED,
                "download_failed",
                json!({"url": job.url, "error": e.to_string()}),
            )
            .await;
        }
    }
    emit(
        up,
        "model.update.progress",
        json!({"command": job.id, "name": job.name, "stage": "verify"}),
    )
    .await?;
    let actual_size = tokio::fs::metadata(&part)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    if actual_size != job.size {
        let _ = tokio::fs::remove_file(&part).await;
        return fail(
            up,
            job,
            FAILED,
            "size_mismatch",
            json!({"expected": job.size, "actual": actual_size}),
        )
        .await;
    }
    let actual = match download::sha256_file(&part).await {
        Ok(h) => h,
        Err(e) => {
            return fail(
                up,
                job,
                FAILED,
                "storage_failed",
                json!({"error": e.to_string()}),
            )
            .await;
        }
    };
    if actual != job.sha256 {
        // a file that is not the one announced is never kept
        let _ = tokio::fs::remove_file(&part).await;
        return fail(
            up,
            job,
            FAILED,
            "hash_mismatch",
            json!({"expected": job.sha256, "actual": actual}),
        )
        .await;
    }
    emit(
        up,
        "model.update.progress",
        json!({"command": job.id, "name": job.name, "stage": "selftest"}),
    )
    .await?;
    let candidate = core.models.candidate(
        &job.name,
        Some(Replacement {
            path: part.clone(),
            sha256: job.sha256.clone(),
        }),
    );
    let passed = match selftest(up, &job.name, candidate).await {
        Ok(p) => p,
        Err(reason) => {
            let _ = tokio::fs::remove_file(&part).await;
            return fail(
                up,
                job,
                FAILED,
                "selftest_failed",
                json!({"reason": reason}),
            )
            .await;
        }
    };
    tracing::info!(command = %job.id, model = %job.name, "self-test passed: {passed}");
    // Install: the file beside the previous one, then the record, then the swap.
    let dir = root.join("models").join(&job.name);
    let file = dir.join(format!("{}.onnx", job.sha256));
    let moved = async {
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::rename(&part, &file).await?;
        tokio::fs::File::open(&dir).await?.sync_all().await
    }
    .await;
    if let Err(e) = moved {
        return fail(
            up,
            job,
            FAILED,
            "storage_failed",
            json!({"error": e.to_string()}),
        )
        .await;
    }
    // The swap, then the record: whoever sees `model.updated` finds the new file in use; if
    // the record fails, the swap is undone.
    let before = core.models.replacement(&job.name);
    core.models.set(
        &job.name,
        Some(Replacement {
            path: file.clone(),
            sha256: job.sha256.clone(),
        }),
    );
    let shipped = shipped_sha(&job.name);
    let (j, f) = (job.clone(), file.clone());
    let previous = core
        .store
        .write(move |tx| {
            let now = tx.now();
            let old: Option<(Option<String>, String)> = tx
                .conn()
                .query_row(
                    "SELECT file, sha256 FROM updates_models WHERE name = ?1",
                    [&j.name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let (prev_file, prev_sha) = old.unwrap_or((None, shipped));
            tx.conn().execute(
                "INSERT INTO updates_models(name, file, sha256, prev_file, prev_sha256, updated_at, command) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(name) DO UPDATE SET \
                 file = excluded.file, sha256 = excluded.sha256, prev_file = excluded.prev_file, \
                 prev_sha256 = excluded.prev_sha256, updated_at = excluded.updated_at, \
                 command = excluded.command",
                params![
                    j.name,
                    f.display().to_string(),
                    j.sha256,
                    prev_file,
                    prev_sha,
                    rfc3339(now),
                    j.id
                ],
            )?;
            finish(tx.conn(), &j.id, JobState::Done, None, now)?;
            tx.emit(
                "model.updated",
                json!({"command": j.id, "name": j.name, "sha256": j.sha256,
                       "size": j.size, "previous_sha256": prev_sha}),
            )?;
            Ok::<_, StoreError>(prev_file)
        })
        .await
        .map_err(|_| {
            core.models.set(&job.name, before);
            Stop
        })?;
    tracing::info!(command = %job.id, model = %job.name, sha256 = %job.sha256, "model replaced");
    prune(&dir, &[Some(file), previous.map(PathBuf::from)]).await;
    Ok(())
}

/// The progress event for `received` bytes, when it starts the download or reaches the
/// next quarter.
fn quarter(job: &Job, received: u64, next: &mut u64) -> Option<Value> {
    let q = received * 4 / job.size.max(1);
    if q < *next {
        return None;
    }
    *next = q + 1;
    Some(
        json!({"command": job.id, "name": job.name, "stage": "download",
                "received": received, "size": job.size}),
    )
}

/// The manifest's hash of entry `name`.
fn shipped_sha(name: &str) -> String {
    crate::models::manifest()
        .ok()
        .and_then(|es| es.into_iter().find(|e| e.name == name))
        .map(|e| e.sha256)
        .unwrap_or_default()
}

/// Remove every file of `dir` but those kept.
async fn prune(dir: &Path, keep: &[Option<PathBuf>]) {
    let Ok(mut rd) = tokio::fs::read_dir(dir).await else {
        return;
    };
    while let Ok(Some(e)) = rd.next_entry().await {
        let p = e.path();
        if !keep.iter().flatten().any(|k| *k == p)
            && let Err(err) = tokio::fs::remove_file(&p).await
        {
            tracing::warn!(file = %p.display(), error = %err, "cannot remove an old model file");
        }
    }
}

async fn rollback(up: &Updates, job: &Job) -> Result<(), Stop> {
    const FAILED: &str = "model.rollback.failed";
    let core = &up.core;
    let name = job.name.clone();
    let row = core
        .store
        .read(move |c| {
            Ok::<_, StoreError>(
                c.query_row(
                    "SELECT file, sha256, prev_file, prev_sha256 FROM updates_models WHERE name = ?1",
                    [&name],
                    |r| {
                        Ok((
                            r.get::<_, Option<String>>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Option<String>>(2)?,
                            r.get::<_, Option<String>>(3)?,
                        ))
                    },
                )
                .optional()?,
            )
        })
        .await
        .map_err(|_| Stop)?;
    let Some((file, sha, prev_file, Some(prev_sha))) = row else {
        return fail(up, job, FAILED, "nothing_to_roll_back", json!({})).await;
    };
    let back = prev_file.as_ref().map(|p| Replacement {
        path: PathBuf::from(p),
        sha256: prev_sha.clone(),
    });
    // The previous file must still be what it was.
    let entry = crate::models::manifest()
        .ok()
        .and_then(|es| es.into_iter().find(|e| e.name == job.name));
    let Some(entry) = entry else {
        return fail(up, job, FAILED, "nothing_to_roll_back", json!({})).await;
    };
    let candidate = core.models.candidate(&job.name, back.clone());
    let check = tokio::task::spawn_blocking(move || {
        candidate
            .read_verified(&entry)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    if let Err(reason) = check {
        return fail(
            up,
            job,
            FAILED,
            "previous_unusable",
            json!({"reason": reason}),
        )
        .await;
    }
    // the swap first, undone if the record fails (as for an update)
    let before = core.models.replacement(&job.name);
    core.models.set(&job.name, back);
    let j = job.clone();
    let (f2, p2) = (file.clone(), prev_file.clone());
    core.store
        .write(move |tx| {
            let now = tx.now();
            tx.conn().execute(
                "UPDATE updates_models SET file = ?2, sha256 = ?3, prev_file = ?4, prev_sha256 = ?5, \
                 updated_at = ?6, command = ?7 WHERE name = ?1",
                params![j.name, p2, prev_sha, f2, sha, rfc3339(now), j.id],
            )?;
            finish(tx.conn(), &j.id, JobState::Done, None, now)?;
            tx.emit(
                "model.rolled_back",
                json!({"command": j.id, "name": j.name, "sha256": prev_sha, "previous_sha256": sha}),
            )?;
            Ok::<_, StoreError>(())
        })
        .await
        .map_err(|_| {
            core.models.set(&job.name, before);
            Stop
        })?;
    tracing::info!(command = %job.id, model = %job.name, "model rolled back");
    Ok(())
}
