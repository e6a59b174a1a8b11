//! One declaration per route: its method, path template, access rule, body and handler,
//! written next to the handler in the module that owns it.
//!
//! ```ignore
//! Route::post("/api/v1/tickets/{number}/recall", LOBBY)
//!     .to(queue.clone(), |q, req| async move { ... })
//! ```
//!
//! The router ([`super::Router`]) matches requests against these declarations, checks the
//! session and role before anything else runs, reads a bounded body, and calls the handler;
//! the tests walk the same declarations (401 and 403 exactly as declared) and check them
//! against the OpenAPI document. There is no second table to keep in step.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use warp::Reply as _;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;

use super::auth::Authed;
use super::error::ApiError;
use crate::users::Role;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No session needed.
    Public,
    /// Any logged-in member of staff (not a device account such as a kiosk).
    Staff,
    /// Only these roles.
    Roles(&'static [Role]),
}

impl Access {
    /// Whether `role` may call.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Public => true,
            Access::Staff => role.is_staff(),
            Access::Roles(roles) => roles.contains(&role),
        }
    }

    /// The roles allowed, in the order of [`Role::ALL`] (empty for a public route).
    pub fn roles(self) -> Vec<Role> {
        match self {
            Access::Public => Vec::new(),
            Access::Staff => Role::STAFF.to_vec(),
            Access::Roles(_) => Role::ALL.into_iter().filter(|r| self.allows(*r)).collect(),
        }
    }
}

/// What a route reads of the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Nothing.
    None,
    /// JSON of at most `[http] max_json_bytes`.
    Json,
    /// Raw bytes of at most this many.
    Bytes(u64),
}

/// The answer of a handler.
pub type Reply = Result<Response, ApiError>;

type Handler = Arc<dyn Fn(Request) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// A segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(&'static str),
    Param(&'static str),
}

fn segments(template: &'static str) -> Vec<Seg> {
    template
        .trim_start_matches('/')
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) => Seg::Param(name),
                None => Seg::Lit(s),
            },
        )
        .collect()
}

/// A route being declared: give it a body (optional) and a handler.
#[derive(Debug, Clone, Copy)]
pub struct Decl {
    method: &'static str,
    path: &'static str,
    access: Access,
    body: Body,
}

impl Decl {
    /// The route reads a JSON body.
    pub fn json(mut self) -> Decl {
        self.body = Body::Json;
        self
    }

    /// The route reads a raw body of at most `limit` bytes.
    pub fn bytes(mut self, limit: u64) -> Decl {
        self.body = Body::Bytes(limit);
        self
    }

    /// Handle the route with `f`, given a clone of `state` and the request.
    pub fn to<S, F, Fut>(self, state: S, f: F) -> Route
    where
        S: Clone + Send + Sync + 'static,
        F: Fn(S, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req| Box::pin(f(state.clone(), req)));
        Route {
            method: self.method,
            path: self.path,
            access: self.access,
            body: self.body,
            segs: segments(self.path),
            handler,
        }
    }
}

/// A declared route.
#[derive(Clone)]
pub struct Route {
    method: &'static str,
    path: &'static str,
    access: Access,
    body: Body,
    segs: Vec<Seg>,
    handler: Handler,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({:?})", self.method, self.path, self.access)
    }
}

impl Route {
    /// A GET route.
    pub fn get(path: &'static str, access: Access) -> Decl {
        Decl {
            method: "GET",
            path,
            access,
            body: Body::None,
        }
    }

    /// A POST route.
    pub fn post(path: &'static str, access: Access) -> Decl {
        Decl {
            method: "POST",
            path,
            access,
            body: Body::None,
        }
    }

    /// What the route is, without its handler.
    pub fn spec(&self) -> RouteSpec {
        RouteSpec {
            method: self.method,
            path: self.path,
            access: self.access,
        }
    }

    pub(super) fn access(&self) -> Access {
        self.access
    }

    pub(super) fn body(&self) -> Body {
        self.body
    }

    pub(super) fn is(&self, method: &Method) -> bool {
        method.as_str() == self.method
    }

