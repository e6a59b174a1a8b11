//! OCR end to end: real models on documents generated at test time by `tools/docgen`,
//! the HTTP route's answers to bad input, the bounded queue, refused model files, the CLI.
//!
//! Needs the fetched models (`python3 models/fetch.py`, found in `$BRANCHD_MODELS` or
//! `$BRANCHD_CACHE/models`) and the generator's Python packages
//! (`tools/docgen/requirements.txt`).

use std::path::{Path, PathBuf};
use std::process::Command;

use branchd_drivers::idreader::sim::IdReaderSim;

use crate::common::{TestBox, error_code, event_data};

fn models_dir() -> PathBuf {
    crate::common::models_dir("ch_PP-OCRv4_det_infer.onnx")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Generate `count` documents of `kind` with docgen into `out`; returns (image, truth).
fn docgen(
    kind: &str,
    count: u32,
    seed: u32,
    out: &Path,
    extra: &[&str],
) -> Vec<(PathBuf, serde_json::Value)> {
    docgen_from(kind, 0, count, seed, out, extra)
}

/// [`docgen`] from item `start` of the seed's set on.
fn docgen_from(
    kind: &str,
    start: u32,
    count: u32,
    seed: u32,
    out: &Path,
    extra: &[&str],
) -> Vec<(PathBuf, serde_json::Value)> {
    let status = Command::new("python3")
        .arg(workspace().join("tools/docgen/docgen.py"))
        .args([
            "--kind",
            kind,
            "--count",
            &count.to_string(),
            "--seed",
            &seed.to_string(),
            "--start",
            &start.to_string(),
        ])
        .arg("--out")
        .arg(out)
        .args(extra)
        .status()
        .expect("python3 runs tools/docgen (install tools/docgen/requirements.txt)");
    assert!(status.success(), "docgen failed");
    (start..start + count)
        .map(|i| {
            let stem = format!("{kind}-{i}");
            let img = ["jpg", "png"]
                .iter()
                .map(|e| out.join(format!("{stem}.{e}")))
                .find(|p| p.exists())
                .expect("image written");
            let truth: serde_json::Value =
                serde_json::from_slice(&std::fs::read(out.join(format!("{stem}.json"))).unwrap())
                    .unwrap();
            (img, truth)
        })
        .collect()
}

/// A logged-in client that waits long enough for recognition on a loaded machine.
async fn login(b: &TestBox, user: &str) -> reqwest::Client {
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .timeout(std::time::Duration::from_secs(300))
        .build()
        .unwrap();
    let r = c
        .post(b.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"username": user, "password": crate::common::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "login as {user}");
    c
}

fn mime(p: &Path) -> &'static str {
    if p.extension().is_some_and(|e| e == "png") {
        "image/png"
    } else {
        "image/jpeg"
    }
}

fn ocr_config(models: &Path, workers: usize, queue: usize) -> String {
    format!(
        "[models]\ndir = \"{}\"\n[ocr]\nworkers = {workers}\nqueue = {queue}\n",
        models.display()
    )
}

