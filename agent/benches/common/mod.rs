//! Settings every benchmark reads the same way (included with `mod common;`).

#![allow(dead_code)] // each benchmark uses its own subset

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// `key` from the environment, or `default` when unset or unparsable.
pub fn env_or<T: FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `$BRANCHD_CACHE`, else `~/.cache/branchd`.
pub fn cache_root() -> PathBuf {
    if let Some(c) = std::env::var_os("BRANCHD_CACHE") {
        return PathBuf::from(c);
    }
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/branchd")
}

/// `$BRANCHD_MODELS`, else the cache's `models`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("BRANCHD_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_root().join("models"))
}

/// The `p` quantile (0–1) of latencies sorted ascending (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// The median of `v` (the upper one of an even count); NaN when `v` is empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A latency in milliseconds, three decimals, for the tables.
pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

/// A benchmark's `main`: run its async body on a multi-threaded runtime.
pub fn run(bench: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench)
}
