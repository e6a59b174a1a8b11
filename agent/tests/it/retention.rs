//! Retention: every table that grows has a rule, finished rows past their period go, and
//! nothing younger, unfinished or unsent does.

use std::collections::BTreeSet;

use branchd::store::StoreError;
use serde_json::json;

use crate::common::TestBox;

async fn count(b: &TestBox, sql: &'static str) -> i64 {
    b.core()
        .store
        .read(move |c| Ok::<_, StoreError>(c.query_row(sql, [], |r| r.get(0))?))
        .await
        .unwrap()
}

#[tokio::test]
async fn every_table_of_the_box_has_a_retention_rule_or_a_reason_it_does_not_grow() {
    let b = TestBox::start().await;
    let tables: BTreeSet<String> = b
        .core()
        .store
        .read(|c| -> Result<BTreeSet<String>, StoreError> {
            let mut s = c.prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )?;
            let rows = s.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
        .unwrap();
    let ruled: Vec<&str> = branchd::modules::RETENTION
        .iter()
        .flat_map(|r| r.iter().map(|r| r.table))
        .collect();
    let bounded: Vec<&str> = branchd::modules::BOUNDED
        .iter()
        .flat_map(|r| r.iter().map(|r| r.table))
        .collect();
    for t in &tables {
        let n = ruled.iter().chain(&bounded).filter(|x| *x == t).count();
        assert_eq!(
            n, 1,
            "table {t}: named {n} times (a retention rule or a reason, once)"
        );
    }
    for t in ruled.iter().chain(&bounded) {
        assert!(tables.contains(*t), "{t} is named but is no table");
    }
    b.stop().await;
}

#[tokio::test]
async fn finished_rows_past_their_period_go_and_younger_unfinished_or_unsent_ones_stay() {
    let b = TestBox::start().await;
    let now = chrono::Utc::now();
    let ago = |days: i64| branchd::clock::rfc3339(now - chrono::Duration::days(days));
    let day_ago = |days: i64| {
        (now - chrono::Duration::days(days))
            .format("%Y-%m-%d")
            .to_string()
    };
    let (old, young) = (ago(400), ago(1));
    let (old_day, young_day) = (day_ago(400), day_ago(1));
    // Events: two head office acknowledged long ago, one never sent, one just acknowledged.
    let old_ack = ago(30);
    let (o, y) = (old.clone(), young.clone());
    let (old_day, young_day_sql) = (old_day.clone(), young_day.clone());
    b.core()
        .store
        .write(move |tx| -> Result<(), StoreError> {
            let mut seqs = Vec::new();
            for n in 0..4 {
                seqs.push(tx.emit("test.kept", json!({"n": n}))?);
            }
            let c = tx.conn();
            let ack = |seq: u64, at: &str| {
                c.execute(
                    "UPDATE events SET acked_at = ?2 WHERE seq = ?1",
                    rusqlite::params![seq as i64, at],
                )
            };
            ack(seqs[0], &old_ack)?;
            ack(seqs[1], &old_ack)?;
            ack(seqs[3], &y)?;
            // (table, insert) — each an old finished row, and a young or unfinished one
            let rows = [
                format!("INSERT INTO audit(ts, action) VALUES ('{o}', 'old'), ('{y}', 'young')"),
                format!(
                    "INSERT INTO alerts(ts, kind, level, key, message, acked_at, cleared_at) VALUES \
                     ('{o}', 'a.old', 'info', NULL, 'm', '{o}', NULL), \
                     ('{o}', 'a.unread', 'info', NULL, 'm', NULL, NULL), \
                     ('{o}', 'a.cleared', 'info', 'k1', 'm', '{o}', '{o}'), \
                     ('{o}', 'a.ongoing', 'info', 'k2', 'm', '{o}', NULL), \
                     ('{y}', 'a.young', 'info', NULL, 'm', '{y}', NULL)"
                ),
                format!(
                    "INSERT INTO device_status_history(device_id, ts, state, modules, consumables, cash) \
                     VALUES ('STM-01', '{o}', 'ok', '{{}}', '{{}}', '{{}}'), ('STM-01', '{y}', 'ok', '{{}}', '{{}}', '{{}}')"
                ),
                format!(
                    "INSERT INTO device_events(device_id, event_id, kind, device_ts, received_at) \
                     VALUES ('STM-01', 'e1', 'k', '{o}', '{o}'), ('STM-01', 'e2', 'k', '{y}', '{y}')"
                ),
                format!(
                    "INSERT INTO device_exceptions(device_id, event_id, code, message, ts, resolved_at) \
                     VALUES ('STM-01', 'x1', 'E1', 'm', '{o}', '{o}'), ('STM-01', 'x2', 'E2', 'm', '{o}', NULL)"
                ),
                format!(
                    "INSERT INTO id_card_photos(reader, ts, photo_wlt) VALUES ('R', '{o}', x'00'), ('R', '{}', x'00')",
                    branchd::clock::rfc3339(chrono::Utc::now())
                ),
                format!(
                    "INSERT INTO sync_commands(id, kind, received_at, ok) VALUES \
                     ('c-old', 'rebirth', '{o}', 1), ('c-young', 'rebirth', '{y}', 1)"
                ),
                format!(
                    "INSERT INTO vision_arrivals(day, ts, at_ms, customer_id, camera, confidence) VALUES \
                     ('{old_day}', '{o}', 0, 'C1', 'entrance', 0.9), ('{young_day_sql}', '{y}', 0, 'C1', 'entrance', 0.9)"
                ),
                format!(
                    "INSERT INTO orders(id, business_type, title, channel, priority, customer_name, status, created_at, updated_at) VALUES \
                     ('O-old', 'b', 't', 'app', 'normal', 'n', 'delivered', '{o}', '{o}'), \
                     ('O-running', 'b', 't', 'app', 'normal', 'n', 'executing', '{o}', '{o}'), \
                     ('O-young', 'b', 't', 'app', 'normal', 'n', 'cancelled', '{y}', '{y}')"
                ),
                "INSERT INTO order_steps(order_id, idx, key, name, sla_s, near_pct, recall_after_s, recall_action) VALUES \
                 ('O-old', 0, 'k', 'n', 60, 80, 60, 'pool'), ('O-running', 0, 'k', 'n', 60, 80, 60, 'pool')"
                    .to_string(),
                format!(
                    "INSERT INTO queue_tickets(number, day, service, state, source, issued_at) VALUES \
                     ('A001', '{old_day}', 'personal', 'served', 'pad', '{o}'), ('A001', '{young_day_sql}', 'personal', 'served', 'pad', '{y}')"
                ),
                // Counter sessions: closed long ago, still open since long ago, closed lately.
                format!(
                    "INSERT INTO queue_counter_sessions(counter, staff, opened_at, closed_at) VALUES \
                     ('old', 'a', '{o}', '{o}'), ('open', 'b', '{o}', NULL), ('young', 'c', '{o}', '{y}')"
                ),
            ];
            for sql in rows {
                c.execute_batch(&sql)?;
            }
            Ok(())
        })
        .await
        .unwrap();

    // The durable consumers have read past the events (acknowledged events wait for them).
    crate::common::wait_until("the consumers past the events", 10, || async {
        count(&b, "SELECT coalesce(min(seq), 1 << 62) FROM followers").await
            >= count(&b, "SELECT max(seq) FROM events").await
    })
    .await;
    let mut rules: Vec<branchd::retention::Rule> = Vec::new();
    for r in branchd::modules::RETENTION {
        rules.extend_from_slice(r);
    }
    let pruned = branchd::retention::prune(b.core(), &rules).await.unwrap();
    let by_table = |t: &str| pruned.iter().find(|(x, _)| *x == t).map_or(0, |(_, n)| *n);

    // (what is left, expected)
    let left = [
        (
            "SELECT group_concat(action) FROM audit WHERE action IN ('old', 'young')",
            "young",
        ),
        (
            "SELECT group_concat(kind) FROM (SELECT kind FROM alerts WHERE kind LIKE 'a.%' ORDER BY kind)",
            // a condition still on stays, however long ago it was acknowledged
            "a.ongoing,a.young",
        ),
        ("SELECT count(*) FROM device_status_history", "1"),
        ("SELECT group_concat(event_id) FROM device_events", "e2"),
        ("SELECT group_concat(event_id) FROM device_exceptions", "x2"),
        ("SELECT count(*) FROM id_card_photos", "1"),
        (
            "SELECT group_concat(id) FROM sync_commands WHERE id LIKE 'c-%'",
            "c-young",
        ),
        ("SELECT count(*) FROM vision_arrivals", "1"),
        (
            "SELECT group_concat(id) FROM (SELECT id FROM orders ORDER BY id)",
            "O-running,O-young",
        ),
        (
            "SELECT group_concat(order_id) FROM order_steps",
            "O-running",
        ),
        (
            "SELECT group_concat(day) FROM queue_tickets",
            young_day.as_str(),
        ),
        (
            "SELECT group_concat(counter) FROM (SELECT counter FROM queue_counter_sessions ORDER BY counter)",
            "open,young",
        ),
        ("SELECT count(*) FROM events WHERE kind = 'test.kept'", "2"),
        (
            "SELECT count(*) FROM events WHERE kind = 'test.kept' AND acked_at IS NULL",
            "1",
        ),
    ];
    for (sql, want) in left {
        let got: String = b
            .core()
            .store
            .read(move |c| {
                Ok::<_, StoreError>(
                    c.query_row(sql, [], |r| r.get::<_, Option<rusqlite::types::Value>>(0))?,
                )
            })
            .await
            .unwrap()
            .map(|v| match v {
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        assert_eq!(got, want, "{sql}");
    }
    assert_eq!(by_table("events"), 2, "{pruned:?}");
    assert_eq!(by_table("orders"), 1, "{pruned:?}");
    // Run again: nothing more goes.
    let again = branchd::retention::prune(b.core(), &rules).await.unwrap();
    assert!(again.iter().all(|(_, n)| *n == 0), "{again:?}");
    assert_eq!(
        count(&b, "SELECT count(*) FROM pragma_foreign_key_check").await,
        0
    );
    b.stop().await;
}
