//! Step timers on a paused clock, the arrival link, and head-office command validation.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::model::{self, Customer, NewOrder, OrderError};
use super::{command, order_for_customer};
use crate::clock::Clock;
use crate::config::orders::{OrdersConfig, RecallAction, StepSpec};
use crate::store::{Event, Store, StoreError, Tx};

const ID_NUMBER: &str = "321083197812162119";

/// `[orders] overdue_grace_min` at its default.
const GRACE: Duration = Duration::from_secs(15 * 60);

fn spec(key: &str, sla_s: u32, action: RecallAction) -> StepSpec {
    StepSpec {
        key: key.into(),
        name: key.into(),
        customer_label: None,
        sla_s,
        near_pct: 80,
        recall_after_s: 300,
        recall_action: action,
    }
}

fn new_order(id: &str, steps: Vec<StepSpec>) -> NewOrder {
    NewOrder {
        id: id.into(),
        business_type: "account_opening".into(),
        title: "个人开户".into(),
        channel: "app".into(),
        priority: "appointment".into(),
        customer: Customer {
            name: "张三".into(),
            phone: Some("13800000000".into()),
            id_number: Some(ID_NUMBER.into()),
        },
        appointment_at: None,
        fields: Map::new(),
        steps,
    }
}

/// A write on the blocking pool: a paused clock does not jump while it runs.
async fn write<R: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&mut Tx<'_>) -> Result<R, OrderError> + Send + 'static,
) -> R {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.write_blocking(f))
        .await
        .unwrap()
        .expect("write")
}

async fn read<R: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&rusqlite::Connection) -> Result<R, StoreError> + Send + 'static,
) -> R {
    store.read(f).await.expect("read")
}

/// The next committed event of `kind` (failing after a second of quiet).
async fn next(rx: &mut broadcast::Receiver<Arc<Event>>, kind: &str) -> Arc<Event> {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(1), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {kind} event"))
            .expect("bus");
        if ev.kind == kind {
            return ev;
        }
    }
}

/// Nothing of these kinds is waiting on the bus.
fn none_of(rx: &mut broadcast::Receiver<Arc<Event>>, kinds: &[&str]) {
    while let Ok(ev) = rx.try_recv() {
        assert!(!kinds.contains(&ev.kind.as_str()), "unexpected {}", ev.kind);
    }
}

async fn step_state(store: &Store, clock: Clock, id: &str) -> (String, Value) {
    let id = id.to_string();
    let now = clock.now();
    let v = read(store, move |c| super::views::staff_view(c, &id, now))
        .await
        .unwrap();
    (
        v["status"].as_str().unwrap().to_string(),
        v["steps"][0].clone(),
    )
}

async fn open_alerts(store: &Store) -> Vec<(String, String)> {
    read(store, |c| {
        let mut stmt =
            c.prepare("SELECT kind, level FROM alerts WHERE cleared_at IS NULL ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    })
    .await
}

struct Rig {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    store: Store,
    clock: Clock,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    /// Subscribed before the timers started, so nothing they do is missed.
    rx: Option<broadcast::Receiver<Arc<Event>>>,
}

impl Rig {
    async fn start() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        let p = path.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&p, crate::modules::SCHEMAS))
            .await
            .unwrap()
            .unwrap();
        let clock = Clock::new();
        let cancel = CancellationToken::new();
        let rx = Some(store.subscribe());
        let task = tokio::spawn(super::run(store.clone(), clock, cancel.clone(), GRACE));
        Rig {
            _dir: dir,
            path,
            store,
            clock,
            cancel,
            task,
            rx,
        }
    }

    /// Stop the timers and the database, and start both again on the same file with a
    /// clock that carries on from the old one (the wall clock keeps running over a
    /// restart).
    async fn restart(self, down_s: u64) -> Rig {
        self.cancel.cancel();
        self.task.await.unwrap();
        advance(down_s).await;
        let s = self.store.clone();
        tokio::task::spawn_blocking(move || s.close())
            .await
            .unwrap();
        let p = self.path.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&p, crate::modules::SCHEMAS))
            .await
            .unwrap()
            .unwrap();
        let clock = Clock::starting_at(self.clock.now());
        let cancel = CancellationToken::new();
        let rx = Some(store.subscribe());
        let task = tokio::spawn(super::run(store.clone(), clock, cancel.clone(), GRACE));
        Rig {
            _dir: self._dir,
            path: self.path,
            store,
            clock,
            cancel,
            task,
            rx,
        }
    }

    fn events(&mut self) -> broadcast::Receiver<Arc<Event>> {
        self.rx.take().expect("one receiver per run")
    }

    /// An approved order whose first step (`sla_s` 600) has just started.
    async fn running(&self, id: &str, action: RecallAction) {
        let o = new_order(
            id,
            vec![spec("check", 600, action), spec("open", 600, action)],
        );
        let now = self.clock.now();
        let id = id.to_string();
        write(&self.store, move |tx| {
            model::create(tx, &o, None)?;
            model::approve(tx, &id, "lobby")?;
            model::start_step(tx, &id, "check", "lobby", now)
        })
        .await;
    }
}

