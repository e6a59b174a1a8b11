//! Face pipeline latency on real photos, side by side with OpenCV's `FaceDetectorYN`.
//!
//! Each of the test photos (`../shared/testdata/faces`) is placed in a 640x480 camera-like
//! frame and JPEG-encoded; every frame then goes `FACES_BENCH_ROUNDS` times (default 10)
//! through decode → detect → align → embed → match (a gallery of the five people plus
//! 995 random customers). Printed: per-stage median and p95 in ms, sustained frames per
//! second of the whole pipeline on one worker (ONNX Runtime with `FACES_BENCH_THREADS`,
//! default 2, threads), and — on the same frames, in the same run — OpenCV ≥ 4.8's
//! `FaceDetectorYN` (from opencv-python, installed into `$BRANCHD_CACHE/faces-venv` when
//! missing) with the time ratio and the mean IoU of the boxes.
//!
//! Then end to end: the daemon runs with a camera playing a looped video (made with
//! OpenCV's VideoWriter) of four people, each enrolled from another photo of them, for
//! `FACES_E2E_S` seconds (default 40); every `vip.arrived` read from the SSE stream gives
//! one sample of (time the event was read) − (`seen_at`: when the camera read the frame
//! that confirmed the arrival). Printed: median and p95.
//!
//!     cargo bench -p branchd --bench faces

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use branchd::vision::detect::iou;
use branchd::vision::engine::{FaceEngine, ModelNames};
use branchd::vision::matcher::{Enrolled, Gallery, Rules};
use opencv::core::{Mat, Vector};
use opencv::prelude::*;

use common::{cache_root, env_or, models_dir};

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return 0.0;
    }
    s[((s.len() - 1) as f64 * p).round() as usize]
}

/// A 640x480 grey frame with the photo scaled into its middle, JPEG-encoded.
fn camera_frame(photo: &Path) -> Vec<u8> {
    let img = branchd::image::decode(&std::fs::read(photo).expect("photo")).expect("decode");
    let frame = branchd::vision::demo::frame_with(Some(&img)).expect("frame");
    let mut buf = Vector::<u8>::new();
    opencv::imgcodecs::imencode(".jpg", &frame, &mut buf, &Vector::new()).expect("encode");
    buf.to_vec()
}

