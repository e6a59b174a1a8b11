//! Staff accounts, roles, password hashes (argon2id) and login sessions.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::clock::rfc3339;
use crate::store::{StoreError, Tx};

/// What a member of staff may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 大堂经理: queue, alerts, VIP arrivals, documents, orders.
    LobbyManager,
    /// 机具管理员: device sign-in/out, status, exceptions, remote operations.
    DeviceAdmin,
    /// 授权柜员: approves STM transactions.
    Supervisor,
    /// 网点负责人: statistics and forecasts.
    BranchManager,
    /// A self-service ticket kiosk in the lobby: a device account, not a member of staff.
    /// It signs in with a device token ([`new_device_token`]), lists the services and
    /// issues tickets, and nothing else.
    Kiosk,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] = [
        Role::LobbyManager,
        Role::DeviceAdmin,
        Role::Supervisor,
        Role::BranchManager,
        Role::Kiosk,
    ];

    /// The roles of staff: every role but the kiosk's.
    pub const STAFF: [Role; 4] = [
        Role::LobbyManager,
        Role::DeviceAdmin,
        Role::Supervisor,
        Role::BranchManager,
    ];

    /// Whether the role is a member of staff's (not a device's).
    pub fn is_staff(self) -> bool {
        self != Role::Kiosk
    }

    /// The name used in the CLI, the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::LobbyManager => "lobby_manager",
            Role::DeviceAdmin => "device_admin",
            Role::Supervisor => "supervisor",
            Role::BranchManager => "branch_manager",
            Role::Kiosk => "kiosk",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown role `{s}` (expected one of: {})",
                    Role::ALL.map(|r| r.as_str()).join(", ")
                )
            })
    }
}

/// A logged-in member of staff.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
}

/// Problems with accounts.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// Bad name, role or password.
    #[error("{0}")]
    Invalid(String),
    /// The name is taken.
    #[error("user `{0}` already exists")]
    Exists(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for UserError {
    fn from(e: rusqlite::Error) -> Self {
        UserError::Store(StoreError::Sqlite(e))
    }
}

/// Hash a password with argon2id and a random salt (CPU-heavy: call off the runtime).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
}

/// Check a password against a stored hash (CPU-heavy: call off the runtime).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash that no password matches, verified when the user does not exist so that a
/// login takes as long for an unknown name as for a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("no password matches this one"))
}

/// Validate a new account's fields.
pub fn validate_new(username: &str, password: &str) -> Result<(), UserError> {
    validate_name(username)?;
    if password.chars().count() < 8 {
        return Err(UserError::Invalid(
            "a password has at least 8 characters".into(),
        ));
    }
    Ok(())
}

/// Validate a new account's name.
pub fn validate_name(username: &str) -> Result<(), UserError> {
    let name_ok = !username.is_empty()
        && username.len() <= 32
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !name_ok {
        return Err(UserError::Invalid(
            "a user name is 1–32 letters, digits, '.', '_' or '-'".into(),
        ));
    }
    Ok(())
}