async fn advance(s: u64) {
    tokio::time::advance(Duration::from_secs(s)).await;
}

#[tokio::test(start_paused = true)]
async fn near_timeout_warns_at_80_percent_of_the_service_time() {
    let mut rig = Rig::start().await;
    let mut rx = rig.events();
    rig.running("O-1", RecallAction::Pool).await;
    advance(479).await;
    let (_, step) = step_state(&rig.store, rig.clock, "O-1").await;
    assert_eq!(step["state"], "active", "not yet at 479 s of 600 s");
    none_of(&mut rx, &["order.near_timeout"]);
    advance(2).await;
    let ev = next(&mut rx, "order.near_timeout").await;
    assert_eq!(ev.data["id"], "O-1");
    assert_eq!(ev.data["step"], "check");
    assert_eq!(ev.data["sla_s"], 600);
    assert!(
        !ev.data.to_string().contains("张三"),
        "no customer name in events"
    );
    let (status, step) = step_state(&rig.store, rig.clock, "O-1").await;
    assert_eq!(
        (status.as_str(), step["state"].as_str()),
        ("executing", Some("near_timeout"))
    );
    assert_eq!(
        open_alerts(&rig.store).await,
        vec![("order.near_timeout".to_string(), "warn".to_string())]
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_warns_when_the_service_time_is_spent() {
    let mut rig = Rig::start().await;
    let mut rx = rig.events();
    rig.running("O-2", RecallAction::Pool).await;
    advance(481).await;
    next(&mut rx, "order.near_timeout").await;
    advance(118).await;
    none_of(&mut rx, &["order.timeout"]);
    assert_eq!(
        step_state(&rig.store, rig.clock, "O-2").await.1["state"],
        "near_timeout"
    );
    advance(2).await;
    let ev = next(&mut rx, "order.timeout").await;
    assert_eq!(ev.data["step"], "check");
    let (status, step) = step_state(&rig.store, rig.clock, "O-2").await;
    assert_eq!(status, "executing");
    assert_eq!(step["state"], "timeout");
    assert_eq!(step["overdue"], true);
    assert_eq!(
        open_alerts(&rig.store).await,
        vec![("order.timeout".to_string(), "critical".to_string())],
        "the timeout replaces the near-timeout alert"
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_recall_returns_the_order_to_the_pool() {
    let mut rig = Rig::start().await;
    let mut rx = rig.events();
    rig.running("O-3", RecallAction::Pool).await;
    advance(601).await;
    next(&mut rx, "order.timeout").await;
    advance(298).await;
    none_of(&mut rx, &["order.recalled"]);
    advance(2).await;
    let ev = next(&mut rx, "order.recalled").await;
    assert_eq!(ev.data["action"], "pool");
    let (status, step) = step_state(&rig.store, rig.clock, "O-3").await;
    assert_eq!(status, "recalled");
    assert_eq!(step["state"], "pending");
    assert_eq!(step["started_by"], Value::Null);
    // Anyone may take it up again; that clears the recall alert and restarts the timers.
    let now = rig.clock.now();
    write(&rig.store, move |tx| {
        model::start_step(tx, "O-3", "check", "other", now)
    })
    .await;
    assert!(open_alerts(&rig.store).await.is_empty());
    advance(481).await;
    next(&mut rx, "order.near_timeout").await;
}

#[tokio::test(start_paused = true)]
async fn timeout_recall_can_escalate_instead() {
    let mut rig = Rig::start().await;
    let mut rx = rig.events();
    rig.running("O-4", RecallAction::Escalate).await;
    advance(901).await;
    let ev = next(&mut rx, "order.recalled").await;
    assert_eq!(ev.data["action"], "escalate");
    let (status, step) = step_state(&rig.store, rig.clock, "O-4").await;
    assert_eq!(status, "executing", "the step keeps running");
    assert_eq!(step["state"], "timeout");
    assert_eq!(step["escalated"], true);
    assert!(
        open_alerts(&rig.store)
            .await
            .contains(&("order.recalled".to_string(), "critical".to_string()))
    );
    // No further level after an escalation.
    advance(10_000).await;
    none_of(&mut rx, &["order.recalled", "order.timeout"]);
}

#[tokio::test(start_paused = true)]
async fn timers_are_recomputed_from_stored_times_after_a_restart() {
    let rig = Rig::start().await;
    rig.running("O-5", RecallAction::Pool).await;
    advance(300).await;
    let mut rig = rig.restart(0).await;
    let mut rx = rig.events();
    advance(179).await;
    none_of(&mut rx, &["order.near_timeout"]);
    advance(2).await;
    next(&mut rx, "order.near_timeout").await;
    advance(119).await;
    next(&mut rx, "order.timeout").await;
}

#[tokio::test(start_paused = true)]
async fn levels_missed_while_down_are_applied_at_once_on_restart() {
    let rig = Rig::start().await;
    rig.running("O-6", RecallAction::Pool).await;
    // Down for 20 minutes: past near-timeout, timeout and recall.
    let mut rig = rig.restart(1200).await;
    let mut rx = rig.events();
    next(&mut rx, "order.near_timeout").await;
    next(&mut rx, "order.timeout").await;
    next(&mut rx, "order.recalled").await;
    assert_eq!(step_state(&rig.store, rig.clock, "O-6").await.0, "recalled");
}

#[tokio::test(start_paused = true)]
async fn a_finished_step_stops_its_timers_and_clears_its_alerts() {
    let mut rig = Rig::start().await;
    let mut rx = rig.events();
    rig.running("O-7", RecallAction::Pool).await;
    advance(500).await;
    next(&mut rx, "order.near_timeout").await;
    let now = rig.clock.now();
    write(&rig.store, move |tx| {
        model::finish_step(tx, "O-7", "check", "lobby", now)
    })
    .await;
    let ev = next(&mut rx, "order.step").await;
    assert_eq!(
        (ev.data["state"].as_str(), ev.data["duration_s"].as_i64()),
        (Some("done"), Some(500))
    );
    assert!(open_alerts(&rig.store).await.is_empty());
    advance(5000).await;
    none_of(&mut rx, &["order.timeout", "order.recalled"]);
    assert_eq!(
        step_state(&rig.store, rig.clock, "O-7").await.1["state"],
        "done"
    );
}

#[tokio::test(start_paused = true)]
async fn a_ticket_with_the_appointment_id_links_the_order() {
    let mut rig = Rig::start().await;
    let mut rx = rig.events();
    let o = new_order("O-8", vec![spec("check", 600, RecallAction::Pool)]);
    write(&rig.store, move |tx| model::create(tx, &o, None)).await;
    write(&rig.store, |tx| {
        tx.emit(
            "ticket.issued",
            json!({"number": "A007", "service": "personal", "priority": 1, "appointment_id": "O-8",
                   "visit_id": "9f86d081884c7d659a2feaa0c55ad015"}),
        )?;
        Ok(())
    })
    .await;
    let ev = next(&mut rx, "order.arrived").await;
    assert_eq!(
        ev.data,
        json!({"id": "O-8", "ticket": "A007", "priority": "appointment",
               "visit_id": "9f86d081884c7d659a2feaa0c55ad015"}),
        "the order joins the visit the ticket began"
    );
    let (status, _) = step_state(&rig.store, rig.clock, "O-8").await;
    assert_eq!(status, "created");
    let v = read(&rig.store, |c| {
        super::views::staff_view(c, "O-8", chrono::Utc::now())
    })
    .await
    .unwrap();
    assert_eq!(v["ticket"], "A007");
    assert_eq!(v["customer"]["id_number_masked"], "3210**********2119");
    // The queue's card-swipe lookup.
    let found = read(&rig.store, |c| order_for_customer(c, ID_NUMBER)).await;
    assert_eq!(found.as_deref(), Some("O-8"));
    let none = read(&rig.store, |c| order_for_customer(c, "11010519491231002X")).await;
    assert_eq!(none, None);
}

#[tokio::test]
async fn transitions_out_of_order_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("b.db"), crate::modules::SCHEMAS).unwrap();
    let o = new_order(
        "O-9",
        vec![
            spec("a", 60, RecallAction::Pool),
            spec("b", 60, RecallAction::Pool),
        ],
    );
    let now = chrono::Utc::now();
    store
        .write(move |tx| model::create(tx, &o, None))
        .await
        .unwrap();
    let refused = |f: fn(&mut Tx<'_>) -> Result<(), OrderError>| {
        let store = store.clone();
        async move {
            let before = store.committed().borrow().to_owned();
            let e = store.write(f).await.expect_err("refused");
            assert_eq!(
                *store.committed().borrow(),
                before,
                "no event for a refusal"
            );
            e.to_string()
        }
    };
    assert!(
        refused(|tx| model::start_step(tx, "O-9", "a", "x", chrono::Utc::now()))
            .await
            .contains("approved")
    );
    assert!(
        refused(|tx| model::deliver(tx, "O-9", "x", chrono::Utc::now()))
            .await
            .contains("created")
    );
    assert!(
        refused(|tx| model::rate(tx, "O-9", 5, None, &[]))
            .await
            .contains("delivered")
    );
    assert!(
        refused(|tx| model::approve(tx, "nope", "x"))
            .await
            .contains("no order")
    );
    store
        .write(|tx| model::approve(tx, "O-9", "x"))
        .await
        .unwrap();
    assert!(
        refused(|tx| model::start_step(tx, "O-9", "b", "x", chrono::Utc::now()))
            .await
            .contains("`a` comes first")
    );
    assert!(
        refused(|tx| model::start_step(tx, "O-9", "zz", "x", chrono::Utc::now()))
            .await
            .contains("no step")
    );
    store
        .write(move |tx| model::start_step(tx, "O-9", "a", "x", now))
        .await
        .unwrap();
    assert!(
        refused(|tx| model::deliver(tx, "O-9", "x", chrono::Utc::now()))
            .await
            .contains("not done")
    );
    assert!(
        refused(|tx| model::rate(tx, "O-9", 9, None, &[]))
            .await
            .contains("1 to 5")
    );
    store.close();
}

fn cfg() -> OrdersConfig {
    let c = crate::config::Config::parse(
        "[branch]\nid = \"T1\"\nname = \"t\"\ndata_dir = \"/tmp/x\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
         [orders]\nnear_timeout_pct = 75\n\
         [[orders.templates]]\nbusiness_type = \"account_opening\"\ntitle = \"个人开户\"\n\
         [[orders.templates.steps]]\nkey = \"pre_review\"\nname = \"预审\"\nsla_s = 600\n\
         [[orders.templates.steps]]\nkey = \"card_issuance\"\nname = \"发卡\"\nsla_s = 300\nrecall_action = \"escalate\"\n",
    )
    .expect("config");
    c.orders
}

fn data(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn create_command_takes_the_steps_from_the_business_type_template() {
    let cfg = cfg();
    let cmd = command::parse(
        "order.create",
        &data(
            json!({"order_id": "ORD-1", "business_type": "account_opening",
                     "customer": {"name": "张三", "id_number": ID_NUMBER},
                     "appointment_at": "2026-11-23T09:30:00+08:00"}),
        ),
        &cfg,
    )
    .expect("valid");
    let command::OrderCmd::Create(o) = cmd else {
        panic!("create")
    };
    assert_eq!(o.title, "个人开户");
    let keys: Vec<_> = o
        .steps
        .iter()
        .map(|s| (s.key.as_str(), s.near_pct, s.recall_action))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("pre_review", 75, RecallAction::Pool),
            ("card_issuance", 75, RecallAction::Escalate)
        ]
    );
    assert_eq!(
        o.appointment_at.map(crate::clock::rfc3339).as_deref(),
        Some("2026-11-23T01:30:00.000Z")
    );
}

#[test]
fn invalid_order_commands_are_refused_with_every_reason() {
    let cfg = cfg();
    let cases: &[(&str, Value, &[&str])] = &[
        (
            "order.create",
            json!({}),
            &[
                "`order_id` is required",
                "`business_type` is required",
                "`customer` is required",
            ],
        ),
        (
            "order.create",
            json!({"order_id": "O 1", "business_type": "loans", "customer": {"name": "x"}}),
            &["`order_id` must be", "no step template for `loans`"],
        ),
        (
            "order.create",
            json!({"order_id": "O1", "business_type": "account_opening",
                                "customer": {"name": "x", "id_number": "321083197812162118"}}),
            &["`customer.id_number` is not a valid ID number"],
        ),
        (
            "order.create",
            json!({"order_id": "O1", "business_type": "x", "customer": {"name": "x"},
                                "steps": [{"key": "a", "sla_s": 0}, {"key": "a", "sla_s": 5, "recall_action": "panic"}]}),
            &[
                "`steps[0].sla_s` must be an integer",
                "duplicate step `a`",
                "`steps[1].recall_action`",
            ],
        ),
        (
            "order.create",
            json!({"order_id": "O1", "business_type": "account_opening",
                                "customer": {"name": "x"}, "appointment_at": "tomorrow", "shoe": 1}),
            &[
                "`appointment_at` must be an RFC 3339 time",
                "unknown key `shoe`",
            ],
        ),
        (
            "order.update",
            json!({"order_id": "O1"}),
            &["nothing to change"],
        ),
        (
            "order.cancel",
            json!({"reason": 5}),
            &["`order_id` is required", "`reason` must be"],
        ),
        (
            "order.teleport",
            json!({"order_id": "O1"}),
            &["unknown command kind `order.teleport`"],
        ),
    ];
    for (kind, d, wants) in cases {
        let got = command::parse(kind, &data(d.clone()), &cfg).expect_err("refused");
        for want in *wants {
            assert!(got.contains(want), "{kind} {d}: `{got}` lacks `{want}`");
        }
    }
}

#[test]
fn the_orders_section_is_checked_key_by_key() {
    let base = "[branch]\nid = \"T1\"\nname = \"t\"\ndata_dir = \"/tmp/x\"\n[http]\nlisten = \"127.0.0.1:0\"\n";
    let bad = format!(
        "{base}[orders]\nnear_timeout_pct = 100\nrecall_action = \"later\"\n\
         [[orders.templates]]\nbusiness_type = \"Bad Type\"\n\
         [[orders.templates.steps]]\nkey = \"a\"\nsla_s = 0\ncolour = \"red\"\n"
    );
    let problems = crate::config::Config::parse(&bad).expect_err("invalid");
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    let all = text.join("\n");
    for want in [
        "`orders.near_timeout_pct`: 100 is out of range",
        "`orders.recall_action`",
        "`orders.templates[0].business_type`",
        "`orders.templates[0].steps[0].sla_s`: 0 is out of range",
        "`orders.templates[0].steps[0].colour`: unknown key",
    ] {
        assert!(all.contains(want), "{all}\nlacks {want}");
    }
    let none = crate::config::Config::parse(base).expect("valid without [orders]");
    assert_eq!(none.orders, OrdersConfig::default());
}

#[tokio::test]
async fn demo_samples_are_created_once_with_one_step_running() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("b.db"), crate::modules::SCHEMAS).unwrap();
    let cfg = OrdersConfig::default();
    let now = chrono::Utc::now();
    let c = cfg.clone();
    let first = store
        .write(move |tx| super::demo::create_samples(tx, &c, now))
        .await
        .unwrap();
    let second = store
        .write(move |tx| super::demo::create_samples(tx, &cfg, now))
        .await
        .unwrap();
    assert_eq!((first, second), (3, 0), "three samples, never twice");
    let list = store
        .read(move |c| super::views::list(c, now))
        .await
        .unwrap();
    assert_eq!(list.len(), 3);
    let running: Vec<&Value> = list
        .iter()
        .filter(|o| o["current_step"].is_object())
        .collect();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0]["status"], "executing");
    assert_eq!(running[0]["current_step"]["elapsed_s"], 240);
    store.close();
}

