//! Versioned schema migrations, applied in order and recorded in `PRAGMA user_version`.
//!
//! A migration is never edited once released: a change to the schema is a new entry at the
//! end. Each runs in its own transaction together with the version bump.

use rusqlite::Connection;

/// The migrations; `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
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
];

/// Bring the database to the latest version. Refuses a database newer than this binary.
pub fn migrate(conn: &mut Connection) -> Result<(), String> {
    migrate_to(conn, MIGRATIONS.len())
}

/// Bring the database to `target` (for tests of upgrades from every earlier version).
pub fn migrate_to(conn: &mut Connection, target: usize) -> Result<(), String> {
    let current: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(|e| e.to_string())? as usize;
    if current > MIGRATIONS.len() {
        return Err(format!(
            "the database is at schema version {current}, newer than this branchd ({}); \
             refusing to touch it",
            MIGRATIONS.len()
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().take(target).skip(current) {
        let tx = conn.transaction().map_err(|e| e.to_string())?;
        tx.execute_batch(sql)
            .map_err(|e| format!("migration {}: {e}", i + 1))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
    }
    Ok(())
}
