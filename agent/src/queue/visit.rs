//! The customer's page of their visit and their rating of it.
//!
//! The QR code on a ticket or a receipt opens `/c/<token>` ([`super::link`]), which the
//! PAD app answers with the customer page; it reads `GET /api/v1/public/c/{token}` and
//! posts the rating to `POST /api/v1/public/c/{token}/rating`. Neither needs a session, so
//! both are rate-limited per client address. The page holds milestones only — codes,
//! times and head office's step labels — never a member of staff, a counter's note, a
//! reason or a timer. A visit is rated once: an order once delivered (`order.rated`,
//! through the orders module), a ticket once served (`ticket.rated`).
//!
//! Staff hand a customer the same page on a counter PAD: `GET /api/v1/customer-link`
//! gives the token of a ticket or an order.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;
use warp::http::StatusCode;

use super::Queue;
use super::link::{self, Kind, Link, LinkError};
use crate::clock::{business_day, rfc3339};
use crate::config::Config;
use crate::http::error::ApiError;
use crate::http::{Access, Reply, Request, Route, ok_json};
use crate::orders::model::{self as orders, OrderError, OrderStatus, StepState};
use crate::store::{StoreError, Tx};

/// The tags a customer may add to a rating (the PAD shows `rating.tags.<code>`).
pub const RATING_TAGS: &[&str] = &[
    "quick",
    "friendly",
    "clear",
    "professional",
    "comfortable",
    "slow",
    "unclear",
    "long_wait",
];

/// Why a customer's request was refused.
#[derive(Debug, thiserror::Error)]
pub enum VisitError {
    /// The token is not this box's, or what it names is gone.
    #[error("this link is not valid")]
    Unknown,
    /// The token's business day is over.
    #[error("this link has expired")]
    Expired,
    /// The visit has its rating already.
    #[error("this visit is already rated")]
    AlreadyRated,
    /// Not finished yet: nothing to rate.
    #[error("{0}")]
    NotYet(&'static str),
    /// The rating is not one the API takes.
    #[error("{0}")]
    Invalid(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<LinkError> for VisitError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Unknown => VisitError::Unknown,
            LinkError::Expired => VisitError::Expired,
        }
    }
}

impl From<rusqlite::Error> for VisitError {
    fn from(e: rusqlite::Error) -> Self {
        VisitError::Store(e.into())
    }
}

impl From<VisitError> for ApiError {
    fn from(e: VisitError) -> Self {
        let msg = e.to_string();
        match e {
            VisitError::Unknown => ApiError::not_found("link_unknown", msg),
            VisitError::Expired => ApiError::new(StatusCode::GONE, "link_expired", msg),
            VisitError::AlreadyRated => ApiError::conflict("already_rated", msg),
            VisitError::NotYet(_) => ApiError::conflict("not_ratable_yet", msg),
            VisitError::Invalid(_) => ApiError::bad_request("invalid_request", msg),
            VisitError::Store(s) => s.into(),
        }
    }
}

/// A customer's rating.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingBody {
    score: i64,
    #[serde(default)]
    tags: Vec<String>,
}

impl RatingBody {
    /// The score (1–5) and the tags (known codes, each once, in the order given).
    fn checked(self) -> Result<(u8, Vec<String>), VisitError> {
        if !(1..=5).contains(&self.score) {
            return Err(VisitError::Invalid(
                "`score` must be an integer from 1 to 5".into(),
            ));
        }
        let mut tags: Vec<String> = Vec::new();
        for t in self.tags {
            if !RATING_TAGS.contains(&t.as_str()) {
                return Err(VisitError::Invalid(format!(
                    "unknown tag `{}`: one of {}",
                    t.chars().take(32).collect::<String>(),
                    RATING_TAGS.join(", ")
                )));
            }
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        Ok((self.score as u8, tags))
    }
}

fn milestone(code: &str, state: &str, at: Option<&str>) -> Value {
    json!({"code": code, "state": state, "at": at})
}

/// What the customer sees of a ticket: its service, its milestones (issued, called,
/// served) and whether they may rate it. `None`: no such ticket.
pub fn ticket_page(
    c: &Connection,
    cfg: &Config,
    day: &str,
    number: &str,
) -> Result<Option<Value>, StoreError> {
    let row = c
        .query_row(
            "SELECT service, state, issued_at, called_at, finished_at, rating, rating_tags, \
             rated_at FROM queue_tickets WHERE day = ?1 AND number = ?2",
            params![day, number],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ))
            },
        )
        .optional()?;
    let Some((service, state, issued, called, finished, rating, tags, rated_at)) = row else {
        return Ok(None);
    };
    let served = state == "served";
    let open = state == "waiting" || state == "called";
    let called_state = match (state.as_str(), &called) {
        (_, Some(_)) if state != "waiting" => "done",
        ("waiting", _) => "current",
        _ => "missed",
    };
    let served_state = match state.as_str() {
        "served" => "done",
        "called" => "current",
        "waiting" => "upcoming",
        _ => "missed",
    };
    let svc = cfg.service(&service);
    Ok(Some(json!({
        "kind": "ticket",
        "number": number,
        "day": day,
        "service": {
            "code": service,
            "name": svc.map(|s| s.name.clone()),
            "name_en": svc.map(|s| s.name_en.clone()),
        },
        "state": state,
        "open": open,
        "milestones": [
            milestone("issued", "done", Some(issued.as_str())),
            milestone("called", called_state, if called_state == "done" { called.as_deref() } else { None }),
            milestone("served", served_state, if served { finished.as_deref() } else { None }),
        ],
        "rating": rating.map(|s| json!({"score": s, "tags": tags_of(tags.as_deref()), "at": rated_at})),
        "can_rate": served && rating.is_none(),
    })))
}

