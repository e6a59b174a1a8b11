//! The lobby queue through its HTTP routes, its events, the ticket printer on a PTY
//! simulator, wait alerts on a paused clock, and a SIGKILL of the daemon.

use std::time::Duration;

use branchd::clock::Clock;
use branchd::queue::{self, IssueRequest, Source};
use branchd::signals::Signal;
use branchd::users::{self, Role};
use branchd_drivers::printer::TextEncoding;
use branchd_drivers::printer::sim::{Paper, PrinterSim};
use serde_json::{Value, json};

use crate::common::{KIOSK, TestBox, error_code, events, free_port, wait_until};

const LOBBY: &str = r#"
[[services]]
code = "personal"
prefix = "A"
name = "个人业务"
name_en = "Personal banking"
target_wait_min = 15

[[services]]
code = "corporate"
prefix = "B"
name = "对公业务"
name_en = "Corporate banking"
target_wait_min = 10

[[counters]]
id = "1"
services = ["personal"]

[[counters]]
id = "2"
services = ["personal", "corporate"]

[[counters]]
id = "3"
services = ["corporate"]
"#;

async fn lobby(extra: &str) -> TestBox {
    TestBox::start_with(&format!("{LOBBY}\n{extra}")).await
}

/// 10:00 branch time (UTC+8) on a Monday: hours from the daily reset (04:00) either way, so
/// a test's paused clock can run on for hours without the business day changing under it.
/// (The waiting tickets of a day that has ended raise no more wait alerts.)
fn mid_morning() -> chrono::DateTime<chrono::Utc> {
    "2026-11-23T02:00:00Z".parse().unwrap()
}

/// A corporate banking ticket asked for at the PAD.
fn corporate_at_the_pad() -> IssueRequest {
    IssueRequest {
        service: "corporate".into(),
        customer_id: None,
        customer_level: None,
        appointment_id: None,
        source: Source::Pad,
    }
}

/// The next `queue.alert` event within `within` (of paused time), if one comes.
async fn next_wait_alert(
    bus: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<branchd::store::Event>>,
    within: Duration,
) -> Option<std::sync::Arc<branchd::store::Event>> {
    tokio::time::timeout(within, async {
        loop {
            let e = bus.recv().await.unwrap();
            if e.kind == "queue.alert" {
                return e;
            }
        }
    })
    .await
    .ok()
}

/// The next two `queue.alert` events, each with the paused time it came at since `started`;
/// fails, rather than waiting for ever, when they have not come within `within` of it.
async fn two_wait_alerts(
    bus: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<branchd::store::Event>>,
    started: tokio::time::Instant,
    within: Duration,
) -> Vec<(Duration, Value)> {
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let left = within.saturating_sub(started.elapsed());
        let e = next_wait_alert(bus, left)
            .await
            .unwrap_or_else(|| panic!("{} of 2 wait alerts within {within:?}", seen.len()));
        seen.push((started.elapsed(), e.data.clone()));
    }
    seen
}

async fn post(c: &reqwest::Client, b: &TestBox, path: &str, body: Value) -> reqwest::Response {
    c.post(b.url(path)).json(&body).send().await.unwrap()
}

