//! The ledger in one SQLite file (WAL, `synchronous=FULL`): the embedded
//! default for a newsroom on one machine.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, TransactionBehavior};

use super::sql::{Db, Dialect, Param, Row, Value};
use super::{LedgerError, Result};

/// Each entry upgrades the schema by one `user_version`.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    r#"
    CREATE TABLE editions (
        id           TEXT PRIMARY KEY,
        newsletter   TEXT NOT NULL,
        slot_utc     TEXT NOT NULL,
        zone         TEXT NOT NULL,
        state        TEXT NOT NULL
                     CHECK (state IN ('frozen', 'sending', 'complete', 'missed', 'skipped')),
        subject      TEXT,
        html         TEXT,
        text         TEXT,
        item_ids     TEXT NOT NULL DEFAULT '[]',
        reason       TEXT,
        stats        TEXT,
        created_at   TEXT NOT NULL,
        completed_at TEXT
    );
    CREATE INDEX editions_by_newsletter ON editions (newsletter, slot_utc);

    CREATE TABLE variants (
        edition_id TEXT NOT NULL REFERENCES editions (id),
        key        TEXT NOT NULL,
        subject    TEXT NOT NULL,
        html       TEXT NOT NULL,
        text       TEXT NOT NULL,
        item_ids   TEXT NOT NULL,
        PRIMARY KEY (edition_id, key)
    );

    CREATE TABLE deliveries (
        edition_id TEXT NOT NULL REFERENCES editions (id),
        email      TEXT NOT NULL,
        name       TEXT,
        variant    TEXT NOT NULL,
        fields     TEXT NOT NULL DEFAULT '{}',
        state      TEXT NOT NULL
                   CHECK (state IN ('pending', 'sent', 'deferred', 'failed')),
        attempts   INTEGER NOT NULL DEFAULT 0,
        last_reply TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (edition_id, email)
    );
    CREATE INDEX deliveries_by_state ON deliveries (edition_id, state);

    CREATE TABLE leases (
        edition_id TEXT PRIMARY KEY REFERENCES editions (id),
        holder     TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    "#,
    // 2: the `in_doubt` delivery state and `doubts`, how many messages to
    // the reader were left in doubt. SQLite cannot change a CHECK
    // constraint in place: the table is rebuilt, rows kept in freeze order.
    r#"
    CREATE TABLE deliveries_v2 (
        edition_id TEXT NOT NULL REFERENCES editions (id),
        email      TEXT NOT NULL,
        name       TEXT,
        variant    TEXT NOT NULL,
        fields     TEXT NOT NULL DEFAULT '{}',
        state      TEXT NOT NULL
                   CHECK (state IN ('pending', 'sent', 'deferred', 'failed', 'in_doubt')),
        attempts   INTEGER NOT NULL DEFAULT 0,
        last_reply TEXT,
        updated_at TEXT NOT NULL,
        doubts     INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (edition_id, email)
    );
    INSERT INTO deliveries_v2
        (edition_id, email, name, variant, fields, state, attempts, last_reply, updated_at)
        SELECT edition_id, email, name, variant, fields, state, attempts, last_reply, updated_at
        FROM deliveries ORDER BY rowid;
    DROP TABLE deliveries;
    ALTER TABLE deliveries_v2 RENAME TO deliveries;
    CREATE INDEX deliveries_by_state ON deliveries (edition_id, state);
    "#,
    // 3: editions get a number (VERP tags refer to it); each distinct
    // rendering is stored once, the main one as rendering 0; deliveries are
    // compact (a rendering number, only the fields a rendering uses, the
    // reply only when it was not an acceptance, times in milliseconds); and
    // what comes back: suppressions, return events, preferences.
    r#"
    ALTER TABLE editions ADD COLUMN num INTEGER;
    UPDATE editions SET num = rowid;
    CREATE UNIQUE INDEX editions_by_num ON editions (num);

    CREATE TABLE renderings (
        edition_num INTEGER NOT NULL,
        idx         INTEGER NOT NULL,
        subject     TEXT NOT NULL,
        html        TEXT NOT NULL,
        text        TEXT NOT NULL,
        item_ids    TEXT NOT NULL,
        PRIMARY KEY (edition_num, idx)
    );
    INSERT INTO renderings (edition_num, idx, subject, html, text, item_ids)
        SELECT num, 0, subject, html, text, item_ids FROM editions WHERE html IS NOT NULL;
    INSERT INTO renderings (edition_num, idx, subject, html, text, item_ids)
        SELECT e.num,
               (SELECT COUNT(*) FROM variants w WHERE w.edition_id = v.edition_id AND w.key <= v.key),
               v.subject, v.html, v.text, v.item_ids
        FROM variants v JOIN editions e ON e.id = v.edition_id;

    CREATE TABLE deliveries_v3 (
        edition_num INTEGER NOT NULL,
        email       TEXT NOT NULL,
        name        TEXT,
        rendering   INTEGER NOT NULL,
        fields      TEXT,
        state       TEXT NOT NULL
                    CHECK (state IN ('pending', 'sent', 'deferred', 'failed', 'in_doubt', 'suppressed')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        reply       TEXT,
        updated     INTEGER NOT NULL,
        doubts      INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (edition_num, email)
    ) WITHOUT ROWID;
    INSERT INTO deliveries_v3
        (edition_num, email, name, rendering, fields, state, attempts, reply, updated, doubts)
        SELECT e.num, d.email, d.name,
               CASE WHEN d.variant = 'main' THEN 0 ELSE
                   (SELECT COUNT(*) FROM variants w WHERE w.edition_id = d.edition_id AND w.key <= d.variant)
               END,
               NULLIF(d.fields, '{}'), d.state, d.attempts,
               CASE WHEN d.state = 'sent' THEN NULL ELSE d.last_reply END,
               CAST(strftime('%s', d.updated_at) AS INTEGER) * 1000, d.doubts
        FROM deliveries d JOIN editions e ON e.id = d.edition_id;
    DROP TABLE deliveries;
    ALTER TABLE deliveries_v3 RENAME TO deliveries;
    DROP TABLE variants;
    UPDATE editions SET html = NULL, text = NULL;

    CREATE TABLE suppressions (
        address    TEXT NOT NULL,
        scope      TEXT NOT NULL,
        reason     TEXT NOT NULL,
        created_at TEXT NOT NULL,
        evidence   TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (address, scope)
    );
    CREATE INDEX suppressions_by_time ON suppressions (created_at);

    CREATE TABLE return_events (
        id         INTEGER PRIMARY KEY,
        address    TEXT NOT NULL,
        newsletter TEXT,
        edition_id TEXT,
        kind       TEXT NOT NULL,
        at         TEXT NOT NULL,
        evidence   TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX return_events_by_edition ON return_events (edition_id, kind);
    CREATE UNIQUE INDEX return_events_once ON return_events (address, edition_id, kind);
    CREATE INDEX return_events_by_newsletter ON return_events (newsletter, kind);
    CREATE INDEX return_events_by_address ON return_events (address, at);

    CREATE TABLE preferences (
        address    TEXT NOT NULL,
        newsletter TEXT NOT NULL,
        regions    TEXT NOT NULL,
        topics     TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (address, newsletter)
    );
    "#,
    // 4: the anonymous rendering the web archive shows, frozen with the
    // edition, in the columns migration 3 emptied, named for what they hold
    // now. NULL for editions frozen before, or of a newsletter not archived.
    r#"
    ALTER TABLE editions RENAME COLUMN html TO web_html;
    ALTER TABLE editions RENAME COLUMN text TO web_text;
    ALTER TABLE editions ADD COLUMN web_subject TEXT;
    "#,
    // 5: subscribers who signed up on the page (or were imported as having
    // consented), one row per address and newsletter. `address` is the
    // lower-cased key, `email` the address as given.
    r#"
    CREATE TABLE subscribers (
        address    TEXT NOT NULL,
        newsletter TEXT NOT NULL,
        email      TEXT NOT NULL,
        name       TEXT,
        consent_at TEXT NOT NULL,
        source     TEXT NOT NULL,
        evidence   TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (address, newsletter)
    );
    CREATE INDEX subscribers_by_newsletter ON subscribers (newsletter, address);
    "#,
    // 6: the confirmation messages sent, so that a bounce of one is traced
    // to its address: `hash` is the Message-ID's (see
    // `crate::mail::message::message_id`).
    r#"
    CREATE TABLE confirmations (
        hash    TEXT NOT NULL,
        address TEXT NOT NULL,
        sent_at TEXT NOT NULL,
        PRIMARY KEY (hash, address)
    );
    "#,
    // 7: several senders on one edition. Each sender holds a lease of its
    // own (`leases`, one row per edition and holder) and claims recipients
    // in batches (`deliveries.claim`, the holder's id); a claim counts while
    // its holder's lease is alive. Leases of the old shape (one holder per
    // edition) are dropped: upgrade while no sender runs.
    r#"
    ALTER TABLE deliveries ADD COLUMN claim TEXT;
    DROP TABLE leases;
    CREATE TABLE leases (
        edition_id TEXT NOT NULL REFERENCES editions (id),
        holder     TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        PRIMARY KEY (edition_id, holder)
    );
    "#,
    // 8: what each relay did for each edition (several relays in
    // `delivery.smtp`), added to by every run and host.
    r#"
    CREATE TABLE relay_counts (
        edition_id       TEXT NOT NULL,
        relay            TEXT NOT NULL,
        sent             INTEGER NOT NULL DEFAULT 0,
        deferred         INTEGER NOT NULL DEFAULT 0,
        failed           INTEGER NOT NULL DEFAULT 0,
        in_doubt         INTEGER NOT NULL DEFAULT 0,
        connect_failures INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (edition_id, relay)
    );
    "#,
];

/// A connection to a ledger file.
pub(super) struct Sqlite {
    conn: Connection,
}

/// Opens (creating if needed) the ledger at `path`, including its parent
/// directory, and migrates the schema.
pub(super) fn open(path: &Path) -> Result<Sqlite> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| LedgerError::CreateDir {
            path: parent.to_owned(),
            source,
        })?;
    }
    let mut conn = Connection::open(path)?;
    // Another process (status, a second send) may hold a write lock for a
    // moment; wait rather than fail.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Every statement the ledger runs, prepared once per connection.
    conn.set_prepared_statement_cache_capacity(64);
    // Switching a new file to WAL takes an exclusive lock, and SQLite
    // answers "database is locked" at once instead of calling the busy
    // handler when another connection is setting the file up too (two
    // senders started together on a new ledger): retry like the handler.
    let mode: String =
        retry_while_busy(|| conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(LedgerError::NoWal(mode));
    }
    // FULL: a commit is on disk before the sender moves on, which is what
    // bounds the messages in doubt after a power cut.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&mut conn)?;
    Ok(Sqlite { conn })
}