    /// The path parameters, when `path` matches the template.
    pub(super) fn matches(&self, path: &[&str]) -> Option<Vec<(&'static str, String)>> {
        if path.len() != self.segs.len() {
            return None;
        }
        let mut params = Vec::new();
        for (seg, part) in self.segs.iter().zip(path) {
            match seg {
                Seg::Lit(l) if l == part => {}
                Seg::Lit(_) => return None,
                Seg::Param(_) if part.is_empty() => return None,
                Seg::Param(name) => params.push((*name, (*part).to_string())),
            }
        }
        Some(params)
    }

    /// Literal segments: the more, the more specific the route.
    pub(super) fn literals(&self) -> usize {
        self.segs
            .iter()
            .filter(|s| matches!(s, Seg::Lit(_)))
            .count()
    }

    pub(super) async fn call(&self, req: Request) -> Reply {
        (self.handler)(req).await
    }
}

/// A route as the tests and the OpenAPI document see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    /// HTTP method.
    pub method: &'static str,
    /// Path template, e.g. `/api/v1/tickets/{number}/recall`.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

impl RouteSpec {
    /// A concrete path to call: every parameter is `1`.
    pub fn sample(&self) -> String {
        segments(self.path)
            .iter()
            .map(|s| match s {
                Seg::Lit(l) => *l,
                Seg::Param(_) => "1",
            })
            .fold(String::new(), |acc, s| acc + "/" + s)
    }
}

/// A JSON request body as [`Request::json`] reads it. Every body is a JSON object: serde
/// would also fill a struct from an array of its fields in order (`["alice","pw"]` as a
/// login), which no client sends and the API does not describe, so anything else is
/// refused before it is parsed.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let invalid = |e: &dyn std::fmt::Display| {
        ApiError::bad_request("invalid_json", format!("invalid request body: {e}"))
    };
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(invalid(&"expected a JSON object"));
    }
    serde_json::from_slice(body).map_err(|e| invalid(&e))
}

/// A request as a handler sees it: checked for session and role, body read.
#[derive(Debug)]
pub struct Request {
    pub(super) params: Vec<(&'static str, String)>,
    pub(super) who: Option<Authed>,
    pub(super) query: String,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
    pub(super) peer: Option<SocketAddr>,
}

impl Request {
    /// A path parameter as written.
    pub fn param(&self, name: &str) -> Result<&str, ApiError> {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| ApiError::internal(format!("the route has no parameter `{name}`")))
    }

    /// A path parameter parsed; a value that does not parse is no such route (404).
    pub fn parse<T: FromStr>(&self, name: &str) -> Result<T, ApiError> {
        self.param(name)?
            .parse()
            .map_err(|_| ApiError::not_found("not_found", "no such route"))
    }

    /// The logged-in caller (always there on a route that is not public).
    pub fn who(&self) -> Result<&Authed, ApiError> {
        self.who.as_ref().ok_or_else(ApiError::unauthorized)
    }

    /// The caller's user name.
    pub fn username(&self) -> Result<String, ApiError> {
        Ok(self.who()?.user.username.clone())
    }

    /// The JSON body.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        json_body(&self.body)
    }

    /// The query string.
    pub fn query<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_urlencoded::from_str(&self.query)
            .map_err(|_| ApiError::bad_request("invalid_query", "invalid query string"))
    }

    /// A header's value, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The raw body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The client's address.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }
}

/// A value as a 200 JSON response.
pub fn ok_json<T: serde::Serialize>(v: &T) -> Response {
    warp::reply::json(v).into_response()
}

/// A value as a 201 JSON response.
pub fn created<T: serde::Serialize>(v: &T) -> Response {
    warp::reply::with_status(warp::reply::json(v), StatusCode::CREATED).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::auth::Login;

    #[test]
    fn json_bodies_are_objects_only() {
        // serde alone fills a struct from an array of its fields in order.
        assert!(serde_json::from_slice::<Login>(br#"["alice","pw"]"#).is_ok());
        for body in [
            &br#"["alice","pw"]"#[..],
            b" [\"a\",\"b\"]",
            b"null",
            b"",
            b"\"x\"",
        ] {
            let e = json_body::<Login>(body).expect_err("refused");
            assert_eq!(e.code, "invalid_json", "{body:?}");
        }
        assert!(json_body::<Login>(b" \n{\"username\":\"alice\",\"password\":\"pw\"}").is_ok());
        assert!(json_body::<Login>(br#"{"username":"a","password":"b","x":1}"#).is_err());
    }
}
