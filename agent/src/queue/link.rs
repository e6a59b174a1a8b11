//! The customer link: the token in the QR code of a ticket or a receipt that opens the
//! customer's page (`/c/<token>`) and takes their rating.
//!
//! A token names one visit — a ticket (`day/number`) or an order (its id) — and when it
//! expires: the end of the business day it was made on. It is signed with HMAC-SHA256
//! under a key that is made once per box when the queue's schema is applied (SQLite's
//! `randomblob`, seeded from the operating system) and never leaves the box: not in the
//! config, not in any event. Layout, base64url without padding:
//!
//! ```text
//! kind (1 byte: `o` order, `t` ticket) | expiry (8 bytes, Unix seconds, big-endian)
//!     | id (UTF-8) | HMAC-SHA256 of everything before, first 16 bytes
//! ```
//!
//! A token that does not decode, or whose tag does not match (any byte changed, another
//! box's key), is unknown; a genuine one past its expiry is expired.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rusqlite::Connection;
use sha2::Sha256;

use crate::config::Config;
use crate::store::StoreError;

/// Bytes of the tag kept in a token (128 bits).
const TAG: usize = 16;
/// Longest id a token carries.
const MAX_ID: usize = 64;
/// Bound to the tag, so a key used elsewhere one day cannot sign these.
const CONTEXT: &[u8] = b"branchd customer link v1\0";

/// What a link opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A head-office order, by its id.
    Order,
    /// A queue ticket, by `day/number`.
    Ticket,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Order => b'o',
            Kind::Ticket => b't',
        }
    }

    /// `order` or `ticket`, as the API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Order => "order",
            Kind::Ticket => "ticket",
        }
    }
}

/// A verified (or about to be signed) link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Order or ticket.
    pub kind: Kind,
    /// The order's id, or the ticket's `day/number`.
    pub id: String,
    /// When it stops opening anything.
    pub expires: DateTime<Utc>,
}

/// Why a token opens nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a token of this box: malformed, altered, or signed under another key.
    #[error("this link is not valid")]
    Unknown,
    /// A genuine token past the end of its business day.
    #[error("this link has expired")]
    Expired,
}

/// The id of a ticket in a link.
pub fn ticket_id(day: &str, number: &str) -> String {
    format!("{day}/{number}")
}

/// The link to `id` made at `now`: it expires when the business day of `now` ends.
pub fn today(cfg: &Config, now: DateTime<Utc>, kind: Kind, id: &str) -> Link {
    Link {
        kind,
        id: id.to_string(),
        expires: crate::clock::next_business_day(cfg, now),
    }
}

/// The box's link key.
pub fn key(c: &Connection) -> Result<Vec<u8>, StoreError> {
    Ok(
        c.query_row("SELECT key FROM queue_link_key WHERE id = 1", [], |r| {
            r.get(0)
        })?,
    )
}

fn tag(key: &[u8], body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(CONTEXT);
    mac.update(body);
    mac
}

/// The token of `link` under `key`.
pub fn sign(key: &[u8], link: &Link) -> String {
    let mut body = Vec::with_capacity(9 + link.id.len() + TAG);
    body.push(link.kind.byte());
    body.extend_from_slice(&(link.expires.timestamp().max(0) as u64).to_be_bytes());
    body.extend_from_slice(link.id.as_bytes());
    let t = tag(key, &body).finalize().into_bytes();
    body.extend_from_slice(&t[..TAG]);
    B64.encode(body)
}

