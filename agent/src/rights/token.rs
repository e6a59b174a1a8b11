//! The coupon token: compact text a phone can show as a QR code and the box can check
//! offline.
//!
//! `BRC1.<payload>.<signature>`: the payload is the coupon as compact JSON
//! (`{"id","cust","right","value","from","until"}`), the signature is Ed25519 by head
//! office over the ASCII bytes `BRC1.<payload>`; both parts are base64url without padding.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::NaiveDate;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// The token's version prefix.
pub const PREFIX: &str = "BRC1";

/// The rights a coupon may carry, and what its `value` counts.
pub const RIGHTS: &[(&str, &str)] = &[
    ("cash_voucher", "fen off"),
    ("fee_waiver", "fees waived"),
    ("rate_bonus", "basis points added to a deposit rate"),
    ("gift", "gifts"),
];

/// A coupon: a right head office gave one customer, valid on the dates given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coupon {
    /// Head office's coupon id.
    pub id: String,
    /// The customer's hash (as in `customer.upsert`'s `id_hash`).
    pub cust: String,
    /// One of [`RIGHTS`].
    pub right: String,
    /// How much (see [`RIGHTS`]).
    pub value: i64,
    /// First valid business day.
    pub from: NaiveDate,
    /// Last valid business day.
    pub until: NaiveDate,
}

/// Why a token is not a coupon.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token at all, or its coupon is not well formed.
    #[error("not a coupon: {0}")]
    Malformed(String),
    /// The signature is not head office's.
    #[error("the coupon's signature is not head office's")]
    Forged,
}

/// Sign `c` with head office's key.
pub fn sign(key: &SigningKey, c: &Coupon) -> String {
    let payload = B64.encode(serde_json::to_vec(c).expect("a coupon is JSON"));
    let signed = format!("{PREFIX}.{payload}");
    let sig = key.sign(signed.as_bytes());
    format!("{signed}.{}", B64.encode(sig.to_bytes()))
}

/// Whether `text` looks like a token (rather than a coupon id typed by hand).
pub fn looks_like_token(text: &str) -> bool {
    text.starts_with("BRC1.")
}

/// Check a token's signature with `key`, then read its coupon.
pub fn verify(key: &VerifyingKey, token: &str) -> Result<Coupon, TokenError> {
    let malformed = |m: &str| TokenError::Malformed(m.to_string());
    let token = token.trim();
    if token.len() > 2048 {
        return Err(malformed("too long"));
    }
    let mut parts = token.split('.');
    let (Some(prefix), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("expected BRC1.<payload>.<signature>"));
    };
    if prefix != PREFIX {
        return Err(malformed("unknown version"));
    }
    let sig = B64
        .decode(sig)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .ok_or_else(|| malformed("the signature is not 64 bytes of base64url"))?;
    let signed = &token[..prefix.len() + 1 + payload.len()];
    key.verify(signed.as_bytes(), &Signature::from_bytes(&sig))
        .map_err(|_| TokenError::Forged)?;
    let json = B64
        .decode(payload)
        .map_err(|_| malformed("the payload is not base64url"))?;
    let c: Coupon = serde_json::from_slice(&json)
        .map_err(|e| TokenError::Malformed(format!("the payload: {e}")))?;
    check(&c).map_err(TokenError::Malformed)?;
    Ok(c)
}

/// What a well-formed coupon must be.
pub fn check(c: &Coupon) -> Result<(), String> {
    if !crate::command::is_code(&c.id) {
        return Err("`id` must be 1–64 letters, digits, '-' or '_'".into());
    }
    if !crate::customers::command::is_hash(&c.cust) {
        return Err("`cust` must be 64 lower-case hex digits".into());
    }
    if !RIGHTS.iter().any(|(r, _)| *r == c.right) {
        return Err(format!(
            "`right` must be one of {}",
            RIGHTS
                .iter()
                .map(|(r, _)| *r)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !(1..=100_000_000_000).contains(&c.value) {
        return Err("`value` must be a positive integer".into());
    }
    if c.from > c.until {
        return Err("`from` is after `until`".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coupon() -> Coupon {
        Coupon {
            id: "CP-1".into(),
            cust: "a".repeat(64),
            right: "cash_voucher".into(),
            value: 2_000,
            from: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            until: NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
        }
    }

    #[test]
    fn a_signed_coupon_verifies_and_any_change_is_forgery() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let token = sign(&key, &coupon());
        assert!(looks_like_token(&token));
        assert!(
            token.len() < 400,
            "fits a QR code a phone shows: {}",
            token.len()
        );
        assert_eq!(verify(&key.verifying_key(), &token), Ok(coupon()));
        assert_eq!(
            verify(&other.verifying_key(), &token),
            Err(TokenError::Forged)
        );
        // A richer coupon with head office's signature moved onto it.
        let mut rich = coupon();
        rich.value = 200_000;
        let forged = format!(
            "{}.{}",
            sign(&other, &rich).rsplit_once('.').unwrap().0,
            token.rsplit_once('.').unwrap().1
        );
        assert_eq!(
            verify(&key.verifying_key(), &forged),
            Err(TokenError::Forged)
        );
        for bad in ["", "BRC1", "BRC2.e30.AAAA", "BRC1.e30.AAAA", "BRC1.a.b.c"] {
            assert!(
                matches!(
                    verify(&key.verifying_key(), bad),
                    Err(TokenError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        // Signed but not a coupon: refused as malformed, naming the problem.
        let mut odd = coupon();
        odd.right = "free_lunch".into();
        let got = verify(&key.verifying_key(), &sign(&key, &odd));
        assert!(
            matches!(got, Err(TokenError::Malformed(m)) if m.contains("`right` must be one of"))
        );
    }
}
