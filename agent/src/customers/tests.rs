//! Hashes, marks, presence from events and swipes, and the end-of-day purge on a paused
//! clock.

use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::presence::{self, Via};
use super::*;
use crate::clock::Clock;
use crate::config::Config;
use crate::store::{Event, Store};

fn cfg() -> Config {
    Config::parse(
        "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"0.0.0.0:1\"\n\
         [customers]\nid_salt = \"branchd-demo-salt-2026\"\nmaturity_days = 7\n",
    )
    .unwrap()
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("c.db"), crate::modules::SCHEMAS).unwrap();
    (dir, store)
}

fn record(id: &str, name: &str) -> CustomerRecord {
    CustomerRecord {
        customer_id: id.into(),
        id_hash: None,
        name: name.into(),
        level: Some("vip1".into()),
        risk_level: Some(3),
        birthday: None,
        relationship_manager: Some("manager".into()),
        maturities: Vec::new(),
    }
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

#[test]
fn the_id_hash_is_hmac_sha256_of_the_number_under_the_salt() {
    // python3: hmac.new(b'branchd-demo-salt-2026', b'321083197812162119', hashlib.sha256).hexdigest()
    let want = "0232a80c4898085bae10f71b98338fcaa7c60b6d73f1143648c71e8f92c89bec";
    assert_eq!(
        id_hash("branchd-demo-salt-2026", "321083197812162119"),
        want
    );
    assert_eq!(
        id_hash("branchd-demo-salt-2026", " 321083197812162119 "),
        want
    );
    assert_eq!(
        id_hash("branchd-demo-salt-2026", "11010519491231002x"),
        "15c002f5b00f40e18b2794523083f0bc0e67ced9e5d266ae45e861b40ff0ace7",
        "the check letter is read upper-case"
    );
    assert_ne!(id_hash("another-salt-0000000", "321083197812162119"), want);
}

#[test]
fn marks_a_birthday_this_week_and_what_matures_within_the_window() {
    let mut p = Profile {
        customer_id: "C1".into(),
        name: "王芳".into(),
        level: None,
        risk_level: None,
        birthday: None,
        relationship_manager: None,
        maturities: vec![
            Maturity {
                kind: "deposit".into(),
                date: date("2026-11-30"),
                product: Some("TD-3Y".into()),
            },
            Maturity {
                kind: "wealth".into(),
                date: date("2026-11-25"),
                product: None,
            },
            Maturity {
                kind: "deposit".into(),
                date: date("2026-12-01"),
                product: None,
            },
            Maturity {
                kind: "deposit".into(),
                date: date("2026-11-20"),
                product: None,
            },
        ],
        id_hash: None,
    };
    // Monday 2026-11-23.
    let today = date("2026-11-23");
    let kinds = |m: &[Mark]| {
        m.iter()
            .map(|m| (m.kind, m.date.to_string(), m.days))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        kinds(&marks(&p, today, 7)),
        [
            ("deposit_maturing", "2026-11-30".into(), 7),
            ("wealth_maturing", "2026-11-25".into(), 2),
        ],
        "within 7 days inclusive; past and later maturities are not marked"
    );
    // Birthdays: this week's Thursday yes, the Sunday ending the week yes, next Monday no.
    for (birthday, want) in [
        ((11, 26), Some(3)),
        ((11, 29), Some(6)),
        ((11, 30), None),
        ((11, 22), None),
    ] {
        p.birthday = Some(birthday);
        p.maturities.clear();
        let got = marks(&p, today, 7).first().map(|m| m.days);
        assert_eq!(got, want, "birthday {birthday:?}");
    }
    // A week across the new year: Wednesday 2026-12-30, birthday 2 January.
    p.birthday = Some((1, 2));
    let m = marks(&p, date("2026-12-30"), 7);
    assert_eq!(kinds(&m), [("birthday", "2027-01-02".into(), 3)]);
    // 29 February in a common year falls on the 28th.
    p.birthday = Some((2, 29));
    let m = marks(&p, date("2027-02-24"), 7);
    assert_eq!(kinds(&m), [("birthday", "2027-02-28".into(), 4)]);
}

fn event(seq: u64, kind: &str, ts: chrono::DateTime<Utc>, data: Value) -> Event {
    Event {
        seq,
        id: format!("e{seq}"),
        ts,
        kind: kind.into(),
        data,
    }
}

fn events_after(store: &Store, after: u64) -> Vec<Event> {
    store
        .read_blocking(move |c| crate::store::events_after(c, after, 10_000))
        .unwrap()
}

fn kinds_emitted(store: &Store, after: u64) -> Vec<(String, Value)> {
    events_after(store, after)
        .into_iter()
        .map(|e| (e.kind, e.data))
        .collect()
}

#[test]
fn arrivals_tickets_and_calls_make_the_days_presence() {
    let (_dir, store) = store();
    let cfg = cfg();
    store
        .write_blocking(|tx| {
            upsert(tx, &record("C1", "王芳"), "cmd-1")?;
            upsert(tx, &record("C2", "李建国"), "cmd-2")
        })
        .unwrap();
    let now = Utc::now();
    let day = crate::clock::business_day(&cfg, now);
    let before = *store.committed().borrow();
    let evs = [
        event(
            1,
            "vip.arrived",
            now,
            json!({"customer_id": "C1", "seen_at": crate::clock::rfc3339(now)}),
        ),
        event(
            2,
            "ticket.issued",
            now,
            json!({"customer_id": "C1", "number": "A007"}),
        ),
        event(
            3,
            "ticket.issued",
            now,
            json!({"customer_id": "C2", "number": "A008"}),
        ),
        event(4, "ticket.called", now, json!({"number": "A007"})),
        event(5, "ticket.issued", now, json!({"number": "A009"})),
        // a ticket of yesterday handled late changes nothing today
        event(
            6,
            "ticket.issued",
            now - chrono::Duration::days(1),
            json!({"customer_id": "C9", "number": "A001"}),
        ),
    ];
    for ev in evs {
        let (cfg, wanted) = (cfg.clone(), presence::wants(&ev));
        assert_eq!(wanted, ev.seq != 5, "{}", ev.kind);
        if wanted {
            store
                .write_blocking(move |tx| presence::on_event(tx, &cfg, &ev))
                .unwrap();
        }
    }
    let emitted = kinds_emitted(&store, before);
    let kinds: Vec<&str> = emitted.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "customer.arrived",
            "customer.identified",
            "customer.arrived"
        ]
    );
    assert!(
        emitted.iter().all(|(_, d)| d.get("name").is_none()),
        "events carry no name"
    );
    let list = store
        .read_blocking(|c| presence::today(c, &cfg, now))
        .unwrap();
    let c1 = &list[0];
    assert_eq!(
        (c1.customer_id.as_str(), c1.name.as_deref()),
        ("C1", Some("王芳"))
    );
    assert_eq!(c1.via, [Via::Face, Via::Ticket]);
    assert_eq!((c1.ticket.as_deref(), c1.state), (Some("A007"), "called"));
    assert_eq!(c1.risk_level.as_deref(), Some("C3"));
    assert_eq!(
        (list[1].customer_id.as_str(), list[1].state),
        ("C2", "waiting")
    );
    assert_eq!(list.len(), 2);
    assert!(
        store
            .read_blocking(|c| presence::is_present(c, &day, "C2"))
            .unwrap()
    );
}

