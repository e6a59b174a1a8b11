//! `[customers]` and `[rights]`: who the box may recognise from an ID card swipe, when a
//! customer's maturity is worth a mark, and the key that head office signs coupons with.
//!
//! ```toml
//! [customers]
//! id_salt = "…"              # the secret head office hashes ID numbers with (HMAC-SHA256)
//! maturity_days = 7          # deposits and wealth products maturing within this many days are marked
//!
//! [rights]
//! public_key = "…"           # head office's Ed25519 public key, 64 hex digits
//! ```

use super::Section;

/// `[customers]`
#[derive(Debug, Clone, PartialEq)]
pub struct CustomersConfig {
    /// The key of the salted hash of ID numbers (`id_hash` in `customer.upsert`); without
    /// it an ID card swipe recognises nobody.
    pub id_salt: Option<String>,
    /// A deposit or wealth product maturing within this many days gets a mark.
    pub maturity_days: u32,
}

impl Default for CustomersConfig {
    fn default() -> Self {
        CustomersConfig {
            id_salt: None,
            maturity_days: 7,
        }
    }
}

/// `[rights]`
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RightsConfig {
    /// Head office's Ed25519 public key; without it no coupon can be redeemed.
    pub public_key: Option<[u8; 32]>,
}

/// The shortest salt accepted.
pub const MIN_SALT: usize = 16;

/// Read `[customers]` (absent: no ID swipe recognition, marks within 7 days).
pub fn read_customers(root: &mut Section<'_, '_>) -> Option<CustomersConfig> {
    let mut c = CustomersConfig::default();
    let Some(mut s) = root.opt_table("customers") else {
        return Some(c);
    };
    if let Some(salt) = s.opt_str("id_salt") {
        if salt.chars().count() < MIN_SALT {
            s.problem(
                "id_salt",
                format!(
                    "must be at least {MIN_SALT} characters (a secret shared with head office)"
                ),
            );
        }
        c.id_salt = Some(salt);
    }
    if let Some(d) = s.opt_int("maturity_days", 0..=366) {
        c.maturity_days = d as u32;
    }
    s.finish();
    Some(c)
}

/// Read `[rights]` (absent: coupons cannot be redeemed).
pub fn read_rights(root: &mut Section<'_, '_>) -> Option<RightsConfig> {
    let mut r = RightsConfig::default();
    let Some(mut s) = root.opt_table("rights") else {
        return Some(r);
    };
    if let Some(k) = s.opt_str("public_key") {
        match parse_public_key(&k) {
            Ok(bytes) => r.public_key = Some(bytes),
            Err(e) => s.problem("public_key", e),
        }
    }
    s.finish();
    Some(r)
}

/// An Ed25519 public key written as 64 hex digits.
pub fn parse_public_key(text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or("must be an Ed25519 public key: 64 hex digits")?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|_| "is not a valid Ed25519 public key".to_string())?;
    Ok(bytes)
}
