//! Personal data the box must not keep (VIP photos that cannot become embeddings) and
//! must not show to roles that do not serve customers (alerts and the event stream).

use branchd::store::StoreError;
use branchd::vips::{self, Vip};

use branchd::alerts::{self, Level, NewAlert};
use serde_json::json;

use crate::common::{TestBox, error_code, event_data, wait_until};
use crate::sse::Reader;

fn vip_with_photo(store: &branchd::store::Store) {
    let v = Vip {
        customer_id: "C100".into(),
        name: "王芳".into(),
        level: "gold".into(),
        tags: vec![],
        relationship_manager: None,
        consent: true,
        photo: Some(vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]),
        embedding: None,
    };
    store
        .write_blocking(move |tx| vips::upsert(tx, &v, "c-1"))
        .unwrap();
}

#[tokio::test]
async fn a_vip_photo_is_dropped_when_it_can_never_be_enrolled() {
    // (the box's [models] and [faces], why the photo cannot be enrolled)
    let cases = [
        (
            "[models]\ndir = \"/nonexistent/models\"",
            "face models unavailable",
        ),
        (
            "[faces]\nenabled = false",
            "face recognition is disabled on this box",
        ),
    ];
    for (config, reason) in cases {
        let b = TestBox::start_prepared(config, vip_with_photo).await;
        let store = b.core().store.clone();
        wait_until(config, 20, || {
            let store = store.clone();
            async move {
                store
                    .read(|c| -> Result<bool, StoreError> {
                        Ok(!vips::get(c, "C100")?
                            .expect("the record stays")
                            .photo_pending)
                    })
                    .await
                    .unwrap()
            }
        })
        .await;
        let photo_bytes: i64 = store
            .read(|c| {
                c.query_row(
                    "SELECT count(*) FROM vips WHERE photo IS NOT NULL",
                    [],
                    |r| r.get(0),
                )
                .map_err(StoreError::from)
            })
            .await
            .unwrap();
        assert_eq!(photo_bytes, 0, "{config}");
        let failed = event_data(&b, "vip.enrolment_failed").await;
        assert_eq!(failed.len(), 1, "{config}: {failed:?}");
        assert!(failed[0].contains(reason), "{config}: {}", failed[0]);
        b.stop().await;
    }
}

fn raise(store: &branchd::store::Store, kind: &'static str, data: serde_json::Value) -> i64 {
    store
        .write_blocking(move |tx| {
            alerts::raise(
                tx,
                &NewAlert {
                    kind,
                    level: Level::Info,
                    source: None,
                    key: None,
                    message: kind,
                    data,
                },
            )
        })
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn vip_alerts_and_customer_events_reach_only_the_roles_that_serve_customers() {
    let b = TestBox::start().await;
    let store = b.core().store.clone();
    let (vip, device) = tokio::task::spawn_blocking(move || {
        let vip = raise(
            &store,
            "vip.arrived",
            json!({"customer_id": "C100", "name": "王芳", "level": "gold", "camera": "entrance"}),
        );
        let device = raise(&store, "device.offline", json!({"device_id": "STM-01"}));
        (vip, device)
    })
    .await
    .unwrap();
    let kinds_for = |user: &'static str| {
        let b = &b;
        async move {
            let c = b.login(user).await;
            let list: Vec<serde_json::Value> = c
                .get(b.url("/api/v1/alerts"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let mut kinds: Vec<String> = list
                .iter()
                .map(|a| a["kind"].as_str().unwrap().to_string())
                .collect();
            kinds.sort();
            (c, kinds)
        }
    };
    // (user, alert kinds listed)
    let cases: [(&str, &[&str]); 4] = [
        ("lobby_manager", &["device.offline", "vip.arrived"]),
        ("branch_manager", &["device.offline", "vip.arrived"]),
        ("device_admin", &["device.offline"]),
        ("supervisor", &["device.offline"]),
    ];
    for (user, want) in cases {
        let (c, kinds) = kinds_for(user).await;
        assert_eq!(kinds, want, "{user}");
        if !want.contains(&"vip.arrived") {
            let r = c
                .post(b.url(&format!("/api/v1/alerts/{vip}/ack")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 404, "{user} acks an alert it cannot see");
            assert_eq!(error_code(r).await, "alert_not_found");
        }
        // The stream from the start: the device alert comes, the VIP's does not.
        let r = c
            .get(b.url("/api/v1/events?last_event_id=0"))
            .send()
            .await
            .unwrap();
        let mut stream = Reader::new(r);
        let mut seen = Vec::new();
        loop {
            let ev = stream.next().await;
            let alert_kind = ev.data["data"]["kind"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let done = ev.data["data"]["id"] == json!(device);
            seen.push(format!("{} {alert_kind}", ev.kind));
            if done {
                break;
            }
        }
        let saw_vip = seen.iter().any(|s| s.contains("vip."));
        assert_eq!(saw_vip, want.contains(&"vip.arrived"), "{user}: {seen:?}");
    }
    b.stop().await;
}
