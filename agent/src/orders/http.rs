//! The orders API for the staff (lobby manager, branch manager).

use serde::Deserialize;
use serde_json::json;
use warp::Filter;
use warp::reply::Response;

use super::model::{self, OrderError};
use crate::app::App;
use crate::http::auth::{Authed, guard, respond};
use crate::http::error::ApiError;
use crate::http::{json_body, ok_json};

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
struct NoteBody {
    #[serde(default)]
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RatingBody {
    score: i64,
    #[serde(default)]
    comment: Option<String>,
}

async fn staff_answer(app: &App, id: String) -> Result<Response, ApiError> {
    let now = app.orders.clock.now();
    let v = app
        .store
        .read(move |c| model::staff_view(c, &id, now))
        .await?;
    Ok(ok_json(&v))
}

/// Who did what, for the audit trail.
struct Audit {
    by: String,
    action: &'static str,
    detail: serde_json::Value,
}

impl Audit {
    fn new(a: &Authed, action: &'static str, detail: serde_json::Value) -> Audit {
        Audit {
            by: a.user.username.clone(),
            action,
            detail,
        }
    }
}

/// Run one staff action in a write transaction (with its audit record) and answer the
/// order's staff view.
async fn act<F>(app: App, id: String, audit: Audit, f: F) -> Response
where
    F: FnOnce(&mut crate::store::Tx<'_>, &str) -> Result<(), OrderError> + Send + 'static,
{
    let r = async {
        let oid = id.clone();
        app.store
            .write(move |tx| {
                f(tx, &oid)?;
                crate::users::audit(
                    tx,
                    Some(&audit.by),
                    audit.action,
                    Some(&oid),
                    Some(&audit.detail),
                )?;
                Ok::<_, OrderError>(())
            })
            .await
            .map_err(ApiError::from)?;
        staff_answer(&app, id).await
    }
    .await;
    respond(r)
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

/// Every orders route.
pub fn routes(app: &App) -> warp::filters::BoxedFilter<(Response,)> {
    let limit = app.cfg.http.max_json_bytes;
    let list = {
        let app = app.clone();
        warp::path!("api" / "v1" / "orders")
            .and(warp::get())
            .and(guard(&app, "GET", "/api/v1/orders"))
            .then(move |_: Authed| {
                let app = app.clone();
                async move {
                    let now = app.orders.clock.now();
                    let r = app
                        .store
                        .read(move |c| model::list(c, now))
                        .await
                        .map(|v| ok_json(&v))
                        .map_err(ApiError::from);
                    respond(r)
                }
            })
    };
    let one = {
        let app = app.clone();
        warp::path!("api" / "v1" / "orders" / String)
            .and(warp::get())
            .and(guard(&app, "GET", "/api/v1/orders/{id}"))
            .and(warp::query::<ViewQuery>())
            .then(move |id: String, _: Authed, q: ViewQuery| {
                let app = app.clone();
                async move {
                    let now = app.orders.clock.now();
                    let r = async {
                        let v = match q.view.as_deref().unwrap_or("staff") {
                            "staff" => {
                                let id2 = id.clone();
                                app.store
                                    .read(move |c| model::staff_view(c, &id2, now))
                                    .await?
                            }
                            "customer" => {
                                let id2 = id.clone();
                                app.store
                                    .read(move |c| model::customer_view(c, &id2))
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
                            .ok_or_else(|| ApiError::from(OrderError::NotFound(id.clone())))
                    }
                    .await;
                    respond(r)
                }
            })
    };
    let approve = {
        let app = app.clone();
        warp::path!("api" / "v1" / "orders" / String / "approve")
            .and(warp::post())
            .and(guard(&app, "POST", "/api/v1/orders/{id}/approve"))
            .and(json_body::<NoteBody>(limit))
            .then(move |id: String, a: Authed, b: NoteBody| {
                let by = a.user.username.clone();
                let audit = Audit::new(&a, "order.approve", json!({"note": b.note}));
                act(app.clone(), id, audit, move |tx, id| {
                    model::approve(tx, id, &by)
                })
            })
    };
    let reject = {
        let app = app.clone();
        warp::path!("api" / "v1" / "orders" / String / "reject")
            .and(warp::post())
            .and(guard(&app, "POST", "/api/v1/orders/{id}/reject"))
            .and(json_body::<ReasonBody>(limit))
            .then(move |id: String, a: Authed, b: ReasonBody| {
                let app = app.clone();
                async move {
                    let reason = Some(b.reason.trim().to_string()).filter(|r| !r.is_empty());
                    if reason.is_none() {
                        return ApiError::bad_request("invalid_request", "`reason` is required")
                            .into_response_body();
                    }
                    if let Err(e) = check_len("reason", &reason, 200) {
                        return e.into_response_body();
                    }
                    let by = a.user.username.clone();
                    let reason = reason.unwrap_or_default();
                    let audit = Audit::new(&a, "order.reject", json!({"reason": reason}));
                    act(app, id, audit, move |tx, id| {
                        model::reject(tx, id, &by, &reason)
                    })
                    .await
                }
            })
    };
    let start = {
        let app = app.clone();
        warp::path!("api" / "v1" / "orders" / String / "steps" / String / "start")
            .and(warp::post())
            .and(guard(&app, "POST", "/api/v1/orders/{id}/steps/{key}/start"))
            .and(json_body::<NoteBody>(limit))
            .then(move |id: String, key: String, a: Authed, b: NoteBody| {
                let by = a.user.username.clone();
                let now = app.orders.clock.now();
                let audit =
                    Audit::new(&a, "order.step_start", json!({"step": key, "note": b.note}));
                act(app.clone(), id, audit, move |tx, id| {
                    model::start_step(tx, id, &key, &by, now)
                })
            })
    };
    let finish = {
        let app = app.clone();
        warp::path!("api" / "v1" / "orders" / String / "steps" / String / "finish")
            .and(warp::post())
            .and(guard(
                &app,
                "POST",
                "/api/v1/orders/{id}/steps/{key}/finish",
            ))
            .and(json_body::<NoteBody>(limit))
            .then(move |id: String, key: String, a: Authed, b: NoteBody| {
                let by = a.user.username.clone();
                let now = app.orders.clock.now();
                let audit = Audit::new(
                    &a,
                    "order.step_finish",
                    json!({"step": key, "note": b.note}),
                );
                act(app.clone(), id, audit, move |tx, id| {
                    model::finish_step(tx, id, &key, &by, now)
                })
            })
    };
    let deliver = {
        let app = app.clone();
        warp::path!("api" / "v1" / "orders" / String / "deliver")
            .and(warp::post())
            .and(guard(&app, "POST", "/api/v1/orders/{id}/deliver"))
            .and(json_body::<NoteBody>(limit))
            .then(move |id: String, a: Authed, b: NoteBody| {
                let by = a.user.username.clone();
                let now = app.orders.clock.now();
                let audit = Audit::new(&a, "order.deliver", json!({"note": b.note}));
                act(app.clone(), id, audit, move |tx, id| {
                    model::deliver(tx, id, &by, now)
                })
            })
    };
    let recall = {
        let app = app.clone();
        warp::path!("api" / "v1" / "orders" / String / "recall")
            .and(warp::post())
            .and(guard(&app, "POST", "/api/v1/orders/{id}/recall"))
            .and(json_body::<NoteBody>(limit))
            .then(move |id: String, a: Authed, b: NoteBody| {
                let by = a.user.username.clone();
                let audit = Audit::new(&a, "order.recall", json!({"note": b.note}));
                act(app.clone(), id, audit, move |tx, id| {
                    model::recall(tx, id, &by)
                })
            })
    };
    let rating = {
        let app = app.clone();
        warp::path!("api" / "v1" / "orders" / String / "rating")
            .and(warp::post())
            .and(guard(&app, "POST", "/api/v1/orders/{id}/rating"))
            .and(json_body::<RatingBody>(limit))
            .then(move |id: String, a: Authed, b: RatingBody| {
                let app = app.clone();
                async move {
                    if !(1..=5).contains(&b.score) {
                        return ApiError::bad_request(
                            "invalid_request",
                            "`score` must be an integer from 1 to 5",
                        )
                        .into_response_body();
                    }
                    if let Err(e) = check_len("comment", &b.comment, 500) {
                        return e.into_response_body();
                    }
                    let score = b.score as u8;
                    let comment = b.comment.filter(|c| !c.trim().is_empty());
                    let audit = Audit::new(&a, "order.rating", json!({"score": score}));
                    act(app, id, audit, move |tx, id| {
                        model::rate(tx, id, score, comment.as_deref())
                    })
                    .await
                }
            })
    };
    list.or(one)
        .unify()
        .or(approve)
        .unify()
        .or(reject)
        .unify()
        .or(start)
        .unify()
        .or(finish)
        .unify()
        .or(deliver)
        .unify()
        .or(recall)
        .unify()
        .or(rating)
        .unify()
        .boxed()
}

trait IntoBody {
    fn into_response_body(self) -> Response;
}

impl IntoBody for ApiError {
    fn into_response_body(self) -> Response {
        respond(Err(self))
    }
}
