//! The recognition worker pool: dedicated threads (inference never runs on the async
//! runtime), each with its own engine loaded on its first job, fed by a bounded queue.
//! A full queue is refused at once; a job that panics is answered and its worker goes on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::engine::{Engine, OcrError};
use super::fields::Requested;
use super::{OcrResult, recognise};
use crate::models::ModelSet;

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// Every worker is busy and the queue is full.
    #[error("the recogniser is busy; try again shortly")]
    Busy,
    /// The pool has stopped.
    #[error("the recogniser has stopped")]
    Stopped,
}

/// A job's answer.
pub type Reply = Result<OcrResult, OcrError>;

struct Job {
    bytes: Vec<u8>,
    kind: Requested,
    reply: oneshot::Sender<Reply>,
}

/// The pool.
#[derive(Debug)]
pub struct Pool {
    tx: Mutex<Option<SyncSender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The model generation the last engine was loaded at (`u64::MAX`: none yet).
    loaded: Arc<AtomicU64>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl Pool {
    /// Start `workers` threads sharing a queue of `queue` waiting jobs. Models are loaded
    /// from the files `models` names by each worker on its first job, and again before the
    /// next job whenever a model was replaced.
    pub fn start(models: ModelSet, workers: usize, queue: usize, threads: usize) -> Pool {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let loaded = Arc::new(AtomicU64::new(u64::MAX));
        let handles = (0..workers.max(1))
            .filter_map(|i| {
                let rx = Arc::clone(&rx);
                let (models, loaded) = (models.clone(), loaded.clone());
                std::thread::Builder::new()
                    .name(format!("ocr-{i}"))
                    .spawn(move || worker(&rx, &models, &loaded, threads))
                    .map_err(|e| tracing::error!(error = %e, "cannot start an OCR worker"))
                    .ok()
            })
            .collect();
        Pool {
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(handles),
            loaded,
        }
    }

    /// The model generation the most recently loaded engine was built at, if any.
    pub fn loaded_generation(&self) -> Option<u64> {
        Some(self.loaded.load(Ordering::Relaxed)).filter(|g| *g != u64::MAX)
    }

    /// Queue a job; refused at once when the queue is full.
    pub fn submit(
        &self,
        bytes: Vec<u8>,
        kind: Requested,
    ) -> Result<oneshot::Receiver<Reply>, SubmitError> {
        let (reply, rx) = oneshot::channel();
        let guard = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let tx = guard.as_ref().ok_or(SubmitError::Stopped)?;
        match tx.try_send(Job { bytes, kind, reply }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(SubmitError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(SubmitError::Stopped),
        }
    }

    /// Stop taking jobs, let the workers finish the queued ones, and wait for them.
    pub fn stop(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let handles = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for h in handles {
            let _ = h.join();
        }
    }
}

fn worker(rx: &Mutex<Receiver<Job>>, models: &ModelSet, loaded: &AtomicU64, threads: usize) {
    // The engine and the model generation it was loaded at.
    let mut engine: Option<(Engine, u64)> = None;
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        // Between two jobs: load the models, or reload them when one was replaced. A
        // replacement that fails to load keeps the engine this worker has.
        let generation = models.generation();
        if engine.as_ref().is_none_or(|(_, g)| *g != generation) {
            match Engine::load_from(models, threads) {
                Ok(e) => {
                    if engine.is_some() {
                        tracing::info!(generation, "OCR models reloaded");
                    }
                    engine = Some((e, generation));
                    loaded.store(generation, Ordering::Relaxed);
                }
                Err(e) if engine.is_some() => {
                    tracing::error!(error = %e, "OCR models not reloaded; keeping the loaded ones");
                    if let Some((_, g)) = engine.as_mut() {
                        *g = generation;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "OCR models not loaded");
                    let _ = job.reply.send(Err(e.into()));
                    continue;
                }
            }
        }
        let Some((eng, _)) = engine.as_mut() else {
            continue;
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            recognise(eng, &job.bytes, job.kind)
        }));
        let reply = match r {
            Ok(r) => r,
            Err(_) => {
                tracing::error!("OCR job panicked; reloading the models");
                engine = None;
                Err(OcrError::Inference(
                    "the recogniser failed on this image".into(),
                ))
            }
        };
        let _ = job.reply.send(reply);
        give_back_memory();
    }
}

/// Hand the memory a recognition freed back to the system. Its tensors (tens of MB for a
/// large photo, each sized by the photo) are freed to the C allocator, whose arenas would
/// otherwise keep them for good: after a few photos of different sizes that is hundreds
/// of MB of an ARM box's memory.
fn give_back_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: `malloc_trim` only returns free memory of glibc's arenas to the system; it
    // touches no memory in use and may be called from any thread at any time.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}
