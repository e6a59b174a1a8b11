//! Model files from head office (`model.update`, `model.rollback`), end to end: a real
//! HTTPS artifact server in the test (a CA made here with openssl, Range requests, a
//! connection it can cut mid-download), the real models, and the daemon's own command
//! handling.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use branchd::store::Event;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

use crate::common::{TestBox, models_dir};

const DET: &str = "ch_PP-OCRv4_det_infer.onnx";
const CLS: &str = "ch_ppocr_mobile_v2.0_cls_infer.onnx";
const YUNET: &str = "face_detection_yunet_2023mar.onnx";

fn sha256(b: &[u8]) -> String {
    branchd::models::sha256_hex(b)
}

/// A model file that is not the shipped one but works the same: the shipped file with a
/// `doc_string` (ONNX ModelProto field 6) appended, which protobuf readers take as the
/// last value of that field.
fn variant(file: &str, note: &str) -> Vec<u8> {
    let mut b = std::fs::read(models_dir(file).join(file)).unwrap();
    assert!(note.len() < 128);
    b.push(0x32);
    b.push(note.len() as u8);
    b.extend_from_slice(note.as_bytes());
    b
}

fn openssl(dir: &Path, args: &[&str]) {
    let st = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "openssl {args:?}");
}

/// A CA made for this test and a server certificate for 127.0.0.1 signed by it.
fn make_ca(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca = [
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=artifacts-ca",
        "-days",
        "2",
    ];
    openssl(dir, &[&["req", "-x509"][..], &ec, &ca].concat());
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let req = [
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ];
    openssl(dir, &[&["req"][..], &ec, &req].concat());
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

/// The bank's artifact server: HTTPS with the test CA's certificate, `Range: bytes=N-`
/// answered 206, and a switch that cuts the next download after some bytes.
#[derive(Clone)]
struct Artifacts {
    base: String,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    /// Cut the next response after this many body bytes.
    cut_next: Arc<Mutex<Option<usize>>>,
    /// The `Range` header of every request (`None`: no header), in order.
    ranges: Arc<Mutex<Vec<Option<String>>>>,
}

impl Artifacts {
    async fn start(pki: &Path) -> Artifacts {
        let certs =
            rustls_pemfile::certs(&mut std::fs::read(pki.join("server.pem")).unwrap().as_slice())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
        let key = rustls_pemfile::private_key(
            &mut std::fs::read(pki.join("server.key")).unwrap().as_slice(),
        )
        .unwrap()
        .unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = Artifacts {
            base: format!(
                "https://127.0.0.1:{}",
                listener.local_addr().unwrap().port()
            ),
            files: Arc::default(),
            cut_next: Arc::default(),
            ranges: Arc::default(),
        };
        let server = a.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, server) = (acceptor.clone(), server.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        server.serve(tls).await;
                    }
                });
            }
        });
        a
    }

    fn put(&self, path: &str, bytes: Vec<u8>) -> String {
        self.files.lock().unwrap().insert(path.to_string(), bytes);
        format!("{}{path}", self.base)
    }

    /// One HTTP/1.1 exchange per connection (the client reconnects for the next).
    async fn serve(&self, mut s: tokio_rustls::server::TlsStream<tokio::net::TcpStream>) {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut byte).await.unwrap_or(0) == 0 || head.len() > 16 * 1024 {
                return;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_string();
        let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
        let range = head.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("range:")
                .map(|v| v.trim().to_string())
        });
        self.ranges.lock().unwrap().push(range.clone());
        let Some(body) = self.files.lock().unwrap().get(&path).cloned() else {
            let _ = s
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            return;
        };
        let total = body.len();
        let from = range
            .and_then(|r| {
                r.strip_prefix("bytes=")
                    .and_then(|r| r.strip_suffix('-'))
                    .map(str::to_string)
            })
            .and_then(|n| n.parse::<usize>().ok());
        let (status, start) = match from {
            Some(n) if n < total => ("206 Partial Content", n),
            _ => ("200 OK", 0),
        };
        let mut headers = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n",
            total - start
        );
        if start > 0 {
            headers.push_str(&format!(
                "content-range: bytes {start}-{}/{total}\r\n",
                total - 1
            ));
        }
        headers.push_str("\r\n");
        if s.write_all(headers.as_bytes()).await.is_err() {
            return;
        }
        let cut = self.cut_next.lock().unwrap().take();
        let end = cut.map_or(total, |c| (start + c).min(total));
        let _ = s.write_all(&body[start..end]).await;
        let _ = s.flush().await;
        if cut.is_some() {
            // the connection drops mid-body: no close_notify, no more bytes
            let _ = s.get_mut().0.shutdown().await;
            return;
        }
        let _ = s.shutdown().await;
    }
}

