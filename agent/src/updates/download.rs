//! Downloads from the bank's artifact server over HTTPS: the server is verified against
//! `[updates] ca_file` (or the system roots), and a download resumes where the last
//! connection stopped (`Range: bytes=N-`) from the partial file on the data disk.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::watch;
use tokio_rustls::rustls::{self, ClientConfig};
use tokio_util::sync::CancellationToken;

use crate::config::updates::UpdatesConfig;

/// Why a download did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Every attempt failed; the last reason.
    #[error("{attempts} attempt(s) failed; the last: {last}")]
    Failed {
        /// Attempts made.
        attempts: u32,
        /// Why the last one failed.
        last: String,
    },
    /// The server sent more bytes than the command announced.
    #[error("the server sent more than the announced {size} bytes")]
    TooLong {
        /// The announced size.
        size: u64,
    },
    /// The partial file cannot be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The daemon is stopping (the partial file stays for the next start).
    #[error("the daemon is stopping")]
    Cancelled,
}

/// An HTTPS client that trusts the artifact server's CA (or the system roots) and nothing
/// else: no plain HTTP, no redirect to another scheme.
pub fn client(cfg: &UpdatesConfig) -> anyhow::Result<reqwest::Client> {
    let roots = crate::tls::roots(cfg.ca_file.as_deref(), "[updates] ca_file")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .https_only(true)
        .connect_timeout(Duration::from_secs(20))
        .read_timeout(Duration::from_secs(60))
        .build()
        .context("cannot build the HTTPS client")
}

/// Download `url` into `part` until it holds `size` bytes, resuming from what `part`
/// already holds, trying up to `[updates] download_attempts` connections with
/// `[updates] retry_s` between them. `progress` is given the bytes held after each chunk.
pub async fn fetch(
    client: &reqwest::Client,
    cfg: &UpdatesConfig,
    url: &str,
    part: &Path,
    size: u64,
    cancel: &CancellationToken,
    progress: &watch::Sender<u64>,
) -> Result<(), FetchError> {
    let mut last = String::new();
    for attempt in 1..=cfg.download_attempts {
        if attempt > 1 {
            tokio::select! {
                _ = cancel.cancelled() => return Err(FetchError::Cancelled),
                _ = tokio::time::sleep(cfg.retry) => {}
            }
        }
        let r = tokio::select! {
            _ = cancel.cancelled() => return Err(FetchError::Cancelled),
            r = attempt_once(client, url, part, size, progress) => r,
        };
        match r {
            Ok(()) => return Ok(()),
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Retry(reason)) => {
                tracing::warn!(url, attempt, %reason, "download interrupted; resuming");
                last = reason;
            }
        }
    }
    Err(FetchError::Failed {
        attempts: cfg.download_attempts,
        last,
    })
}

enum Attempt {
    Retry(String),
    Fatal(FetchError),
}

fn io(part: &Path) -> impl Fn(std::io::Error) -> Attempt + '_ {
    move |source| {
        Attempt::Fatal(FetchError::Io {
            path: part.display().to_string(),
            source,
        })
    }
}

async fn attempt_once(
    client: &reqwest::Client,
    url: &str,
    part: &Path,
    size: u64,
    progress: &watch::Sender<u64>,
) -> Result<(), Attempt> {
    let mut have = match tokio::fs::metadata(part).await {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(io(part)(e)),
    };
    if have > size {
        // not the file announced: start again
        have = 0;
    }
    if have == size {
        progress.send_replace(have);
        return Ok(());
    }
    let mut req = client.get(url);
    if have > 0 {
        req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let mut resp = req.send().await.map_err(|e| Attempt::Retry(describe(&e)))?;
    let status = resp.status();
    let resumed = status == reqwest::StatusCode::PARTIAL_CONTENT
        && resp
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(&format!("bytes {have}-")));
    if resumed {
        tracing::info!(url, from = have, "download resumed");
    } else if status == reqwest::StatusCode::OK {
        have = 0;
    } else if status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE {
        // the partial file does not fit what the server has: start again next time
        tokio::fs::remove_file(part).await.map_err(io(part))?;
        return Err(Attempt::Retry(format!("the server answered {status}")));
    } else if status.is_client_error() {
        return Err(Attempt::Fatal(FetchError::Failed {
            attempts: 1,
            last: format!("the server answered {status}"),
        }));
    } else {
        return Err(Attempt::Retry(format!("the server answered {status}")));
    }
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(part)
        .await
        .map_err(io(part))?;
    progress.send_replace(have);
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                file.flush().await.map_err(io(part))?;
                return Err(Attempt::Retry(describe(&e)));
            }
        };
        have += chunk.len() as u64;
        if have > size {
            drop(file);
            tokio::fs::remove_file(part).await.map_err(io(part))?;
            return Err(Attempt::Fatal(FetchError::TooLong { size }));
        }
        file.write_all(&chunk).await.map_err(io(part))?;
        progress.send_replace(have);
    }
    file.flush().await.map_err(io(part))?;
    file.sync_all().await.map_err(io(part))?;
    if have < size {
        return Err(Attempt::Retry(format!(
            "the connection ended after {have} of {size} bytes"
        )));
    }
    Ok(())
}

/// A reqwest error with its causes (the TLS reason is in a source).
fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// SHA-256 of a file, lower-case hex (on the blocking pool).
pub async fn sha256_file(path: &Path) -> std::io::Result<String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use sha2::Digest as _;
        let mut f = std::fs::File::open(&path)?;
        let mut h = sha2::Sha256::new();
        std::io::copy(&mut f, &mut h)?;
        Ok(hex::encode(h.finalize()))
    })
    .await
    .map_err(std::io::Error::other)?
}
