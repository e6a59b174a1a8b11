//! OCR accuracy and latency on generated documents.
//!
//! Generates (once, then reuses) `OCR_BENCH_COUNT` (default 200) photos of each document
//! with `tools/docgen` (seed `OCR_BENCH_SEED`, default 1) into
//! `$BRANCHD_CACHE/docgen-v<generator version>-s<seed>`, runs the real pipeline on each
//! with `kind=auto`, and prints per kind and field the exact-match rate against the ground
//! truth, the character accuracy (1 − CER), the check-rule pass rate, the kind detection
//! rate, and per-stage latency (median, p90, p99). The same rates follow per layout, per
//! font and per strong degradation (blur, tilt, glare, overexposure, noise, JPEG quality),
//! from the generator's manifest.
//!
//! Then the first `OCR_BENCH_RAPID` (default 50, 0: skip) images of each kind go through
//! RapidOCR (`rapidocr-onnxruntime` 1.4.4, the same PP-OCRv4 model files, the same
//! detector input size and thread count) in `rapidocr_times.py`, and the end-to-end
//! latency of both is printed side by side with the ratio. The Python package comes from
//! `OCR_BENCH_PYTHON` if set, else from a virtualenv in `$BRANCHD_CACHE/rapidocr-venv`,
//! created and filled with pip when missing; when that fails the comparison is skipped
//! with the reason.
//!
//! `OCR_BENCH_KINDS` (default `id-front,licence,id-back`) limits the documents;
//! `OCR_BENCH_VERBOSE=1` prints every field that does not match.
//!
//!     cargo bench -p branchd --bench ocr_accuracy

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use branchd::ocr::engine::Engine;
use branchd::ocr::fields::Requested;

use common::{cache_root, env_or, models_dir};

/// Items already generated for `kind` in `dir` (the folder is per seed; docgen writes the
/// truth file after the image).
fn have(dir: &Path, kind: &str) -> u32 {
    let mut n = 0;
    while dir.join(format!("{kind}-{n}.json")).exists() {
        n += 1;
    }
    n
}

fn generate(dir: &Path, kind: &str, seed: u32, count: u32) {
    let start = have(dir, kind);
    if start >= count {
        return;
    }
    eprintln!("generating {kind} {start}..{count} into {}", dir.display());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new("python3")
        .arg(root.join("tools/docgen/docgen.py"))
        .args(["--kind", kind, "--seed", &seed.to_string()])
        .args([
            "--start",
            &start.to_string(),
            "--count",
            &(count - start).to_string(),
        ])
        .arg("--out")
        .arg(dir)
        .status()
        .expect("python3 runs tools/docgen");
    assert!(status.success(), "docgen failed");
}

fn image_of(dir: &Path, kind: &str, i: u32) -> PathBuf {
    ["jpg", "png"]
        .iter()
        .map(|e| dir.join(format!("{kind}-{i}.{e}")))
        .find(|p| p.exists())
        .expect("generated image")
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i]
}

/// The RapidOCR release compared with, whose wheel the models come from.
const RAPIDOCR: &str = "rapidocr-onnxruntime==1.4.4";

/// A Python that can import `rapidocr_onnxruntime`, installing it into a virtualenv under
/// the cache when needed; the reason when there is none.
fn rapidocr_python() -> Result<PathBuf, String> {
    let works = |py: &Path| {
        Command::new(py)
            .args(["-c", "import rapidocr_onnxruntime"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if let Some(py) = std::env::var_os("OCR_BENCH_PYTHON").map(PathBuf::from) {
        return if works(&py) {
            Ok(py)
        } else {
            Err(format!(
                "OCR_BENCH_PYTHON={} cannot import rapidocr_onnxruntime",
                py.display()
            ))
        };
    }
    let venv = cache_root().join("rapidocr-venv");
    let py = venv.join("bin/python");
    if works(&py) {
        return Ok(py);
    }
    eprintln!("installing {RAPIDOCR} into {}", venv.display());
    let run = |cmd: &mut Command, what: &str| -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        Err(format!("{what} failed: {}", last.trim()))
    };
    if !py.exists() {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        )?;
    }
    run(
        Command::new(&py).args(["-m", "pip", "install", "-q", RAPIDOCR]),
        "pip install",
    )?;
    if works(&py) {
        Ok(py)
    } else {
        Err(format!("{RAPIDOCR} installed but cannot be imported"))
    }
}

/// RapidOCR's per-image time in ms for `images`, after loading its models and one
/// untimed run.
fn rapidocr_times(py: &Path, images: &[PathBuf]) -> Result<serde_json::Value, String> {
    let list = std::env::temp_dir().join(format!("ocr-bench-rapid-{}.txt", std::process::id()));
    let text: String = images
        .iter()
        .map(|p| format!("{}\n", p.display()))
        .collect();
    std::fs::write(&list, text).map_err(|e| format!("{}: {e}", list.display()))?;
    let p = branchd::ocr::det::DetParams::default();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/rapidocr_times.py");
    let out = Command::new(py)
        .arg(script)
        .arg("--list")
        .arg(&list)
        .args(["--threads", &THREADS.to_string()])
        .args(["--det-limit-side-len", &p.limit_side_len.to_string()])
        .args(["--det-limit-type", if p.limit_max { "max" } else { "min" }])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("rapidocr_times.py: {e}"));
    let _ = std::fs::remove_file(&list);
    let out = out?;
    if !out.status.success() {
        return Err(format!("rapidocr_times.py exited with {}", out.status));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("rapidocr_times.py output: {e}"))
}