async fn post(
    c: &reqwest::Client,
    b: &TestBox,
    kind: &str,
    ct: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    c.post(b.url(&format!("/api/v1/ocr?kind={kind}")))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_id_cards_and_licences_give_the_right_numbers_through_the_api() {
    let models = models_dir();
    let tmp = tempfile::tempdir().unwrap();
    let mut docs = docgen("id-front", 3, 101, tmp.path(), &[]);
    docs.extend(docgen("licence", 3, 101, tmp.path(), &[]));
    let b = TestBox::start_with(&ocr_config(&models, 1, 8)).await;
    let c = login(&b, "lobby_manager").await;
    let mut right = 0;
    for (img, truth) in &docs {
        let r = post(&c, &b, "auto", mime(img), std::fs::read(img).unwrap()).await;
        assert_eq!(r.status(), 200, "{}", img.display());
        let v: serde_json::Value = r.json().await.unwrap();
        let (kind, key) = if truth.get("id_number").is_some() {
            ("id_card", "id_number")
        } else {
            ("licence", "credit_code")
        };
        assert_eq!(v["kind"], kind, "{}", img.display());
        let f = &v["fields"][key];
        if f["value"] == truth[key] {
            assert_eq!(f["valid"], true, "{}", img.display());
            right += 1;
        } else {
            // a misread number is never passed as valid
            assert_eq!(
                f["valid"],
                false,
                "{}: {f} want {}",
                img.display(),
                truth[key]
            );
        }
        assert!(v["lines"].as_array().is_some_and(|l| l.len() > 5));
        assert!(v["timing_ms"]["total"].as_f64().is_some_and(|t| t > 0.0));
        assert!(v.get("image").is_none(), "no retention configured: {v}");
    }
    let kept = b.core().cfg.branch.data_dir.join("ocr-images");
    assert!(!kept.exists(), "uploads are not written anywhere");
    // one misread character in six photos at most (the accuracy bench measures the rate)
    assert!(
        right >= docs.len() - 1,
        "{right} of {} numbers right",
        docs.len()
    );
    // the events say which document and which fields validated, never a value
    let events = event_data(&b, "ocr.completed").await;
    assert_eq!(events.len(), docs.len());
    for (e, (_, truth)) in events.iter().zip(&docs) {
        for v in truth.as_object().unwrap().values() {
            let v = v.as_str().unwrap();
            assert!(!e.contains(v), "event {e} leaks {v}");
        }
        let e: serde_json::Value = serde_json::from_str(e).unwrap();
        assert!(e["validated"].is_object(), "{e}");
        assert!(e["fields_found"].is_array(), "{e}");
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_card_back_gives_authority_and_validity() {
    let models = models_dir();
    let tmp = tempfile::tempdir().unwrap();
    let docs = docgen("id-back", 2, 101, tmp.path(), &["--clean"]);
    let b = TestBox::start_with(&ocr_config(&models, 1, 4)).await;
    let c = login(&b, "branch_manager").await;
    for (img, truth) in &docs {
        let r = post(&c, &b, "id-card", mime(img), std::fs::read(img).unwrap()).await;
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["side"], "back", "{v}");
        for key in ["valid_from", "valid_to"] {
            assert_eq!(v["fields"][key]["value"], truth[key], "{key}: {v}");
        }
        // expired or expiring soon, judged against the branch's local date
        let today = branchd::clock::local_date(&b.core().cfg, b.core().clock.now());
        let want = branchd::ocr::expiry::of(truth["valid_to"].as_str(), None, today).unwrap();
        assert_eq!(v["expiry"], serde_json::to_value(&want).unwrap(), "{v}");
        // the event says whether, never the date, and names the answer's id
        let events = event_data(&b, "ocr.completed").await;
        let e: serde_json::Value = serde_json::from_str(events.last().unwrap()).unwrap();
        assert_eq!(e["id"], v["id"], "{e}");
        assert_eq!(e["expired"], want.expired, "{e}");
        assert_eq!(e["expires_soon"], want.expires_soon(), "{e}");
        assert!(
            !events
                .last()
                .unwrap()
                .contains(truth["valid_to"].as_str().unwrap())
        );
    }
    b.stop().await;
}

fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&h.to_be_bytes());
    v.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_get_clear_errors_and_the_worker_keeps_serving() {
    let models = models_dir();
    let tmp = tempfile::tempdir().unwrap();
    let docs = docgen("licence", 1, 7, tmp.path(), &["--clean"]);
    let (img, truth) = &docs[0];
    let good = std::fs::read(img).unwrap();
    let b = TestBox::start_with(&ocr_config(&models, 1, 2)).await;
    let c = login(&b, "lobby_manager").await;

    let r = post(
        &c,
        &b,
        "auto",
        "image/jpeg",
        b"this is not a photo".to_vec(),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "not_an_image");

    let r = post(&c, &b, "auto", "image/png", good[..good.len() / 3].to_vec()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "invalid_image");

    let mut jpeg = Vec::new();
    {
        // a real JPEG cut short: libjpeg would pad it with grey
        let tmp2 = tempfile::tempdir().unwrap();
        let d = docgen("id-front", 1, 3, tmp2.path(), &["--set", "png_share=0"]);
        jpeg.extend(std::fs::read(&d[0].0).unwrap());
    }
    let r = post(
        &c,
        &b,
        "auto",
        "image/jpeg",
        jpeg[..jpeg.len() / 2].to_vec(),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "invalid_image");

    let r = post(&c, &b, "auto", "image/png", png_header(0, 0)).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "empty_image");

    let r = post(&c, &b, "auto", "image/png", png_header(50_000, 40_000)).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "image_too_large");

    assert_eq!(over_10_mb_status(&b).await, 413);

    let r = post(&c, &b, "auto", "application/pdf", good.clone()).await;
    assert_eq!(r.status(), 415);

    let r = post(&c, &b, "passport", "image/png", good.clone()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "invalid_kind");

    let r = post(&c, &b, "id-card", "image/png", good.clone()).await;
    assert_eq!(r.status(), 422);
    assert_eq!(error_code(r).await, "wrong_kind");

    let admin = login(&b, "device_admin").await;
    let r = post(&admin, &b, "auto", "image/png", good.clone()).await;
    assert_eq!(r.status(), 403);

    // after all that, the worker still answers
    let r = post(&c, &b, "licence", "image/png", good).await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["fields"]["credit_code"]["value"], truth["credit_code"]);
    b.stop().await;
}

