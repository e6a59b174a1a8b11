//! The `[faces]` section: models, sampling, matching and arrival rules of VIP recognition.
//!
//! ```toml
//! [faces]
//! enabled = true               # false: no camera is opened, nothing is recognised
//! detector = "face_detector"   # manifest entries (role face_detector / face_embedder)
//! embedder = "face_embedder"
//! threads = 2                  # ONNX Runtime threads per model run
//! sample_fps = 4.0             # frames taken from each camera per second
//! match_threshold = 0.35       # cosine; default: the embedder's manifest value
//! match_margin = 0.08          # best match must beat the second best by this much
//! confirm_frames = 3           # consecutive sampled frames that must agree
//! arrival_period_s = 3600      # at most one arrival per customer in this period
//! min_face_px = 40             # faces smaller than this (shorter box side) are ignored
//! min_score = 0.75             # faces the detector is less sure of are ignored
//! detect_max_side = 640        # longest side of one detector run: larger camera frames are
//!                              # scaled to fit; larger photos also run in overlapping
//!                              # full-resolution tiles
//! reconnect_max_s = 30         # camera reconnect back-off ceiling
//! ```

use std::time::Duration;

use super::Section;
use crate::models::MANIFEST;

use crate::models::faces as models;

/// `[faces]`
#[derive(Debug, Clone, PartialEq)]
pub struct FacesConfig {
    /// Recognition on or off.
    pub enabled: bool,
    /// The detector's manifest name.
    pub detector: String,
    /// The embedder's manifest name.
    pub embedder: String,
    /// The embedder's model id (what embeddings from head office must carry).
    pub model_id: String,
    /// The embedder's output length.
    pub dim: usize,
    /// ONNX Runtime threads per model run.
    pub threads: usize,
    /// Frames sampled per second and camera.
    pub sample_fps: f64,
    /// Minimum cosine for a match.
    pub match_threshold: f32,
    /// Minimum lead of the best match over the second best.
    pub match_margin: f32,
    /// Consecutive sampled frames that must name the same customer.
    pub confirm_frames: u32,
    /// One arrival per customer per this period.
    pub arrival_period: Duration,
    /// Minimum face size in pixels.
    pub min_face_px: f32,
    /// Minimum detector score.
    pub min_score: f32,
    /// Longest side, in pixels, of one detector run.
    pub detect_max_side: usize,
    /// Reconnect back-off ceiling.
    pub reconnect_max: Duration,
}

impl Default for FacesConfig {
    fn default() -> Self {
        let emb = models::embedder_spec(MANIFEST, "face_embedder").ok();
        FacesConfig {
            enabled: true,
            detector: "face_detector".into(),
            embedder: "face_embedder".into(),
            model_id: emb.as_ref().map(|e| e.model_id.clone()).unwrap_or_default(),
            dim: emb.as_ref().map_or(0, |e| e.dim),
            threads: 2,
            sample_fps: 4.0,
            match_threshold: emb.and_then(|e| e.match_threshold).unwrap_or(0.35),
            match_margin: 0.08,
            confirm_frames: 3,
            arrival_period: Duration::from_secs(3600),
            min_face_px: 40.0,
            min_score: 0.75,
            detect_max_side: 640,
            reconnect_max: Duration::from_secs(30),
        }
    }
}

/// Read `[faces]` (absent: the defaults).
pub fn read(root: &mut Section<'_, '_>) -> Option<FacesConfig> {
    let mut f = FacesConfig::default();
    let Some(mut s) = root.opt_table("faces") else {
        return Some(f);
    };
    if let Some(b) = s.opt_bool("enabled") {
        f.enabled = b;
    }
    if let Some(d) = s.opt_str("detector") {
        if let Err(e) = models::detector_spec(MANIFEST, &d) {
            s.problem("detector", e.to_string());
        }
        f.detector = d;
    }
    let mut threshold = None;
    if let Some(name) = s.opt_str("embedder") {
        match models::embedder_spec(MANIFEST, &name) {
            Ok(e) => {
                f.model_id = e.model_id;
                f.dim = e.dim;
                threshold = e.match_threshold;
            }
            Err(e) => s.problem("embedder", e.to_string()),
        }
        f.embedder = name;
    }
    if let Some(t) = threshold {
        f.match_threshold = t;
    }
    if let Some(n) = s.opt_int("threads", 1..=16) {
        f.threads = n as usize;
    }
    if let Some(v) = s.opt_float("sample_fps", 0.1..=30.0) {
        f.sample_fps = v;
    }
    if let Some(v) = s.opt_float("match_threshold", 0.0..=1.0) {
        f.match_threshold = v as f32;
    }
    if let Some(v) = s.opt_float("match_margin", 0.0..=1.0) {
        f.match_margin = v as f32;
    }
    if let Some(v) = s.opt_int("confirm_frames", 1..=100) {
        f.confirm_frames = v as u32;
    }
    if let Some(v) = s.opt_int("arrival_period_s", 1..=7 * 86_400) {
        f.arrival_period = Duration::from_secs(v as u64);
    }
    if let Some(v) = s.opt_int("min_face_px", 8..=4096) {
        f.min_face_px = v as f32;
    }
    if let Some(v) = s.opt_float("min_score", 0.0..=1.0) {
        f.min_score = v as f32;
    }
    if let Some(v) = s.opt_int("detect_max_side", 64..=4096) {
        f.detect_max_side = v as usize;
    }
    if let Some(v) = s.opt_int("reconnect_max_s", 1..=3600) {
        f.reconnect_max = Duration::from_secs(v as u64);
    }
    s.finish();
    Some(f)
}