/// Insert an account (the hash is computed by the caller, off the writer thread).
pub fn insert_user(
    tx: &mut Tx<'_>,
    username: &str,
    role: Role,
    password_hash: &str,
) -> Result<i64, UserError> {
    let exists: Option<i64> = tx
        .conn()
        .query_row(
            "SELECT id FROM users WHERE username = ?1",
            [username],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_some() {
        return Err(UserError::Exists(username.to_string()));
    }
    tx.conn().execute(
        "INSERT INTO users(username, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![username, role.as_str(), password_hash, rfc3339(tx.now())],
    )?;
    let id = tx.conn().last_insert_rowid();
    tx.conn().execute(
        "INSERT INTO audit(ts, actor, action, target) VALUES (?1, NULL, 'user.add', ?2)",
        params![rfc3339(tx.now()), format!("{username} ({role})")],
    )?;
    Ok(id)
}

/// What a device account (a kiosk) stores where a member of staff's password hash goes:
/// this prefix and the SHA-256 of its device token. No password verifies against it (it is
/// not a PHC string), so a device account never logs in with a password.
const DEVICE_TOKEN: &str = "device-token:";

/// A fresh device token (shown once, when the account is added) and what is stored of it.
pub fn new_device_token() -> (String, String) {
    let (token, _) = new_token();
    let stored = stored_device_token(&token);
    (token, stored)
}

/// What is stored of a device token.
pub fn stored_device_token(token: &str) -> String {
    format!("{DEVICE_TOKEN}{}", token_hash(token))
}

/// Add a device account with the stored form of its token, or give an existing device
/// account of the same role a new token: the old token stops working and its sessions
/// end. A member of staff's account of that name is left alone ([`UserError::Exists`]).
/// Answers the account's id and whether it existed.
pub fn set_device_token(
    tx: &mut Tx<'_>,
    username: &str,
    role: Role,
    stored: &str,
) -> Result<(i64, bool), UserError> {
    debug_assert!(!role.is_staff());
    let existing: Option<(i64, String)> = tx
        .conn()
        .query_row(
            "SELECT id, role FROM users WHERE username = ?1",
            [username],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match existing {
        None => Ok((insert_user(tx, username, role, stored)?, false)),
        Some((id, r)) if r == role.as_str() => {
            tx.conn().execute(
                "UPDATE users SET password_hash = ?1, disabled = 0 WHERE id = ?2",
                params![stored, id],
            )?;
            tx.conn()
                .execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
            audit(
                tx,
                None,
                "user.token",
                Some(&format!("{username} ({role})")),
                None,
            )?;
            Ok((id, true))
        }
        Some(_) => Err(UserError::Exists(username.to_string())),
    }
}

/// The active device account whose token is `token`.
pub fn device_account(c: &Connection, token: &str) -> Result<Option<User>, StoreError> {
    let stored = stored_device_token(token);
    let row = c
        .query_row(
            "SELECT id, username, role FROM users WHERE password_hash = ?1 AND disabled = 0",
            [stored],
            user_of,
        )
        .optional()?;
    Ok(row.flatten().filter(|u| !u.role.is_staff()))
}

/// The user in the first three columns (`id, username, role`) of a row; `None` for a
/// role this binary does not know.
fn user_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<User>> {
    let (id, username, role): (i64, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
    Ok(role.parse().ok().map(|role| User { id, username, role }))
}

/// The stored credentials of a member of staff, if any (a device account has none: it
/// signs in with its token).
pub fn credentials(c: &Connection, username: &str) -> Result<Option<(User, String)>, StoreError> {
    let row = c
        .query_row(
            "SELECT id, username, role, password_hash FROM users \
             WHERE username = ?1 AND disabled = 0",
            [username],
            |r| Ok((user_of(r)?, r.get::<_, String>(3)?)),
        )
        .optional()?;
    Ok(row
        .and_then(|(user, hash)| Some((user?, hash)))
        .filter(|(user, _)| user.role.is_staff()))
}

/// A fresh random session token (what the cookie carries) and its stored hash.
pub fn new_token() -> (String, String) {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

/// Sessions are stored by the SHA-256 of their token, so a copy of the database does not
/// hand out live sessions.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Record a new session.
pub fn insert_session(
    tx: &mut Tx<'_>,
    token_hash: &str,
    user_id: i64,
    max_age: Duration,
) -> Result<(), StoreError> {
    let now = tx.now();
    let expires = now + chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::hours(12));
    tx.conn().execute(
        "INSERT INTO sessions(token_hash, user_id, created_at, last_seen, expires_at) \
         VALUES (?1, ?2, ?3, ?3, ?4)",
        params![token_hash, user_id, rfc3339(now), rfc3339(expires)],
    )?;
    // Housekeeping: forget sessions that ended long ago.
    tx.conn().execute(
        "DELETE FROM sessions WHERE expires_at < ?1",
        params![rfc3339(now)],
    )?;
    Ok(())
}

/// A session as looked up for a request.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Who.
    pub user: User,
    /// Last request seen.
    pub last_seen: DateTime<Utc>,
}

/// Look a session up; `None` if unknown, expired (absolute) or idle too long. A device's
/// session is never idle too long: a kiosk may stand untouched all night.
pub fn lookup_session(
    c: &Connection,
    token_hash: &str,
    now: DateTime<Utc>,
    idle: Duration,
) -> Result<Option<SessionInfo>, StoreError> {
    let row = c
        .prepare_cached(
            "SELECT u.id, u.username, u.role, s.last_seen, s.expires_at \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = ?1 AND u.disabled = 0",
        )?
        .query_row([token_hash], |r| {
            Ok((user_of(r)?, r.get::<_, String>(3)?, r.get::<_, String>(4)?))
        })
        .optional()?;
    let Some((user, last_seen, expires)) = row else {
        return Ok(None);
    };
    let parse = crate::clock::parse;
    let (Some(user), Some(last_seen), Some(expires)) = (user, parse(&last_seen), parse(&expires))
    else {
        return Ok(None);
    };
    let idle = chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::hours(8));
    if now >= expires || (user.role.is_staff() && now - last_seen > idle) {
        return Ok(None);
    }
    Ok(Some(SessionInfo { user, last_seen }))
}

/// Note activity on a session.
pub fn touch_session(tx: &mut Tx<'_>, token_hash: &str) -> Result<(), StoreError> {
    tx.conn().execute(
        "UPDATE sessions SET last_seen = ?1 WHERE token_hash = ?2",
        params![rfc3339(tx.now()), token_hash],
    )?;
    Ok(())
}

/// End a session.
pub fn delete_session(tx: &mut Tx<'_>, token_hash: &str) -> Result<(), StoreError> {
    tx.conn()
        .execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?;
    Ok(())
}

/// Append to the audit trail.
pub fn audit(
    tx: &Tx<'_>,
    actor: Option<&str>,
    action: &str,
    target: Option<&str>,
    detail: Option<&serde_json::Value>,
) -> Result<(), StoreError> {
    tx.conn().execute(
        "INSERT INTO audit(ts, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            rfc3339(tx.now()),
            actor,
            action,
            target,
            detail.map(|d| d.to_string())
        ],
    )?;
    Ok(())
}

