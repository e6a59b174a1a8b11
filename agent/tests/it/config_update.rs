//! `config.update` with `set`: any key of the config file, validated by the loader, written
//! with the previous file kept, applied live or by a restart, confirmed after the grace
//! period or rolled back, and audited.

use std::path::{Path, PathBuf};

use branchd::app;
use branchd::config::Config;
use branchd::store::Event;
use serde_json::{Value, json};

use crate::common::{TestBox, events, wait_until};

const GRACE_S: u64 = 1;

fn config_text(dir: &Path, grace_s: u64) -> String {
    format!(
        r#"# the branch's config, as the operator wrote it
[branch]
id = "T001"
name = "测试支行"
data_dir = "{}"

[http]
listen = "127.0.0.1:0"

[[services]]
code = "personal"
prefix = "A"
name = "个人业务"
target_wait_min = 10   # minutes before a wait alert

[updates]
config_grace_s = {grace_s}
"#,
        dir.display()
    )
}

/// A daemon started from a config file, as `branchd run --config FILE` starts it.
async fn start_from_file(dir: tempfile::TempDir) -> TestBox {
    let path = dir.path().join("branchd.toml");
    let cfg = Config::load(&path).expect("the config file");
    let running = app::start_guarded(cfg).await.expect("start");
    TestBox::from_running(running, dir)
}

async fn box_with_config(grace_s: u64) -> (TestBox, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("branchd.toml");
    std::fs::write(&path, config_text(dir.path(), grace_s)).unwrap();
    (start_from_file(dir).await, path)
}

/// What systemd does when the daemon exits for a restart: start it again.
async fn restart(b: TestBox) -> TestBox {
    let dir = b.stop_keep_dir().await;
    start_from_file(dir).await
}

async fn send(b: &TestBox, id: &str, set: Value) -> branchd::sync::commands::Outcome {
    let payload = json!({"v": 1, "id": id, "ts": chrono::Utc::now().to_rfc3339(), "kind": "config.update", "data": {"set": set}});
    branchd::sync::commands::handle(&b.modules().sync, payload.to_string().as_bytes())
        .await
        .unwrap()
}

