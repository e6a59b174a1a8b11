use super::*;
use std::sync::atomic::Ordering;

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("t.db"), &[]).expect("open");
    (dir, store)
}

#[tokio::test]
async fn while_the_reserve_is_given_back_only_essential_writes_are_taken() {
    let (_d, store) = temp_store();
    store.set_reserve_only(true);
    let ordinary = store
        .write(|tx| tx.emit("test.ordinary", serde_json::json!({})))
        .await;
    assert!(matches!(ordinary, Err(StoreError::Full)), "{ordinary:?}");
    assert!(
        ordinary.unwrap_err().is_disk_full(),
        "answered as a full disk (507)"
    );
    let blocking = store.write_blocking(|tx| tx.emit("test.ordinary", serde_json::json!({})));
    assert!(matches!(blocking, Err(StoreError::Full)), "{blocking:?}");
    let seq = store
        .write_essential(|tx| tx.emit("test.essential", serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(seq, 1, "nothing else was written");
    store.set_reserve_only(false);
    store
        .write(|tx| tx.emit("test.ordinary", serde_json::json!({})))
        .await
        .unwrap();
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

/// A write handed straight to the writer; its answer comes on the receiver.
fn queued<R: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&mut Tx<'_>) -> Result<R, StoreError> + Send + 'static,
) -> std::sync::mpsc::Receiver<Result<R, StoreError>> {
    let (reply, answer) = std::sync::mpsc::channel();
    store
        .submit(Box::new(Write {
            f: Some(f),
            out: None,
            reply,
        }))
        .unwrap();
    answer
}

/// Keeps the writer busy in a write of its own until the returned sender says go, so that
/// what is queued meanwhile runs as one group.
fn hold_the_writer(store: &Store) -> std::sync::mpsc::Sender<()> {
    let (go, gate) = std::sync::mpsc::channel::<()>();
    let (started, inside) = std::sync::mpsc::channel::<()>();
    let _ = queued(store, move |_tx| {
        started.send(()).unwrap();
        gate.recv().unwrap();
        Ok(())
    });
    inside.recv().unwrap();
    go
}

fn audit(tx: &Tx<'_>, action: &str) -> Result<(), StoreError> {
    tx.conn()
        .execute("INSERT INTO audit(ts, action) VALUES ('t', ?1)", [action])?;
    Ok(())
}

fn audited(store: &Store) -> Vec<String> {
    store
        .read_blocking(|c| -> Result<Vec<String>, StoreError> {
            let mut st = c.prepare("SELECT action FROM audit ORDER BY id")?;
            let rows = st.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .unwrap()
}

fn kinds(store: &Store) -> Vec<(u64, String)> {
    store
        .read_blocking(|c| events_after(c, 0, 100))
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.kind))
        .collect()
}

#[test]
fn writes_queued_together_commit_in_one_transaction_and_a_failed_one_takes_back_only_its_own() {
    let (_d, store) = temp_store();
    let mut bus = store.subscribe();
    let go = hold_the_writer(&store);
    let before = store.stats().transactions.load(Ordering::Relaxed);
    let a = queued(&store, |tx| {
        audit(tx, "a")?;
        tx.emit("test.a", serde_json::json!({}))
    });
    let b = queued(&store, |tx| -> Result<u64, StoreError> {
        audit(tx, "b")?;
        tx.emit("test.b", serde_json::json!({}))?;
        tx.conn()
            .execute("INSERT INTO no_such_table VALUES (1)", [])?;
        Ok(0)
    });
    let c = queued(&store, |tx| {
        audit(tx, "c")?;
        tx.emit("test.c", serde_json::json!({}))
    });
    go.send(()).unwrap();
    assert_eq!(a.recv().unwrap().unwrap(), 1);
    assert!(b.recv().unwrap().is_err(), "the failed write is told so");
    assert_eq!(
        c.recv().unwrap().unwrap(),
        2,
        "no gap where the failed write's event was"
    );
    assert_eq!(
        store.stats().transactions.load(Ordering::Relaxed) - before,
        2,
        "the held write, then the three queued behind it in one"
    );
    assert_eq!(store.stats().commits.load(Ordering::Relaxed), 3);
    assert_eq!(store.stats().rollbacks.load(Ordering::Relaxed), 1);
    assert_eq!(audited(&store), ["a", "c"]);
    assert_eq!(
        kinds(&store),
        [(1, "test.a".to_string()), (2, "test.c".to_string())]
    );
    assert_eq!(bus.try_recv().unwrap().seq, 1);
    assert_eq!(bus.try_recv().unwrap().seq, 2);
    assert!(
        bus.try_recv().is_err(),
        "the failed write's event never went out"
    );
    assert_eq!(*store.committed().borrow(), 2);
}

#[test]
fn when_sqlite_ends_the_transaction_the_writes_run_in_it_fail_and_the_rest_go_on() {
    let (dir, store) = temp_store();
    let go = hold_the_writer(&store);
    let a = queued(&store, |tx| {
        audit(tx, "a")?;
        tx.emit("test.a", serde_json::json!({}))
    });
    // As SQLite does itself on a full disk or an I/O error inside a transaction.
    let b = queued(&store, |tx| -> Result<(), StoreError> {
        audit(tx, "b")?;
        tx.conn().execute_batch("ROLLBACK")?;
        Ok(())
    });
    let c = queued(&store, |tx| {
        audit(tx, "c")?;
        tx.emit("test.c", serde_json::json!({}))
    });
    go.send(()).unwrap();
    assert!(
        a.recv().unwrap().is_err(),
        "its transaction never committed: it must not be told it did"
    );
    assert!(b.recv().unwrap().is_err());
    assert_eq!(
        c.recv().unwrap().unwrap(),
        1,
        "the write not yet run went on"
    );
    assert_eq!(audited(&store), ["c"]);
    assert_eq!(kinds(&store), [(1, "test.c".to_string())]);
    assert_eq!(*store.committed().borrow(), 1);
    store.close();
    let store = Store::open(&dir.path().join("t.db"), &[]).unwrap();
    let seq = store
        .write_blocking(|tx| tx.emit("test.after", serde_json::json!({})))
        .unwrap();
    assert_eq!(seq, 2, "the committed seq is what the database holds");
}

#[tokio::test]
async fn seq_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let store = Store::open(&path, &[]).unwrap();
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
    let store = Store::open(&path, &[]).unwrap();
    let seq = store
        .write(|tx| tx.emit("test", serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(seq, 4);
}

/// The files under `dir` that this process holds open.
fn open_files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|p| p.starts_with(dir))
        .collect()
}

#[tokio::test]
async fn once_closed_the_store_holds_no_file_open_even_while_handles_remain() {
    let (dir, store) = temp_store();
    let dir = dir.path().canonicalize().unwrap();
    store
        .write(|tx| tx.emit("test", serde_json::json!({})))
        .await
        .unwrap();
    // Several reads at once leave several idle read connections behind.
    let reads = (0..3).map(|_| store.events_after(0, 10));
    for read in futures_util::future::join_all(reads).await {
        assert_eq!(read.unwrap().len(), 1);
    }
    assert!(!open_files_under(&dir).is_empty());

    let kept = store.clone();
    store.close();
    assert_eq!(open_files_under(&dir), Vec::<std::path::PathBuf>::new());

    // A read after that still answers, and closes what it opened.
    assert_eq!(kept.events_after(0, 10).await.unwrap().len(), 1);
    assert_eq!(open_files_under(&dir), Vec::<std::path::PathBuf>::new());
    assert!(matches!(
        kept.write(|tx| tx.emit("test", serde_json::json!({})))
            .await,
        Err(StoreError::Closed)
    ));
}

#[test]
fn close_waits_for_a_read_still_running_and_then_holds_no_file_open() {
    let (dir, store) = temp_store();
    let dir = dir.path().canonicalize().unwrap();
    // A read that a stopped task left running: it holds its connection until it ends.
    let (started_tx, started) = std::sync::mpsc::channel();
    let (end_tx, end) = std::sync::mpsc::channel::<()>();
    let reader = store.clone();
    let read = std::thread::spawn(move || {
        reader
            .read_blocking(|c| -> Result<i64, StoreError> {
                let n = c.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
                started_tx.send(()).unwrap();
                end.recv().unwrap();
                Ok(n)
            })
            .unwrap()
    });
    started.recv().unwrap();
    assert!(!open_files_under(&dir).is_empty());

    let closer = store.clone();
    let (closed_tx, closed) = std::sync::mpsc::channel();
    let close = std::thread::spawn(move || {
        closer.close();
        closed_tx.send(open_files_under(&dir)).unwrap();
    });
    assert!(
        closed
            .recv_timeout(std::time::Duration::from_millis(300))
            .is_err(),
        "close returned while a read still held the database open"
    );
    end_tx.send(()).unwrap();
    assert_eq!(read.join().unwrap(), 0);
    assert_eq!(
        closed.recv().unwrap(),
        Vec::<std::path::PathBuf>::new(),
        "files left open once close returned"
    );
    close.join().unwrap();
}

#[test]
fn a_database_from_a_newer_branchd_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        version(&conn, "core").unwrap();
        conn.execute("INSERT INTO schema_versions VALUES ('core', 999)", [])
            .unwrap();
    }
    let err = Store::open(&path, &[]).unwrap_err().to_string();
    assert!(err.contains("newer than this branchd"), "{err}");
}