/// The required fields of a schema in this module's OpenAPI fragment (through `allOf`).
fn required_fields(doc: &Value, name: &str) -> Vec<String> {
    let schema = &doc["schemas"][name];
    std::iter::once(schema)
        .chain(schema["allOf"].as_array().into_iter().flatten())
        .flat_map(|s| s["required"].as_array().into_iter().flatten())
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect()
}

/// Found by the OpenAPI fuzz: with nothing required, the staff view also matched the
/// customer schema, so `GET /api/v1/orders/{id}`'s `oneOf` matched twice. Each view has
/// every field its own schema requires and lacks one the other requires.
#[tokio::test]
async fn each_order_view_matches_exactly_one_schema_of_the_document() {
    let doc: Value = serde_json::from_str(include_str!("openapi.json")).unwrap();
    let one_of = &doc["paths"]["/api/v1/orders/{id}"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"]["oneOf"];
    assert_eq!(
        one_of,
        &json!([{"$ref": "#/components/schemas/OrderStaff"},
                {"$ref": "#/components/schemas/OrderCustomer"}])
    );
    let staff_needs = required_fields(&doc, "OrderStaff");
    let customer_needs = required_fields(&doc, "OrderCustomer");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("b.db"), crate::modules::SCHEMAS).unwrap();
    let cfg = OrdersConfig::default();
    let now = chrono::Utc::now();
    store
        .write(move |tx| super::demo::create_samples(tx, &cfg, now))
        .await
        .unwrap();
    let views = store
        .read(move |c| {
            let mut out = Vec::new();
            for o in super::views::list(c, now)? {
                let id = o["id"].as_str().unwrap_or_default().to_string();
                out.push((
                    super::views::staff_view(c, &id, now)?,
                    super::views::customer_view(c, &id)?,
                ));
            }
            Ok::<_, StoreError>(out)
        })
        .await
        .unwrap();
    assert_eq!(views.len(), 3);
    let has = |v: &Value, keys: &[String]| keys.iter().all(|k| v.get(k).is_some());
    for (staff, customer) in views {
        let (staff, customer) = (staff.unwrap(), customer.unwrap());
        assert!(has(&staff, &staff_needs), "{staff}");
        assert!(!has(&staff, &customer_needs), "{staff}");
        assert!(has(&customer, &customer_needs), "{customer}");
        assert!(!has(&customer, &staff_needs), "{customer}");
    }
    store.close();
}

