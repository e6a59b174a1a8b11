//! Cameras and enrolment: one owned, cancellable pair of threads per configured camera
//! (capture and inference, linked by a one-frame slot so a busy model never builds a
//! queue), reconnecting with back-off and a `camera.offline` alert; and the task that
//! enrols photos sent by head office.
//!
//! Frames live only in memory. A face that matches nobody is dropped with its frame.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use opencv::core::Mat;
use opencv::prelude::*;
use opencv::videoio;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::Vision;
use super::engine::{FaceEngine, ModelNames};
use super::gallery::{self, Recognised};
use super::matcher::{self, Confirmer, Gallery, Rules};
use crate::alerts::{self, Level, NewAlert};
use crate::config::faces::FacesConfig;
use crate::config::{Camera, SourceKind};
use crate::store::{Store, StoreError};

/// A camera's source could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// OpenCV could not open it.
    #[error("cannot open camera source {0}")]
    Open(String),
    /// An image folder holds no JPEG or PNG.
    #[error("the folder {0} holds no JPEG or PNG images")]
    EmptyFolder(String),
    /// OpenCV failed.
    #[error("camera: {0}")]
    Cv(#[from] opencv::Error),
}

/// An opened source.
pub enum Opened {
    /// Through OpenCV's `VideoCapture`.
    Capture {
        /// The capture.
        cap: videoio::VideoCapture,
        /// Seconds between frames for files (paced like a live camera); 0 for live.
        pace: f64,
    },
    /// Images of a folder, in name order.
    Folder {
        /// The remaining files.
        files: std::vec::IntoIter<PathBuf>,
    },
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Opened::Capture { pace, .. } => write!(f, "Capture {{ pace: {pace} }}"),
            Opened::Folder { files } => write!(f, "Folder {{ left: {} }}", files.len()),
        }
    }
}

/// How long opening or reading a network stream may block.
const STREAM_TIMEOUT_MS: i32 = 5_000;

/// Open a source.
pub fn open(kind: &SourceKind) -> Result<Opened, CaptureError> {
    let (name, api, file) = match kind {
        SourceKind::Folder(dir) => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| CaptureError::Open(format!("{}: {e}", dir.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().and_then(|x| x.to_str()).is_some_and(|x| {
                        ["jpg", "jpeg", "png"].contains(&x.to_ascii_lowercase().as_str())
                    })
                })
                .collect();
            if files.is_empty() {
                return Err(CaptureError::EmptyFolder(dir.display().to_string()));
            }
            files.sort();
            return Ok(Opened::Folder {
                files: files.into_iter(),
            });
        }
        SourceKind::Stream(u) => (u.clone(), videoio::CAP_FFMPEG, false),
        SourceKind::Device(d) => (d.clone(), videoio::CAP_V4L2, false),
        SourceKind::File(p) => {
            if !p.is_file() {
                return Err(CaptureError::Open(format!("{}: no such file", p.display())));
            }
            (p.display().to_string(), videoio::CAP_ANY, true)
        }
    };
    let params = opencv::core::Vector::<i32>::from_slice(&[
        videoio::CAP_PROP_OPEN_TIMEOUT_MSEC,
        STREAM_TIMEOUT_MS,
        videoio::CAP_PROP_READ_TIMEOUT_MSEC,
        STREAM_TIMEOUT_MS,
    ]);
    let cap = if matches!(kind, SourceKind::Stream(_)) {
        videoio::VideoCapture::from_file_with_params(&name, api, &params)?
    } else {
        videoio::VideoCapture::from_file(&name, api)?
    };
    if !cap.is_opened()? {
        return Err(CaptureError::Open(redact(&name)));
    }
    let pace = if file {
        let fps = cap.get(videoio::CAP_PROP_FPS).unwrap_or(0.0);
        if fps.is_finite() && fps > 0.5 {
            1.0 / fps
        } else {
            1.0 / 25.0
        }
    } else {
        0.0
    };
    Ok(Opened::Capture { cap, pace })
}

/// One step of a source.
#[derive(Debug)]
pub enum Read {
    /// A frame was grabbed; `Some` when it was also decoded (sampled).
    Frame(Option<Mat>),
    /// The source ended (a file or folder) or was lost (live).
    End,
}