/// Commit `n` events of `kind` in one transaction.
async fn flood(store: &Store, kind: &'static str, n: usize) {
    store
        .write(move |tx| -> Result<(), StoreError> {
            for i in 0..n {
                tx.emit(kind, serde_json::json!({ "i": i }))?;
            }
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_follower_gets_every_event_once_in_order_even_far_past_the_bus() {
    let (_d, store) = temp_store();
    flood(&store, "before", 3).await;
    let mut f = store.follow(1);
    // More than twice the bus's capacity commits before the follower reads anything.
    let n = 2 * BUS_CAPACITY + 7;
    flood(&store, "flood", n).await;
    let mut seqs = Vec::new();
    while seqs.len() < n + 2 {
        seqs.push(f.next().await.unwrap().seq);
    }
    assert_eq!(seqs, (2..=(n as u64 + 3)).collect::<Vec<_>>());
    // Then it keeps up with the bus.
    flood(&store, "after", 1).await;
    let ev = f.next().await.unwrap();
    assert_eq!((ev.seq, ev.kind.as_str()), (n as u64 + 4, "after"));
    assert_eq!(f.last(), n as u64 + 4);
}

/// A durable consumer that records each `wanted` event's `i` in the audit table.
async fn run_consumer(store: Store, cancel: tokio_util::sync::CancellationToken) {
    consume(
        store,
        "test.consumer",
        cancel,
        |ev| ev.kind == "wanted",
        |tx, ev| {
            tx.conn().execute(
                "INSERT INTO audit(ts, action, target) VALUES ('t', 'seen', ?1)",
                [ev.seq.to_string()],
            )?;
            Ok(())
        },
    )
    .await;
}

async fn seen(store: &Store) -> Vec<u64> {
    store
        .read(|c| -> Result<Vec<u64>, StoreError> {
            let mut st = c.prepare("SELECT target FROM audit WHERE action = 'seen' ORDER BY id")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows
                .map(|r| r.map(|s| s.parse().unwrap()))
                .collect::<Result<_, _>>()?)
        })
        .await
        .unwrap()
}

async fn wait_for_seen(store: &Store, n: usize) -> Vec<u64> {
    for _ in 0..1000 {
        let s = seen(store).await;
        if s.len() >= n {
            return s;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    seen(store).await
}

#[tokio::test]
async fn a_durable_consumer_handles_each_event_once_across_a_flood_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let store = Store::open(&path, &[]).unwrap();
    flood(&store, "wanted", 1).await; // before the consumer first ran: not its business
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(run_consumer(store.clone(), cancel.clone()));
    // Known from its first start: wait until its position is saved.
    for _ in 0..1000 {
        if store
            .read(|c| cursor_get(c, "test.consumer"))
            .await
            .unwrap()
            .is_some()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // A flood past the bus with wanted events spread through it.
    store
        .write(|tx| -> Result<(), StoreError> {
            for i in 0..(BUS_CAPACITY + 500) {
                tx.emit(
                    if i % 100 == 0 { "wanted" } else { "other" },
                    serde_json::json!({}),
                )?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let first: Vec<u64> = (0..(BUS_CAPACITY as u64 + 500))
        .filter(|i| i % 100 == 0)
        .map(|i| i + 2)
        .collect();
    assert_eq!(wait_for_seen(&store, first.len()).await, first);
    cancel.cancel();
    task.await.unwrap();
    // Committed while the consumer is stopped, and again after a reopen of the database.
    flood(&store, "wanted", 2).await;
    store.close();
    let store = Store::open(&path, &[]).unwrap();
    let head = *store.committed().borrow();
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(run_consumer(store.clone(), cancel.clone()));
    let mut all = first.clone();
    all.extend([head - 1, head]);
    assert_eq!(
        wait_for_seen(&store, all.len()).await,
        all,
        "each once, none missed"
    );
    cancel.cancel();
    task.await.unwrap();
    store.close();
}

#[tokio::test]
async fn an_event_too_large_to_send_rolls_its_transaction_back() {
    let (_d, store) = temp_store();
    let big = "x".repeat(MAX_EVENT_BYTES);
    let err = store
        .write(move |tx| -> Result<(), StoreError> {
            tx.conn().execute(
                "INSERT INTO audit(ts, action) VALUES ('t', 'with a big event')",
                [],
            )?;
            tx.emit("test.big", serde_json::json!({ "blob": big }))?;
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::EventTooLarge { kind, .. } if kind == "test.big"),
        "{err}"
    );
    let (audits, events): (i64, i64) = store
        .read(|c| {
            Ok::<_, StoreError>((
                c.query_row("SELECT count(*) FROM audit", [], |r| r.get(0))?,
                c.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?,
            ))
        })
        .await
        .unwrap();
    assert_eq!((audits, events), (0, 0), "nothing of the transaction stays");
    // Just under the bound is recorded.
    let fits = "x".repeat(MAX_EVENT_BYTES - 64);
    store
        .write(move |tx| tx.emit("test.fits", serde_json::json!({ "blob": fits })))
        .await
        .unwrap();
    store.close();
}

#[test]
fn the_database_is_owner_only_and_deletes_securely() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    // A database left readable by others is made owner-only when opened.
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = Store::open(&path, &[]).unwrap();
    store
        .write_blocking(|tx| tx.emit("test.one", serde_json::json!({})))
        .unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = dir.path().join(format!("t.db{suffix}"));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    let secure: i64 = store
        .write_blocking(|tx| {
            Ok::<_, StoreError>(
                tx.conn()
                    .query_row("PRAGMA secure_delete", [], |r| r.get(0))?,
            )
        })
        .unwrap();
    assert_eq!(secure, 1);
    store.close();
}
