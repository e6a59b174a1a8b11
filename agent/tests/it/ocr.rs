//! OCR end to end: real models on documents generated at test time by `tools/docgen`,
//! the HTTP route's answers to bad input, the bounded queue, refused model files, the CLI.
//!
//! Needs the fetched models (`python3 models/fetch.py`, found in `$BRANCHD_MODELS` or
//! `$BRANCHD_CACHE/models`) and the generator's Python packages
//! (`tools/docgen/requirements.txt`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{TestBox, error_code};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn models_dir() -> PathBuf {
    let dir = if let Some(d) = std::env::var_os("BRANCHD_MODELS") {
        PathBuf::from(d)
    } else if let Some(c) = std::env::var_os("BRANCHD_CACHE") {
        PathBuf::from(c).join("models")
    } else {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/branchd/models")
    };
    assert!(
        dir.join("ch_PP-OCRv4_det_infer.onnx").exists(),
        "OCR models not found in {} (run python3 models/fetch.py)",
        dir.display()
    );
    dir
}

/// Generate `count` documents of `kind` with docgen into `out`; returns (image, truth).
fn docgen(
    kind: &str,
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
        ])
        .arg("--out")
        .arg(out)
        .args(extra)
        .status()
        .expect("python3 runs tools/docgen (install tools/docgen/requirements.txt)");
    assert!(status.success(), "docgen failed");
    (0..count)
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
    }
    // one misread character in six photos at most (the accuracy bench measures the rate)
    assert!(
        right >= docs.len() - 1,
        "{right} of {} numbers right",
        docs.len()
    );
    // the events say which document and which fields validated, never a value
    let events: Vec<String> = b
        .app()
        .store
        .read(|c| {
            let mut st = c.prepare("SELECT data FROM events WHERE kind = 'ocr.completed'")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            Ok::<_, branchd::store::StoreError>(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
        .unwrap();
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
