//! The queue's routes: thin adapters onto [`super::ops`].

use serde::{Deserialize, Serialize};

use super::counters;
use super::ops::{self, TicketView, TransferTo};
use super::{IssueRequest, Queue, QueueError, Source};
use crate::config::Config;
use crate::http::error::ApiError;
use crate::http::{Access, Reply, Request, Route, created, ok_json};
use crate::store::Tx;
use crate::users::Role;

const LOBBY: Access = Access::Roles(&[Role::LobbyManager]);
/// The self-service kiosk: its two routes, and nothing else.
const KIOSK: Access = Access::Roles(&[Role::Kiosk]);
/// The queue's figures are numbers only, no customer: every role that watches the lobby
/// reads them (supervisors see how busy the lobby is before a rush of authorisations).
const QUEUE_READERS: Access =
    Access::Roles(&[Role::LobbyManager, Role::Supervisor, Role::BranchManager]);

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        let msg = e.to_string();
        match e {
            QueueError::UnknownService(_) => ApiError::bad_request("unknown_service", msg),
            QueueError::UnknownTicket(_) => ApiError::not_found("unknown_ticket", msg),
            QueueError::UnknownCounter(_) => ApiError::not_found("unknown_counter", msg),
            QueueError::BadCounter(_) => ApiError::bad_request("unknown_counter", msg),
            QueueError::CounterClosed(_) => ApiError::conflict("counter_closed", msg),
            QueueError::CounterBusy { staff, .. } => ApiError::conflict("counter_busy", msg)
                .with_details(serde_json::json!({"staff": staff})),
            QueueError::CounterHasTicket { number, .. } => {
                ApiError::conflict("counter_has_ticket", msg)
                    .with_details(serde_json::json!({"number": number}))
            }
            QueueError::UnknownStaff(_) => ApiError::bad_request("unknown_staff", msg),
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
pub struct IssueBody {
    service: String,
    customer_id: Option<String>,
    customer_level: Option<String>,
    appointment_id: Option<String>,
}

/// A kiosk's ticket request: the service only (a kiosk names no customer; a customer
/// known to head office swipes their ID card instead).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KioskIssueBody {
    service: String,
}

/// A service on the kiosk's start screen.
#[derive(Debug, Serialize)]
struct KioskService {
    code: String,
    name: String,
    name_en: String,
    /// Within opening hours now.
    open: bool,
    waiting: usize,
    people_ahead: usize,
    estimated_wait_s: u64,
}

/// A kiosk's ticket: what the customer reads on the screen, no more.
#[derive(Debug, Serialize)]
struct KioskTicket {
    number: String,
    service: String,
    people_ahead: usize,
    estimated_wait_s: u64,
    issued_at: String,
    printed: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    service: Option<String>,
    counter: Option<String>,
}

/// The body of an open: who sits at the counter (default the caller).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenBody {
    staff: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    position: u32,
    reason: Option<String>,
}

