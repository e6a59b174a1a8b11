//! OCR back-fill (反填) into an order's customer section through the staff API: what is
//! stored, shown, announced and audited, and what is refused.

use serde_json::{Value, json};

use branchd::config::orders::{RecallAction, StepSpec};
use branchd::orders::model::{self, Customer, NewOrder};
use branchd::store::StoreError;

use crate::common::{TestBox, error_code, event_data};

const NAME: &str = "李秀英";
const ID_NUMBER: &str = "321083197812162119";
const ADDRESS: &str = "江苏省兴化市昭阳镇英武路1号";

fn order(id: &str) -> NewOrder {
    NewOrder {
        id: id.into(),
        business_type: "account_opening".into(),
        title: "个人开户".into(),
        channel: "app".into(),
        priority: "appointment".into(),
        customer: Customer {
            name: "李女士".into(),
            phone: None,
            id_number: None,
        },
        appointment_at: None,
        fields: serde_json::Map::new(),
        steps: vec![StepSpec {
            key: "document_check".into(),
            name: "证件核验".into(),
            customer_label: None,
            sla_s: 600,
            near_pct: 80,
            recall_after_s: 300,
            recall_action: RecallAction::Pool,
        }],
    }
}

/// Head office's orders `ORD-OPEN` (open) and `ORD-REJECTED` (closed).
async fn booked(b: &TestBox) {
    b.core()
        .store
        .write(|tx| {
            model::create(tx, &order("ORD-OPEN"), None)?;
            model::create(tx, &order("ORD-REJECTED"), None)?;
            model::reject(tx, "ORD-REJECTED", "lobby_manager", "证件不全")
        })
        .await
        .unwrap();
}

fn front() -> Value {
    json!({
        "name": {"value": NAME, "source": "chip"},
        "gender": {"value": "女", "source": "photo"},
        "address": {"value": ADDRESS, "source": "photo", "edited": true},
        "id_number": {"value": ID_NUMBER, "source": "chip"},
        "valid_to": {"value": "长期", "source": "photo"},
    })
}

