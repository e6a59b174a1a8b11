//! Faces end to end on real photos: detection, alignment and embedding with the real
//! models, enrolment and matching (the cosine table is printed), bad input, refused model
//! files, the CLI.
//!
//! Needs the fetched face models (`python3 models/fetch.py`, in `$BRANCHD_MODELS` or
//! `$BRANCHD_CACHE/models`). The photos are read from `../shared/testdata/faces` beside the
//! repository; without them the photo tests say so and pass without checking.

#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::TestBox;
use branchd::image::ImageError;
use branchd::vision::engine::{Detector, EnrolError, FaceEngine, FaceError, ModelNames};
use branchd::vision::matcher::{Enrolled, Gallery, Rules};

const BIN: &str = env!("CARGO_BIN_EXE_branchd");

pub fn models_dir() -> PathBuf {
    crate::common::models_dir("face_detection_yunet_2023mar.onnx")
}

/// The photos and whose they are, or `None` (with a message) when they are absent.
pub fn photos() -> Option<Vec<(&'static str, PathBuf)>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/faces");
    if !dir.is_dir() {
        eprintln!(
            "SKIPPED: no test photos at {} (the shared test data is not checked out here)",
            dir.display()
        );
        return None;
    }
    let list = [
        ("obama", "test_images_obama.jpg"),
        ("obama", "test_images_obama2.jpg"),
        ("obama", "test_images_obama3.jpg"),
        ("obama", "test_obama1.jpg"),
        ("biden", "test_images_biden.jpg"),
        ("biden", "biden_biden2.jpg"),
        ("rose", "rose_leslie_img1.jpg"),
        ("rose", "rose_leslie_img2.jpg"),
        ("alex", "alex_lacamoire_img1.jpg"),
        ("alex", "examples_alex-lacamoire.png"),
        ("lin", "examples_lin-manuel-miranda.png"),
    ];
    Some(list.iter().map(|(p, f)| (*p, dir.join(f))).collect())
}

fn engine() -> FaceEngine {
    FaceEngine::load(&models_dir(), &ModelNames::default(), 2).expect("face models load")
}

#[test]
fn every_photo_yields_exactly_its_face_with_landmarks_inside_the_box() {
    let Some(photos) = photos() else { return };
    let mut det = Detector::load(&models_dir(), "face_detector", 2).unwrap();
    for (_, path) in &photos {
        let bytes = std::fs::read(path).unwrap();
        let (all, timing) = det.detect_bytes(&bytes).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        // the quality gate of enrolment and matching: weaker detections are partial faces
        // at the edge or people far behind
        let faces: Vec<_> = all
            .iter()
            .filter(|f| f.score >= branchd::vision::engine::ENROL_MIN_SCORE)
            .copied()
            .collect();
        assert_eq!(faces.len(), 1, "{name}: {all:?}");
        for weak in all.iter().filter(|f| f.score < 0.75) {
            eprintln!(
                "{name}: also a weak detection {:?} score {:.3}",
                weak.bbox, weak.score
            );
        }
        let f = faces[0];
        let img = branchd::image::decode(&bytes).unwrap();
        use opencv::prelude::MatTraitConst;
        let (w, h) = (img.cols() as f32, img.rows() as f32);
        let [x, y, bw, bh] = f.bbox;
        assert!(f.score > 0.8, "{name}: score {}", f.score);
        assert!(bw > 40.0 && bh > 40.0, "{name}: {:?}", f.bbox);
        assert!(x > -bw * 0.1 && y > -bh * 0.1 && x + bw < w + bw * 0.1 && y + bh < h + bh * 0.1);
        for p in f.landmarks {
            assert!(
                p[0] > x && p[0] < x + bw && p[1] > y && p[1] < y + bh,
                "{name}: landmark {p:?} outside {:?}",
                f.bbox
            );
        }
        // the right eye (image left) is left of the left eye, the eyes above the mouth
        let lm = f.landmarks;
        assert!(lm[0][0] < lm[1][0] && lm[3][0] < lm[4][0], "{name}: {lm:?}");
        assert!(lm[0][1] < lm[3][1] && lm[1][1] < lm[4][1], "{name}: {lm:?}");
        eprintln!(
            "{name}: {}x{} box {:?} score {:.3} ({:.0} ms)",
            w, h, f.bbox, f.score, timing.total
        );
    }
}

