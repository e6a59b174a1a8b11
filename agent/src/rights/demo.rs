//! `branchd demo`: coupons head office gave the demo's customers, signed with the demo's
//! own key — its public half is `[rights] public_key` in the demo config; the secret half
//! is here in the open, so it must never sign anything outside the demo.

use chrono::{Duration as ChronoDuration, NaiveDate};
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

use super::token::{Coupon, sign};
use super::{RightsCmd, apply};
use crate::config::Config;
use crate::customers::demo::{ROSE_ID_NUMBER, WANG_FANG_ID_NUMBER, ZHANG_SAN_ID_NUMBER};
use crate::customers::id_hash;
use crate::store::{Store, StoreError};

/// The demo's coupon signing key (derived from a fixed phrase; public, so demo only).
pub fn signing_key() -> SigningKey {
    let seed: [u8; 32] = Sha256::digest(b"branchd demo coupon key: for the demo only").into();
    SigningKey::from_bytes(&seed)
}

/// The demo's coupons: two for 王芳 (a cash voucher and a fee waiver), a rate bonus for
/// 张三, and a gift for Rose Leslie (it shows on her arrival card).
pub fn coupons(salt: &str, today: NaiveDate) -> Vec<Coupon> {
    let c = |id: &str, id_number: &str, right: &str, value: i64| Coupon {
        id: id.into(),
        cust: id_hash(salt, id_number),
        right: right.into(),
        value,
        from: today - ChronoDuration::days(7),
        until: today + ChronoDuration::days(30),
    };
    vec![
        c("CP-DEMO-01", WANG_FANG_ID_NUMBER, "cash_voucher", 2_000),
        c("CP-DEMO-02", WANG_FANG_ID_NUMBER, "fee_waiver", 1),
        c("CP-DEMO-03", ZHANG_SAN_ID_NUMBER, "rate_bonus", 20),
        c("CP-DEMO-04", ROSE_ID_NUMBER, "gift", 1),
    ]
}

/// Grant the demo's coupons, as head office would (`rights.grant`).
pub fn seed(store: &Store, cfg: &Config, today: NaiveDate) -> Result<(), StoreError> {
    let Some(salt) = cfg.customers.id_salt.clone() else {
        return Ok(());
    };
    let key = signing_key();
    let cmds: Vec<RightsCmd> = coupons(&salt, today)
        .into_iter()
        .map(|c| RightsCmd::Grant {
            token: sign(&key, &c),
            coupon: c,
        })
        .collect();
    store.write_blocking(move |tx| {
        for cmd in cmds {
            apply(tx, "demo", cmd)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_config_carries_the_public_half_of_the_demo_key() {
        let cfg = Config::parse(crate::config::DEMO_CONFIG).unwrap();
        assert_eq!(
            cfg.rights.public_key.map(hex::encode),
            Some(hex::encode(signing_key().verifying_key().to_bytes()))
        );
        assert!(cfg.customers.id_salt.is_some());
    }
}