impl Opened {
    /// Grab the next frame, decoding it only when `sample` is set.
    pub fn next(&mut self, sample: bool) -> Result<Read, CaptureError> {
        match self {
            Opened::Capture { cap, .. } => {
                if !cap.grab()? {
                    return Ok(Read::End);
                }
                if !sample {
                    return Ok(Read::Frame(None));
                }
                let mut m = Mat::default();
                if !cap.retrieve(&mut m, 0)? || m.empty() {
                    return Ok(Read::End);
                }
                Ok(Read::Frame(Some(m)))
            }
            Opened::Folder { files } => loop {
                let Some(p) = files.next() else {
                    return Ok(Read::End);
                };
                match std::fs::read(&p)
                    .ok()
                    .and_then(|b| crate::image::decode(&b).ok())
                {
                    Some(m) => return Ok(Read::Frame(Some(m))),
                    None => {
                        tracing::warn!(file = %p.display(), "camera folder: not a usable image; skipped")
                    }
                }
            },
        }
    }

    /// Seconds to wait between frames (files and folders are paced; live sources are not).
    pub fn pace(&self, sample_interval: f64) -> f64 {
        match self {
            Opened::Capture { pace, .. } => *pace,
            Opened::Folder { .. } => sample_interval,
        }
    }
}

/// A frame as read from a source, with the wall-clock time it was read (carried into
/// `vip.arrived` as `seen_at`, so the delay from camera to PAD can be measured).
#[derive(Debug)]
pub struct Captured {
    /// The decoded frame.
    pub frame: Mat,
    /// When it was read.
    pub read_at: DateTime<Utc>,
}

/// A one-frame mailbox: a new frame replaces an unprocessed one.
#[derive(Debug, Default)]
pub struct Slot {
    frame: Mutex<Option<Captured>>,
    ready: Condvar,
    /// Frames replaced before inference took them.
    pub dropped: std::sync::atomic::AtomicU64,
}

impl Slot {
    /// Put a frame just read, replacing (and counting) one that was not taken.
    pub fn put(&self, frame: Mat) {
        let c = Captured {
            frame,
            read_at: Utc::now(),
        };
        let mut g = self.frame.lock().unwrap_or_else(|e| e.into_inner());
        if g.replace(c).is_some() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.ready.notify_one();
    }

    /// Take the frame, waiting up to `timeout`.
    pub fn take(&self, timeout: Duration) -> Option<Captured> {
        let g = self.frame.lock().unwrap_or_else(|e| e.into_inner());
        let (mut g, _) = self
            .ready
            .wait_timeout_while(g, timeout, |f| f.is_none())
            .unwrap_or_else(|e| e.into_inner());
        g.take()
    }
}

