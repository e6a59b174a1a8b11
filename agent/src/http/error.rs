//! The API's error shape: `{"error":{"code":"snake_case","message":"human text"}}`.

use std::convert::Infallible;

use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

/// Every error code the API answers with: the PAD renders `errorCodes.<code>` from its
/// locales. `it::language` checks the list against the sources and both locales.
pub const CODES: &[&str] = &[
    "alert_not_found",
    "already_rated",
    "already_resolved",
    "bad_credentials",
    "bad_request",
    "counter_busy",
    "counter_closed",
    "counter_has_ticket",
    "coupon_expired",
    "coupon_forged",
    "coupon_malformed",
    "coupon_not_yet_valid",
    "coupon_redeemed",
    "coupon_revoked",
    "coupon_unknown",
    "coupon_wrong_customer",
    "customer_unknown",
    "device_not_found",
    "device_offline",
    "device_refused",
    "device_timeout",
    "device_unavailable",
    "empty_image",
    "exception_not_found",
    "forbidden",
    "image_too_large",
    "internal",
    "invalid_calculation",
    "invalid_command",
    "invalid_comment",
    "invalid_customer_field",
    "invalid_decision",
    "invalid_feedback",
    "invalid_header",
    "invalid_image",
    "invalid_json",
    "invalid_kind",
    "invalid_note",
    "invalid_order_state",
    "invalid_position",
    "invalid_query",
    "invalid_redo",
    "invalid_request",
    "invalid_ticket",
    "invalid_view",
    "lead_closed",
    "lead_expired",
    "lead_unknown",
    "length_required",
    "link_expired",
    "link_unknown",
    "login_busy",
    "method_not_allowed",
    "missing_header",
    "no_chip_data",
    "no_printer",
    "no_such_order",
    "no_such_step",
    "not_an_id_card",
    "not_an_image",
    "not_found",
    "not_on_sale",
    "not_on_stm",
    "not_order_staff",
    "not_ratable_yet",
    "ocr_busy",
    "ocr_failed",
    "ocr_unavailable",
    "open_exceptions",
    "payload_too_large",
    "printer_unavailable",
    "product_unknown",
    "queue_empty",
    "rate_limited",
    "rights_not_configured",
    "service_closed",
    "shutting_down",
    "storage_failed",
    "storage_full",
    "task_awaiting_redo",
    "task_decided",
    "task_not_found",
    "too_many_attempts",
    "unauthorized",
    "unknown_counter",
    "unknown_reader",
    "unknown_service",
    "unknown_staff",
    "unknown_ticket",
    "unsupported_media_type",
    "wrong_kind",
    "wrong_state",
];

/// An error answered to an API client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human text.
    pub message: String,
    /// Extra fields merged into the error object (e.g. the open exceptions).
    pub details: Option<serde_json::Value>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// With extra structured fields.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "log in first (no valid session)",
        )
    }

    /// 403.
    pub fn forbidden(role: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("the role {role} may not do this"),
        )
    }

    /// 404 with a code.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 409 with a code.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 500, logging the cause (the client gets no internals).
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the box's log",
        )
    }

    /// 503: the box cannot take this right now.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl warp::reject::Reject for ApiError {}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Closed => {
                ApiError::unavailable("shutting_down", "the box is shutting down")
            }
            e if e.is_disk_full() => {
                tracing::error!(error = %e, "data dir full: a write was refused");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "storage_full",
                    "the box's storage is full; nothing was changed",
                )
            }
            other => ApiError::internal(other),
        }
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let mut error = serde_json::json!({"code": self.code, "message": self.message});
        if let (Some(serde_json::Value::Object(extra)), Some(obj)) =
            (self.details, error.as_object_mut())
        {
            obj.extend(extra);
        }
        let body = serde_json::json!({ "error": error });
        let mut resp =
            warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = secs.to_string().parse()
        {
            resp.headers_mut()
                .insert(warp::http::header::RETRY_AFTER, v);
        }
        resp
    }
}

/// Turn every rejection into the API's error shape.
pub async fn recover(r: Rejection) -> Result<Response, Infallible> {
    use warp::reject;
    let err = if let Some(e) = r.find::<ApiError>() {
        e.clone()
    } else if r.is_not_found() {
        ApiError::not_found("not_found", "no such route")
    } else if r.find::<reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method",
        )
    } else if r.find::<reject::PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        )
    } else if r.find::<reject::LengthRequired>().is_some() {
        ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "send a Content-Length header",
        )
    } else if r.find::<reject::UnsupportedMediaType>().is_some() {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "unsupported content type",
        )
    } else if r.find::<reject::InvalidQuery>().is_some() {
        ApiError::bad_request("invalid_query", "invalid query string")
    } else if let Some(h) = r.find::<reject::InvalidHeader>() {
        ApiError::bad_request("invalid_header", format!("invalid header {}", h.name()))
    } else if let Some(h) = r.find::<reject::MissingHeader>() {
        ApiError::bad_request("missing_header", format!("missing header {}", h.name()))
    } else {
        tracing::warn!(rejection = ?r, "unhandled rejection");
        ApiError::bad_request("bad_request", "the request could not be understood")
    };
    Ok(err.into_response())
}
