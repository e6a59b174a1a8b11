//! Marketing leads (营销线索) from head office (`lead.push`: a customer, a product, why, and
//! until when): shown on the customer's arrival card and to their relationship manager
//! when the customer is identified in the branch (an alert naming the manager), and
//! answered by the staff — contacted, interested, declined, sold — each answer a
//! `lead.feedback` event for head office.

pub mod demo;
mod http;
/// The JSON bodies of this module's routes, public for the fuzz targets (agent/fuzz).
#[doc(hidden)]
pub use http::FeedbackBody;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::alerts::{self, Level, NewAlert};
use crate::clock::{parse, rfc3339};
use crate::command::Fields;
use crate::core::Core;
use crate::customers;
use crate::http::Route;
use crate::retention::{Bounded, Cutoff, Rule};
use crate::store::{Event, Schema, StoreError, Tx};
use crate::users;

/// This module's tables.
pub const SCHEMA: Schema = Schema {
    module: "leads",
    steps: &[
        // 1: leads and every answer the staff gave.
        "CREATE TABLE leads (
             lead_id TEXT PRIMARY KEY,
             customer_id TEXT NOT NULL,
             product TEXT NOT NULL,
             reason TEXT NOT NULL,
             expires_at TEXT NOT NULL,
             received_at TEXT NOT NULL,
             outcome TEXT,
             outcome_at TEXT,
             outcome_by TEXT
         ) STRICT;
         CREATE INDEX leads_customer ON leads(customer_id);
         CREATE TABLE leads_feedback (
             id INTEGER PRIMARY KEY,
             lead_id TEXT NOT NULL REFERENCES leads(lead_id) ON DELETE CASCADE,
             outcome TEXT NOT NULL,
             note TEXT,
             by TEXT NOT NULL,
             ts TEXT NOT NULL
         ) STRICT;",
    ],
};

/// Answered leads, and expired ones, go after `[retention] leads_days`, their feedback
/// with them.
pub const RETENTION: &[Rule] = &[Rule {
    table: "leads",
    old: "coalesce(outcome_at, expires_at) < ?1",
    cutoff: Cutoff::Time,
    keep: |c| c.retention.leads,
}];

/// Feedback is deleted with its lead (`ON DELETE CASCADE`).
pub const BOUNDED: &[Bounded] = &[Bounded {
    table: "leads_feedback",
    why: "deleted with its lead",
}];

/// This module's OpenAPI fragment.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Why head office thinks the product fits the customer.
pub const REASONS: &[&str] = &[
    "deposit_maturing",
    "wealth_maturing",
    "idle_funds",
    "birthday",
    "product_fit",
    "loan_need",
];

crate::store::text_enum! {
    /// What came of a lead.
    pub enum Outcome {
        /// The customer was spoken to.
        Contacted = "contacted",
        /// The customer is interested.
        Interested = "interested",
        /// The customer said no (the lead is closed).
        Declined = "declined",
        /// The customer bought (the lead is closed).
        Sold = "sold",
    }
}

impl Outcome {
    /// Whether the lead is closed after this outcome.
    pub fn closes(self) -> bool {
        matches!(self, Outcome::Declined | Outcome::Sold)
    }
}

/// A lead as head office pushes it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLead {
    /// Head office's lead id.
    pub lead_id: String,
    /// The customer.
    pub customer_id: String,
    /// The product's code.
    pub product: String,
    /// One of [`REASONS`].
    pub reason: String,
    /// Until when it is worth acting on.
    pub expires_at: DateTime<Utc>,
}

/// Parse and check the `data` of `lead.push`; the error names every problem.
pub fn parse_push(data: &Map<String, Value>) -> Result<NewLead, String> {
    let mut f = Fields::new(data);
    let lead_id = f.id("lead_id");
    let customer_id = f.id("customer_id");
    let product = f.id("product");
    let reason = f.one_of("reason", REASONS);
    let expires_at = f.opt_time("expires_at");
    if expires_at.is_none() && !f.has("expires_at") {
        f.problem("`expires_at` is required");
    }
    f.finish()?;
    Ok(NewLead {
        lead_id: lead_id.unwrap_or_default(),
        customer_id: customer_id.unwrap_or_default(),
        product: product.unwrap_or_default(),
        reason: reason.unwrap_or_default(),
        expires_at: expires_at.unwrap_or_default(),
    })
}

