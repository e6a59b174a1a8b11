//! Statistics: the roll-ups against the raw rows over a paused clock across day boundaries
//! and the daily reset, their survival when the outbox and the raw rows are pruned, the
//! closing of a business day (`stats.daily`, `forecast.updated`), `branchd history import`,
//! and every statistics response against the one schema the PAD and the daemon share.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use branchd::clock::{business_day, parse};
use branchd::queue::{IssueRequest, Source, counters, ops};
use branchd::store::{Store, StoreError};
use chrono::Timelike;
use serde_json::{Value, json};

use crate::common::{TestBox, config_text, wait_until};

const LOBBY: &str = r#"
[[services]]
code = "personal"
prefix = "A"
name = "个人业务"
target_wait_min = 15

[[services]]
code = "corporate"
prefix = "B"
name = "对公业务"
target_wait_min = 10

[[counters]]
id = "1"
services = ["personal"]

[[counters]]
id = "2"
services = ["personal", "corporate"]

[queue]
reset_hour = 3
no_show_after_recalls = 0
"#;

/// Wait until the roll-up consumer has handled every committed event it counts.
async fn rolled_up(b: &TestBox) {
    let store = b.core().store.clone();
    wait_until("the roll-ups catch up", 60, || {
        let store = store.clone();
        async move {
            store
                .read(|c| -> Result<bool, StoreError> {
                    let last: i64 = c.query_row(
                        "SELECT coalesce(max(seq), 0) FROM events WHERE kind IN \
                         ('ticket.issued','ticket.called','ticket.served','ticket.no_show')",
                        [],
                        |r| r.get(0),
                    )?;
                    let at = branchd::store::cursor_get(c, branchd::stats::rollup::CONSUMER)?;
                    Ok(at.is_some_and(|a| a as i64 >= last))
                })
                .await
                .unwrap()
        }
    })
    .await;
}

type Figures = BTreeMap<(String, String), [i64; 6]>;

