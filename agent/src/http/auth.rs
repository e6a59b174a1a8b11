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

/// How long a kiosk's session lasts. A kiosk's session is not ended by idleness (see
/// [`users::lookup_session`]), and the kiosk screen signs in again with its device token
/// whenever its session has ended, so this only bounds how long a stolen cookie works.
pub const KIOSK_SESSION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Name of the session cookie.
pub const COOKIE: &str = "branchd_session";

/// Only refresh a session's `last_seen` this often, to keep writes off the request path.
const TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);

/// How many failures from one client address, over all user names, lock that client: a
/// multiple of `login_max_failures`, so a member of staff who mistypes is not locked out
/// with the whole tablet, but one client cannot try every name.
const CLIENT_FACTOR: u32 = 4;

/// The wait before each attempt on a user name that has failed `login_max_failures` times
/// from any mix of clients: slows guessing spread over many clients without locking the
/// account itself (a lobby guest could otherwise keep the branch manager out).
pub const USER_DELAY: Duration = Duration::from_secs(1);

/// At most this many characters of a user name are remembered by the throttle.
const NAME_KEY_CHARS: usize = 64;

/// What a login attempt is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// This user name from this client: locked after `login_max_failures`.
    Pair(String, Option<IpAddr>),
    /// This client, whatever the name: locked after `CLIENT_FACTOR` × `login_max_failures`.
    Client(IpAddr),
    /// This user name from anywhere: slowed by [`USER_DELAY`], never locked.
    User(String),
}

/// Counts failed and in-flight logins per (user name, client), per client and per user
/// name. An attempt counts from the moment it is admitted, before its password is
/// checked, so a burst of parallel guesses gets no more tries than a sequence would.
#[derive(Debug)]
pub struct Throttle {
    max_failures: u32,
    lockout: Duration,
    state: Mutex<HashMap<Key, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    in_flight: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

impl Failures {
    fn new(now: Instant) -> Self {
        Failures {
            count: 0,
            in_flight: 0,
            first: now,
            locked_until: None,
        }
    }

    /// Start a new window once the old one has passed and no lockout is in force.
    fn refresh(&mut self, now: Instant, window: Duration) {
        let locked = self.locked_until.is_some_and(|u| u > now);
        if !locked && now.duration_since(self.first) >= window {
            *self = Failures {
                in_flight: self.in_flight,
                ..Failures::new(now)
            };
        }
    }
}

/// Why an attempt was not admitted: seconds until it may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub u64);

/// An admitted login attempt. Until [`Attempt::finish`] it counts as in flight on its
/// keys; dropped unfinished (the client went away before its password was checked), it
/// counts as nothing.
#[derive(Debug)]
pub struct Attempt {
    throttle: Arc<Throttle>,
    keys: Vec<Key>,
    /// How long to wait before checking the password.
    pub delay: Duration,
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

    fn limit(&self, key: &Key) -> Option<u32> {
        match key {
            Key::Pair(..) => Some(self.max_failures),
            Key::Client(_) => Some(self.max_failures.saturating_mul(CLIENT_FACTOR)),
            Key::User(_) => None,
        }
    }

    /// Admit an attempt by `username` from `client`, or refuse it while a lockout is in
    /// force or while the attempts already in flight could reach one.
    pub fn begin(
        self: &Arc<Self>,
        username: &str,
        client: Option<IpAddr>,
    ) -> Result<Attempt, Refused> {
        let name: String = username.chars().take(NAME_KEY_CHARS).collect();
        let mut keys = vec![Key::Pair(name.clone(), client), Key::User(name)];
        keys.extend(client.map(Key::Client));
        let now = Instant::now();
        let mut state = self.state.lock().expect("throttle lock");
        self.forget_stale(&mut state, now);
        let mut wait = None::<u64>;
        for key in &keys {
            let (Some(limit), Some(f)) = (self.limit(key), state.get_mut(key)) else {
                continue;
            };
            f.refresh(now, self.lockout);
            let secs = match f.locked_until {
                Some(until) if until > now => Some((until - now).as_secs().max(1)),
                _ if f.count + f.in_flight >= limit => Some(1),
                _ => None,
            };
            wait = wait.max(secs);
        }
        if let Some(secs) = wait {
            return Err(Refused(secs));
        }
        let mut delay = Duration::ZERO;
        for key in &keys {
            let f = state.entry(key.clone()).or_insert(Failures::new(now));
            f.refresh(now, self.lockout);
            f.in_flight += 1;
            if matches!(key, Key::User(_)) && f.count >= self.max_failures {
                delay = USER_DELAY;
            }
        }
        Ok(Attempt {
            throttle: self.clone(),
            keys,
            delay,
        })
    }

