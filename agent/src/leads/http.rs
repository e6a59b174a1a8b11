//! `GET /api/v1/leads`, `POST /api/v1/leads/{id}/feedback`.

use serde::Deserialize;
use serde_json::json;

use super::{FeedbackError, Leads, Outcome, feedback, list};
use crate::customers::SERVING;
use crate::http::error::ApiError;
use crate::http::{Route, ok_json};

impl From<FeedbackError> for ApiError {
    fn from(e: FeedbackError) -> ApiError {
        let msg = e.to_string();
        match e {
            FeedbackError::Unknown(_) => ApiError::not_found("lead_unknown", msg),
            FeedbackError::Closed(..) => ApiError::conflict("lead_closed", msg),
            FeedbackError::Expired(..) => ApiError::conflict("lead_expired", msg),
            FeedbackError::Invalid(_) => ApiError::bad_request("invalid_feedback", msg),
            FeedbackError::Store(e) => e.into(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeadQuery {
    /// One customer's leads.
    customer_id: Option<String>,
    /// Only the leads of the caller's own customers (as relationship manager).
    mine: Option<bool>,
    /// Also closed and expired leads.
    all: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackBody {
    outcome: String,
    note: Option<String>,
}

pub(super) fn routes(l: &Leads) -> Vec<Route> {
    vec![
        Route::get("/api/v1/leads", SERVING).to(l.core.clone(), |core, req| async move {
            let q: LeadQuery = req.query()?;
            let me = req.username()?;
            let now = core.clock.now();
            let customer = q.customer_id.clone().filter(|c| !c.is_empty());
            let all = q.all == Some(true);
            let mut leads = core
                .store
                .read(move |c| list(c, customer.as_deref(), all, now))
                .await?;
            if q.mine == Some(true) {
                leads.retain(|l| l.relationship_manager.as_deref() == Some(me.as_str()));
            }
            Ok(ok_json(&json!({ "leads": leads })))
        }),
        Route::post("/api/v1/leads/{id}/feedback", SERVING)
            .json()
            .to(l.core.clone(), |core, req| async move {
                let b: FeedbackBody = req.json()?;
                let outcome: Outcome = b.outcome.parse().map_err(|_| {
                    ApiError::bad_request(
                        "invalid_feedback",
                        "`outcome` must be one of contacted, interested, declined, sold",
                    )
                })?;
                let id = req.param("id")?.to_string();
                let by = req.username()?;
                let lead = core
                    .store
                    .write(move |tx| feedback(tx, &id, outcome, b.note.as_deref(), &by))
                    .await?;
                Ok(ok_json(&lead))
            }),
    ]
}