struct Setup {
    b: TestBox,
    art: Artifacts,
    _pki: tempfile::TempDir,
}

async fn setup() -> Setup {
    let pki = tempfile::tempdir().unwrap();
    make_ca(pki.path());
    let art = Artifacts::start(pki.path()).await;
    let models = models_dir(DET);
    let b = TestBox::start_with(&format!(
        "[models]\ndir = \"{}\"\n[ocr]\nworkers = 1\nqueue = 8\n\
         [updates]\nca_file = \"{}\"\nretry_s = 1\n",
        models.display(),
        pki.path().join("ca.pem").display()
    ))
    .await;
    Setup { b, art, _pki: pki }
}

/// Hand head office's command to the daemon as the link does; the `ack`.
async fn send(b: &TestBox, id: &str, kind: &str, data: Value) -> branchd::sync::commands::Outcome {
    let payload = json!({"v": 1, "id": id, "ts": chrono::Utc::now().to_rfc3339(), "kind": kind, "data": data}).to_string();
    branchd::sync::commands::handle(&b.modules().sync, payload.as_bytes())
        .await
        .unwrap()
}

/// Every event about command `id` until (and with) one of the `end` kinds.
async fn events_until(b: &TestBox, id: &str, end: &[&str]) -> Vec<Event> {
    let mut f = b.core().store.follow(0);
    let mut out = Vec::new();
    let wait = async {
        loop {
            let ev = f.next().await.unwrap();
            if ev.data["command"] == json!(id) {
                let last = end.contains(&ev.kind.as_str());
                out.push(ev);
                if last {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(300), wait)
        .await
        .unwrap_or_else(|_| panic!("no {end:?} for {id}"));
    out
}

fn kinds(evs: &[Event]) -> Vec<String> {
    let mut k: Vec<String> = evs.iter().map(|e| e.kind.clone()).collect();
    k.dedup();
    k
}

/// The files under the daemon's `updates/` data directory.
fn model_files(b: &TestBox) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                walk(&e.path(), out);
            } else {
                out.push(e.path());
            }
        }
    }
    let mut out = Vec::new();
    walk(&b.core().cfg.branch.data_dir.join("updates"), &mut out);
    out.sort();
    out
}

