//! The send ledger: a SQLite file recording every frozen edition, every
//! delivery and its outcome, and the lease that keeps two senders off one
//! edition. It is what makes `send` resumable after a crash and what
//! `status` reports from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use thiserror::Error;

/// Variant key of an edition's main rendering (all regions, all topics).
pub const MAIN_VARIANT: &str = "main";

/// Each entry upgrades the schema by one `user_version`.
const MIGRATIONS: &[&str] = &[
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
];

/// Messages to one reader that may be left in doubt before the ledger stops
/// resending: the first one, and the one resend of it on the next run.
pub const MAX_DOUBTS: u32 = 2;

/// SQL condition for the deliveries a run still tries: pending, deferred,
/// and in doubt fewer than [`MAX_DOUBTS`] times.
const OPEN: &str = "(state IN ('pending', 'deferred') OR (state = 'in_doubt' AND doubts < 2))";

#[derive(Debug, Error)]
pub enum LedgerError {
    #[error("cannot create the ledger directory {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ledger database error")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "the ledger has schema version {found}, newer than this briefing understands ({supported}); upgrade briefing"
    )]
    NewerSchema { found: i64, supported: i64 },
    #[error("the ledger could not switch to WAL journaling (got {0:?})")]
    NoWal(String),
    #[error("unknown edition {0}")]
    UnknownEdition(String),
    #[error(
        "recipient {email} refers to variant {variant:?}, which edition {edition} does not have"
    )]
    UnknownVariant {
        edition: String,
        email: String,
        variant: String,
    },
    #[error("edition {id} is {state}; it cannot become {target}")]
    InvalidTransition {
        id: String,
        state: EditionState,
        target: EditionState,
    },
    #[error("lease time-to-live {0:?} is out of range")]
    InvalidTtl(Duration),
    #[error("unexpected value {value:?} in ledger column {column}")]
    Corrupt { column: &'static str, value: String },
    #[error("cannot encode item ids")]
    Json(#[from] serde_json::Error),
}

pub type Result<T, E = LedgerError> = std::result::Result<T, E>;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = LedgerError;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(LedgerError::Corrupt {
                        column: stringify!($name),
                        value: other.to_owned(),
                    }),
                }
            }
        }
    };
}

string_enum! {
    /// Life of an edition: frozen (content and audience fixed) -> sending ->
    /// complete; or missed (slot passed unsent) / skipped (deliberately not sent).
    EditionState {
        Frozen => "frozen",
        Sending => "sending",
        Complete => "complete",
        Missed => "missed",
        Skipped => "skipped",
    }
}

string_enum! {
    /// Where one delivery stands.
    ///
    /// - `Pending`: not tried yet (frozen, or left by a run that stopped).
    /// - `Sent`: the relay accepted the message (2xx to the final dot).
    /// - `Deferred`: a transient failure (4xx, a connection that broke
    ///   before the message was complete) after every retry of the run;
    ///   the next run tries again.
    /// - `Failed`: refused for good (a 5xx reply, a message the relay cannot
    ///   take); never retried.
    /// - `InDoubt`: the whole message and its final dot were written and the
    ///   reply never came (the connection dropped or `data_timeout` ran
    ///   out). The relay may have accepted it, so it is never retried within
    ///   the run. The next run resends it **once**: a reader whose resend is
    ///   in doubt again ([`MAX_DOUBTS`] messages in doubt) is not sent a
    ///   third copy. It stays `in_doubt` for good and counts as done, like
    ///   `failed`, so the edition can complete: a possible duplicate is
    ///   bounded at two copies, and a reader who got neither is visible in
    ///   `status` rather than mailed again and again.
    DeliveryState {
        Pending => "pending",
        Sent => "sent",
        Deferred => "deferred",
        Failed => "failed",
        InDoubt => "in_doubt",
    }
}

/// One rendering of an edition, for one reader preference key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub key: String,
    pub subject: String,
    pub html: String,
    pub text: String,
    pub item_ids: Vec<String>,
}

/// An edition as frozen: from here on its content and audience do not change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrozenEdition {
    /// e.g. `am-2026-11-30T0600`.
    pub id: String,
    pub newsletter: String,
    pub slot_utc: DateTime<Utc>,
    /// IANA zone the slot was scheduled in, e.g. `Europe/Lisbon`.
    pub zone: String,
    /// The main rendering ([`MAIN_VARIANT`]).
    pub subject: String,
    pub html: String,
    pub text: String,
    pub item_ids: Vec<String>,
    /// Renderings for narrower preference keys, if any.
    pub variants: Vec<Variant>,
}