/// Announce an 11 MB upload and read the answer without sending the body.
async fn over_10_mb_status(b: &TestBox) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let login = reqwest::Client::new()
        .post(b.url("/api/v1/auth/login"))
        .json(
            &serde_json::json!({"username": "lobby_manager", "password": crate::common::PASSWORD}),
        )
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let addr = b.base.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST /api/v1/ocr?kind=auto HTTP/1.1\r\nhost: x\r\ncookie: {cookie}\r\n\
         content-type: image/jpeg\r\ncontent-length: {}\r\n\r\n",
        11 * 1024 * 1024
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_at_once() {
    let models = models_dir();
    let tmp = tempfile::tempdir().unwrap();
    let docs = docgen("licence", 1, 9, tmp.path(), &["--clean"]);
    let body = std::fs::read(&docs[0].0).unwrap();
    let b = TestBox::start_with(&ocr_config(&models, 1, 1)).await;
    let c = login(&b, "lobby_manager").await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (c, url, body) = (c.clone(), b.url("/api/v1/ocr"), body.clone());
        tasks.push(tokio::spawn(async move {
            let t = std::time::Instant::now();
            let r = c
                .post(url)
                .header("content-type", "image/png")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry = r.headers().get("retry-after").is_some();
            (status, retry, t.elapsed())
        }));
    }
    let mut ok = 0;
    let mut busy = Vec::new();
    for t in tasks {
        let (status, retry, took) = t.await.unwrap();
        match status {
            200 => ok += 1,
            503 => {
                assert!(retry, "503 without Retry-After");
                busy.push(took);
            }
            other => panic!("unexpected status {other}"),
        }
    }
    // one running + one queued at most
    assert!((1..=2).contains(&ok), "{ok} answered");
    assert_eq!(busy.len(), 6 - ok);
    let slowest_503 = busy.iter().max().unwrap();
    assert!(
        *slowest_503 < std::time::Duration::from_secs(2),
        "a refusal took {slowest_503:?}"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_file_that_does_not_match_the_manifest_is_refused() {
    let models = models_dir();
    let bad = tempfile::tempdir().unwrap();
    for f in [
        "ch_PP-OCRv4_rec_infer.onnx",
        "ch_ppocr_mobile_v2.0_cls_infer.onnx",
    ] {
        std::fs::copy(models.join(f), bad.path().join(f)).unwrap();
    }
    let mut det = std::fs::read(models.join("ch_PP-OCRv4_det_infer.onnx")).unwrap();
    let n = det.len();
    det[n / 2] ^= 0xFF;
    std::fs::write(bad.path().join("ch_PP-OCRv4_det_infer.onnx"), &det).unwrap();
    let b = TestBox::start_with(&ocr_config(bad.path(), 1, 2)).await;
    let c = login(&b, "lobby_manager").await;
    let r = post(&c, &b, "auto", "image/png", {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::read(&docgen("id-back", 1, 1, tmp.path(), &["--clean"])[0].0).unwrap()
    })
    .await;
    assert_eq!(r.status(), 503);
    let v: serde_json::Value = r.json().await.unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert_eq!(v["error"]["code"], "ocr_unavailable");
    assert!(msg.contains("ch_PP-OCRv4_det_infer.onnx"), "{msg}");
    assert!(
        msg.contains("d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"),
        "{msg}"
    );
    assert!(msg.contains("actual"), "{msg}");
    b.stop().await;
}

#[test]
fn a_credit_code_the_orientation_classifier_takes_for_upside_down_is_still_read() {
    // Licence 44 of seed 1: its credit code's line is one the classifier calls upside down
    // (score 0.93); read only that way up it came out as `0`, and the code was lost.
    let tmp = tempfile::tempdir().unwrap();
    let docs = docgen_from("licence", 44, 1, 1, tmp.path(), &[]);
    let (img, truth) = &docs[0];
    let mut engine = branchd::ocr::engine::Engine::load(&models_dir(), 1).unwrap();
    let r = branchd::ocr::recognise(
        &mut engine,
        &std::fs::read(img).unwrap(),
        branchd::ocr::fields::Requested::Licence,
    )
    .unwrap();
    let code = r.fields.get("credit_code").map(|f| f.value.as_str());
    assert_eq!(code, truth["credit_code"].as_str());
}

#[test]
fn the_cli_prints_the_api_json_and_refuses_bad_input() {
    let models = models_dir();
    let tmp = tempfile::tempdir().unwrap();
    let docs = docgen("id-front", 1, 21, tmp.path(), &["--clean"]);
    let (img, truth) = &docs[0];
    let out = Command::new(env!("CARGO_BIN_EXE_branchd"))
        .args(["ocr", "--kind", "id-card", "--json", "--models"])
        .arg(&models)
        .arg(img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "id_card");
    assert_eq!(v["fields"]["id_number"]["value"], truth["id_number"]);
    assert_eq!(v["fields"]["name"]["value"], truth["name"]);

    let text = tmp.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_branchd"))
        .args(["ocr", "--models"])
        .arg(&models)
        .arg(&text)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a JPEG or PNG image"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_branchd"))
        .args(["ocr", "--kind", "passport"])
        .arg(img)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