/// A Python with OpenCV >= 4.8: the system one, else a venv in the cache (created once).
fn python_with_opencv() -> Option<PathBuf> {
    let ok = |py: &Path| {
        Command::new(py)
            .args([
                "-c",
                "import cv2,sys; v=tuple(int(x) for x in cv2.__version__.split('.')[:2]); sys.exit(0 if v>=(4,8) else 1)",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let system = PathBuf::from("python3");
    if ok(&system) {
        return Some(system);
    }
    let venv = cache_root().join("faces-venv");
    let py = venv.join("bin/python");
    if !ok(&py) {
        eprintln!("installing opencv-python-headless into {}", venv.display());
        let _ = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status();
        let _ = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "opencv-python-headless"])
            .status();
    }
    ok(&py).then_some(py)
}

fn main() {
    let photos_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/faces");
    if !photos_dir.is_dir() {
        eprintln!(
            "no test photos at {}; nothing to measure",
            photos_dir.display()
        );
        return;
    }
    let rounds = env_or::<usize>("FACES_BENCH_ROUNDS", 10);
    let threads = env_or::<usize>("FACES_BENCH_THREADS", 2);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&photos_dir)
        .expect("photos")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jpg" || x == "png"))
        .collect();
    files.sort();
    let frames: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|p| {
            (
                p.file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string(),
                camera_frame(p),
            )
        })
        .collect();
    let mut engine =
        FaceEngine::load(&models_dir(), &ModelNames::default(), threads).expect("face models");
    let dim = engine.embedder.spec.dim;

    // gallery: one embedding per frame's face, and 995 random unit vectors
    let mut gallery = Gallery::default();
    for (name, bytes) in frames.iter().take(5) {
        let img = branchd::image::decode(bytes).expect("decode");
        if let Some((_, e)) = engine
            .faces_with_embeddings(&img)
            .expect("faces")
            .into_iter()
            .next()
        {
            gallery.entries.push(Enrolled {
                customer_id: name.clone(),
                embedding: e,
            });
        }
    }
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    };
    for i in 0..995 {
        let v: Vec<f32> = (0..dim).map(|_| rnd()).collect();
        gallery.entries.push(Enrolled {
            customer_id: format!("R{i}"),
            embedding: branchd::vision::engine::normalise(v).expect("non-zero"),
        });
    }
    let rules = Rules::from(&branchd::config::faces::FacesConfig::default());

    let (mut dec, mut det, mut ali, mut emb, mut mat, mut tot) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let mut our_boxes: Vec<Vec<[f32; 4]>> = vec![Vec::new(); frames.len()];
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1000.0;
    // warm-up
    for (_, bytes) in &frames {
        let img = branchd::image::decode(bytes).expect("decode");
        let _ = engine.faces_with_embeddings(&img);
    }
    let wall = Instant::now();
    let mut n_frames = 0usize;
    for _ in 0..rounds {
        for (i, (_, bytes)) in frames.iter().enumerate() {
            let t0 = Instant::now();
            let t = Instant::now();
            let img = branchd::image::decode(bytes).expect("decode");
            dec.push(ms(t));
            let t = Instant::now();
            let faces = engine.detector.detect_frame(&img).expect("detect");
            det.push(ms(t));
            our_boxes[i] = faces.iter().map(|f| f.bbox).collect();
            let (mut a, mut e, mut m) = (0.0, 0.0, 0.0);
            for f in &faces {
                let t = Instant::now();
                let crop = engine.embedder.align(&img, f).expect("align");
                a += ms(t);
                let t = Instant::now();
                let v = engine.embedder.embed(&crop).expect("embed");
                e += ms(t);
                let t = Instant::now();
                std::hint::black_box(gallery.best(&v, &rules));
                m += ms(t);
            }
            ali.push(a);
            emb.push(e);
            mat.push(m);
            tot.push(ms(t0));
            n_frames += 1;
        }
    }
    let fps = n_frames as f64 / wall.elapsed().as_secs_f64();

    println!(
        "## faces: {} frames of 640x480 x {rounds} rounds, ONNX Runtime {threads} threads, gallery {}\n",
        frames.len(),
        gallery.len()
    );
    println!("| stage | median ms | p95 ms |");
    println!("|---|---:|---:|");
    for (name, v) in [
        ("decode", &dec),
        ("detect", &det),
        ("align", &ali),
        ("embed", &emb),
        ("match", &mat),
        ("total", &tot),
    ] {
        println!(
            "| {name} | {:.2} | {:.2} |",
            percentile(v, 0.5),
            percentile(v, 0.95)
        );
    }
    println!("\nsustained: {fps:.1} frames/s (one worker, whole pipeline)\n");

    // OpenCV's FaceDetectorYN on the same frames
    side_by_side(&frames, &det, &our_boxes, &engine, rounds, threads);
    large_photos(&files, &mut engine, threads);
    drop(engine);
    end_to_end(&photos_dir, threads);
}