#[test]
fn a_camera_frame_larger_than_one_run_is_scaled_to_fit_and_shows_the_face_the_photo_has() {
    let Some(photos) = photos() else { return };
    let mut det = Detector::load(&models_dir(), "face_detector", 2).unwrap();
    assert_eq!(det.max_side(), 640, "the size the model was trained at");
    let strong = |faces: Vec<branchd::vision::detect::Face>| -> Vec<_> {
        faces
            .into_iter()
            .filter(|f| f.score >= branchd::vision::engine::ENROL_MIN_SCORE)
            .collect()
    };
    for (_, path) in &photos {
        let name = path.file_name().unwrap().to_string_lossy();
        let img = branchd::image::decode(&std::fs::read(path).unwrap()).unwrap();
        let as_photo = strong(det.detect(&img).unwrap());
        let as_frame = strong(det.detect_frame(&img).unwrap());
        assert_eq!(as_frame.len(), 1, "{name}: {as_frame:?}");
        // the same face: boxes overlapping by more than half
        let overlap = branchd::vision::detect::iou(&as_frame[0].bbox, &as_photo[0].bbox);
        assert!(overlap > 0.5, "{name}: IoU {overlap}");
    }
}

#[test]
fn one_enrolled_photo_per_person_recognises_the_others_and_nobody_else() {
    let Some(photos) = photos() else { return };
    let mut eng = engine();
    let mut embs: Vec<(&str, String, Vec<f32>)> = Vec::new();
    for (person, path) in &photos {
        let bytes = std::fs::read(path).unwrap();
        let e = eng.enrolment_embedding(&bytes).unwrap();
        assert_eq!(e.len(), 256);
        let norm: f32 = e.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        embs.push((person, name, e));
    }
    // the cosine table
    let short = |s: &str| s.chars().take(14).collect::<String>();
    let mut table = format!("{:>14} ", "");
    for (_, n, _) in &embs {
        table.push_str(&format!("{:>14} ", short(n)));
    }
    table.push('\n');
    let (mut same_min, mut diff_max) = (f32::MAX, f32::MIN);
    for (pa, na, ea) in &embs {
        table.push_str(&format!("{:>14} ", short(na)));
        for (pb, nb, eb) in &embs {
            let c = branchd::vision::engine::cosine(ea, eb);
            table.push_str(&format!("{c:>14.3} "));
            if na != nb {
                if pa == pb {
                    same_min = same_min.min(c);
                } else {
                    diff_max = diff_max.max(c);
                }
            }
        }
        table.push('\n');
    }
    eprintln!(
        "cosine table:\n{table}same person min {same_min:.3}, different people max {diff_max:.3}"
    );
    // enrol the first photo of each person
    let mut gallery = Gallery::default();
    let mut enrolled = Vec::new();
    for (p, n, e) in &embs {
        if !gallery.entries.iter().any(|g| g.customer_id == *p) {
            gallery.entries.push(Enrolled {
                customer_id: p.to_string(),
                embedding: e.clone(),
            });
            enrolled.push(n.clone());
        }
    }
    assert_eq!(gallery.len(), 5);
    let cfg = branchd::config::faces::FacesConfig::default();
    let rules = Rules::from(&cfg);
    for (p, n, e) in &embs {
        if enrolled.contains(n) {
            continue;
        }
        let m = gallery
            .best(e, &rules)
            .unwrap_or_else(|| panic!("{n} not recognised: {:?}", gallery.ranked(e)));
        assert_eq!(m.customer_id, *p, "{n}");
        eprintln!(
            "{n}: {} at {:.3} (next {:.3})",
            m.customer_id, m.score, m.second
        );
    }
    // nobody else's photo matches a person with their own photo left out
    for (p, n, e) in &embs {
        let others = Gallery {
            entries: gallery
                .entries
                .iter()
                .filter(|g| g.customer_id != *p)
                .cloned()
                .collect(),
        };
        assert!(others.best(e, &rules).is_none(), "{n} matched someone else");
    }
    assert!(same_min >= rules.threshold, "{same_min}");
    assert!(diff_max < rules.threshold, "{diff_max}");
}