/// Per (day, service): issued, called, served, no-show, wait sum, wait max — from the raw
/// tickets (each figure on the business day it happened) or from the roll-ups.
async fn figures(b: &TestBox, raw: bool) -> Figures {
    let cfg = b.core().cfg.clone();
    b.core()
        .store
        .read(move |c| -> Result<Figures, StoreError> {
            let mut out: Figures = BTreeMap::new();
            if raw {
                let mut st = c.prepare(
                    "SELECT day, service, issued_at, called_at, state, finished_at FROM queue_tickets",
                )?;
                let rows = st.query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<String>>(5)?,
                    ))
                })?;
                for row in rows {
                    let (day, service, issued, called, state, finished) = row?;
                    out.entry((day, service.clone())).or_default()[0] += 1;
                    if let Some(called) = called {
                        let (i, t) = (parse(&issued).unwrap(), parse(&called).unwrap());
                        let e = out.entry((business_day(&cfg, t), service.clone())).or_default();
                        let w = (t - i).num_seconds();
                        e[1] += 1;
                        e[4] += w;
                        e[5] = e[5].max(w);
                    }
                    if let Some(f) = finished {
                        let d = business_day(&cfg, parse(&f).unwrap());
                        let e = out.entry((d, service)).or_default();
                        match state.as_str() {
                            "served" => e[2] += 1,
                            "no_show" => e[3] += 1,
                            _ => {}
                        }
                    }
                }
            } else {
                let mut st = c.prepare(
                    "SELECT day, service, issued, called, served, no_show, wait_sum_s, wait_max_s \
                     FROM stats_tickets",
                )?;
                let rows = st.query_map([], |r| {
                    Ok((
                        (r.get(0)?, r.get(1)?),
                        [r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?],
                    ))
                })?;
                for row in rows {
                    let (k, v) = row?;
                    out.insert(k, v);
                }
            }
            Ok(out)
        })
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn roll_ups_match_the_raw_tickets_across_day_boundaries_and_the_daily_reset() {
    let b = TestBox::start_with(LOBBY).await;
    let q = b.modules().queue.clone();
    q.operate(|tx, cfg, now| counters::open(tx, cfg, now, "2", "lobby_manager"))
        .await
        .unwrap();
    // 70 steps of 41 minutes: two days of tickets, across two resets (03:00 branch time).
    for i in 0..70u32 {
        let service = if i % 3 == 0 { "corporate" } else { "personal" };
        q.issue(IssueRequest {
            service: service.into(),
            customer_id: None,
            customer_level: None,
            appointment_id: None,
            source: Source::Pad,
        })
        .await
        .unwrap();
        tokio::time::advance(Duration::from_secs(41 * 60)).await;
        if i % 2 == 1 {
            let called = q
                .operate(|tx, cfg, now| ops::call_next(tx, cfg, now, "2"))
                .await;
            if let Ok(t) = called {
                tokio::time::advance(Duration::from_secs(u64::from(60 + i * 7))).await;
                let n = t.number.clone();
                // A ticket called before the daily reset cannot be finished after it.
                let done = if i % 4 == 1 {
                    q.operate(move |tx, cfg, now| ops::serve_done(tx, cfg, now, &n))
                        .await
                } else {
                    q.operate(move |tx, cfg, now| ops::skip(tx, cfg, now, &n))
                        .await
                };
                if let Err(e) = done {
                    assert!(
                        matches!(e, branchd::queue::QueueError::UnknownTicket(_)),
                        "{e}"
                    );
                }
            }
        }
    }
    rolled_up(&b).await;
    let raw = figures(&b, true).await;
    let rolled = figures(&b, false).await;
    let days: std::collections::BTreeSet<&String> = raw.keys().map(|(d, _)| d).collect();
    assert!(days.len() >= 3, "the run spans business days: {days:?}");
    assert!(raw.values().any(|v| v[2] > 0) && raw.values().any(|v| v[3] > 0));
    assert_eq!(rolled, raw);

    // Hourly arrivals: each ticket in the branch-local hour it was issued.
    let cfg = b.core().cfg.clone();
    let (raw_hours, rolled_hours) = b
        .core()
        .store
        .read(move |c| -> Result<_, StoreError> {
            let mut raw: BTreeMap<(String, u32, String), i64> = BTreeMap::new();
            let mut st = c.prepare("SELECT day, service, issued_at FROM queue_tickets")?;
            for row in st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })? {
                let (day, service, at) = row?;
                let hour = parse(&at)
                    .unwrap()
                    .with_timezone(&cfg.branch.utc_offset)
                    .hour();
                *raw.entry((day, hour, service)).or_default() += 1;
            }
            let mut rolled = BTreeMap::new();
            let mut st = c.prepare("SELECT day, hour, service, issued FROM stats_arrivals")?;
            for row in st.query_map([], |r| {
                Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get::<_, i64>(3)?))
            })? {
                let (k, v) = row?;
                rolled.insert(k, v);
            }
            Ok((raw, rolled))
        })
        .await
        .unwrap();
    assert_eq!(rolled_hours, raw_hours);

    // The outbox acknowledged and pruned, the raw tickets gone: the roll-ups stay. (Idle
    // durable consumers save their positions within seconds; pruning waits for them.)
    tokio::time::sleep(Duration::from_secs(10)).await;
    b.core()
        .store
        .write(|tx| -> Result<usize, StoreError> {
            let last: i64 = tx
                .conn()
                .query_row("SELECT max(seq) FROM events", [], |r| r.get(0))?;
            let seqs: Vec<u64> = (1..=last as u64).collect();
            branchd::sync::link::mark_acked(tx.conn(), &seqs, "2000-01-01T00:00:00.000Z")?;
            let pruned = branchd::sync::link::prune_acked(tx.conn(), "9999-01-01", 1_000_000)?;
            tx.conn().execute("DELETE FROM queue_tickets", [])?;
            Ok(pruned)
        })
        .await
        .map(|pruned: usize| assert!(pruned > 100, "only {pruned} events pruned"))
        .unwrap();
    assert_eq!(figures(&b, false).await, rolled);
    b.stop().await;
}

#[test]
fn roll_ups_are_pruned_only_past_keep_days() {
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        branchd::config::Config::parse(&config_text(dir.path(), "\n[stats]\nkeep_days = 400\n"))
            .unwrap();
    let store = branchd::app::open_store(&cfg.db_path()).unwrap();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 6).unwrap();
    let kept: Vec<String> = store
        .write_blocking(move |tx| -> Result<Vec<String>, StoreError> {
            for back in [1, 399, 400, 401, 700] {
                let day = (today - chrono::Duration::days(back)).to_string();
                tx.conn().execute(
                    "INSERT INTO stats_tickets(day, service, issued) VALUES (?1, 'personal', 5)",
                    [&day],
                )?;
            }
            branchd::stats::rollup::prune(tx.conn(), &cfg, today)?;
            let mut st = tx
                .conn()
                .prepare("SELECT day FROM stats_tickets ORDER BY day")?;
            let days = st
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(days)
        })
        .unwrap();
    store.close();
    assert_eq!(kept, ["2025-11-01", "2025-11-02", "2026-12-05"]);
}

const BIN: &str = env!("CARGO_BIN_EXE_branchd");

