use super::*;

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("t.db")).expect("open");
    (dir, store)
}

#[tokio::test]
async fn an_event_commits_with_its_change_and_gets_the_next_seq() {
    let (_d, store) = temp_store();
    let mut bus = store.subscribe();
    let seqs: Vec<u64> = store
        .write(|tx| -> Result<_, StoreError> {
            tx.conn()
                .execute("INSERT INTO audit(ts, action) VALUES ('t', 'first')", [])?;
            let a = tx.emit("test.one", serde_json::json!({"n": 1}))?;
            let b = tx.emit("test.two", serde_json::json!({"n": 2}))?;
            Ok(vec![a, b])
        })
        .await
        .unwrap();
    assert_eq!(seqs, vec![1, 2]);
    assert_eq!(bus.recv().await.unwrap().seq, 1);
    assert_eq!(bus.recv().await.unwrap().seq, 2);
    assert_eq!(*store.committed().borrow(), 2);
    let events = store.events_after(0, 10).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["test.one", "test.two"]
    );
}

#[tokio::test]
async fn a_failed_change_leaves_no_event_and_no_gap() {
    let (_d, store) = temp_store();
    let mut bus = store.subscribe();
    let r: Result<(), StoreError> = store
        .write(|tx| {
            tx.emit("test.lost", serde_json::json!({}))?;
            tx.conn()
                .execute("INSERT INTO no_such_table VALUES (1)", [])?;
            Ok(())
        })
        .await;
    assert!(r.is_err());
    let seq = store
        .write(|tx| tx.emit("test.kept", serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(seq, 1, "the rolled-back event must not consume a seq");
    assert_eq!(bus.recv().await.unwrap().kind, "test.kept");
    let n: i64 = store
        .read(|c| -> Result<i64, StoreError> {
            Ok(c.query_row("SELECT count(*) FROM audit", [], |r| r.get(0))?)
        })
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn seq_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let store = Store::open(&path).unwrap();
        for _ in 0..3 {
            store
                .write(|tx| tx.emit("test", serde_json::json!({})))
                .await
                .unwrap();
        }
        // Acknowledge and delete everything: the sequence must still not restart.
        store
            .write(|tx| -> Result<(), StoreError> {
                tx.conn().execute("DELETE FROM events", [])?;
                Ok(())
            })
            .await
            .unwrap();
        store.close();
    }
    let store = Store::open(&path).unwrap();
    let seq = store
        .write(|tx| tx.emit("test", serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(seq, 4);
}

#[test]
fn migrations_apply_from_empty_and_from_every_earlier_version() {
    let total: usize = crate::modules::SCHEMAS.iter().map(|s| s.steps.len()).sum();
    for (m, schema) in crate::modules::SCHEMAS.iter().enumerate() {
        for start in 0..=schema.steps.len() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("m.db");
            {
                let mut conn = rusqlite::Connection::open(&path).unwrap();
                // Earlier modules complete, this one at `start`, later ones absent.
                for earlier in &crate::modules::SCHEMAS[..m] {
                    migrations::migrate_to(&mut conn, earlier, earlier.steps.len()).unwrap();
                }
                migrations::migrate_to(&mut conn, schema, start).unwrap();
                if m > 0 || start >= 1 {
                    // Data written at the old version must survive the upgrade.
                    conn.execute(
                        "INSERT INTO events(seq, id, ts, kind, data) VALUES (1, 'x', 't', 'k', '{}')",
                        [],
                    )
                    .unwrap();
                    conn.execute("UPDATE meta SET value = '1' WHERE key = 'event_seq'", [])
                        .unwrap();
                }
            }
            let what = format!("{} from v{start}", schema.module);
            let store = Store::open(&path).unwrap_or_else(|e| panic!("{what}: {e}"));
            let versions: usize = store
                .read_blocking(|c| -> Result<i64, StoreError> {
                    Ok(c.query_row("SELECT sum(version) FROM schema_versions", [], |r| r.get(0))?)
                })
                .unwrap() as usize;
            assert_eq!(versions, total, "{what}");
            let seq = store
                .write_blocking(|tx| tx.emit("after.upgrade", serde_json::json!({})))
                .unwrap();
            assert_eq!(seq, if m > 0 || start >= 1 { 2 } else { 1 }, "{what}");
            store.close();
        }
    }
}

#[test]
fn a_database_from_a_newer_branchd_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        migrations::version(&conn, "core").unwrap();
        conn.execute("INSERT INTO schema_versions VALUES ('core', 999)", [])
            .unwrap();
    }
    let err = Store::open(&path).unwrap_err().to_string();
    assert!(err.contains("newer than this branchd"), "{err}");
}
