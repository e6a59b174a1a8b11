//! The customer's page of their visit: the receipt of a delivered order and the ticket carry
//! a QR code with a signed link; the public page shows milestones only, takes one rating,
//! refuses altered and expired links, and slows down a client that asks too often.

use std::time::Duration;

use branchd::queue::link::{self, Kind, Link};
use branchd_drivers::printer::TextEncoding;
use branchd_drivers::printer::sim::PrinterSim;
use serde_json::{Value, json};

use crate::common::{TestBox, error_code, events, wait_until};

const LOBBY: &str = r#"
[[services]]
code = "personal"
prefix = "A"
name = "个人业务"
name_en = "Personal banking"

[[counters]]
id = "1"
services = ["personal"]

[queue]
printer_poll_ms = 100
"#;

async fn lobby_with_printer() -> (TestBox, PrinterSim) {
    let sim = PrinterSim::spawn(TextEncoding::Gb18030, None).unwrap();
    let extra = format!(
        "{LOBBY}\n[[devices]]\nid = \"PRN-01\"\nkind = \"printer\"\npath = \"{}\"\n",
        sim.path().display()
    );
    (TestBox::start_with(&extra).await, sim)
}

async fn post(c: &reqwest::Client, b: &TestBox, path: &str, body: Value) -> reqwest::Response {
    c.post(b.url(path)).json(&body).send().await.unwrap()
}

async fn ok(r: reqwest::Response) -> Value {
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{status}: {v}");
    v
}

/// The token at the end of a QR code's URL.
fn token_of(qr: &str) -> String {
    let (base, token) = qr.rsplit_once("/c/").expect("a customer page URL");
    assert_eq!(base, "http://127.0.0.1:0", "the configured public URL");
    token.to_string()
}