#[test]
fn history_import_loads_a_good_file_and_nothing_of_a_file_with_a_bad_row() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("branchd.toml");
    std::fs::write(&cfg_path, config_text(dir.path(), LOBBY)).unwrap();
    let count = || -> i64 {
        let store = branchd::app::open_store(&dir.path().join("branchd.db")).unwrap();
        let n = store
            .read_blocking(|c| -> Result<i64, StoreError> {
                Ok(c.query_row("SELECT count(*) FROM stats_tickets", [], |r| r.get(0))?)
            })
            .unwrap();
        store.close();
        n
    };
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "date,service,issued,served,avg_wait_s\n\
         2026-01-05,personal,120,110,300\n\
         2026-01-06,loans,10,,\n\
         2026-01-07,personal,twelve,,\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["history", "import", bad.to_str().unwrap(), "--config"])
        .arg(&cfg_path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("line 3: unknown service `loans`"), "{err}");
    assert!(
        err.contains("line 4: `issued` must be a whole number"),
        "{err}"
    );
    assert!(err.contains("nothing was imported"), "{err}");
    assert_eq!(count(), 0, "nothing half-loaded");

    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "date,service,issued,served,no_show,avg_wait_s,avg_service_s\n\
         2026-01-05,personal,120,110,6,300,280\n\
         2026-01-05,corporate,30,28,,420,\n",
    )
    .unwrap();
    for _ in 0..2 {
        // Importing the same file again replaces what it loaded.
        let out = Command::new(BIN)
            .args(["history", "import", good.to_str().unwrap(), "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("imported 2 day(s)"));
    }
    assert_eq!(count(), 2);
}

/// Check `v` against an OpenAPI 3.0 schema of `doc` (`$ref`, `allOf`, `type`, `nullable`,
/// `required`, `properties`, `items`, `enum`); returns every mismatch with its path.
fn check(doc: &Value, schema: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return check(doc, &doc["components"]["schemas"][name], v, path, errs);
    }
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            check(doc, s, v, path, errs);
        }
        return;
    }
    if v.is_null() {
        if schema["nullable"] != json!(true) && schema.get("type").is_some() {
            errs.push(format!("{path}: null"));
        }
        return;
    }
    let ok = match schema["type"].as_str() {
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        _ => true,
    };
    if !ok {
        errs.push(format!("{path}: {v} is not {}", schema["type"]));
        return;
    }
    if let Some(e) = schema["enum"].as_array()
        && !e.contains(v)
    {
        errs.push(format!("{path}: {v} not in {e:?}"));
    }
    for r in schema["required"].as_array().into_iter().flatten() {
        let k = r.as_str().unwrap();
        if v.get(k).is_none() {
            errs.push(format!("{path}.{k}: missing"));
        }
    }
    if let Some(props) = schema["properties"].as_object() {
        for (k, s) in props {
            if let Some(x) = v.get(k) {
                check(doc, s, x, &format!("{path}.{k}"), errs);
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            check(doc, items, x, &format!("{path}[{i}]"), errs);
        }
    }
}