#[test]
fn a_swiped_card_is_known_by_its_hash_only() {
    let (_dir, store) = store();
    let cfg = cfg();
    let salt = cfg.customers.id_salt.clone().unwrap();
    let mut r = record("C3", "张三");
    r.id_hash = Some(id_hash(&salt, "321083197812162119"));
    store
        .write_blocking(move |tx| upsert(tx, &r, "cmd"))
        .unwrap();
    let h = id_hash(&salt, "321083197812162119");
    assert_eq!(
        store
            .read_blocking(move |c| by_hash(c, &h))
            .unwrap()
            .as_deref(),
        Some("C3")
    );
    let stored: i64 = store
        .read_blocking(|c| {
            Ok::<_, StoreError>(c.query_row(
                "SELECT count(*) FROM customers WHERE instr(coalesce(id_hash, '') || name, '321083') > 0",
                [],
                |r| r.get(0),
            )?)
        })
        .unwrap();
    assert_eq!(stored, 0, "the ID number is not stored");
}

#[tokio::test(start_paused = true)]
async fn the_days_presence_is_gone_when_the_business_day_ends() {
    let (_dir, store) = store();
    let cfg = std::sync::Arc::new(cfg());
    // 03:59 Beijing time on 24 November: still the business day of the 23rd (reset 04:00).
    let t0 = Utc.with_ymd_and_hms(2026, 11, 23, 19, 59, 0).unwrap();
    let clock = Clock::starting_at(t0);
    let day = crate::clock::business_day(&cfg, t0);
    assert_eq!(day, "2026-11-23");
    let s = store.clone();
    let d = day.clone();
    tokio::task::spawn_blocking(move || {
        s.write_blocking(move |tx| {
            upsert(tx, &record("C1", "王芳"), "cmd")?;
            presence::identified(tx, &d, "C1", Via::Ticket, t0, Some("A001"))?;
            // a walk-in customer recorded from an ID card that day goes with the presence
            let walk_in: crate::docfill::FillBody = serde_json::from_value(
                json!({"fields": {"name": {"value": "李四", "source": "chip"}}}),
            )?;
            walkin::record(tx, &d, "lobby", &walk_in).map(|_| ())
        })
    })
    .await
    .unwrap()
    .unwrap();
    let count = |store: Store| async move {
        store
            .read(|c| {
                Ok::<_, StoreError>(c.query_row(
                    "SELECT count(*) FROM customers_present",
                    [],
                    |r| r.get::<_, i64>(0),
                )?)
            })
            .await
            .unwrap()
    };
    let cancel = CancellationToken::new();
    let task = tokio::spawn(presence::run_purge(
        store.clone(),
        cfg.clone(),
        clock,
        cancel.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(count(store.clone()).await, 1, "still the same business day");
    tokio::time::sleep(Duration::from_secs(31)).await;
    let mut left = count(store.clone()).await;
    for _ in 0..500 {
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        left = count(store.clone()).await;
    }
    assert_eq!(left, 0, "the presence of the 23rd is deleted at 04:00");
    let purged: Vec<Value> = events_after(&store, 0)
        .into_iter()
        .filter(|e| e.kind == "customers.purged")
        .map(|e| e.data)
        .collect();
    assert_eq!(
        purged,
        [json!({"day": "2026-11-24", "removed": 1, "walk_ins": 1})]
    );
    let walk_ins = store
        .read(|c| walkin::of_day(c, "2026-11-23"))
        .await
        .unwrap();
    assert!(walk_ins.is_empty(), "the walk-ins of the 23rd are deleted");
    // Head office's record stays: it is not the day's data.
    let kept: i64 = store
        .read(|c| {
            Ok::<_, StoreError>(c.query_row("SELECT count(*) FROM customers", [], |r| r.get(0))?)
        })
        .await
        .unwrap();
    assert_eq!(kept, 1);
    cancel.cancel();
    task.await.unwrap();
}