    /// Forget entries whose window has passed, so the map cannot grow without bound.
    fn forget_stale(&self, state: &mut HashMap<Key, Failures>, now: Instant) {
        let lockout = self.lockout;
        state.retain(|_, f| {
            f.in_flight > 0
                || now.duration_since(f.first) < lockout
                || f.locked_until.is_some_and(|u| u > now)
        });
    }

    fn fail(&self, keys: &[Key]) {
        let now = Instant::now();
        let mut state = self.state.lock().expect("throttle lock");
        for key in keys {
            let Some(f) = state.get_mut(key) else {
                continue;
            };
            f.refresh(now, self.lockout);
            f.count += 1;
            if self.limit(key).is_some_and(|limit| f.count >= limit) {
                f.locked_until = Some(now + self.lockout);
            }
        }
    }

    /// After a good login the name's failures are forgotten, from this client and from
    /// everywhere; the client's own count stays (it still tried the other names).
    fn succeed(&self, keys: &[Key]) {
        let now = Instant::now();
        let mut state = self.state.lock().expect("throttle lock");
        for key in keys {
            if let (false, Some(f)) = (matches!(key, Key::Client(_)), state.get_mut(key)) {
                let in_flight = f.in_flight;
                *f = Failures {
                    in_flight,
                    ..Failures::new(now)
                };
            }
        }
    }

    fn release(&self, keys: &[Key]) {
        let mut state = self.state.lock().expect("throttle lock");
        for key in keys {
            if let Some(f) = state.get_mut(key) {
                f.in_flight = f.in_flight.saturating_sub(1);
            }
        }
    }
}

impl Attempt {
    /// Record the outcome of the password check.
    pub fn finish(self, ok: bool) {
        if ok {
            self.throttle.succeed(&self.keys);
        } else {
            self.throttle.fail(&self.keys);
        }
        // Drop releases the in-flight count.
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.throttle.release(&self.keys);
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
    /// Password checks running at once, at most `[http] login_concurrency`: each takes
    /// argon2's 19 MiB and a blocking-pool thread the store shares.
    verifiers: Arc<tokio::sync::Semaphore>,
}

impl Auth {
    /// Sessions over the core's store, throttled as `[http]` says.
    pub fn new(core: &Core) -> Auth {
        let http = &core.cfg.http;
        Auth {
            core: core.clone(),
            throttle: Arc::new(Throttle::new(http.login_max_failures, http.login_lockout)),
            verifiers: Arc::new(tokio::sync::Semaphore::new(http.login_concurrency)),
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
            Route::post("/api/v1/kiosk/session", Access::Public)
                .json()
                .to(self.clone(), |auth, req| async move {
                    auth.kiosk_session(req.json()?).await
                }),
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

    /// A kiosk signs in with its device token: a session bound to the kiosk's account,
    /// for [`KIOSK_SESSION`]. The token is 256 random bits, so it is not throttled like a
    /// password; an unknown or replaced token is 401.
    async fn kiosk_session(&self, body: KioskLogin) -> Result<Response, ApiError> {
        let token = body.token;
        let store = &self.core.store;
        let Some(user) = store
            .read(move |c| users::device_account(c, &token))
            .await?
        else {
            self.core.metrics.login_failures.inc();
            tracing::warn!("kiosk sign-in with an unknown device token");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_credentials",
                "unknown or replaced device token",
            ));
        };
        let (token, hash) = users::new_token();
        let uid = user.id;
        let uname = user.username.clone();
        store
            .write(move |tx| {
                users::insert_session(tx, &hash, uid, KIOSK_SESSION)?;
                users::audit(tx, Some(&uname), "auth.kiosk", None, None)
            })
            .await?;
        tracing::info!(username = %user.username, role = %user.role, "kiosk signed in");
        let mut resp = ok_json(&me_body(&user));
        resp.headers_mut().insert(
            warp::http::header::SET_COOKIE,
            cookie(&token, KIOSK_SESSION, self.core.cfg.http.tls.is_some()),
        );
        Ok(resp)
    }