fn id_reader_table(path: &Path) -> String {
    format!(
        "\n[[devices]]\nid = \"IDR-01\"\nkind = \"id_reader\"\npath = \"{}\"\n\n[id_reader]\npoll_ms = 100\n",
        path.display()
    )
}

fn chip_of(truth: &serde_json::Value) -> branchd_drivers::idreader::CardText {
    let file: branchd::ocr::chip::ChipFile = serde_json::from_value(truth.clone()).unwrap();
    file.into_card().unwrap()
}

async fn read_by_reader(
    b: &TestBox,
    card: branchd_drivers::idreader::CardText,
    reader: &IdReaderSim,
) {
    let want = card.id_number.clone();
    // A card is read once until it is taken off: take the last one off for a few polls.
    reader.take_card();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    reader.put_card(card, vec![0x42; 1024]);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let seen = b
            .modules()
            .devices
            .recent_card("IDR-01", std::time::Duration::from_secs(300));
        if seen.is_some_and(|(c, _)| c.id_number == want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reader did not read the card"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn same(ocr: &serde_json::Value, truth: &serde_json::Value) -> bool {
    let norm = |v: &serde_json::Value| -> String {
        v.as_str()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect()
    };
    norm(ocr) == norm(truth)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_card_photo_is_checked_against_the_chip_the_reader_just_read() {
    let models = models_dir();
    let tmp = tempfile::tempdir().unwrap();
    let docs = docgen("id-front", 1, 21, tmp.path(), &["--clean"]);
    let (img, truth) = &docs[0];
    let reader = IdReaderSim::spawn(None).expect("reader simulator");
    let b = TestBox::start_with(&format!(
        "{}keep_images_min = 60\n{}",
        ocr_config(&models, 1, 4),
        id_reader_table(&reader.path())
    ))
    .await;
    let c = login(&b, "lobby_manager").await;
    let photo = std::fs::read(img).unwrap();
    let ask = |reader: &'static str| {
        c.post(b.url(&format!("/api/v1/ocr?kind=id-card&reader={reader}")))
            .header("content-type", "image/jpeg")
            .body(photo.clone())
            .send()
    };

    // Refused before any recognition: no such reader, or no card read on it yet.
    let r = ask("IDR-99").await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "unknown_reader");
    let r = ask("IDR-01").await.unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "no_chip_data");
    // The PAD asks with `auto`: no card read lately is no check, not an error.
    let r = ask("auto").await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v.get("chip_check").is_none(), "{v}");
    assert!(
        v.get("expiry").is_none(),
        "a front side alone has no validity: {v}"
    );

    // The same card on the reader: every field the photo yields agrees with the chip.
    read_by_reader(&b, chip_of(truth), &reader).await;
    let r = ask("IDR-01").await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let check = &v["chip_check"];
    assert_eq!(check["source"], "IDR-01", "{v}");
    // the chip's validity judges the card even from a photo of its front
    assert_eq!(v["expiry"]["source"], "chip", "{v}");
    assert!(
        check["read_s_ago"].as_u64().is_some_and(|s| s < 60),
        "{check}"
    );
    for key in [
        "name",
        "gender",
        "nation",
        "birth_date",
        "address",
        "id_number",
    ] {
        let want = match v["fields"].get(key) {
            None => "missing",
            Some(f) if same(&f["value"], &truth[key]) => "match",
            Some(_) => "mismatch",
        };
        assert_eq!(check["fields"][key], want, "{key}: {v}");
    }
    assert_eq!(check["fields"]["id_number"], "match", "{v}");
    assert_eq!(check["fields"]["name"], "match", "{v}");
    assert_eq!(
        check["chip"]["address"], truth["address"],
        "staff see the chip's value"
    );

    // Someone else's card on the reader (another address, another number): caught.
    let mut other = truth.clone();
    other["address"] = serde_json::json!("北京市东城区东长安街1号");
    other["id_number"] = serde_json::json!("11010519491231002X");
    read_by_reader(&b, chip_of(&other), &reader).await;
    let r = ask("IDR-01").await.unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    let mismatches: Vec<&str> = v["chip_check"]["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    assert!(
        mismatches.contains(&"address") && mismatches.contains(&"id_number"),
        "{v}"
    );
    // another card's validity says nothing of the photographed one
    assert!(v.get("expiry").is_none(), "{v}");
    assert_eq!(v["chip_check"]["all_match"], false);
    let r = ask("auto").await.unwrap();
    let auto: serde_json::Value = r.json().await.unwrap();
    assert_eq!(auto["chip_check"]["source"], "IDR-01", "{auto}");
    assert_eq!(auto["chip_check"]["chip"]["id_number"], other["id_number"]);

    // Kept for the configured hour, owner-only, and announced without values.
    let kept = &v["image"];
    let id = kept["id"].as_str().expect("kept image id");
    assert!(kept["delete_at"].as_str().is_some(), "{v}");
    let file = b
        .core()
        .cfg
        .branch
        .data_dir
        .join("ocr-images")
        .join(format!("{id}.jpg"));
    let meta = std::fs::metadata(&file).expect("kept image on disk");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let dir_mode = std::fs::metadata(file.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        dir_mode & 0o777,
        0o700,
        "the kept images' directory is owner-only"
    );
    assert_eq!(std::fs::read(&file).unwrap(), photo);
    let events = event_data(&b, "ocr.completed").await;
    let last: serde_json::Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["chip_check"]["all_match"], false, "{last}");
    assert_eq!(last["image_kept"], true, "{last}");
    for e in &events {
        for secret in [&truth["id_number"], &truth["address"], &other["address"]] {
            assert!(!e.contains(secret.as_str().unwrap()), "{e} leaks {secret}");
        }
    }

    // The CLI takes chip text from a file.
    let chip_file = tmp.path().join("chip.json");
    std::fs::write(&chip_file, truth.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_branchd"))
        .args(["ocr", "--kind", "id-card", "--json", "--models"])
        .arg(&models)
        .arg("--chip")
        .arg(&chip_file)
        .arg(img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["chip_check"]["source"], "file");
    assert_eq!(v["chip_check"]["fields"]["id_number"], "match", "{v}");
    std::fs::write(&chip_file, r#"{"name":"x"}"#).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_branchd"))
        .args(["ocr", "--models"])
        .arg(&models)
        .arg("--chip")
        .arg(&chip_file)
        .arg(img)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not chip text"));
    b.stop().await;
}

async fn kept_ids(b: &TestBox) -> Vec<String> {
    b.core()
        .store
        .read(|c| {
            let mut st = c.prepare("SELECT id FROM ocr_images ORDER BY id")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            Ok::<_, branchd::store::StoreError>(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn kept_images_are_deleted_on_time_also_after_a_restart() {
    use std::time::Duration;
    let b = TestBox::start_with("[ocr]\nkeep_images_min = 60\n").await;
    let app = b.core().clone();
    let dir = app.cfg.branch.data_dir.join("ocr-images");
    let kept = branchd::ocr::retention::commit(
        &app,
        b"\xFF\xD8 a photo".to_vec(),
        "jpg",
        "id_card".into(),
        serde_json::json!({"kind": "id_card"}),
    )
    .await
    .unwrap()
    .expect("kept");
    let file = dir.join(format!("{}.jpg", kept.id));
    assert!(file.exists());
    tokio::time::sleep(Duration::from_secs(59 * 60)).await;
    assert!(file.exists(), "kept for the hour");
    tokio::time::sleep(Duration::from_secs(2 * 60)).await;
    assert!(!file.exists(), "deleted after the hour");
    assert!(kept_ids(&b).await.is_empty());
    let deleted = app
        .store
        .read(|c| {
            Ok::<_, branchd::store::StoreError>(c.query_row(
                "SELECT count(*) FROM events WHERE kind = 'ocr.image_deleted'",
                [],
                |r| r.get::<_, i64>(0),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(deleted, 1);

    // What a restart finds: one image overdue, one due in ten minutes, and a file no
    // record knows of (written just before a crash, an hour ago).
    let now = chrono::Utc::now();
    for (id, due) in [
        ("A-OVERDUE", now - chrono::Duration::minutes(5)),
        ("B-LATER", now + chrono::Duration::minutes(10)),
    ] {
        let f = dir.join(format!("{id}.jpg"));
        std::fs::write(&f, b"x").unwrap();
        let path = f.to_string_lossy().into_owned();
        let due = branchd::clock::rfc3339(due);
        app.store
            .write(move |tx| {
                tx.conn().execute(
                    "INSERT INTO ocr_images(id, file, kind, kept_at, delete_at) VALUES (?1, ?2, 'id_card', ?3, ?3)",
                    rusqlite::params![id, path, due],
                )?;
                Ok::<_, branchd::store::StoreError>(())
            })
            .await
            .unwrap();
    }
    let orphan = dir.join("C-ORPHAN.jpg");
    std::fs::write(&orphan, b"x").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&orphan)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    branchd::ocr::retention::resume(&app);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!orphan.exists(), "a file without a record is removed");
    assert_eq!(kept_ids(&b).await, ["B-LATER"]);
    assert!(!dir.join("A-OVERDUE.jpg").exists());
    tokio::time::sleep(Duration::from_secs(9 * 60)).await;
    assert!(dir.join("B-LATER.jpg").exists());
    tokio::time::sleep(Duration::from_secs(2 * 60)).await;
    assert!(!dir.join("B-LATER.jpg").exists());
    assert!(kept_ids(&b).await.is_empty());
    b.stop().await;
}