/// Sleep up to `d`, waking early when cancelled. Returns false when cancelled.
fn nap(cancel: &CancellationToken, d: Duration) -> bool {
    let end = Instant::now() + d;
    while !cancel.is_cancelled() {
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
    false
}

fn offline_key(camera: &str) -> String {
    format!("camera.offline:{camera}")
}

fn raise_offline(store: &Store, camera: &str, source: &str, reason: &str) {
    let (camera, source, reason) = (camera.to_string(), source.to_string(), reason.to_string());
    let r = store.write_blocking(move |tx| {
        let key = offline_key(&camera);
        let msg = format!("camera {camera} is offline: {reason}");
        alerts::raise(
            tx,
            &NewAlert {
                kind: "camera.offline",
                level: Level::Warning,
                source: Some(&camera),
                key: Some(&key),
                message: &msg,
                data: json!({"camera": camera, "source": redact(&source), "reason": reason}),
            },
        )
        .map(|_| ())
    });
    if let Err(e) = r {
        tracing::error!(error = %e, "cannot record the camera alert");
    }
}

fn clear_offline(store: &Store, camera: &str) {
    let key = offline_key(camera);
    if let Err(e) = store.write_blocking(move |tx| alerts::clear(tx, &key).map(|_| ())) {
        tracing::error!(error = %e, "cannot clear the camera alert");
    }
}

/// A source for logs and alerts: the password of a URL is hidden.
pub fn redact(source: &str) -> String {
    if let Some((scheme, rest)) = source.split_once("://")
        && let Some((cred, host)) = rest.split_once('@')
    {
        let user = cred.split(':').next().unwrap_or("");
        return format!("{scheme}://{user}:***@{host}");
    }
    source.to_string()
}

/// The capture loop of one camera: open with back-off, sample, hand frames to the slot.
pub fn capture_loop(
    store: &Store,
    cam: &Camera,
    cfg: &FacesConfig,
    slot: &Slot,
    cancel: &CancellationToken,
) {
    let kind = SourceKind::of(&cam.source);
    let interval = 1.0 / cfg.sample_fps;
    let mut backoff = Duration::from_secs(1);
    while !cancel.is_cancelled() {
        let mut src = match open(&kind) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(camera = %cam.id, source = %redact(&cam.source), error = %e,
                    retry_s = backoff.as_secs(), "camera unavailable; retrying");
                raise_offline(store, &cam.id, &cam.source, &e.to_string());
                if !nap(cancel, backoff) {
                    return;
                }
                backoff = (backoff * 2).min(cfg.reconnect_max);
                continue;
            }
        };
        tracing::info!(camera = %cam.id, source = %redact(&cam.source), "camera opened");
        let mut first = true;
        let pace = src.pace(interval);
        let mut next_sample = Instant::now();
        let mut next_frame = Instant::now();
        let ended = loop {
            if cancel.is_cancelled() {
                return;
            }
            let sample = Instant::now() >= next_sample;
            match src.next(sample) {
                Ok(Read::Frame(m)) => {
                    if first {
                        first = false;
                        backoff = Duration::from_secs(1);
                        clear_offline(store, &cam.id);
                    }
                    if let Some(m) = m {
                        slot.put(m);
                        next_sample += Duration::from_secs_f64(interval);
                        if next_sample < Instant::now() {
                            next_sample = Instant::now() + Duration::from_secs_f64(interval);
                        }
                    }
                }
                Ok(Read::End) => break None,
                Err(e) => break Some(e.to_string()),
            }
            if pace > 0.0 {
                next_frame += Duration::from_secs_f64(pace);
                let now = Instant::now();
                if next_frame > now && !nap(cancel, next_frame - now) {
                    return;
                }
                if next_frame < now {
                    next_frame = now;
                }
            }
        };
        if !kind.is_live() && ended.is_none() {
            if !cam.looped {
                tracing::info!(camera = %cam.id, "camera source ended");
                return;
            }
            if !first {
                tracing::debug!(camera = %cam.id, "camera source ended; playing it again");
                continue;
            }
        }
        let reason = match ended {
            Some(e) => e,
            None if !kind.is_live() => "the source holds no frame".into(),
            None => "the stream ended".into(),
        };
        tracing::warn!(camera = %cam.id, %reason, "camera lost; reconnecting");
        raise_offline(store, &cam.id, &cam.source, &reason);
        if !nap(cancel, backoff) {
            return;
        }
        backoff = (backoff * 2).min(cfg.reconnect_max);
    }
}