/// A counter operation on the ticket named in the path.
type TicketOp =
    fn(&mut Tx<'_>, &Config, chrono::DateTime<chrono::Utc>, &str) -> Result<TicketView, QueueError>;

/// `POST /api/v1/tickets/{number}/<action>`, running `op` on that ticket.
fn ticket_op(q: &Queue, path: &'static str, op: TicketOp) -> Route {
    Route::post(path, LOBBY).to((q.clone(), op), |(q, op), req| async move {
        let number = req.param("number")?.to_string();
        let t = q
            .operate(move |tx, cfg, now| op(tx, cfg, now, &number))
            .await?;
        Ok(ok_json(&t))
    })
}

impl Queue {
    /// The queue's routes.
    pub fn routes(&self) -> Vec<Route> {
        vec![
            Route::post("/api/v1/tickets", Access::Staff)
                .json()
                .to(self.clone(), issue),
            Route::get("/api/v1/kiosk/services", KIOSK).to(self.clone(), kiosk_services),
            Route::post("/api/v1/kiosk/tickets", KIOSK)
                .json()
                .to(self.clone(), kiosk_issue),
            Route::get("/api/v1/queue", QUEUE_READERS).to(self.clone(), |q, _| async move {
                Ok(ok_json(&q.snapshot().await?))
            }),
            Route::post("/api/v1/counters/{id}/call-next", LOBBY).to(
                self.clone(),
                |q, req| async move {
                    let id = req.param("id")?.to_string();
                    let t = q
                        .operate(move |tx, cfg, now| ops::call_next(tx, cfg, now, &id))
                        .await?;
                    Ok(ok_json(&t))
                },
            ),
            Route::post("/api/v1/counters/{id}/open", LOBBY)
                .json()
                .to(self.clone(), open_counter),
            Route::post("/api/v1/counters/{id}/close", LOBBY).to(
                self.clone(),
                |q, req| async move {
                    let id = req.param("id")?.to_string();
                    let by = req.username()?;
                    let s = q
                        .operate(move |tx, cfg, now| {
                            let s = counters::close(tx, cfg, now, &id)?;
                            audit(tx, &by, "counter.close", &s)?;
                            Ok(s)
                        })
                        .await?;
                    Ok(ok_json(&s))
                },
            ),
            ticket_op(self, "/api/v1/tickets/{number}/recall", ops::recall),
            ticket_op(self, "/api/v1/tickets/{number}/skip", ops::skip),
            ticket_op(self, "/api/v1/tickets/{number}/serve-done", ops::serve_done),
            Route::post("/api/v1/tickets/{number}/reprint", LOBBY)
                .to(self.clone(), |q, req| async move {
                    Ok(ok_json(&q.reprint(req.param("number")?).await?))
                }),
            Route::post("/api/v1/tickets/{number}/transfer", LOBBY)
                .json()
                .to(self.clone(), transfer),
            Route::post("/api/v1/tickets/{number}/move", LOBBY)
                .json()
                .to(self.clone(), move_to),
        ]
    }
}

async fn issue(q: Queue, req: Request) -> Reply {
    let b: IssueBody = req.json()?;
    let req = IssueRequest {
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
    Ok(created(&q.issue(req).await?))
}

async fn kiosk_services(q: Queue, _: Request) -> Reply {
    let cfg = q.core.config();
    let now = q.now();
    let services = q
        .core
        .store
        .read(move |c| -> Result<_, QueueError> {
            let open = super::tickets::open_tickets(c, &crate::clock::business_day(&cfg, now))?;
            let prospects = super::order::prospects(c, &cfg, &open)?;
            Ok(cfg
                .services
                .iter()
                .zip(prospects)
                .map(|(s, p)| KioskService {
                    code: s.code.clone(),
                    name: s.name.clone(),
                    name_en: s.name_en.clone(),
                    open: ops::is_open(&cfg, s, now).is_ok(),
                    waiting: p.waiting,
                    people_ahead: p.people_ahead,
                    estimated_wait_s: p.estimated_wait_s,
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(ok_json(&serde_json::json!({"services": services})))
}

async fn kiosk_issue(q: Queue, req: Request) -> Reply {
    let b: KioskIssueBody = req.json()?;
    let t = q
        .issue(IssueRequest {
            source: Source::Kiosk,
            service: b.service,
            customer_id: None,
            customer_level: None,
            appointment_id: None,
        })
        .await?;
    Ok(created(&KioskTicket {
        number: t.number,
        service: t.service,
        people_ahead: t.people_ahead,
        estimated_wait_s: t.estimated_wait_s,
        issued_at: t.issued_at,
        printed: t.printed,
    }))
}

async fn open_counter(q: Queue, req: Request) -> Reply {
    let id = req.param("id")?.to_string();
    // No body, or an empty one, opens the counter with the caller at it.
    let b: OpenBody = if req.body().trim_ascii().is_empty() {
        OpenBody::default()
    } else {
        req.json()?
    };
    let by = req.username()?;
    let staff = b.staff.unwrap_or_else(|| by.clone());
    let s = q
        .operate(move |tx, cfg, now| {
            let s = counters::open(tx, cfg, now, &id, &staff)?;
            audit(tx, &by, "counter.open", &s)?;
            Ok(s)
        })
        .await?;
    Ok(ok_json(&s))
}

/// Who opened or closed a counter, for whom, in the audit trail (a change only).
fn audit(
    tx: &mut Tx<'_>,
    by: &str,
    action: &str,
    s: &counters::CounterState,
) -> Result<(), QueueError> {
    if s.changed {
        let detail = serde_json::json!({"staff": s.staff});
        crate::users::audit(tx, Some(by), action, Some(&s.counter), Some(&detail))?;
    }
    Ok(())
}

async fn transfer(q: Queue, req: Request) -> Reply {
    let number = req.param("number")?.to_string();
    let b: TransferBody = req.json()?;
    let to = match (b.service, b.counter) {
        (Some(s), None) => TransferTo::Service(s),
        (None, Some(c)) => TransferTo::Counter(c),
        _ => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "give exactly one of service or counter",
            ));
        }
    };
    let t = q
        .operate(move |tx, cfg, now| ops::transfer(tx, cfg, now, &number, &to))
        .await?;
    Ok(ok_json(&t))
}

async fn move_to(q: Queue, req: Request) -> Reply {
    let number = req.param("number")?.to_string();
    let by = req.username()?;
    let b: MoveBody = req.json()?;
    let t = q
        .operate(move |tx, cfg, now| {
            ops::move_to(tx, cfg, now, &number, b.position, &by, b.reason.as_deref())
        })
        .await?;
    Ok(ok_json(&t))
}