/// The schema version of the file at `path` and the newest this build
/// knows, without changing anything; `None` when there is no file.
pub(super) fn version(path: &Path) -> Result<Option<i64>> {
    if !path.exists() {
        return Ok(None);
    }
    let conn = Connection::open(path)?;
    Ok(Some(
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))?,
    ))
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Param::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Param::Int(n) => ToSqlOutput::Borrowed(ValueRef::Integer(*n)),
            Param::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

fn value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Int(n),
        // The ledger stores no floats or blobs; read them as text rather
        // than fail, so that a damaged row is reported by what reads it.
        ValueRef::Real(f) => Value::Text(f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            Value::Text(String::from_utf8_lossy(t).into_owned())
        }
    }
}

impl Db for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        Ok(stmt.execute(rusqlite::params_from_iter(params))? as u64)
    }

    fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let width = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(Row((0..width)
                .map(|i| r.get_ref(i).map(value))
                .collect::<rusqlite::Result<_>>()?));
        }
        Ok(out)
    }

    fn batch(&self, sql: &str) -> Result<()> {
        Ok(self.conn.execute_batch(sql)?)
    }
}

/// How long a ledger operation waits for another connection's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `op` again while SQLite reports the database busy, for up to
/// [`BUSY_TIMEOUT`], for the statements that do not use the busy handler.
fn retry_while_busy<T>(mut op: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match op() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let supported = MIGRATIONS.len() as i64;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > supported {
        return Err(LedgerError::NewerSchema {
            found: version,
            supported,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
    }
    tx.commit()?;
    Ok(())
}