#[test]
fn bad_images_get_clear_errors_and_a_faceless_one_an_empty_list() {
    use opencv::prelude::*;
    let mut det = Detector::load(&models_dir(), "face_detector", 1).unwrap();
    let err = det.detect_bytes(b"this is not an image").unwrap_err();
    assert!(
        matches!(err, FaceError::Image(ImageError::NotAnImage)),
        "{err}"
    );
    assert_eq!(err.to_string(), "not a JPEG or PNG image");

    let encode = |w: i32, h: i32, v: f64| {
        let m = opencv::core::Mat::new_rows_cols_with_default(
            h,
            w,
            opencv::core::CV_8UC3,
            opencv::core::Scalar::all(v),
        )
        .unwrap();
        let mut buf = opencv::core::Vector::<u8>::new();
        opencv::imgcodecs::imencode(".png", &m, &mut buf, &opencv::core::Vector::new()).unwrap();
        buf.to_vec()
    };
    let err = det.detect_bytes(&encode(1, 1, 0.0)).unwrap_err();
    assert!(matches!(err, FaceError::TooSmall(1, 1)), "{err}");
    assert!(err.to_string().contains("1x1"), "{err}");

    // a huge image is refused from its header, before decoding
    let mut huge = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    huge.extend_from_slice(&50_000u32.to_be_bytes());
    huge.extend_from_slice(&50_000u32.to_be_bytes());
    huge.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    let err = det.detect_bytes(&huge).unwrap_err();
    assert!(
        matches!(err, FaceError::Image(ImageError::TooLarge(50_000, 50_000))),
        "{err}"
    );

    let (faces, _) = det.detect_bytes(&encode(640, 480, 128.0)).unwrap();
    assert!(faces.is_empty(), "{faces:?}");

    // an enrolment photo without a face is refused
    let mut eng = engine();
    let err = eng
        .enrolment_embedding(&encode(200, 200, 30.0))
        .unwrap_err();
    assert!(matches!(err, EnrolError::NoFace), "{err}");
}

#[test]
fn a_corrupt_face_model_is_refused_by_sha256() {
    let src = models_dir();
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap();
        if f.file_type().unwrap().is_file() {
            std::fs::copy(f.path(), dir.path().join(f.file_name())).unwrap();
        }
    }
    let arch_dir = src.join(std::env::consts::ARCH);
    std::fs::create_dir(dir.path().join(std::env::consts::ARCH)).unwrap();
    for f in std::fs::read_dir(&arch_dir).unwrap() {
        let f = f.unwrap();
        std::fs::copy(
            f.path(),
            dir.path().join(std::env::consts::ARCH).join(f.file_name()),
        )
        .unwrap();
    }
    let emb = dir.path().join("face_reidentification_retail_0095.onnx");
    let mut bytes = std::fs::read(&emb).unwrap();
    bytes[1000] ^= 0xFF;
    std::fs::write(&emb, bytes).unwrap();
    let err = FaceEngine::load(dir.path(), &ModelNames::default(), 1).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("face_reidentification_retail_0095.onnx") && msg.contains("sha256 mismatch"),
        "{msg}"
    );
    // the detector alone still loads
    Detector::load(dir.path(), "face_detector", 1).unwrap();
}