async fn fill(c: &reqwest::Client, b: &TestBox, id: &str, body: Value) -> reqwest::Response {
    c.post(b.url(&format!("/api/v1/orders/{id}/customer")))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn audit_of(b: &TestBox, action: &'static str) -> Vec<(String, String, String)> {
    b.core()
        .store
        .read(move |c| {
            let mut st =
                c.prepare("SELECT actor, target, detail FROM audit WHERE action = ?1 ORDER BY id")?;
            let rows = st.query_map([action], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok::<_, StoreError>(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_id_card_fills_the_order_customer_with_sources_audit_and_no_values_upstream() {
    let b = TestBox::start().await;
    booked(&b).await;
    let c = b.login("lobby_manager").await;

    let r = fill(
        &c,
        &b,
        "ORD-OPEN",
        json!({"fields": front(), "ocr_id": "01JOCRRESULT"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    // The staff view shows the filled section: each value with its source; the ID number
    // masked as the order's own is.
    let filled = &v["customer"]["filled"];
    assert_eq!(
        filled["fields"]["name"],
        json!({"value": NAME, "source": "chip"})
    );
    assert_eq!(
        filled["fields"]["address"],
        json!({"value": ADDRESS, "source": "photo", "edited": true})
    );
    assert_eq!(filled["fields"]["id_number"]["value"], "3210**********2119");
    assert_eq!(filled["fields"]["valid_to"]["value"], "长期");
    assert_eq!(filled["by"], "lobby_manager");
    assert_eq!(filled["ocr_id"], "01JOCRRESULT");
    assert_eq!(v["status"], "created", "filling changes no state: {v}");

    // The back side later: added to the front's fields, a field given again replaced.
    let r = fill(
        &c,
        &b,
        "ORD-OPEN",
        json!({"fields": {"issuing_authority": {"value": "兴化市公安局", "source": "photo"},
                          "valid_to": {"value": "2035-03-01", "source": "chip"}}}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let fields = &v["customer"]["filled"]["fields"];
    assert_eq!(fields["name"]["value"], NAME);
    assert_eq!(
        fields["valid_to"],
        json!({"value": "2035-03-01", "source": "chip"})
    );
    assert_eq!(fields["issuing_authority"]["source"], "photo");

    // Head office hears which fields came from where, never a value.
    let events = event_data(&b, "order.customer_filled").await;
    assert_eq!(events.len(), 2);
    for e in &events {
        for secret in [NAME, ID_NUMBER, ADDRESS, "兴化市公安局", "2035-03-01"] {
            assert!(!e.contains(secret), "{e} leaks {secret}");
        }
    }
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["id"], "ORD-OPEN");
    assert_eq!(
        first["fields"],
        json!(["address", "gender", "id_number", "name", "valid_to"])
    );
    assert_eq!(first["sources"]["name"], "chip");
    assert_eq!(first["sources"]["address"], "photo");
    assert_eq!(first["edited"], json!(["address"]));
    assert_eq!(first["ocr_id"], "01JOCRRESULT");
    assert_eq!(first["by"], "lobby_manager");

    // The audit trail: who filled which fields from which source, without the values.
    let audit = audit_of(&b, "order.customer_fill").await;
    assert_eq!(audit.len(), 2);
    let (actor, target, detail) = &audit[0];
    assert_eq!(
        (actor.as_str(), target.as_str()),
        ("lobby_manager", "ORD-OPEN")
    );
    let detail: Value = serde_json::from_str(detail).unwrap();
    assert_eq!(detail["sources"]["id_number"], "chip");
    assert_eq!(detail["sources"]["gender"], "photo");
    for secret in [NAME, ID_NUMBER, ADDRESS] {
        assert!(!audit[0].2.contains(secret), "audit leaks {secret}");
    }

    // The customer's view of the order never shows them.
    let r = c
        .get(b.url("/api/v1/orders/ORD-OPEN?view=customer"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    for secret in [NAME, "3210", ADDRESS, "兴化市公安局", "filled", "chip"] {
        assert!(
            !text.contains(secret),
            "the customer view shows {secret}: {text}"
        );
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_into_an_unknown_or_closed_order_or_with_bad_fields_is_refused_and_changes_nothing()
{
    let b = TestBox::start().await;
    booked(&b).await;
    let c = b.login("branch_manager").await;

    let r = fill(&c, &b, "ORD-NONE", json!({"fields": front()})).await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "no_such_order");
    let r = fill(&c, &b, "ORD-REJECTED", json!({"fields": front()})).await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "invalid_order_state");

    // Each bad field is named (`field` in the error) under one code the PAD knows.
    let bad = [
        (json!({}), Value::Null),
        (
            json!({"phone": {"value": "13800000000", "source": "photo"}}),
            json!("phone"),
        ),
        (
            json!({"name": {"value": "  ", "source": "photo"}}),
            json!("name"),
        ),
        (
            json!({"gender": {"value": "M", "source": "photo"}}),
            json!("gender"),
        ),
        (
            json!({"birth_date": {"value": "1978/12/16", "source": "photo"}}),
            json!("birth_date"),
        ),
        (
            json!({"valid_to": {"value": "永久", "source": "photo"}}),
            json!("valid_to"),
        ),
        // one digit off: the check digit fails
        (
            json!({"id_number": {"value": "321083197812162118", "source": "photo"}}),
            json!("id_number"),
        ),
        (
            json!({"address": {"value": "路".repeat(201), "source": "photo"}}),
            json!("address"),
        ),
    ];
    for (fields, field) in bad {
        let r = fill(&c, &b, "ORD-OPEN", json!({"fields": fields})).await;
        assert_eq!(r.status(), 400, "{fields}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "invalid_customer_field", "{v}");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    // A source other than photo or chip, or a key the body does not have: a bad body.
    for body in [
        json!({"fields": {"name": {"value": NAME, "source": "typed"}}}),
        json!({"fields": {"name": {"value": NAME, "source": "chip"}}, "values": {}}),
    ] {
        let r = fill(&c, &b, "ORD-OPEN", body).await;
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "invalid_json");
    }

    // Nothing was filled, announced or audited.
    let v: Value = c
        .get(b.url("/api/v1/orders/ORD-OPEN"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["customer"]["filled"], Value::Null, "{v}");
    assert!(event_data(&b, "order.customer_filled").await.is_empty());
    assert!(audit_of(&b, "order.customer_fill").await.is_empty());
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_in_customer_is_recorded_for_the_day_without_values_upstream() {
    let b = TestBox::start().await;
    let c = b.login("lobby_manager").await;
    let r = c
        .post(b.url("/api/v1/customers/walk-ins"))
        .json(&json!({"fields": front(), "ocr_id": "01JOCRWALKIN"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rec: Value = r.json().await.unwrap();
    assert_eq!(
        rec["fields"]["name"],
        json!({"value": NAME, "source": "chip"})
    );
    assert_eq!(rec["fields"]["id_number"]["value"], "3210**********2119");
    assert_eq!(rec["by"], "lobby_manager");

    // Today's list has it; a bad field is refused as for an order.
    let list: Value = c
        .get(b.url("/api/v1/customers/walk-ins"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["walk_ins"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["walk_ins"][0]["id"], rec["id"]);
    let r = c
        .post(b.url("/api/v1/customers/walk-ins"))
        .json(&json!({"fields": {"gender": {"value": "x", "source": "photo"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "invalid_customer_field");

    let events = event_data(&b, "customer.walkin_recorded").await;
    assert_eq!(events.len(), 1);
    for secret in [NAME, ID_NUMBER, ADDRESS] {
        assert!(!events[0].contains(secret), "{} leaks {secret}", events[0]);
    }
    let e: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(e["id"], rec["id"]);
    assert_eq!(e["sources"]["id_number"], "chip");
    assert_eq!(e["ocr_id"], "01JOCRWALKIN");
    let audit = audit_of(&b, "customer.walkin_fill").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].0, "lobby_manager");
    b.stop().await;
}