/// Who gets a frozen edition, and which rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub email: String,
    pub name: Option<String>,
    /// [`MAIN_VARIANT`] or the key of one of the edition's variants.
    pub variant: String,
    /// The reader's template fields (name, CSV columns), frozen with the
    /// edition so a resumed send writes the same message.
    pub fields: BTreeMap<String, String>,
}

/// Identifies a slot that gets no frozen content (missed or skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditionStub {
    pub id: String,
    pub newsletter: String,
    pub slot_utc: DateTime<Utc>,
    pub zone: String,
}

/// An edition as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEdition {
    pub id: String,
    pub newsletter: String,
    pub slot_utc: DateTime<Utc>,
    pub zone: String,
    pub state: EditionState,
    /// `None` for missed/skipped slots that were never frozen.
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub item_ids: Vec<String>,
    pub variants: Vec<Variant>,
    /// Why it was missed or skipped.
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl StoredEdition {
    /// Subject, HTML and text for a variant key (the main rendering for
    /// [`MAIN_VARIANT`]).
    pub fn content(&self, variant: &str) -> Option<(&str, &str, &str)> {
        if variant == MAIN_VARIANT {
            return Some((
                self.subject.as_deref()?,
                self.html.as_deref()?,
                self.text.as_deref()?,
            ));
        }
        self.variants
            .iter()
            .find(|v| v.key == variant)
            .map(|v| (v.subject.as_str(), v.html.as_str(), v.text.as_str()))
    }
}

/// One reader's delivery of one edition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub edition_id: String,
    pub email: String,
    pub name: Option<String>,
    pub variant: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_reply: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub fields: BTreeMap<String, String>,
    /// Messages to this reader left in doubt so far (see
    /// [`DeliveryState::InDoubt`]).
    pub doubts: u32,
}

/// The result of delivery attempts, as reported by the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryUpdate {
    pub edition_id: String,
    pub email: String,
    /// `Sent`, `Deferred`, `Failed` or `InDoubt` (`Pending` is accepted but
    /// pointless).
    pub state: DeliveryState,
    /// Attempts made since the last recorded outcome; added to the total.
    pub attempts: u32,
    /// The server's reply (or the local error), kept for `status`.
    pub reply: Option<String>,
}

/// Deliveries of one edition by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub pending: u64,
    pub sent: u64,
    pub deferred: u64,
    pub failed: u64,
    /// Every delivery in state `in_doubt`, resent or not.
    pub in_doubt: u64,
    /// Of `in_doubt`, those the next run resends (once): in doubt for the
    /// first time. The rest are final.
    pub resend: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.pending + self.sent + self.deferred + self.failed + self.in_doubt
    }

    /// What a later run still sends: pending, deferred, and the in-doubt
    /// deliveries due their one resend. Zero means the edition is complete.
    pub fn unsent(&self) -> u64 {
        self.pending + self.deferred + self.resend
    }
}

/// A line of `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditionSummary {
    pub id: String,
    pub newsletter: String,
    pub slot_utc: DateTime<Utc>,
    pub zone: String,
    pub state: EditionState,
    pub subject: Option<String>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The lease is ours (new, or renewed because we already held it).
    Acquired,
    /// Another holder's lease had expired; it is ours now. That sender
    /// probably crashed: at most one message per connection is in doubt.
    TakenOver { previous_holder: String },
    /// Someone else is sending this edition.
    Busy {
        holder: String,
        expires_at: DateTime<Utc>,
    },
}