async fn ocr_card(b: &TestBox, c: &reqwest::Client) -> Result<Value, String> {
    Probe {
        base: b.base.clone(),
    }
    .ocr(c)
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_model_is_downloaded_verified_self_tested_swapped_and_kept_across_a_restart() {
    let s = setup().await;
    let det = variant(DET, "branchd test: det v2");
    let url = s.art.put("/models/det-v2.onnx", det.clone());
    let ack = send(
        &s.b,
        "m-1",
        "model.update",
        json!({"name": "ocr_det", "sha256": sha256(&det), "size": det.len(), "url": url}),
    )
    .await;
    assert!(ack.ok, "accepted: {:?}", ack.error);
    let gen_before = s.b.core().models.generation();
    let evs = events_until(&s.b, "m-1", &["model.updated", "model.update.failed"]).await;
    assert_eq!(
        kinds(&evs),
        [
            "model.update.requested",
            "model.update.progress",
            "model.updated"
        ],
        "{evs:?}"
    );
    let stages: Vec<&str> = evs
        .iter()
        .filter_map(|e| e.data["stage"].as_str())
        .collect();
    assert_eq!(stages.first(), Some(&"download"));
    assert!(stages.ends_with(&["verify", "selftest"]), "{stages:?}");
    let last_download = evs.iter().rfind(|e| e.data["stage"] == "download").unwrap();
    assert_eq!(last_download.data["received"], json!(det.len()));
    let done = evs.last().unwrap();
    assert_eq!(done.data["sha256"], json!(sha256(&det)));
    let shipped = std::fs::read(models_dir(DET).join(DET)).unwrap();
    assert_eq!(done.data["previous_sha256"], json!(sha256(&shipped)));

    let r = s.b.core().models.replacement("ocr_det").expect("replaced");
    assert_eq!(r.sha256, sha256(&det));
    assert_eq!(std::fs::read(&r.path).unwrap(), det, "the installed file");
    assert_ne!(s.b.core().models.generation(), gen_before);
    assert_eq!(model_files(&s.b), vec![r.path.clone()], "staging is empty");

    // The workers use it from the next inference on, and read the card as before.
    let c = s.b.login("lobby_manager").await;
    let v = ocr_card(&s.b, &c).await.expect("OCR with the new model");
    assert_eq!(v["fields"]["id_number"]["value"], "510107196210171148");
    assert_eq!(
        s.b.modules().ocr.loaded_generation(),
        Some(s.b.core().models.generation())
    );

    // The same file again is refused: it already runs.
    let again = send(
        &s.b,
        "m-2",
        "model.update",
        json!({"name": "ocr_det", "sha256": sha256(&det), "size": det.len(), "url": url}),
    )
    .await;
    assert!(!again.ok);
    assert!(again.error.unwrap().contains("already runs"));

    let b = s.b.restart_with(|_| {}).await;
    let r2 = b
        .core()
        .models
        .replacement("ocr_det")
        .expect("still replaced after a restart");
    assert_eq!(r2, r);
    b.stop().await;
}

/// (command, name, served bytes, announced sha256, announced size, the failure's code)
type BadFile<'a> = (&'a str, &'a str, Vec<u8>, String, usize, &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_hash_a_wrong_size_or_a_failed_self_test_changes_nothing() {
    let s = setup().await;
    let good = variant(DET, "branchd test: det v3");
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    // a real ONNX model, but not a text detector: it loads and then fails on the card
    let cls = std::fs::read(models_dir(CLS).join(CLS)).unwrap();
    let garbage = b"not a model at all".repeat(100);
    let cases: &[BadFile] = &[
        (
            "bad-hash",
            "ocr_det",
            flipped.clone(),
            sha256(&good),
            good.len(),
            "hash_mismatch",
        ),
        (
            "longer",
            "ocr_det",
            good.clone(),
            sha256(&good),
            good.len() - 10,
            "size_mismatch",
        ),
        (
            "cls-as-det",
            "ocr_det",
            cls.clone(),
            sha256(&cls),
            cls.len(),
            "selftest_failed",
        ),
        (
            "garbage-face",
            "face_detector",
            garbage.clone(),
            sha256(&garbage),
            garbage.len(),
            "selftest_failed",
        ),
    ];
    let gen0 = s.b.core().models.generation();
    for (id, name, bytes, sha, size, code) in cases {
        let url = s.art.put(&format!("/models/{id}.onnx"), bytes.clone());
        let ack = send(
            &s.b,
            id,
            "model.update",
            json!({"name": name, "sha256": sha, "size": size, "url": url}),
        )
        .await;
        assert!(ack.ok, "{id}: accepted: {:?}", ack.error);
        let evs = events_until(&s.b, id, &["model.updated", "model.update.failed"]).await;
        let last = evs.last().unwrap();
        assert_eq!(last.kind, "model.update.failed", "{id}: {evs:?}");
        assert_eq!(last.data["code"], *code, "{id}: {}", last.data);
        assert!(s.b.core().models.replacement(name).is_none(), "{id}");
        assert_eq!(
            s.b.core().models.generation(),
            gen0,
            "{id}: nothing swapped"
        );
        assert_eq!(
            model_files(&s.b),
            Vec::<PathBuf>::new(),
            "{id}: nothing kept"
        );
    }
    // the self-test's reason is reported
    let failed = crate::common::event_data(&s.b, "model.update.failed").await;
    assert!(failed[2].contains("self-test card"), "{}", failed[2]);
    // and the shipped detector still reads the card
    let c = s.b.login("lobby_manager").await;
    let v = ocr_card(&s.b, &c).await.expect("OCR");
    assert_eq!(v["fields"]["id_number"]["value"], "510107196210171148");
    s.b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_resumes_where_it_stopped() {
    let s = setup().await;
    let det = variant(DET, "branchd test: det resumed");
    let url = s.art.put("/models/det-r.onnx", det.clone());
    *s.art.cut_next.lock().unwrap() = Some(1_000_000);
    send(
        &s.b,
        "m-r",
        "model.update",
        json!({"name": "ocr_det", "sha256": sha256(&det), "size": det.len(), "url": url}),
    )
    .await;
    let evs = events_until(&s.b, "m-r", &["model.updated", "model.update.failed"]).await;
    assert_eq!(evs.last().unwrap().kind, "model.updated", "{evs:?}");
    let ranges = s.art.ranges.lock().unwrap().clone();
    assert_eq!(ranges, vec![None, Some("bytes=1000000-".to_string())]);
    let r = s.b.core().models.replacement("ocr_det").unwrap();
    assert_eq!(std::fs::read(r.path).unwrap(), det);
    s.b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_goes_back_to_the_previous_file_and_again_forward() {
    let s = setup().await;
    let yunet = std::fs::read(models_dir(YUNET).join(YUNET)).unwrap();
    let v2 = variant(YUNET, "branchd test: yunet v2");
    let nothing = send(
        &s.b,
        "rb-0",
        "model.rollback",
        json!({"name": "face_detector"}),
    )
    .await;
    assert!(!nothing.ok);
    assert!(nothing.error.unwrap().contains("no previous file"));

    let url = s.art.put("/models/yunet-v2.onnx", v2.clone());
    send(
        &s.b,
        "up-1",
        "model.update",
        json!({"name": "face_detector", "sha256": sha256(&v2), "size": v2.len(), "url": url}),
    )
    .await;
    let evs = events_until(&s.b, "up-1", &["model.updated", "model.update.failed"]).await;
    assert_eq!(evs.last().unwrap().kind, "model.updated", "{evs:?}");
    let installed = s.b.core().models.replacement("face_detector").unwrap();

    let ack = send(
        &s.b,
        "rb-1",
        "model.rollback",
        json!({"name": "face_detector"}),
    )
    .await;
    assert!(ack.ok, "{:?}", ack.error);
    let evs = events_until(
        &s.b,
        "rb-1",
        &["model.rolled_back", "model.rollback.failed"],
    )
    .await;
    let done = evs.last().unwrap();
    assert_eq!(done.kind, "model.rolled_back", "{evs:?}");
    assert_eq!(done.data["sha256"], json!(sha256(&yunet)));
    assert_eq!(done.data["previous_sha256"], json!(sha256(&v2)));
    assert!(
        s.b.core().models.replacement("face_detector").is_none(),
        "the shipped detector again"
    );
    assert!(installed.path.exists(), "the newer file is kept");

    send(
        &s.b,
        "rb-2",
        "model.rollback",
        json!({"name": "face_detector"}),
    )
    .await;
    let evs = events_until(
        &s.b,
        "rb-2",
        &["model.rolled_back", "model.rollback.failed"],
    )
    .await;
    assert_eq!(evs.last().unwrap().data["sha256"], json!(sha256(&v2)));
    assert_eq!(
        s.b.core().models.replacement("face_detector"),
        Some(installed)
    );
    s.b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_while_inferences_run_fails_none_of_them() {
    let s = setup().await;
    let c = s.b.login("lobby_manager").await;
    ocr_card(&s.b, &c).await.expect("warm-up");
    let det = variant(DET, "branchd test: det under load");
    let url = s.art.put("/models/det-load.onnx", det.clone());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..2 {
        let (b_url, c, stop) = (s.b.base.clone(), c.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut results = Vec::new();
            let b = Probe { base: b_url };
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                results.push(b.ocr(&c).await);
            }
            // and one more once the swap has happened
            results.push(b.ocr(&c).await);
            results
        }));
    }
    send(
        &s.b,
        "m-l",
        "model.update",
        json!({"name": "ocr_det", "sha256": sha256(&det), "size": det.len(), "url": url}),
    )
    .await;
    let evs = events_until(&s.b, "m-l", &["model.updated", "model.update.failed"]).await;
    assert_eq!(evs.last().unwrap().kind, "model.updated", "{evs:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut n = 0;
    for t in clients {
        for r in t.await.unwrap() {
            let v = r.expect("no inference fails during the swap");
            assert_eq!(v["fields"]["id_number"]["value"], "510107196210171148");
            n += 1;
        }
    }
    assert!(n >= 4, "{n} inferences");
    assert_eq!(
        s.b.modules().ocr.loaded_generation(),
        Some(s.b.core().models.generation()),
        "the last inferences ran on the new model"
    );
    s.b.stop().await;
}

/// The OCR route of a running box, for a task that does not hold the box.
struct Probe {
    base: String,
}

impl Probe {
    async fn ocr(&self, c: &reqwest::Client) -> Result<Value, String> {
        let card = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/selftest/id-card.jpg"),
        )
        .unwrap();
        let r = c
            .post(format!("{}/api/v1/ocr?kind=id-card", self.base))
            .header("content-type", "image/jpeg")
            .body(card)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status();
        let v: Value = r.json().await.map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("{status}: {v}"));
        }
        Ok(v)
    }
}