/// ONNX Runtime intra-op threads, for both pipelines.
const THREADS: usize = 2;

#[derive(Default)]
struct FieldStat {
    n: u32,
    exact: u32,
    found: u32,
    valid: u32,
    checked: u32,
    /// Edit distance summed over items, and the truth's characters (for 1 − CER).
    edits: usize,
    chars: usize,
}

impl FieldStat {
    fn add(&mut self, got: Option<&str>, want: &str) {
        self.n += 1;
        self.found += u32::from(got.is_some());
        self.exact += u32::from(got == Some(want));
        self.edits += strsim::levenshtein(got.unwrap_or(""), want);
        self.chars += want.chars().count();
    }

    fn exact_pct(&self) -> f64 {
        100.0 * f64::from(self.exact) / f64::from(self.n.max(1))
    }

    /// Character accuracy, 1 − CER, in percent.
    fn char_pct(&self) -> f64 {
        100.0 * (1.0 - self.edits as f64 / self.chars.max(1) as f64)
    }
}

/// Fields whose character accuracy is reported besides the exact-match rate.
const LONG_FIELDS: [&str; 2] = ["address", "scope"];

/// The generator's version (`GENERATOR_VERSION` in docgen.py): part of the cache folder's
/// name, so a changed generator gets a fresh set.
fn docgen_version() -> u32 {
    include_str!("../../tools/docgen/docgen.py")
        .lines()
        .find_map(|l| l.strip_prefix("GENERATOR_VERSION = "))
        .and_then(|v| v.trim().parse().ok())
        .expect("docgen.py declares GENERATOR_VERSION")
}

/// The groups an item counts in besides "all": its layout and each degradation it had
/// strongly (from the manifest docgen writes).
fn groups_of(item: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(layout) = item["printed"]["layout"].as_str() {
        out.push(format!("layout {layout}"));
    }
    if let Some(font) = item["printed"]["value_font"].as_str() {
        out.push(format!("value font {font}"));
    }
    let d = &item["degradation"];
    let num = |k: &str| d[k].as_f64().unwrap_or(0.0);
    if num("blur_px") >= 1.0 || num("motion_blur") > 0.0 {
        out.push("blur ≥ 1 px or motion".into());
    }
    if num("rotation_deg").abs() >= 3.0 {
        out.push("tilt ≥ 3°".into());
    }
    if d["glare"].as_bool() == Some(true) {
        out.push("glare".into());
    }
    if num("overexposed") > 0.0 {
        out.push("overexposed".into());
    }
    if num("noise_sigma") >= 5.0 {
        out.push("noise σ ≥ 5".into());
    }
    if d["jpeg_quality"].as_u64().is_some_and(|q| q < 65) {
        out.push("JPEG quality < 65".into());
    }
    out
}

/// Per manifest item index, its entry (empty when there is no manifest).
fn manifest_items(dir: &Path, kind: &str) -> BTreeMap<u64, serde_json::Value> {
    let Ok(bytes) = std::fs::read(dir.join("manifest.json")) else {
        return BTreeMap::new();
    };
    let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    m["kinds"][kind]["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| Some((i["index"].as_u64()?, i.clone())))
                .collect()
        })
        .unwrap_or_default()
}