/// Whether `name` is an active member of staff's account on this box (a kiosk is not:
/// it cannot sit at a counter or look after a customer).
pub fn is_active(c: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(active_user(c, name)?.is_some_and(|u| u.role.is_staff()))
}

/// The active account named `name`, if any (no hash).
pub fn active_user(c: &Connection, name: &str) -> Result<Option<User>, StoreError> {
    let row = c
        .query_row(
            "SELECT id, username, role FROM users WHERE username = ?1 AND disabled = 0",
            [name],
            user_of,
        )
        .optional()?;
    Ok(row.flatten())
}

/// The active accounts with one of `roles`, by name: ids and names only.
pub fn active_with_roles(c: &Connection, roles: &[Role]) -> Result<Vec<(i64, String)>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT id, username, role FROM users WHERE disabled = 0 ORDER BY username",
    )?;
    let rows = stmt.query_map([], user_of)?;
    let mut out = Vec::new();
    for u in rows {
        if let Some(u) = u?
            && roles.contains(&u.role)
        {
            out.push((u.id, u.username));
        }
    }
    Ok(out)
}

/// Every account (no hashes), for the branch manager.
pub fn list(c: &Connection) -> Result<Vec<serde_json::Value>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT id, username, role, created_at, disabled FROM users ORDER BY username",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(serde_json::json!({
            "id": r.get::<_, i64>(0)?,
            "username": r.get::<_, String>(1)?,
            "role": r.get::<_, String>(2)?,
            "created_at": r.get::<_, String>(3)?,
            "disabled": r.get::<_, i64>(4)? != 0,
        }))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The newest audit records, newest first.