fn tags_of(stored: Option<&str>) -> Value {
    stored
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_else(|| json!([]))
}

/// What the customer sees of an order: its title and business type, its milestones
/// (received, approved, each step with head office's customer label, delivered) and
/// whether they may rate it. `None`: no such order.
pub fn order_page(c: &Connection, id: &str) -> Result<Option<Value>, StoreError> {
    let Some(o) = orders::get(c, id)? else {
        return Ok(None);
    };
    let steps = orders::steps(c, id)?;
    let tags: Option<String> = c
        .query_row("SELECT rating_tags FROM orders WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?
        .flatten();
    let closed = matches!(o.status, OrderStatus::Cancelled | OrderStatus::Rejected);
    let mut milestones = vec![milestone("received", "done", Some(o.created_at.as_str()))];
    let approved = if o.approved_at.is_some() {
        "done"
    } else if closed {
        "missed"
    } else {
        "current"
    };
    milestones.push(milestone("approved", approved, o.approved_at.as_deref()));
    for s in &steps {
        let state = match s.state {
            StepState::Done => "done",
            StepState::Active => "current",
            _ if closed => "missed",
            _ => "upcoming",
        };
        milestones.push(json!({
            "code": "step",
            "key": s.spec.key,
            "label": s.spec.customer_label.clone().unwrap_or_else(|| s.spec.name.clone()),
            "state": state,
            "started_at": s.started_at,
            "at": s.finished_at,
        }));
    }
    let delivered = o.status == OrderStatus::Delivered;
    milestones.push(milestone(
        "delivered",
        if delivered {
            "done"
        } else if closed {
            "missed"
        } else {
            "upcoming"
        },
        o.delivered_at.as_deref(),
    ));
    Ok(Some(json!({
        "kind": "order",
        "id": o.id,
        "title": o.title,
        "business_type": o.business_type,
        "status": o.status,
        "open": o.status.is_open(),
        "milestones": milestones,
        "rating": o.rating.map(|s| json!({"score": s, "tags": tags_of(tags.as_deref()), "at": o.rated_at})),
        "can_rate": delivered && o.rating.is_none(),
    })))
}

/// The page of a verified link (`Unknown` when what it names is gone).
pub fn page(c: &Connection, cfg: &Config, link: &Link) -> Result<Value, VisitError> {
    let page = match link.kind {
        Kind::Order => order_page(c, &link.id)?,
        Kind::Ticket => {
            let (day, number) = link.id.split_once('/').ok_or(VisitError::Unknown)?;
            ticket_page(c, cfg, day, number)?
        }
    };
    let mut page = page.ok_or(VisitError::Unknown)?;
    page["expires_at"] = json!(rfc3339(link.expires));
    page["tags"] = json!(RATING_TAGS);
    Ok(page)
}

/// Rate a served ticket, once (`ticket.rated`).
pub fn rate_ticket(
    tx: &mut Tx<'_>,
    day: &str,
    number: &str,
    score: u8,
    tags: &[String],
) -> Result<(), VisitError> {
    let t = match super::tickets::find(tx.conn(), day, number) {
        Ok(t) => t,
        Err(super::QueueError::Store(e)) => return Err(VisitError::Store(e)),
        Err(_) => return Err(VisitError::Unknown),
    };
    let rating: Option<i64> = tx.conn().query_row(
        "SELECT rating FROM queue_tickets WHERE id = ?1",
        [t.id],
        |r| r.get(0),
    )?;
    if rating.is_some() {
        return Err(VisitError::AlreadyRated);
    }
    if t.state != super::TicketState::Served {
        return Err(VisitError::NotYet(
            "a ticket can be rated once it has been served",
        ));
    }
    let at = rfc3339(tx.now());
    tx.conn().execute(
        "UPDATE queue_tickets SET rating = ?3, rating_tags = ?4, rated_at = ?5 \
         WHERE day = ?1 AND number = ?2",
        params![
            day,
            number,
            i64::from(score),
            serde_json::to_string(tags).unwrap_or_else(|_| "[]".into()),
            at
        ],
    )?;
    tx.emit(
        "ticket.rated",
        t.journey(json!({"number": number, "day": day, "service": t.service,
               "counter": t.counter, "score": score, "tags": tags, "at": at})),
    )?;
    Ok(())
}

/// Rate a delivered order, once (`order.rated`, by the orders module).
pub fn rate_order(tx: &mut Tx<'_>, id: &str, score: u8, tags: &[String]) -> Result<(), VisitError> {
    let Some(o) = orders::get(tx.conn(), id)? else {
        return Err(VisitError::Unknown);
    };
    if o.rating.is_some() {
        return Err(VisitError::AlreadyRated);
    }
    if o.status != OrderStatus::Delivered {
        return Err(VisitError::NotYet(
            "an order can be rated once it has been delivered",
        ));
    }
    orders::rate(tx, id, score, None, tags).map_err(|e| match e {
        OrderError::Store(s) => VisitError::Store(s),
        other => VisitError::Invalid(other.to_string()),
    })
}

/// Requests a client may make at once before it is slowed down.
pub const BURST: u32 = 20;
/// …and then one per this long.
pub const REFILL: Duration = Duration::from_secs(3);
/// Clients remembered at most; beyond, those back at a full bucket are forgotten.
const MAX_CLIENTS: usize = 4096;

/// A token bucket per client address for the public routes.
#[derive(Debug, Default)]
pub struct RateLimit {
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimit {
    /// Take one request for `client` at `now`; `Err(seconds)` says when to come back.
    pub fn take(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let full = f64::from(BURST);
        let refill = |(tokens, at): (f64, Instant)| {
            let gained = now.saturating_duration_since(at).as_secs_f64() / REFILL.as_secs_f64();
            (tokens + gained).min(full)
        };
        if b.len() >= MAX_CLIENTS && !b.contains_key(&client) {
            b.retain(|_, v| refill(*v) < full);
        }
        let tokens = b.get(&client).map_or(full, |v| refill(*v));
        if tokens >= 1.0 {
            b.insert(client, (tokens - 1.0, now));
            Ok(())
        } else {
            b.insert(client, (tokens, now));
            Err(((1.0 - tokens) * REFILL.as_secs_f64()).ceil().max(1.0) as u64)
        }
    }
}

/// The key that signs customer links, read once from the store.
#[derive(Default)]
pub(super) struct LinkKey(std::sync::OnceLock<Vec<u8>>);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkQuery {
    ticket: Option<String>,
    order: Option<String>,
}

impl Queue {
    /// The box's customer-link key.
    pub async fn link_key(&self) -> Result<Vec<u8>, StoreError> {
        if let Some(k) = self.inner.link_key.0.get() {
            return Ok(k.clone());
        }
        let k = self.core.store.read(link::key).await?;
        Ok(self.inner.link_key.0.get_or_init(|| k).clone())
    }

    /// The customer page's URL for `kind`/`id`, valid until the business day of `now` ends.
    pub async fn customer_url(
        &self,
        kind: Kind,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<(String, Link), StoreError> {
        let cfg = self.core.config();
        let link = link::today(&cfg, now, kind, id);
        let token = link::sign(&self.link_key().await?, &link);
        Ok((token, link))
    }

    fn limited(&self, req: &Request) -> Result<(), ApiError> {
        let client = req
            .peer()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip());
        self.inner
            .limit
            .take(client, Instant::now())
            .map_err(|secs| {
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many requests from this address; try again later",
                );
                e.retry_after = Some(secs);
                e
            })
    }

    async fn verified(&self, token: &str) -> Result<Link, ApiError> {
        let key = self.link_key().await?;
        Ok(link::verify(&key, token, self.now()).map_err(VisitError::from)?)
    }

    /// The customer page's routes and the staff's link to it.
    pub fn visit_routes(&self) -> Vec<Route> {
        vec![
            // The QR code's address: the app shows the page (its router uses the hash).
            Route::get("/c/{token}", Access::Public).to(self.clone(), |_, req| async move {
                let token = req.param("token")?;
                if token.len() > 256
                    || !token
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(VisitError::Unknown.into());
                }
                let mut resp = warp::reply::Response::new(Default::default());
                *resp.status_mut() = StatusCode::FOUND;
                if let Ok(v) = warp::http::HeaderValue::from_str(&format!("/#/c/{token}")) {
                    resp.headers_mut().insert(warp::http::header::LOCATION, v);
                }
                Ok(resp)
            }),
            Route::get("/api/v1/public/c/{token}", Access::Public).to(self.clone(), show),
            Route::post("/api/v1/public/c/{token}/rating", Access::Public)
                .json()
                .to(self.clone(), rate),
            Route::get("/api/v1/customer-link", Access::Staff).to(self.clone(), staff_link),
        ]
    }
}