/// An order booked `in_min` minutes from now, with one step.
async fn booked(rig: &Rig, id: &str, in_min: i64) {
    let mut o = new_order(id, vec![spec("check", 600, RecallAction::Pool)]);
    o.appointment_at = Some(rig.clock.now() + chrono::Duration::minutes(in_min));
    write(&rig.store, move |tx| model::create(tx, &o, None)).await;
}

async fn open_alert_keys(store: &Store) -> Vec<String> {
    read(store, |c| {
        let mut stmt = c.prepare("SELECT key FROM alerts WHERE cleared_at IS NULL ORDER BY id")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_customer_late_for_the_appointment_is_reported_once_after_the_grace() {
    let mut rig = Rig::start().await;
    let mut rx = rig.events();
    booked(&rig, "O-L1", 10).await;
    advance(24 * 60).await;
    none_of(&mut rx, &["order.overdue"]);
    assert!(
        open_alerts(&rig.store).await.is_empty(),
        "not yet 15 min late"
    );
    advance(2 * 60).await;
    let ev = next(&mut rx, "order.overdue").await;
    assert_eq!(ev.data["id"], "O-L1");
    assert_eq!(ev.data.get("title"), None, "the title stays on the box");
    assert!(ev.data["appointment_at"].is_string());
    assert!(!ev.data.to_string().contains("张三"), "no customer name");
    assert_eq!(
        open_alerts(&rig.store).await,
        vec![("order.overdue".to_string(), "warn".to_string())]
    );
    let now = rig.clock.now();
    let v = read(&rig.store, move |c| {
        super::views::staff_view(c, "O-L1", now)
    })
    .await
    .unwrap();
    assert_eq!(
        (v["late"].as_bool(), v["overdue"].as_bool()),
        (Some(true), Some(true))
    );

    // Once: an hour later, and after a restart, nothing more.
    advance(3600).await;
    none_of(&mut rx, &["order.overdue"]);
    let mut rig = rig.restart(60).await;
    let mut rx = rig.events();
    advance(60).await;
    none_of(&mut rx, &["order.overdue"]);
    assert_eq!(open_alerts(&rig.store).await.len(), 1);

    // The customer arrives: the alert is cleared, the order no longer late.
    write(&rig.store, |tx| {
        Ok(model::link_ticket(tx, "O-L1", "A001", None)?)
    })
    .await;
    assert!(open_alerts(&rig.store).await.is_empty());
    let now = rig.clock.now();
    let v = read(&rig.store, move |c| {
        super::views::staff_view(c, "O-L1", now)
    })
    .await
    .unwrap();
    assert_eq!(v["late"], false);
}

#[tokio::test(start_paused = true)]
async fn closing_a_late_order_clears_its_alert_and_a_closed_order_is_never_late() {
    let mut rig = Rig::start().await;
    let mut rx = rig.events();
    booked(&rig, "O-L2", 0).await;
    booked(&rig, "O-L3", 5).await;
    advance(16 * 60).await;
    let ev = next(&mut rx, "order.overdue").await;
    assert_eq!(ev.data["id"], "O-L2");
    assert_eq!(
        open_alert_keys(&rig.store).await,
        vec![model::overdue_key("O-L2")]
    );
    write(&rig.store, |tx| {
        model::reject(tx, "O-L2", "lobby", "资料不全")?;
        model::cancel(tx, "O-L3", None, None)
    })
    .await;
    assert!(
        open_alerts(&rig.store).await.is_empty(),
        "rejected: cleared"
    );
    advance(3600).await;
    none_of(&mut rx, &["order.overdue"]);
    assert!(
        open_alerts(&rig.store).await.is_empty(),
        "cancelled before its time"
    );
}

#[tokio::test(start_paused = true)]
async fn a_moved_appointment_gets_a_new_grace() {
    let mut rig = Rig::start().await;
    let mut rx = rig.events();
    booked(&rig, "O-L4", 10).await;
    advance(20 * 60).await;
    let later = rig.clock.now() + chrono::Duration::minutes(30);
    write(&rig.store, move |tx| {
        model::update(
            tx,
            &model::OrderUpdate {
                id: "O-L4".into(),
                appointment_at: Some(later),
                ..Default::default()
            },
            None,
        )
    })
    .await;
    advance(40 * 60).await;
    none_of(&mut rx, &["order.overdue"]);
    advance(6 * 60).await;
    let ev = next(&mut rx, "order.overdue").await;
    assert_eq!(ev.data["id"], "O-L4");
}

#[tokio::test(start_paused = true)]
async fn urging_raises_the_priority_and_handing_over_moves_the_assignee() {
    let rig = Rig::start().await;
    let o = new_order("O-U1", vec![spec("check", 600, RecallAction::Pool)]);
    let now = rig.clock.now();
    write(&rig.store, move |tx| {
        model::create(tx, &o, None)?;
        model::approve(tx, "O-U1", "lobby")?;
        model::urge(tx, "O-U1", "lobby")?;
        model::urge(tx, "O-U1", "lobby")?;
        model::hand_over(tx, "O-U1", "lobby", "lm2")?;
        model::start_step(tx, "O-U1", "check", "lm3", now)
    })
    .await;
    let o = read(&rig.store, |c| model::get(c, "O-U1")).await.unwrap();
    assert_eq!(o.priority, model::URGENT);
    assert_eq!(o.urges, 2);
    assert_eq!(
        o.assignee.as_deref(),
        Some("lm3"),
        "who starts a step takes the order"
    );
    let refused = |r: Result<(), OrderError>| matches!(r, Err(OrderError::State(_)));
    let store = rig.store.clone();
    let (same, urge_closed, hand_closed) = tokio::task::spawn_blocking(move || {
        let same = store.write_blocking(|tx| model::hand_over(tx, "O-U1", "lobby", "lm3"));
        store
            .write_blocking(|tx| model::cancel(tx, "O-U1", None, None))
            .unwrap();
        let urge = store.write_blocking(|tx| model::urge(tx, "O-U1", "lobby"));
        let hand = store.write_blocking(|tx| model::hand_over(tx, "O-U1", "lobby", "lm2"));
        (same, urge, hand)
    })
    .await
    .unwrap();
    assert!(refused(same), "already theirs");
    assert!(refused(urge_closed), "a closed order is not urged");
    assert!(refused(hand_closed), "a closed order is not handed over");
}
