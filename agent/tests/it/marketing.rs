//! The lobby's selling half end to end: head office's products, customers, leads and
//! coupons over a real Mosquitto; a product shown on a simulated STM and its sales ranked;
//! customers identified by ID card and ticket, seen only by the roles that serve them; and
//! coupons redeemed with head office down that reach it, gap-free, once it is back.

use branchd::customers::id_hash;
use branchd::rights::token::{Coupon, sign};
use branchd_drivers::idreader::CardText;
use branchd_drivers::idreader::sim::IdReaderSim;
use chrono::NaiveDate;
use ed25519_dalek::SigningKey;
use rumqttc::QoS;
use serde_json::{Value, json};

use crate::common::{TestBox, error_code, wait_until};
use crate::devices::{stm_sim, stm_table};
use crate::mqtt::{BRANCH, Broker, subscriber};

const SALT: &str = "branchd-it-salt-0001";
const WANG_ID: &str = "11010519491231002X";

fn hq_key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

/// `[customers]`, `[rights]` and one service.
fn marketing_tables() -> String {
    format!(
        "\n[customers]\nid_salt = \"{SALT}\"\n\n[rights]\npublic_key = \"{}\"\n\
         \n[[services]]\ncode = \"personal\"\nprefix = \"A\"\nname = \"个人业务\"\n",
        hex::encode(hq_key().verifying_key().to_bytes())
    )
}

fn cmd(id: &str, kind: &str, data: Value) -> Vec<u8> {
    json!({"v": 1, "id": id, "ts": chrono::Utc::now().to_rfc3339(), "kind": kind, "data": data})
        .to_string()
        .into_bytes()
}

/// Apply a head-office command the way the link does; panics unless it is acked ok.
async fn command(b: &TestBox, id: &str, kind: &str, data: Value) {
    let out = branchd::sync::commands::handle(&b.modules().sync, &cmd(id, kind, data))
        .await
        .unwrap();
    assert!(out.ok, "{kind}: {:?}", out.error);
}

fn product(code: &str, sales: u64, channels: &[&str]) -> Value {
    json!({"code": code, "name_zh": "稳利91天", "name_en": "Steady 91", "type": "wealth",
           "return_min_bp": 230, "return_max_bp": 280, "term_days": 91, "min_amount_fen": 1_000_000,
           "risk": "R2", "channels": channels, "sales": sales})
}

fn wang() -> Value {
    json!({"customer_id": "C-1", "id_hash": id_hash(SALT, WANG_ID), "name": "王芳", "level": "vip1",
           "risk_level": "C2", "relationship_manager": "branch_manager"})
}

/// The box's business date: what its "this week" and a coupon's validity are counted from
/// (the branch's date, turning at `[queue] reset_hour`, not at midnight).
fn today(b: &TestBox) -> NaiveDate {
    branchd::clock::business_date(&b.core().cfg, b.core().clock.now())
}

fn coupon(b: &TestBox, id: &str, id_number: &str) -> String {
    sign(
        &hq_key(),
        &Coupon {
            id: id.into(),
            cust: id_hash(SALT, id_number),
            right: "cash_voucher".into(),
            value: 2_000,
            from: today(b) - chrono::Duration::days(2),
            until: today(b) + chrono::Duration::days(2),
        },
    )
}

