//! The authorisation timeout on tokio's paused clock, and event de-duplication across a
//! restart of the box.

use std::time::Duration;

use branchd_drivers::stm::sim::sample_auth_request;
use serde_json::json;

use super::{db, stm};
use crate::config::Config;
use crate::store::{Store, StoreError};

fn config(dir: &std::path::Path) -> Config {
    Config::parse(&format!(
        "[branch]\nid = \"T001\"\nname = \"t\"\ndata_dir = \"{}\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\n[stm]\nauth_timeout_s = 180\n",
        dir.display()
    ))
    .expect("config")
}

fn task_state(store: &Store, id: i64) -> String {
    store
        .read_blocking(|c| db::task(c, id))
        .unwrap()
        .expect("task")
        .state
        .to_string()
}

fn open_alert_kinds(store: &Store) -> Vec<String> {
    store
        .read_blocking(|c| crate::alerts::list(c, 50))
        .unwrap()
        .into_iter()
        .filter(|a| !a.cleared)
        .map(|a| a.kind)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_task_waiting_past_the_configured_time_raises_the_timeout_alert() {
    let dir = tempfile::tempdir().unwrap();
    let running = crate::app::start(config(dir.path())).await.unwrap();
    let (app, devices) = (running.core.clone(), running.modules.devices.clone());
    let (task_id, ts) = app
        .store
        .write(|tx| {
            let id = db::on_auth_request(tx, "STM-02", &sample_auth_request("R9", 90_000))?;
            Ok::<_, StoreError>((id, crate::clock::rfc3339(tx.now())))
        })
        .await
        .unwrap();
    stm::schedule_auth_timeout(&devices, task_id, ts, app.cfg.stm.auth_timeout);
    tokio::time::sleep(Duration::from_secs(179)).await;
    // Blocking reads keep the paused clock where it is.
    assert_eq!(task_state(&app.store, task_id), "pending");
    assert!(open_alert_kinds(&app.store).is_empty());
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..1000 {
        if task_state(&app.store, task_id) == "timeout" {
            break;
        }
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(task_state(&app.store, task_id), "timeout");
    assert_eq!(open_alert_kinds(&app.store), ["auth.timeout"]);
    let kinds: Vec<String> = app
        .store
        .events_after(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&"auth.timeout".to_string()), "{kinds:?}");
    // A late decision is still recorded and clears the alert.
    app.store
        .write(move |tx| {
            db::record_decision(
                tx,
                task_id,
                "approve",
                &[],
                "",
                "super",
                &Ok(branchd_drivers::stm::CommandResult {
                    cmd_id: "c1".into(),
                    ok: true,
                    error: None,
                    data: None,
                }),
            )
        })
        .await
        .unwrap();
    assert_eq!(task_state(&app.store, task_id), "approved");
    assert!(open_alert_kinds(&app.store).is_empty());
    running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(start_paused = true)]
async fn a_decided_task_never_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let running = crate::app::start(config(dir.path())).await.unwrap();
    let app = running.core.clone();
    let (task_id, ts) = app
        .store
        .write(|tx| {
            let id = db::on_auth_request(tx, "STM-02", &sample_auth_request("R1", 60_000))?;
            tx.conn().execute(
                "UPDATE auth_tasks SET state = 'rejected' WHERE id = ?1",
                [id],
            )?;
            Ok::<_, StoreError>((id, crate::clock::rfc3339(tx.now())))
        })
        .await
        .unwrap();
    let fired = app
        .store
        .write(move |tx| db::on_auth_timeout(tx, task_id, &ts))
        .await
        .unwrap();
    assert!(!fired);
    assert_eq!(task_state(&app.store, task_id), "rejected");
    running.shutdown(Duration::from_secs(5)).await;
}

#[test]
fn a_device_event_is_handled_once_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let first = |store: &Store| {
        store
            .write_blocking(|tx| {
                db::first_sighting(
                    tx,
                    "STM-01",
                    "STM-01-a-1",
                    "transaction",
                    "t",
                    Some(&json!({})),
                )
            })
            .unwrap()
    };
    let store = Store::open(&path, crate::modules::SCHEMAS).unwrap();
    assert!(first(&store));
    assert!(!first(&store));
    store.close();
    let store = Store::open(&path, crate::modules::SCHEMAS).unwrap();
    assert!(!first(&store), "still known after a restart");
    store.close();
}