    async fn login(&self, ip: Option<IpAddr>, body: Login) -> Result<Response, ApiError> {
        let attempt = self
            .throttle
            .begin(&body.username, ip)
            .map_err(|Refused(secs)| {
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_attempts",
                    format!("too many failed logins; try again in {secs} s"),
                );
                e.retry_after = Some(secs);
                e
            })?;
        if !attempt.delay.is_zero() {
            tokio::time::sleep(attempt.delay).await;
        }
        let permit = self.verifiers.clone().try_acquire_owned().map_err(|_| {
            self.core.metrics.login_busy.inc();
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "login_busy",
                "too many logins at once; try again in a moment",
            );
            e.retry_after = Some(1);
            e
        })?;
        let store = &self.core.store;
        let name = body.username.clone();
        let creds = store.read(move |c| users::credentials(c, &name)).await?;
        let password = body.password;
        // Verify off the runtime: argon2 is deliberately slow. Unknown users are checked
        // against a dummy hash so both failures take the same time. The outcome is
        // recorded on the blocking thread, so a client that hangs up still pays for it.
        let (user, ok) = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let (user, ok) = match creds {
                Some((user, hash)) => {
                    let ok = users::verify_password(&password, &hash);
                    (Some(user), ok)
                }
                None => {
                    users::verify_password(&password, users::dummy_hash());
                    (None, false)
                }
            };
            attempt.finish(ok);
            (user, ok)
        })
        .await
        .map_err(ApiError::internal)?;
        let (Some(user), true) = (user, ok) else {
            self.core.metrics.login_failures.inc();
            tracing::warn!(username = %body.username, ?ip, "failed login");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_credentials",
                "wrong user name or password",
            ));
        };
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
pub struct Login {
    username: String,
    password: String,
}

/// A kiosk's sign-in.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KioskLogin {
    token: String,
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

    const A: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)));
    const B: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)));

    fn throttle(max_failures: u32) -> Arc<Throttle> {
        Arc::new(Throttle::new(max_failures, Duration::from_secs(60)))
    }

    fn fail(t: &Arc<Throttle>, name: &str, client: Option<IpAddr>) {
        t.begin(name, client).expect("admitted").finish(false);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lockout_starts_after_max_failures_and_ends_after_the_lockout() {
        let t = throttle(3);
        for _ in 0..3 {
            fail(&t, "amy", A);
        }
        assert_eq!(t.begin("amy", A).unwrap_err(), Refused(60));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(t.begin("amy", A).unwrap_err(), Refused(1));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(t.begin("amy", A).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_in_flight_count_before_their_password_is_checked() {
        let t = throttle(3);
        let running: Vec<Attempt> = (0..3).map(|_| t.begin("amy", A).unwrap()).collect();
        assert_eq!(t.begin("amy", A).unwrap_err(), Refused(1));
        // A client that hangs up before its check costs nothing.
        let mut running = running.into_iter();
        drop(running.next());
        let again = t.begin("amy", A).expect("a slot came free");
        // Every admitted guess that fails counts: the lockout follows.
        again.finish(false);
        running.for_each(|a| a.finish(false));
        assert_eq!(t.begin("amy", A).unwrap_err(), Refused(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_name_locked_from_one_client_is_slowed_not_locked_from_another() {
        let t = throttle(3);
        for _ in 0..3 {
            fail(&t, "manager", A);
        }
        assert!(t.begin("manager", A).is_err());
        let elsewhere = t.begin("manager", B).expect("another client may try");
        assert_eq!(elsewhere.delay, USER_DELAY);
        // A good login there forgets the name's failures everywhere but the locked client.
        elsewhere.finish(true);
        assert_eq!(t.begin("manager", B).unwrap().delay, Duration::ZERO);
        assert!(t.begin("manager", A).is_err());
        // The client that guessed may still log in under another name.
        assert!(t.begin("lobby", A).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn one_client_trying_many_names_is_locked_itself() {
        let t = throttle(3);
        for i in 0..3 * CLIENT_FACTOR {
            fail(&t, &format!("name{i}"), A);
        }
        assert_eq!(t.begin("anyone", A).unwrap_err(), Refused(60));
        let b = t
            .begin("anyone", B)
            .expect("other clients are not affected");
        assert_eq!(b.delay, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_spread_wider_than_the_window_do_not_lock() {
        let t = throttle(3);
        for _ in 0..5 {
            fail(&t, "amy", A);
            tokio::time::advance(Duration::from_secs(31)).await;
        }
        assert!(t.begin("amy", A).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_good_login_forgets_earlier_failures() {
        let t = throttle(2);
        fail(&t, "bo", A);
        t.begin("bo", A).unwrap().finish(true);
        fail(&t, "bo", A);
        assert!(t.begin("bo", A).is_ok());
    }

    #[test]
    fn very_long_names_share_one_entry() {
        let t = throttle(2);
        let long = "x".repeat(10_000);
        fail(&t, &long, A);
        fail(&t, &format!("{long}y"), A);
        assert!(t.begin(&long, A).is_err());
    }
}
