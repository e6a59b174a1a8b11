//! Login, logout, sessions, role checks and login throttling; the staff list and the
//! audit trail.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

use super::error::ApiError;
use super::route::{Access, Route, ok_json};
use crate::core::Core;
use crate::users::{self, User};

/// The staff list and the audit trail are for the branch manager.
const MANAGER: Access = Access::Roles(&[users::Role::BranchManager]);

/// Name of the session cookie.
pub const COOKIE: &str = "branchd_session";

/// Only refresh a session's `last_seen` this often, to keep writes off the request path.
const TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);

/// Counts failed logins per user name and per client address.
#[derive(Debug)]
pub struct Throttle {
    max_failures: u32,
    lockout: Duration,
    state: Mutex<HashMap<String, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

impl Throttle {
    /// After `max_failures` failures within `lockout`, refuse for `lockout`.
    pub fn new(max_failures: u32, lockout: Duration) -> Self {
        Throttle {
            max_failures,
            lockout,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds left of a lockout on any of `keys`, if one is in force.
    pub fn locked(&self, keys: &[String]) -> Option<u64> {
        let now = Instant::now();
        let state = self.state.lock().expect("throttle lock");
        keys.iter()
            .filter_map(|k| state.get(k)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| (until - now).as_secs().max(1))
            .max()
    }

    /// Note a failure on each key.
    pub fn fail(&self, keys: &[String]) {
        let now = Instant::now();
        let mut state = self.state.lock().expect("throttle lock");
        // Forget stale entries so the map cannot grow without bound.
        let lockout = self.lockout;
        state.retain(|_, f| {
            now.duration_since(f.first) < lockout || f.locked_until.is_some_and(|u| u > now)
        });
        for key in keys {
            let f = state.entry(key.clone()).or_insert(Failures {
                count: 0,
                first: now,
                locked_until: None,
            });
            if now.duration_since(f.first) >= self.lockout {
                *f = Failures {
                    count: 0,
                    first: now,
                    locked_until: None,
                };
            }
            f.count += 1;
            if f.count >= self.max_failures {
                f.locked_until = Some(now + self.lockout);
            }
        }
    }

    /// Forget failures after a good login.
    pub fn succeed(&self, keys: &[String]) {
        let mut state = self.state.lock().expect("throttle lock");
        for key in keys {
            state.remove(key);
        }
    }
}

/// A logged-in request: who, and the token's hash (for logout).
#[derive(Debug, Clone)]
pub struct Authed {
    /// The user.
    pub user: User,
    /// SHA-256 of the session token.
    pub token_hash: String,
}

/// Sessions and logins: checks the session cookie of every request that needs one, and
/// serves `POST /api/v1/auth/login`, `POST /api/v1/auth/logout`, `GET /api/v1/auth/me`.
#[derive(Debug, Clone)]
pub struct Auth {
    core: Core,
    /// Login throttling state (a std `Mutex` inside: held for microseconds and never across
    /// an `.await`).
    throttle: Arc<Throttle>,
}

impl Auth {
    /// Sessions over the core's store, throttled as `[http]` says.
    pub fn new(core: &Core) -> Auth {
        let http = &core.cfg.http;
        Auth {
            core: core.clone(),
            throttle: Arc::new(Throttle::new(http.login_max_failures, http.login_lockout)),
        }
    }

    /// The caller of a request, when its session is valid and `access` allows its role:
    /// 401 without a valid session, 403 for the wrong role.
    pub async fn guard(&self, headers: &HeaderMap, access: Access) -> Result<Authed, ApiError> {
        let token = cookie_value(headers, COOKIE).ok_or_else(ApiError::unauthorized)?;
        let authed = self.session(&token).await?;
        if !access.allows(authed.user.role) {
            return Err(ApiError::forbidden(authed.user.role.as_str()));
        }
        Ok(authed)
    }

    async fn session(&self, token: &str) -> Result<Authed, ApiError> {
        let hash = users::token_hash(token);
        let idle = self.core.cfg.http.session_idle;
        let now = chrono::Utc::now();
        let h = hash.clone();
        let info = self
            .core
            .store
            .read(move |c| users::lookup_session(c, &h, now, idle))
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        if now - info.last_seen > TOUCH_EVERY {
            let h = hash.clone();
            self.core
                .store
                .write(move |tx| users::touch_session(tx, &h))
                .await?;
        }
        Ok(Authed {
            user: info.user,
            token_hash: hash,
        })
    }

    /// The login routes.
    pub fn routes(&self) -> Vec<Route> {
        vec![
            Route::post("/api/v1/auth/login", Access::Public).json().to(
                self.clone(),
                |auth, req| async move {
                    let body: Login = req.json()?;
                    auth.login(req.peer().map(|p| p.ip()), body).await
                },
            ),
            Route::post("/api/v1/auth/logout", Access::Staff).to(
                self.clone(),
                |auth, req| async move {
                    let hash = req.who()?.token_hash.clone();
                    auth.core
                        .store
                        .write(move |tx| users::delete_session(tx, &hash))
                        .await?;
                    let mut resp = ok_json(&json!({"ok": true}));
                    resp.headers_mut().insert(
                        warp::http::header::SET_COOKIE,
                        clear_cookie(auth.core.cfg.http.tls.is_some()),
                    );
                    Ok(resp)
                },
            ),
            Route::get("/api/v1/auth/me", Access::Staff).to((), |(), req| async move {
                Ok(ok_json(&me_body(&req.who()?.user)))
            }),
            Route::get("/api/v1/users", MANAGER).to(self.core.clone(), |core, _| async move {
                Ok(ok_json(&core.store.read(users::list).await?))
            }),
            Route::get("/api/v1/audit", MANAGER).to(self.core.clone(), |core, _| async move {
                Ok(ok_json(
                    &core.store.read(|c| users::audit_trail(c, 500)).await?,
                ))
            }),
        ]
    }

    async fn login(&self, ip: Option<IpAddr>, body: Login) -> Result<Response, ApiError> {
        let mut keys = vec![format!("user:{}", body.username)];
        if let Some(ip) = ip {
            keys.push(format!("ip:{ip}"));
        }
        if let Some(secs) = self.throttle.locked(&keys) {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!("too many failed logins; try again in {secs} s"),
            );
            e.retry_after = Some(secs);
            return Err(e);
        }
        let store = &self.core.store;
        let name = body.username.clone();
        let creds = store.read(move |c| users::credentials(c, &name)).await?;
        let password = body.password;
        // Verify off the runtime: argon2 is deliberately slow. Unknown users are checked
        // against a dummy hash so both failures take the same time.
        let (user, ok) = tokio::task::spawn_blocking(move || match creds {
            Some((user, hash)) => {
                let ok = users::verify_password(&password, &hash);
                (Some(user), ok)
            }
            None => {
                users::verify_password(&password, users::dummy_hash());
                (None, false)
            }
        })
        .await
        .map_err(ApiError::internal)?;
        let (Some(user), true) = (user, ok) else {
            self.throttle.fail(&keys);
            self.core.metrics.login_failures.inc();
            tracing::warn!(username = %body.username, ?ip, "failed login");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_credentials",
                "wrong user name or password",
            ));
        };
        self.throttle.succeed(&keys);
        let (token, hash) = users::new_token();
        let max_age = self.core.cfg.http.session_max;
        let uid = user.id;
        let uname = user.username.clone();
        store
            .write(move |tx| {
                users::insert_session(tx, &hash, uid, max_age)?;
                users::audit(tx, Some(&uname), "auth.login", None, None)
            })
            .await?;
        tracing::info!(username = %user.username, role = %user.role, "login");
        let mut resp = ok_json(&me_body(&user));
        resp.headers_mut().insert(
            warp::http::header::SET_COOKIE,
            cookie(&token, max_age, self.core.cfg.http.tls.is_some()),
        );
        Ok(resp)
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(warp::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
}

fn me_body(user: &User) -> serde_json::Value {
    json!({"username": user.username, "role": user.role, "id": user.id})
}

fn cookie(token: &str, max_age: Duration, secure: bool) -> warp::http::HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        max_age.as_secs()
    )
    .parse()
    .expect("a hex token makes a valid header")
}

fn clear_cookie(secure: bool) -> warp::http::HeaderValue {
    cookie("", Duration::ZERO, secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_lockout_starts_after_max_failures_and_ends_after_the_lockout() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let keys = vec!["user:amy".to_string()];
        for _ in 0..2 {
            t.fail(&keys);
            assert_eq!(t.locked(&keys), None);
        }
        t.fail(&keys);
        assert_eq!(t.locked(&keys), Some(60));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(t.locked(&keys), Some(1));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(t.locked(&keys), None);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_spread_wider_than_the_window_do_not_lock() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let keys = vec!["ip:10.0.0.9".to_string()];
        for _ in 0..5 {
            t.fail(&keys);
            tokio::time::advance(Duration::from_secs(31)).await;
        }
        assert_eq!(t.locked(&keys), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_good_login_forgets_earlier_failures() {
        let t = Throttle::new(2, Duration::from_secs(60));
        let keys = vec!["user:bo".to_string()];
        t.fail(&keys);
        t.succeed(&keys);
        t.fail(&keys);
        assert_eq!(t.locked(&keys), None);
    }
}
