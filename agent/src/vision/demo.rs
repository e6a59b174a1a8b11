//! A camera for `branchd demo` (and a video maker for tests and benchmarks): an entrance
//! video made at start from real face photos, played in a loop, with one enrolled VIP.
//!
//! The photos come from the folder named by `BRANCHD_DEMO_FACES` (the project's `dev`
//! script points it at the shared test photos). Without that folder, or without the face
//! models, the demo simply has no camera.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use opencv::core::{Mat, Rect, Scalar, Size};
use opencv::prelude::*;

use super::engine::{FaceEngine, ModelNames};
use crate::config::Config;
use crate::store::Store;
use crate::vips::{self, LocalEnrolment};

/// Frame size of made videos.
pub const FRAME: (i32, i32) = (640, 480);

/// A 640x480 grey frame with `photo` scaled into its middle (or just grey).
pub fn frame_with(photo: Option<&Mat>) -> anyhow::Result<Mat> {
    let (fw, fh) = FRAME;
    let mut frame =
        Mat::new_rows_cols_with_default(fh, fw, opencv::core::CV_8UC3, Scalar::all(90.0))?;
    if let Some(img) = photo {
        let s = (f64::from(fw) / f64::from(img.cols())).min(f64::from(fh) / f64::from(img.rows()));
        let (w, h) = (
            (f64::from(img.cols()) * s) as i32,
            (f64::from(img.rows()) * s) as i32,
        );
        let mut small = Mat::default();
        opencv::imgproc::resize(
            img,
            &mut small,
            Size::new(w, h),
            0.0,
            0.0,
            opencv::imgproc::INTER_AREA,
        )?;
        let mut roi = Mat::roi_mut(&mut frame, Rect::new((fw - w) / 2, (fh - h) / 2, w, h))?;
        small.copy_to(&mut roi)?;
    }
    Ok(frame)
}

/// Write an MJPG `.avi` at `fps`: each `(photo, frames)` segment in turn, the photo placed
/// in a 640x480 frame (`None`: an empty grey frame).
pub fn write_video(
    path: &Path,
    fps: f64,
    segments: &[(Option<&Path>, usize)],
) -> anyhow::Result<()> {
    use opencv::videoio::VideoWriter;
    let fourcc = VideoWriter::fourcc('M', 'J', 'P', 'G')?;
    let mut w = VideoWriter::new(
        &path.display().to_string(),
        fourcc,
        fps,
        Size::new(FRAME.0, FRAME.1),
        true,
    )?;
    anyhow::ensure!(w.is_opened()?, "OpenCV cannot write {}", path.display());
    for (photo, n) in segments {
        let img = match photo {
            Some(p) => {
                let bytes =
                    std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
                Some(crate::image::decode(&bytes).with_context(|| format!("{}", p.display()))?)
            }
            None => None,
        };
        let f = frame_with(img.as_ref())?;
        for _ in 0..*n {
            w.write(&f)?;
        }
    }
    w.release()?;
    Ok(())
}

/// The demo's photo folder, if `BRANCHD_DEMO_FACES` names one holding the photos it uses.
fn photos() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("BRANCHD_DEMO_FACES")?);
    [ENROLLED_PHOTO, ARRIVING_PHOTO]
        .iter()
        .chain(PASSERS_BY)
        .all(|f| dir.join(f).is_file())
        .then_some(dir)
}

/// The VIP's enrolment photo (never in the video).
const ENROLLED_PHOTO: &str = "rose_leslie_img1.jpg";
/// Another photo of the VIP, as the camera sees her.
const ARRIVING_PHOTO: &str = "rose_leslie_img2.jpg";
/// Customers who are not enrolled.
const PASSERS_BY: &[&str] = &["test_images_obama.jpg", "biden_biden2.jpg"];

/// One arrival of the demo's VIP per this many seconds.
pub const DEMO_ARRIVAL_PERIOD_S: i64 = 300;

/// The demo's VIP.
pub fn demo_vip() -> LocalEnrolment {
    LocalEnrolment {
        customer_id: "C-20931".into(),
        name: "Rose Leslie".into(),
        level: "vip2".into(),
        tags: vec![
            "birthday on Thursday".into(),
            "time deposit matures next week".into(),
        ],
        // the demo's branch manager plays her relationship manager
        relationship_manager: Some("manager".into()),
    }
}

