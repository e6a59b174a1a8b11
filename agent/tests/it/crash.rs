//! Crash safety of the event path: a child process commits events under load and is
//! killed with SIGKILL at random moments; after each kill, every event it was told had
//! committed is still there, `seq` has no gap and no repeat, every event still has its
//! state change beside it, and the database passes `PRAGMA integrity_check`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use branchd::store::StoreError;
use rand::Rng;

const CHILD_ENV: &str = "BRANCHD_CRASH_CHILD_DB";
const KILLS: usize = 24;

/// The child's body: run only when re-executed by the test below.
#[test]
#[ignore = "run as a child process by the crash test"]
fn crash_child() {
    let Some(db) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = branchd::app::open_store(std::path::Path::new(&db)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, u64)>();
        for task in 0..4u64 {
            let store = store.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                for n in 0u64.. {
                    let events = 1 + n % 3;
                    let seqs = store
                        .write(move |t| -> Result<(u64, u64), StoreError> {
                            let target = format!("w{task}-{n}-{}", std::process::id());
                            t.conn().execute(
                                "INSERT INTO audit(ts, action, target) VALUES ('t', 'crash.load', ?1)",
                                [&target],
                            )?;
                            let first = t.emit("crash.load", serde_json::json!({"target": target}))?;
                            let mut last = first;
                            for _ in 1..events {
                                last = t.emit("crash.load", serde_json::json!({"target": target}))?;
                            }
                            Ok((first, last))
                        })
                        .await
                        .unwrap();
                    if tx.send(seqs).is_err() {
                        return;
                    }
                }
            });
        }
        let mut out = std::io::stdout().lock();
        while let Some((first, last)) = rx.recv().await {
            writeln!(out, "committed {first} {last}").unwrap();
            out.flush().unwrap();
        }
    });
}

fn check_database(db: &std::path::Path, acknowledged: &[(u64, u64)]) -> u64 {
    let c = rusqlite::Connection::open(db).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let (count, min, max): (i64, Option<i64>, Option<i64>) = c
        .query_row("SELECT count(*), min(seq), max(seq) FROM events", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    let max = max.unwrap_or(0) as u64;
    assert_eq!(min.unwrap_or(1), 1, "seq starts at 1");
    assert_eq!(
        count as u64, max,
        "a gap or a repeat in seq: {count} events up to {max}"
    );
    let meta: String = c
        .query_row("SELECT value FROM meta WHERE key = 'event_seq'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        meta.parse::<u64>().unwrap(),
        max,
        "meta.event_seq follows the outbox"
    );
    for (first, last) in acknowledged {
        assert!(
            *last <= max,
            "committed events {first}..={last} lost (max {max})"
        );
    }
    // No event without its change, no change without its event (indexed temp copies keep
    // the comparison linear).
    c.execute_batch(
        "CREATE TEMP TABLE ev AS SELECT DISTINCT json_extract(data, '$.target') AS t \
           FROM events WHERE kind = 'crash.load';
         CREATE INDEX temp.ev_t ON ev(t);
         CREATE TEMP TABLE ch AS SELECT target AS t FROM audit WHERE action = 'crash.load';
         CREATE INDEX temp.ch_t ON ch(t);",
    )
    .unwrap();
    let count = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    let orphans =
        count("SELECT count(*) FROM ev WHERE NOT EXISTS (SELECT 1 FROM ch WHERE ch.t = ev.t)");
    assert_eq!(orphans, 0, "events without their state change");
    let silent =
        count("SELECT count(*) FROM ch WHERE NOT EXISTS (SELECT 1 FROM ev WHERE ev.t = ch.t)");
    assert_eq!(silent, 0, "state changes without their event");
    max
}

#[test]
fn sigkill_under_load_loses_no_committed_event_and_leaves_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut last_max = 0;
    let mut progressed = 0;
    for round in 0..KILLS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash::crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut parts = line.split_whitespace();
                if parts.next() == Some("committed") {
                    let first: u64 = parts.next().unwrap().parse().unwrap();
                    let last: u64 = parts.next().unwrap().parse().unwrap();
                    if tx.send((first, last)).is_err() {
                        return;
                    }
                }
            }
        });
        // Let it commit for a random while after its first commit, then kill it.
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the child commits");
        let mut acknowledged = vec![first];
        let deadline = Instant::now() + Duration::from_millis(rng.gen_range(20..400));
        while Instant::now() < deadline {
            if let Ok(p) = rx.recv_timeout(Duration::from_millis(5)) {
                acknowledged.push(p);
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        acknowledged.extend(rx.try_iter());
        let max = check_database(&db, &acknowledged);
        assert!(max >= last_max, "round {round}: seq went backwards");
        if max > last_max {
            progressed += 1;
        }
        last_max = max;
    }
    assert_eq!(progressed, KILLS, "every round committed something");
}
