//! The roll-ups of the devices' and orders' events, applied as the consumer applies them.

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::Connection;
use serde_json::{Value, json};

use super::rollup;
use crate::config::Config;
use crate::store::{Event, Store, StoreError};

fn cfg() -> Config {
    Config::parse(
        "[branch]\nid = \"T1\"\nname = \"t\"\ndata_dir = \"/tmp\"\n[http]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap()
}

/// Branch time (+08:00) on 2026-12-`day` at `h`:`m`.
fn at(day: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, day, h, m, 0).unwrap() - chrono::Duration::hours(8)
}

fn apply(store: &Store, cfg: &Config, events: Vec<(DateTime<Utc>, &str, Value)>) {
    let cfg = cfg.clone();
    let events: Vec<Event> = events
        .into_iter()
        .enumerate()
        .map(|(i, (ts, kind, data))| Event {
            seq: i as u64 + 1,
            id: format!("e{i}"),
            ts,
            kind: kind.to_string(),
            data,
        })
        .collect();
    store
        .write_blocking(move |tx| -> Result<(), StoreError> {
            for ev in &events {
                assert!(rollup::wants(ev), "{}", ev.kind);
                rollup::apply(tx, &cfg, ev)?;
            }
            Ok(())
        })
        .unwrap();
}