/// An order of two steps for a customer, created as head office would.
async fn book(b: &TestBox, id: &str) {
    use branchd::config::orders::{RecallAction, StepSpec};
    use branchd::orders::model::{self, Customer, NewOrder};
    let step = |key: &str, label: Option<&str>| StepSpec {
        key: key.into(),
        name: format!("staff name of {key}"),
        customer_label: label.map(String::from),
        sla_s: 600,
        near_pct: 80,
        recall_after_s: 300,
        recall_action: RecallAction::Pool,
    };
    let o = NewOrder {
        id: id.into(),
        business_type: "account_opening".into(),
        title: "个人开户".into(),
        channel: "app".into(),
        priority: "appointment".into(),
        customer: Customer {
            name: "张三".into(),
            phone: Some("13800000000".into()),
            id_number: None,
        },
        appointment_at: None,
        fields: serde_json::Map::new(),
        steps: vec![step("check", Some("核对证件")), step("open", None)],
    };
    b.core()
        .store
        .write(move |tx| model::create(tx, &o, None))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivered_orders_receipt_opens_a_page_of_milestones_that_takes_one_rating() {
    let (b, sim) = lobby_with_printer().await;
    book(&b, "ORD-7").await;
    let staff = b.login("lobby_manager").await;
    ok(post(&staff, &b, "/api/v1/orders/ORD-7/approve", json!({})).await).await;
    for key in ["check", "open"] {
        for action in ["start", "finish"] {
            ok(post(
                &staff,
                &b,
                &format!("/api/v1/orders/ORD-7/steps/{key}/{action}"),
                json!({"note": "internal note: call back the branch manager"}),
            )
            .await)
            .await;
        }
    }
    let public = TestBox::client();
    // Before delivery the customer's page shows where the order is, and takes no rating.
    let (token, _) = b
        .modules()
        .queue
        .customer_url(Kind::Order, "ORD-7", b.core().clock.now())
        .await
        .unwrap();
    let r = post(
        &public,
        &b,
        &format!("/api/v1/public/c/{token}/rating"),
        json!({"score": 5}),
    )
    .await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "not_ratable_yet");

    ok(post(&staff, &b, "/api/v1/orders/ORD-7/deliver", json!({})).await).await;

    // The receipt comes out of the printer with the order, its steps and the QR code.
    assert!(
        sim.wait_for(Duration::from_secs(10), |r| !r.tickets.is_empty()),
        "no receipt printed"
    );
    let receipt = sim.record().tickets[0].clone();
    let text = receipt.text();
    for want in [
        "业务回单 / Receipt",
        "单号 / Order: ORD-7",
        "个人开户 (account_opening)",
        "核对证件",
        "staff name of open",
        "办结 / Delivered:",
    ] {
        assert!(
            text.contains(want),
            "{want} missing from the receipt:\n{text}"
        );
    }
    assert!(!text.contains("lobby_manager"), "{text}");
    assert_eq!(receipt.qr.len(), 1);
    let token = token_of(&receipt.qr[0]);

    // The QR code's address leads into the app's customer page.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect
        .get(b.url(&format!("/c/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], format!("/#/c/{token}"));

    // The page, without a session: milestones as codes, head office's labels, no staff.
    let page = ok(public
        .get(b.url(&format!("/api/v1/public/c/{token}")))
        .send()
        .await
        .unwrap())
    .await;
    assert_eq!(page["kind"], "order");
    assert_eq!(page["status"], "delivered");
    assert_eq!(page["can_rate"], true);
    let codes: Vec<&str> = page["milestones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["received", "approved", "step", "step", "delivered"]);
    assert_eq!(page["milestones"][2]["label"], "核对证件");
    assert!(
        page["milestones"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["state"] == "done" && m["at"].is_string()),
        "{page}"
    );
    let body = page.to_string();
    for staff_data in [
        "lobby_manager",
        "assignee",
        "_by",
        "internal note",
        "张三",
        "13800000000",
        "sla",
        "elapsed",
        "timeout",
        "reason",
    ] {
        assert!(
            !body.contains(staff_data),
            "`{staff_data}` on the customer page: {body}"
        );
    }

    // Rated once; the rating goes to head office with its tags.
    let rated = ok(post(
        &public,
        &b,
        &format!("/api/v1/public/c/{token}/rating"),
        json!({"score": 4, "tags": ["quick", "friendly"]}),
    )
    .await)
    .await;
    assert_eq!(rated["rating"]["score"], 4);
    assert_eq!(rated["can_rate"], false);
    let r = post(
        &public,
        &b,
        &format!("/api/v1/public/c/{token}/rating"),
        json!({"score": 1}),
    )
    .await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "already_rated");
    let r = post(
        &public,
        &b,
        &format!("/api/v1/public/c/{token}/rating"),
        json!({"score": 3, "tags": ["rude"]}),
    )
    .await;
    assert_eq!(r.status(), 400, "an unknown tag");
    let ratings = events(&b, "order.rated").await;
    assert_eq!(
        ratings,
        [json!({"id": "ORD-7", "score": 4, "commented": false,
                "tags": ["quick", "friendly"], "closed": true})]
    );
    // The staff see the rating too.
    let v = ok(staff
        .get(b.url("/api/v1/orders/ORD-7"))
        .send()
        .await
        .unwrap())
    .await;
    assert_eq!(v["rating"]["score"], 4);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tickets_qr_opens_its_page_and_it_is_rated_once_after_it_is_served() {
    let (b, sim) = lobby_with_printer().await;
    let staff = b.login("lobby_manager").await;
    let t = ok(post(
        &staff,
        &b,
        "/api/v1/tickets",
        json!({"service": "personal"}),
    )
    .await)
    .await;
    assert_eq!(t["printed"], true, "{t}");
    let token = token_of(&sim.record().tickets[0].qr[0]);
    let public = TestBox::client();
    let page_url = b.url(&format!("/api/v1/public/c/{token}"));
    let rating_url = format!("/api/v1/public/c/{token}/rating");

    let page = ok(public.get(&page_url).send().await.unwrap()).await;
    assert_eq!(page["kind"], "ticket");
    assert_eq!(page["number"], "A001");
    assert_eq!(page["service"]["name_en"], "Personal banking");
    assert_eq!(page["milestones"][0]["code"], "issued");
    assert_eq!(page["milestones"][1]["state"], "current");
    assert_eq!(page["can_rate"], false);
    let r = post(&public, &b, &rating_url, json!({"score": 5})).await;
    assert_eq!(r.status(), 409, "not served yet");
    assert_eq!(error_code(r).await, "not_ratable_yet");

    ok(post(&staff, &b, "/api/v1/counters/1/open", json!({})).await).await;
    ok(post(&staff, &b, "/api/v1/counters/1/call-next", json!({})).await).await;
    ok(post(&staff, &b, "/api/v1/tickets/A001/serve-done", json!({})).await).await;

    let page = ok(public.get(&page_url).send().await.unwrap()).await;
    assert_eq!(
        page["milestones"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["code"].as_str().unwrap(), m["state"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        [("issued", "done"), ("called", "done"), ("served", "done")]
    );
    assert!(!page.to_string().contains("lobby_manager"), "{page}");
    assert_eq!(page["can_rate"], true);
    let rated = ok(post(
        &public,
        &b,
        &rating_url,
        json!({"score": 5, "tags": ["clear"]}),
    )
    .await)
    .await;
    assert_eq!(rated["rating"]["score"], 5);
    let r = post(&public, &b, &rating_url, json!({"score": 5})).await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "already_rated");
    let ev = events(&b, "ticket.rated").await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["number"], "A001");
    assert_eq!(ev[0]["score"], 5);
    assert_eq!(ev[0]["tags"], json!(["clear"]));
    assert_eq!(ev[0]["counter"], "1");
    // The rating ends the visit the ticket began.
    let issued = events(&b, "ticket.issued").await;
    assert!(issued[0]["visit_id"].is_string());
    assert_eq!(ev[0]["visit_id"], issued[0]["visit_id"]);

    // The staff get the same page's link for a counter PAD's rating sheet.
    let l = ok(staff
        .get(b.url("/api/v1/customer-link?ticket=A001"))
        .send()
        .await
        .unwrap())
    .await;
    assert_eq!(l["kind"], "ticket");
    assert!(
        l["url"]
            .as_str()
            .unwrap()
            .ends_with(l["token"].as_str().unwrap())
    );
    let r = staff
        .get(b.url("/api/v1/customer-link?ticket=A999"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = staff
        .get(b.url("/api/v1/customer-link"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    b.stop().await;
}

#[tokio::test]
async fn altered_forged_and_expired_links_open_nothing() {
    let b = TestBox::start_with(LOBBY).await;
    book(&b, "ORD-8").await;
    let public = TestBox::client();
    let now = b.core().clock.now();
    let (token, l) = b
        .modules()
        .queue
        .customer_url(Kind::Order, "ORD-8", now)
        .await
        .unwrap();
    assert!(l.expires > now);
    let page = |t: String| {
        let public = public.clone();
        let url = b.url(&format!("/api/v1/public/c/{t}"));
        async move { public.get(url).send().await.unwrap() }
    };
    assert_eq!(page(token.clone()).await.status(), 200);

    // Any changed character: unknown.
    let mut changed = token.clone().into_bytes();
    let i = changed.len() / 2;
    changed[i] = if changed[i] == b'A' { b'B' } else { b'A' };
    let r = page(String::from_utf8(changed).unwrap()).await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "link_unknown");
    // Signed under another key: unknown.
    let forged = link::sign(
        b"not this box's key, though well formed",
        &Link {
            kind: Kind::Order,
            id: "ORD-8".into(),
            expires: now + chrono::Duration::hours(1),
        },
    );
    let r = page(forged).await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "link_unknown");
    // Genuine, for an order that does not exist: unknown.
    let key = b.modules().queue.link_key().await.unwrap();
    let ghost = link::sign(
        &key,
        &Link {
            kind: Kind::Order,
            id: "ORD-404".into(),
            expires: now + chrono::Duration::hours(1),
        },
    );
    assert_eq!(page(ghost).await.status(), 404);
    // Genuine, but its business day is over: gone.
    let old = link::sign(
        &key,
        &Link {
            kind: Kind::Order,
            id: "ORD-8".into(),
            expires: now - chrono::Duration::seconds(1),
        },
    );
    let r = page(old.clone()).await;
    assert_eq!(r.status(), 410);
    assert_eq!(error_code(r).await, "link_expired");
    let r = post(
        &public,
        &b,
        &format!("/api/v1/public/c/{old}/rating"),
        json!({"score": 5}),
    )
    .await;
    assert_eq!(r.status(), 410);
    assert!(events(&b, "order.rated").await.is_empty());
    b.stop().await;
}

#[tokio::test]
async fn a_client_asking_too_often_is_told_when_to_come_back() {
    let b = TestBox::start_with(LOBBY).await;
    let public = TestBox::client();
    let url = b.url("/api/v1/public/c/nothing-here");
    let burst = branchd::queue::visit::BURST;
    for _ in 0..burst {
        assert_eq!(public.get(&url).send().await.unwrap().status(), 404);
    }
    let r = public.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=branchd::queue::visit::REFILL.as_secs()).contains(&after));
    assert_eq!(error_code(r).await, "rate_limited");
    // The staff's routes are not counted against the customers' budget.
    let staff = b.login("lobby_manager").await;
    assert_eq!(
        staff
            .get(b.url("/api/v1/queue"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    wait_until("a request is allowed again", 10, || async {
        public.get(&url).send().await.unwrap().status() == 404
    })
    .await;
    b.stop().await;
}