/// Exact-match rate per field (and 1 − CER for the long ones) per group.
fn print_groups(
    kind: &str,
    keys: &[String],
    groups: &BTreeMap<String, BTreeMap<String, FieldStat>>,
) {
    if groups.len() <= 1 {
        return;
    }
    println!(
        "### {kind} by layout, font and degradation: exact match % (long fields: exact / 1 − CER)\n"
    );
    let mut head = String::from("| group | items |");
    let mut rule = String::from("|---|---:|");
    for k in keys {
        head.push_str(&format!(" {k} |"));
        rule.push_str("---:|");
    }
    println!("{head}\n{rule}");
    for (group, stats) in groups {
        let items = stats.values().map(|s| s.n).max().unwrap_or(0);
        let mut row = format!("| {group} | {items} |");
        for k in keys {
            match stats.get(k) {
                Some(s) if LONG_FIELDS.contains(&k.as_str()) => {
                    row.push_str(&format!(" {:.0} / {:.1} |", s.exact_pct(), s.char_pct()));
                }
                Some(s) => row.push_str(&format!(" {:.0} |", s.exact_pct())),
                None => row.push_str(" — |"),
            }
        }
        println!("{row}");
    }
    println!();
}

fn main() {
    let count = env_or::<u32>("OCR_BENCH_COUNT", 200);
    let seed = env_or::<u32>("OCR_BENCH_SEED", 1);
    let dir = cache_root().join(format!("docgen-v{}-s{seed}", docgen_version()));
    std::fs::create_dir_all(&dir).expect("cache dir");
    let rapid = env_or::<u32>("OCR_BENCH_RAPID", 50).min(count);
    let kinds_env =
        std::env::var("OCR_BENCH_KINDS").unwrap_or_else(|_| "id-front,licence,id-back".into());
    let kinds: Vec<&str> = ["id-front", "licence", "id-back"]
        .into_iter()
        .filter(|k| kinds_env.split(',').any(|e| e.trim() == *k))
        .collect();
    assert!(
        !kinds.is_empty(),
        "OCR_BENCH_KINDS={kinds_env:?}: use id-front, licence and/or id-back"
    );
    generate(&dir, kinds[0], seed, count);
    let mut engine = Engine::load(&models_dir(), THREADS).expect("models");
    // warm up
    let first = std::fs::read(image_of(&dir, kinds[0], 0)).unwrap();
    let _ = branchd::ocr::recognise(&mut engine, &first, Requested::Auto);

    println!("OCR accuracy: {count} generated photos per document, seed {seed}, kind=auto\n");
    let mut all_stages: BTreeMap<&str, BTreeMap<&str, Vec<f64>>> = BTreeMap::new();
    // per kind: (image, our end-to-end ms) of the images RapidOCR gets too
    let mut compared: BTreeMap<&str, Vec<(PathBuf, f64)>> = BTreeMap::new();
    for &kind in &kinds {
        generate(&dir, kind, seed, count);
        let mut stats: BTreeMap<String, FieldStat> = BTreeMap::new();
        let mut groups: BTreeMap<String, BTreeMap<String, FieldStat>> = BTreeMap::new();
        let mut keys: Vec<String> = Vec::new();
        let items = manifest_items(&dir, kind);
        let mut kind_ok = 0;
        let mut errors = 0;
        let stages = all_stages.entry(kind).or_default();
        for i in 0..count {
            let path = image_of(&dir, kind, i);
            let img = std::fs::read(&path).unwrap();
            let truth: serde_json::Value = serde_json::from_slice(
                &std::fs::read(dir.join(format!("{kind}-{i}.json"))).unwrap(),
            )
            .unwrap();
            let r = match branchd::ocr::recognise(&mut engine, &img, Requested::Auto) {
                Ok(r) => r,
                Err(e) => {
                    errors += 1;
                    eprintln!("{kind}-{i}: {e}");
                    continue;
                }
            };
            let want_kind = if kind == "licence" {
                "licence"
            } else {
                "id_card"
            };
            if serde_json::to_value(r.kind).unwrap() == want_kind {
                kind_ok += 1;
            }
            let t = r.timing_ms;
            if i < rapid {
                compared.entry(kind).or_default().push((path, t.total));
            }
            for (name, v) in [
                ("decode", t.decode),
                ("detect", t.detect),
                ("classify", t.classify),
                ("recognize", t.recognize),
                ("extract", t.extract),
                ("total", t.total),
            ] {
                stages.entry(name).or_default().push(v);
            }
            let item_groups = items.get(&u64::from(i)).map(groups_of).unwrap_or_default();
            let verbose = std::env::var_os("OCR_BENCH_VERBOSE").is_some();
            for (key, want) in truth.as_object().unwrap() {
                let want = want.as_str().unwrap_or_default();
                if !keys.contains(key) {
                    keys.push(key.clone());
                }
                let got = r.fields.get(key).map(|f| f.value.as_str());
                let s = stats.entry(key.clone()).or_default();
                s.add(got, want);
                for g in &item_groups {
                    groups
                        .entry(g.clone())
                        .or_default()
                        .entry(key.clone())
                        .or_default()
                        .add(got, want);
                }
                if let Some(v) = r.fields.get(key).and_then(|f| f.valid) {
                    s.checked += 1;
                    s.valid += u32::from(v);
                }
                if verbose && got != Some(want) {
                    let groups = item_groups.join(", ");
                    eprintln!("{kind}-{i} {key}: got {got:?} want {want:?} [{groups}]");
                }
            }
        }
        println!(
            "## {kind}: kind detected {kind_ok}/{count}, errors {errors}\n\n| field | exact match | 1 − CER | found | check passes |\n|---|---:|---:|---:|---:|"
        );
        for (key, s) in &stats {
            let check = if s.checked > 0 {
                format!("{}/{}", s.valid, s.checked)
            } else {
                "—".into()
            };
            println!(
                "| {key} | {:.1}% ({}/{}) | {:.2}% | {}/{} | {check} |",
                s.exact_pct(),
                s.exact,
                s.n,
                s.char_pct(),
                s.found,
                s.n
            );
        }
        println!();
        print_groups(kind, &keys, &groups);
    }
    println!("## latency per stage, ms (median / p90 / p99)\n");
    println!("| document | decode | detect | classify | recognize | extract | total |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (kind, stages) in &mut all_stages {
        let mut row = format!("| {kind} |");
        for name in [
            "decode",
            "detect",
            "classify",
            "recognize",
            "extract",
            "total",
        ] {
            let v = stages.entry(name).or_default();
            row.push_str(&format!(
                " {:.1} / {:.1} / {:.1} |",
                pct(v, 0.5),
                pct(v, 0.9),
                pct(v, 0.99)
            ));
        }
        println!("{row}");
    }
    println!(
        "\nratio: detect/total median per document shows where the time goes; the build \
         profile and the machine's load are part of every figure."
    );
    compare_with_rapidocr(&compared, rapid);
}

