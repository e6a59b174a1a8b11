//! Every way a coupon is refused, and the one way it is redeemed: once.

use chrono::{Duration as ChronoDuration, NaiveDate, Utc};
use ed25519_dalek::SigningKey;
use serde_json::json;

use super::token::{Coupon, sign};
use super::*;
use crate::customers::{self, CustomerRecord, id_hash};
use crate::store::Store;

const SALT: &str = "branchd-test-salt-0001";

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
}

fn coupon(id: &str, id_number: &str) -> Coupon {
    Coupon {
        id: id.into(),
        cust: id_hash(SALT, id_number),
        right: "cash_voucher".into(),
        value: 2_000,
        from: today() - ChronoDuration::days(1),
        until: today() + ChronoDuration::days(1),
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    store: Store,
    hq: SigningKey,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.db"), crate::modules::SCHEMAS).unwrap();
        store
            .write_blocking(|tx| {
                for (id, name, number) in [
                    ("C1", "王芳", "11010519491231002X"),
                    ("C2", "李建国", "321083197812162119"),
                ] {
                    customers::upsert(
                        tx,
                        &CustomerRecord {
                            customer_id: id.into(),
                            id_hash: Some(id_hash(SALT, number)),
                            name: name.into(),
                            level: None,
                            risk_level: None,
                            birthday: None,
                            relationship_manager: None,
                            maturities: Vec::new(),
                        },
                        "c",
                    )?;
                }
                Ok::<_, StoreError>(())
            })
            .unwrap();
        Rig {
            _dir: dir,
            store,
            hq: SigningKey::from_bytes(&[42; 32]),
        }
    }

    fn redeem(&self, code: &str, customer: &str) -> Result<Redemption, String> {
        let (key, code, customer) = (
            self.hq.verifying_key(),
            code.to_string(),
            customer.to_string(),
        );
        self.store
            .write_blocking(move |tx| {
                redeem(tx, &key, &code, &customer, today(), Utc::now(), "lobby")
            })
            .map_err(|e| match e {
                RedeemError::Refused(r) => r.code().to_string(),
                RedeemError::Store(e) => panic!("{e}"),
            })
    }

    fn command(&self, kind: &str, data: serde_json::Value) -> Result<(), String> {
        let cfg = RightsConfig {
            public_key: Some(self.hq.verifying_key().to_bytes()),
        };
        let cmd = parse(kind, data.as_object().unwrap(), &cfg)?;
        self.store
            .write_blocking(move |tx| apply(tx, "cmd", cmd))
            .unwrap();
        Ok(())
    }
}

#[test]
fn coupons_are_refused_for_every_reason_and_redeemed_once() {
    let rig = Rig::new();
    let wang = "11010519491231002X";
    let valid = sign(&rig.hq, &coupon("CP-1", wang));
    let expired = sign(
        &rig.hq,
        &Coupon {
            until: today() - ChronoDuration::days(1),
            ..coupon("CP-2", wang)
        },
    );
    let early = sign(
        &rig.hq,
        &Coupon {
            from: today() + ChronoDuration::days(1),
            ..coupon("CP-3", wang)
        },
    );
    let forged = sign(&SigningKey::from_bytes(&[1; 32]), &coupon("CP-4", wang));
    let revoked = sign(&rig.hq, &coupon("CP-5", wang));
    let last_day = sign(
        &rig.hq,
        &Coupon {
            until: today(),
            ..coupon("CP-6", wang)
        },
    );
    rig.command("rights.revoke", json!({"ids": ["CP-5"]}))
        .unwrap();

    // (what, code, customer, refusal)
    let cases: &[(&str, &str, &str, &str)] = &[
        ("expired", &expired, "C1", "coupon_expired"),
        ("not yet valid", &early, "C1", "coupon_not_yet_valid"),
        ("forged signature", &forged, "C1", "coupon_forged"),
        ("another customer's", &valid, "C2", "coupon_wrong_customer"),
        (
            "a customer the box cannot check",
            &valid,
            "C9",
            "customer_unknown",
        ),
        ("revoked", &revoked, "C1", "coupon_revoked"),
        ("not a coupon", "hello", "C1", "coupon_unknown"),
        ("garbage", "BRC1.xx.yy", "C1", "coupon_malformed"),
    ];
    for (what, code, customer, want) in cases {
        assert_eq!(
            rig.redeem(code, customer).map(|_| ()),
            Err(want.to_string()),
            "{what}"
        );
    }
    let r = rig.redeem(&valid, "C1").expect("valid");
    assert_eq!(
        (
            r.coupon.coupon_id.as_str(),
            r.coupon.value,
            r.customer_id.as_str()
        ),
        ("CP-1", 2_000, "C1")
    );
    assert_eq!(
        rig.redeem(&valid, "C1").map(|_| ()),
        Err("coupon_redeemed".into()),
        "twice"
    );
    assert!(
        rig.redeem(&last_day, "C1").is_ok(),
        "the last day is still valid"
    );

    let redeemed: Vec<serde_json::Value> = rig
        .store
        .read_blocking(|c| crate::store::events_after(c, 0, 1000))
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "rights.redeemed")
        .map(|e| e.data)
        .collect();
    assert_eq!(
        redeemed.len(),
        2,
        "one event per redemption, none for a refusal"
    );
    assert_eq!(redeemed[0]["coupon_id"], json!("CP-1"));
    assert_eq!(redeemed[0]["customer_id"], json!("C1"));
}

#[test]
fn a_granted_coupon_shows_for_its_customer_and_can_be_typed_by_id() {
    let rig = Rig::new();
    let key = rig.hq.verifying_key();
    let token = sign(&rig.hq, &coupon("CP-7", "11010519491231002X"));
    rig.command("rights.grant", json!({"token": token}))
        .unwrap();
    let forged = sign(
        &SigningKey::from_bytes(&[1; 32]),
        &coupon("CP-8", "11010519491231002X"),
    );
    let err = rig
        .command("rights.grant", json!({"token": forged}))
        .unwrap_err();
    assert!(err.contains("not head office's"), "{err}");
    assert!(
        rig.command("rights.revoke", json!({"ids": []}))
            .unwrap_err()
            .contains("at least one")
    );
    assert!(
        rig.command("rights.revoke", json!({"ids": ["a b"]}))
            .unwrap_err()
            .contains("not a coupon id")
    );
    let for_c1 = rig
        .store
        .read_blocking(move |c| available(c, &key, "C1", today()))
        .unwrap();
    assert_eq!(
        for_c1
            .iter()
            .map(|c| c.coupon_id.as_str())
            .collect::<Vec<_>>(),
        ["CP-7"]
    );
    let for_c2 = rig
        .store
        .read_blocking(move |c| available(c, &key, "C2", today()))
        .unwrap();
    assert!(for_c2.is_empty());
    assert_eq!(
        rig.redeem("CP-7", "C2").map(|_| ()),
        Err("coupon_wrong_customer".into())
    );
    rig.redeem(" CP-7 ", "C1").expect("typed id");
    let left = rig
        .store
        .read_blocking(move |c| available(c, &key, "C1", today()))
        .unwrap();
    assert!(left.is_empty(), "a redeemed coupon is no longer available");
}

#[test]
fn without_a_key_no_coupon_is_granted() {
    let data = json!({"token": "BRC1.a.b"});
    let err = parse(
        "rights.grant",
        data.as_object().unwrap(),
        &RightsConfig::default(),
    )
    .unwrap_err();
    assert!(err.contains("no `[rights] public_key`"), "{err}");
}