/// Whether the face models' files are in `dir` (checked in full when they are loaded).
fn models_present(dir: &Path) -> bool {
    let names = ModelNames::default();
    let manifest = crate::models::MANIFEST;
    crate::models::faces::detector_spec(manifest, &names.detector)
        .map(|d| dir.join(&d.entry.file).is_file())
        .unwrap_or(false)
        && crate::models::faces::embedder_spec(manifest, &names.embedder)
            .map(|e| dir.join(&e.entry.file).is_file())
            .unwrap_or(false)
}

/// Add an `entrance` camera playing a looped video of people arriving (the VIP among
/// passers-by) to the demo config; the video is made in the demo's data dir. Nothing is
/// added when the photos or the face models are missing.
pub fn prepare(doc: &mut toml_edit::DocumentMut) -> anyhow::Result<()> {
    let Some(dir) = photos() else {
        tracing::info!("demo: no face photos (BRANCHD_DEMO_FACES); the demo has no camera");
        return Ok(());
    };
    let models = match doc
        .get("models")
        .and_then(|m| m.get("dir"))
        .and_then(|d| d.as_str())
    {
        Some(d) => PathBuf::from(d),
        None => crate::config::default_models_dir(),
    };
    if !models_present(&models) {
        tracing::info!(dir = %models.display(), "demo: no face models; the demo has no camera");
        return Ok(());
    }
    let data_dir = doc["branch"]["data_dir"]
        .as_str()
        .unwrap_or("./demo-data")
        .to_string();
    let folder = Path::new(&data_dir).join("demo-camera");
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    let video = folder.join("entrance.avi");
    let (rose, obama, biden) = (
        dir.join(ARRIVING_PHOTO),
        dir.join(PASSERS_BY[0]),
        dir.join(PASSERS_BY[1]),
    );
    // 10 fps, 14 s a loop: an empty doorway, a passer-by, the VIP, another passer-by.
    write_video(
        &video,
        10.0,
        &[
            (None, 20),
            (Some(&obama), 30),
            (None, 10),
            (Some(&rose), 40),
            (None, 10),
            (Some(&biden), 30),
        ],
    )
    .context("cannot make the demo camera's video")?;
    let mut cam = toml_edit::Table::new();
    cam["id"] = toml_edit::value("entrance");
    cam["source"] = toml_edit::value(video.display().to_string());
    cam["loop"] = toml_edit::value(true);
    let mut cams = toml_edit::ArrayOfTables::new();
    cams.push(cam);
    doc["cameras"] = toml_edit::Item::ArrayOfTables(cams);
    // the compressed day: she is announced again every five minutes of the loop
    if doc.get("faces").is_none() {
        doc["faces"] = toml_edit::Item::Table(toml_edit::Table::new());
    }
    doc["faces"]["arrival_period_s"] = toml_edit::value(DEMO_ARRIVAL_PERIOD_S);
    Ok(())
}

/// Enrol the demo's VIP from her enrolment photo, unless she is enrolled already (the
/// photo is read, embedded and forgotten, as for any enrolment).
pub fn enrol(store: &Store, cfg: &Config) -> anyhow::Result<()> {
    if cfg.cameras.is_empty() || !cfg.faces.enabled {
        return Ok(());
    }
    let Some(dir) = photos() else {
        return Ok(());
    };
    let vip = demo_vip();
    let id = vip.customer_id.clone();
    let known = store.read_blocking(move |c| crate::vips::get(c, &id))?;
    if known.is_some_and(|v| v.model_id.as_deref() == Some(cfg.faces.model_id.as_str())) {
        return Ok(());
    }
    let names = ModelNames::from(&cfg.faces);
    let mut engine = FaceEngine::load(&cfg.models.dir, &names, cfg.faces.threads)?;
    let photo = std::fs::read(dir.join(ENROLLED_PHOTO))?;
    let emb = engine.enrolment_embedding(&photo)?;
    let model_id = engine.embedder.spec.model_id.clone();
    store.write_blocking(move |tx| vips::enrol_local(tx, &vip, &emb, &model_id, "demo"))?;
    Ok(())
}
