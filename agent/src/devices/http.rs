//! The devices and tasks routes: thin adapters over the module's services.

use serde::Deserialize;
use serde_json::{Value, json};
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::{SendError, db};
use crate::app::App;
use crate::http::auth::{Authed, guard, respond};
use crate::http::error::ApiError;
use crate::http::{json_body, ok_json};

impl From<SendError> for ApiError {
    fn from(e: SendError) -> ApiError {
        let msg = e.to_string();
        match e {
            SendError::UnknownDevice(_) => ApiError::not_found("device_not_found", msg),
            SendError::BadRequest(_) => ApiError::bad_request("invalid_command", msg),
            SendError::Offline(_) => ApiError::conflict("device_offline", msg),
            SendError::Unavailable(..) => ApiError::unavailable("device_unavailable", msg),
            SendError::Timeout(..) => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "device_timeout", msg)
            }
            SendError::Store(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    op: String,
    #[serde(default)]
    args: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    note: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideBody {
    decision: String,
    #[serde(default)]
    redo: Vec<String>,
    #[serde(default)]
    comment: String,
}

const REDO_STEPS: &[&str] = &["face", "elements", "signature"];

/// The routes.
pub(super) fn routes(app: &App) -> warp::filters::BoxedFilter<(Response,)> {
    let limit = app.cfg.http.max_json_bytes;
    let a = app.clone();
    let list = warp::path!("api" / "v1" / "devices")
        .and(warp::get())
        .and(guard(app, "GET", "/api/v1/devices"))
        .then(move |_: Authed| {
            let app = a.clone();
            async move {
                respond(
                    app.store
                        .read(db::list)
                        .await
                        .map(|d| ok_json(&d))
                        .map_err(ApiError::from),
                )
            }
        });
    let a = app.clone();
    let sign_in = warp::path!("api" / "v1" / "devices" / String / "sign-in")
        .and(warp::post())
        .and(guard(app, "POST", "/api/v1/devices/{id}/sign-in"))
        .then(move |id: String, who: Authed| {
            let app = a.clone();
            async move { respond(sign(&app, id, true, who.user.username).await) }
        });
    let a = app.clone();
    let sign_out = warp::path!("api" / "v1" / "devices" / String / "sign-out")
        .and(warp::post())
        .and(guard(app, "POST", "/api/v1/devices/{id}/sign-out"))
        .then(move |id: String, who: Authed| {
            let app = a.clone();
            async move { respond(sign(&app, id, false, who.user.username).await) }
        });
    let a = app.clone();
    let commands = warp::path!("api" / "v1" / "devices" / String / "commands")
        .and(warp::post())
        .and(guard(app, "POST", "/api/v1/devices/{id}/commands"))
        .and(json_body::<CommandBody>(limit))
        .then(move |id: String, who: Authed, body: CommandBody| {
            let app = a.clone();
            async move {
                let r = super::send_command(&app, &id, &body.op, body.args, &who.user.username)
                    .await
                    .map(|r| ok_json(&r))
                    .map_err(ApiError::from);
                respond(r)
            }
        });
    let a = app.clone();
    let exceptions = warp::path!("api" / "v1" / "devices" / String / "exceptions")
        .and(warp::get())
        .and(guard(app, "GET", "/api/v1/devices/{id}/exceptions"))
        .then(move |id: String, _: Authed| {
            let app = a.clone();
            async move {
                let r = async {
                    known_device(&app, &id)?;
                    let list = app.store.read(move |c| db::open_exceptions(c, &id)).await?;
                    Ok(ok_json(&list))
                }
                .await;
                respond(r)
            }
        });
    let a = app.clone();
    let resolve = warp::path!("api" / "v1" / "devices" / String / "exceptions" / i64 / "resolve")
        .and(warp::post())
        .and(guard(
            app,
            "POST",
            "/api/v1/devices/{id}/exceptions/{exc_id}/resolve",
        ))
        .and(json_body::<ResolveBody>(limit))
        .then(
            move |id: String, exc: i64, who: Authed, body: ResolveBody| {
                let app = a.clone();
                async move { respond(resolve_exception(&app, id, exc, body, who).await) }
            },
        );
    let a = app.clone();
    let tasks = warp::path!("api" / "v1" / "tasks")
        .and(warp::get())
        .and(guard(app, "GET", "/api/v1/tasks"))
        .then(move |_: Authed| {
            let app = a.clone();
            async move {
                respond(
                    app.store
                        .read(|c| db::tasks(c, 200))
                        .await
                        .map(|t| ok_json(&t))
                        .map_err(ApiError::from),
                )
            }
        });
    let a = app.clone();
    let decide = warp::path!("api" / "v1" / "tasks" / i64 / "decide")
        .and(warp::post())
        .and(guard(app, "POST", "/api/v1/tasks/{id}/decide"))
        .and(json_body::<DecideBody>(limit))
        .then(move |task_id: i64, who: Authed, body: DecideBody| {
            let app = a.clone();
            async move { respond(decide(&app, task_id, body, who).await) }
        });
    list.or(sign_in)
        .unify()
        .or(sign_out)
        .unify()
        .or(commands)
        .unify()
        .or(exceptions)
        .unify()
        .or(resolve)
        .unify()
        .or(tasks)
        .unify()
        .or(decide)
        .unify()
        .boxed()
}

fn known_device(app: &App, id: &str) -> Result<(), ApiError> {
    if app.cfg.devices.iter().any(|d| d.id == id) {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "device_not_found",
            format!("no device `{id}` in this branch"),
        ))
    }
}

