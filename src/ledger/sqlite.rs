//! The ledger in one SQLite file (WAL, `synchronous=FULL`): the embedded
//! default for a newsroom on one machine.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{
    Counts, Delivery, DeliveryState, DeliveryUpdate, EditionState, EditionStub, EditionSummary,
    FrozenEdition, LeaseOutcome, LedgerError, PreferenceRecord, Preferences, Recipient, Rendering,
    Result, ReturnCounts, ReturnEvent, ReturnKind, StoredEdition, StoredSubscriber, Suppression,
    SuppressionReason, SuppressionScope, WebRendering,
};

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
];

/// SQL condition for the deliveries a run still tries: pending, deferred,
/// and in doubt fewer than [`super::MAX_DOUBTS`] times.
pub(super) const OPEN: &str =
    "(state IN ('pending', 'deferred') OR (state = 'in_doubt' AND doubts < 2))";

/// An open ledger. Writes take `&mut self`; open one per process and hand it
/// to the one ledger writer during a send.
#[derive(Debug)]
pub struct Ledger {
    pub(super) conn: Connection,
    path: PathBuf,
}

/// Timestamps are stored as fixed-width RFC 3339 UTC text, so they sort and
/// compare correctly as strings.
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_ts(column: &'static str, value: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| LedgerError::Corrupt {
            column,
            value: value.to_owned(),
        })
}

fn parse_ids(value: &str) -> Result<Vec<String>> {
    serde_json::from_str(value).map_err(|_| LedgerError::Corrupt {
        column: "item_ids",
        value: value.to_owned(),
    })
}

fn parse_json(column: &'static str, value: &str) -> Result<serde_json::Value> {
    serde_json::from_str(value).map_err(|_| LedgerError::Corrupt {
        column,
        value: value.to_owned(),
    })
}