async fn get(c: &reqwest::Client, b: &TestBox, path: &str) -> Value {
    let r = c.get(b.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.unwrap()
}

async fn post(c: &reqwest::Client, b: &TestBox, path: &str, body: Value) -> reqwest::Response {
    c.post(b.url(path)).json(&body).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_office_commands_fill_the_shelf_and_bad_ones_name_their_problems() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), "");
    let (seen, hq) = subscriber(broker.port, None);
    seen.subscribed().await;
    let b = TestBox::start_with(&format!(
        "{}\n[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nkeep_alive_s = 5\n",
        marketing_tables(),
        broker.port
    ))
    .await;
    seen.wait_online().await;
    let topic = format!("bank/{BRANCH}/cmd");
    let sends = [
        cmd(
            "p-1",
            "product.upsert",
            product("WM-91", 10, &["stm", "pad"]),
        ),
        cmd(
            "p-2",
            "product.upsert",
            json!({"code": "X", "type": "bond", "risk": "R9"}),
        ),
        cmd("c-1", "customer.upsert", wang()),
        cmd(
            "c-2",
            "customer.upsert",
            json!({"customer_id": "C-2", "name": "李", "id_number": "321083197812162119"}),
        ),
        cmd(
            "l-1",
            "lead.push",
            json!({"lead_id": "L-1", "customer_id": "C-1", "product": "WM-91",
            "reason": "deposit_maturing", "expires_at": "2099-01-01T00:00:00Z"}),
        ),
        cmd(
            "l-2",
            "lead.push",
            json!({"lead_id": "L-2", "customer_id": "C-1", "product": "WM-91",
            "reason": "deposit_maturing", "expires_at": "2001-01-01T00:00:00Z"}),
        ),
        cmd(
            "r-1",
            "rights.grant",
            json!({"token": coupon(&b, "CP-1", WANG_ID)}),
        ),
        cmd(
            "r-2",
            "rights.grant",
            json!({"token": sign(&SigningKey::from_bytes(&[1; 32]),
            &Coupon { id: "CP-X".into(), cust: id_hash(SALT, WANG_ID), right: "gift".into(), value: 1,
                      from: today(&b), until: today(&b) })}),
        ),
        cmd("r-3", "rights.revoke", json!({"ids": ["CP-9"]})),
        cmd("p-3", "product.delete", json!({"code": "NOPE"})),
    ];
    for p in sends {
        hq.publish(&topic, QoS::AtLeastOnce, false, p)
            .await
            .unwrap();
    }
    seen.wait_for("ten acks", 20, |s| s.on("/events/ack").len() >= 10)
        .await;
    let acks: Vec<Value> = seen
        .on("/events/ack")
        .iter()
        .map(|e| e["data"].clone())
        .collect();
    let ack = |r: &str| acks.iter().find(|a| a["ref"] == r).cloned().unwrap();
    for ok in ["p-1", "c-1", "l-1", "r-1", "r-3", "p-3"] {
        assert_eq!(ack(ok)["ok"], json!(true), "{ok}: {}", ack(ok));
    }
    let reason = |r: &str| ack(r)["error"].as_str().unwrap_or_default().to_string();
    let p2 = reason("p-2");
    for want in [
        "`name_zh` is required",
        "`type` must be one of deposit, wealth, fund, insurance, loan",
        "`risk` must be one of R1",
        "`channels` is required",
    ] {
        assert!(p2.contains(want), "{p2} lacks {want}");
    }
    assert!(
        reason("c-2").contains("unknown key `id_number`"),
        "{}",
        reason("c-2")
    );
    assert!(reason("l-2").contains("already past"), "{}", reason("l-2"));
    assert!(
        reason("r-2").contains("not head office's"),
        "{}",
        reason("r-2")
    );

    let lobby = b.login("lobby_manager").await;
    let shelf = get(&lobby, &b, "/api/v1/products?type=wealth").await;
    assert_eq!(shelf["products"][0]["code"], json!("WM-91"));
    assert_eq!(shelf["products"][0]["risk"], json!("R2"));
    let suit = get(&lobby, &b, "/api/v1/products?customer_id=C-1").await;
    assert_eq!(
        suit["products"][0]["suitability"]["verdict"],
        json!("suitable")
    );
    let leads = get(&lobby, &b, "/api/v1/leads?customer_id=C-1").await;
    assert_eq!(leads["leads"].as_array().unwrap().len(), 1);
    assert_eq!(leads["leads"][0]["customer_name"], json!("王芳"));
    let rights = get(&lobby, &b, "/api/v1/rights?customer_id=C-1").await;
    assert_eq!(rights["rights"][0]["coupon_id"], json!("CP-1"));
    // Nothing of the customer's identity travels to head office in the events.
    let published = seen.all_text();
    assert!(!published.contains("王芳") && !published.contains(&id_hash(SALT, WANG_ID)));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coupons_redeemed_with_head_office_down_reach_it_gap_free_once_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path(), "");
    let (seen, _hq) = subscriber(broker.port, None);
    seen.subscribed().await;
    let b = TestBox::start_with(&format!(
        "{}\n[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nkeep_alive_s = 5\n",
        marketing_tables(),
        broker.port
    ))
    .await;
    seen.wait_online().await;
    command(&b, "c-1", "customer.upsert", wang()).await;
    command(
        &b,
        "c-2",
        "customer.upsert",
        json!({"customer_id": "C-2", "name": "李建国",
        "id_hash": id_hash(SALT, "321083197812162119")}),
    )
    .await;
    command(
        &b,
        "l-1",
        "lead.push",
        json!({"lead_id": "L-1", "customer_id": "C-1", "product": "WM-91",
        "reason": "deposit_maturing", "expires_at": "2099-01-01T00:00:00Z"}),
    )
    .await;
    seen.wait_for_kind("lead.received").await;

    // Head office goes away; the lobby carries on.
    broker.stop();
    let lobby = b.login("lobby_manager").await;
    let first = coupon(&b, "CP-1", WANG_ID);
    let r = post(
        &lobby,
        &b,
        "/api/v1/rights/check",
        json!({"code": first, "customer_id": "C-1"}),
    )
    .await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], json!("valid"));
    let r = post(
        &lobby,
        &b,
        "/api/v1/rights/redeem",
        json!({"code": first, "customer_id": "C-1"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let again = post(
        &lobby,
        &b,
        "/api/v1/rights/redeem",
        json!({"code": first, "customer_id": "C-1"}),
    )
    .await;
    assert_eq!(
        (again.status().as_u16(), error_code(again).await),
        (409, "coupon_redeemed".into())
    );
    let other = post(
        &lobby,
        &b,
        "/api/v1/rights/redeem",
        json!({"code": coupon(&b, "CP-2", WANG_ID), "customer_id": "C-2"}),
    )
    .await;
    assert_eq!(
        (other.status().as_u16(), error_code(other).await),
        (422, "coupon_wrong_customer".into())
    );
    let r = post(
        &lobby,
        &b,
        "/api/v1/rights/redeem",
        json!({"code": coupon(&b, "CP-3", "321083197812162119"), "customer_id": "C-2"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = post(
        &lobby,
        &b,
        "/api/v1/leads/L-1/feedback",
        json!({"outcome": "interested", "note": "下周再来"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let depth = b
        .core()
        .store
        .read(branchd::store::outbox_depth)
        .await
        .unwrap();
    assert!(depth >= 3, "the redemptions wait in the outbox ({depth})");

    // Back: every event, in order, none missing; both redemptions and the answer arrive.
    broker.restart();
    let last = *b.core().store.committed().borrow();
    seen.wait_for("every event up to the redemptions", 30, |s| {
        s.events().iter().max().copied() >= Some(last)
    })
    .await;
    let mut first_seen = Vec::new();
    for s in seen.events() {
        if !first_seen.contains(&s) {
            first_seen.push(s);
        }
    }
    assert_eq!(
        first_seen,
        (1..=last).collect::<Vec<u64>>(),
        "gap-free and in order"
    );
    let of_kind = |k: &str| -> Vec<Value> {
        let mut out: Vec<Value> = Vec::new();
        for e in seen.on("").into_iter().filter(|e| e["kind"] == k) {
            // at-least-once: a redelivery has the same seq
            if !out.iter().any(|o| o["seq"] == e["seq"]) {
                out.push(e);
            }
        }
        out
    };
    let redeemed: Vec<Value> = of_kind("rights.redeemed")
        .iter()
        .map(|e| e["data"].clone())
        .collect();
    let ids: Vec<&str> = redeemed
        .iter()
        .filter_map(|d| d["coupon_id"].as_str())
        .collect();
    assert_eq!(
        ids,
        ["CP-1", "CP-3"],
        "each redemption once, for reconciliation"
    );
    assert_eq!(redeemed[0]["value"], json!(2_000));
    assert_eq!(redeemed[0]["by"], json!("lobby_manager"));
    let fb = of_kind("lead.feedback");
    assert_eq!(fb.len(), 1);
    assert_eq!(
        (
            fb[0]["data"]["lead_id"].as_str(),
            fb[0]["data"]["outcome"].as_str()
        ),
        (Some("L-1"), Some("interested"))
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_shown_on_an_stm_reaches_its_screen_and_its_sales_raise_its_rank() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, link) = stm_sim(&dir, "STM-01", 3);
    let b = TestBox::start_with(&format!(
        "{}{}\n[stm]\ncommand_timeout_s = 2\n",
        stm_table("STM-01", &link),
        marketing_tables()
    ))
    .await;
    command(
        &b,
        "p-1",
        "product.upsert",
        product("WM-91", 10, &["stm", "pad"]),
    )
    .await;
    let mut counter_only = product("WM-365", 11, &["counter"]);
    counter_only["code"] = json!("WM-365");
    command(&b, "p-2", "product.upsert", counter_only).await;
    let lobby = b.login("lobby_manager").await;
    let admin = b.login("device_admin").await;
    wait_until("STM-01 online", 10, || async {
        get(&admin, &b, "/api/v1/devices")
            .await
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == "STM-01" && d["online"] == true)
    })
    .await;
    let stms = get(&lobby, &b, "/api/v1/shelf/stms").await;
    assert_eq!(stms, json!({"stms": [{"id": "STM-01", "online": true}]}));
    let rank = |v: &Value, code: &str| {
        v["products"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["code"] == code)
            .unwrap()["rank"]
            .clone()
    };
    let shelf = get(&lobby, &b, "/api/v1/products").await;
    assert_eq!(
        (rank(&shelf, "WM-365"), rank(&shelf, "WM-91")),
        (json!(1), json!(2))
    );

    let r = post(
        &lobby,
        &b,
        "/api/v1/products/WM-91/show",
        json!({"device": "STM-01", "ticket": "A007"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"device": "STM-01", "product": "WM-91", "showing": "WM-91"})
    );
    let rec = sim.record();
    assert_eq!(rec.showing(), Some("WM-91"), "the simulator shows it");
    let card = &rec.shown[0];
    assert_eq!(
        (
            card.product.return_min_bp,
            card.product.risk.as_str(),
            card.ticket.as_deref()
        ),
        (Some(230), "R2", Some("A007"))
    );
    let refusals = [
        ("WM-365", "STM-01", 409, "not_on_stm"),
        ("WM-91", "STM-99", 404, "device_not_found"),
        ("NOPE", "STM-01", 404, "product_unknown"),
    ];
    for (code, device, status, want) in refusals {
        let r = post(
            &lobby,
            &b,
            &format!("/api/v1/products/{code}/show"),
            json!({"device": device}),
        )
        .await;
        assert_eq!(
            (r.status().as_u16(), error_code(r).await),
            (status, want.to_string()),
            "{code} on {device}"
        );
    }
    // The op is a remote command too, checked before it is sent.
    let r = post(
        &admin,
        &b,
        "/api/v1/devices/STM-01/commands",
        json!({"op": "show_product", "args": {}}),
    )
    .await;
    assert_eq!(
        (r.status().as_u16(), error_code(r).await),
        (400, "invalid_command".to_string())
    );
    assert_eq!(
        sim.record().shown.len(),
        1,
        "a bad card never reaches the STM"
    );
    let supervisor = b.login("supervisor").await;
    let r = post(
        &supervisor,
        &b,
        "/api/v1/products/WM-91/show",
        json!({"device": "STM-01"}),
    )
    .await;
    assert_eq!(r.status(), 403);

    // Two sales at the STM: 10 + 2 outranks head office's 11 for the other product.
    sim.sale("WM-91", 50_000);
    sim.sale("WM-91", 20_000);
    wait_until("the branch's sales counted", 10, || async {
        let shelf = get(&lobby, &b, "/api/v1/products").await;
        rank(&shelf, "WM-91") == json!(1)
    })
    .await;
    let p = get(&lobby, &b, "/api/v1/products/WM-91").await;
    assert_eq!(
        (
            p["branch_sales"].clone(),
            p["branch_amount"].clone(),
            p["sales"].clone()
        ),
        (json!(2), json!(70_000), json!(12))
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_identified_by_card_and_ticket_show_with_their_leads_to_the_serving_roles_only() {
    let reader = IdReaderSim::spawn(None).expect("reader simulator");
    let b = TestBox::start_with(&format!(
        "{}\n[[devices]]\nid = \"IDR-01\"\nkind = \"id_reader\"\npath = \"{}\"\n\n[id_reader]\npoll_ms = 100\n",
        marketing_tables(),
        reader.path().display()
    ))
    .await;
    // 张三's card is on the demo reader; head office knows him by its hash only.
    command(&b, "c-1", "customer.upsert", json!({"customer_id": "C-3", "name": "张三", "level": "normal",
        "id_hash": id_hash(SALT, &CardText::sample().id_number), "relationship_manager": "branch_manager",
        "birthday": today(&b).format("%m-%d").to_string()})).await;
    command(&b, "c-2", "customer.upsert", wang()).await;
    command(
        &b,
        "l-1",
        "lead.push",
        json!({"lead_id": "L-3", "customer_id": "C-3", "product": "LN-CAR",
        "reason": "loan_need", "expires_at": "2099-01-01T00:00:00Z"}),
    )
    .await;
    let lobby = b.login("lobby_manager").await;
    reader.put_card(CardText::sample(), Vec::new());
    wait_until("张三 in the branch", 10, || async {
        get(&lobby, &b, "/api/v1/customers/present").await["customers"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    })
    .await;
    let r = post(
        &lobby,
        &b,
        "/api/v1/tickets",
        json!({"service": "personal", "customer_id": "C-1"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    wait_until("王芳 in the branch", 10, || async {
        get(&lobby, &b, "/api/v1/customers/present").await["customers"]
            .as_array()
            .is_some_and(|c| c.len() == 2)
    })
    .await;
    let list = get(&lobby, &b, "/api/v1/customers/present").await;
    // His swipe also took him a ticket, which carries his customer id.
    let zhang = &list["customers"][0];
    assert_eq!(
        (
            zhang["name"].as_str(),
            zhang["ticket"].as_str(),
            zhang["state"].as_str()
        ),
        (Some("张三"), Some("A001"), Some("waiting"))
    );
    let mut via: Vec<String> = serde_json::from_value(zhang["via"].clone()).unwrap();
    via.sort();
    assert_eq!(via, ["id_card", "ticket"]);
    assert_eq!(zhang["marks"][0]["kind"], json!("birthday"));
    let wang = &list["customers"][1];
    assert_eq!(
        (
            wang["name"].as_str(),
            wang["ticket"].as_str(),
            wang["state"].as_str()
        ),
        (Some("王芳"), Some("A002"), Some("waiting"))
    );
    let found = get(&lobby, &b, "/api/v1/customers/present?q=%E7%8E%8B").await;
    assert_eq!(found["customers"].as_array().unwrap().len(), 1, "search 王");
    let found = get(
        &lobby,
        &b,
        "/api/v1/customers/present?ticket=with&level=vip1",
    )
    .await;
    assert_eq!(found["customers"][0]["customer_id"], json!("C-1"));
    // The arrival of a customer with an open lead tells the relationship manager by name.
    wait_until("the lead alert", 10, || async {
        get(&lobby, &b, "/api/v1/alerts")
            .await
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "lead.customer_arrived")
    })
    .await;
    let alerts = get(&lobby, &b, "/api/v1/alerts").await;
    let alert = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "lead.customer_arrived")
        .unwrap();
    assert_eq!(alert["data"]["notify"]["users"], json!(["branch_manager"]));
    assert_eq!(alert["data"]["leads"][0]["lead_id"], json!("L-3"));
    let rm = b.login("branch_manager").await;
    let mine = get(&rm, &b, "/api/v1/leads?mine=true").await;
    assert_eq!(mine["leads"][0]["lead_id"], json!("L-3"));
    // Personal data: not for the device admin or the supervisor.
    for user in ["device_admin", "supervisor"] {
        let c = b.login(user).await;
        for path in [
            "/api/v1/customers/present",
            "/api/v1/leads",
            "/api/v1/rights",
        ] {
            let r = c.get(b.url(path)).send().await.unwrap();
            assert_eq!(r.status(), 403, "{user} on {path}");
        }
    }
    // The events name customers by id only: no name, no ID number, no hash.
    let evs = b.core().store.events_after(0, 10_000).await.unwrap();
    for e in evs.iter().filter(|e| e.kind.starts_with("customer")) {
        let t = e.data.to_string();
        assert!(
            !t.contains("张三") && !t.contains("321083") && !t.contains(&id_hash(SALT, WANG_ID)),
            "{t}"
        );
    }
    b.stop().await;
}

#[tokio::test]
async fn a_card_swipe_by_a_customer_head_office_ranks_vip_takes_a_ticket_with_that_priority() {
    let b = TestBox::start_with(&marketing_tables()).await;
    // Head office knows 王芳 by the salted hash of her ID number, at level vip2; she has no
    // VIP record (no photo) on this box.
    let mut her = wang();
    her["level"] = json!("vip2");
    command(&b, "c-1", "customer.upsert", her).await;
    let mut bus = b.core().store.subscribe();
    for (id_number, name) in [(WANG_ID, "王芳"), ("110105194912310021", "李四")] {
        b.core()
            .signals
            .send(branchd::signals::Signal::CardSwiped {
                reader: "IDR-01".into(),
                id_number: id_number.into(),
                name: name.into(),
                valid: true,
            })
            .unwrap();
    }
    let mut issued = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while issued.len() < 2 {
            let e = bus.recv().await.unwrap();
            if e.kind == "ticket.issued" {
                issued.push(e.data.clone());
            }
        }
    })
    .await
    .expect("a ticket for each swipe");
    // (customer id, level, priority) of each ticket, in the order of the swipes.
    let seen: Vec<_> = issued
        .iter()
        .map(|d| {
            (
                d["customer_id"].clone(),
                d["customer_level"].clone(),
                d["priority"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (json!("C-1"), json!("vip2"), json!(2)),
            (Value::Null, Value::Null, json!(0)),
        ]
    );
    b.stop().await;
}
