//! The devices and tasks routes: thin adapters over the module's services.

use serde::Deserialize;
use serde_json::{Value, json};
use warp::http::StatusCode;

use super::{Devices, SendError, db};
use crate::http::error::ApiError;
use crate::http::{Access, Reply, Request, Route, ok_json};
use crate::users::Role;

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
            SendError::OpenExceptions { open, .. } => ApiError::conflict("open_exceptions", msg)
                .with_details(json!({ "exceptions": open })),
            SendError::Store(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandBody {
    op: String,
    #[serde(default)]
    args: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    note: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideBody {
    decision: String,
    #[serde(default)]
    redo: Vec<String>,
    #[serde(default)]
    comment: String,
}

const REDO_STEPS: &[&str] = &["face", "elements", "signature"];

const ADMIN: Access = Access::Roles(&[Role::DeviceAdmin]);
const ADMIN_OR_MANAGER: Access = Access::Roles(&[Role::DeviceAdmin, Role::BranchManager]);
const SUPERVISOR: Access = Access::Roles(&[Role::Supervisor]);

impl Devices {
    /// The devices and tasks routes.
    pub fn routes(&self) -> Vec<Route> {
        vec![
            Route::get("/api/v1/devices", ADMIN_OR_MANAGER).to(self.clone(), |d, _| async move {
                Ok(ok_json(&d.core.store.read(db::list).await?))
            }),
            Route::post("/api/v1/devices/{id}/sign-in", ADMIN).to(
                self.clone(),
                |d, req| async move {
                    sign(&d, req.param("id")?.to_string(), true, req.username()?).await
                },
            ),
            Route::post("/api/v1/devices/{id}/sign-out", ADMIN).to(
                self.clone(),
                |d, req| async move {
                    sign(&d, req.param("id")?.to_string(), false, req.username()?).await
                },
            ),
            Route::post("/api/v1/devices/{id}/commands", ADMIN)
                .json()
                .to(self.clone(), |d, req| async move {
                    let body: CommandBody = req.json()?;
                    let r = d
                        .send_command(req.param("id")?, &body.op, body.args, &req.username()?)
                        .await?;
                    Ok(ok_json(&r))
                }),
            Route::get("/api/v1/devices/{id}/exceptions", ADMIN).to(
                self.clone(),
                |d, req| async move {
                    let id = req.param("id")?.to_string();
                    known_device(&d, &id)?;
                    Ok(ok_json(
                        &d.core
                            .store
                            .read(move |c| db::open_exceptions(c, &id))
                            .await?,
                    ))
                },
            ),
            Route::post("/api/v1/devices/{id}/exceptions/{exc_id}/resolve", ADMIN)
                .json()
                .to(self.clone(), resolve_exception),
            Route::get("/api/v1/tasks", SUPERVISOR).to(self.clone(), |d, _| async move {
                Ok(ok_json(&d.core.store.read(|c| db::tasks(c, 200)).await?))
            }),
            Route::post("/api/v1/tasks/{id}/decide", SUPERVISOR)
                .json()
                .to(self.clone(), decide),
        ]
    }
}

fn known_device(d: &Devices, id: &str) -> Result<(), ApiError> {
    if d.core.cfg.devices.iter().any(|x| x.id == id) {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "device_not_found",
            format!("no device `{id}` in this branch"),
        ))
    }
}

async fn sign(d: &Devices, id: String, sign_in: bool, by: String) -> Reply {
    if d.with_slot(&id, |_| ()).is_none() {
        return Err(ApiError::not_found(
            "device_not_found",
            format!("no STM `{id}` in this branch"),
        ));
    }
    // The open-exception rule and the record of the new state are `send_command`'s, so
    // they hold for head office's and remote commands too.
    let op = if sign_in { "sign_in" } else { "sign_out" };
    let result = d.send_command(&id, op, json!({}), &by).await?;
    Ok(ok_json(&result))
}

async fn resolve_exception(d: Devices, req: Request) -> Reply {
    let id = req.param("id")?.to_string();
    let exc: i64 = req.parse("exc_id")?;
    let body: ResolveBody = req.json()?;
    known_device(&d, &id)?;
    let note = body.note.trim().to_string();
    if note.is_empty() || note.chars().count() > 1000 {
        return Err(ApiError::bad_request(
            "invalid_note",
            "`note` must say how the exception was handled (1–1000 characters)",
        ));
    }
    let by = req.username()?;
    d.core
        .store
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

async fn decide(d: Devices, req: Request) -> Reply {
    let task_id: i64 = req.parse("id")?;
    let body: DecideBody = req.json()?;
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
    let task = d
        .core
        .store
        .read(move |c| db::task(c, task_id))
        .await?
        .ok_or_else(|| ApiError::not_found("task_not_found", format!("no task {task_id}")))?;
    if task.state == db::TaskState::Redo {
        return Err(ApiError::conflict(
            "task_awaiting_redo",
            format!("task {task_id} waits for the STM to ask again after the redo"),
        ));
    }
    if !task.state.is_open() {
        return Err(ApiError::conflict(
            "task_decided",
            format!("task {task_id} is already {}", task.state),
        ));
    }
    let by = req.username()?;
    let args = json!({"request_id": task.request_id, "decision": body.decision,
                      "redo": body.redo, "by": by, "comment": body.comment});
    let sent = d
        .raw_command(&task.device_id, "auth_result", args, &by, false)
        .await;
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
    d.core
        .store
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
    let task = d.core.store.read(move |c| db::task(c, task_id)).await?;
    Ok(ok_json(&task))
}