/// The link `token` names, if it is this box's and not expired at `now`.
pub fn verify(key: &[u8], token: &str, now: DateTime<Utc>) -> Result<Link, LinkError> {
    if token.len() > 4 * (9 + MAX_ID + TAG).div_ceil(3) {
        return Err(LinkError::Unknown);
    }
    let raw = B64.decode(token).map_err(|_| LinkError::Unknown)?;
    if raw.len() < 1 + 8 + 1 + TAG {
        return Err(LinkError::Unknown);
    }
    let (body, t) = raw.split_at(raw.len() - TAG);
    tag(key, body)
        .verify_truncated_left(t)
        .map_err(|_| LinkError::Unknown)?;
    let kind = match body[0] {
        b'o' => Kind::Order,
        b't' => Kind::Ticket,
        _ => return Err(LinkError::Unknown),
    };
    let secs = u64::from_be_bytes(body[1..9].try_into().map_err(|_| LinkError::Unknown)?);
    let expires = i64::try_from(secs)
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .ok_or(LinkError::Unknown)?;
    let id = std::str::from_utf8(&body[9..])
        .map_err(|_| LinkError::Unknown)?
        .to_string();
    if now >= expires {
        return Err(LinkError::Expired);
    }
    Ok(Link { kind, id, expires })
}

/// The customer page of `token`: `[http] public_url` + `/c/<token>`.
pub fn url(cfg: &Config, token: &str) -> String {
    format!("{}/c/{token}", cfg.http.public_url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn cfg() -> Config {
        // Beijing time, the business day resets at 04:00 (the default).
        Config::parse(
            "[branch]\nid = \"NJ0101\"\nname = \"x\"\ndata_dir = \"/d\"\n\
             [http]\nlisten = \"0.0.0.0:8443\"\npublic_url = \"https://branch.example/\"\n",
        )
        .unwrap()
    }

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, m, 0).unwrap()
    }

    #[test]
    fn a_token_round_trips_its_kind_id_and_expiry() {
        for (kind, id) in [
            (Kind::Order, "HO-2026-000123"),
            (Kind::Ticket, "2026-11-23/A007"),
            (Kind::Order, "订单-1"),
        ] {
            let link = today(&cfg(), at(2, 0), kind, id);
            let token = sign(KEY, &link);
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{token} is URL-safe"
            );
            assert_eq!(verify(KEY, &token, at(2, 0)), Ok(link));
        }
    }

    #[test]
    fn a_link_expires_when_the_business_day_ends() {
        // 10:00 Beijing on the 23rd; the day ends at 04:00 Beijing on the 24th (20:00 UTC).
        let link = today(&cfg(), at(2, 0), Kind::Ticket, "2026-11-23/A007");
        assert_eq!(link.expires, at(20, 0));
        let token = sign(KEY, &link);
        assert!(verify(KEY, &token, at(19, 59)).is_ok());
        assert_eq!(verify(KEY, &token, at(20, 0)), Err(LinkError::Expired));
    }

    #[test]
    fn any_changed_byte_or_another_key_makes_the_token_unknown() {
        let token = sign(KEY, &today(&cfg(), at(2, 0), Kind::Order, "HO-1"));
        let raw = B64.decode(&token).unwrap();
        for i in 0..raw.len() {
            for flip in [0x01u8, 0x80] {
                let mut bad = raw.clone();
                bad[i] ^= flip;
                assert_eq!(
                    verify(KEY, &B64.encode(&bad), at(2, 0)),
                    Err(LinkError::Unknown),
                    "byte {i} ^ {flip:#x}"
                );
            }
        }
        // A later expiry written into a copied token is an altered token, not a longer link.
        let mut later = raw.clone();
        later[1..9].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(
            verify(KEY, &B64.encode(&later), at(2, 0)),
            Err(LinkError::Unknown)
        );
        assert_eq!(
            verify(b"another box's key", &token, at(2, 0)),
            Err(LinkError::Unknown)
        );
        let long = "A".repeat(500);
        for junk in ["", "1", "!!!!", &token[..token.len() - 1], long.as_str()] {
            assert_eq!(
                verify(KEY, junk, at(2, 0)),
                Err(LinkError::Unknown),
                "{junk}"
            );
        }
    }

    #[test]
    fn the_page_url_is_the_public_url_with_the_token() {
        assert_eq!(url(&cfg(), "abc"), "https://branch.example/c/abc");
    }
}