async fn sign(app: &App, id: String, sign_in: bool, by: String) -> Result<Response, ApiError> {
    if app.devices.with_slot(&id, |_| ()).is_none() {
        return Err(ApiError::not_found(
            "device_not_found",
            format!("no STM `{id}` in this branch"),
        ));
    }
    if !sign_in {
        let i = id.clone();
        let open = app.store.read(move |c| db::open_exceptions(c, &i)).await?;
        if !open.is_empty() {
            let codes: Vec<&str> = open.iter().map(|e| e.code.as_str()).collect();
            return Err(ApiError::conflict(
                "open_exceptions",
                format!(
                    "{id} has {} open exception(s) ({}); record how each was handled first",
                    open.len(),
                    codes.join(", ")
                ),
            )
            .with_details(json!({ "exceptions": open })));
        }
    }
    let op = if sign_in { "sign_in" } else { "sign_out" };
    let result = super::send_command(app, &id, op, json!({}), &by).await?;
    if result.ok {
        app.store
            .write(move |tx| db::on_signed(tx, &id, sign_in, &by))
            .await?;
    }
    Ok(ok_json(&result))
}

async fn resolve_exception(
    app: &App,
    id: String,
    exc: i64,
    body: ResolveBody,
    who: Authed,
) -> Result<Response, ApiError> {
    known_device(app, &id)?;
    let note = body.note.trim().to_string();
    if note.is_empty() || note.chars().count() > 1000 {
        return Err(ApiError::bad_request(
            "invalid_note",
            "`note` must say how the exception was handled (1–1000 characters)",
        ));
    }
    let by = who.user.username;
    app.store
        .write(move |tx| db::resolve_exception(tx, &id, exc, &note, &by))
        .await
        .map_err(|e| match e {
            db::ResolveError::NotFound(n) => ApiError::not_found(
                "exception_not_found",
                format!("no exception {n} on this device"),
            ),
            db::ResolveError::AlreadyResolved(n) => ApiError::conflict(
                "already_resolved",
                format!("exception {n} is already resolved"),
            ),
            db::ResolveError::Store(e) => e.into(),
        })?;
    Ok(ok_json(&json!({"ok": true})))
}

async fn decide(
    app: &App,
    task_id: i64,
    body: DecideBody,
    who: Authed,
) -> Result<Response, ApiError> {
    if !["approve", "reject", "redo"].contains(&body.decision.as_str()) {
        return Err(ApiError::bad_request(
            "invalid_decision",
            "`decision` must be approve, reject or redo",
        ));
    }
    if let Some(bad) = body.redo.iter().find(|s| !REDO_STEPS.contains(&s.as_str())) {
        return Err(ApiError::bad_request(
            "invalid_redo",
            format!("unknown redo step `{bad}` (face, elements or signature)"),
        ));
    }
    if body.decision == "redo" && body.redo.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_redo",
            "a redo decision names the steps to redo in `redo`",
        ));
    }
    if body.decision != "redo" && !body.redo.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_redo",
            "`redo` steps go only with the redo decision",
        ));
    }
    if body.comment.chars().count() > 500 {
        return Err(ApiError::bad_request(
            "invalid_comment",
            "`comment` is at most 500 characters",
        ));
    }
    let task = app
        .store
        .read(move |c| db::task(c, task_id))
        .await?
        .ok_or_else(|| ApiError::not_found("task_not_found", format!("no task {task_id}")))?;
    if !["pending", "redo", "timeout"].contains(&task.state.as_str()) {
        return Err(ApiError::conflict(
            "task_decided",
            format!("task {task_id} is already {}", task.state),
        ));
    }
    let by = who.user.username;
    let args = json!({"request_id": task.request_id, "decision": body.decision,
                      "redo": body.redo, "by": by, "comment": body.comment});
    let sent = super::raw_command(app, &task.device_id, "auth_result", args, &by, false).await;
    let outcome = match &sent {
        Ok(r) => Ok(r.clone()),
        Err(e) => Err(e.to_string()),
    };
    let (decision, redo, comment, by2) = (
        body.decision.clone(),
        body.redo.clone(),
        body.comment.clone(),
        by.clone(),
    );
    app.store
        .write(move |tx| {
            db::record_decision(tx, task_id, &decision, &redo, &comment, &by2, &outcome)
        })
        .await?;
    let result = sent?;
    if !result.ok {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "device_refused",
            format!(
                "{} refused the decision: {}",
                task.device_id,
                result.error.unwrap_or_default()
            ),
        ));
    }
    let task = app.store.read(move |c| db::task(c, task_id)).await?;
    Ok(ok_json(&task))
}