#[tokio::test]
async fn every_statistics_response_has_the_shape_the_pad_and_the_openapi_share() {
    let stm = r#"
[[devices]]
id = "STM-01"
kind = "stm"
path = "/dev/null-stm-01"
"#;
    // The history names an STM; the daemon itself needs none to read it.
    let b = TestBox::start_prepared(LOBBY, move |store: &Store| {
        let cfg = branchd::config::Config::parse(&config_text(
            std::path::Path::new("/tmp"),
            &format!("{LOBBY}{stm}"),
        ))
        .unwrap();
        let today = branchd::clock::business_date(&cfg, chrono::Utc::now());
        branchd::stats::demo::seed(store, &cfg, today, 120).unwrap();
    })
    .await;
    let m = b.login("branch_manager").await;
    let doc: Value = m
        .get(b.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The PAD's tests read the same fragment: one schema for both.
    let shared: Value = serde_json::from_str(include_str!("../../src/stats/openapi.json")).unwrap();
    for (path, schema, expect) in [
        ("/api/v1/stats", "StatsToday", None),
        (
            "/api/v1/stats/period?days=365&by=week",
            "StatsPeriod",
            Some("tickets"),
        ),
        (
            "/api/v1/stats/period?by=hour",
            "StatsPeriod",
            Some("arrivals"),
        ),
        (
            "/api/v1/stats/forecast?horizon=30",
            "StatsForecast",
            Some("tickets"),
        ),
        ("/api/v1/stats/forecast", "StatsForecast", Some("vouchers")),
        (
            "/api/v1/stats/staffing?days=3",
            "StatsStaffing",
            Some("hours"),
        ),
    ] {
        assert_eq!(
            doc["components"]["schemas"][schema], shared["schemas"][schema],
            "{schema} served as written"
        );
        let r = m.get(b.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let v: Value = r.json().await.unwrap();
        let mut errs = Vec::new();
        check(
            &doc,
            &json!({"$ref": format!("#/components/schemas/{schema}")}),
            &v,
            path,
            &mut errs,
        );
        assert!(errs.is_empty(), "{path}: {errs:#?}");
        if let Some(k) = expect {
            let filled = v[k].as_array().map(|a| !a.is_empty()).unwrap_or_else(|| {
                v[k].as_object().is_some_and(|o| {
                    o.values()
                        .any(|x| x.as_array().is_some_and(|a| !a.is_empty()))
                })
            });
            assert!(
                filled,
                "{path}: `{k}` is empty with 120 days of history: {v}"
            );
        }
    }
    // 120 days of history: MSTL + ETS, and it says so.
    let f: Value = m
        .get(b.url("/api/v1/stats/forecast?horizon=7"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(f["tickets"][0]["model"], "mstl_ets");
    assert_eq!(f["tickets"][0]["history_days"], 120);
    assert_eq!(f["tickets"][0]["days"].as_array().unwrap().len(), 7);
    // Bad parameters are named.
    for bad in [
        "/api/v1/stats/period?by=month",
        "/api/v1/stats/period?from=2026-13-01",
        "/api/v1/stats/forecast?horizon=12",
        "/api/v1/stats/staffing?days=0",
    ] {
        let r = m.get(b.url(bad)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    let admin = b.login("device_admin").await;
    let r = admin
        .get(b.url("/api/v1/stats/period"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    b.stop().await;
}

#[tokio::test]
async fn closing_a_business_day_sends_its_aggregates_and_the_forecasts_once() {
    let b = TestBox::start_with(LOBBY).await;
    let store = b.core().store.clone();
    let cfg = b.core().cfg.clone();
    let now = b.core().clock.now();
    let close = |at: chrono::DateTime<chrono::Utc>| {
        let (store, cfg) = (store.clone(), cfg.clone());
        async move {
            store
                .write(move |tx| branchd::stats::close_day(tx, &cfg, at))
                .await
                .unwrap()
        }
    };
    // A new box counted nothing before today: nothing to close, nothing sent.
    assert!(!close(now).await);
    assert!(
        crate::common::event_data(&b, "stats.daily")
            .await
            .is_empty()
    );
    // A ticket today; tomorrow today is closed, once.
    b.modules()
        .queue
        .issue(IssueRequest {
            service: "personal".into(),
            customer_id: None,
            customer_level: None,
            appointment_id: None,
            source: Source::Pad,
        })
        .await
        .unwrap();
    rolled_up(&b).await;
    let tomorrow = now + chrono::Duration::days(1);
    assert!(close(tomorrow).await);
    assert!(!close(tomorrow).await, "a day is closed once");
    let daily = crate::common::event_data(&b, "stats.daily").await;
    assert_eq!(daily.len(), 1);
    let d: Value = serde_json::from_str(&daily[0]).unwrap();
    assert_eq!(d["day"], business_day(&cfg, now));
    for k in [
        "tickets",
        "arrivals",
        "transactions",
        "vouchers",
        "cash",
        "exceptions",
        "steps",
    ] {
        assert!(d[k].is_array(), "stats.daily lacks {k}: {d}");
    }
    let personal = d["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["service"] == "personal")
        .cloned()
        .unwrap_or_else(|| panic!("no personal tickets in {d}"));
    assert_eq!(personal["issued"], 1);
    assert!(
        personal.get("name").is_none() && !d.to_string().contains("staff"),
        "aggregates only: {d}"
    );
    let updated = crate::common::event_data(&b, "forecast.updated").await;
    assert_eq!(updated.len(), 1);
    // Down for three days: each missed day is closed when it comes back.
    assert!(close(now + chrono::Duration::days(4)).await);
    let days: Vec<Value> = crate::common::event_data(&b, "stats.daily")
        .await
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap()["day"].clone())
        .collect();
    let want: Vec<Value> = (0..4)
        .map(|i| json!(business_day(&cfg, now + chrono::Duration::days(i))))
        .collect();
    assert_eq!(days, want);
    let u: Value = serde_json::from_str(&updated[0]).unwrap();
    assert_eq!(u["horizon_days"], 30);
    assert_eq!(u["series"]["tickets"], 2, "one forecast per service: {u}");
    b.stop().await;
}