#[test]
fn the_faces_command_prints_the_interface_json() {
    let Some(photos) = photos() else { return };
    let out = Command::new(BIN)
        .args(["faces", "--json", "--models"])
        .arg(models_dir())
        .arg(&photos[0].1)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let faces = v["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 1, "{v}");
    assert_eq!(faces[0]["box"].as_array().unwrap().len(), 4);
    assert_eq!(faces[0]["landmarks"].as_array().unwrap().len(), 5);
    assert!(faces[0]["score"].as_f64().unwrap() > 0.8);
    for k in ["decode", "detect", "total"] {
        assert!(v["timing_ms"][k].as_f64().is_some(), "{k}: {v}");
    }

    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.jpg");
    std::fs::write(&junk, b"hello").unwrap();
    let out = Command::new(BIN)
        .args(["faces", "--models"])
        .arg(models_dir())
        .arg(&junk)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("junk.jpg") && err.contains("not a JPEG or PNG image"),
        "{err}"
    );
}

#[test]
fn vip_enroll_stores_an_embedding_and_no_photo() {
    let Some(photos) = photos() else { return };
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], photo: &Path| {
        Command::new(BIN)
            .args(["vip", "enroll"])
            .args(args)
            .arg("--photo")
            .arg(photo)
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--models")
            .arg(models_dir())
            .output()
            .unwrap()
    };
    let out = run(
        &[
            "C900",
            "--name",
            "Rose",
            "--level",
            "gold",
            "--tag",
            "birthday",
            "--consent",
        ],
        &photos[6].1,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // without consent: a usage error, nothing stored
    let out = run(&["C901", "--name", "Joe", "--level", "gold"], &photos[4].1);
    assert_eq!(out.status.code(), Some(64));
    let store = branchd::app::open_store(&dir.path().join("branchd.db")).unwrap();
    let (n, photo_null, model, emb_len): (i64, bool, String, usize) = store
        .read_blocking(|c| {
            c.query_row(
                "SELECT count(*), photo IS NULL, model_id, length(embedding) FROM vips",
                [],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get::<_, i64>(3)? as usize,
                    ))
                },
            )
            .map_err(branchd::store::StoreError::from)
        })
        .unwrap();
    store.close();
    assert_eq!((n, photo_null), (1, true));
    assert_eq!(model, "face_reidentification_retail_0095");
    assert_eq!(emb_len, 256 * 4);
}

/// Write an MJPG .avi at 10 fps: each (photo, frames) segment in turn.
fn write_video(path: &Path, segments: &[(Option<&Path>, usize)]) {
    branchd::vision::demo::write_video(path, 10.0, segments)
        .expect("a video made with VideoWriter");
}

