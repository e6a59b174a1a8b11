//! The PAD API and web app over HTTP(S), with warp.
//!
//! Every handler is a thin adapter: it checks the session and role ([`auth::guard`]),
//! parses the body, calls a domain service, and maps the domain's typed errors onto the
//! error shape of the interface contract ([`error::ApiError`]).

pub mod assets;
pub mod auth;
pub mod error;
pub mod metrics;
pub mod routes;
pub mod sse;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::alerts;
use crate::app::App;
use auth::{Authed, guard, respond};
use error::ApiError;

/// The client's address, put into every request's extensions by the server loop.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The core part of the OpenAPI description.
const OPENAPI_CORE: &str = include_str!("openapi.json");

/// The OpenAPI description of the whole API: the core document with every module's
/// fragment merged in.
pub fn openapi_document() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc: serde_json::Value =
            serde_json::from_str(OPENAPI_CORE).expect("openapi.json is valid JSON");
        for fragment in crate::modules::OPENAPI_FRAGMENTS {
            let f: serde_json::Value =
                serde_json::from_str(fragment).expect("a module's OpenAPI fragment is valid JSON");
            for (section, target) in [("paths", "/paths"), ("schemas", "/components/schemas")] {
                if let (Some(add), Some(into)) = (
                    f.get(section).and_then(|v| v.as_object()),
                    doc.pointer_mut(target).and_then(|v| v.as_object_mut()),
                ) {
                    into.extend(add.clone());
                }
            }
        }
        doc.to_string()
    })
}

/// A JSON body of at most `limit` bytes, with errors in the API's shape.
pub fn json_body<T: DeserializeOwned + Send>(
    limit: u64,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    body_limit(limit)
        .and(warp::body::bytes())
        .and_then(|b: Bytes| async move {
            serde_json::from_slice::<T>(&b).map_err(|e| {
                warp::reject::custom(ApiError::bad_request(
                    "invalid_json",
                    format!("invalid request body: {e}"),
                ))
            })
        })
}

/// Refuse a body over `limit` bytes (413) or of unknown length (411) before reading it.
pub fn body_limit(limit: u64) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and_then(move |len: Option<u64>| async move {
            match len {
                Some(n) if n > limit => Err(warp::reject::custom(ApiError::new(
                    warp::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("the request body is {n} bytes; at most {limit} are accepted"),
                ))),
                Some(_) => Ok(()),
                None => Err(warp::reject::custom(ApiError::new(
                    warp::http::StatusCode::LENGTH_REQUIRED,
                    "length_required",
                    "send a Content-Length header",
                ))),
            }
        })
        .untuple_one()
}

/// Serialise a value as a 200 JSON response.
pub fn ok_json<T: serde::Serialize>(v: &T) -> Response {
    warp::reply::json(v).into_response()
}

fn health(app: &App) -> warp::filters::BoxedFilter<(Response,)> {
    let app = app.clone();
    warp::path!("healthz")
        .and(warp::get())
        .then(move || {
            let app = app.clone();
            async move {
                let db_ok = app
                    .store
                    .read(|c| {
                        c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                            .map_err(crate::store::StoreError::from)
                    })
                    .await
                    .is_ok();
                let body = json!({
                    "status": if db_ok { "ok" } else { "degraded" },
                    "version": crate::VERSION,
                    "branch": app.cfg.branch.id,
                    "uptime_s": app.started.elapsed().as_secs(),
                    "event_seq": *app.store.committed().borrow(),
                    "database": if db_ok { "ok" } else { "unavailable" },
                });
                let status = if db_ok {
                    warp::http::StatusCode::OK
                } else {
                    warp::http::StatusCode::SERVICE_UNAVAILABLE
                };
                warp::reply::with_status(warp::reply::json(&body), status).into_response()
            }
        })
        .boxed()
}

fn metrics_route(app: &App) -> warp::filters::BoxedFilter<(Response,)> {
    let app = app.clone();
    warp::path!("metrics")
        .and(warp::get())
        .then(move || {
            let app = app.clone();
            async move {
                if let Ok(depth) = app.store.read(crate::store::outbox_depth).await {
                    app.metrics.set_outbox_depth(depth);
                }
                warp::reply::with_header(
                    app.metrics.render(),
                    "content-type",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )
                .into_response()
            }
        })
        .boxed()
}

fn openapi(app: &App) -> warp::filters::BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "openapi.json")
        .and(warp::get())
        .and(guard(app, "GET", "/api/v1/openapi.json"))
        .map(|_: Authed| {
            warp::reply::with_header(openapi_document(), "content-type", "application/json")
                .into_response()
        })
        .boxed()
}

