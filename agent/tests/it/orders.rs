//! Head-office orders end to end: commands sent with `branchd hq send` through a real
//! Mosquitto started by the test, then the staff API through to the customer's rating.

use std::path::Path;

use serde_json::{Value, json};

use crate::common::{TestBox, error_code, event_data, wait_until};
use crate::mqtt::{Broker, subscriber};

const ID_NUMBER: &str = "321083197812162119";

const ORDERS_CONFIG: &str = r#"
[orders]
near_timeout_pct = 80

[[orders.templates]]
business_type = "account_opening"
title = "个人开户"
[[orders.templates.steps]]
key = "document_check"
name = "证件核验"
customer_label = "核对证件"
sla_s = 300
[[orders.templates.steps]]
key = "account_opening"
name = "开户"
sla_s = 600
"#;

/// `branchd hq send` one command; its ack's `data`.
async fn hq_send(dir: &Path, port: u16, cmd: Value) -> Value {
    let file = dir.join(format!("{}.json", cmd["id"].as_str().unwrap()));
    std::fs::write(&file, cmd.to_string()).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_branchd"))
        .args(["hq", "send", "--url", &format!("mqtt://127.0.0.1:{port}")])
        .args(["--branch", "T001", "--timeout", "20"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    let ack: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("no ack printed: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(
        out.status.success(),
        ack["data"]["ok"] == json!(true),
        "exit status follows the ack"
    );
    ack["data"].clone()
}

fn cmd(id: &str, kind: &str, data: Value) -> Value {
    json!({"v": 1, "id": id, "ts": chrono::Utc::now().to_rfc3339(), "kind": kind, "data": data})
}

async fn post(c: &reqwest::Client, b: &TestBox, path: &str, body: Value) -> reqwest::Response {
    c.post(b.url(path)).json(&body).send().await.unwrap()
}

async fn ok_json(r: reqwest::Response) -> Value {
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_journey_from_head_office_to_the_customers_rating() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), "");
    let (upstream, _hq) = subscriber(broker.port, None);
    upstream.subscribed().await;
    let b = TestBox::start_with(&format!(
        "\n[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nkeep_alive_s = 5\n{ORDERS_CONFIG}",
        broker.port
    ))
    .await;
    let port = broker.port;
    let d = dir.path();
    upstream.wait_online().await;

    // Head office books an order; the same command delivered twice changes state once.
    let create = cmd(
        "cmd-1",
        "order.create",
        json!({"order_id": "ORD-1", "business_type": "account_opening", "channel": "app",
               "customer": {"name": "张三", "phone": "13800000000", "id_number": ID_NUMBER},
               "appointment_at": "2026-11-23T09:30:00+08:00",
               "fields": {"product": "一类户"}}),
    );
    assert_eq!(
        hq_send(d, port, create.clone()).await,
        json!({"ref": "cmd-1", "ok": true})
    );
    assert_eq!(
        hq_send(d, port, create).await,
        json!({"ref": "cmd-1", "ok": true})
    );
    let created: i64 = b
        .core()
        .store
        .read(|c| {
            c.query_row(
                "SELECT count(*) FROM events WHERE kind = 'order.created'",
                [],
                |r| r.get(0),
            )
            .map_err(branchd::store::StoreError::from)
        })
        .await
        .unwrap();
    assert_eq!(created, 1, "a redelivered command changes state once");

    // Invalid commands: refused with the reason, nothing changed.
    let bad = hq_send(
        d,
        port,
        cmd(
            "cmd-2",
            "order.create",
            json!({"order_id": "ORD-2", "business_type": "loans",
            "customer": {"name": "李四", "id_number": "321083197812162118"}}),
        ),
    )
    .await;
    assert_eq!(bad["ok"], json!(false));
    let reason = bad["error"].as_str().unwrap();
    assert!(
        reason.contains("no step template for `loans`") && reason.contains("not a valid ID number"),
        "{reason}"
    );
    let again = hq_send(
        d,
        port,
        cmd(
            "cmd-3",
            "order.create",
            json!({"order_id": "ORD-1",
        "business_type": "account_opening", "customer": {"name": "王五"}}),
        ),
    )
    .await;
    assert!(
        again["error"].as_str().unwrap().contains("already exists"),
        "{again}"
    );
    let unknown = hq_send(
        d,
        port,
        cmd("cmd-4", "order.cancel", json!({"order_id": "ORD-404"})),
    )
    .await;
    assert!(
        unknown["error"]
            .as_str()
            .unwrap()
            .contains("no order `ORD-404`"),
        "{unknown}"
    );

    // Head office moves the appointment.
    let upd = hq_send(
        d,
        port,
        cmd(
            "cmd-5",
            "order.update",
            json!({"order_id": "ORD-1", "appointment_at": "2026-11-23T10:00:00+08:00"}),
        ),
    )
    .await;
    assert_eq!(upd["ok"], json!(true));

    // The staff list and both views.
    let lobby = b.login("lobby_manager").await;
    let list = ok_json(lobby.get(b.url("/api/v1/orders")).send().await.unwrap()).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], "ORD-1");
    assert_eq!(list[0]["title"], "个人开户");
    assert_eq!(list[0]["status"], "created");
    assert_eq!(list[0]["customer_name"], "张三");
    assert_eq!(list[0]["appointment_at"], "2026-11-23T02:00:00.000Z");
    let admin = b.login("device_admin").await;
    let r = admin.get(b.url("/api/v1/orders")).send().await.unwrap();
    assert_eq!(r.status(), 403);

    let approve = ok_json(post(&lobby, &b, "/api/v1/orders/ORD-1/approve", json!({})).await).await;
    assert_eq!(approve["status"], "approved");
    let r = post(
        &lobby,
        &b,
        "/api/v1/orders/ORD-1/steps/account_opening/start",
        json!({}),
    )
    .await;
    assert_eq!(r.status(), 409, "steps run in order");
    assert_eq!(error_code(r).await, "invalid_order_state");
    for key in ["document_check", "account_opening"] {
        let v = ok_json(
            post(
                &lobby,
                &b,
                &format!("/api/v1/orders/ORD-1/steps/{key}/start"),
                json!({}),
            )
            .await,
        )
        .await;
        assert_eq!(v["status"], "executing");
        assert_eq!(v["current_step"]["key"], key);
        assert_eq!(v["current_step"]["state"], "active");
        let v = ok_json(
            post(
                &lobby,
                &b,
                &format!("/api/v1/orders/ORD-1/steps/{key}/finish"),
                json!({}),
            )
            .await,
        )
        .await;
        assert_eq!(v["current_step"], Value::Null);
    }
    let staff = ok_json(
        lobby
            .get(b.url("/api/v1/orders/ORD-1?view=staff"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let steps = staff["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    for s in steps {
        assert_eq!(s["state"], "done");
        assert_eq!(s["started_by"], "lobby_manager");
        assert_eq!(s["finished_by"], "lobby_manager");
        assert!(s["started_at"].is_string() && s["finished_at"].is_string());
        assert!(s["elapsed_s"].is_i64());
        assert_eq!(s["overdue"], false);
    }
    assert_eq!(steps[0]["sla_s"], 300);
    assert_eq!(staff["customer"]["id_number_masked"], "3210**********2119");
    assert_eq!(staff["fields"]["product"], "一类户");

    let r = post(
        &lobby,
        &b,
        "/api/v1/orders/ORD-1/rating",
        json!({"score": 5}),
    )
    .await;
    assert_eq!(r.status(), 409, "no rating before delivery");
    let delivered =
        ok_json(post(&lobby, &b, "/api/v1/orders/ORD-1/deliver", json!({})).await).await;
    assert_eq!(delivered["status"], "delivered");
    let r = post(
        &lobby,
        &b,
        "/api/v1/orders/ORD-1/rating",
        json!({"score": 6}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = post(
        &lobby,
        &b,
        "/api/v1/orders/ORD-1/rating",
        json!({"score": "five"}),
    )
    .await;
    assert_eq!(error_code(r).await, "invalid_json");
    let rated = ok_json(
        post(
            &lobby,
            &b,
            "/api/v1/orders/ORD-1/rating",
            json!({"score": 5, "comment": "很快，谢谢"}),
        )
        .await,
    )
    .await;
    assert_eq!(rated["rating"]["score"], 5);
    assert_eq!(rated["closed"], true);
    let r = post(
        &lobby,
        &b,
        "/api/v1/orders/ORD-1/rating",
        json!({"score": 1}),
    )
    .await;
    assert_eq!(r.status(), 409, "rated once");

    // The customer's view: milestones in plain words, no staff, no timers.
    let customer = ok_json(
        lobby
            .get(b.url("/api/v1/orders/ORD-1?view=customer"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let labels: Vec<&str> = customer["milestones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["已受理", "审核通过", "核对证件", "开户", "办结"]);
    assert!(
        customer["milestones"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["state"] == "done")
    );
    assert_eq!(customer["status_text"], "已办结");
    let text = customer.to_string();
    assert!(
        !text.contains("lobby_manager") && !text.contains("sla_s"),
        "{text}"
    );
    let r = lobby
        .get(b.url("/api/v1/orders/ORD-1?view=boss"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "invalid_view");
    let r = lobby
        .get(b.url("/api/v1/orders/ORD-404"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "no_such_order");

    // Head office cancels a second order; a cancelled order takes no more steps.
    let ok = hq_send(
        d,
        port,
        cmd(
            "cmd-6",
            "order.create",
            json!({"order_id": "ORD-2",
        "business_type": "safe_box", "customer": {"name": "李四"},
        "steps": [{"key": "visit", "name": "开箱", "sla_s": 120}]}),
        ),
    )
    .await;
    assert_eq!(ok["ok"], json!(true), "{ok}");
    let ok = hq_send(
        d,
        port,
        cmd(
            "cmd-7",
            "order.cancel",
            json!({"order_id": "ORD-2", "reason": "客户改约"}),
        ),
    )
    .await;
    assert_eq!(ok["ok"], json!(true));
    let r = post(&lobby, &b, "/api/v1/orders/ORD-2/approve", json!({})).await;
    assert_eq!(r.status(), 409);

    // Staff take a running step back: the order returns to the pool; another takes it up.
    let ok = hq_send(
        d,
        port,
        cmd(
            "cmd-8",
            "order.create",
            json!({"order_id": "ORD-3",
        "business_type": "account_opening", "customer": {"name": "赵六"}}),
        ),
    )
    .await;
    assert_eq!(ok["ok"], json!(true), "{ok}");
    post(&lobby, &b, "/api/v1/orders/ORD-3/approve", json!({})).await;
    post(
        &lobby,
        &b,
        "/api/v1/orders/ORD-3/steps/document_check/start",
        json!({}),
    )
    .await;
    let recalled = ok_json(
        post(
            &lobby,
            &b,
            "/api/v1/orders/ORD-3/recall",
            json!({"note": "换人办理"}),
        )
        .await,
    )
    .await;
    assert_eq!(recalled["status"], "recalled");
    assert_eq!(recalled["steps"][0]["state"], "pending");
    assert_eq!(recalled["recalls"], 1);
    let boss = b.login("branch_manager").await;
    let again = ok_json(
        post(
            &boss,
            &b,
            "/api/v1/orders/ORD-3/steps/document_check/start",
            json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(again["status"], "executing");
    assert_eq!(again["current_step"]["started_by"], "branch_manager");
    // And an order that fails review is rejected with a reason.
    let ok = hq_send(
        d,
        port,
        cmd(
            "cmd-9",
            "order.create",
            json!({"order_id": "ORD-4",
        "business_type": "account_opening", "customer": {"name": "孙七"}}),
        ),
    )
    .await;
    assert_eq!(ok["ok"], json!(true), "{ok}");
    let r = post(
        &lobby,
        &b,
        "/api/v1/orders/ORD-4/reject",
        json!({"reason": " "}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let rejected = ok_json(
        post(
            &lobby,
            &b,
            "/api/v1/orders/ORD-4/reject",
            json!({"reason": "资料不全"}),
        )
        .await,
    )
    .await;
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["closed"], true);

    // Head office saw the journey, and no customer's name or ID number.
    upstream.wait_for_kind("order.rated").await;
    upstream.wait_for_kind("order.cancelled").await;
    upstream.wait_for_kind("order.recalled").await;
    let kinds = upstream.kinds();
    for k in [
        "order.created",
        "order.updated",
        "order.step",
        "order.completed",
        "order.rated",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
    }
    let all = upstream.all_text();
    for secret in [
        "张三",
        "李四",
        "赵六",
        ID_NUMBER,
        "13800000000",
        "很快",
        "资料不全",
        "换人办理",
    ] {
        assert!(!all.contains(secret), "{secret} left the box");
    }
    b.stop().await;
}

/// An order booked straight into the box's store (no head office needed).
async fn booked(b: &TestBox, id: &str, business_type: &str, appointment_in_min: Option<i64>) {
    use branchd::config::orders::{RecallAction, StepSpec};
    use branchd::orders::model::{self, Customer, NewOrder};
    let step = |key: &str| StepSpec {
        key: key.into(),
        name: key.into(),
        customer_label: None,
        sla_s: 600,
        near_pct: 80,
        recall_after_s: 300,
        recall_action: RecallAction::Pool,
    };
    let o = NewOrder {
        id: id.into(),
        business_type: business_type.into(),
        title: "个人开户".into(),
        channel: "app".into(),
        priority: "appointment".into(),
        customer: Customer {
            name: "张三".into(),
            phone: None,
            id_number: None,
        },
        appointment_at: appointment_in_min
            .map(|m| chrono::Utc::now() + chrono::Duration::minutes(m)),
        fields: serde_json::Map::new(),
        steps: vec![step("check"), step("open")],
    };
    b.core()
        .store
        .write(move |tx| model::create(tx, &o, None))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urging_raises_an_orders_priority_and_handing_over_moves_it_to_another_manager() {
    let b = TestBox::start().await;
    booked(&b, "ORD-U", "account_opening", Some(60)).await;
    let lobby = b.login("lobby_manager").await;
    let v = ok_json(post(&lobby, &b, "/api/v1/orders/ORD-U/approve", json!({})).await).await;
    assert_eq!(
        v["assignee"], "lobby_manager",
        "who approves takes the order"
    );
    assert_eq!(v["approved_by"], "lobby_manager");

    let v = ok_json(post(&lobby, &b, "/api/v1/orders/ORD-U/urge", json!({})).await).await;
    assert_eq!(
        (v["priority"].as_str(), v["urges"].as_i64()),
        (Some("urgent"), Some(1))
    );
    let urged: Value = serde_json::from_str(&event_data(&b, "order.urged").await[0]).unwrap();
    assert_eq!(urged["id"], "ORD-U");
    assert_eq!(urged["priority"], "urgent");
    assert_eq!(urged["previous_priority"], "appointment");
    assert_eq!(urged["by"], "lobby_manager");

    // Whom the order can go to: the managers who handle orders, ids and names only.
    let staff = ok_json(
        lobby
            .get(b.url("/api/v1/users/assignable"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let names: Vec<&str> = staff
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["branch_manager", "lobby_manager"]);
    assert_eq!(
        staff[0].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["id", "username"]
    );
    let admin = b.login("device_admin").await;
    let r = admin
        .get(b.url("/api/v1/users/assignable"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = post(&admin, &b, "/api/v1/orders/ORD-U/urge", json!({})).await;
    assert_eq!(r.status(), 403);

    let hand = |to: &str| json!({"to": to});
    let r = post(&lobby, &b, "/api/v1/orders/ORD-U/handover", hand("nobody")).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "unknown_staff");
    let r = post(
        &lobby,
        &b,
        "/api/v1/orders/ORD-U/handover",
        hand("device_admin"),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "not_order_staff");
    let r = post(
        &lobby,
        &b,
        "/api/v1/orders/ORD-U/handover",
        hand("lobby_manager"),
    )
    .await;
    assert_eq!(r.status(), 409, "already theirs");
    let r = post(&lobby, &b, "/api/v1/orders/ORD-U/handover", json!({})).await;
    assert_eq!(r.status(), 400);
    let r = post(
        &lobby,
        &b,
        "/api/v1/orders/ORD-404/handover",
        hand("branch_manager"),
    )
    .await;
    assert_eq!(error_code(r).await, "no_such_order");
    assert!(
        event_data(&b, "order.handed_over").await.is_empty(),
        "nothing refused changed"
    );

    let v = ok_json(
        post(
            &lobby,
            &b,
            "/api/v1/orders/ORD-U/handover",
            hand("branch_manager"),
        )
        .await,
    )
    .await;
    assert_eq!(v["assignee"], "branch_manager");
    let ev: Value = serde_json::from_str(&event_data(&b, "order.handed_over").await[0]).unwrap();
    assert_eq!(ev["id"], "ORD-U");
    assert_eq!(ev["from"], "lobby_manager");
    assert_eq!(ev["to"], "branch_manager");

    // Whoever starts a step takes the order back.
    let v = ok_json(
        post(
            &lobby,
            &b,
            "/api/v1/orders/ORD-U/steps/check/start",
            json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(v["assignee"], "lobby_manager");

    // A closed order is neither urged nor handed over.
    ok_json(post(&lobby, &b, "/api/v1/orders/ORD-U/recall", json!({})).await).await;
    booked(&b, "ORD-R", "account_opening", None).await;
    let r = post(
        &lobby,
        &b,
        "/api/v1/orders/ORD-R/reject",
        json!({"reason": "资料不全"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = post(&lobby, &b, "/api/v1/orders/ORD-R/urge", json!({})).await;
    assert_eq!(error_code(r).await, "invalid_order_state");
    let r = post(
        &lobby,
        &b,
        "/api/v1/orders/ORD-R/handover",
        hand("branch_manager"),
    )
    .await;
    assert_eq!(error_code(r).await, "invalid_order_state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_staff_list_carries_what_the_pads_filters_need() {
    let b = TestBox::start().await;
    booked(&b, "ORD-A", "account_opening", Some(60)).await;
    booked(&b, "ORD-B", "corporate_account", Some(-60)).await;
    booked(&b, "ORD-C", "account_opening", None).await;
    let lobby = b.login("lobby_manager").await;
    ok_json(post(&lobby, &b, "/api/v1/orders/ORD-A/approve", json!({})).await).await;
    // ORD-B's customer is an hour late, past the default 15 min grace: reported once.
    crate::common::wait_until("the late customer reported", 10, || async {
        event_data(&b, "order.overdue").await.len() == 1
    })
    .await;
    let list = ok_json(lobby.get(b.url("/api/v1/orders")).send().await.unwrap()).await;
    let by_id = |id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == id)
            .unwrap()
            .clone()
    };
    let (a, o_b, c) = (by_id("ORD-A"), by_id("ORD-B"), by_id("ORD-C"));
    assert_eq!(
        (a["status"].as_str(), a["assignee"].as_str()),
        (Some("approved"), Some("lobby_manager"))
    );
    assert_eq!(o_b["business_type"], "corporate_account");
    assert_eq!(
        (o_b["overdue"].as_bool(), o_b["late"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(a["overdue"], false);
    assert_eq!(c["assignee"], Value::Null);
    assert!(c["created_at"].is_string() && c["appointment_at"].is_null());
    let alerts = ok_json(lobby.get(b.url("/api/v1/alerts")).send().await.unwrap()).await;
    let text = alerts.to_string();
    assert!(
        text.contains("order.overdue") && text.contains("ORD-B"),
        "{text}"
    );
}

/// 催单 reaches the lobby: the urged order's customer, already waiting with a ticket, moves
/// up one priority step at each urge, up to the highest.
#[tokio::test]
async fn urging_an_order_moves_its_customers_waiting_ticket_up_to_the_top_priority() {
    let b = TestBox::start_with(
        "[[services]]\ncode = \"personal\"\nprefix = \"A\"\nname = \"个人业务\"\n\
         [[counters]]\nid = \"1\"\nservices = [\"personal\"]\n",
    )
    .await;
    booked(&b, "ORD-T", "account_opening", Some(30)).await;
    let lobby = b.login("lobby_manager").await;
    let r = post(
        &lobby,
        &b,
        "/api/v1/tickets",
        json!({"service": "personal", "appointment_id": "ORD-T"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let issued: Value = r.json().await.unwrap();
    let number = issued["number"].as_str().unwrap().to_string();
    let order = || async {
        ok_json(
            lobby
                .get(b.url("/api/v1/orders/ORD-T"))
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    wait_until("the ticket linked to its order", 10, || async {
        order().await["ticket"] == json!(number)
    })
    .await;
    let priority = || async {
        let q = ok_json(lobby.get(b.url("/api/v1/queue")).send().await.unwrap()).await;
        q["waiting"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["number"] == json!(number))
            .map(|t| t["priority"].as_i64().unwrap())
    };
    assert_eq!(priority().await, Some(1), "an appointment's ticket");
    for want in [2, 3, 3] {
        let r = post(&lobby, &b, "/api/v1/orders/ORD-T/urge", json!({})).await;
        assert_eq!(r.status(), 200);
        wait_until(&format!("the ticket at priority {want}"), 10, || async {
            priority().await == Some(want)
        })
        .await;
    }
    // Three urges, two steps: the last found the ticket at the top already.
    let moved: Vec<Value> = event_data(&b, "ticket.urged")
        .await
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(
        moved
            .iter()
            .map(|m| (m["from"].as_i64(), m["priority"].as_i64()))
            .collect::<Vec<_>>(),
        [(Some(1), Some(2)), (Some(2), Some(3))]
    );
    assert_eq!(moved[0]["order"], "ORD-T");
    assert_eq!(moved[0]["number"], json!(number));
    b.stop().await;
}