/// The inference loop of one camera: take the latest frame, find and match faces, record
/// confirmed recognitions.
pub fn inference_loop(vision: &Vision, cam: &Camera, slot: &Slot, cancel: &CancellationToken) {
    let core = &vision.core;
    let cfg = &core.cfg.faces;
    let names = ModelNames::from(cfg);
    let mut engine_gen = core.models.generation();
    let mut engine = match FaceEngine::load_from(&core.models, &names, cfg.threads) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(camera = %cam.id, error = %e, "face models unavailable; recognition off");
            let (camera, msg) = (cam.id.clone(), e.to_string());
            let _ = core.store.write_blocking(move |tx| {
                alerts::raise(
                    tx,
                    &NewAlert {
                        kind: "vision.unavailable",
                        level: Level::Critical,
                        source: Some(&camera),
                        key: Some("vision.unavailable"),
                        message: &format!("face recognition is unavailable: {msg}"),
                        data: json!({"camera": camera}),
                    },
                )
                .map(|_| ())
            });
            return;
        }
    };
    let rules = Rules::from(cfg);
    let mut gallery = Gallery::default();
    let mut gen_seen = u64::MAX;
    let mut confirmer = Confirmer::new(cfg.confirm_frames);
    while !cancel.is_cancelled() {
        let Some(Captured { frame, read_at }) = slot.take(Duration::from_millis(200)) else {
            continue;
        };
        // Between two frames: a replaced model is loaded before the next inference; one
        // that fails to load leaves the engine as it is.
        let models_now = core.models.generation();
        if models_now != engine_gen {
            engine_gen = models_now;
            match FaceEngine::load_from(&core.models, &names, cfg.threads) {
                Ok(e) => {
                    tracing::info!(camera = %cam.id, generation = models_now, "face models reloaded");
                    engine = e;
                }
                Err(e) => {
                    tracing::error!(camera = %cam.id, error = %e, "face models not reloaded; keeping the loaded ones")
                }
            }
        }
        let gen_now = vision.gallery_gen();
        if gen_now != gen_seen {
            let (mid, dim) = (cfg.model_id.clone(), cfg.dim);
            match core
                .store
                .read_blocking(move |c| gallery::load(c, &mid, dim))
            {
                Ok(g) => {
                    tracing::info!(camera = %cam.id, enrolled = g.len(), "VIP gallery loaded");
                    gallery = g;
                    gen_seen = gen_now;
                }
                Err(e) => tracing::error!(error = %e, "cannot load the VIP gallery"),
            }
        }
        let matches = match frame_matches(&mut engine, &frame, &gallery, &rules) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(camera = %cam.id, error = %e, "frame skipped");
                continue;
            }
        };
        drop(frame);
        for (customer_id, confidence) in confirmer.frame(&matches) {
            let (camera, period, fcfg) = (cam.id.clone(), cfg.arrival_period, core.cfg.clone());
            let seen = gallery::Seen {
                camera,
                confidence,
                at: read_at,
            };
            let r = core.store.write_blocking(move |tx| {
                let day = crate::clock::business_day(&fcfg, tx.now());
                gallery::recognised(tx, &customer_id, &seen, period, &day)
            });
            match r {
                Ok(Recognised::Arrived(a)) => {
                    tracing::info!(camera = %cam.id, customer = %a.customer_id, confidence = a.confidence, "VIP arrived");
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "cannot record a recognition"),
            }
        }
    }
}

/// The gallery matches of one frame (faces that pass the quality gates only).
pub fn frame_matches(
    engine: &mut FaceEngine,
    frame: &Mat,
    gallery: &Gallery,
    rules: &Rules,
) -> Result<Vec<matcher::Match>, super::engine::FaceError> {
    if gallery.is_empty() {
        return Ok(Vec::new());
    }
    let faces = engine.detector.detect_frame(frame)?;
    let mut out = Vec::new();
    for f in faces.iter().filter(|f| matcher::passes_quality(f, rules)) {
        let crop = engine.embedder.align(frame, f)?;
        let emb = engine.embedder.embed(&crop)?;
        if let Some(m) = gallery.best(&emb, rules) {
            out.push(m);
        }
    }
    Ok(out)
}

/// Start one camera: its capture and inference threads, owned by the app's tracker and
/// stopped by its cancellation token.
pub fn start_camera(vision: &Vision, cam: Camera) {
    let core = &vision.core;
    let slot = Arc::new(Slot::default());
    let cancel = core.cancel.child_token();
    {
        let (store, cam, cfg, slot, cancel) = (
            core.store.clone(),
            cam.clone(),
            core.cfg.faces.clone(),
            slot.clone(),
            cancel.clone(),
        );
        core.tracker.spawn_blocking(move || {
            capture_loop(&store, &cam, &cfg, &slot, &cancel);
            tracing::debug!(camera = %cam.id, "capture stopped");
        });
    }
    let v2 = vision.clone();
    core.tracker.spawn_blocking(move || {
        inference_loop(&v2, &cam, &slot, &cancel);
        tracing::debug!(camera = %cam.id, "inference stopped");
    });
}

