//! OCR accuracy and latency on generated documents.
//!
//! Generates (once, then reuses) `OCR_BENCH_COUNT` (default 200) photos of each document
//! with `tools/docgen` (seed `OCR_BENCH_SEED`, default 1) into
//! `$BRANCHD_CACHE/docgen-s<seed>`, runs the real pipeline on each with `kind=auto`, and
//! prints per kind and field the exact-match rate against the ground truth, the check-rule
//! pass rate, the kind detection rate, and per-stage latency (median, p90, p99).
//!
//!     cargo bench -p branchd --bench ocr_accuracy

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use branchd::ocr::engine::Engine;
use branchd::ocr::fields::Requested;

fn env_or(key: &str, default: u32) -> u32 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cache_root() -> PathBuf {
    if let Some(c) = std::env::var_os("BRANCHD_CACHE") {
        return PathBuf::from(c);
    }
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/branchd")
}

fn models_dir() -> PathBuf {
    std::env::var_os("BRANCHD_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_root().join("models"))
}

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

#[derive(Default)]
struct FieldStat {
    n: u32,
    exact: u32,
    found: u32,
    valid: u32,
    checked: u32,
}

fn main() {
    let count = env_or("OCR_BENCH_COUNT", 200);
    let seed = env_or("OCR_BENCH_SEED", 1);
    let dir = cache_root().join(format!("docgen-s{seed}"));
    std::fs::create_dir_all(&dir).expect("cache dir");
    let kinds = ["id-front", "licence", "id-back"];
    generate(&dir, "id-front", seed, count);
    let mut engine = Engine::load(&models_dir(), 2).expect("models");
    // warm up
    let first = std::fs::read(image_of(&dir, "id-front", 0)).unwrap();
    let _ = branchd::ocr::recognise(&mut engine, &first, Requested::Auto);

    println!("OCR accuracy: {count} generated photos per document, seed {seed}, kind=auto\n");
    let mut all_stages: BTreeMap<&str, BTreeMap<&str, Vec<f64>>> = BTreeMap::new();
    for kind in kinds {
        generate(&dir, kind, seed, count);
        let mut stats: BTreeMap<String, FieldStat> = BTreeMap::new();
        let mut kind_ok = 0;
        let mut errors = 0;
        let stages = all_stages.entry(kind).or_default();
        for i in 0..count {
            let img = std::fs::read(image_of(&dir, kind, i)).unwrap();
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
            for (key, want) in truth.as_object().unwrap() {
                let s = stats.entry(key.clone()).or_default();
                s.n += 1;
                if let Some(f) = r.fields.get(key) {
                    s.found += 1;
                    if Some(f.value.as_str()) == want.as_str() {
                        s.exact += 1;
                    } else if std::env::var_os("OCR_BENCH_VERBOSE").is_some() {
                        eprintln!("{kind}-{i} {key}: got {:?} want {want}", f.value);
                    }
                    if let Some(v) = f.valid {
                        s.checked += 1;
                        s.valid += u32::from(v);
                    }
                } else if std::env::var_os("OCR_BENCH_VERBOSE").is_some() {
                    eprintln!("{kind}-{i} {key}: missing, want {want}");
                }
            }
        }
        println!(
            "## {kind}: kind detected {kind_ok}/{count}, errors {errors}\n\n| field | exact match | found | check passes |\n|---|---:|---:|---:|"
        );
        for (key, s) in &stats {
            let check = if s.checked > 0 {
                format!("{}/{}", s.valid, s.checked)
            } else {
                "—".into()
            };
            println!(
                "| {key} | {:.1}% ({}/{}) | {}/{} | {check} |",
                100.0 * f64::from(s.exact) / f64::from(s.n.max(1)),
                s.exact,
                s.n,
                s.found,
                s.n
            );
        }
        println!();
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
}