/// An open ledger. Writes take `&mut self`; open one per process and hand it
/// to the one ledger writer during a send.
#[derive(Debug)]
pub struct Ledger {
    conn: Connection,
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

/// SQLite integers are i64; counts are never negative.
fn count(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<u64> {
    Ok(u64::try_from(row.get::<_, i64>(index)?).unwrap_or(0))
}

fn ttl_delta(ttl: Duration) -> Result<TimeDelta> {
    TimeDelta::from_std(ttl).map_err(|_| LedgerError::InvalidTtl(ttl))
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

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores the edition and one pending delivery per recipient, all in one
    /// transaction. Freezing an id that already exists changes nothing and
    /// returns `false`: the first frozen copy is what gets sent, even if the
    /// content was edited since.
    pub fn freeze_edition(
        &mut self,
        edition: &FrozenEdition,
        recipients: &[Recipient],
    ) -> Result<bool> {
        let now = ts(Utc::now());
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
            let known =
                r.variant == MAIN_VARIANT || edition.variants.iter().any(|v| v.key == r.variant);
            if !known {
                return Err(LedgerError::UnknownVariant {
                    edition: edition.id.clone(),
                    email: r.email.clone(),
                    variant: r.variant.clone(),
                });
            }
        }
        tx.execute(
            "INSERT INTO editions
                 (id, newsletter, slot_utc, zone, state, subject, html, text, item_ids, created_at)
             VALUES (?1, ?2, ?3, ?4, 'frozen', ?5, ?6, ?7, ?8, ?9)",
            params![
                edition.id,
                edition.newsletter,
                ts(edition.slot_utc),
                edition.zone,
                edition.subject,
                edition.html,
                edition.text,
                serde_json::to_string(&edition.item_ids)?,
                now,
            ],
        )?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO variants (edition_id, key, subject, html, text, item_ids)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for v in &edition.variants {
                insert.execute(params![
                    edition.id,
                    v.key,
                    v.subject,
                    v.html,
                    v.text,
                    serde_json::to_string(&v.item_ids)?
                ])?;
            }
            // The audience is deduplicated already; if not, the first row wins.
            let mut insert = tx.prepare_cached(
                "INSERT INTO deliveries (edition_id, email, name, variant, fields, state, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6)
                 ON CONFLICT (edition_id, email) DO NOTHING",
            )?;
            for r in recipients {
                let fields = serde_json::to_string(&r.fields)?;
                insert.execute(params![edition.id, r.email, r.name, r.variant, fields, now])?;
            }
        }
        tx.commit()?;
        Ok(true)
    }

