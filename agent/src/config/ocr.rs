//! `[ocr]`: the recognition worker pool.

use std::time::Duration;

use super::Section;

/// `[ocr]`: the recognition worker pool.
#[derive(Debug, Clone)]
pub struct Ocr {
    /// Worker threads, each with its own copy of the models.
    pub workers: usize,
    /// Requests that may wait for a worker; more are answered 503 at once.
    pub queue: usize,
    /// ONNX Runtime threads per model run.
    pub threads: usize,
    /// How long uploaded images are kept (`keep_images_min`); zero, the default, keeps none.
    pub keep_images: Duration,
}

pub(super) fn read_ocr(root: &mut Section<'_, '_>) -> Option<Ocr> {
    let mut o = Ocr {
        workers: 1,
        queue: 4,
        threads: 2,
        keep_images: Duration::ZERO,
    };
    if let Some(mut s) = root.opt_table("ocr") {
        let n = |s: &mut Section<'_, '_>, k: &str, max: i64, d: usize| {
            s.opt_int(k, 1..=max).map_or(d, |v| v as usize)
        };
        o.workers = n(&mut s, "workers", 16, o.workers);
        o.queue = n(&mut s, "queue", 256, o.queue);
        o.threads = n(&mut s, "threads", 16, o.threads);
        if let Some(min) = s.opt_int("keep_images_min", 0..=527_040) {
            o.keep_images = Duration::from_secs(min as u64 * 60);
        }
        s.finish();
    }
    Some(o)
}