/// RapidOCR on the same images: end-to-end latency side by side, and the ratio.
fn compare_with_rapidocr(compared: &BTreeMap<&str, Vec<(PathBuf, f64)>>, rapid: u32) {
    println!("\n## side by side with RapidOCR ({RAPIDOCR}), end to end, ms\n");
    if rapid == 0 {
        println!("skipped: OCR_BENCH_RAPID=0");
        return;
    }
    let py = match rapidocr_python() {
        Ok(py) => py,
        Err(e) => {
            println!("skipped: RapidOCR is not available ({e})");
            return;
        }
    };
    println!(
        "the first {rapid} images of each document; branchd: image bytes to fields (this \
         binary's profile, {THREADS} threads); RapidOCR: image file to lines (Python, same \
         models, detector input limited to the same side, {THREADS} threads); models loaded \
         and one image run before timing\n"
    );
    println!(
        "| document | images | branchd median / p90 | RapidOCR median / p90 | ratio of medians (RapidOCR / branchd) |"
    );
    println!("|---|---:|---:|---:|---:|");
    let manifest = branchd::models::manifest().unwrap_or_default();
    for (kind, items) in compared {
        let images: Vec<PathBuf> = items.iter().map(|i| i.0.clone()).collect();
        let r = match rapidocr_times(&py, &images) {
            Ok(r) => r,
            Err(e) => {
                println!("| {kind} | {} | — | failed: {e} | — |", images.len());
                continue;
            }
        };
        let mut theirs: Vec<f64> = r["ms"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
            .unwrap_or_default();
        let mut ours: Vec<f64> = items.iter().map(|i| i.1).collect();
        let (om, op) = (pct(&mut ours, 0.5), pct(&mut ours, 0.9));
        let (tm, tp) = (pct(&mut theirs, 0.5), pct(&mut theirs, 0.9));
        println!(
            "| {kind} | {} | {om:.0} / {op:.0} | {tm:.0} / {tp:.0} | {:.2} |",
            theirs.len(),
            tm / om
        );
        if let Some(models) = r["models"].as_object() {
            let same = models.iter().all(|(file, sha)| {
                manifest
                    .iter()
                    .any(|e| &e.file == file && Some(e.sha256.as_str()) == sha.as_str())
            });
            if !same {
                println!("\nwarning: RapidOCR's model files differ from models/manifest.toml");
            }
        }
    }
}