pub fn audit_trail(c: &Connection, limit: usize) -> Result<Vec<serde_json::Value>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT id, ts, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], |r| {
        let detail: Option<String> = r.get(5)?;
        Ok(serde_json::json!({
            "id": r.get::<_, i64>(0)?,
            "ts": r.get::<_, String>(1)?,
            "actor": r.get::<_, Option<String>>(2)?,
            "action": r.get::<_, String>(3)?,
            "target": r.get::<_, Option<String>>(4)?,
            "detail": detail.and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok()),
        }))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn a_session_ends_when_idle_too_long_or_past_its_maximum_age() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db"), crate::modules::SCHEMAS).unwrap();
        let hash = hash_password("a long password");
        let uid = store
            .write_blocking(move |tx| insert_user(tx, "amy", Role::Supervisor, &hash))
            .unwrap();
        let (_, token) = new_token();
        let t = token.clone();
        store
            .write_blocking(move |tx| insert_session(tx, &t, uid, Duration::from_secs(3600)))
            .unwrap();
        let created = chrono::Utc::now();
        let idle = Duration::from_secs(600);
        let at = |secs: i64| created + chrono::Duration::seconds(secs);
        // (seconds after login, still valid)
        let cases = [
            (0, true),
            (599, true),
            (601, false),
            (3599, false),
            (3601, false),
        ];
        for (secs, valid) in cases {
            let t = token.clone();
            let found = store
                .read_blocking(move |c| lookup_session(c, &t, at(secs), idle))
                .unwrap();
            assert_eq!(found.is_some(), valid, "{secs} s after login");
        }
        // Activity keeps it alive up to, never past, the maximum age.
        let found = store
            .read_blocking(move |c| lookup_session(c, "unknown", at(1), idle))
            .unwrap();
        assert!(found.is_none());
        store.close();
    }

    #[test]
    fn a_device_token_signs_its_kiosk_in_until_it_is_replaced_and_never_a_password() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db"), crate::modules::SCHEMAS).unwrap();
        let hash = hash_password("a long password");
        store
            .write_blocking(move |tx| insert_user(tx, "amy", Role::Supervisor, &hash))
            .unwrap();
        let (old, stored) = new_device_token();
        assert!(!stored.contains(&old), "the token itself is not stored");
        let (id, replaced) = store
            .write_blocking(move |tx| set_device_token(tx, "kiosk1", Role::Kiosk, &stored))
            .unwrap();
        assert!(!replaced);
        let found = |token: String| {
            store
                .read_blocking(move |c| device_account(c, &token))
                .unwrap()
                .map(|u| (u.id, u.username, u.role))
        };
        assert_eq!(
            found(old.clone()),
            Some((id, "kiosk1".to_string(), Role::Kiosk))
        );
        assert_eq!(found("not the token".into()), None);
        // A kiosk has no password, and its name gives no credentials to check one against.
        let creds = store.read_blocking(|c| credentials(c, "kiosk1")).unwrap();
        assert!(creds.is_none());
        // A kiosk's session outlives any idle time; a member of staff's does not.
        let t = "kiosk-session".to_string();
        store
            .write_blocking(move |tx| insert_session(tx, &t, id, Duration::from_secs(86_400)))
            .unwrap();
        let later = chrono::Utc::now() + chrono::Duration::hours(12);
        let alive = store
            .read_blocking(|c| lookup_session(c, "kiosk-session", later, Duration::from_secs(600)))
            .unwrap();
        assert!(alive.is_some());
        // A new token: the old one and the kiosk's sessions end.
        let (new, stored) = new_device_token();
        let (same, replaced) = store
            .write_blocking(move |tx| set_device_token(tx, "kiosk1", Role::Kiosk, &stored))
            .unwrap();
        assert_eq!((same, replaced), (id, true));
        assert_eq!(found(old), None);
        assert_eq!(found(new).map(|u| u.0), Some(id));
        let now = chrono::Utc::now();
        let ended = store
            .read_blocking(|c| lookup_session(c, "kiosk-session", now, Duration::from_secs(600)))
            .unwrap();
        assert!(ended.is_none());
        // A member of staff's account is never turned into a kiosk.
        let (_, stored) = new_device_token();
        let r = store.write_blocking(move |tx| set_device_token(tx, "amy", Role::Kiosk, &stored));
        assert!(matches!(r, Err(UserError::Exists(_))), "{r:?}");
        assert!(!store.read_blocking(|c| is_active(c, "kiosk1")).unwrap());
        assert!(store.read_blocking(|c| is_active(c, "amy")).unwrap());
        store.close();
    }

    #[test]
    fn roles_parse_from_their_names_only() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!(
            "admin"
                .parse::<Role>()
                .unwrap_err()
                .contains("lobby_manager")
        );
    }

    #[test]
    fn passwords_verify_against_their_hash_only() {
        let h = hash_password("correct horse");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horse ", &h));
        assert!(!verify_password("correct horse", "not a hash"));
        assert!(!verify_password("x", dummy_hash()));
    }
}
