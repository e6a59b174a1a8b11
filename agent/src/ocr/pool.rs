//! The recognition worker pool: dedicated threads (inference never runs on the async
//! runtime), each with its own engine loaded on its first job, fed by a bounded queue.
//! A full queue is refused at once; a job that panics is answered and its worker goes on.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::engine::{Engine, OcrError};
use super::fields::Requested;
use super::{OcrResult, recognise};

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
    /// from `dir` by each worker on its first job.
    pub fn start(dir: PathBuf, workers: usize, queue: usize, threads: usize) -> Pool {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..workers.max(1))
            .filter_map(|i| {
                let rx = Arc::clone(&rx);
                let dir = dir.clone();
                std::thread::Builder::new()
                    .name(format!("ocr-{i}"))
                    .spawn(move || worker(&rx, &dir, threads))
                    .map_err(|e| tracing::error!(error = %e, "cannot start an OCR worker"))
                    .ok()
            })
            .collect();
        Pool {
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(handles),
        }
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

fn worker(rx: &Mutex<Receiver<Job>>, dir: &std::path::Path, threads: usize) {
    let mut engine: Option<Engine> = None;
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        if engine.is_none() {
            match Engine::load(dir, threads) {
                Ok(e) => engine = Some(e),
                Err(e) => {
                    tracing::error!(error = %e, "OCR models not loaded");
                    let _ = job.reply.send(Err(e.into()));
                    continue;
                }
            }
        }
        let Some(eng) = engine.as_mut() else { continue };
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
    }
}
