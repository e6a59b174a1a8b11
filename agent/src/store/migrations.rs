//! Versioned schema migrations, one list per module, applied in order; each module's version
//! is recorded in the `schema_versions` table.
//!
//! A migration is never edited once released: a change to the schema is a new entry at the
//! end of its module's list. Each runs in its own transaction together with the version bump.

use rusqlite::{Connection, OptionalExtension, params};

/// The schema of one module: `steps[i]` takes it from version `i` to `i + 1`.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// Module name, the key in `schema_versions`.
    pub module: &'static str,
    /// The migrations, oldest first.
    pub steps: &'static [&'static str],
}

/// The store's own schema: the outbox and its sequence (`meta`, `events`) and the positions
/// of durable consumers (`followers`). For history, its steps 2–4 also create the tables of
/// the users (`users`, `sessions`, `audit`), alerts (`alerts`) and devices (`device_state`)
/// modules; later changes to those tables go in their owners' schemas.
pub const CORE: Schema = Schema {
    module: "core",
    steps: CORE_STEPS,
};

const CORE_STEPS: &[&str] = &[
    // 1: the outbox and its sequence.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
     INSERT INTO meta(key, value) VALUES ('event_seq', '0');
     CREATE TABLE events (
         seq INTEGER PRIMARY KEY,
         id TEXT NOT NULL UNIQUE,
         ts TEXT NOT NULL,
         kind TEXT NOT NULL,
         data TEXT NOT NULL,
         acked_at TEXT
     ) STRICT;
     CREATE INDEX events_unacked ON events(seq) WHERE acked_at IS NULL;",
    // 2: staff accounts, sessions and the audit trail.
    "CREATE TABLE users (
         id INTEGER PRIMARY KEY,
         username TEXT NOT NULL UNIQUE,
         role TEXT NOT NULL,
         password_hash TEXT NOT NULL,
         created_at TEXT NOT NULL,
         disabled INTEGER NOT NULL DEFAULT 0
     ) STRICT;
     CREATE TABLE sessions (
         token_hash TEXT PRIMARY KEY,
         user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
         created_at TEXT NOT NULL,
         last_seen TEXT NOT NULL,
         expires_at TEXT NOT NULL
     ) STRICT;
     CREATE TABLE audit (
         id INTEGER PRIMARY KEY,
         ts TEXT NOT NULL,
         actor TEXT,
         action TEXT NOT NULL,
         target TEXT,
         detail TEXT
     ) STRICT;",
    // 3: alerts for the staff.
    "CREATE TABLE alerts (
         id INTEGER PRIMARY KEY,
         ts TEXT NOT NULL,
         kind TEXT NOT NULL,
         level TEXT NOT NULL,
         source TEXT,
         key TEXT,
         message TEXT NOT NULL,
         data TEXT,
         acked_at TEXT,
         acked_by TEXT,
         cleared_at TEXT
     ) STRICT;
     CREATE UNIQUE INDEX alerts_open_key ON alerts(key) WHERE cleared_at IS NULL AND key IS NOT NULL;",
    // 4: the last known state of every configured device, whichever module drives it.
    "CREATE TABLE device_state (
         id TEXT PRIMARY KEY,
         kind TEXT NOT NULL,
         online INTEGER NOT NULL DEFAULT 0,
         state TEXT,
         modules TEXT NOT NULL DEFAULT '{}',
         consumables TEXT NOT NULL DEFAULT '{}',
         cash TEXT,
         detail TEXT NOT NULL DEFAULT '{}',
         updated_at TEXT NOT NULL
     ) STRICT;",
    // 5: where each durable consumer of the event stream has got to.
    "CREATE TABLE followers (name TEXT PRIMARY KEY, seq INTEGER NOT NULL) STRICT;",
];

/// Bring every schema to its latest version. Refuses a database newer than this binary.
pub fn migrate(conn: &mut Connection, schemas: &[Schema]) -> Result<(), String> {
    for schema in schemas {
        migrate_to(conn, schema, schema.steps.len())?;
    }
    Ok(())
}

/// The version of one module's schema in this database (0: none).
pub fn version(conn: &Connection, module: &str) -> Result<usize, String> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_versions \
         (module TEXT PRIMARY KEY, version INTEGER NOT NULL) STRICT",
    )
    .map_err(|e| e.to_string())?;
    let v: Option<i64> = conn
        .query_row(
            "SELECT version FROM schema_versions WHERE module = ?1",
            [module],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| e.to_string())?;
    Ok(v.unwrap_or(0) as usize)
}

/// Bring one module's schema to `target` (for tests of upgrades from every earlier version).
pub fn migrate_to(conn: &mut Connection, schema: &Schema, target: usize) -> Result<(), String> {
    let current = version(conn, schema.module)?;
    if current > schema.steps.len() {
        return Err(format!(
            "the database's `{}` schema is at version {current}, newer than this branchd ({}); \
             refusing to touch it",
            schema.module,
            schema.steps.len()
        ));
    }
    for (i, sql) in schema.steps.iter().enumerate().take(target).skip(current) {
        let tx = conn.transaction().map_err(|e| e.to_string())?;
        tx.execute_batch(sql)
            .map_err(|e| format!("{} migration {}: {e}", schema.module, i + 1))?;
        tx.execute(
            "INSERT INTO schema_versions(module, version) VALUES (?1, ?2) \
             ON CONFLICT(module) DO UPDATE SET version = excluded.version",
            params![schema.module, (i + 1) as i64],
        )
        .map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
    }
    Ok(())
}
