//! Personal data the box must not keep: VIP photos that cannot become embeddings.

use branchd::store::StoreError;
use branchd::vips::{self, Vip};

use crate::common::{TestBox, event_data, wait_until};

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