fn rows(store: &Store, sql: &'static str) -> Vec<Vec<Value>> {
    store
        .read_blocking(move |c: &Connection| -> Result<_, StoreError> {
            let mut st = c.prepare(sql)?;
            let n = st.column_count();
            let out = st
                .query_map([], |r| {
                    (0..n)
                        .map(|i| {
                            Ok(match r.get_ref(i)? {
                                rusqlite::types::ValueRef::Integer(v) => json!(v),
                                rusqlite::types::ValueRef::Text(t) => {
                                    json!(String::from_utf8_lossy(t))
                                }
                                _ => Value::Null,
                            })
                        })
                        .collect::<Result<Vec<_>, rusqlite::Error>>()
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(out)
        })
        .unwrap()
}

fn status(cycle: &str, deposited: i64, dispensed: i64, c1: i64, c2: i64) -> Value {
    json!({"device_id": "STM-01", "state": "in_service", "modules": {}, "consumables": {},
           "cash": {"cycle_id": cycle, "deposited": deposited, "dispensed": dispensed,
                    "cassettes": [{"id": "C1", "denom": 100, "count": c1},
                                  {"id": "C2", "denom": 50, "count": c2}]}})
}

#[test]
fn device_and_order_events_roll_up_by_business_day_and_clearing_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("t.db"), crate::modules::SCHEMAS).unwrap();
    let cfg = cfg(); // reset_hour 4: 02:00 on the 6th belongs to the 5th
    apply(
        &store,
        &cfg,
        vec![
            (at(5, 9, 0), "device.status", status("C-1", 0, 0, 2000, 400)),
            (
                at(5, 10, 0),
                "device.transaction",
                json!({"device_id": "STM-01", "txn_type": "withdrawal", "amount": 3000, "ok": true, "duration_s": 80}),
            ),
            (
                at(5, 10, 5),
                "device.transaction",
                json!({"device_id": "STM-01", "txn_type": "withdrawal", "amount": 500, "ok": false, "duration_s": 40}),
            ),
            (
                at(5, 10, 6),
                "device.status",
                status("C-1", 0, 3000, 1980, 400),
            ),
            (
                at(5, 11, 0),
                "device.consumable_used",
                json!({"device_id": "STM-01", "item": "debit_card", "count": 1}),
            ),
            (
                at(6, 2, 0),
                "device.consumable_used",
                json!({"device_id": "STM-01", "item": "debit_card", "count": 2}),
            ),
            (
                at(6, 2, 30),
                "device.exception",
                json!({"device_id": "STM-01", "exception_id": 7, "code": "CASH_JAM"}),
            ),
            // The next business day: the jam is cleared in the morning, a deposit, then
            // the STM's counters are reset for a new clearing cycle and it dispenses again.
            (
                at(6, 9, 10),
                "device.exception_resolved",
                json!({"device_id": "STM-01", "exception_id": 7}),
            ),
            (
                at(6, 9, 20),
                "device.status",
                status("C-1", 2000, 3000, 1980, 440),
            ),
            (
                at(6, 18, 0),
                "device.status",
                status("C-2", 0, 0, 2500, 400),
            ),
            (
                at(6, 18, 30),
                "device.status",
                status("C-2", 0, 1000, 2490, 400),
            ),
            (
                at(6, 19, 0),
                "order.step",
                json!({"id": "o1", "step": "verify", "state": "done", "by": "super", "duration_s": 700, "sla_s": 600, "overdue": true}),
            ),
            (
                at(6, 19, 5),
                "order.step",
                json!({"id": "o2", "step": "verify", "state": "done", "by": "super", "duration_s": 300, "sla_s": 600, "overdue": false}),
            ),
            (
                at(6, 19, 6),
                "order.step",
                json!({"id": "o3", "step": "verify", "state": "active", "by": "super"}),
            ),
        ],
    );
    assert_eq!(
        rows(
            &store,
            "SELECT day, txn_type, count, ok, amount, duration_sum_s FROM stats_txns"
        ),
        vec![vec![
            json!("2026-12-05"),
            json!("withdrawal"),
            json!(2),
            json!(1),
            json!(3000),
            json!(120)
        ]]
    );
    assert_eq!(
        rows(
            &store,
            "SELECT day, item, used FROM stats_vouchers ORDER BY day"
        ),
        vec![vec![json!("2026-12-05"), json!("debit_card"), json!(3)]],
        "02:00 is still the 5th's business day"
    );
    assert_eq!(
        rows(
            &store,
            "SELECT day, deposited, dispensed FROM stats_cash ORDER BY day"
        ),
        vec![
            vec![json!("2026-12-05"), json!(0), json!(3000)],
            vec![json!("2026-12-06"), json!(2000), json!(1000)],
        ],
        "a new cycle's counters start from zero"
    );
    assert_eq!(
        rows(
            &store,
            "SELECT day, cassette, notes_out, notes_in FROM stats_cash_cassettes ORDER BY day, cassette"
        ),
        vec![
            vec![json!("2026-12-05"), json!("C1"), json!(20), json!(0)],
            vec![json!("2026-12-06"), json!("C1"), json!(10), json!(0)],
            vec![json!("2026-12-06"), json!("C2"), json!(0), json!(40)],
        ]
    );
    assert_eq!(
        rows(
            &store,
            "SELECT cycle_id, deposited, dispensed FROM stats_cash_cycles ORDER BY cycle_id"
        ),
        vec![
            vec![json!("C-1"), json!(2000), json!(3000)],
            vec![json!("C-2"), json!(0), json!(1000)],
        ],
        "the cycle before the reset is kept"
    );
    assert_eq!(
        rows(
            &store,
            "SELECT day, module, code, raised, resolved, resolve_sum_s FROM stats_exceptions ORDER BY day"
        ),
        vec![
            vec![
                json!("2026-12-05"),
                json!("cash"),
                json!("CASH_JAM"),
                json!(1),
                json!(0),
                json!(0)
            ],
            vec![
                json!("2026-12-06"),
                json!("cash"),
                json!("CASH_JAM"),
                json!(0),
                json!(1),
                json!(6 * 3600 + 40 * 60)
            ],
        ]
    );
    assert_eq!(
        rows(
            &store,
            "SELECT step, staff, done, duration_sum_s, duration_max_s, sla_s, overdue FROM stats_steps"
        ),
        vec![vec![
            json!("verify"),
            json!("super"),
            json!(2),
            json!(1000),
            json!(700),
            json!(600),
            json!(1)
        ]]
    );
    store.close();
}