/// Apply `lead.push` (`lead.received`). The inner `Err` is a refusal: a lead that has
/// already expired.
pub fn push(tx: &mut Tx<'_>, l: &NewLead, command: &str) -> Result<Result<(), String>, StoreError> {
    if l.expires_at <= tx.now() {
        return Ok(Err(format!(
            "`expires_at` {} is already past",
            rfc3339(l.expires_at)
        )));
    }
    tx.conn().execute(
        "INSERT INTO leads(lead_id, customer_id, product, reason, expires_at, received_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT(lead_id) DO UPDATE SET customer_id = excluded.customer_id, \
             product = excluded.product, reason = excluded.reason, \
             expires_at = excluded.expires_at",
        params![
            l.lead_id,
            l.customer_id,
            l.product,
            l.reason,
            rfc3339(l.expires_at),
            rfc3339(tx.now())
        ],
    )?;
    tx.emit(
        "lead.received",
        json!({"lead_id": l.lead_id, "customer_id": l.customer_id, "product": l.product,
               "reason": l.reason, "expires_at": rfc3339(l.expires_at), "command": command}),
    )?;
    Ok(Ok(()))
}

/// A lead as the PAD shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lead {
    /// Head office's lead id.
    pub lead_id: String,
    /// The customer.
    pub customer_id: String,
    /// The customer's name, when the box knows it.
    pub customer_name: Option<String>,
    /// The customer's relationship manager.
    pub relationship_manager: Option<String>,
    /// The product's code.
    pub product: String,
    /// Why.
    pub reason: String,
    /// Until when.
    pub expires_at: String,
    /// Whether it has expired.
    pub expired: bool,
    /// The last outcome recorded.
    pub outcome: Option<Outcome>,
    /// When.
    pub outcome_at: Option<String>,
    /// By whom.
    pub outcome_by: Option<String>,
    /// Whether it still asks for action (not expired, not declined or sold).
    pub open: bool,
}

const COLUMNS: &str =
    "lead_id, customer_id, product, reason, expires_at, outcome, outcome_at, outcome_by";

fn from_row(r: &rusqlite::Row<'_>, now: DateTime<Utc>) -> rusqlite::Result<Lead> {
    let expires_at: String = r.get(4)?;
    let outcome: Option<Outcome> = r.get(5)?;
    let expired = parse(&expires_at).is_none_or(|e| e <= now);
    Ok(Lead {
        lead_id: r.get(0)?,
        customer_id: r.get(1)?,
        customer_name: None,
        relationship_manager: None,
        product: r.get(2)?,
        reason: r.get(3)?,
        expires_at,
        expired,
        open: !expired && !outcome.is_some_and(Outcome::closes),
        outcome,
        outcome_at: r.get(6)?,
        outcome_by: r.get(7)?,
    })
}

/// One lead.
pub fn get(c: &Connection, lead_id: &str, now: DateTime<Utc>) -> Result<Option<Lead>, StoreError> {
    let mut l = c
        .query_row(
            &format!("SELECT {COLUMNS} FROM leads WHERE lead_id = ?1"),
            [lead_id],
            |r| from_row(r, now),
        )
        .optional()?;
    if let Some(l) = &mut l {
        describe(c, l)?;
    }
    Ok(l)
}

fn describe(c: &Connection, l: &mut Lead) -> Result<(), StoreError> {
    if let Some(p) = customers::profile(c, &l.customer_id)? {
        l.customer_name = Some(p.name);
        l.relationship_manager = p.relationship_manager;
    }
    Ok(())
}

/// Leads, newest first: of one customer, or all; only open ones unless `all`.
pub fn list(
    c: &Connection,
    customer_id: Option<&str>,
    all: bool,
    now: DateTime<Utc>,
) -> Result<Vec<Lead>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM leads WHERE ?1 IS NULL OR customer_id = ?1 \
         ORDER BY received_at DESC, lead_id"
    ))?;
    let rows = stmt.query_map([customer_id], |r| from_row(r, now))?;
    let mut out = Vec::new();
    for l in rows {
        let mut l = l?;
        if all || l.open {
            describe(c, &mut l)?;
            out.push(l);
        }
    }
    Ok(out)
}

