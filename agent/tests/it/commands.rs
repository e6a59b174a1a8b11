//! Head-office commands that must not run: queued too long, or without their age.

use serde_json::{Value, json};

use crate::common::TestBox;

fn envelope(id: &str, ts: Option<String>, kind: &str, data: Value) -> Vec<u8> {
    let mut e = json!({"v": 1, "id": id, "kind": kind, "data": data});
    if let Some(ts) = ts {
        e["ts"] = json!(ts);
    }
    e.to_string().into_bytes()
}

#[tokio::test]
async fn a_command_queued_past_its_maximum_age_is_refused_and_changes_nothing() {
    let b = TestBox::start_with(
        "[[services]]\ncode = \"personal\"\nprefix = \"A\"\nname = \"个人\"\n\
         [[devices]]\nid = \"STM-01\"\nkind = \"stm\"\npath = \"/dev/branchd/absent\"",
    )
    .await;
    let sync = &b.modules().sync;
    let ago = |secs: i64| Some((chrono::Utc::now() - chrono::Duration::seconds(secs)).to_rfc3339());
    let update = json!({"services": {"personal": {"target_wait_min": 12}}});
    // (id, ts, kind, runs)
    let cases = [
        ("c-1", ago(8 * 86_400), "config.update", false),
        ("c-2", None, "config.update", false),
        ("c-3", ago(600), "device.command", false),
        ("c-4", ago(60), "config.update", true),
    ];
    for (id, ts, kind, runs) in cases {
        let data = match kind {
            "device.command" => json!({"device": "STM-01", "op": "shutdown"}),
            _ => update.clone(),
        };
        let out = branchd::sync::commands::handle(sync, &envelope(id, ts, kind, data))
            .await
            .unwrap();
        assert_eq!(out.ok, runs, "{id}: {:?}", out.error);
        if !runs {
            let why = out.error.unwrap_or_default();
            assert!(why.contains("old") || why.contains("`ts`"), "{id}: {why}");
        }
    }
    // Only the fresh update changed anything.
    let overrides = b
        .core()
        .store
        .read(branchd::sync::commands::overrides_json)
        .await
        .unwrap();
    assert_eq!(overrides, json!({"personal": {"target_wait_min": 12}}));
    b.stop().await;
}

#[tokio::test]
async fn a_device_command_interrupted_while_sending_is_not_sent_again() {
    // A previous run marked `c-9` as being sent and stopped before recording its answer.
    let b = TestBox::start_prepared(
        "[[devices]]\nid = \"STM-01\"\nkind = \"stm\"\npath = \"/dev/branchd/absent\"",
        |store| {
            store
                .write_blocking(|tx| {
                    branchd::store::meta_set(tx.conn(), "sync.sending.c-9", "2026-12-06T00:00:00Z")
                })
                .unwrap();
        },
    )
    .await;
    let sync = &b.modules().sync;
    let now = || Some(chrono::Utc::now().to_rfc3339());
    let sign_in = json!({"device": "STM-01", "op": "sign_in"});
    let out = branchd::sync::commands::handle(
        sync,
        &envelope("c-9", now(), "device.command", sign_in.clone()),
    )
    .await
    .unwrap();
    assert!(!out.ok);
    assert!(
        out.error
            .as_deref()
            .unwrap_or_default()
            .contains("not sent again"),
        "{:?}",
        out.error
    );
    // A new command is marked, tried (the STM is unreachable here), recorded, unmarked.
    let out =
        branchd::sync::commands::handle(sync, &envelope("c-10", now(), "device.command", sign_in))
            .await
            .unwrap();
    assert!(!out.ok);
    let why = out.error.unwrap_or_default();
    assert!(
        why.contains("STM-01") && !why.contains("not sent again"),
        "tried, and failed only for want of the device: {why}"
    );
    let marks: i64 = b
        .core()
        .store
        .read(|c| {
            c.query_row(
                "SELECT count(*) FROM meta WHERE key LIKE 'sync.sending.%'",
                [],
                |r| r.get(0),
            )
            .map_err(branchd::store::StoreError::from)
        })
        .await
        .unwrap();
    assert_eq!(marks, 0, "each mark leaves with its command's record");
    b.stop().await;
}