async fn issue(c: &reqwest::Client, b: &TestBox, body: Value) -> Value {
    let r = post(c, b, "/api/v1/tickets", body).await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn get_queue(c: &reqwest::Client, b: &TestBox) -> Value {
    let r = c.get(b.url("/api/v1/queue")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn numbers(q: &Value) -> Vec<String> {
    q["waiting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["number"].as_str().unwrap().to_string())
        .collect()
}

fn last_seq(b: &TestBox) -> u64 {
    *b.core().store.committed().borrow()
}

/// Open these counters with the caller at them (only an open counter calls).
async fn open_counters(c: &reqwest::Client, b: &TestBox, ids: &[&str]) {
    for id in ids {
        let r = post(c, b, &format!("/api/v1/counters/{id}/open"), json!({})).await;
        assert_eq!(r.status(), 200, "open counter {id}");
    }
}

#[tokio::test]
async fn tickets_are_numbered_per_service_and_tell_position_and_wait() {
    let b = lobby("").await;
    let c = b.login("lobby_manager").await;
    let a1 = issue(&c, &b, json!({"service": "personal"})).await;
    let a2 = issue(&c, &b, json!({"service": "personal"})).await;
    let b1 = issue(
        &c,
        &b,
        json!({"service": "corporate", "customer_id": "C-7"}),
    )
    .await;
    assert_eq!(
        [&a1["number"], &a2["number"], &b1["number"]],
        ["A001", "A002", "B001"]
    );
    assert_eq!(a1["position"], 1);
    assert_eq!(a1["estimated_wait_s"], 0);
    assert_eq!(a2["position"], 2);
    assert_eq!(a2["people_ahead"], 1);
    // One ticket ahead, 300 s default service time, two counters serve personal: none is
    // open yet, so the estimate counts every counter configured for the service, and says so.
    assert_eq!(a2["estimated_wait_s"], 150);
    assert_eq!(a2["estimate_basis"], "configured");
    assert_eq!(a1["printed"], false, "no printer configured");
    let q = get_queue(&c, &b).await;
    assert_eq!(numbers(&q), ["A001", "A002", "B001"]);
    assert_eq!(q["waiting"][0]["why"][0]["code"], "fifo");
    let personal = &q["services"][0];
    assert_eq!(personal["code"], "personal");
    assert_eq!(personal["waiting"], 2);
    assert_eq!(personal["target_wait_s"], 900);
    assert_eq!(q["counters"][1]["id"], "2");
    assert!(q["counters"][1]["current"].is_null());
    let issued = events(&b, "ticket.issued").await;
    assert_eq!(issued.len(), 3);
    assert_eq!(issued[2]["number"], "B001");
    assert_eq!(issued[2]["service"], "corporate");
    assert_eq!(issued[2]["priority"], 0);
    assert_eq!(issued[2]["customer_id"], "C-7");
    // Any member of staff may issue; a branch manager may read the queue.
    let sup = b.login("supervisor").await;
    issue(&sup, &b, json!({"service": "personal"})).await;
    let bm = b.login("branch_manager").await;
    assert_eq!(numbers(&get_queue(&bm, &b).await).len(), 4);
    b.stop().await;
}

#[tokio::test]
async fn vip_and_appointment_tickets_get_priority_and_say_why() {
    let b = lobby("").await;
    let c = b.login("lobby_manager").await;
    issue(&c, &b, json!({"service": "personal"})).await;
    let v = issue(
        &c,
        &b,
        json!({"service": "personal", "customer_level": "vip2"}),
    )
    .await;
    assert_eq!(v["priority"], 2);
    assert_eq!(v["position"], 1);
    let ap = issue(
        &c,
        &b,
        json!({"service": "personal", "appointment_id": "AP-9"}),
    )
    .await;
    assert_eq!(ap["priority"], 1);
    let q = get_queue(&c, &b).await;
    assert_eq!(numbers(&q), ["A002", "A003", "A001"]);
    assert_eq!(
        q["waiting"][0]["why"][0],
        json!({"code": "vip", "params": {"tier": 2}})
    );
    assert_eq!(q["waiting"][1]["why"][0]["code"], "appointment");
    assert_eq!(q["waiting"][1]["appointment_id"], "AP-9");
    let issued = events(&b, "ticket.issued").await;
    assert_eq!(issued[2]["appointment_id"], "AP-9");
    assert_eq!(issued[2]["priority"], 1);
    b.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let b = lobby("").await;
    let c = b.login("lobby_manager").await;
    open_counters(&c, &b, &["1", "3"]).await;
    issue(&c, &b, json!({"service": "personal"})).await;
    issue(&c, &b, json!({"service": "personal"})).await;
    let before = get_queue(&c, &b).await;
    let seq = last_seq(&b);
    let cases: &[(&str, Value, u16, &str)] = &[
        (
            "/api/v1/tickets",
            json!({"service": "mortgage"}),
            400,
            "unknown_service",
        ),
        (
            "/api/v1/tickets",
            json!({"service": 7}),
            400,
            "invalid_json",
        ),
        (
            "/api/v1/tickets",
            json!({"service": "personal", "x": 1}),
            400,
            "invalid_json",
        ),
        (
            "/api/v1/tickets",
            json!({"service": "personal", "customer_level": "king"}),
            400,
            "invalid_request",
        ),
        (
            "/api/v1/tickets/Z999/recall",
            json!({}),
            404,
            "unknown_ticket",
        ),
        (
            "/api/v1/tickets/Z999/skip",
            json!({}),
            404,
            "unknown_ticket",
        ),
        (
            "/api/v1/tickets/Z999/serve-done",
            json!({}),
            404,
            "unknown_ticket",
        ),
        (
            "/api/v1/tickets/Z999/transfer",
            json!({"service": "corporate"}),
            404,
            "unknown_ticket",
        ),
        (
            "/api/v1/tickets/Z999/move",
            json!({"position": 1}),
            404,
            "unknown_ticket",
        ),
        (
            "/api/v1/tickets/A002/move",
            json!({"position": 0}),
            400,
            "invalid_position",
        ),
        (
            "/api/v1/tickets/A002/move",
            json!({"position": 3}),
            400,
            "invalid_position",
        ),
        (
            "/api/v1/tickets/A002/move",
            json!({"position": -1}),
            400,
            "invalid_json",
        ),
        (
            "/api/v1/tickets/A002/transfer",
            json!({"service": "mortgage"}),
            400,
            "unknown_service",
        ),
        (
            "/api/v1/tickets/A002/transfer",
            json!({"counter": "9"}),
            400,
            "unknown_counter",
        ),
        (
            "/api/v1/tickets/A002/transfer",
            json!({"service": "corporate", "counter": "3"}),
            400,
            "invalid_request",
        ),
        (
            "/api/v1/tickets/A002/transfer",
            json!({}),
            400,
            "invalid_request",
        ),
        ("/api/v1/tickets/A001/recall", json!({}), 409, "wrong_state"),
        (
            "/api/v1/tickets/A001/serve-done",
            json!({}),
            409,
            "wrong_state",
        ),
        ("/api/v1/tickets/A001/reprint", json!({}), 409, "no_printer"),
        (
            "/api/v1/counters/9/call-next",
            json!({}),
            404,
            "unknown_counter",
        ),
        // Counter 3 serves only corporate, and no corporate ticket is waiting.
        (
            "/api/v1/counters/3/call-next",
            json!({}),
            404,
            "queue_empty",
        ),
        // Counter 2 is closed.
        (
            "/api/v1/counters/2/call-next",
            json!({}),
            409,
            "counter_closed",
        ),
        ("/api/v1/counters/9/open", json!({}), 404, "unknown_counter"),
        (
            "/api/v1/counters/9/close",
            json!({}),
            404,
            "unknown_counter",
        ),
        (
            "/api/v1/counters/2/open",
            json!({"staff": "nobody"}),
            400,
            "unknown_staff",
        ),
        (
            "/api/v1/counters/2/open",
            json!({"staff": 7}),
            400,
            "invalid_json",
        ),
        (
            "/api/v1/counters/1/open",
            json!({"staff": "supervisor"}),
            409,
            "counter_busy",
        ),
    ];
    for (path, body, status, code) in cases {
        let r = post(&c, &b, path, body.clone()).await;
        assert_eq!(r.status().as_u16(), *status, "{path} {body}");
        assert_eq!(error_code(r).await, *code, "{path} {body}");
    }
    let r = c
        .post(b.url("/api/v1/tickets"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "invalid_json");
    assert_eq!(last_seq(&b), seq, "no event committed");
    let after = get_queue(&c, &b).await;
    assert_eq!(numbers(&after), numbers(&before));
    assert_eq!(after["counters"], before["counters"]);
    b.stop().await;
}

#[tokio::test]
async fn counter_operations_commit_their_events_with_the_call_text() {
    let b = lobby("[queue]\nno_show_after_recalls = 1").await;
    let c = b.login("lobby_manager").await;
    open_counters(&c, &b, &["1", "2"]).await;
    for _ in 0..3 {
        issue(&c, &b, json!({"service": "personal"})).await;
    }
    let r = post(&c, &b, "/api/v1/counters/1/call-next", json!({})).await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["number"], "A001");
    assert_eq!(t["state"], "called");
    assert_eq!(t["call_text"]["zh"], "请A001号到1号窗口办理");
    assert_eq!(t["call_text"]["en"], "Ticket A001, please go to counter 1");
    let called = events(&b, "ticket.called").await;
    assert_eq!(called[0]["counter"], "1");
    assert_eq!(called[0]["call_text"]["zh"], "请A001号到1号窗口办理");
    let q = get_queue(&c, &b).await;
    assert_eq!(q["counters"][0]["current"]["number"], "A001");
    assert_eq!(numbers(&q), ["A002", "A003"]);

    let r: Value = post(&c, &b, "/api/v1/tickets/A001/recall", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["recalls"], 1);
    assert_eq!(
        events(&b, "ticket.recalled").await[0]["call_text"]["en"],
        "Ticket A001, please go to counter 1"
    );
    let r = post(&c, &b, "/api/v1/tickets/A001/serve-done", json!({})).await;
    assert_eq!(r.status(), 200);
    let served = events(&b, "ticket.served").await;
    assert_eq!(served[0]["number"], "A001");
    assert!(get_queue(&c, &b).await["counters"][0]["current"].is_null());

    // Skip before the recalls are used up: skipped.
    post(&c, &b, "/api/v1/counters/2/call-next", json!({})).await;
    let r: Value = post(&c, &b, "/api/v1/tickets/A002/skip", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["state"], "skipped");
    // K = 1 recall, then the next recall makes it a no-show.
    post(&c, &b, "/api/v1/counters/2/call-next", json!({})).await;
    post(&c, &b, "/api/v1/tickets/A003/recall", json!({})).await;
    let r: Value = post(&c, &b, "/api/v1/tickets/A003/recall", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["state"], "no_show");
    assert_eq!(events(&b, "ticket.no_show").await[0]["number"], "A003");
    assert_eq!(events(&b, "ticket.skipped").await[0]["number"], "A002");
    let r = post(&c, &b, "/api/v1/counters/1/call-next", json!({})).await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "queue_empty");
    b.stop().await;
}

#[tokio::test]
async fn a_transferred_ticket_keeps_its_issue_time_and_returns_with_priority() {
    let b = lobby("").await;
    let c = b.login("lobby_manager").await;
    open_counters(&c, &b, &["1", "3"]).await;
    issue(&c, &b, json!({"service": "personal"})).await;
    issue(&c, &b, json!({"service": "corporate"})).await;
    post(&c, &b, "/api/v1/counters/1/call-next", json!({})).await;
    let r = post(
        &c,
        &b,
        "/api/v1/tickets/A001/transfer",
        json!({"service": "corporate"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let q = get_queue(&c, &b).await;
    assert_eq!(
        numbers(&q),
        ["A001", "B001"],
        "back with priority, ahead of B001"
    );
    assert_eq!(q["waiting"][0]["service"], "corporate");
    assert_eq!(q["waiting"][0]["priority"], 1);
    assert_eq!(q["waiting"][0]["why"][0]["code"], "transferred");
    let ev = events(&b, "ticket.transferred").await;
    assert_eq!(ev[0]["from_service"], "personal");
    assert_eq!(ev[0]["service"], "corporate");
    // Counter 3 (corporate) calls it.
    let t: Value = post(&c, &b, "/api/v1/counters/3/call-next", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(t["number"], "A001");
    // Transfer to a counter: only that counter calls it.
    post(
        &c,
        &b,
        "/api/v1/tickets/A001/transfer",
        json!({"counter": "1"}),
    )
    .await;
    let t: Value = post(&c, &b, "/api/v1/counters/3/call-next", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(t["number"], "B001");
    let t: Value = post(&c, &b, "/api/v1/counters/1/call-next", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(t["number"], "A001");
    b.stop().await;
}

#[tokio::test]
async fn a_move_reorders_the_queue_and_is_recorded_with_who_and_why() {
    let b = lobby("").await;
    let c = b.login("lobby_manager").await;
    for _ in 0..3 {
        issue(&c, &b, json!({"service": "personal"})).await;
    }
    let r = post(
        &c,
        &b,
        "/api/v1/tickets/A003/move",
        json!({"position": 1, "reason": "elderly"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let q = get_queue(&c, &b).await;
    assert_eq!(numbers(&q), ["A003", "A001", "A002"]);
    assert_eq!(
        q["waiting"][0]["why"][0],
        json!({"code": "moved", "params": {"position": 1, "by": "lobby_manager", "reason": "elderly"}})
    );
    let ev = events(&b, "ticket.moved").await;
    assert_eq!(ev[0]["by"], "lobby_manager");
    assert_eq!(ev[0]["from"], 3);
    assert_eq!(ev[0]["position"], 1);
    let bm = b.login("branch_manager").await;
    let audit: Value = bm
        .get(b.url("/api/v1/audit"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "ticket.move" && a["target"] == "A003"),
        "{audit}"
    );
    // The call order is the order shown.
    open_counters(&c, &b, &["1"]).await;
    let t: Value = post(&c, &b, "/api/v1/counters/1/call-next", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(t["number"], "A003");
    b.stop().await;
}

#[tokio::test]
async fn an_id_card_swipe_issues_a_ticket_for_the_swipe_service() {
    let b = lobby("[queue]\nswipe_service = \"corporate\"").await;
    let mut bus = b.core().store.subscribe();
    b.core()
        .signals
        .send(Signal::CardSwiped {
            reader: "IDR-01".into(),
            id_number: "11010519491231002X".into(),
            name: "张三".into(),
            valid: true,
        })
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let e = bus.recv().await.unwrap();
            if e.kind == "ticket.issued" {
                return e;
            }
        }
    })
    .await
    .expect("a ticket for the swipe");
    assert_eq!(ev.data["number"], "B001");
    assert_eq!(ev.data["source"], "card");
    let text = ev.data.to_string();
    assert!(
        !text.contains("张三") && !text.contains("11010519491231002X"),
        "{text}"
    );
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_long_wait_raises_an_alert_at_the_target_and_again_at_twice_the_target() {
    let b = TestBox::start_at(LOBBY, Clock::starting_at(mid_morning())).await;
    let app = b.core().clone();
    let mut bus = app.store.subscribe();
    let started = tokio::time::Instant::now();
    let t = b
        .modules()
        .queue
        .issue(corporate_at_the_pad())
        .await
        .unwrap();
    let target = Duration::from_secs(600);
    let seen = two_wait_alerts(&mut bus, started, 3 * target).await;
    let (at1, d1) = &seen[0];
    assert!(
        *at1 >= target && *at1 < target + Duration::from_secs(2),
        "{at1:?}"
    );
    assert_eq!(d1["number"], t.number);
    assert_eq!(d1["alert_level"], 1);
    assert_eq!(d1["level"], "warn");
    let (at2, d2) = &seen[1];
    assert!(
        *at2 >= 2 * target && *at2 < 2 * target + Duration::from_secs(2),
        "{at2:?}"
    );
    assert_eq!(d2["alert_level"], 2);
    assert_eq!(d2["level"], "critical");
    // The alert can be acknowledged from the PAD's alert list.
    let id = d2["id"].as_i64().unwrap();
    let acked = app
        .store
        .write(move |tx| branchd::alerts::ack(tx, id, "lobby_manager"))
        .await
        .unwrap();
    assert!(acked.acked);
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_ticket_still_waiting_at_the_daily_reset_raises_no_alert_on_the_new_day() {
    // 03:55 branch time: the day's numbering ends at 04:00, five minutes before the target.
    let before_reset = "2026-11-23T19:55:00Z".parse().unwrap();
    let b = TestBox::start_at(LOBBY, Clock::starting_at(before_reset)).await;
    let mut bus = b.core().store.subscribe();
    b.modules()
        .queue
        .issue(corporate_at_the_pad())
        .await
        .unwrap();
    let alert = next_wait_alert(&mut bus, Duration::from_secs(3600)).await;
    assert!(alert.is_none(), "an alert on the new day: {alert:?}");
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn wait_alerts_are_timed_from_the_stored_issue_time_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        branchd::config::Config::parse(&crate::common::config_text(dir.path(), LOBBY)).unwrap();
    // A ticket issued 8 minutes before the daemon (re)starts.
    let restart_at = mid_morning();
    let db = cfg.db_path();
    let c2 = cfg.clone();
    tokio::task::spawn_blocking(move || {
        let store = branchd::app::open_store(&db).unwrap();
        let issued_at = restart_at - chrono::Duration::minutes(8);
        store
            .write_blocking(move |tx| {
                queue::ops::issue(tx, &c2, issued_at, &corporate_at_the_pad())
            })
            .unwrap();
        store.close();
    })
    .await
    .unwrap();
    let running = branchd::app::start_with_clock(cfg, Clock::starting_at(restart_at))
        .await
        .unwrap();
    let mut bus = running.core.store.subscribe();
    let started = tokio::time::Instant::now();
    let e = next_wait_alert(&mut bus, Duration::from_secs(3600))
        .await
        .expect("a wait alert within the hour");
    let at = started.elapsed();
    // Target 10 min, 8 already waited: 2 minutes after the restart.
    assert!(
        at >= Duration::from_secs(110) && at <= Duration::from_secs(125),
        "{at:?}"
    );
    assert_eq!(e.data["number"], "B001");
    // (Not asserting the drain: on the paused clock the grace period can run out while the
    // writer thread is still committing in real time.)
    running.shutdown(Duration::from_secs(5)).await;
}

async fn open_alert_kinds(c: &reqwest::Client, b: &TestBox) -> Vec<String> {
    let a: Value = c
        .get(b.url("/api/v1/alerts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    a.as_array()
        .unwrap()
        .iter()
        .filter(|a| a["cleared"] == false)
        .map(|a| a["kind"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn an_issued_ticket_comes_out_of_the_printer_and_paper_out_is_survived() {
    let sim = PrinterSim::spawn(TextEncoding::Gb18030, None).unwrap();
    let extra = format!(
        "[[devices]]\nid = \"PRN-01\"\nkind = \"printer\"\npath = \"{}\"\n\n[queue]\nprinter_poll_ms = 100\n",
        sim.path().display()
    );
    let b = lobby(&extra).await;
    let c = b.login("lobby_manager").await;
    let t = issue(&c, &b, json!({"service": "personal"})).await;
    assert_eq!(t["printed"], true, "{t}");
    let rec = sim.record();
    assert_eq!(rec.tickets.len(), 1);
    let text = rec.tickets[0].text();
    assert!(text.contains("A001"), "{text}");
    assert!(text.contains("个人业务 Personal banking"), "{text}");
    assert!(text.contains("测试支行"), "{text}");
    assert!(
        rec.tickets[0].qr[0].starts_with("http://127.0.0.1:0/c/"),
        "{:?}",
        rec.tickets[0].qr
    );
    assert!(rec.unknown_commands.is_empty());

    // Paper out: an alert, and a ticket issued anyway, flagged.
    sim.set_paper(Paper::Out);
    wait_until("the paper-out alert", 5, || async {
        open_alert_kinds(&c, &b)
            .await
            .iter()
            .any(|k| k == "printer.paper_out")
    })
    .await;
    let t2 = issue(&c, &b, json!({"service": "personal"})).await;
    assert_eq!(t2["number"], "A002");
    assert_eq!(t2["printed"], false);
    let q = get_queue(&c, &b).await;
    assert_eq!(q["waiting"][1]["printed"], false);
    let r = post(&c, &b, "/api/v1/tickets/A002/reprint", json!({})).await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "printer_unavailable");
    let statuses = events(&b, "printer.status").await;
    assert_eq!(statuses.last().unwrap()["paper"], "out");

    // Paper back: the alert clears, the reprint comes out.
    sim.set_paper(Paper::Ok);
    wait_until("the paper-out alert cleared", 5, || async {
        !open_alert_kinds(&c, &b)
            .await
            .iter()
            .any(|k| k == "printer.paper_out")
    })
    .await;
    let r = post(&c, &b, "/api/v1/tickets/A002/reprint", json!({})).await;
    assert_eq!(r.status(), 200);
    wait_until("the reprint", 10, || async {
        sim.record().tickets.len() == 2
    })
    .await;
    assert!(sim.record().tickets[1].text().contains("A002"));
    assert_eq!(get_queue(&c, &b).await["waiting"][1]["printed"], true);
    assert_eq!(events(&b, "ticket.reprint").await[0]["number"], "A002");
    b.stop().await;
}

const BIN: &str = env!("CARGO_BIN_EXE_branchd");

fn spawn_daemon(cfg: &std::path::Path) -> std::process::Child {
    std::process::Command::new(BIN)
        .args(["run", "--config", cfg.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

async fn login_when_up(base: &str) -> reqwest::Client {
    let c = TestBox::client();
    for _ in 0..500 {
        if let Ok(r) = c
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"username": "lobby_manager", "password": crate::common::PASSWORD}))
            .send()
            .await
        {
            assert_eq!(r.status(), 200);
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the daemon did not come up");
}

/// What must survive a crash: order, numbers, services, priorities, reasons, counters (with
/// who is at them).
fn essence(q: &Value) -> Value {
    let waiting: Vec<Value> = q["waiting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            json!({"number": t["number"], "service": t["service"], "priority": t["priority"],
                   "issued_at": t["issued_at"], "position": t["position"],
                   "why": t["why"].as_array().unwrap().iter()
                       .map(|w| w["code"].clone()).collect::<Vec<_>>()})
        })
        .collect();
    let counters: Vec<Value> = q["counters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            json!({"id": c["id"], "current": c["current"]["number"], "open": c["open"],
                   "staff": c["staff"], "since": c["since"]})
        })
        .collect();
    json!({"waiting": waiting, "counters": counters})
}

#[tokio::test]
async fn after_sigkill_and_restart_the_queue_is_exactly_the_queue_before() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = crate::common::config_text(dir.path(), LOBBY)
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let cfg_path = dir.path().join("branchd.toml");
    std::fs::write(&cfg_path, &text).unwrap();
    let db = branchd::config::Config::parse(&text).unwrap().db_path();
    tokio::task::spawn_blocking(move || {
        let store = branchd::app::open_store(&db).unwrap();
        let hash = branchd::users::hash_password(crate::common::PASSWORD);
        store
            .write_blocking(move |tx| {
                branchd::users::insert_user(
                    tx,
                    "lobby_manager",
                    branchd::users::Role::LobbyManager,
                    &hash,
                )
            })
            .unwrap();
        store.close();
    })
    .await
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = spawn_daemon(&cfg_path);
    let c = login_when_up(&base).await;
    let p = |path: &str| format!("{base}{path}");
    for body in [
        json!({"service": "personal"}),
        json!({"service": "corporate"}),
        json!({"service": "personal", "customer_level": "vip1"}),
        json!({"service": "personal"}),
        json!({"service": "corporate", "appointment_id": "AP-1"}),
        json!({"service": "personal"}),
    ] {
        let r = c
            .post(p("/api/v1/tickets"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    for counter in ["1", "3"] {
        let r = c
            .post(p(&format!("/api/v1/counters/{counter}/open")))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    c.post(p("/api/v1/counters/1/call-next"))
        .send()
        .await
        .unwrap();
    c.post(p("/api/v1/tickets/A004/move"))
        .json(&json!({"position": 1, "reason": "elderly"}))
        .send()
        .await
        .unwrap();
    c.post(p("/api/v1/counters/3/call-next"))
        .send()
        .await
        .unwrap();
    c.post(p("/api/v1/tickets/B002/transfer"))
        .json(&json!({"service": "personal"}))
        .send()
        .await
        .unwrap();
    let before: Value = c
        .get(p("/api/v1/queue"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let killed_at = std::time::Instant::now();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let mut child = spawn_daemon(&cfg_path);
    let c = login_when_up(&base).await;
    let after: Value = c
        .get(p("/api/v1/queue"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(essence(&after), essence(&before));
    let elapsed = killed_at.elapsed().as_secs() + 1;
    for (a, b) in after["waiting"]
        .as_array()
        .unwrap()
        .iter()
        .zip(before["waiting"].as_array().unwrap())
    {
        let (wa, wb) = (
            a["waited_s"].as_u64().unwrap(),
            b["waited_s"].as_u64().unwrap(),
        );
        assert!(
            wa >= wb && wa <= wb + elapsed,
            "{} waited {wb} s then {wa} s",
            a["number"]
        );
    }
    // Numbering carries on.
    let t: Value = c
        .post(p("/api/v1/tickets"))
        .json(&json!({"service": "personal"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["number"], "A005");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn the_days_statistics_count_tickets_issued_and_served_per_service() {
    let b = lobby("").await;
    let c = b.login("lobby_manager").await;
    open_counters(&c, &b, &["1"]).await;
    for service in ["personal", "personal", "corporate"] {
        issue(&c, &b, json!({"service": service})).await;
    }
    let called = post(&c, &b, "/api/v1/counters/1/call-next", json!({})).await;
    assert_eq!(called.status(), 200);
    let number = called.json::<Value>().await.unwrap()["number"]
        .as_str()
        .unwrap()
        .to_string();
    let done = post(
        &c,
        &b,
        &format!("/api/v1/tickets/{number}/serve-done"),
        json!({}),
    )
    .await;
    assert_eq!(done.status(), 200);

    let m = b.login("branch_manager").await;
    let r = m.get(b.url("/api/v1/stats")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let s: Value = r.json().await.unwrap();
    let by = |code: &str| {
        s["tickets"]["by_service"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["service"] == code)
            .cloned()
            .unwrap_or_else(|| panic!("{code} missing from {s}"))
    };
    assert_eq!(by("personal")["issued"], 2);
    assert_eq!(by("personal")["served"], 1);
    assert!(by("personal")["max_wait_s"].as_i64().unwrap() >= 0);
    assert_eq!(by("corporate")["issued"], 1);
    assert_eq!(by("corporate")["served"], 0);
    assert!(by("corporate")["avg_wait_s"].is_null(), "nobody called yet");
    assert_eq!(
        s["transactions"]["by_type"],
        json!([]),
        "no STM in this branch"
    );

    let admin = b.login("device_admin").await;
    let r = admin.get(b.url("/api/v1/stats")).send().await.unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn a_closed_counter_cannot_call_next() {
    let b = lobby("").await;
    let c = b.login("lobby_manager").await;
    issue(&c, &b, json!({"service": "personal"})).await;
    issue(&c, &b, json!({"service": "personal"})).await;
    let q = get_queue(&c, &b).await;
    assert_eq!(q["counters"][0]["open"], false, "counters start closed");
    assert!(q["counters"][0]["staff"].is_null());
    let seq = last_seq(&b);
    let r = post(&c, &b, "/api/v1/counters/1/call-next", json!({})).await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "counter_closed");
    assert_eq!(last_seq(&b), seq, "nothing committed");
    assert_eq!(numbers(&get_queue(&c, &b).await), ["A001", "A002"]);

    // Opened, it calls.
    open_counters(&c, &b, &["1"]).await;
    let r = post(&c, &b, "/api/v1/counters/1/call-next", json!({})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["number"], "A001");

    // It cannot close while its called ticket is not finished.
    let r = post(&c, &b, "/api/v1/counters/1/close", json!({})).await;
    assert_eq!(r.status(), 409);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "counter_has_ticket");
    assert_eq!(e["error"]["number"], "A001");
    assert_eq!(get_queue(&c, &b).await["counters"][0]["open"], true);

    // Served, it closes, and calls no more.
    post(&c, &b, "/api/v1/tickets/A001/serve-done", json!({})).await;
    let r = post(&c, &b, "/api/v1/counters/1/close", json!({})).await;
    assert_eq!(r.status(), 200);
    let closed: Value = r.json().await.unwrap();
    assert_eq!(closed["open"], false);
    assert_eq!(closed["served"], 1);
    let r = post(&c, &b, "/api/v1/counters/1/call-next", json!({})).await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "counter_closed");
    assert_eq!(numbers(&get_queue(&c, &b).await), ["A002"]);
    b.stop().await;
}

#[tokio::test]
async fn opening_and_closing_a_counter_is_announced_to_head_office() {
    let b = lobby("").await;
    let c = b.login("lobby_manager").await;
    // Open with the caller at it (no body), then again: the same, no second event.
    let r = c
        .post(b.url("/api/v1/counters/2/open"))
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let opened: Value = r.json().await.unwrap();
    assert_eq!(opened["open"], true);
    assert_eq!(opened["staff"], "lobby_manager");
    assert_eq!(opened["changed"], true);
    let seq = last_seq(&b);
    let again: Value = post(&c, &b, "/api/v1/counters/2/open", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["changed"], false);
    assert_eq!(again["since"], opened["since"]);
    assert_eq!(
        last_seq(&b),
        seq,
        "opening an open counter again changes nothing"
    );
    // Another member of staff cannot take it over while it is open.
    let r = post(
        &c,
        &b,
        "/api/v1/counters/2/open",
        json!({"staff": "supervisor"}),
    )
    .await;
    assert_eq!(r.status(), 409);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "counter_busy");
    assert_eq!(e["error"]["staff"], "lobby_manager");
    // A lobby manager opens a counter for someone else.
    let r = post(
        &c,
        &b,
        "/api/v1/counters/3/open",
        json!({"staff": "supervisor"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let q = get_queue(&c, &b).await;
    assert_eq!(q["counters"][1]["open"], true);
    assert_eq!(q["counters"][1]["staff"], "lobby_manager");
    assert_eq!(q["counters"][2]["staff"], "supervisor");
    assert!(q["counters"][2]["since"].is_string());
    assert_eq!(q["counters"][0]["open"], false);

    issue(&c, &b, json!({"service": "corporate"})).await;
    post(&c, &b, "/api/v1/counters/2/call-next", json!({})).await;
    post(&c, &b, "/api/v1/tickets/B001/serve-done", json!({})).await;
    let r = post(&c, &b, "/api/v1/counters/2/close", json!({})).await;
    assert_eq!(r.status(), 200);
    let seq = last_seq(&b);
    let r: Value = post(&c, &b, "/api/v1/counters/2/close", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        r["changed"], false,
        "closing a closed counter changes nothing"
    );
    assert_eq!(last_seq(&b), seq);

    // Every change is in the outbox for head office, in order.
    let outbox: Vec<(String, Value)> = b
        .core()
        .store
        .events_after(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind.starts_with("counter."))
        .map(|e| (e.kind, e.data))
        .collect();
    let kinds: Vec<&str> = outbox.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["counter.opened", "counter.opened", "counter.closed"]
    );
    assert_eq!(outbox[0].1["counter"], "2");
    assert_eq!(outbox[0].1["staff"], "lobby_manager");
    assert_eq!(outbox[1].1["staff"], "supervisor");
    assert_eq!(outbox[2].1["counter"], "2");
    assert_eq!(outbox[2].1["staff"], "lobby_manager");
    assert_eq!(outbox[2].1["served"], 1);
    // The audit trail says who opened and closed which counter, for whom.
    let bm = b.login("branch_manager").await;
    let audit: Value = bm
        .get(b.url("/api/v1/audit"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let trail: Vec<(String, String, String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["action"]
                .as_str()
                .is_some_and(|x| x.starts_with("counter."))
        })
        .map(|a| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (
                s(&a["action"]),
                s(&a["target"]),
                s(&a["actor"]),
                s(&a["detail"]["staff"]),
            )
        })
        .rev()
        .collect();
    let row = |a: &str, t: &str, by: &str, staff: &str| {
        (
            a.to_string(),
            t.to_string(),
            by.to_string(),
            staff.to_string(),
        )
    };
    assert_eq!(
        trail,
        [
            row("counter.open", "2", "lobby_manager", "lobby_manager"),
            row("counter.open", "3", "lobby_manager", "supervisor"),
            row("counter.close", "2", "lobby_manager", "lobby_manager"),
        ]
    );
    // Other roles cannot open or close counters.
    let sup = b.login("supervisor").await;
    let r = post(&sup, &b, "/api/v1/counters/1/open", json!({})).await;
    assert_eq!(r.status(), 403);
    let r = post(&sup, &b, "/api/v1/counters/3/close", json!({})).await;
    assert_eq!(r.status(), 403);
    b.stop().await;
}

#[tokio::test]
async fn the_wait_estimate_counts_the_open_counters() {
    let b = lobby("").await;
    let c = b.login("lobby_manager").await;
    for _ in 0..3 {
        issue(&c, &b, json!({"service": "personal"})).await;
    }
    let estimates = |q: &Value| -> Vec<(u64, String)> {
        q["waiting"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["estimated_wait_s"].as_u64().unwrap(),
                    t["estimate_basis"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let basis = |b: &str| b.to_string();
    // Counters 1 and 2 serve personal. One open: 300 s a ticket ahead.
    open_counters(&c, &b, &["1"]).await;
    let q = get_queue(&c, &b).await;
    assert_eq!(
        estimates(&q),
        [
            (0, basis("open")),
            (300, basis("open")),
            (600, basis("open"))
        ]
    );
    assert_eq!(q["services"][0]["counters_open"], 1);
    // Two open: half the wait.
    open_counters(&c, &b, &["2"]).await;
    let q = get_queue(&c, &b).await;
    let cfg = b.core().config();
    let telemetry = b
        .core()
        .store
        .read(move |c| queue::view::telemetry(c, &cfg, chrono::Utc::now()))
        .await
        .unwrap();
    assert_eq!(
        telemetry["counters_open"], 2,
        "head office's telemetry counts them"
    );
    assert_eq!(
        estimates(&q),
        [
            (0, basis("open")),
            (150, basis("open")),
            (300, basis("open"))
        ]
    );
    assert_eq!(q["services"][0]["counters_open"], 2);
    let t = issue(&c, &b, json!({"service": "personal"})).await;
    assert_eq!(t["estimated_wait_s"], 450);
    assert_eq!(t["estimate_basis"], "open");
    // None open: every configured counter is counted, and the estimate says so.
    for id in ["1", "2"] {
        post(&c, &b, &format!("/api/v1/counters/{id}/close"), json!({})).await;
    }
    let q = get_queue(&c, &b).await;
    assert_eq!(q["waiting"][1]["estimated_wait_s"], 150);
    assert_eq!(q["waiting"][1]["estimate_basis"], "configured");
    assert_eq!(q["services"][0]["counters_open"], 0);
    b.stop().await;
}

#[tokio::test]
async fn a_kiosk_signs_in_with_its_token_and_only_lists_services_and_issues_tickets() {
    let b = lobby("").await;
    let mut bus = b.core().store.subscribe();
    // No member of staff logs in: the kiosk's device token is its sign-in.
    let k = b.kiosk().await;
    let services = |c: reqwest::Client| {
        let url = b.url("/api/v1/kiosk/services");
        async move {
            let r = c.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            v["services"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s["code"].as_str().unwrap().to_string(),
                        s["open"].as_bool().unwrap(),
                        s["waiting"].as_u64().unwrap(),
                        s["people_ahead"].as_u64().unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let s = |code: &str, waiting, ahead| (code.to_string(), true, waiting, ahead);
    assert_eq!(
        services(k.clone()).await,
        [s("personal", 0, 0), s("corporate", 0, 0)]
    );
    let mut tickets = Vec::new();
    for _ in 0..2 {
        let r = post(
            &k,
            &b,
            "/api/v1/kiosk/tickets",
            json!({"service": "personal"}),
        )
        .await;
        assert_eq!(r.status(), 201);
        tickets.push(r.json::<Value>().await.unwrap());
    }
    // What the customer reads: the number, who is ahead, the wait; nothing about others.
    let mut keys: Vec<&String> = tickets[1].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "estimated_wait_s",
            "issued_at",
            "number",
            "people_ahead",
            "printed",
            "service"
        ]
    );
    let read = |t: &Value| (t["number"].clone(), t["people_ahead"].clone());
    assert_eq!(
        tickets.iter().map(read).collect::<Vec<_>>(),
        [(json!("A001"), json!(0)), (json!("A002"), json!(1))]
    );
    assert_eq!(tickets[0]["estimated_wait_s"], 0);
    assert!(tickets[1]["estimated_wait_s"].as_u64().unwrap() > 0);
    // Counter 2 serves both services, so both personal tickets are ahead of a corporate one.
    assert_eq!(
        services(k.clone()).await,
        [s("personal", 2, 2), s("corporate", 0, 2)]
    );
    let issued = bus.recv().await.unwrap();
    assert_eq!(
        (issued.kind.as_str(), issued.data["source"].as_str()),
        ("ticket.issued", Some("kiosk"))
    );
    // A kiosk names a service, nothing else.
    let r = post(&k, &b, "/api/v1/kiosk/tickets", json!({"service": "gold"})).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "unknown_service");
    let r = post(
        &k,
        &b,
        "/api/v1/kiosk/tickets",
        json!({"service": "personal", "customer_level": "vip3"}),
    )
    .await;
    assert_eq!(r.status(), 400);
    // It is no member of staff: the staff's ticket route and who-am-I refuse it.
    let r = post(&k, &b, "/api/v1/tickets", json!({"service": "personal"})).await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "forbidden");
    let r = k.get(b.url("/api/v1/auth/me")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    // And staff do not use the kiosk's routes.
    let lobby = b.login("lobby_manager").await;
    let r = post(
        &lobby,
        &b,
        "/api/v1/kiosk/tickets",
        json!({"service": "personal"}),
    )
    .await;
    assert_eq!(r.status(), 403);
    b.stop().await;
}

#[tokio::test]
async fn a_kiosk_has_no_password_and_a_new_token_ends_the_old_one_and_its_sessions() {
    let b = lobby("").await;
    let c = TestBox::client();
    for body in [
        json!({"username": KIOSK.0, "password": KIOSK.1}),
        json!({"username": KIOSK.0, "password": "any password at all"}),
    ] {
        let r = post(&c, &b, "/api/v1/auth/login", body).await;
        assert_eq!(r.status(), 401);
    }
    let r = post(&c, &b, "/api/v1/kiosk/session", json!({"token": "a guess"})).await;
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(r).await, "bad_credentials");
    let k = b.kiosk().await;
    let stored = users::stored_device_token("a new token");
    b.core()
        .store
        .write(move |tx| users::set_device_token(tx, KIOSK.0, Role::Kiosk, &stored))
        .await
        .unwrap();
    let r = k.get(b.url("/api/v1/kiosk/services")).send().await.unwrap();
    assert_eq!(r.status(), 401, "the session of the old token ended");
    let r = post(&c, &b, "/api/v1/kiosk/session", json!({"token": KIOSK.1})).await;
    assert_eq!(r.status(), 401, "the old token is refused");
    let r = post(
        &c,
        &b,
        "/api/v1/kiosk/session",
        json!({"token": "a new token"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(
        (me["username"].as_str(), me["role"].as_str()),
        (Some("kiosk"), Some("kiosk"))
    );
    let r = c.get(b.url("/api/v1/kiosk/services")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    b.stop().await;
}

#[tokio::test]
async fn a_visit_id_follows_the_customer_from_issue_to_service() {
    let b = lobby("").await;
    let c = b.login("lobby_manager").await;
    open_counters(&c, &b, &["1", "3"]).await;
    issue(&c, &b, json!({"service": "personal", "customer_id": "C-7"})).await;
    issue(&c, &b, json!({"service": "personal"})).await;
    post(&c, &b, "/api/v1/counters/1/call-next", json!({})).await;
    post(&c, &b, "/api/v1/tickets/A001/recall", json!({})).await;
    let r = post(
        &c,
        &b,
        "/api/v1/tickets/A001/transfer",
        json!({"service": "corporate"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    post(&c, &b, "/api/v1/counters/3/call-next", json!({})).await;
    let r = post(&c, &b, "/api/v1/tickets/A001/serve-done", json!({})).await;
    assert_eq!(r.status(), 200);

    let journey = |number: &'static str| {
        let b = &b;
        async move {
            b.core()
                .store
                .events_after(0, 100_000)
                .await
                .unwrap()
                .into_iter()
                .filter(|e| e.kind.starts_with("ticket.") && e.data["number"] == number)
                .map(|e| (e.kind, e.data))
                .collect::<Vec<_>>()
        }
    };
    let a1 = journey("A001").await;
    let kinds: Vec<&str> = a1.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ticket.issued",
            "ticket.called",
            "ticket.recalled",
            "ticket.transferred",
            "ticket.called",
            "ticket.served"
        ]
    );
    let visit = a1[0].1["visit_id"].as_str().unwrap().to_string();
    assert_eq!(visit.len(), 32, "an opaque id: {visit}");
    assert!(visit.chars().all(|ch| ch.is_ascii_hexdigit()), "{visit}");
    for (kind, data) in &a1 {
        assert_eq!(data["visit_id"], visit, "{kind} carries the visit");
        assert_eq!(data["customer_id"], "C-7", "{kind} carries the customer");
        assert!(
            data.get("appointment_id").is_none(),
            "{kind}: no appointment"
        );
    }
    // Another customer's ticket is another visit, and names no customer it does not know.
    let a2 = journey("A002").await;
    assert_eq!(a2.len(), 1);
    assert_ne!(a2[0].1["visit_id"], visit);
    assert!(a2[0].1["visit_id"].is_string());
    assert!(a2[0].1.get("customer_id").is_none());
    b.stop().await;
}