/// Enrol every pending photo with `engine`. Returns how many were enrolled. A photo that
/// cannot be enrolled is dropped and head office is told why (`vip.enrolment_failed`).
pub fn enrol_pending(store: &Store, engine: &mut FaceEngine) -> Result<usize, StoreError> {
    let pending = store.read_blocking(crate::vips::photos_pending)?;
    let model_id = engine.embedder.spec.model_id.clone();
    let mut n = 0;
    for (customer_id, photo) in pending {
        match engine.enrolment_embedding(&photo) {
            Ok(emb) => {
                let (c, m) = (customer_id.clone(), model_id.clone());
                if store.write_blocking(move |tx| crate::vips::photo_enrolled(tx, &c, &emb, &m))? {
                    n += 1;
                }
            }
            Err(e) => {
                tracing::warn!(customer = %customer_id, error = %e, "VIP photo not enrolled");
                let reason = e.to_string();
                store.write_blocking(move |tx| {
                    crate::vips::photo_refused(tx, &customer_id, &reason)
                })?;
            }
        }
    }
    Ok(n)
}

/// Drop every pending photo, telling head office `reason` (`vip.enrolment_failed`).
pub fn refuse_pending(store: &Store, reason: &str) -> Result<usize, StoreError> {
    let pending = store.read_blocking(crate::vips::photos_pending)?;
    let n = pending.len();
    for (customer_id, _) in pending {
        let reason = reason.to_string();
        store.write_blocking(move |tx| crate::vips::photo_refused(tx, &customer_id, &reason))?;
    }
    Ok(n)
}

/// With recognition disabled no photo is ever enrolled: drop those pending now and those
/// head office sends later, as they arrive.
pub fn refuse_all_photos(vision: &Vision) {
    let core = vision.core.clone();
    let mut events = core.store.follow(*core.store.committed().borrow());
    const REASON: &str = "face recognition is disabled on this box";
    vision.core.tracker.spawn(async move {
        let mut pending = true;
        loop {
            if pending {
                pending = false;
                let store = core.store.clone();
                match tokio::task::spawn_blocking(move || refuse_pending(&store, REASON)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(StoreError::Closed)) => break,
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot drop pending VIP photos"),
                    Err(e) => tracing::warn!(error = %e, "cannot drop pending VIP photos"),
                }
            }
            tokio::select! {
                _ = core.cancel.cancelled() => break,
                ev = events.next() => match ev {
                    Ok(ev) => pending |= ev.kind == "vip.upserted"
                        && ev.data["photo_pending"] == json!(true),
                    Err(StoreError::Closed) => break,
                    Err(_) => pending = true,
                },
            }
        }
    });
}

/// Start the enrolment task: enrol pending photos at start and whenever head office sends
/// one; tell the camera workers when the gallery changes. It follows the store, so no VIP
/// change is missed however busy the box is.
pub fn start_enrolment(vision: &Vision) {
    let core = vision.core.clone();
    let v2 = vision.clone();
    let mut events = core.store.follow(*core.store.committed().borrow());
    vision.core.tracker.spawn(async move {
        let engine: Arc<LoadedEngine> = Arc::new(Mutex::new(None));
        let mut pending = true;
        loop {
            if pending {
                pending = false;
                let (v, e) = (v2.clone(), engine.clone());
                let r = tokio::task::spawn_blocking(move || enrol_with(&v, &e)).await;
                if let Ok(Ok(n)) = r
                    && n > 0
                {
                    v2.gallery_changed();
                }
            }
            tokio::select! {
                _ = core.cancel.cancelled() => break,
                ev = events.next() => match ev {
                    Ok(ev) => match ev.kind.as_str() {
                        "vip.upserted" => {
                            v2.gallery_changed();
                            pending |= ev.data["photo_pending"] == json!(true);
                        }
                        "vip.deleted" | "vip.enrolled" => v2.gallery_changed(),
                        _ => {}
                    },
                    Err(StoreError::Closed) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "VIP enrolment: cannot follow the events");
                        v2.gallery_changed();
                        pending = true;
                    }
                },
            }
        }
    });
}

/// The enrolment engine and the model generation it was loaded at.
type LoadedEngine = Mutex<Option<(FaceEngine, u64)>>;