/// A running box with the shipped face models, `config` (its `[faces]` and `[[cameras]]`)
/// and Rose Leslie enrolled from her first photo as customer `C-ROSE` (gold, tagged
/// birthday, relationship manager `rm`).
async fn box_with_rose(photos: &[(&'static str, PathBuf)], rm: &str, config: &str) -> TestBox {
    let extra = format!("[models]\ndir = \"{}\"\n{config}", models_dir().display());
    let (photo, rm) = (photos[6].1.clone(), rm.to_string());
    TestBox::start_prepared(&extra, move |store| {
        let mut eng = engine();
        let emb = eng
            .enrolment_embedding(&std::fs::read(photo).unwrap())
            .unwrap();
        let model_id = eng.embedder.spec.model_id.clone();
        let e = branchd::vips::LocalEnrolment {
            customer_id: "C-ROSE".into(),
            name: "Rose Leslie".into(),
            level: "gold".into(),
            tags: vec!["birthday".into()],
            relationship_manager: Some(rm),
        };
        store
            .write_blocking(move |tx| branchd::vips::enrol_local(tx, &e, &emb, &model_id, "test"))
            .unwrap();
    })
    .await
}

/// A lobby manager's client and the event stream from the start (no request timeout: the
/// stream stays open longer than the helpers' 20 s).
async fn lobby_stream(b: &TestBox) -> (reqwest::Client, crate::sse::Reader) {
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let login = c
        .post(b.url("/api/v1/auth/login"))
        .json(
            &serde_json::json!({"username": "lobby_manager", "password": crate::common::PASSWORD}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let r = c
        .get(b.url("/api/v1/events"))
        .header("Last-Event-ID", "0")
        .send()
        .await
        .unwrap();
    (c, crate::sse::Reader::new(r))
}

/// The `vip.arrived` events (their data) that come within `wait`.
async fn arrivals_within(
    s: &mut crate::sse::Reader,
    wait: std::time::Duration,
) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut out = Vec::new();
    while let Some(ev) = s
        .next_within(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        if ev.kind == "vip.arrived" {
            out.push(ev.data["data"].clone());
        }
    }
    out
}

/// One service, for the tickets of the tests.
const LOBBY_SERVICE: &str = "[[services]]\ncode = \"personal\"\nprefix = \"A\"\nname = \"个人业务\"\n\
                              [[counters]]\nid = \"1\"\nservices = [\"personal\"]\n";

fn ms_of(t: &serde_json::Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{t}: {e}"))
        .timestamp_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_camera_announces_the_enrolled_vip_once_and_nobody_else() {
    use std::time::Duration;
    let Some(photos) = photos() else { return };
    let vids = tempfile::tempdir().unwrap();
    let video = vids.path().join("entrance.avi");
    let (rose2, obama, biden) = (
        photos[7].1.clone(),
        photos[0].1.clone(),
        photos[4].1.clone(),
    );
    // Rose twice (one arrival per period), Obama and Biden (not enrolled) in between.
    write_video(
        &video,
        &[
            (None, 5),
            (Some(&rose2), 20),
            (None, 10),
            (Some(&obama), 20),
            (Some(&biden), 20),
            (None, 10),
            (Some(&rose2), 20),
            (None, 5),
        ],
    );
    // her relationship manager is a user of this box: the branch manager
    let config = format!(
        "[faces]\nsample_fps = 10\nconfirm_frames = 3\narrival_period_s = 3600\n\
         [[cameras]]\nid = \"entrance\"\nsource = \"{}\"\n{LOBBY_SERVICE}",
        video.display()
    );
    let b = box_with_rose(&photos, "branch_manager", &config).await;
    let (c, mut s) = lobby_stream(&b).await;
    // the video plays in real time (11 s); then give inference time to finish
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    let mut arrivals = Vec::new();
    let mut alerts = Vec::new();
    while let Some(ev) = s
        .next_within(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        match ev.kind.as_str() {
            "vip.arrived" => arrivals.push(ev.data["data"].clone()),
            "alert.raised" => alerts.push(ev.data["data"].clone()),
            _ => {}
        }
    }
    assert_eq!(arrivals.len(), 1, "one arrival per period: {arrivals:?}");
    let a = &arrivals[0];
    assert_eq!(a["customer_id"], "C-ROSE");
    assert_eq!(a["level"], "gold");
    assert_eq!(a["camera"], "entrance");
    assert!(a["confidence"].as_f64().unwrap() > 0.35, "{a}");
    assert!(a.get("embedding").is_none() && a.get("image").is_none());
    let vip_alert = alerts
        .iter()
        .find(|x| x["kind"] == "vip.arrived")
        .unwrap_or_else(|| panic!("an alert for the lobby managers: {alerts:?}"));
    // Ids only: her name, tags and relationship manager are read through the arrivals
    // route, never carried by the event or the alert (which reach head office too).
    for (what, v) in [("event", a), ("alert", vip_alert)] {
        let text = v.to_string();
        assert!(
            !text.contains("Rose") && !text.contains("birthday"),
            "personal data in the {what}: {v}"
        );
    }
    assert!(vip_alert["data"].get("relationship_manager").is_none());
    // routed to the lobby managers and, by name, to her relationship manager
    assert_eq!(
        vip_alert["data"]["notify"],
        serde_json::json!({"roles": ["lobby_manager"], "users": ["branch_manager"]})
    );
    assert!(a.get("relationship_manager").is_none(), "{a}");
    // seen before it was recorded, and not long before
    let (seen, ts) = (ms_of(&a["seen_at"]), ms_of(&a["ts"]));
    assert!(seen <= ts && ts - seen < 5_000, "{a}");

    // she takes a ticket at the PAD: it carries her level and is linked to her arrival
    let r = c
        .post(b.url("/api/v1/tickets"))
        .json(&serde_json::json!({"service": "personal", "customer_id": "C-ROSE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let t: serde_json::Value = r.json().await.unwrap();
    let number = t["number"].as_str().unwrap().to_string();
    let mut linked = None;
    let mut visit = None;
    while let Some(ev) = s.next_within(Duration::from_secs(5)).await {
        match ev.kind.as_str() {
            "ticket.issued" => {
                assert_eq!(ev.data["data"]["customer_level"], "vip1", "{:?}", ev.data);
                visit = Some(ev.data["data"]["visit_id"].clone());
            }
            "vip.ticketed" => {
                linked = Some(ev.data["data"].clone());
                break;
            }
            _ => {}
        }
    }
    let linked = linked.expect("vip.ticketed after her ticket");
    let visit = visit.expect("ticket.issued before the link");
    assert!(visit.is_string(), "the ticket begins a visit: {visit}");
    // The arrival at the door joins the visit her ticket began.
    assert_eq!(
        linked,
        serde_json::json!({"arrival_id": a["id"], "customer_id": "C-ROSE", "number": number,
                           "visit_id": visit})
    );

    // the PAD's list
    let list: serde_json::Value = c
        .get(b.url("/api/v1/vip/arrivals"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let arr = list["arrivals"].as_array().unwrap();
    assert_eq!(arr.len(), 1, "{list}");
    assert_eq!(arr[0]["name"], "Rose Leslie");
    assert_eq!(arr[0]["tags"], serde_json::json!(["birthday"]));
    assert_eq!(arr[0]["relationship_manager"], "branch_manager");
    assert_eq!(arr[0]["ticket"], serde_json::json!(number));
    assert_eq!(arr[0]["seen_at"], a["seen_at"]);

    // both sightings audited; the second was no new arrival
    let audit: Vec<(String, String)> = b
        .core()
        .store
        .read(|c| {
            let mut st = c.prepare(
                "SELECT target, detail FROM audit WHERE action = 'vip.recognised' ORDER BY id",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok::<_, branchd::store::StoreError>(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(audit.iter().all(|(t, _)| t == "C-ROSE"));
    assert!(audit[1].1.contains("\"arrival\":false"), "{audit:?}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_camera_file_or_device_raises_an_alert_naming_it() {
    use std::time::Duration;
    // (camera, source): a video file that is not there, a V4L2 device that is not there
    let cases = [("door", "/nonexistent/door.avi"), ("desk", "/dev/video77")];
    let models = models_dir();
    let mut extra = format!(
        "[models]\ndir = \"{}\"\n[faces]\nreconnect_max_s = 1\n",
        models.display()
    );
    for (id, source) in cases {
        extra.push_str(&format!(
            "[[cameras]]\nid = \"{id}\"\nsource = \"{source}\"\n"
        ));
    }
    let b = TestBox::start_with(&extra).await;
    let c = b.login("lobby_manager").await;
    let mut alerts = Vec::new();
    for _ in 0..100 {
        let v: serde_json::Value = c
            .get(b.url("/api/v1/alerts"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        alerts = v.as_array().cloned().unwrap_or_default();
        alerts.retain(|a| a["kind"] == "camera.offline");
        if alerts.len() == cases.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (id, source) in cases {
        let a = alerts
            .iter()
            .find(|a| a["source"] == id)
            .unwrap_or_else(|| panic!("a camera.offline alert for {id}: {alerts:?}"));
        let msg = a["message"].as_str().unwrap();
        assert!(
            msg.contains("cannot open camera source") && msg.contains(source),
            "{id}: {msg}"
        );
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_folder_camera_is_retried_until_it_holds_frames_and_then_recognises() {
    use std::time::Duration;
    let Some(photos) = photos() else { return };
    let folder = tempfile::tempdir().unwrap();
    let config = format!(
        "[faces]\nsample_fps = 10\nconfirm_frames = 3\nreconnect_max_s = 1\n\
         [[cameras]]\nid = \"side\"\nsource = \"{}\"\nloop = true\n",
        folder.path().display()
    );
    let b = box_with_rose(&photos, "RM-7", &config).await;
    let (_c, mut s) = lobby_stream(&b).await;
    // an empty folder: the camera is offline, with the reason
    let mut offline = None;
    while let Some(ev) = s.next_within(Duration::from_secs(10)).await {
        if ev.kind == "alert.raised" && ev.data["data"]["kind"] == "camera.offline" {
            offline = Some(ev.data["data"].clone());
            break;
        }
    }
    let offline = offline.expect("camera.offline for an empty folder");
    assert!(
        offline["message"]
            .as_str()
            .unwrap()
            .contains("holds no JPEG or PNG"),
        "{offline}"
    );
    // frames appear (written whole, then renamed in): the retry opens the folder, the
    // alert clears and Rose's second photo is recognised, once in the period however
    // often the folder plays
    let jpeg = camera_jpeg(&photos[7].1);
    for i in 0..5 {
        let tmp = folder.path().join(format!(".f{i}.tmp"));
        std::fs::write(&tmp, &jpeg).unwrap();
        std::fs::rename(&tmp, folder.path().join(format!("f{i}.jpg"))).unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (mut cleared, mut arrivals) = (false, Vec::new());
    while let Some(ev) = s
        .next_within(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        match ev.kind.as_str() {
            "alert.cleared" if ev.data["data"]["kind"] == "camera.offline" => cleared = true,
            "vip.arrived" => arrivals.push(ev.data["data"].clone()),
            _ => {}
        }
        if cleared && !arrivals.is_empty() {
            break;
        }
    }
    assert!(
        cleared,
        "the offline alert clears once the folder has frames"
    );
    // the folder plays on: no second arrival within the period
    arrivals.extend(arrivals_within(&mut s, Duration::from_secs(3)).await);
    assert_eq!(arrivals.len(), 1, "{arrivals:?}");
    assert_eq!(arrivals[0]["camera"], "side");
    assert_eq!(arrivals[0]["customer_id"], "C-ROSE");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looped_video_plays_again_and_gives_one_arrival_per_period() {
    use std::time::Duration;
    let Some(photos) = photos() else { return };
    let vids = tempfile::tempdir().unwrap();
    let video = vids.path().join("loop.avi");
    // 1.2 s a loop: Rose for 0.8 s, an empty doorway for 0.4 s
    write_video(&video, &[(Some(&photos[7].1), 8), (None, 4)]);
    let config = format!(
        "[faces]\nsample_fps = 10\nconfirm_frames = 2\narrival_period_s = 3\n\
         [[cameras]]\nid = \"entrance\"\nsource = \"{}\"\nloop = true\n",
        video.display()
    );
    let b = box_with_rose(&photos, "RM-7", &config).await;
    let (_c, mut s) = lobby_stream(&b).await;
    // a single play would give one arrival; 10 s of a looped one gives one every period
    let arrivals = arrivals_within(&mut s, Duration::from_secs(10)).await;
    assert!(arrivals.len() >= 2, "{arrivals:?}");
    let ts: Vec<i64> = arrivals.iter().map(|a| ms_of(&a["ts"])).collect();
    for w in ts.windows(2) {
        assert!(
            w[1] - w[0] >= 3_000,
            "arrivals closer than the period: {ts:?}"
        );
    }
    assert!(arrivals.iter().all(|a| a["customer_id"] == "C-ROSE"));
    b.stop().await;
}

/// `photo` in a 640x480 camera frame, JPEG-encoded.
fn camera_jpeg(photo: &Path) -> Vec<u8> {
    let img = branchd::image::decode(&std::fs::read(photo).unwrap()).unwrap();
    let frame = branchd::vision::demo::frame_with(Some(&img)).unwrap();
    let mut buf = opencv::core::Vector::<u8>::new();
    opencv::imgcodecs::imencode(".jpg", &frame, &mut buf, &opencv::core::Vector::new()).unwrap();
    buf.as_slice().to_vec()
}

/// A network camera: `tests/data/rtsp_camera.py` serving `frame` over RTSP on `port`.
struct RtspCamera(std::process::Child);

impl RtspCamera {
    fn start(frame: &Path, port: u16) -> RtspCamera {
        use std::io::BufRead as _;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rtsp_camera.py");
        // Debian's Python, which has the GStreamer bindings
        let mut child = Command::new("/usr/bin/python3")
            .arg(&script)
            .arg(frame)
            .arg(port.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the RTSP camera starts (python3-gi, gir1.2-gst-rtsp-server-1.0)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("listening"),
            "the RTSP camera did not start: {line:?}"
        );
        RtspCamera(child)
    }
}

impl Drop for RtspCamera {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The data of the next event that `want` accepts (by kind and data), within `wait`.
async fn next_of(
    s: &mut crate::sse::Reader,
    wait: std::time::Duration,
    want: impl Fn(&str, &serde_json::Value) -> bool,
) -> Option<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + wait;
    while let Some(ev) = s
        .next_within(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        if want(&ev.kind, &ev.data["data"]) {
            return Some(ev.data["data"].clone());
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtsp_camera_is_retried_until_it_serves_recognises_and_reconnects_after_a_loss() {
    use std::time::Duration;
    let Some(photos) = photos() else { return };
    let work = tempfile::tempdir().unwrap();
    // the camera sees Rose's second photo, in a 640x480 frame
    let frame = work.path().join("frame.jpg");
    std::fs::write(&frame, camera_jpeg(&photos[7].1)).unwrap();
    let port = crate::common::free_port();
    // a camera account's password in the URL must never reach an alert
    let config = format!(
        "[faces]\nsample_fps = 5\nconfirm_frames = 3\nreconnect_max_s = 1\n\
         [[cameras]]\nid = \"entrance\"\nsource = \"rtsp://viewer:s3cret@127.0.0.1:{port}/entrance\"\n"
    );
    let b = box_with_rose(&photos, "RM-7", &config).await;
    let (_c, mut s) = lobby_stream(&b).await;
    let is_offline =
        |k: &str, d: &serde_json::Value| k == "alert.raised" && d["kind"] == "camera.offline";
    let is_cleared =
        |k: &str, d: &serde_json::Value| k == "alert.cleared" && d["kind"] == "camera.offline";

    // nothing listens yet: offline, with the reason and without the password
    let offline = next_of(&mut s, Duration::from_secs(30), is_offline)
        .await
        .expect("camera.offline while nothing serves the URL");
    let text = offline.to_string();
    assert_eq!(offline["source"], "entrance", "{text}");
    assert!(
        offline["message"]
            .as_str()
            .unwrap()
            .contains("cannot open camera source rtsp://viewer:***@127.0.0.1"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");

    // the camera comes up: a retry opens it, the alert clears and Rose is recognised
    let camera = RtspCamera::start(&frame, port);
    next_of(&mut s, Duration::from_secs(30), is_cleared)
        .await
        .expect("the offline alert clears once the stream opens");
    let arrived = next_of(&mut s, Duration::from_secs(30), |k, _| k == "vip.arrived")
        .await
        .expect("vip.arrived from the RTSP stream");
    assert_eq!(arrived["customer_id"], "C-ROSE");
    assert_eq!(arrived["camera"], "entrance");

    // the camera goes away mid-stream: the loss is an alert, and no password either
    drop(camera);
    let lost = next_of(&mut s, Duration::from_secs(30), is_offline)
        .await
        .expect("camera.offline once the stream is lost");
    assert!(!lost.to_string().contains("s3cret"), "{lost}");
    assert_eq!(
        lost["data"]["source"],
        format!("rtsp://viewer:***@127.0.0.1:{port}/entrance")
    );

    // back on the same address: the capture reconnects by itself
    let _camera = RtspCamera::start(&frame, port);
    next_of(&mut s, Duration::from_secs(30), is_cleared)
        .await
        .expect("the offline alert clears when the stream is back");
    b.stop().await;
}