/// SQLite integers are i64; counts are never negative.
fn count(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<u64> {
    Ok(u64::try_from(row.get::<_, i64>(index)?).unwrap_or(0))
}

fn ttl_delta(ttl: Duration) -> Result<TimeDelta> {
    TimeDelta::from_std(ttl).map_err(|_| LedgerError::InvalidTtl(ttl))
}

/// Milliseconds since 1970, what `deliveries.updated` holds.
fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

impl Ledger {
    /// Opens (creating if needed) the ledger at `path`, including its parent
    /// directory, and migrates the schema.
    pub fn open(path: &Path) -> Result<Ledger> {
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
        Ok(Ledger {
            conn,
            path: path.to_owned(),
        })
    }

    /// The ledger at `path` if it exists: for readers (`check`, a dry run,
    /// `schedule`) that must not create one.
    pub fn open_existing(path: &Path) -> Result<Option<Ledger>> {
        match path.exists() {
            true => Ledger::open(path).map(Some),
            false => Ok(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores the edition, its renderings and one pending delivery per
    /// recipient, all in one transaction. Freezing an id that already exists
    /// changes nothing and returns `false`: the first frozen copy is what
    /// gets sent, even if the content was edited since.
    pub fn freeze_edition(
        &mut self,
        edition: &FrozenEdition,
        recipients: &[Recipient],
    ) -> Result<bool> {
        let now = Utc::now();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists = tx
            .query_row(
                "SELECT 1 FROM editions WHERE id = ?1",
                [&edition.id],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if exists {
            return Ok(false);
        }
        for r in recipients {
            if r.rendering as usize >= edition.renderings.len() {
                return Err(LedgerError::UnknownRendering {
                    edition: edition.id.clone(),
                    email: r.email.clone(),
                    rendering: r.rendering,
                });
            }
        }
        let num: i64 = tx.query_row("SELECT COALESCE(MAX(num), 0) + 1 FROM editions", [], |r| {
            r.get(0)
        })?;
        let main = edition.main();
        let web = edition.web.as_ref();
        tx.execute(
            "INSERT INTO editions
                 (id, num, newsletter, slot_utc, zone, state, subject, item_ids, created_at,
                  web_subject, web_html, web_text)
             VALUES (?1, ?2, ?3, ?4, ?5, 'frozen', ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                edition.id,
                num,
                edition.newsletter,
                ts(edition.slot_utc),
                edition.zone,
                main.map(|m| m.subject.as_str()),
                serde_json::to_string(&main.map(|m| &m.item_ids))?,
                ts(now),
                web.map(|w| w.subject.as_str()),
                web.map(|w| w.html.as_str()),
                web.map(|w| w.text.as_str()),
            ],
        )?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO renderings (edition_num, idx, subject, html, text, item_ids)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (idx, r) in edition.renderings.iter().enumerate() {
                insert.execute(params![
                    num,
                    idx as i64,
                    r.subject,
                    r.html,
                    r.text,
                    serde_json::to_string(&r.item_ids)?
                ])?;
            }
            // The audience is deduplicated already; if not, the first row wins.
            let mut insert = tx.prepare_cached(
                "INSERT INTO deliveries (edition_num, email, name, rendering, fields, state, updated)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6)
                 ON CONFLICT (edition_num, email) DO NOTHING",
            )?;
            let updated = millis(now);
            for r in recipients {
                let fields = match r.fields.is_empty() {
                    true => None,
                    // An object with sorted keys, as it always was.
                    false => Some(serde_json::to_string(
                        &(r.fields.iter())
                            .map(|(k, v)| (k.as_str(), v.as_str()))
                            .collect::<BTreeMap<_, _>>(),
                    )?),
                };
                insert.execute(params![num, r.email, r.name, r.rendering, fields, updated])?;
            }
        }
        tx.commit()?;
        Ok(true)
    }

    /// The number of edition `id`, if it exists.
    fn num(&self, id: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row("SELECT num FROM editions WHERE id = ?1", [id], |r| r.get(0))
            .optional()?)
    }

    /// The stored edition with its renderings, if it exists.
    pub fn edition(&self, id: &str) -> Result<Option<StoredEdition>> {
        let row = self
            .conn
            .query_row(
                "SELECT id, num, newsletter, slot_utc, zone, state, subject, reason, created_at,
                        completed_at
                 FROM editions WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        (
                            r.get::<_, String>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, String>(4)?,
                        ),
                        (
                            r.get::<_, String>(5)?,
                            r.get::<_, Option<String>>(6)?,
                            r.get::<_, Option<String>>(7)?,
                            r.get::<_, String>(8)?,
                            r.get::<_, Option<String>>(9)?,
                        ),
                    ))
                },
            )
            .optional()?;
        let Some(((id, num, newsletter, slot, zone), (state, subject, reason, created, completed))) =
            row
        else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT subject, html, text, item_ids FROM renderings
             WHERE edition_num = ?1 ORDER BY idx",
        )?;
        let renderings = stmt
            .query_map([num], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?
            .map(|row| {
                let (subject, html, text, ids) = row?;
                Ok(Rendering {
                    subject,
                    html,
                    text,
                    item_ids: parse_ids(&ids)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(StoredEdition {
            id,
            num: u64::try_from(num).unwrap_or_default(),
            newsletter,
            slot_utc: parse_ts("slot_utc", &slot)?,
            zone,
            state: state.parse()?,
            subject,
            renderings,
            reason,
            created_at: parse_ts("created_at", &created)?,
            completed_at: completed
                .map(|c| parse_ts("completed_at", &c))
                .transpose()?,
        }))
    }

    /// The anonymous rendering edition `id` was frozen with, if it exists
    /// and has one.
    pub fn web_rendering(&self, id: &str) -> Result<Option<WebRendering>> {
        let row = self
            .conn
            .query_row(
                "SELECT web_subject, web_html, web_text FROM editions WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                },
            )
            .optional()?;
        Ok(match row {
            Some((Some(subject), Some(html), Some(text))) => Some(WebRendering {
                subject,
                html,
                text,
            }),
            _ => None,
        })
    }

    /// Rendering `index` of edition `id` alone, without the others (an
    /// edition may have hundreds).
    pub fn rendering(&self, id: &str, index: u32) -> Result<Option<Rendering>> {
        let row = self
            .conn
            .query_row(
                "SELECT r.subject, r.html, r.text, r.item_ids
                 FROM renderings r JOIN editions e ON e.num = r.edition_num
                 WHERE e.id = ?1 AND r.idx = ?2",
                params![id, index],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(subject, html, text, ids)| {
            Ok(Rendering {
                subject,
                html,
                text,
                item_ids: parse_ids(&ids)?,
            })
        })
        .transpose()
    }

    /// The id of the edition numbered `num` (what a VERP tag carries).
    pub fn edition_id_of(&self, num: u64) -> Result<Option<(String, String)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, newsletter FROM editions WHERE num = ?1",
                [i64::try_from(num).unwrap_or(-1)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Takes the edition's send lease for `ttl`. The holder that has it gets
    /// it renewed; another live holder makes this `Busy`; an expired lease is
    /// taken over.
    pub fn acquire_lease(
        &mut self,
        edition_id: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<LeaseOutcome> {
        self.acquire_lease_at(edition_id, holder, ttl, Utc::now(), &|_| false)
    }

    /// Like [`Ledger::acquire_lease`], and also takes over an unexpired lease
    /// whose holder `is_dead` says has gone (a sender on this machine that
    /// was killed), so a rerun right after a crash resumes at once instead of
    /// waiting for the lease to expire.
    pub fn acquire_lease_reclaiming(
        &mut self,
        edition_id: &str,
        holder: &str,
        ttl: Duration,
        is_dead: &dyn Fn(&str) -> bool,
    ) -> Result<LeaseOutcome> {
        self.acquire_lease_at(edition_id, holder, ttl, Utc::now(), is_dead)
    }

    pub(super) fn acquire_lease_at(
        &mut self,
        edition_id: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
        is_dead: &dyn Fn(&str) -> bool,
    ) -> Result<LeaseOutcome> {
        let expires = ts(now + ttl_delta(ttl)?);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let edition_known = tx
            .query_row("SELECT 1 FROM editions WHERE id = ?1", [edition_id], |_| {
                Ok(())
            })
            .optional()?
            .is_some();
        if !edition_known {
            return Err(LedgerError::UnknownEdition(edition_id.to_owned()));
        }
        let current = tx
            .query_row(
                "SELECT holder, expires_at FROM leases WHERE edition_id = ?1",
                [edition_id],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()?;
        let outcome = match current {
            None => LeaseOutcome::Acquired,
            Some((current_holder, _)) if current_holder == holder => LeaseOutcome::Acquired,
            Some((current_holder, expires_at)) => {
                let expires_at = parse_ts("expires_at", &expires_at)?;
                if expires_at > now && !is_dead(&current_holder) {
                    return Ok(LeaseOutcome::Busy {
                        holder: current_holder,
                        expires_at,
                    });
                }
                LeaseOutcome::TakenOver {
                    previous_holder: current_holder,
                }
            }
        };
        tx.execute(
            "INSERT INTO leases (edition_id, holder, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (edition_id) DO UPDATE SET holder = ?2, expires_at = ?3",
            params![edition_id, holder, expires],
        )?;
        tx.commit()?;
        Ok(outcome)
    }

    /// Extends our lease. `false` means it is no longer ours (another sender
    /// took it over after it expired): stop sending.
    pub fn renew_lease(&mut self, edition_id: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let expires = ts(Utc::now() + ttl_delta(ttl)?);
        let changed = self.conn.execute(
            "UPDATE leases SET expires_at = ?3 WHERE edition_id = ?1 AND holder = ?2",
            params![edition_id, holder, expires],
        )?;
        Ok(changed == 1)
    }

    /// Gives the lease up (only if we hold it).
    pub fn release_lease(&mut self, edition_id: &str, holder: &str) -> Result<()> {
        self.conn.execute(
            "DELETE FROM leases WHERE edition_id = ?1 AND holder = ?2",
            params![edition_id, holder],
        )?;
        Ok(())
    }

    /// Deliveries still to try, by address: pending, deferred, and in doubt
    /// for the first time (see [`DeliveryState::InDoubt`]).
    pub fn pending(&self, edition_id: &str) -> Result<Vec<Delivery>> {
        self.deliveries_where(edition_id, &format!("AND {OPEN}"), "", None)
    }

    /// At most `limit` deliveries still to try, after address `after`: a
    /// large edition is sent batch by batch, never held whole in memory.
    pub fn pending_batch(
        &self,
        edition_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.deliveries_where(
            edition_id,
            &format!("AND {OPEN} AND email > ?2"),
            &format!("LIMIT {limit}"),
            Some(after.unwrap_or("")),
        )
    }

    /// Stores what the plan of an edition counted (suppressed, invalid,
    /// empty…), as JSON, for `status` and resumed sends.
    pub fn set_stats(&mut self, edition_id: &str, stats: &serde_json::Value) -> Result<()> {
        self.conn.execute(
            "UPDATE editions SET stats = ?2 WHERE id = ?1",
            params![edition_id, serde_json::to_string(stats)?],
        )?;
        Ok(())
    }

    /// What [`Ledger::set_stats`] stored, if anything.
    pub fn stats(&self, edition_id: &str) -> Result<Option<serde_json::Value>> {
        let raw: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT stats FROM editions WHERE id = ?1",
                [edition_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match raw.flatten() {
            Some(s) => Some(serde_json::from_str(&s)?),
            None => None,
        })
    }

    /// Every delivery of an edition, by address.
    pub fn deliveries(&self, edition_id: &str) -> Result<Vec<Delivery>> {
        self.deliveries_where(edition_id, "", "", None)
    }

    fn deliveries_where(
        &self,
        edition_id: &str,
        filter: &str,
        limit: &str,
        after: Option<&str>,
    ) -> Result<Vec<Delivery>> {
        let Some(num) = self.num(edition_id)? else {
            return Ok(Vec::new());
        };
        let sql = format!(
            "SELECT email, name, rendering, state, attempts, reply, updated, fields, doubts
             FROM deliveries WHERE edition_num = ?1 {filter} ORDER BY email {limit}"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let map = |r: &rusqlite::Row<'_>| {
            Ok((
                (
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, u32>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, u32>(4)?,
                ),
                (
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, u32>(8)?,
                ),
            ))
        };
        let rows: Vec<_> = match after {
            Some(a) => stmt.query_map(params![num, a], map)?.collect(),
            None => stmt.query_map([num], map)?.collect(),
        };
        rows.into_iter()
            .map(|row| {
                let ((email, name, rendering, state, attempts), (reply, updated, fields, doubts)) =
                    row?;
                Ok(Delivery {
                    edition_id: edition_id.to_owned(),
                    email,
                    name,
                    rendering,
                    state: state.parse()?,
                    attempts,
                    last_reply: reply,
                    updated_at: from_millis(updated),
                    fields: match fields {
                        Some(f) => serde_json::from_str(&f)?,
                        None => BTreeMap::new(),
                    },
                    doubts,
                })
            })
            .collect()
    }

    /// Records a group of outcomes in one transaction (one fsync). Only a
    /// delivery a run may still try changes: one `sent`, `failed` or in
    /// doubt for good never does, so a late or duplicate outcome cannot turn
    /// a sent message back into a pending one. An `InDoubt` outcome counts
    /// one more doubt. A relay's acceptance is not kept (it is the common
    /// case, and the ledger's size grows with the audience); every other
    /// reply is. Returns the number of deliveries updated.
    pub fn record_batch(&mut self, outcomes: &[DeliveryUpdate]) -> Result<usize> {
        let now = millis(Utc::now());
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut changed = 0;
        {
            let mut nums: HashMap<&str, Option<i64>> = HashMap::new();
            let mut update = tx.prepare_cached(&format!(
                "UPDATE deliveries
                 SET state = ?3, attempts = attempts + ?4,
                     reply = CASE WHEN ?3 = 'sent' THEN NULL ELSE COALESCE(?5, reply) END,
                     updated = ?6,
                     doubts = doubts + (?3 = 'in_doubt')
                 WHERE edition_num = ?1 AND email = ?2 AND {OPEN}"
            ))?;
            for o in outcomes {
                let num = match nums.get(o.edition_id.as_str()) {
                    Some(n) => *n,
                    None => {
                        let n = tx
                            .prepare_cached("SELECT num FROM editions WHERE id = ?1")?
                            .query_row([&o.edition_id], |r| r.get::<_, i64>(0))
                            .optional()?;
                        nums.insert(&o.edition_id, n);
                        n
                    }
                };
                let Some(num) = num else { continue };
                changed += update.execute(params![
                    num,
                    o.email,
                    o.state.as_str(),
                    o.attempts,
                    o.reply,
                    now
                ])?;
            }
        }
        tx.commit()?;
        Ok(changed)
    }

    /// frozen -> sending, when a send starts. Already sending: no change.
    pub fn mark_sending(&mut self, edition_id: &str) -> Result<()> {
        self.transition(
            edition_id,
            EditionState::Sending,
            &[EditionState::Frozen],
            None,
        )
    }

    /// frozen/sending -> complete. Already complete: no change.
    pub fn mark_complete(&mut self, edition_id: &str) -> Result<()> {
        self.transition(
            edition_id,
            EditionState::Complete,
            &[EditionState::Frozen, EditionState::Sending],
            None,
        )
    }

    /// Records that a slot passed without being sent. Creates the edition row
    /// when the slot was never frozen; a frozen but unsent edition becomes
    /// missed. Recording it twice keeps the first reason.
    pub fn record_missed(&mut self, edition: &EditionStub, reason: &str) -> Result<()> {
        self.record_unsent(edition, EditionState::Missed, reason)
    }

    /// Records that a slot was deliberately not sent (no items, cancelled).
    pub fn record_skipped(&mut self, edition: &EditionStub, reason: &str) -> Result<()> {
        self.record_unsent(edition, EditionState::Skipped, reason)
    }

    fn record_unsent(
        &mut self,
        edition: &EditionStub,
        target: EditionState,
        reason: &str,
    ) -> Result<()> {
        let now = ts(Utc::now());
        let inserted = self.conn.execute(
            "INSERT INTO editions (id, num, newsletter, slot_utc, zone, state, reason, created_at, completed_at)
             VALUES (?1, (SELECT COALESCE(MAX(num), 0) + 1 FROM editions), ?2, ?3, ?4, ?5, ?6, ?7, ?7)
             ON CONFLICT (id) DO NOTHING",
            params![
                edition.id,
                edition.newsletter,
                ts(edition.slot_utc),
                edition.zone,
                target.as_str(),
                reason,
                now
            ],
        )?;
        if inserted == 1 {
            return Ok(());
        }
        self.transition(&edition.id, target, &[EditionState::Frozen], Some(reason))
    }

    fn transition(
        &mut self,
        edition_id: &str,
        target: EditionState,
        from: &[EditionState],
        reason: Option<&str>,
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let state: Option<String> = tx
            .query_row(
                "SELECT state FROM editions WHERE id = ?1",
                [edition_id],
                |r| r.get(0),
            )
            .optional()?;
        let state: EditionState = state
            .ok_or_else(|| LedgerError::UnknownEdition(edition_id.to_owned()))?
            .parse()?;
        if state == target {
            return Ok(());
        }
        if !from.contains(&state) {
            return Err(LedgerError::InvalidTransition {
                id: edition_id.to_owned(),
                state,
                target,
            });
        }
        let completed = match target {
            EditionState::Complete | EditionState::Missed | EditionState::Skipped => {
                Some(ts(Utc::now()))
            }
            EditionState::Frozen | EditionState::Sending => None,
        };
        tx.execute(
            "UPDATE editions SET state = ?2, completed_at = COALESCE(?3, completed_at),
                                 reason = COALESCE(?4, reason)
             WHERE id = ?1",
            params![edition_id, target.as_str(), completed, reason],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Delivery counts by state.
    pub fn counts(&self, edition_id: &str) -> Result<Counts> {
        let mut counts = Counts::default();
        let Some(num) = self.num(edition_id)? else {
            return Ok(counts);
        };
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT state, COUNT(*), COALESCE(SUM({OPEN}), 0) FROM deliveries
             WHERE edition_num = ?1 GROUP BY state"
        ))?;
        let rows = stmt.query_map([num], |r| {
            Ok((r.get::<_, String>(0)?, count(r, 1)?, count(r, 2)?))
        })?;
        for row in rows {
            let (state, n, open) = row?;
            match state.parse()? {
                DeliveryState::Pending => counts.pending = n,
                DeliveryState::Sent => counts.sent = n,
                DeliveryState::Deferred => counts.deferred = n,
                DeliveryState::Failed => counts.failed = n,
                DeliveryState::InDoubt => {
                    counts.in_doubt = n;
                    counts.resend = open;
                }
                DeliveryState::Suppressed => counts.suppressed = n,
            }
        }
        Ok(counts)
    }

    /// Editions, newest slot first, optionally of one newsletter.
    pub fn editions(&self, newsletter: Option<&str>) -> Result<Vec<EditionSummary>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.id, e.newsletter, e.slot_utc, e.zone, e.state, e.subject, e.reason,
                    e.created_at, e.completed_at,
                    COALESCE(SUM(d.state = 'pending'), 0),
                    COALESCE(SUM(d.state = 'sent'), 0),
                    COALESCE(SUM(d.state = 'deferred'), 0),
                    COALESCE(SUM(d.state = 'failed'), 0),
                    COALESCE(SUM(d.state = 'in_doubt'), 0),
                    COALESCE(SUM(d.state = 'in_doubt' AND d.doubts < 2), 0),
                    COALESCE(SUM(d.state = 'suppressed'), 0)
             FROM editions e LEFT JOIN deliveries d ON d.edition_num = e.num
             WHERE ?1 IS NULL OR e.newsletter = ?1
             GROUP BY e.id
             ORDER BY e.slot_utc DESC, e.id",
        )?;
        let rows = stmt.query_map([newsletter], |r| {
            Ok((
                (
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, Option<String>>(8)?,
                ),
                Counts {
                    pending: count(r, 9)?,
                    sent: count(r, 10)?,
                    deferred: count(r, 11)?,
                    failed: count(r, 12)?,
                    in_doubt: count(r, 13)?,
                    resend: count(r, 14)?,
                    suppressed: count(r, 15)?,
                },
            ))
        })?;
        rows.map(|row| {
            let ((id, newsletter, slot, zone, state, subject, reason, created, completed), counts) =
                row?;
            Ok(EditionSummary {
                id,
                newsletter,
                slot_utc: parse_ts("slot_utc", &slot)?,
                zone,
                state: state.parse()?,
                subject,
                reason,
                created_at: parse_ts("created_at", &created)?,
                completed_at: completed
                    .map(|c| parse_ts("completed_at", &c))
                    .transpose()?,
                counts,
            })
        })
        .collect()
    }

    /// Failed deliveries with the server's reply, by address.
    pub fn failed(&self, edition_id: &str) -> Result<Vec<(String, String)>> {
        self.replies(edition_id, DeliveryState::Failed)
    }

    /// Deliveries in `state` with the last reply (the server's, or the local
    /// error), by address.
    pub fn replies(&self, edition_id: &str, state: DeliveryState) -> Result<Vec<(String, String)>> {
        let Some(num) = self.num(edition_id)? else {
            return Ok(Vec::new());
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT email, COALESCE(reply, '') FROM deliveries
             WHERE edition_num = ?1 AND state = ?2 ORDER BY email",
        )?;
        let rows = stmt.query_map(params![num, state.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The delivery of edition `num` to the address whose tag hash is
    /// `hash` (see `inbound::tag`): the edition's id and newsletter and the
    /// address. A scan of that edition's deliveries, so nothing per
    /// recipient is stored for it.
    pub fn delivery_by_hash(
        &self,
        num: u64,
        hash: impl Fn(&str) -> u64,
        want: u64,
    ) -> Result<Option<(String, String, String)>> {
        let Some((id, newsletter)) = self.edition_id_of(num)? else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare_cached("SELECT email FROM deliveries WHERE edition_num = ?1")?;
        let mut rows = stmt.query([i64::try_from(num).unwrap_or(-1)])?;
        while let Some(r) = rows.next()? {
            let email: String = r.get(0)?;
            if hash(&email) == want {
                return Ok(Some((id, newsletter, email)));
            }
        }
        Ok(None)
    }

    /// Whether the ledger has a delivery of `edition_id` to `email`.
    pub fn has_delivery(&self, edition_id: &str, email: &str) -> Result<bool> {
        let Some(num) = self.num(edition_id)? else {
            return Ok(false);
        };
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM deliveries WHERE edition_num = ?1 AND email = ?2",
                params![num, email.to_ascii_lowercase()],
                |_| Ok(()),
            )
            .optional()?
            .is_some()
            || self
                .conn
                .query_row(
                    "SELECT 1 FROM deliveries WHERE edition_num = ?1 AND lower(email) = ?2",
                    params![num, email.to_ascii_lowercase()],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
    }

    /// The editions that went to `email` (sent), newest slot first, at most
    /// `limit`: what the soft-bounce rule looks back over.
    pub fn editions_sent_to(&self, email: &str, limit: usize) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.id FROM deliveries d JOIN editions e ON e.num = d.edition_num
             WHERE lower(d.email) = ?1 AND d.state = 'sent'
             ORDER BY e.slot_utc DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(
            params![
                email.to_ascii_lowercase(),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            |r| r.get(0),
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // The return path: suppressions, what came back, preferences.

    /// Adds a suppression, durably (committed before this returns). An
    /// address already suppressed for that scope keeps its first entry;
    /// returns whether this one was new.
    pub fn suppress(&mut self, s: &Suppression) -> Result<bool> {
        let n = self.conn.execute(
            "INSERT INTO suppressions (address, scope, reason, created_at, evidence)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (address, scope) DO NOTHING",
            params![
                s.address.to_ascii_lowercase(),
                s.scope.as_str(),
                s.reason.as_str(),
                ts(s.created_at),
                serde_json::to_string(&s.evidence)?
            ],
        )?;
        Ok(n == 1)
    }

    /// [`Ledger::suppress`] and, when the entry is new, the event that says
    /// why, in one transaction: one commit, and never a suppression whose
    /// event a crash lost. Returns whether the entry was new.
    pub fn suppress_with_event(&mut self, s: &Suppression, e: &ReturnEvent) -> Result<bool> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let new = tx.execute(
            "INSERT INTO suppressions (address, scope, reason, created_at, evidence)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (address, scope) DO NOTHING",
            params![
                s.address.to_ascii_lowercase(),
                s.scope.as_str(),
                s.reason.as_str(),
                ts(s.created_at),
                serde_json::to_string(&s.evidence)?
            ],
        )? == 1;
        if new {
            tx.execute(
                "INSERT INTO return_events (address, newsletter, edition_id, kind, at, evidence)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT DO NOTHING",
                params![
                    e.address.to_ascii_lowercase(),
                    e.newsletter,
                    e.edition_id,
                    e.kind.as_str(),
                    ts(e.at),
                    serde_json::to_string(&e.evidence)?
                ],
            )?;
        }
        tx.commit()?;
        Ok(new)
    }

    /// Removes the suppressions of `address` (for `scope`, or every scope).
    /// Only entries the person asked for themselves are lifted unless
    /// `force`; the others are returned in `kept`.
    pub fn unsuppress(
        &mut self,
        address: &str,
        scope: Option<&SuppressionScope>,
        force: bool,
    ) -> Result<(Vec<Suppression>, Vec<Suppression>)> {
        let address = address.to_ascii_lowercase();
        let entries: Vec<Suppression> = self
            .suppressions(None, None)?
            .into_iter()
            .filter(|s| s.address == address && scope.is_none_or(|sc| &s.scope == sc))
            .collect();
        let (lift, kept): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .partition(|s| force || s.reason.is_a_request() || s.reason == SuppressionReason::File);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for s in &lift {
            tx.execute(
                "DELETE FROM suppressions WHERE address = ?1 AND scope = ?2",
                params![s.address, s.scope.as_str()],
            )?;
        }
        tx.commit()?;
        Ok((lift, kept))
    }

    /// Suppressions, oldest first: those added since `since`, and those that
    /// cover `newsletter` (its own and the all-newsletters ones).
    pub fn suppressions(
        &self,
        since: Option<DateTime<Utc>>,
        newsletter: Option<&str>,
    ) -> Result<Vec<Suppression>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT address, scope, reason, created_at, evidence FROM suppressions
             WHERE (?1 IS NULL OR created_at >= ?1)
               AND (?2 IS NULL OR scope = '*' OR scope = ?2)
             ORDER BY created_at, address, scope",
        )?;
        read_suppressions(&mut stmt, params![since.map(ts), newsletter])
    }

    /// The addresses that must not get newsletter `newsletter`.
    pub fn suppressed_for(&self, newsletter: &str) -> Result<HashSet<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT address FROM suppressions WHERE scope = '*' OR scope = ?1")?;
        let rows = stmt.query_map([newsletter], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether `address` must not get `newsletter`, now.
    pub fn is_suppressed(&self, address: &str, newsletter: &str) -> Result<bool> {
        // Cached: a send asks once per recipient, just before each attempt.
        Ok(self
            .conn
            .prepare_cached(
                "SELECT 1 FROM suppressions WHERE address = ?1 AND (scope = '*' OR scope = ?2)",
            )?
            .query_row(
                params![address.to_ascii_lowercase(), newsletter],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Every suppression of `address`, whatever its scope: what the reader's
    /// own pages show (unsubscribed from this newsletter, from all, bounced).
    pub fn suppressions_of(&self, address: &str) -> Result<Vec<Suppression>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT address, scope, reason, created_at, evidence FROM suppressions
             WHERE address = ?1 ORDER BY scope",
        )?;
        read_suppressions(&mut stmt, [address.to_ascii_lowercase()])
    }

    /// Whether the database answers a query (`serve`'s health check).
    pub fn ping(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))?;
        Ok(())
    }

    /// Records what came back, durably.
    pub fn record_event(&mut self, e: &ReturnEvent) -> Result<()> {
        self.conn.execute(
            "INSERT INTO return_events (address, newsletter, edition_id, kind, at, evidence)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT DO NOTHING",
            params![
                e.address.to_ascii_lowercase(),
                e.newsletter,
                e.edition_id,
                e.kind.as_str(),
                ts(e.at),
                serde_json::to_string(&e.evidence)?
            ],
        )?;
        Ok(())
    }

    /// The events about `address`, oldest first.
    pub fn events_about(&self, address: &str) -> Result<Vec<ReturnEvent>> {
        self.events_where("address = ?1", &address.to_ascii_lowercase())
    }

    fn events_where(&self, filter: &str, value: &str) -> Result<Vec<ReturnEvent>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT address, newsletter, edition_id, kind, at, evidence FROM return_events
             WHERE {filter} ORDER BY at, id"
        ))?;
        let rows = stmt.query_map([value], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        rows.map(|row| {
            let (address, newsletter, edition_id, kind, at, evidence) = row?;
            Ok(ReturnEvent {
                address,
                newsletter,
                edition_id,
                kind: kind.parse()?,
                at: parse_ts("at", &at)?,
                evidence: parse_json("evidence", &evidence)?,
            })
        })
        .collect()
    }

    /// What came back about one edition (`Some(id)`) or one newsletter.
    pub fn return_counts(
        &self,
        edition_id: Option<&str>,
        newsletter: Option<&str>,
    ) -> Result<ReturnCounts> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT kind, COUNT(DISTINCT address) FROM return_events
             WHERE (?1 IS NULL OR edition_id = ?1) AND (?2 IS NULL OR newsletter = ?2)
             GROUP BY kind",
        )?;
        let mut c = ReturnCounts::default();
        let rows = stmt.query_map(params![edition_id, newsletter], |r| {
            Ok((r.get::<_, String>(0)?, count(r, 1)?))
        })?;
        for row in rows {
            let (kind, n) = row?;
            match kind.parse()? {
                ReturnKind::Unsubscribe => c.unsubscribes = n,
                ReturnKind::HardBounce => c.hard_bounces = n,
                ReturnKind::SoftBounce => c.soft_bounces = n,
                ReturnKind::Complaint => c.complaints = n,
                ReturnKind::PolicyBlock => c.policy_blocks = n,
                ReturnKind::Resubscribe => {}
            }
        }
        Ok(c)
    }

    /// Stores a subscriber's choice of sections for a newsletter.
    pub fn set_preferences(
        &mut self,
        address: &str,
        newsletter: &str,
        p: &Preferences,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO preferences (address, newsletter, regions, topics, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (address, newsletter)
             DO UPDATE SET regions = ?3, topics = ?4, updated_at = ?5",
            params![
                address.to_ascii_lowercase(),
                newsletter,
                serde_json::to_string(&p.regions)?,
                serde_json::to_string(&p.topics)?,
                ts(Utc::now())
            ],
        )?;
        Ok(())
    }

    /// The sections `address` chose for `newsletter`, if they chose.
    pub fn preferences_of(&self, address: &str, newsletter: &str) -> Result<Option<Preferences>> {
        let row = self
            .conn
            .query_row(
                "SELECT regions, topics FROM preferences WHERE address = ?1 AND newsletter = ?2",
                params![address.to_ascii_lowercase(), newsletter],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()?;
        row.map(|(regions, topics)| {
            Ok(Preferences {
                regions: parse_ids(&regions)?,
                topics: parse_ids(&topics)?,
            })
        })
        .transpose()
    }

    /// Stored choices, of one newsletter or all, by address.
    pub fn preferences(&self, newsletter: Option<&str>) -> Result<Vec<PreferenceRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT address, newsletter, regions, topics, updated_at FROM preferences
             WHERE ?1 IS NULL OR newsletter = ?1 ORDER BY newsletter, address",
        )?;
        let rows = stmt.query_map([newsletter], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        rows.map(|row| {
            let (address, newsletter, regions, topics, updated) = row?;
            Ok(PreferenceRecord {
                address,
                newsletter,
                preferences: Preferences {
                    regions: parse_ids(&regions)?,
                    topics: parse_ids(&topics)?,
                },
                updated_at: parse_ts("updated_at", &updated)?,
            })
        })
        .collect()
    }

    /// Stores confirmed sign-ups in one transaction: a new (address,
    /// newsletter) is added; one already there keeps its row (its first
    /// spelling, and its name unless this one has one) and takes this
    /// consent when it is newer. Then the suppressions the reader asked for
    /// themselves (one-click, link, mailto) for these newsletters are
    /// lifted, with a `resubscribe` event, when they are older than
    /// `confirming.issued`: a sign-up is a later wish than an unsubscribe
    /// made before its link, never than one made after (a link used again
    /// does not undo it, and stores nothing for that newsletter).
    ///
    /// An unsubscribe from every newsletter is narrowed the same way: it
    /// becomes one per newsletter of `confirming.newsletters` (the
    /// newsroom's) that the reader did not sign up for now, so that
    /// confirming one letter does not resubscribe them to the rest.
    pub fn add_subscribers(
        &mut self,
        rows: &[StoredSubscriber],
        confirming: &Confirming,
    ) -> Result<SignedUp> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut out = SignedUp::default();
        let before = ts(confirming.issued);
        for r in rows {
            let address = r.email.to_ascii_lowercase();
            // Unsubscribed since the link was made: that stands, and the
            // link confirms nothing for this newsletter.
            let since: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM suppressions WHERE address = ?1
                 AND (scope = ?2 OR scope = '*') AND reason IN ('one-click', 'link', 'mailto')
                 AND created_at >= ?3)",
                params![address, r.newsletter, before],
                |row| row.get(0),
            )?;
            if since {
                out.stale += 1;
                continue;
            }
            if insert_subscriber(&tx, r)? {
                out.added += 1;
            } else {
                tx.execute(
                    "UPDATE subscribers SET consent_at = ?3, source = ?4, evidence = ?5,
                        name = COALESCE(?6, name)
                     WHERE address = ?1 AND newsletter = ?2 AND consent_at < ?3",
                    params![
                        address,
                        r.newsletter,
                        ts(r.consent_at),
                        r.source,
                        r.evidence.to_string(),
                        r.name
                    ],
                )?;
                out.renewed += 1;
            }
            let chosen: Vec<&str> = (rows.iter())
                .filter(|o| o.email.eq_ignore_ascii_case(&r.email))
                .map(|o| o.newsletter.as_str())
                .collect();
            let all: Option<(String, String, String)> = tx
                .query_row(
                    "SELECT reason, created_at, evidence FROM suppressions
                     WHERE address = ?1 AND scope = '*' AND reason IN ('one-click', 'link', 'mailto')
                     AND created_at < ?2",
                    params![address, before],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?;
            let narrowed = all.is_some();
            if let Some((reason, created_at, evidence)) = all {
                tx.execute(
                    "DELETE FROM suppressions WHERE address = ?1 AND scope = '*'",
                    [&address],
                )?;
                for other in
                    (confirming.newsletters.iter()).filter(|n| !chosen.contains(&n.as_str()))
                {
                    tx.execute(
                        "INSERT OR IGNORE INTO suppressions (address, scope, reason, created_at, evidence)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![address, other, reason, created_at, evidence],
                    )?;
                }
            }
            let lifted = tx.execute(
                "DELETE FROM suppressions WHERE address = ?1 AND scope = ?2
                 AND reason IN ('one-click', 'link', 'mailto') AND created_at < ?3",
                params![address, r.newsletter, before],
            )?;
            if lifted > 0 || narrowed {
                tx.execute(
                    "INSERT OR IGNORE INTO return_events (address, newsletter, edition_id, kind, at, evidence)
                     VALUES (?1, ?2, NULL, 'resubscribe', ?3, ?4)",
                    params![
                        address,
                        r.newsletter,
                        ts(r.consent_at),
                        serde_json::json!({ "via": r.source, "scope": r.newsletter }).to_string()
                    ],
                )?;
                out.lifted += 1;
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Stores imported subscribers in one transaction, with the sections
    /// their rows ask for. An import is the newsroom's claim, not the
    /// reader's act: a row already there (signed up, or imported before)
    /// is left as it is, sections a reader chose are kept, and no
    /// suppression is lifted.
    pub fn import_subscribers(
        &mut self,
        rows: &[(StoredSubscriber, Option<Preferences>)],
    ) -> Result<SignedUp> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut out = SignedUp::default();
        for (r, p) in rows {
            if !insert_subscriber(&tx, r)? {
                out.renewed += 1;
                continue;
            }
            out.added += 1;
            if let Some(p) = p {
                tx.execute(
                    "INSERT INTO preferences (address, newsletter, regions, topics, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (address, newsletter) DO NOTHING",
                    params![
                        r.email.to_ascii_lowercase(),
                        r.newsletter,
                        serde_json::to_string(&p.regions)?,
                        serde_json::to_string(&p.topics)?,
                        ts(r.consent_at)
                    ],
                )?;
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Records that a sign-up's confirmation went to `address`.
    pub fn record_confirmation(&mut self, address: &str, at: DateTime<Utc>) -> Result<()> {
        let address = address.to_ascii_lowercase();
        self.conn.execute(
            "INSERT INTO confirmations (hash, address, sent_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (hash, address) DO UPDATE SET sent_at = ?3",
            params![
                crate::mail::message::address_hash(&address),
                address,
                ts(at)
            ],
        )?;
        Ok(())
    }

    /// The address a confirmation whose Message-ID carries `hash` went to.
    pub fn confirmation_to(&self, hash: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT address FROM confirmations WHERE hash = ?1 ORDER BY sent_at DESC LIMIT 1",
                [hash.to_ascii_lowercase()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The ledger's subscribers, of one newsletter or all, by newsletter
    /// then address.
    pub fn subscribers(&self, newsletter: Option<&str>) -> Result<Vec<StoredSubscriber>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT email, newsletter, name, consent_at, source, evidence FROM subscribers
             WHERE ?1 IS NULL OR newsletter = ?1 ORDER BY newsletter, address",
        )?;
        let rows = stmt.query_map([newsletter], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        rows.map(|row| {
            let (email, newsletter, name, consent, source, evidence) = row?;
            Ok(StoredSubscriber {
                email,
                newsletter,
                name,
                consent_at: parse_ts("consent_at", &consent)?,
                source,
                evidence: parse_json("evidence", &evidence)?,
            })
        })
        .collect()
    }
}

/// Adds `r` unless its (address, newsletter) is there; whether it was new.
fn insert_subscriber(tx: &rusqlite::Transaction<'_>, r: &StoredSubscriber) -> Result<bool> {
    let n = tx.execute(
        "INSERT INTO subscribers (address, newsletter, email, name, consent_at, source, evidence)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (address, newsletter) DO NOTHING",
        params![
            r.email.to_ascii_lowercase(),
            r.newsletter,
            r.email,
            r.name,
            ts(r.consent_at),
            r.source,
            r.evidence.to_string()
        ],
    )?;
    Ok(n == 1)
}

/// What a confirmation may lift: see [`Ledger::add_subscribers`].
#[derive(Debug, Clone)]
pub struct Confirming {
    /// Every newsletter the newsroom has.
    pub newsletters: Vec<String>,
    /// When the confirmation link was made.
    pub issued: DateTime<Utc>,
}

/// What [`Ledger::add_subscribers`] and [`Ledger::import_subscribers`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignedUp {
    /// Rows new to the ledger.
    pub added: usize,
    /// Rows that were there already (a confirmation renews their consent
    /// when it is newer; an import leaves them).
    pub renewed: usize,
    /// The reader's own unsubscribes lifted.
    pub lifted: usize,
    /// Rows not stored: the reader unsubscribed after the link was made.
    pub stale: usize,
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

/// The rows of a query over `suppressions` that selects address, scope,
/// reason, created_at and evidence, in that order.
fn read_suppressions(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<Suppression>> {
    let rows = stmt.query_map(params, |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    rows.map(|row| {
        let (address, scope, reason, created, evidence) = row?;
        Ok(Suppression {
            address,
            scope: SuppressionScope::parse(&scope),
            reason: reason.parse()?,
            created_at: parse_ts("created_at", &created)?,
            evidence: parse_json("evidence", &evidence)?,
        })
    })
    .collect()
}
