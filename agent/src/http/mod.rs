//! The PAD API and web app over HTTP(S): warp for the server side, one router over the
//! routes every module declares next to its handlers ([`route`]).
//!
//! Every handler is a thin adapter: the router has already checked the session and role
//! ([`auth`]) and read a bounded body; the handler parses it, calls a domain service, and
//! maps the domain's typed errors onto the error shape of the interface contract
//! ([`error::ApiError`]). The routes and the OpenAPI fragments are composed by the caller
//! (`modules.rs`); this module knows no domain module.

pub mod assets;
pub mod auth;
pub mod error;
pub mod openapi;
pub mod route;
pub mod sse;
pub mod visibility;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde_json::json;
use tokio::net::TcpListener;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;
use warp::{Buf, Filter, Reply as _};

use crate::core::Core;
use auth::Auth;
use error::ApiError;
pub use route::{Access, Body, Decl, Reply, Request, Route, RouteSpec, created, ok_json};

/// The client's address, put into every request's extensions by the server loop.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// `GET /healthz` and `GET /metrics`: no login, for the supervisor and the scraper.
pub fn system_routes(core: &Core) -> Vec<Route> {
    vec![
        Route::get("/healthz", Access::Public).to(core.clone(), |core, _| async move {
            let db_ok = core
                .store
                .write(|tx| {
                    tx.conn()
                        .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                        .map_err(crate::store::StoreError::from)
                })
                .await
                .is_ok();
            let dir = core.cfg.branch.data_dir.clone();
            let storage = tokio::task::spawn_blocking(move || crate::store::probe_dir(&dir))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r);
            if let Err(e) = &storage {
                tracing::warn!(error = %e, "data dir takes no writes");
            }
            let storage_ok = storage.is_ok();
            let db_ok = db_ok && storage_ok;
            let body = json!({
                "status": if db_ok { "ok" } else { "degraded" },
                "storage": if storage_ok { "ok" } else { "unwritable" },
                "version": crate::VERSION,
                "branch": core.cfg.branch.id,
                "uptime_s": core.started.elapsed().as_secs(),
                "event_seq": *core.store.committed().borrow(),
                "database": if db_ok { "ok" } else { "unavailable" },
            });
            let status = if db_ok {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            Ok(warp::reply::with_status(warp::reply::json(&body), status).into_response())
        }),
        Route::get("/metrics", Access::Public).to(core.clone(), |core, _| async move {
            if let Ok(depth) = core.store.read(crate::store::outbox_depth).await {
                core.metrics.set_outbox_depth(depth);
            }
            Ok(warp::reply::with_header(
                core.metrics.render(),
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
            .into_response())
        }),
    ]
}

/// Matches requests against the declared routes.
#[derive(Debug)]
pub struct Router {
    core: Core,
    auth: Auth,
    routes: Vec<Route>,
}

impl Router {
    /// A router over `routes`; sessions are checked with `auth`.
    ///
    /// # Panics
    /// When two routes have the same method and path (a programming error, found by the
    /// first test that starts a daemon).
    pub fn new(core: &Core, auth: Auth, routes: Vec<Route>) -> Router {
        let mut seen = std::collections::HashSet::new();
        for r in &routes {
            let s = r.spec();
            assert!(
                seen.insert((s.method, s.path)),
                "route {} {} is declared twice",
                s.method,
                s.path
            );
        }
        Router {
            core: core.clone(),
            auth,
            routes,
        }
    }

    /// Every route, as declared.
    pub fn specs(&self) -> Vec<RouteSpec> {
        self.routes.iter().map(Route::spec).collect()
    }

    /// The warp filter answering every request: errors in the API's shape, requests counted.
    pub fn filter(self: Arc<Self>) -> warp::filters::BoxedFilter<(Response,)> {
        warp::method()
            .and(warp::path::full())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::headers_cloned())
            .and(warp::ext::optional::<PeerAddr>())
            .and(warp::body::stream())
            .then(
                move |method: Method,
                      path: warp::path::FullPath,
                      query: String,
                      headers: HeaderMap,
                      peer: Option<PeerAddr>,
                      body| {
                    let router = self.clone();
                    async move {
                        let head = Head {
                            method,
                            path: path.as_str().to_string(),
                            query,
                            headers,
                            peer: peer.map(|p| p.0),
                        };
                        let label = head.method.clone();
                        let mut resp = match router.dispatch(head, body).await {
                            Ok(r) => r,
                            Err(e) => e.into_response(),
                        };
                        router
                            .core
                            .metrics
                            .count_request(label.as_str(), resp.status().as_u16());
                        resp.headers_mut().insert(
                            "x-content-type-options",
                            warp::http::HeaderValue::from_static("nosniff"),
                        );
                        resp
                    }
                },
            )
            .recover(error::recover)
            .unify()
            .boxed()
    }

    async fn dispatch<S, B>(&self, head: Head, body: S) -> Result<Response, ApiError>
    where
        S: Stream<Item = Result<B, warp::Error>>,
        B: Buf,
    {
        let parts: Vec<&str> = head.path.trim_start_matches('/').split('/').collect();
        let mut matched: Vec<(&Route, Vec<(&'static str, String)>)> = self
            .routes
            .iter()
            .filter_map(|r| r.matches(&parts).map(|p| (r, p)))
            .collect();
        matched.sort_by_key(|(r, _)| std::cmp::Reverse(r.literals()));
        let Some((route, params)) = matched.iter().find(|(r, _)| r.is(&head.method)).cloned()
        else {
            if !matched.is_empty() {
                return Err(ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "this route does not take that method",
                ));
            }
            if head.method == Method::GET
                && !head.path.starts_with("/api/")
                && let Some(page) = assets::serve(&head.path, &head.headers)
            {
                return Ok(page);
            }
            return Err(ApiError::not_found("not_found", "no such route"));
        };
        let who = match route.access() {
            Access::Public => None,
            access => Some(self.auth.guard(&head.headers, access).await?),
        };
        let limit = match route.body() {
            Body::None => None,
            Body::Json => Some(self.core.cfg.http.max_json_bytes),
            Body::Bytes(n) => Some(n),
        };
        let body = match limit {
            None => Bytes::new(),
            Some(limit) => read_body(&head.headers, body, limit).await?,
        };
        route
            .call(Request {
                params,
                who,
                query: head.query,
                headers: head.headers,
                body,
                peer: head.peer,
            })
            .await
    }
}

/// What the router looks at before the body.
struct Head {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    peer: Option<SocketAddr>,
}

/// Read a body of at most `limit` bytes: 413 (over the limit) or 411 (no length) before
/// reading anything.
async fn read_body<S, B>(headers: &HeaderMap, body: S, limit: u64) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let len = headers
        .get(warp::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match len {
        Some(n) if n > limit => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body is {n} bytes; at most {limit} are accepted"),
            ));
        }
        Some(_) => {}
        None => {
            return Err(ApiError::new(
                StatusCode::LENGTH_REQUIRED,
                "length_required",
                "send a Content-Length header",
            ));
        }
    }
    let mut body = std::pin::pin!(body);
    let mut out = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| {
            ApiError::bad_request("bad_request", format!("cannot read the body: {e}"))
        })?;
        if out.len() as u64 + chunk.remaining() as u64 > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is too large",
            ));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            out.put_slice(part);
            chunk.advance(n);
        }
    }
    Ok(out.freeze())
}