/// Why an answer was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    /// No such lead.
    #[error("no lead `{0}`")]
    Unknown(String),
    /// The lead was declined or sold already.
    #[error("lead `{0}` is closed ({1})")]
    Closed(String, Outcome),
    /// The lead has expired.
    #[error("lead `{0}` expired at {1}")]
    Expired(String, String),
    /// The note is too long.
    #[error("{0}")]
    Invalid(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Record the staff's answer to a lead (`lead.feedback`, for head office).
pub fn feedback(
    tx: &mut Tx<'_>,
    lead_id: &str,
    outcome: Outcome,
    note: Option<&str>,
    by: &str,
) -> Result<Lead, FeedbackError> {
    if note.is_some_and(|n| n.chars().count() > 200 || n.trim().is_empty()) {
        return Err(FeedbackError::Invalid(
            "`note` must be 1–200 characters".into(),
        ));
    }
    let now = tx.now();
    let l = get(tx.conn(), lead_id, now)?.ok_or_else(|| FeedbackError::Unknown(lead_id.into()))?;
    if let Some(o) = l.outcome.filter(|o| o.closes()) {
        return Err(FeedbackError::Closed(l.lead_id, o));
    }
    if l.expired {
        return Err(FeedbackError::Expired(l.lead_id, l.expires_at));
    }
    let ts = rfc3339(now);
    tx.conn()
        .execute(
            "UPDATE leads SET outcome = ?2, outcome_at = ?3, outcome_by = ?4 WHERE lead_id = ?1",
            params![lead_id, outcome, ts, by],
        )
        .map_err(StoreError::from)?;
    tx.conn().execute(
        "INSERT INTO leads_feedback(lead_id, outcome, note, by, ts) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![lead_id, outcome, note, by, ts],
    )
    .map_err(StoreError::from)?;
    let mut data = json!({"lead_id": lead_id, "customer_id": l.customer_id, "product": l.product,
                          "outcome": outcome, "by": by, "at": ts});
    if let Some(n) = note {
        data["note"] = json!(n);
    }
    tx.emit("lead.feedback", data)?;
    Ok(get(tx.conn(), lead_id, now)?.unwrap_or(l))
}

/// The durable consumer that tells the staff of a customer's open leads on arrival.
pub const ARRIVALS: &str = "leads.arrivals";

/// Whether `ev` is a customer's first identification of the day.
pub fn is_arrival(ev: &Event) -> bool {
    ev.kind == "customer.arrived"
}

/// A customer arrived: one alert for the lobby managers and, by name, the customer's
/// relationship manager, listing the open leads (none when there are none). Like every
/// event, it names the customer by id only (the PAD knows the name).
pub fn arrived(tx: &mut Tx<'_>, ev: &Event) -> Result<(), StoreError> {
    let Some(customer_id) = ev.data.get("customer_id").and_then(|v| v.as_str()) else {
        return Ok(());
    };
    let open: Vec<Lead> = list(tx.conn(), Some(customer_id), false, ev.ts)?;
    if open.is_empty() {
        return Ok(());
    }
    let rm = open[0].relationship_manager.clone();
    let mut notify_users = Vec::new();
    if let Some(rm) = &rm
        && users::is_active(tx.conn(), rm)?
    {
        notify_users.push(rm.clone());
    }
    let leads: Vec<Value> = open
        .iter()
        .map(|l| json!({"lead_id": l.lead_id, "product": l.product, "reason": l.reason}))
        .collect();
    let message = format!(
        "customer {customer_id} arrived with {} open lead(s)",
        open.len()
    );
    alerts::raise(
        tx,
        &NewAlert {
            kind: "lead.customer_arrived",
            level: Level::Info,
            source: Some(customer_id),
            key: None,
            message: &message,
            data: json!({"customer_id": customer_id, "relationship_manager": rm,
                         "count": open.len(), "leads": leads,
                         "notify": {"roles": ["lobby_manager"], "users": notify_users}}),
        },
    )?;
    Ok(())
}

/// The leads module's handle.
#[derive(Debug, Clone)]
pub struct Leads {
    core: Core,
}

impl Leads {
    /// The leads module.
    pub fn new(core: &Core) -> Leads {
        Leads { core: core.clone() }
    }

    /// Start telling the staff of arrivals with open leads.
    pub fn start(&self) {
        let core = &self.core;
        core.spawn(crate::store::consume(
            core.store.clone(),
            ARRIVALS,
            core.cancel.clone(),
            is_arrival,
            arrived,
        ));
    }

    /// The routes (see `http.rs`).
    pub fn routes(&self) -> Vec<Route> {
        http::routes(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn bad_pushes_name_every_problem() {
        let cases: &[(Value, &str)] = &[
            (
                json!({}),
                "`lead_id` is required; `customer_id` is required; `product` is required; `reason` is required; `expires_at` is required",
            ),
            (
                json!({"lead_id": "L1", "customer_id": "C1", "product": "WM-91", "reason": "hunch", "expires_at": "2099-01-01T00:00:00Z"}),
                "`reason` must be one of deposit_maturing",
            ),
            (
                json!({"lead_id": "L1", "customer_id": "C1", "product": "WM-91", "reason": "birthday", "expires_at": "soon"}),
                "`expires_at` must be an RFC 3339 time",
            ),
            (
                json!({"lead_id": "L1", "customer_id": "C1", "product": "WM-91", "reason": "birthday", "expires_at": "2099-01-01T00:00:00Z", "score": 9}),
                "unknown key `score`",
            ),
        ];
        for (data, want) in cases {
            let got = parse_push(&map(data.clone())).expect_err("refused");
            assert!(got.contains(want), "{data}: `{got}` lacks `{want}`");
        }
    }

    #[test]
    fn answers_are_recorded_until_the_lead_closes_and_an_arrival_tells_the_manager() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("l.db"), crate::modules::SCHEMAS).unwrap();
        let lead = parse_push(&map(
            json!({"lead_id": "L1", "customer_id": "C-10001", "product": "WM-91",
            "reason": "deposit_maturing", "expires_at": "2099-01-01T00:00:00Z"}),
        ))
        .unwrap();
        let past = NewLead {
            lead_id: "L0".into(),
            expires_at: Utc::now() - chrono::Duration::hours(1),
            ..lead.clone()
        };
        store
            .write_blocking(move |tx| {
                let hash = users::hash_password("x");
                users::insert_user(tx, "manager", users::Role::BranchManager, &hash).unwrap();
                customers::upsert(
                    tx,
                    &customers::CustomerRecord {
                        customer_id: "C-10001".into(),
                        id_hash: None,
                        name: "王芳".into(),
                        level: None,
                        risk_level: None,
                        birthday: None,
                        relationship_manager: Some("manager".into()),
                        maturities: Vec::new(),
                    },
                    "c",
                )?;
                assert_eq!(push(tx, &lead, "cmd-1")?, Ok(()));
                assert!(
                    push(tx, &past, "cmd-0")?
                        .unwrap_err()
                        .contains("already past")
                );
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let step = |o: Outcome| {
            store.write_blocking(move |tx| feedback(tx, "L1", o, Some("门口聊过"), "lobby"))
        };
        let l = step(Outcome::Interested).unwrap();
        assert_eq!((l.outcome, l.open), (Some(Outcome::Interested), true));
        let l = step(Outcome::Sold).unwrap();
        assert_eq!((l.outcome, l.open), (Some(Outcome::Sold), false));
        assert!(matches!(
            step(Outcome::Contacted),
            Err(FeedbackError::Closed(_, Outcome::Sold))
        ));
        assert!(matches!(
            store.write_blocking(|tx| feedback(tx, "L9", Outcome::Sold, None, "lobby")),
            Err(FeedbackError::Unknown(_))
        ));
        let fb: Vec<Value> = store
            .read_blocking(|c| crate::store::events_after(c, 0, 1000))
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "lead.feedback")
            .map(|e| e.data)
            .collect();
        assert_eq!(fb.len(), 2, "each answer once, for head office");
        assert_eq!(
            (fb[1]["outcome"].as_str(), fb[1]["product"].as_str()),
            (Some("sold"), Some("WM-91"))
        );

        // A second lead, open: the customer's arrival raises one alert naming the manager.
        let l2 = NewLead {
            lead_id: "L2".into(),
            ..parse_push(&map(json!({"lead_id": "L2", "customer_id": "C-10001",
            "product": "TD-1Y", "reason": "birthday", "expires_at": "2099-01-01T00:00:00Z"})))
            .unwrap()
        };
        store
            .write_blocking(move |tx| push(tx, &l2, "cmd-2").map(|_| ()))
            .unwrap();
        let ev = Event {
            seq: 99,
            id: "x".into(),
            ts: Utc::now(),
            kind: "customer.arrived".into(),
            data: json!({"customer_id": "C-10001", "via": "ticket"}),
        };
        assert!(is_arrival(&ev));
        store.write_blocking(move |tx| arrived(tx, &ev)).unwrap();
        let alert: Value = store
            .read_blocking(|c| {
                Ok::<_, StoreError>(c.query_row(
                    "SELECT data FROM alerts WHERE kind = 'lead.customer_arrived'",
                    [],
                    |r| r.get::<_, String>(0),
                )?)
            })
            .map(|s| serde_json::from_str(&s).unwrap())
            .unwrap();
        assert_eq!(alert["notify"]["users"], json!(["manager"]));
        assert_eq!(alert["count"], json!(1), "the sold lead is not listed");
        assert_eq!(alert["leads"][0]["product"], json!("TD-1Y"));
        assert!(
            !alert.to_string().contains("王芳"),
            "no name leaves the box: {alert}"
        );
    }
}