    /// The stored edition with its variants, if it exists.
    pub fn edition(&self, id: &str) -> Result<Option<StoredEdition>> {
        let row = self
            .conn
            .query_row(
                "SELECT id, newsletter, slot_utc, zone, state, subject, html, text, item_ids,
                        reason, created_at, completed_at
                 FROM editions WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, Option<String>>(7)?,
                        r.get::<_, String>(8)?,
                        r.get::<_, Option<String>>(9)?,
                        r.get::<_, String>(10)?,
                        r.get::<_, Option<String>>(11)?,
                    ))
                },
            )
            .optional()?;
        let Some((
            id,
            newsletter,
            slot,
            zone,
            state,
            subject,
            html,
            text,
            item_ids,
            reason,
            created,
            completed,
        )) = row
        else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, subject, html, text, item_ids FROM variants
             WHERE edition_id = ?1 ORDER BY key",
        )?;
        let variants = stmt
            .query_map([&id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })?
            .map(|row| {
                let (key, subject, html, text, ids) = row?;
                Ok(Variant {
                    key,
                    subject,
                    html,
                    text,
                    item_ids: parse_ids(&ids)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(StoredEdition {
            slot_utc: parse_ts("slot_utc", &slot)?,
            state: state.parse()?,
            item_ids: parse_ids(&item_ids)?,
            created_at: parse_ts("created_at", &created)?,
            completed_at: completed
                .map(|c| parse_ts("completed_at", &c))
                .transpose()?,
            id,
            newsletter,
            zone,
            subject,
            html,
            text,
            variants,
            reason,
        }))
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

    fn acquire_lease_at(
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

    /// Deliveries still to try, in freeze order: pending, deferred, and in
    /// doubt for the first time (see [`DeliveryState::InDoubt`]).
    pub fn pending(&self, edition_id: &str) -> Result<Vec<Delivery>> {
        self.deliveries_where(edition_id, &format!("AND {OPEN}"))
    }

    /// Every delivery of an edition, in freeze order.
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

    pub fn deliveries(&self, edition_id: &str) -> Result<Vec<Delivery>> {
        self.deliveries_where(edition_id, "")
    }

    fn deliveries_where(&self, edition_id: &str, filter: &str) -> Result<Vec<Delivery>> {
        let sql = format!(
            "SELECT edition_id, email, name, variant, state, attempts, last_reply, updated_at, fields,
                    doubts
             FROM deliveries WHERE edition_id = ?1 {filter} ORDER BY rowid"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([edition_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, u32>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, u32>(9)?,
            ))
        })?;
        rows.map(|row| {
            let (
                edition_id,
                email,
                name,
                variant,
                state,
                attempts,
                last_reply,
                updated,
                fields,
                doubts,
            ) = row?;
            Ok(Delivery {
                doubts,
                fields: serde_json::from_str(&fields)?,
                edition_id,
                email,
                name,
                variant,
                state: state.parse()?,
                attempts,
                last_reply,
                updated_at: parse_ts("updated_at", &updated)?,
            })
        })
        .collect()
    }

    /// Records a group of outcomes in one transaction (one fsync). Only a
    /// delivery a run may still try changes: one `sent`, `failed` or in
    /// doubt for good never does, so a late or duplicate outcome cannot turn
    /// a sent message back into a pending one. An `InDoubt` outcome counts
    /// one more doubt. Returns the number of deliveries updated.
    pub fn record_batch(&mut self, outcomes: &[DeliveryUpdate]) -> Result<usize> {
        let now = ts(Utc::now());
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut changed = 0;
        {
            let mut update = tx.prepare_cached(&format!(
                "UPDATE deliveries
                 SET state = ?3, attempts = attempts + ?4,
                     last_reply = COALESCE(?5, last_reply), updated_at = ?6,
                     doubts = doubts + (?3 = 'in_doubt')
                 WHERE edition_id = ?1 AND email = ?2 AND {OPEN}"
            ))?;
            for o in outcomes {
                changed += update.execute(params![
                    o.edition_id,
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
            "INSERT INTO editions (id, newsletter, slot_utc, zone, state, reason, created_at, completed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
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
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT state, COUNT(*), COALESCE(SUM({OPEN}), 0) FROM deliveries
             WHERE edition_id = ?1 GROUP BY state"
        ))?;
        let mut counts = Counts::default();
        let rows = stmt.query_map([edition_id], |r| {
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
                    COALESCE(SUM(d.state = 'in_doubt' AND d.doubts < 2), 0)
             FROM editions e LEFT JOIN deliveries d ON d.edition_id = e.id
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
        let mut stmt = self.conn.prepare_cached(
            "SELECT email, COALESCE(last_reply, '') FROM deliveries
             WHERE edition_id = ?1 AND state = ?2 ORDER BY email",
        )?;
        let rows = stmt.query_map(params![edition_id, state.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn edition(id: &str) -> FrozenEdition {
        FrozenEdition {
            id: id.to_owned(),
            newsletter: "am".to_owned(),
            slot_utc: Utc.with_ymd_and_hms(2026, 11, 30, 6, 0, 0).unwrap(),
            zone: "Europe/Lisbon".to_owned(),
            subject: "Morning Brief".to_owned(),
            html: "<p>all</p>".to_owned(),
            text: "all".to_owned(),
            item_ids: vec!["world/trade".to_owned(), "local/rain".to_owned()],
            variants: vec![Variant {
                key: "regions=eu;topics=*".to_owned(),
                subject: "Morning Brief (EU)".to_owned(),
                html: "<p>eu</p>".to_owned(),
                text: "eu".to_owned(),
                item_ids: vec!["world/trade".to_owned()],
            }],
        }
    }

    fn recipients(n: usize) -> Vec<Recipient> {
        (0..n)
            .map(|i| Recipient {
                email: format!("r{i}@example.com"),
                name: Some(format!("Reader {i}")),
                fields: [("city".to_string(), format!("City {i}"))].into(),
                variant: if i % 2 == 0 {
                    MAIN_VARIANT.to_owned()
                } else {
                    "regions=eu;topics=*".to_owned()
                },
            })
            .collect()
    }

    fn outcome(email: &str, state: DeliveryState, reply: &str) -> DeliveryUpdate {
        DeliveryUpdate {
            edition_id: "am-1".to_owned(),
            email: email.to_owned(),
            state,
            attempts: 1,
            reply: Some(reply.to_owned()),
        }
    }

    #[test]
    fn open_creates_parent_dir_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/nested/ledger.sqlite");
        {
            let mut ledger = Ledger::open(&path).unwrap();
            assert!(
                ledger
                    .freeze_edition(&edition("am-1"), &recipients(4))
                    .unwrap()
            );
            ledger
                .record_batch(&[outcome("r0@example.com", DeliveryState::Sent, "250 ok")])
                .unwrap();
        }
        let ledger = Ledger::open(&path).unwrap();
        let stored = ledger.edition("am-1").unwrap().unwrap();
        assert_eq!(stored.subject.as_deref(), Some("Morning Brief"));
        assert_eq!(stored.state, EditionState::Frozen);
        assert_eq!(stored.item_ids, ["world/trade", "local/rain"]);
        assert_eq!(stored.variants.len(), 1);
        assert_eq!(
            stored.content("regions=eu;topics=*"),
            Some(("Morning Brief (EU)", "<p>eu</p>", "eu"))
        );
        assert_eq!(stored.content(MAIN_VARIANT).map(|c| c.2), Some("all"));
        assert_eq!(stored.content("nope"), None);
        let counts = ledger.counts("am-1").unwrap();
        assert_eq!((counts.sent, counts.pending, counts.total()), (1, 3, 4));
        let version: i64 = ledger
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
    }

    #[test]
    fn concurrent_opens_of_a_new_ledger_all_succeed() {
        // Two senders started together (cron, or a rerun while another runs)
        // both create the file, switch it to WAL and migrate it.
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state/ledger.sqlite");
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
            let opens: Vec<_> = (0..4)
                .map(|_| {
                    let (path, barrier) = (path.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        Ledger::open(&path).map(|_| ())
                    })
                })
                .collect();
            for open in opens {
                let result = open.join().unwrap();
                assert!(result.is_ok(), "round {round}: {:?}", result.unwrap_err());
            }
        }
    }

    #[test]
    fn refuses_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        drop(Ledger::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(matches!(
            Ledger::open(&path),
            Err(LedgerError::NewerSchema { found: 99, .. })
        ));
    }

    #[test]
    fn refreezing_keeps_the_first_copy() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        assert!(
            ledger
                .freeze_edition(&edition("am-1"), &recipients(2))
                .unwrap()
        );
        let mut edited = edition("am-1");
        edited.subject = "Edited".to_owned();
        assert!(!ledger.freeze_edition(&edited, &recipients(5)).unwrap());
        let stored = ledger.edition("am-1").unwrap().unwrap();
        assert_eq!(stored.subject.as_deref(), Some("Morning Brief"));
        assert_eq!(ledger.counts("am-1").unwrap().total(), 2);
    }

    #[test]
    fn freeze_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        let mut bad = recipients(3);
        bad[2].variant = "regions=us;topics=*".to_owned();
        assert!(matches!(
            ledger.freeze_edition(&edition("am-1"), &bad),
            Err(LedgerError::UnknownVariant { .. })
        ));
        assert!(ledger.edition("am-1").unwrap().is_none());
        assert_eq!(ledger.counts("am-1").unwrap().total(), 0);
    }

    #[test]
    fn duplicate_recipients_first_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        let mut rs = recipients(2);
        rs.push(Recipient {
            email: "r0@example.com".into(),
            name: Some("Other".into()),
            variant: MAIN_VARIANT.into(),
            fields: Default::default(),
        });
        ledger.freeze_edition(&edition("am-1"), &rs).unwrap();
        let all = ledger.deliveries("am-1").unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].name.as_deref(), Some("Reader 0"));
    }

    #[test]
    fn outcomes_pending_failed_and_no_downgrade() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        ledger
            .freeze_edition(&edition("am-1"), &recipients(4))
            .unwrap();
        let changed = ledger
            .record_batch(&[
                outcome("r0@example.com", DeliveryState::Sent, "250 2.0.0 queued"),
                outcome(
                    "r1@example.com",
                    DeliveryState::Deferred,
                    "450 4.2.1 try later",
                ),
                outcome(
                    "r2@example.com",
                    DeliveryState::Failed,
                    "550 5.1.1 no such user",
                ),
            ])
            .unwrap();
        assert_eq!(changed, 3);
        let pending: Vec<_> = ledger
            .pending("am-1")
            .unwrap()
            .into_iter()
            .map(|d| (d.email, d.state, d.attempts))
            .collect();
        assert_eq!(
            pending,
            [
                ("r1@example.com".to_owned(), DeliveryState::Deferred, 1),
                ("r3@example.com".to_owned(), DeliveryState::Pending, 0),
            ]
        );
        assert_eq!(
            ledger.failed("am-1").unwrap(),
            [(
                "r2@example.com".to_owned(),
                "550 5.1.1 no such user".to_owned()
            )]
        );
        assert_eq!(
            ledger.replies("am-1", DeliveryState::Deferred).unwrap(),
            [(
                "r1@example.com".to_owned(),
                "450 4.2.1 try later".to_owned()
            )]
        );
        // A stale "deferred" for an already-sent delivery changes nothing.
        let changed = ledger
            .record_batch(&[
                outcome("r0@example.com", DeliveryState::Deferred, "421 late"),
                outcome("r1@example.com", DeliveryState::Sent, "250 ok"),
            ])
            .unwrap();
        assert_eq!(changed, 1);
        let all = ledger.deliveries("am-1").unwrap();
        assert_eq!(all[0].state, DeliveryState::Sent);
        assert_eq!(all[0].last_reply.as_deref(), Some("250 2.0.0 queued"));
        assert_eq!((all[1].state, all[1].attempts), (DeliveryState::Sent, 2));
        assert_eq!(
            ledger.counts("am-1").unwrap(),
            Counts {
                pending: 1,
                sent: 2,
                deferred: 0,
                failed: 1,
                in_doubt: 0,
                resend: 0,
            }
        );
    }

    #[test]
    fn in_doubt_is_resent_once_then_final() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        ledger
            .freeze_edition(&edition("am-1"), &recipients(3))
            .unwrap();
        let lost = "in doubt: connection lost";
        ledger
            .record_batch(&[
                outcome("r0@example.com", DeliveryState::InDoubt, lost),
                outcome("r1@example.com", DeliveryState::InDoubt, lost),
                outcome("r2@example.com", DeliveryState::Sent, "250 ok"),
            ])
            .unwrap();
        let counts = ledger.counts("am-1").unwrap();
        assert_eq!((counts.in_doubt, counts.resend, counts.unsent()), (2, 2, 2));
        assert_eq!(counts.total(), 3);
        // The next run resends both, once.
        let again: Vec<_> = ledger
            .pending("am-1")
            .unwrap()
            .into_iter()
            .map(|d| (d.email, d.doubts))
            .collect();
        assert_eq!(
            again,
            [
                ("r0@example.com".to_owned(), 1),
                ("r1@example.com".to_owned(), 1)
            ]
        );
        // r0's resend is in doubt again: final. r1's is accepted.
        let changed = ledger
            .record_batch(&[
                outcome("r0@example.com", DeliveryState::InDoubt, lost),
                outcome("r1@example.com", DeliveryState::Sent, "250 ok"),
            ])
            .unwrap();
        assert_eq!(changed, 2);
        let counts = ledger.counts("am-1").unwrap();
        assert_eq!(
            (counts.in_doubt, counts.resend, counts.sent, counts.unsent()),
            (1, 0, 2, 0),
            "in doubt twice counts as done"
        );
        assert!(ledger.pending("am-1").unwrap().is_empty());
        let r0 = &ledger.deliveries("am-1").unwrap()[0];
        assert_eq!(
            (r0.state, r0.doubts, r0.attempts),
            (DeliveryState::InDoubt, 2, 2)
        );
        // Nothing moves it any more, not even a stale outcome.
        let changed = ledger
            .record_batch(&[outcome("r0@example.com", DeliveryState::Sent, "250 ok")])
            .unwrap();
        assert_eq!(changed, 0);
        assert_eq!(
            ledger.replies("am-1", DeliveryState::InDoubt).unwrap(),
            [("r0@example.com".to_owned(), lost.to_owned())]
        );
        let summary = &ledger.editions(None).unwrap()[0];
        assert_eq!(summary.counts, ledger.counts("am-1").unwrap());
        // The SQL spells MAX_DOUBTS out.
        assert!(OPEN.contains(&format!("doubts < {MAX_DOUBTS}")));
    }

    #[test]
    fn a_deferred_resend_keeps_its_doubt() {
        // In doubt, then the resend meets a 4xx before the message: still one
        // resend allowed after it, never a third message in doubt.
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        ledger
            .freeze_edition(&edition("am-1"), &recipients(1))
            .unwrap();
        for (state, open) in [
            (DeliveryState::InDoubt, true),
            (DeliveryState::Deferred, true),
            (DeliveryState::InDoubt, false),
        ] {
            ledger
                .record_batch(&[outcome("r0@example.com", state, "x")])
                .unwrap();
            assert_eq!(ledger.pending("am-1").unwrap().len() == 1, open, "{state}");
        }
    }

    #[test]
    fn migrates_a_version_1_ledger_keeping_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute_batch(
                "INSERT INTO editions (id, newsletter, slot_utc, zone, state, created_at)
                 VALUES ('am-1', 'am', '2026-11-30T06:00:00.000Z', 'UTC', 'sending',
                         '2026-11-30T06:00:00.000Z');
                 INSERT INTO deliveries (edition_id, email, variant, state, attempts, last_reply, updated_at)
                 VALUES ('am-1', 'z@example.com', 'main', 'sent', 1, '250 ok', '2026-11-30T06:00:01.000Z'),
                        ('am-1', 'a@example.com', 'main', 'deferred', 2, '451 later', '2026-11-30T06:00:02.000Z');",
            )
            .unwrap();
            let refused = conn.execute(
                "UPDATE deliveries SET state = 'in_doubt' WHERE email = 'a@example.com'",
                [],
            );
            assert!(refused.is_err(), "version 1 has no in_doubt");
        }
        let mut ledger = Ledger::open(&path).unwrap();
        let all = ledger.deliveries("am-1").unwrap();
        let rows: Vec<_> = all
            .iter()
            .map(|d| (d.email.as_str(), d.state, d.attempts, d.doubts))
            .collect();
        assert_eq!(
            rows,
            [
                ("z@example.com", DeliveryState::Sent, 1, 0),
                ("a@example.com", DeliveryState::Deferred, 2, 0)
            ],
            "rows and their freeze order survive"
        );
        ledger
            .record_batch(&[DeliveryUpdate {
                edition_id: "am-1".into(),
                email: "a@example.com".into(),
                state: DeliveryState::InDoubt,
                attempts: 1,
                reply: None,
            }])
            .unwrap();
        assert_eq!(ledger.counts("am-1").unwrap().in_doubt, 1);
        let index: i64 = ledger
            .conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'deliveries_by_state'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, 1);
    }

    #[test]
    fn lease_busy_renew_release_and_takeover() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        ledger
            .freeze_edition(&edition("am-1"), &recipients(1))
            .unwrap();
        let ttl = Duration::from_secs(60);
        let t0 = Utc::now();
        assert_eq!(
            ledger
                .acquire_lease_at("am-1", "host-a:1", ttl, t0, &|_| false)
                .unwrap(),
            LeaseOutcome::Acquired
        );
        assert_eq!(
            ledger
                .acquire_lease_at("am-1", "host-a:1", ttl, t0, &|_| false)
                .unwrap(),
            LeaseOutcome::Acquired
        );
        assert!(matches!(
            ledger.acquire_lease_at("am-1", "host-b:2", ttl, t0 + TimeDelta::seconds(30), &|_| false).unwrap(),
            LeaseOutcome::Busy { ref holder, .. } if holder == "host-a:1"
        ));
        assert!(ledger.renew_lease("am-1", "host-a:1", ttl).unwrap());
        assert!(!ledger.renew_lease("am-1", "host-b:2", ttl).unwrap());
        // After expiry another sender may take over, and the old one learns
        // on its next renewal that it lost the lease.
        assert_eq!(
            ledger
                .acquire_lease_at(
                    "am-1",
                    "host-b:2",
                    ttl,
                    Utc::now() + TimeDelta::seconds(120),
                    &|_| false,
                )
                .unwrap(),
            LeaseOutcome::TakenOver {
                previous_holder: "host-a:1".to_owned()
            }
        );
        assert!(!ledger.renew_lease("am-1", "host-a:1", ttl).unwrap());
        // A holder known to be dead loses an unexpired lease at once.
        assert!(matches!(
            ledger
                .acquire_lease_reclaiming("am-1", "host-c:3", ttl, &|h| h == "host-b:2")
                .unwrap(),
            LeaseOutcome::TakenOver { .. }
        ));
        assert!(matches!(
            ledger
                .acquire_lease_reclaiming("am-1", "host-b:2", ttl, &|h| h == "nobody")
                .unwrap(),
            LeaseOutcome::Busy { .. }
        ));
        ledger.release_lease("am-1", "host-c:3").unwrap();
        ledger.acquire_lease("am-1", "host-b:2", ttl).unwrap();
        ledger.release_lease("am-1", "host-a:1").unwrap();
        assert!(ledger.renew_lease("am-1", "host-b:2", ttl).unwrap());
        ledger.release_lease("am-1", "host-b:2").unwrap();
        assert_eq!(
            ledger.acquire_lease("am-1", "host-c:3", ttl).unwrap(),
            LeaseOutcome::Acquired
        );
        assert!(matches!(
            ledger.acquire_lease("nope", "x", ttl),
            Err(LedgerError::UnknownEdition(_))
        ));
    }

    #[test]
    fn lease_is_shared_between_connections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        let mut a = Ledger::open(&path).unwrap();
        let mut b = Ledger::open(&path).unwrap();
        a.freeze_edition(&edition("am-1"), &recipients(1)).unwrap();
        let ttl = Duration::from_secs(60);
        assert_eq!(
            a.acquire_lease("am-1", "a", ttl).unwrap(),
            LeaseOutcome::Acquired
        );
        assert!(matches!(
            b.acquire_lease("am-1", "b", ttl).unwrap(),
            LeaseOutcome::Busy { .. }
        ));
    }

    #[test]
    fn edition_states_and_summaries() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        ledger
            .freeze_edition(&edition("am-1"), &recipients(3))
            .unwrap();
        ledger.mark_sending("am-1").unwrap();
        ledger
            .record_batch(&[outcome("r0@example.com", DeliveryState::Sent, "250")])
            .unwrap();
        ledger.mark_complete("am-1").unwrap();
        ledger.mark_complete("am-1").unwrap();
        let stored = ledger.edition("am-1").unwrap().unwrap();
        assert_eq!(stored.state, EditionState::Complete);
        assert!(stored.completed_at.is_some());

        let missed = EditionStub {
            id: "am-0".into(),
            newsletter: "am".into(),
            slot_utc: Utc.with_ymd_and_hms(2026, 11, 29, 6, 0, 0).unwrap(),
            zone: "Europe/Lisbon".into(),
        };
        ledger.record_missed(&missed, "machine was off").unwrap();
        ledger.record_missed(&missed, "again").unwrap();
        let skipped = EditionStub {
            id: "pm-0".into(),
            newsletter: "pm".into(),
            ..missed.clone()
        };
        ledger.record_skipped(&skipped, "no items").unwrap();
        assert!(matches!(
            ledger.record_missed(&skipped, "x"),
            Err(LedgerError::InvalidTransition { .. })
        ));
        let complete_stub = EditionStub {
            id: "am-1".into(),
            ..missed.clone()
        };
        assert!(matches!(
            ledger.record_skipped(&complete_stub, "x"),
            Err(LedgerError::InvalidTransition { .. })
        ));

        let all = ledger.editions(None).unwrap();
        let ids: Vec<_> = all.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["am-1", "am-0", "pm-0"]);
        assert_eq!(all[0].counts.sent, 1);
        assert_eq!(all[0].counts.pending, 2);
        assert_eq!(all[1].state, EditionState::Missed);
        assert_eq!(all[1].reason.as_deref(), Some("machine was off"));
        assert_eq!(all[1].counts, Counts::default());
        assert_eq!(all[1].subject, None);
        let am: Vec<_> = ledger
            .editions(Some("am"))
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(am, ["am-1", "am-0"]);
        assert!(matches!(
            ledger.mark_complete("nope"),
            Err(LedgerError::UnknownEdition(_))
        ));
    }

    #[test]
    fn frozen_edition_can_become_missed() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        let e = edition("am-1");
        ledger.freeze_edition(&e, &recipients(1)).unwrap();
        let stub = EditionStub {
            id: e.id.clone(),
            newsletter: e.newsletter.clone(),
            slot_utc: e.slot_utc,
            zone: e.zone.clone(),
        };
        ledger.record_missed(&stub, "sender never ran").unwrap();
        let stored = ledger.edition("am-1").unwrap().unwrap();
        assert_eq!(stored.state, EditionState::Missed);
        assert_eq!(stored.reason.as_deref(), Some("sender never ran"));
        assert_eq!(stored.subject.as_deref(), Some("Morning Brief"));
    }
}