/// Inserts the peer address into each request, notes that a request arrived, then hands
/// it to warp.
#[derive(Clone)]
struct WithPeer<S> {
    inner: S,
    peer: SocketAddr,
    first_request: Arc<tokio::sync::Notify>,
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
        self.first_request.notify_one();
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

/// Open connections, in total and per client address, against `[http]`'s caps.
#[derive(Debug)]
struct Admission {
    max_total: usize,
    max_per_client: usize,
    /// Open connections per client (a std `Mutex`: held for a map update, never across an
    /// `.await`); the total is the sum.
    open: std::sync::Mutex<(usize, std::collections::HashMap<std::net::IpAddr, usize>)>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
struct Slot {
    admission: Arc<Admission>,
    client: std::net::IpAddr,
}

impl Admission {
    fn admit(self: &Arc<Self>, client: std::net::IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().expect("admission lock");
        let (total, per_client) = &mut *open;
        let mine = per_client.entry(client).or_insert(0);
        if *total >= self.max_total || *mine >= self.max_per_client {
            if *mine == 0 {
                per_client.remove(&client);
            }
            return None;
        }
        *mine += 1;
        *total += 1;
        Some(Slot {
            admission: self.clone(),
            client,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.admission.open.lock().expect("admission lock");
        let (total, per_client) = &mut *open;
        *total -= 1;
        if let Some(n) = per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                per_client.remove(&self.client);
            }
        }
    }
}

/// Accept connections until the core is cancelled, then let open requests finish (SSE
/// streams end on the same token).
///
/// A connection beyond `[http] max_connections`, or beyond `max_connections_per_client`
/// from one address, is closed at once. A TLS handshake must finish, and the first
/// request's head arrive, within `header_timeout_s`; hyper's own header-read timeout then
/// closes a keep-alive connection that starts no further request in that time.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    routes: warp::filters::BoxedFilter<(Response,)>,
    core: Core,
) {
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    use hyper_util::server::conn::auto::Builder;

    let http = &core.cfg.http;
    let timeout = http.header_timeout;
    let admission = Arc::new(Admission {
        max_total: http.max_connections,
        max_per_client: http.max_connections_per_client,
        open: Default::default(),
    });
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(timeout))
        .keep_alive_timeout(timeout)
        .max_concurrent_streams(64);
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = core.cancel.cancelled() => break,
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
        let Some(slot) = admission.admit(peer.ip()) else {
            core.metrics.http_connections_refused.inc();
            tracing::debug!(%peer, "connection cap reached; closed");
            continue;
        };
        let conn = Connection {
            builder: builder.clone(),
            watcher: graceful.watcher(),
            routes: routes.clone(),
            core: core.clone(),
            peer,
            timeout,
        };
        let tls = tls.clone();
        let core = core.clone();
        tokio::spawn(async move {
            let _slot = slot;
            core.metrics.http_connections.inc();
            match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => conn.serve(s).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "tls handshake failed"),
                        Err(_) => {
                            core.metrics.http_connections_timed_out.inc();
                            tracing::debug!(%peer, "no tls handshake in time; closed");
                        }
                    }
                }
                None => conn.serve(stream).await,
            }
            core.metrics.http_connections.dec();
        });
    }
    graceful.shutdown().await;
}

/// What serving one accepted connection needs.
struct Connection {
    builder: Arc<hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>>,
    watcher: hyper_util::server::graceful::Watcher,
    routes: warp::filters::BoxedFilter<(Response,)>,
    core: Core,
    peer: SocketAddr,
    timeout: std::time::Duration,
}

impl Connection {
    /// Serve HTTP on `io` until the client closes, or until no first request has arrived
    /// within the timeout (hyper's version detection waits for bytes with no limit).
    async fn serve<I>(self, io: I)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            builder,
            watcher,
            routes,
            core,
            peer,
            timeout,
        } = self;
        let first_request = Arc::new(tokio::sync::Notify::new());
        let svc = hyper_util::service::TowerToHyperService::new(WithPeer {
            inner: warp::service(routes),
            peer,
            first_request: first_request.clone(),
        });
        let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(io), svc);
        let conn = watcher.watch(conn.into_owned());
        let deadline = async {
            if tokio::time::timeout(timeout, first_request.notified())
                .await
                .is_ok()
            {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            result = conn => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }
            () = deadline => {
                core.metrics.http_connections_timed_out.inc();
                tracing::debug!(%peer, "no request in time; closed");
            }
        }
    }
}
