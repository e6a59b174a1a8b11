//! In-process consumers of the event stream never lose an event: a flood far past the bus
//! still links every arriving ticket to its order and to its VIP's arrival, and tickets
//! issued while the daemon was down are linked when it is back.

use std::time::Duration;

use branchd::config::orders::{RecallAction, StepSpec};
use branchd::orders::model::{Customer, NewOrder};
use branchd::store::{Store, StoreError, Tx};
use serde_json::json;

use crate::common::{TestBox, wait_until};

/// More events than the in-process bus holds.
const FLOOD: usize = 6000;

fn order(id: &str) -> NewOrder {
    NewOrder {
        id: id.into(),
        business_type: "account_opening".into(),
        title: "个人开户".into(),
        channel: "app".into(),
        priority: "appointment".into(),
        customer: Customer {
            name: "张三".into(),
            phone: None,
            id_number: None,
        },
        appointment_at: None,
        fields: Default::default(),
        steps: vec![StepSpec {
            key: "check".into(),
            name: "check".into(),
            customer_label: None,
            sla_s: 600,
            near_pct: 80,
            recall_after_s: 300,
            recall_action: RecallAction::Pool,
        }],
    }
}

/// What the queue commits when a customer with an appointment takes a ticket.
fn issued(tx: &mut Tx<'_>, number: &str, data: serde_json::Value) -> Result<(), StoreError> {
    let mut d = json!({"number": number, "service": "personal", "priority": 1,
                       "position": 1, "estimated_wait_s": 0, "source": "pad"});
    if let (Some(d), Some(extra)) = (d.as_object_mut(), data.as_object()) {
        d.extend(extra.clone());
    }
    tx.emit("ticket.issued", d)?;
    Ok(())
}

async fn linked_orders(store: &Store) -> Vec<(String, Option<String>)> {
    store
        .read(|c| {
            let mut st = c.prepare("SELECT id, ticket FROM orders ORDER BY id")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok::<_, StoreError>(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
        .unwrap()
}

async fn count(store: &Store, kind: &'static str) -> i64 {
    store
        .read(move |c| {
            Ok::<_, StoreError>(c.query_row(
                "SELECT count(*) FROM events WHERE kind = ?1",
                [kind],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_flood_past_the_bus_links_every_ticket_to_its_order_and_its_vip_arrival() {
    let b = TestBox::start().await;
    let store = b.core().store.clone();
    let cfg = b.core().cfg.clone();
    let orders: Vec<String> = (0..60).map(|i| format!("ORD-{i:02}")).collect();
    let os = orders.clone();
    store
        .write(move |tx| {
            for id in &os {
                branchd::orders::model::create(tx, &order(id), None)
                    .map_err(|e| StoreError::Open(e.to_string()))?;
            }
            // A VIP greeted at the door, who will take a ticket in the flood.
            let vip = branchd::vips::LocalEnrolment {
                customer_id: "C-VIP".into(),
                name: "Rose".into(),
                level: "vip2".into(),
                tags: vec![],
                relationship_manager: None,
            };
            branchd::vips::enrol_local(tx, &vip, &[1.0; 4], "test-model", "test")?;
            let seen = branchd::vision::gallery::Seen {
                camera: "door".into(),
                confidence: 0.9,
                at: tx.now(),
            };
            let day = branchd::clock::business_day(&cfg, tx.now());
            branchd::vision::gallery::recognised(
                tx,
                "C-VIP",
                &seen,
                Duration::from_secs(3600),
                &day,
            )?;
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    // One transaction: the tickets of every order and of the VIP, spread through
    // thousands of other events, all published on the bus at once.
    let os = orders.clone();
    store
        .write(move |tx| {
            let every = FLOOD / os.len();
            let mut next = os.iter().enumerate();
            for i in 0..FLOOD {
                if i % every == 0
                    && let Some((k, id)) = next.next()
                {
                    issued(tx, &format!("A{k:03}"), json!({"appointment_id": id}))?;
                }
                if i == FLOOD - 7 {
                    issued(tx, "V001", json!({"customer_id": "C-VIP"}))?;
                }
                tx.emit("test.noise", json!({"i": i}))?;
            }
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    wait_until("every order linked", 30, || async {
        linked_orders(&store).await.iter().all(|(_, t)| t.is_some())
    })
    .await;
    let linked = linked_orders(&store).await;
    for (k, (id, ticket)) in linked.iter().enumerate() {
        assert_eq!(id, &orders[k]);
        assert_eq!(ticket.as_deref(), Some(format!("A{k:03}").as_str()), "{id}");
    }
    assert_eq!(count(&store, "order.arrived").await, orders.len() as i64);
    wait_until("the VIP's arrival linked", 30, || async {
        count(&store, "vip.ticketed").await == 1
    })
    .await;
    b.stop().await;
}

#[tokio::test]
async fn tickets_issued_while_the_daemon_was_down_are_linked_when_it_is_back() {
    let b = TestBox::start().await;
    let store = b.core().store.clone();
    store
        .write(|tx| {
            branchd::orders::model::create(tx, &order("ORD-DOWN"), None)
                .map_err(|e| StoreError::Open(e.to_string()))
        })
        .await
        .unwrap();
    // Let the consumers record where they are, then stop the daemon.
    wait_until("the consumers know their place", 10, || async {
        let s = store.clone();
        s.read(|c| {
            Ok::<_, StoreError>(
                c.query_row("SELECT count(*) FROM followers", [], |r| r.get::<_, i64>(0))?,
            )
        })
        .await
        .unwrap()
            >= 2
    })
    .await;
    // A ticket committed while no daemon runs (as after a crash between the commit and
    // the link).
    let b = b
        .restart_with(|dir| {
            let store = branchd::app::open_store(&dir.join("branchd.db")).unwrap();
            store
                .write_blocking(|tx| issued(tx, "A042", json!({"appointment_id": "ORD-DOWN"})))
                .unwrap();
            store.close();
        })
        .await;
    let store = b.core().store.clone();
    wait_until("the order linked after the restart", 10, || async {
        linked_orders(&store).await == [("ORD-DOWN".to_string(), Some("A042".to_string()))]
    })
    .await;
    assert_eq!(count(&store, "order.arrived").await, 1);
    b.stop().await;
}