fn enrol_with(vision: &Vision, engine: &LoadedEngine) -> Result<usize, String> {
    let core = &vision.core;
    let has_pending = core
        .store
        .read_blocking(|c| crate::vips::photos_pending(c).map(|p| !p.is_empty()))
        .map_err(|e| e.to_string())?;
    if !has_pending {
        return Ok(0);
    }
    let mut g = engine.lock().unwrap_or_else(|e| e.into_inner());
    let generation = core.models.generation();
    if g.as_ref().is_none_or(|(_, at)| *at != generation) {
        let cfg = &core.cfg.faces;
        let names = ModelNames::from(cfg);
        match FaceEngine::load_from(&core.models, &names, cfg.threads) {
            Ok(e) => *g = Some((e, generation)),
            Err(e) => {
                // A photo is personal data kept only to be enrolled: without the models
                // it is dropped at once, and head office is told why so it can send it
                // again once the box has its models.
                tracing::error!(error = %e, "cannot enrol VIP photos: face models unavailable");
                refuse_pending(&core.store, &format!("face models unavailable: {e}"))
                    .map_err(|e| e.to_string())?;
                return Err(e.to_string());
            }
        }
    }
    let Some((e, _)) = g.as_mut() else {
        return Ok(0);
    };
    enrol_pending(&core.store, e).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mat(rows: i32) -> Mat {
        Mat::new_rows_cols_with_default(
            rows,
            4,
            opencv::core::CV_8UC3,
            opencv::core::Scalar::all(0.0),
        )
        .unwrap()
    }

    #[test]
    fn a_busy_inference_gets_only_the_latest_frame_and_the_others_are_counted() {
        let slot = Slot::default();
        let before = Utc::now();
        for rows in [1, 2, 3] {
            slot.put(mat(rows));
        }
        let c = slot.take(Duration::from_millis(10)).expect("a frame");
        assert_eq!(c.frame.rows(), 3, "the newest frame");
        assert!(c.read_at >= before && c.read_at <= Utc::now());
        assert_eq!(slot.dropped.load(Ordering::Relaxed), 2);
        assert!(
            slot.take(Duration::from_millis(10)).is_none(),
            "nothing queued behind it"
        );
    }

    #[test]
    fn a_waiting_inference_wakes_when_a_frame_arrives() {
        let slot = Arc::new(Slot::default());
        let s2 = slot.clone();
        let t = std::thread::spawn(move || s2.take(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        slot.put(mat(5));
        let c = t.join().unwrap().expect("woken with the frame");
        assert_eq!(c.frame.rows(), 5);
        assert_eq!(slot.dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn sources_are_told_apart_and_only_streams_and_devices_are_live() {
        let dir = std::env::temp_dir();
        for (src, live) in [
            ("rtsp://10.0.0.20/stream1", true),
            ("HTTPS://cam.local/mjpeg", true),
            ("/dev/video0", true),
            ("/srv/videos/door.avi", false),
        ] {
            assert_eq!(SourceKind::of(src).is_live(), live, "{src}");
        }
        assert_eq!(
            SourceKind::of(&dir.display().to_string()),
            SourceKind::Folder(dir.clone())
        );
    }

    #[test]
    fn passwords_in_camera_urls_are_hidden() {
        assert_eq!(
            redact("rtsp://admin:s3cret@10.0.0.20:554/stream1"),
            "rtsp://admin:***@10.0.0.20:554/stream1"
        );
        assert_eq!(redact("/dev/video0"), "/dev/video0");
    }

    #[test]
    fn a_missing_file_or_an_empty_folder_is_a_clear_open_error() {
        let e = open(&SourceKind::File("/nonexistent/door.avi".into())).unwrap_err();
        assert!(
            e.to_string()
                .contains("/nonexistent/door.avi: no such file"),
            "{e}"
        );
        let empty = std::env::temp_dir().join(format!("branchd-empty-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let e = open(&SourceKind::Folder(empty.clone())).unwrap_err();
        std::fs::remove_dir_all(&empty).unwrap();
        assert!(matches!(e, CaptureError::EmptyFolder(_)), "{e}");
    }
}