async fn wait_event(b: &TestBox, kind: &'static str) -> Value {
    let mut f = b.core().store.follow(0);
    let wait = async {
        loop {
            let ev: Event = f.next().await.unwrap();
            if ev.kind == kind {
                return ev.data;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), wait)
        .await
        .unwrap_or_else(|_| panic!("no {kind}"))
}

async fn audit(b: &TestBox) -> Vec<Value> {
    b.core()
        .store
        .read(|c| branchd::users::audit_trail(c, 100))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_key_is_applied_at_once_written_kept_audited_and_confirmed() {
    let (b, path) = box_with_config(GRACE_S).await;
    let before = std::fs::read_to_string(&path).unwrap();
    let ack = send(&b, "c-1", json!({"services[0].target_wait_min": 25})).await;
    assert!(ack.ok, "{:?}", ack.error);
    assert!(
        !b.core().restart.is_cancelled(),
        "no restart for a live key"
    );
    assert_eq!(
        b.core().config().services[0].target_wait.as_secs(),
        25 * 60,
        "in use at once"
    );
    let view = b.modules().queue.snapshot().await.unwrap();
    assert_eq!(view.services[0].target_wait_s, 25 * 60);

    let after = std::fs::read_to_string(&path).unwrap();
    assert!(
        after.contains("target_wait_min = 25   # minutes before a wait alert"),
        "the key's comment stays:\n{after}"
    );
    assert!(after.starts_with("# the branch's config"), "{after}");
    assert_eq!(
        std::fs::read_to_string(branchd::updates::config::prev_path(&path)).unwrap(),
        before,
        "the previous file is kept"
    );
    assert_eq!(
        events(&b, "config.changed").await,
        [json!({"command": "c-1", "keys": ["services[0].target_wait_min"], "apply": "live"})]
    );
    let trail = audit(&b).await;
    let entry = trail
        .iter()
        .find(|a| a["action"] == "config.update")
        .expect("audited");
    assert_eq!(entry["actor"], "hq:c-1");
    assert_eq!(
        entry["detail"]["changes"],
        json!([{"key": "services[0].target_wait_min", "before": "10", "after": "25"}])
    );

    let confirmed = wait_event(&b, "config.confirmed").await;
    assert_eq!(confirmed["command"], "c-1");
    assert!(
        branchd::updates::config::pending(&path).is_none(),
        "nothing pending once confirmed"
    );
    assert!(
        audit(&b)
            .await
            .iter()
            .any(|a| a["action"] == "config.confirmed")
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_change_is_refused_with_the_loaders_reasons_and_changes_nothing() {
    let (b, path) = box_with_config(GRACE_S).await;
    let before = std::fs::read_to_string(&path).unwrap();
    let cases: &[(Value, &str)] = &[
        (
            json!({"faces.match_threshold": 5}),
            "`faces.match_threshold`: 5 is out of range",
        ),
        (json!({"faces.bogus": 1}), "`faces.bogus`: unknown key"),
        (
            json!({"services[3].name": "x"}),
            "has 1 entries; [3] is not one of them",
        ),
        (
            json!({"branch.id": null}),
            "`branch.id`: missing required key",
        ),
        (json!({"http": "x"}), "a whole section cannot be set"),
        (json!({"Faces.x": 1}), "is not a config key"),
    ];
    for (i, (set, want)) in cases.iter().enumerate() {
        let ack = send(&b, &format!("bad-{i}"), set.clone()).await;
        assert!(!ack.ok, "{set}");
        let err = ack.error.unwrap();
        assert!(err.contains(want), "{set}: `{err}` lacks `{want}`");
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    assert!(events(&b, "config.changed").await.is_empty());
    assert!(!b.core().restart.is_cancelled());
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_needs_a_restart_restarts_the_daemon_which_starts_with_it() {
    let (b, path) = box_with_config(GRACE_S).await;
    let ack = send(&b, "c-r", json!({"log.level": "debug", "ocr.workers": 2})).await;
    assert!(ack.ok, "{:?}", ack.error);
    assert!(
        b.core().restart.is_cancelled(),
        "the daemon is asked to restart"
    );
    assert_eq!(b.core().cfg.ocr.workers, 1, "not applied live");
    assert_eq!(events(&b, "config.changed").await[0]["apply"], "restart");
    let b = restart(b).await;
    assert_eq!(b.core().cfg.log.level, "debug");
    assert_eq!(b.core().cfg.ocr.workers, 2);
    let confirmed = wait_event(&b, "config.confirmed").await;
    assert_eq!(confirmed["command"], "c-r");
    assert!(branchd::updates::config::pending(&path).is_none());
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_the_daemon_cannot_start_with_is_rolled_back() {
    let (b, path) = box_with_config(GRACE_S).await;
    let before = std::fs::read_to_string(&path).unwrap();
    // a port something else holds: the daemon cannot start with it
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let ack = send(&b, "c-bad", json!({"http.listen": addr})).await;
    assert!(ack.ok, "valid as a file: {:?}", ack.error);
    let b = restart(b).await;
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        before,
        "the previous file is back"
    );
    assert_ne!(b.core().cfg.http.listen.to_string(), addr);
    let rolled = wait_event(&b, "config.rolled_back").await;
    assert_eq!(rolled["command"], "c-bad");
    let reason = rolled["reason"].as_str().unwrap();
    assert!(
        reason.contains("could not start") && reason.contains(&addr),
        "{reason}"
    );
    assert!(
        audit(&b)
            .await
            .iter()
            .any(|a| a["action"] == "config.rolled_back")
    );
    assert!(branchd::updates::config::pending(&path).is_none());
    drop(taken);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_not_confirmed_before_the_next_start_is_rolled_back() {
    // a grace period no test waits for: the daemon "crashes" before confirming
    let (b, path) = box_with_config(3600).await;
    let before = std::fs::read_to_string(&path).unwrap();
    let ack = send(&b, "c-loop", json!({"ocr.queue": 9})).await;
    assert!(ack.ok, "{:?}", ack.error);
    let b = restart(b).await;
    assert_eq!(b.core().cfg.ocr.queue, 9, "first start with the change");
    let b = restart(b).await;
    assert_eq!(b.core().cfg.ocr.queue, 4, "the second start rolled it back");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    let rolled = wait_event(&b, "config.rolled_back").await;
    assert!(
        rolled["reason"]
            .as_str()
            .unwrap()
            .contains("restarted before the change was confirmed"),
        "{rolled}"
    );
    wait_until("the note is reported once", 10, || async {
        !path.with_extension("toml.rolled-back").exists()
    })
    .await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_after_which_head_office_is_unreachable_is_rolled_back() {
    let (b, path) = box_with_config(GRACE_S).await;
    let before = std::fs::read_to_string(&path).unwrap();
    // a broker nobody runs: the link never comes up with it
    let dead = format!("mqtt://127.0.0.1:{}", crate::common::free_port());
    let ack = send(&b, "c-mqtt", json!({"mqtt.url": dead})).await;
    assert!(ack.ok, "{:?}", ack.error);
    let b = restart(b).await;
    assert_eq!(
        b.core().cfg.mqtt.as_ref().map(|m| m.url.as_str()),
        Some(dead.as_str())
    );
    wait_until("the unhealthy change asks for a restart", 60, || async {
        b.core().restart.is_cancelled()
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        before,
        "the previous file is back"
    );
    let b = restart(b).await;
    assert!(b.core().cfg.mqtt.is_none());
    let rolled = wait_event(&b, "config.rolled_back").await;
    assert_eq!(rolled["command"], "c-mqtt");
    assert!(
        rolled["reason"]
            .as_str()
            .unwrap()
            .contains("head-office link did not come up"),
        "{rolled}"
    );
    b.stop().await;
}
