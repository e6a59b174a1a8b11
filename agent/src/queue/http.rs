//! The queue's HTTP routes: thin adapters onto [`super::ops`].

use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::ops::{self, QueueError, Source, TransferTo};
use crate::app::App;
use crate::http::auth::{Authed, guard, respond};
use crate::http::error::ApiError;
use crate::http::routes::{Access, RouteSpec, route};
use crate::http::{json_body, ok_json};
use crate::users::Role;

const LOBBY: Access = Access::Roles(&[Role::LobbyManager]);
const LOBBY_OR_MANAGER: Access = Access::Roles(&[Role::LobbyManager, Role::BranchManager]);

/// The queue's routes and who may call them.
pub const ROUTES: &[RouteSpec] = &[
    route("POST", "/api/v1/tickets", Access::Staff, "/api/v1/tickets"),
    route("GET", "/api/v1/queue", LOBBY_OR_MANAGER, "/api/v1/queue"),
    route(
        "POST",
        "/api/v1/counters/{id}/call-next",
        LOBBY,
        "/api/v1/counters/1/call-next",
    ),
    route(
        "POST",
        "/api/v1/tickets/{number}/recall",
        LOBBY,
        "/api/v1/tickets/A001/recall",
    ),
    route(
        "POST",
        "/api/v1/tickets/{number}/skip",
        LOBBY,
        "/api/v1/tickets/A001/skip",
    ),
    route(
        "POST",
        "/api/v1/tickets/{number}/serve-done",
        LOBBY,
        "/api/v1/tickets/A001/serve-done",
    ),
    route(
        "POST",
        "/api/v1/tickets/{number}/transfer",
        LOBBY,
        "/api/v1/tickets/A001/transfer",
    ),
    route(
        "POST",
        "/api/v1/tickets/{number}/move",
        LOBBY,
        "/api/v1/tickets/A001/move",
    ),
    route(
        "POST",
        "/api/v1/tickets/{number}/reprint",
        LOBBY,
        "/api/v1/tickets/A001/reprint",
    ),
];

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        let msg = e.to_string();
        match e {
            QueueError::UnknownService(_) => ApiError::bad_request("unknown_service", msg),
            QueueError::UnknownTicket(_) => ApiError::not_found("unknown_ticket", msg),
            QueueError::UnknownCounter(_) => ApiError::not_found("unknown_counter", msg),
            QueueError::BadCounter(_) => ApiError::bad_request("unknown_counter", msg),
            QueueError::QueueEmpty(_) => ApiError::not_found("queue_empty", msg),
            QueueError::WrongState { .. } => ApiError::conflict("wrong_state", msg),
            QueueError::BadPosition { .. } => ApiError::bad_request("invalid_position", msg),
            QueueError::Invalid(_) => ApiError::bad_request("invalid_request", msg),
            QueueError::ServiceClosed(..) => ApiError::conflict("service_closed", msg),
            QueueError::NoPrinter => ApiError::conflict("no_printer", msg),
            QueueError::PrinterUnavailable(_) => ApiError::conflict("printer_unavailable", msg),
            QueueError::Store(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    service: String,
    customer_id: Option<String>,
    customer_level: Option<String>,
    appointment_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    service: Option<String>,
    counter: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    position: u32,
    reason: Option<String>,
}

fn created<T: serde::Serialize>(v: &T) -> Response {
    warp::reply::with_status(warp::reply::json(v), StatusCode::CREATED).into_response()
}

/// The routes.
pub fn routes(app: &App) -> warp::filters::BoxedFilter<(Response,)> {
    let limit = app.cfg.http.max_json_bytes;
    let issue = {
        let app = app.clone();
        warp::path!("api" / "v1" / "tickets")
            .and(warp::post())
            .and(guard(&app, "POST", "/api/v1/tickets"))
            .and(json_body::<IssueBody>(limit))
            .then(move |_: Authed, b: IssueBody| {
                let app = app.clone();
                async move {
                    let req = ops::IssueRequest {
                        source: if b.appointment_id.is_some() {
                            Source::Appointment
                        } else {
                            Source::Pad
                        },
                        service: b.service,
                        customer_id: b.customer_id,
                        customer_level: b.customer_level,
                        appointment_id: b.appointment_id,
                    };
                    respond(
                        super::issue(&app, req)
                            .await
                            .map(|t| created(&t))
                            .map_err(ApiError::from),
                    )
                }
            })
    };
    let queue = {
        let app = app.clone();
        warp::path!("api" / "v1" / "queue")
            .and(warp::get())
            .and(guard(&app, "GET", "/api/v1/queue"))
            .then(move |_: Authed| {
                let app = app.clone();
                async move {
                    respond(
                        super::snapshot(&app)
                            .await
                            .map(|q| ok_json(&q))
                            .map_err(ApiError::from),
                    )
                }
            })
    };
    let call_next = {
        let app = app.clone();
        warp::path!("api" / "v1" / "counters" / String / "call-next")
            .and(warp::post())
            .and(guard(&app, "POST", "/api/v1/counters/{id}/call-next"))
            .then(move |id: String, _: Authed| {
                let app = app.clone();
                async move {
                    let r =
                        super::operate(&app, move |tx, cfg, now| ops::call_next(tx, cfg, now, &id))
                            .await;
                    respond(r.map(|t| ok_json(&t)).map_err(ApiError::from))
                }
            })
    };
    let simple = |action: &'static str, path: &'static str| {
        let app = app.clone();
        warp::path("api")
            .and(warp::path("v1"))
            .and(warp::path("tickets"))
            .and(warp::path::param::<String>())
            .and(warp::path(action))
            .and(warp::path::end())
            .and(warp::post())
            .and(guard(&app, "POST", path))
            .then(move |number: String, _: Authed| {
                let app = app.clone();
                async move {
                    let r = match action {
                        "recall" => {
                            super::operate(&app, move |tx, cfg, now| {
                                ops::recall(tx, cfg, now, &number)
                            })
                            .await
                        }
                        "skip" => {
                            super::operate(&app, move |tx, cfg, now| {
                                ops::skip(tx, cfg, now, &number)
                            })
                            .await
                        }
                        "serve-done" => {
                            super::operate(&app, move |tx, cfg, now| {
                                ops::serve_done(tx, cfg, now, &number)
                            })
                            .await
                        }
                        _ => super::reprint(&app, &number).await,
                    };
                    respond(r.map(|t| ok_json(&t)).map_err(ApiError::from))
                }
            })
            .boxed()
    };
    let transfer = {
        let app = app.clone();
        warp::path!("api" / "v1" / "tickets" / String / "transfer")
            .and(warp::post())
            .and(guard(&app, "POST", "/api/v1/tickets/{number}/transfer"))
            .and(json_body::<TransferBody>(limit))
            .then(move |number: String, _: Authed, b: TransferBody| {
                let app = app.clone();
                async move {
                    let to = match (b.service, b.counter) {
                        (Some(s), None) => TransferTo::Service(s),
                        (None, Some(c)) => TransferTo::Counter(c),
                        _ => {
                            return ApiError::bad_request(
                                "invalid_request",
                                "give exactly one of service or counter",
                            )
                            .into_response();
                        }
                    };
                    let r = super::operate(&app, move |tx, cfg, now| {
                        ops::transfer(tx, cfg, now, &number, &to)
                    })
                    .await;
                    respond(r.map(|t| ok_json(&t)).map_err(ApiError::from))
                }
            })
    };
    let move_to = {
        let app = app.clone();
        warp::path!("api" / "v1" / "tickets" / String / "move")
            .and(warp::post())
            .and(guard(&app, "POST", "/api/v1/tickets/{number}/move"))
            .and(json_body::<MoveBody>(limit))
            .then(move |number: String, who: Authed, b: MoveBody| {
                let app = app.clone();
                async move {
                    let by = who.user.username;
                    let r = super::operate(&app, move |tx, cfg, now| {
                        ops::move_to(tx, cfg, now, &number, b.position, &by, b.reason.as_deref())
                    })
                    .await;
                    respond(r.map(|t| ok_json(&t)).map_err(ApiError::from))
                }
            })
    };
    issue
        .or(queue)
        .unify()
        .or(call_next)
        .unify()
        .or(simple("recall", "/api/v1/tickets/{number}/recall"))
        .unify()
        .or(simple("skip", "/api/v1/tickets/{number}/skip"))
        .unify()
        .or(simple("serve-done", "/api/v1/tickets/{number}/serve-done"))
        .unify()
        .or(simple("reprint", "/api/v1/tickets/{number}/reprint"))
        .unify()
        .or(transfer)
        .unify()
        .or(move_to)
        .unify()
        .boxed()
}