fn alert_routes(app: &App) -> warp::filters::BoxedFilter<(Response,)> {
    let list = {
        let app = app.clone();
        warp::path!("api" / "v1" / "alerts")
            .and(warp::get())
            .and(guard(&app, "GET", "/api/v1/alerts"))
            .then(move |_: Authed| {
                let app = app.clone();
                async move {
                    respond(
                        app.store
                            .read(|c| alerts::list(c, 200))
                            .await
                            .map(|a| ok_json(&a))
                            .map_err(ApiError::from),
                    )
                }
            })
    };
    let ack = {
        let app = app.clone();
        warp::path!("api" / "v1" / "alerts" / i64 / "ack")
            .and(warp::post())
            .and(guard(&app, "POST", "/api/v1/alerts/{id}/ack"))
            .then(move |id: i64, who: Authed| {
                let app = app.clone();
                async move {
                    let r = app
                        .store
                        .write(move |tx| alerts::ack(tx, id, &who.user.username))
                        .await
                        .map(|a| ok_json(&a))
                        .map_err(|e| match e {
                            alerts::AckError::NotFound(id) => {
                                ApiError::not_found("alert_not_found", format!("no alert {id}"))
                            }
                            alerts::AckError::Store(e) => e.into(),
                        });
                    respond(r)
                }
            })
    };
    list.or(ack).unify().boxed()
}

fn staff_routes(app: &App) -> warp::filters::BoxedFilter<(Response,)> {
    let users = {
        let app = app.clone();
        warp::path!("api" / "v1" / "users")
            .and(warp::get())
            .and(guard(&app, "GET", "/api/v1/users"))
            .then(move |_: Authed| {
                let app = app.clone();
                async move {
                    respond(
                        app.store
                            .read(crate::users::list)
                            .await
                            .map(|u| ok_json(&u))
                            .map_err(ApiError::from),
                    )
                }
            })
    };
    let audit = {
        let app = app.clone();
        warp::path!("api" / "v1" / "audit")
            .and(warp::get())
            .and(guard(&app, "GET", "/api/v1/audit"))
            .then(move |_: Authed| {
                let app = app.clone();
                async move {
                    respond(
                        app.store
                            .read(|c| crate::users::audit_trail(c, 500))
                            .await
                            .map(|u| ok_json(&u))
                            .map_err(ApiError::from),
                    )
                }
            })
    };
    users.or(audit).unify().boxed()
}

/// Every route of the daemon, with errors in the API's shape and requests counted.
pub fn router(app: &App) -> warp::filters::BoxedFilter<(Response,)> {
    let counted = app.clone();
    health(app)
        .or(metrics_route(app))
        .unify()
        .or(auth::routes(app))
        .unify()
        .or(sse::route(app))
        .unify()
        .or(openapi(app))
        .unify()
        .or(alert_routes(app))
        .unify()
        .or(staff_routes(app))
        .unify()
        .or(crate::modules::router(app))
        .unify()
        .or(assets::route())
        .unify()
        .recover(error::recover)
        .unify()
        .and(warp::method())
        .map(move |mut resp: Response, method: warp::http::Method| {
            counted
                .metrics
                .count_request(method.as_str(), resp.status().as_u16());
            resp.headers_mut().insert(
                "x-content-type-options",
                warp::http::HeaderValue::from_static("nosniff"),
            );
            resp
        })
        .boxed()
}

/// Inserts the peer address into each request, then hands it to warp.
#[derive(Clone)]
struct WithPeer<S> {
    inner: S,
    peer: SocketAddr,
}

impl<S, B> tower_service::Service<http::Request<B>> for WithPeer<S>
where
    S: tower_service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        req.extensions_mut().insert(PeerAddr(self.peer));
        self.inner.call(req)
    }
}

/// Load the TLS certificate chain and key.
pub fn tls_acceptor(tls: &crate::config::Tls) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let certs = {
        let pem = std::fs::read(&tls.cert)
            .with_context(|| format!("cannot read tls_cert {}", tls.cert.display()))?;
        rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| {
                format!(
                    "tls_cert {} is not a PEM certificate chain",
                    tls.cert.display()
                )
            })?
    };
    anyhow::ensure!(
        !certs.is_empty(),
        "tls_cert {} holds no certificate",
        tls.cert.display()
    );
    let key = {
        let pem = std::fs::read(&tls.key)
            .with_context(|| format!("cannot read tls_key {}", tls.key.display()))?;
        rustls_pemfile::private_key(&mut pem.as_slice())
            .with_context(|| format!("tls_key {} is not a PEM key", tls.key.display()))?
            .with_context(|| format!("tls_key {} holds no private key", tls.key.display()))?
    };
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("tls protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not go together")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Accept connections until `cancel`, then let open requests finish (SSE streams end on
/// the same token).
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    routes: warp::filters::BoxedFilter<(Response,)>,
    cancel: CancellationToken,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let svc = TowerToHyperService::new(WithPeer {
            inner: warp::service(routes.clone()),
            peer,
        });
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let builder = Builder::new(TokioExecutor::new());
            let result = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(s) => {
                        let conn = builder.serve_connection(TokioIo::new(s), svc);
                        watcher.watch(conn.into_owned()).await
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "tls handshake failed");
                        return;
                    }
                },
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
}