/// OpenCV's `FaceDetectorYN` at each image's own size (`faces_opencv.py`): its JSON, or
/// `None` after saying why there is none.
fn opencv_reference(
    images: &[(String, Vec<u8>)],
    engine: &FaceEngine,
    rounds: usize,
    threads: usize,
) -> Option<serde_json::Value> {
    let Some(py) = python_with_opencv() else {
        println!("OpenCV >= 4.8 for Python is not available: no side-by-side run");
        return None;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    for (name, bytes) in images {
        std::fs::write(tmp.path().join(format!("{name}.jpg")), bytes).expect("write image");
    }
    let model = models_dir().join(&engine.detector.spec.entry.file);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/faces_opencv.py");
    let out = Command::new(&py)
        .arg(script)
        .arg(&model)
        .arg(tmp.path())
        .arg(rounds.to_string())
        .arg(threads.to_string())
        .output()
        .expect("python runs");
    if !out.status.success() {
        println!(
            "the OpenCV reference failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).expect("reference JSON"))
}

/// The reference's result for the image `name`: its times, and its boxes with scores.
fn reference_for(v: &serde_json::Value, name: &str) -> Option<(Vec<f64>, Vec<[f32; 5]>)> {
    let f = v["frames"]
        .as_array()?
        .iter()
        .find(|f| f["file"] == format!("{name}.jpg"))?;
    let ms = f["ms"]
        .as_array()?
        .iter()
        .filter_map(|x| x.as_f64())
        .collect();
    let boxes = f["boxes"]
        .as_array()?
        .iter()
        .filter_map(|b| {
            let b: Vec<f32> = b
                .as_array()?
                .iter()
                .filter_map(|x| x.as_f64())
                .map(|x| x as f32)
                .collect();
            (b.len() == 5).then(|| [b[0], b[1], b[2], b[3], b[4]])
        })
        .collect();
    Some((ms, boxes))
}

/// Detection side by side with OpenCV's `FaceDetectorYN` on the same frames.
fn side_by_side(
    frames: &[(String, Vec<u8>)],
    det: &[f64],
    our_boxes: &[Vec<[f32; 4]>],
    engine: &FaceEngine,
    rounds: usize,
    threads: usize,
) {
    let Some(v) = opencv_reference(frames, engine, rounds, threads) else {
        return;
    };
    let mut cv_ms = Vec::new();
    let mut ious = Vec::new();
    let mut count_agree = 0;
    for (i, (name, _)) in frames.iter().enumerate() {
        let Some((ms, theirs)) = reference_for(&v, name) else {
            continue;
        };
        cv_ms.extend(ms);
        let theirs: Vec<[f32; 4]> = theirs.iter().map(|b| [b[0], b[1], b[2], b[3]]).collect();
        if theirs.len() == our_boxes[i].len() {
            count_agree += 1;
        }
        for ours in &our_boxes[i] {
            let best = theirs.iter().map(|t| iou(ours, t)).fold(0.0f32, f32::max);
            ious.push(f64::from(best));
        }
    }
    let ours_med = percentile(det, 0.5);
    let cv_med = percentile(&cv_ms, 0.5);
    println!(
        "## detection side by side (OpenCV {} FaceDetectorYN, same model and frames)\n",
        v["opencv"].as_str().unwrap_or("?")
    );
    println!("| detector | median ms | p95 ms |");
    println!("|---|---:|---:|");
    println!(
        "| branchd (ort, the frame's own size) | {ours_med:.2} | {:.2} |",
        percentile(det, 0.95)
    );
    println!(
        "| OpenCV FaceDetectorYN (640x480) | {cv_med:.2} | {:.2} |",
        percentile(&cv_ms, 0.95)
    );
    println!(
        "\ntime ratio branchd/OpenCV: {:.2}; mean IoU of boxes: {:.3} over {} faces; same face count on {}/{} frames",
        ours_med / cv_med.max(1e-9),
        ious.iter().sum::<f64>() / ious.len().max(1) as f64,
        ious.len(),
        count_agree,
        frames.len()
    );
}

/// The test photos larger than one detector run, and two group pictures made of them.
fn large_images(files: &[PathBuf], max_side: i32) -> Vec<(String, Vec<u8>)> {
    let photos: Vec<(String, Mat)> = files
        .iter()
        .map(|p| {
            let name = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let img = branchd::image::decode(&std::fs::read(p).expect("photo")).expect("decode");
            (name, img)
        })
        .collect();
    let jpeg = |img: &Mat| {
        let mut buf = Vector::<u8>::new();
        opencv::imgcodecs::imencode(".jpg", img, &mut buf, &Vector::new()).expect("encode");
        buf.to_vec()
    };
    let mut out: Vec<(String, Vec<u8>)> = photos
        .iter()
        .filter(|(_, img)| img.cols().max(img.rows()) > max_side)
        .map(|(name, img)| (name.clone(), jpeg(img)))
        .collect();
    // Every photo on one canvas, each `heights[i % len]` pixels high, row after row.
    let group = |w: i32, h: i32, heights: &[i32]| {
        let mut canvas = Mat::new_rows_cols_with_default(
            h,
            w,
            opencv::core::CV_8UC3,
            opencv::core::Scalar::all(128.0),
        )
        .expect("canvas");
        let (mut x, mut y, mut row_h) = (40, 40, 0);
        for (i, (_, img)) in photos.iter().enumerate() {
            let ph = heights[i % heights.len()];
            let pw = (img.cols() * ph / img.rows()).max(1);
            if x + pw > w - 40 {
                (x, y, row_h) = (40, y + row_h + 40, 0);
            }
            if y + ph > h - 40 {
                break;
            }
            let mut scaled = Mat::default();
            opencv::imgproc::resize(
                img,
                &mut scaled,
                opencv::core::Size::new(pw, ph),
                0.0,
                0.0,
                opencv::imgproc::INTER_AREA,
            )
            .expect("resize");
            let mut roi =
                Mat::roi_mut(&mut canvas, opencv::core::Rect::new(x, y, pw, ph)).expect("roi");
            scaled.copy_to(&mut roi).expect("copy");
            (x, row_h) = (x + pw + 40, row_h.max(ph));
        }
        jpeg(&canvas)
    };
    out.push(("group_small".into(), group(3200, 1800, &[260, 300, 340])));
    out.push((
        "group_mixed".into(),
        group(4000, 3000, &[900, 420, 180, 640, 240]),
    ));
    out
}

/// Photos larger than one detector run: is every face OpenCV finds at full resolution
/// (score ≥ 0.8) found, and how well do the boxes agree.
fn large_photos(files: &[PathBuf], engine: &mut FaceEngine, threads: usize) {
    let max_side = engine.detector.max_side();
    let images = large_images(files, max_side as i32);
    let rounds = 3;
    let Some(v) = opencv_reference(&images, engine, rounds, threads) else {
        return;
    };
    println!(
        "\n## photos larger than one run ({max_side} px): faces OpenCV FaceDetectorYN finds at full resolution (score ≥ 0.8)\n"
    );
    println!(
        "| image | size | OpenCV faces | found | mean IoU | branchd ms | OpenCV ms (full size) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    let (mut total, mut found, mut ious) = (0, 0, Vec::new());
    for (name, bytes) in &images {
        let Some((cv_ms, theirs)) = reference_for(&v, name) else {
            continue;
        };
        let img = branchd::image::decode(bytes).expect("decode");
        let mut ours = Vec::new();
        let mut times = Vec::new();
        for _ in 0..rounds {
            let t = Instant::now();
            ours = engine.detector.detect(&img).expect("detect");
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let theirs: Vec<[f32; 4]> = theirs
            .iter()
            .filter(|b| b[4] >= 0.8)
            .map(|b| [b[0], b[1], b[2], b[3]])
            .collect();
        let mut here = Vec::new();
        for t in &theirs {
            let best = ours.iter().map(|o| iou(&o.bbox, t)).fold(0.0f32, f32::max);
            here.push(f64::from(best));
        }
        let hit = here.iter().filter(|v| **v >= 0.5).count();
        println!(
            "| {name} | {}x{} | {} | {hit} | {:.3} | {:.1} | {:.1} |",
            img.cols(),
            img.rows(),
            theirs.len(),
            here.iter().sum::<f64>() / here.len().max(1) as f64,
            percentile(&times, 0.5),
            percentile(&cv_ms, 0.5)
        );
        total += theirs.len();
        found += hit;
        ious.extend(here);
    }
    println!(
        "\nfound {found} of {total} faces; mean IoU {:.3} (a face not found counts 0)",
        ious.iter().sum::<f64>() / ious.len().max(1) as f64
    );
}

/// (enrolment photo, photo the camera sees) for each of four people.
const E2E_PEOPLE: &[(&str, &str, &str)] = &[
    ("C-ROSE", "rose_leslie_img1.jpg", "rose_leslie_img2.jpg"),
    ("C-OBAMA", "test_obama1.jpg", "test_images_obama.jpg"),
    ("C-BIDEN", "biden_biden2.jpg", "test_images_biden.jpg"),
    (
        "C-ALEX",
        "alex_lacamoire_img1.jpg",
        "examples_alex-lacamoire.png",
    ),
];

/// End to end, frame read → `vip.arrived` on the SSE stream, through a running daemon.
fn end_to_end(photos: &Path, threads: usize) {
    let secs = env_or::<u64>("FACES_E2E_S", 40);
    if secs == 0 {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let lat = rt.block_on(e2e_run(photos, threads, secs));
    println!(
        "\n## end to end: camera frame read → vip.arrived on SSE ({secs} s, looped 10 fps video, 4 enrolled people, sample_fps 10, confirm 3 frames)\n"
    );
    if lat.is_empty() {
        println!("no arrival was announced: nothing to report");
        return;
    }
    println!("| arrivals | median ms | p95 ms | max ms |");
    println!("|---:|---:|---:|---:|");
    println!(
        "| {} | {:.1} | {:.1} | {:.1} |",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.95),
        lat.iter().copied().fold(0.0, f64::max)
    );
}

async fn e2e_run(photos: &Path, threads: usize, secs: u64) -> Vec<f64> {
    use futures_util::StreamExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let video = dir.path().join("entrance.avi");
    let mut segments: Vec<(Option<PathBuf>, usize)> = Vec::new();
    for (_, _, seen) in E2E_PEOPLE {
        segments.push((Some(photos.join(seen)), 15));
        segments.push((None, 5));
    }
    let segs: Vec<(Option<&Path>, usize)> =
        segments.iter().map(|(p, n)| (p.as_deref(), *n)).collect();
    branchd::vision::demo::write_video(&video, 10.0, &segs).expect("video");
    let text = format!(
        "[branch]\nid = \"B001\"\nname = \"bench\"\ndata_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
         [models]\ndir = \"{}\"\n[faces]\nthreads = {threads}\nsample_fps = 10\nconfirm_frames = 3\narrival_period_s = 1\n\
         [[cameras]]\nid = \"entrance\"\nsource = \"{}\"\nloop = true\n",
        dir.path().display(),
        models_dir().display(),
        video.display()
    );
    let cfg = branchd::config::Config::parse(&text).expect("bench config");
    let (db, models, photos) = (cfg.db_path(), models_dir(), photos.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let store = branchd::app::open_store(&db).expect("store");
        let hash = branchd::users::hash_password("bench-password");
        store
            .write_blocking(move |tx| {
                branchd::users::insert_user(tx, "lm", branchd::users::Role::LobbyManager, &hash)
            })
            .expect("user");
        let mut eng = FaceEngine::load(&models, &ModelNames::default(), 2).expect("models");
        let model_id = eng.embedder.spec.model_id.clone();
        for (id, enrol, _) in E2E_PEOPLE {
            let emb = eng
                .enrolment_embedding(&std::fs::read(photos.join(enrol)).expect("photo"))
                .expect("enrolment");
            let e = branchd::vips::LocalEnrolment {
                customer_id: id.to_string(),
                name: id.to_string(),
                level: "vip1".into(),
                tags: Vec::new(),
                relationship_manager: None,
            };
            let m = model_id.clone();
            store
                .write_blocking(move |tx| branchd::vips::enrol_local(tx, &e, &emb, &m, "bench"))
                .expect("enrol");
        }
        store.close();
    })
    .await
    .expect("prepare");
    let running = branchd::app::start(cfg).await.expect("daemon starts");
    let base = format!("http://{}", running.addr);
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let login = c
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "lm", "password": "bench-password"}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 200, "login");
    let resp = c
        .get(format!("{base}/api/v1/events"))
        .send()
        .await
        .expect("events");
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let mut lat = Vec::new();
    let end = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(end, body.next()).await {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(i) = buf.find("\n\n") {
            let frame: String = buf.drain(..i + 2).collect();
            let received = chrono::Utc::now();
            if !frame
                .lines()
                .any(|l| l.trim() == "event: vip.arrived" || l.trim() == "event:vip.arrived")
            {
                continue;
            }
            let data: String = frame
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            let v: serde_json::Value = serde_json::from_str(&data).expect("event JSON");
            let seen = v["data"]["seen_at"].as_str().expect("seen_at");
            let seen = chrono::DateTime::parse_from_rfc3339(seen).expect("seen_at time");
            lat.push(
                (received - seen.with_timezone(&chrono::Utc))
                    .num_microseconds()
                    .unwrap_or(0) as f64
                    / 1000.0,
            );
        }
    }
    drop(body);
    running.shutdown(std::time::Duration::from_secs(5)).await;
    lat
}
