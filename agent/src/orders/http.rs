//! The orders API for the staff (lobby manager, branch manager).

use serde::Deserialize;
use serde_json::json;

use super::model::{self, OrderError};
use super::{Orders, views};
use crate::http::error::ApiError;
use crate::http::{Access, Reply, Request, Route, ok_json};
use crate::store::Tx;
use crate::users::Role;

/// The roles that handle orders.
const ORDER_ROLES: &[Role] = &[Role::LobbyManager, Role::BranchManager];

/// Every order route is for the same staff.
const STAFF: Access = Access::Roles(ORDER_ROLES);

impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> Self {
        match e {
            OrderError::NotFound(_) => ApiError::not_found("no_such_order", e.to_string()),
            OrderError::NoStep(..) => ApiError::not_found("no_such_step", e.to_string()),
            OrderError::State(_) => ApiError::conflict("invalid_order_state", e.to_string()),
            OrderError::Invalid(_) => ApiError::bad_request("invalid_request", e.to_string()),
            OrderError::Store(s) => s.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct ViewQuery {
    view: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    #[serde(default)]
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingBody {
    score: i64,
    #[serde(default)]
    comment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoverBody {
    to: String,
}

/// A staff action on the order in the path: what it does, and what the audit trail says.
struct Action {
    id: String,
    by: String,
    audit: &'static str,
    detail: serde_json::Value,
}

impl Action {
    fn of(
        req: &Request,
        audit: &'static str,
        detail: serde_json::Value,
    ) -> Result<Action, ApiError> {
        Ok(Action {
            id: req.param("id")?.to_string(),
            by: req.username()?,
            audit,
            detail,
        })
    }

    /// Run `f` in one write transaction with the audit record, and answer the order's
    /// staff view.
    async fn run<F>(self, o: &Orders, f: F) -> Reply
    where
        F: FnOnce(&mut Tx<'_>, &str, &str) -> Result<(), OrderError> + Send + 'static,
    {
        let Action {
            id,
            by,
            audit,
            detail,
        } = self;
        let oid = id.clone();
        o.core
            .store
            .write(move |tx| {
                f(tx, &oid, &by)?;
                crate::users::audit(tx, Some(&by), audit, Some(&oid), Some(&detail))?;
                Ok::<_, OrderError>(())
            })
            .await?;
        staff_answer(o, id).await
    }
}

/// The answer to a change: the order's staff view as it is now.
pub(super) async fn staff_answer(o: &Orders, id: String) -> Reply {
    let now = o.core.clock.now();
    let v = o
        .core
        .store
        .read(move |c| views::staff_view(c, &id, now))
        .await?;
    Ok(ok_json(&v))
}

fn check_len(what: &str, s: &Option<String>, max: usize) -> Result<(), ApiError> {
    match s {
        Some(t) if t.chars().count() > max => Err(ApiError::bad_request(
            "invalid_request",
            format!("`{what}` is longer than {max} characters"),
        )),
        _ => Ok(()),
    }
}

/// A step action: the step key from the path goes into the audit detail.
fn step_action(req: &Request, audit: &'static str) -> Result<(Action, String), ApiError> {
    let key = req.param("key")?.to_string();
    let b: NoteBody = req.json()?;
    Ok((
        Action::of(req, audit, json!({"step": key, "note": b.note}))?,
        key,
    ))
}

impl Orders {
    /// Every orders route.
    pub fn routes(&self) -> Vec<Route> {
        vec![
            Route::get("/api/v1/orders", STAFF).to(self.clone(), |o, _| async move {
                let now = o.core.clock.now();
                Ok(ok_json(
                    &o.core.store.read(move |c| views::list(c, now)).await?,
                ))
            }),
            Route::get("/api/v1/orders/{id}", STAFF).to(self.clone(), one),
            Route::post("/api/v1/orders/{id}/approve", STAFF).json().to(
                self.clone(),
                |o, req| async move {
                    let b: NoteBody = req.json()?;
                    Action::of(&req, "order.approve", json!({"note": b.note}))?
                        .run(&o, model::approve)
                        .await
                },
            ),
            Route::post("/api/v1/orders/{id}/reject", STAFF).json().to(
                self.clone(),
                |o, req| async move {
                    let b: ReasonBody = req.json()?;
                    let reason = Some(b.reason.trim().to_string()).filter(|r| !r.is_empty());
                    let Some(reason) = reason else {
                        return Err(ApiError::bad_request(
                            "invalid_request",
                            "`reason` is required",
                        ));
                    };
                    check_len("reason", &Some(reason.clone()), 200)?;
                    Action::of(&req, "order.reject", json!({"reason": reason}))?
                        .run(&o, move |tx, id, by| model::reject(tx, id, by, &reason))
                        .await
                },
            ),
            Route::post("/api/v1/orders/{id}/steps/{key}/start", STAFF)
                .json()
                .to(self.clone(), |o, req| async move {
                    let (action, key) = step_action(&req, "order.step_start")?;
                    let now = o.core.clock.now();
                    action
                        .run(&o, move |tx, id, by| {
                            model::start_step(tx, id, &key, by, now)
                        })
                        .await
                }),
            Route::post("/api/v1/orders/{id}/steps/{key}/finish", STAFF)
                .json()
                .to(self.clone(), |o, req| async move {
                    let (action, key) = step_action(&req, "order.step_finish")?;
                    let now = o.core.clock.now();
                    action
                        .run(&o, move |tx, id, by| {
                            model::finish_step(tx, id, &key, by, now)
                        })
                        .await
                }),
            Route::post("/api/v1/orders/{id}/deliver", STAFF).json().to(
                self.clone(),
                |o, req| async move {
                    let b: NoteBody = req.json()?;
                    let now = o.core.clock.now();
                    Action::of(&req, "order.deliver", json!({"note": b.note}))?
                        .run(&o, move |tx, id, by| model::deliver(tx, id, by, now))
                        .await
                },
            ),
            Route::post("/api/v1/orders/{id}/recall", STAFF).json().to(
                self.clone(),
                |o, req| async move {
                    let b: NoteBody = req.json()?;
                    Action::of(&req, "order.recall", json!({"note": b.note}))?
                        .run(&o, model::recall)
                        .await
                },
            ),
            Route::post("/api/v1/orders/{id}/urge", STAFF).json().to(
                self.clone(),
                |o, req| async move {
                    let b: NoteBody = req.json()?;
                    Action::of(&req, "order.urge", json!({"note": b.note}))?
                        .run(&o, model::urge)
                        .await
                },
            ),
            Route::post("/api/v1/orders/{id}/handover", STAFF)
                .json()
                .to(self.clone(), handover),
            Route::post("/api/v1/orders/{id}/customer", STAFF)
                .json()
                .to(self.clone(), super::fill::handle),
            Route::get("/api/v1/users/assignable", STAFF).to(self.clone(), |o, _| async move {
                let users = o
                    .core
                    .store
                    .read(|c| crate::users::active_with_roles(c, ORDER_ROLES))
                    .await?;
                let users: Vec<_> = users
                    .into_iter()
                    .map(|(id, username)| json!({"id": id, "username": username}))
                    .collect();
                Ok(ok_json(&users))
            }),
            Route::post("/api/v1/orders/{id}/rating", STAFF).json().to(
                self.clone(),
                |o, req| async move {
                    let b: RatingBody = req.json()?;
                    if !(1..=5).contains(&b.score) {
                        return Err(ApiError::bad_request(
                            "invalid_request",
                            "`score` must be an integer from 1 to 5",
                        ));
                    }
                    check_len("comment", &b.comment, 500)?;
                    let score = b.score as u8;
                    let comment = b.comment.filter(|c| !c.trim().is_empty());
                    Action::of(&req, "order.rating", json!({"score": score}))?
                        .run(&o, move |tx, id, _| {
                            model::rate(tx, id, score, comment.as_deref(), &[])
                        })
                        .await
                },
            ),
        ]
    }
}

/// `POST /api/v1/orders/{id}/handover`: the order goes to another member of staff who
/// handles orders (an unknown or disabled account: 400 `unknown_staff`, as for a counter's
/// staff; another role: 400 `not_order_staff`).
async fn handover(o: Orders, req: Request) -> Reply {
    let b: HandoverBody = req.json()?;
    let to = b.to.trim().to_string();
    if to.is_empty() || to.chars().count() > 64 {
        return Err(ApiError::bad_request(
            "invalid_request",
            "`to` must be a user name of 1 to 64 characters",
        ));
    }
    let name = to.clone();
    let user = o
        .core
        .store
        .read(move |c| crate::users::active_user(c, &name))
        .await?;
    let Some(user) = user else {
        return Err(ApiError::bad_request(
            "unknown_staff",
            format!("no active account `{to}`"),
        ));
    };
    if !ORDER_ROLES.contains(&user.role) {
        return Err(ApiError::bad_request(
            "not_order_staff",
            format!(
                "`{to}` is a {}: that role does not handle orders",
                user.role
            ),
        ));
    }
    Action::of(&req, "order.handover", json!({"to": to}))?
        .run(&o, move |tx, id, by| model::hand_over(tx, id, by, &to))
        .await
}

/// `GET /api/v1/orders/{id}?view=staff|customer`.
async fn one(o: Orders, req: Request) -> Reply {
    let id = req.param("id")?.to_string();
    let q: ViewQuery = req.query()?;
    let now = o.core.clock.now();
    let id2 = id.clone();
    let v = match q.view.as_deref().unwrap_or("staff") {
        "staff" => {
            o.core
                .store
                .read(move |c| views::staff_view(c, &id2, now))
                .await?
        }
        "customer" => {
            o.core
                .store
                .read(move |c| views::customer_view(c, &id2))
                .await?
        }
        other => {
            return Err(ApiError::bad_request(
                "invalid_view",
                format!("unknown view `{other}` (staff or customer)"),
            ));
        }
    };
    v.map(|v| ok_json(&v))
        .ok_or_else(|| ApiError::from(OrderError::NotFound(id)))
}
