//! The box on a data dir that fills up or turns read-only. These tests mount a small tmpfs
//! and so need root; without it they say why (SKIPPED) and check nothing.

#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use branchd::app;
use branchd::config::Config;

use branchd::users::{self, Role};
use branchd_drivers::stm::TxnType;
use serde_json::json;

use crate::common::{PASSWORD, config_text, error_code, wait_until};

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None`, after printing why, when this process cannot mount one.
    fn mount(size: &str) -> Option<Tmpfs> {
        let root = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .map(|u| u.split_whitespace().nth(1) == Some("0"))
            })
            .unwrap_or(false);
        if !root {
            eprintln!("SKIPPED: mounting a tmpfs data dir needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        if !out.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, how: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{how}")])
            .arg(self.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

/// Fill the file system under `dir` with one file; returns it.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xA5u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    while f.write_all(&chunk[..512]).is_ok() {}
    let _ = f.sync_all();
    path
}

async fn health(base: &str) -> (u16, serde_json::Value) {
    let r = reqwest::get(format!("{base}/healthz")).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

const LOBBY: &str = r#"
[[services]]
code = "personal"
prefix = "A"
name = "个人业务"
name_en = "Personal banking"
target_wait_min = 15

[[counters]]
id = "1"
services = ["personal"]
"#;

#[tokio::test]
async fn a_full_data_dir_refuses_writes_with_507_and_recovers_by_itself() {
    let Some(fs) = Tmpfs::mount("16m") else {
        return;
    };
    let cfg = Config::parse(&config_text(fs.path(), LOBBY)).unwrap();
    let db = cfg.db_path();
    tokio::task::spawn_blocking({
        let db = db.clone();
        move || {
            let store = app::open_store(&db).unwrap();
            let hash = users::hash_password(PASSWORD);
            store
                .write_blocking(move |tx| {
                    users::insert_user(tx, "lobby_manager", Role::LobbyManager, &hash)
                })
                .unwrap();
            store.close();
        }
    })
    .await
    .unwrap();
    let running = app::start(cfg).await.expect("start");
    let base = format!("http://{}", running.addr);
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let r = c
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "lobby_manager", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let issue = || {
        c.post(format!("{base}/api/v1/tickets"))
            .json(&json!({"service": "personal"}))
            .send()
    };
    assert_eq!(issue().await.unwrap().status(), 201);
    assert_eq!(health(&base).await.0, 200);

    // Give back the WAL's spare room, then fill the disk.
    rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let filler = fill(fs.path());
    let r = issue().await.unwrap();
    assert_eq!(r.status(), 507);
    assert_eq!(error_code(r).await, "storage_full");
    let (status, body) = health(&base).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["storage"], "unwritable");

    // Space returns: writes and health come back without a restart, and what was
    // committed before is whole.
    std::fs::remove_file(filler).unwrap();
    let r = issue().await.unwrap();
    assert_eq!(r.status(), 201);
    let t: serde_json::Value = r.json().await.unwrap();
    assert_eq!(t["number"], "A002", "{t}");
    let (status, body) = health(&base).await;
    assert_eq!(status, 200, "{body}");
    let check: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    assert!(running.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_read_only_data_dir_is_refused_at_start_with_a_clear_message() {
    let Some(fs) = Tmpfs::mount("16m") else {
        return;
    };
    // A box that ran once, then finds its data dir read-only.
    let cfg = Config::parse(&config_text(fs.path(), "")).unwrap();
    let running = app::start(cfg.clone()).await.expect("start");
    assert!(running.shutdown(Duration::from_secs(5)).await);
    fs.remount("ro");

    let err = app::start(cfg).await.expect_err("a read-only data dir");
    assert!(err.is::<app::DataDirUnwritable>(), "{err:#}");

    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("branchd.toml");
    std::fs::write(&conf, config_text(fs.path(), "")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_branchd"))
        .args(["run", "--config"])
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(73), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("takes no writes") && err.contains("Read-only file system"),
        "{err}"
    );
    fs.remount("rw");
}

#[tokio::test]
async fn a_filling_disk_raises_storage_alerts_with_the_reserve_and_clears_them_when_space_returns()
{
    let Some(fs) = Tmpfs::mount("16m") else {
        return;
    };
    let extra = "[daemon]\nmin_free_mb = 6\nreserve_mb = 2\nstorage_check_s = 1\n";
    let cfg = Config::parse(&config_text(fs.path(), extra)).unwrap();
    let running = app::start(cfg).await.expect("start");
    let store = running.core.store.clone();
    let reserve = fs.path().join("reserve");
    wait_until("the reserve is taken", 20, || {
        let reserve = reserve.clone();
        async move { reserve.metadata().is_ok_and(|m| m.len() == 2 << 20) }
    })
    .await;
    let open_alerts = || {
        let store = store.clone();
        async move {
            store
                .read(|c| {
                    let mut st = c.prepare(
                        "SELECT kind FROM alerts WHERE cleared_at IS NULL AND kind LIKE 'storage.%' \
                         ORDER BY kind",
                    )?;
                    let kinds = st.query_map([], |r| r.get::<_, String>(0))?;
                    Ok::<_, branchd::store::StoreError>(kinds.collect::<Result<Vec<_>, _>>()?)
                })
                .await
                .unwrap()
        }
    };
    assert!(open_alerts().await.is_empty());

    // Full: the reserve is given back, and the alert saying so is committed.
    let filler = fill(fs.path());
    wait_until("storage.full raised", 20, || async {
        open_alerts().await.contains(&"storage.full".to_string())
    })
    .await;
    assert!(!reserve.exists(), "the reserve was given back");
    // What the reserve freed is kept for essential writes: ordinary ones wait.
    let ordinary = store
        .write(|tx| tx.emit("test.ordinary", serde_json::json!({})))
        .await;
    assert!(
        matches!(ordinary, Err(branchd::store::StoreError::Full)),
        "{ordinary:?}"
    );
    store
        .write_essential(|tx| tx.emit("test.essential", serde_json::json!({})))
        .await
        .expect("an essential write takes the reserve's room");

    // Space returns: the alerts clear and the reserve is taken again, without a restart.
    std::fs::remove_file(filler).unwrap();
    wait_until("storage alerts cleared", 20, || async {
        open_alerts().await.is_empty()
    })
    .await;
    wait_until("the reserve is taken again", 20, || {
        let reserve = reserve.clone();
        async move { reserve.exists() }
    })
    .await;
    store
        .write(|tx| tx.emit("test.ordinary", serde_json::json!({})))
        .await
        .expect("ordinary writes resume by themselves");
    assert!(running.shutdown(Duration::from_secs(5)).await);
}

/// The transactions of `STM-01` stored under `event_id`.
async fn stored(store: &branchd::store::Store, event_id: &str) -> i64 {
    let id = event_id.to_string();
    store
        .read(move |c| {
            c.query_row(
                "SELECT count(*) FROM device_events WHERE device_id = 'STM-01' AND event_id = ?1",
                [&id],
                |r| r.get(0),
            )
            .map_err(branchd::store::StoreError::from)
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_full_disk_an_stm_event_is_not_acknowledged_and_arrives_once_when_space_returns() {
    let Some(fs) = Tmpfs::mount("16m") else {
        return;
    };
    let links = tempfile::tempdir().unwrap();
    let (sim, link) = crate::devices::stm_sim(&links, "STM-01", 7);
    let extra = format!(
        "{}\n[daemon]\nreserve_mb = 0\n",
        crate::devices::stm_table("STM-01", &link)
    );
    let cfg = Config::parse(&config_text(fs.path(), &extra)).unwrap();
    let db = cfg.db_path();
    let running = app::start(cfg).await.expect("start");
    let store = running.core.store.clone();
    let acked = |id: &str| sim.record().acked_events.contains(&id.to_string());

    let before = sim.simple_transaction(TxnType::Deposit, 100);
    wait_until("a deposit acknowledged", 20, || async { acked(&before) }).await;
    assert_eq!(stored(&store, &before).await, 1);

    rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let filler = fill(fs.path());
    let during = sim.simple_transaction(TxnType::Deposit, 200);
    // The device retransmits for a while; nothing it sent is acknowledged or half-stored.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!acked(&during), "acknowledged while it could not be stored");
    assert_eq!(stored(&store, &during).await, 0);

    std::fs::remove_file(filler).unwrap();
    wait_until(
        "the deposit acknowledged once space returned",
        60,
        || async { acked(&during) },
    )
    .await;
    assert_eq!(stored(&store, &during).await, 1, "stored exactly once");
    assert_eq!(stored(&store, &before).await, 1);
    assert!(running.shutdown(Duration::from_secs(5)).await);
}

/// The open alert of `kind`, if any: its data.
async fn open_alert(
    store: &branchd::store::Store,
    kind: &'static str,
) -> Option<serde_json::Value> {
    store
        .read(move |c| {
            use rusqlite::OptionalExtension as _;
            Ok::<_, branchd::store::StoreError>(
                c.query_row(
                    "SELECT data FROM alerts WHERE kind = ?1 AND cleared_at IS NULL",
                    [kind],
                    |r| r.get::<_, String>(0),
                )
                .optional()?,
            )
        })
        .await
        .unwrap()
        .map(|d| serde_json::from_str(&d).unwrap())
}

#[tokio::test(start_paused = true)]
async fn an_outbox_growing_for_hours_raises_storage_headroom_and_it_clears_once_growth_stops() {
    // The disk's floor is set 200 MB under its free space now: at about 72 MB a day the
    // data would reach it in under three days, well within the 14 days of the threshold.
    let probe = tempfile::tempdir().unwrap();
    let free_mb = branchd::storage::free_bytes(probe.path()).unwrap() >> 20;
    let extra = format!(
        "[daemon]\nstorage_check_s = 60\nmin_free_mb = {}\nreserve_mb = 0\n",
        free_mb.saturating_sub(200).max(1)
    );
    let b = crate::common::TestBox::start_with(&extra).await;
    let store = b.core().store.clone();
    // Three hours of events head office does not take: 50 of 1 KB a minute.
    let pad = "x".repeat(1000);
    for _ in 0..180 {
        let pad = pad.clone();
        store
            .write(move |tx| {
                for _ in 0..50 {
                    tx.emit("test.backlog", json!({ "pad": pad }))?;
                }
                Ok::<_, branchd::store::StoreError>(())
            })
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(60)).await;
    }
    wait_until("storage.headroom raised", 60, || async {
        open_alert(&store, "storage.headroom").await.is_some()
    })
    .await;
    let data = open_alert(&store, "storage.headroom").await.unwrap();
    let per_day = data["growth_mb_per_day"].as_f64().unwrap();
    let written = 50.0 * 1000.0 * 1440.0 / 1048576.0;
    assert!(
        per_day > 0.8 * written && per_day < 1.6 * written,
        "measured {per_day} MB a day for {written:.1} MB of event data a day: {data}"
    );
    let days = data["days"].as_f64().unwrap();
    assert!((0.0..14.0).contains(&days), "{data}");
    assert!(b.core().metrics.storage_headroom_days.get() < 14);
    // A day and more without growth: the alert clears by itself.
    for _ in 0..26 * 60 {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    for _ in 0..600 {
        if open_alert(&store, "storage.headroom").await.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let left = open_alert(&store, "storage.headroom").await;
    assert!(
        left.is_none(),
        "still open: {left:?}; headroom gauge {}",
        b.core().metrics.storage_headroom_days.get()
    );
    b.stop().await;
}