/// `GET /api/v1/public/c/{token}`.
async fn show(q: Queue, req: Request) -> Reply {
    q.limited(&req)?;
    let link = q.verified(req.param("token")?).await?;
    let cfg = q.core.config();
    let page = q.core.store.read(move |c| page(c, &cfg, &link)).await?;
    Ok(ok_json(&page))
}

/// `POST /api/v1/public/c/{token}/rating`.
async fn rate(q: Queue, req: Request) -> Reply {
    q.limited(&req)?;
    let link = q.verified(req.param("token")?).await?;
    let (score, tags) = req.json::<RatingBody>()?.checked()?;
    let cfg = q.core.config();
    let l = link.clone();
    q.core
        .store
        .write(move |tx| match l.kind {
            Kind::Order => rate_order(tx, &l.id, score, &tags),
            Kind::Ticket => {
                let (day, number) = l.id.split_once('/').ok_or(VisitError::Unknown)?;
                rate_ticket(tx, day, number, score, &tags)
            }
        })
        .await?;
    let page = q.core.store.read(move |c| page(c, &cfg, &link)).await?;
    Ok(ok_json(&page))
}

/// `GET /api/v1/customer-link?ticket=A007` (today's ticket) or `?order=<id>`: the token
/// and URL of the customer's page, for a counter PAD's rating sheet.
async fn staff_link(q: Queue, req: Request) -> Reply {
    let query: LinkQuery = req.query()?;
    let now = q.now();
    let cfg = q.core.config();
    let (kind, id) = match (query.ticket, query.order) {
        (Some(number), None) => {
            let day = business_day(&cfg, now);
            let (d, n) = (day.clone(), number.clone());
            let found = q
                .core
                .store
                .read(move |c| super::tickets::find(c, &d, &n).map(|_| ()))
                .await;
            found?;
            (Kind::Ticket, link::ticket_id(&day, &number))
        }
        (None, Some(id)) => {
            let i = id.clone();
            let found = q.core.store.read(move |c| orders::get(c, &i)).await?;
            if found.is_none() {
                return Err(ApiError::from(OrderError::NotFound(id)));
            }
            (Kind::Order, id)
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "give either `ticket` (a ticket number of today) or `order` (an order id)",
            ));
        }
    };
    let (token, link) = q.customer_url(kind, &id, now).await?;
    Ok(ok_json(&json!({
        "kind": kind.as_str(),
        "id": id,
        "token": token,
        "url": link::url(&cfg, &token),
        "expires_at": rfc3339(link.expires),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_client_gets_a_burst_then_one_request_per_refill_period() {
        let limit = RateLimit::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for i in 0..BURST {
            assert_eq!(limit.take(a, Instant::now()), Ok(()), "request {i}");
        }
        assert_eq!(limit.take(a, Instant::now()), Err(REFILL.as_secs()));
        // Another client is not slowed down by the first.
        assert_eq!(limit.take(b, Instant::now()), Ok(()));
        tokio::time::advance(REFILL / 3).await;
        assert_eq!(limit.take(a, Instant::now()), Err(2));
        tokio::time::advance(REFILL).await;
        assert_eq!(limit.take(a, Instant::now()), Ok(()));
        assert!(limit.take(a, Instant::now()).is_err());
        // Idle long enough, the whole burst is back.
        tokio::time::advance(REFILL * BURST).await;
        for _ in 0..BURST {
            assert_eq!(limit.take(a, Instant::now()), Ok(()));
        }
    }

    #[test]
    fn a_rating_takes_a_score_of_one_to_five_and_known_tags_once() {
        let body = |v: Value| serde_json::from_value::<RatingBody>(v).unwrap().checked();
        let (s, t) = body(json!({"score": 4, "tags": ["quick", "friendly", "quick"]})).unwrap();
        assert_eq!(
            (s, t),
            (4, vec!["quick".to_string(), "friendly".to_string()])
        );
        assert_eq!(body(json!({"score": 5})).unwrap().1, Vec::<String>::new());
        for bad in [
            json!({"score": 0}),
            json!({"score": 6}),
            json!({"score": 3, "tags": ["rude-staff-name"]}),
        ] {
            assert!(matches!(body(bad), Err(VisitError::Invalid(_))));
        }
        assert!(serde_json::from_value::<RatingBody>(json!({"score": 3, "comment": "x"})).is_err());
    }
}
