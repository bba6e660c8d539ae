//! The send ledger: every frozen edition with its renderings, every
//! delivery and its outcome, the lease that keeps two senders off one
//! edition, and what came back (suppressions, bounces and complaints,
//! readers' preferences). It is what makes `send` resumable after a crash,
//! what every send obeys before mailing anyone, and what `status` reports
//! from. The types are here; `store` holds the operations, written once
//! over `sql::Db` for both backends: `sqlite` (one file, the embedded
//! default) and `postgres` (a server several hosts share).

mod copy;
mod postgres;
mod sql;
mod sqlite;
mod store;
#[cfg(test)]
mod tests;
#[doc(hidden)]
pub mod throwaway;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use copy::{Copied, copy};
pub use postgres::PgTarget;
pub use store::{Confirming, Ledger, SignedUp};

/// Messages to one reader that may be left in doubt before the ledger stops
/// resending: the first one, and the one resend of it on the next run.
pub const MAX_DOUBTS: u32 = 2;

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
    #[error("ledger database error")]
    Postgres(#[from] ::postgres::Error),
    /// `target` is for the callers, whose context names the ledger.
    #[error("cannot connect to the ledger's database: {reason}")]
    Connect { target: String, reason: String },
    #[error("the ledger's connection is gone")]
    Gone,
    #[error("cannot copy the ledger: {0}")]
    Copy(String),
    #[error("ledger column {index} holds {found}, not {expected}")]
    Column {
        index: usize,
        expected: &'static str,
        found: String,
    },
    #[error(
        "the ledger has schema version {found}, newer than this briefing understands ({supported}); upgrade briefing"
    )]
    NewerSchema { found: i64, supported: i64 },
    #[error(
        "the ledger has schema version {found}, older than any this briefing can upgrade ({oldest}); copy its history into a new ledger with the build that made it"
    )]
    OlderSchema { found: i64, oldest: i64 },
    #[error("the ledger could not switch to WAL journaling (got {0:?})")]
    NoWal(String),
    #[error("unknown edition {0}")]
    UnknownEdition(String),
    #[error(
        "recipient {email} refers to rendering {rendering}, which edition {edition} does not have"
    )]
    UnknownRendering {
        edition: String,
        email: String,
        rendering: u32,
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

/// Where a ledger is: `ledger:` in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// One SQLite file: the embedded default, for one machine.
    Sqlite(PathBuf),
    /// A PostgreSQL server that several hosts share.
    Postgres(PgTarget),
}

impl Location {
    /// `postgres://…` or `postgresql://…` is a server; anything else a file.
    pub fn is_postgres_url(s: &str) -> bool {
        s.starts_with("postgres://") || s.starts_with("postgresql://")
    }
}

impl Location {
    /// As messages show it: a file relative to the newsroom, a server's
    /// URL without its password.
    pub fn shown(&self, root: &Path) -> String {
        match self {
            Location::Sqlite(path) => crate::diag::display_path(root, path).display().to_string(),
            Location::Postgres(target) => target.to_string(),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(target) => target.fmt(f),
        }
    }
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Self {
        Location::Sqlite(p.to_owned())
    }
}

impl From<&PathBuf> for Location {
    fn from(p: &PathBuf) -> Self {
        Location::Sqlite(p.clone())
    }
}

impl From<&Location> for Location {
    fn from(l: &Location) -> Self {
        l.clone()
    }
}

impl Ledger {
    /// Opens the ledger, creating it (a file, or the schema on a server)
    /// if needed, and brings its schema up to this build's version.
    pub fn open(at: impl Into<Location>) -> Result<Ledger> {
        let at = at.into();
        let db: Box<dyn sql::Db> = match &at {
            Location::Sqlite(path) => Box::new(sqlite::open(path)?),
            Location::Postgres(target) => {
                Box::new(postgres::Postgres::connect(target, true)?.ok_or(LedgerError::Gone)?)
            }
        };
        Ok(Ledger::new(db, at))
    }

    /// The ledger if it exists (a file there, the schema on the server):
    /// for readers (`check`, a dry run, `status`) that must not create one.
    pub fn open_existing(at: impl Into<Location>) -> Result<Option<Ledger>> {
        let at = at.into();
        match &at {
            Location::Sqlite(path) => match path.exists() {
                true => Ledger::open(at).map(Some),
                false => Ok(None),
            },
            Location::Postgres(target) => Ok(postgres::Postgres::connect(target, false)?
                .map(|pg| Ledger::new(Box::new(pg), at.clone()))),
        }
    }

    /// The schema version the ledger at `at` has (`None`: no ledger there
    /// yet) and the newest this build knows, changing nothing.
    pub fn schema_version(at: &Location) -> Result<(Option<i64>, i64)> {
        let supported = sqlite::MIGRATIONS.len() as i64;
        let found = match at {
            Location::Sqlite(path) => sqlite::version(path)?,
            Location::Postgres(target) => postgres::version(target)?,
        };
        Ok((found, supported))
    }
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

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

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
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
        /// Suppressed after the edition was frozen (an unsubscribe or a
        /// bounce that came in while it was sending): not sent, never
        /// tried again, done.
        Suppressed => "suppressed",
    }
}

/// One rendering of an edition: what the recipients who share a preference
/// set (and the same filled-in fields) get, with placeholders for each
/// recipient's values. An edition stores each distinct rendering once;
/// recipients refer to it by its index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendering {
    pub subject: String,
    pub html: String,
    pub text: String,
    pub item_ids: Vec<String>,
}

/// The index of an edition's whole rendering (every section): the copy
/// `status` and test copies use, and the archive's for editions frozen
/// without a [`WebRendering`].
pub const MAIN_RENDERING: u32 = 0;

/// The whole edition rendered for nobody in particular: no subscriber's
/// name, address, token or links, and no placeholders. It is what the web
/// archive shows, made when the edition was frozen, so the archive shows
/// what was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebRendering {
    pub subject: String,
    pub html: String,
    pub text: String,
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
    /// [`MAIN_RENDERING`] first, then the narrower ones, each distinct.
    pub renderings: Vec<Rendering>,
    /// The anonymous rendering for the archive; `None` for a newsletter
    /// that is not archived.
    pub web: Option<WebRendering>,
}

impl FrozenEdition {
    /// The whole edition's rendering.
    pub fn main(&self) -> Option<&Rendering> {
        self.renderings.first()
    }
}

/// Who gets a frozen edition, and which rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub email: String,
    pub name: Option<String>,
    /// Index into [`FrozenEdition::renderings`].
    pub rendering: u32,
    /// The recipient's values for the placeholders the renderings hold
    /// (CSV columns), frozen with the edition so a resumed send writes the
    /// same message. Only what a rendering uses, and only what is not empty.
    /// (name, value) pairs, as the list's columns come (see
    /// `audience::Subscriber::fields`); a name given twice keeps its last value.
    pub fields: Vec<(String, String)>,
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
    /// The edition's number in this ledger: what VERP tags refer to.
    pub num: u64,
    pub newsletter: String,
    pub slot_utc: DateTime<Utc>,
    pub zone: String,
    pub state: EditionState,
    /// The main rendering's subject; `None` for missed/skipped slots that
    /// were never frozen.
    pub subject: Option<String>,
    /// Empty for missed/skipped slots.
    pub renderings: Vec<Rendering>,
    /// Why it was missed or skipped.
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl StoredEdition {
    /// Subject, HTML and text of rendering `index`.
    pub fn content(&self, index: u32) -> Option<(&str, &str, &str)> {
        self.renderings
            .get(index as usize)
            .map(|r| (r.subject.as_str(), r.html.as_str(), r.text.as_str()))
    }

    /// The items of the whole edition.
    pub fn item_ids(&self) -> &[String] {
        self.renderings
            .first()
            .map_or(&[][..], |r| r.item_ids.as_slice())
    }
}

/// One recipient's delivery of one edition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub edition_id: String,
    pub email: String,
    pub name: Option<String>,
    pub rendering: u32,
    pub state: DeliveryState,
    pub attempts: u32,
    /// The relay's last reply when it was not an acceptance (or the local
    /// error): what `status --failed` shows.
    pub last_reply: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub fields: BTreeMap<String, String>,
    /// Messages to this recipient left in doubt so far (see
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
    /// Suppressed while the edition was sending.
    pub suppressed: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.pending + self.sent + self.deferred + self.failed + self.in_doubt + self.suppressed
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

/// Who else sends an edition, as a sender joins it or claims a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Joined {
    /// Other senders whose leases are alive: they claim their own batches.
    pub others: Vec<String>,
    /// Senders whose lease had expired, or who were processes of this
    /// machine that died: their leases are ended and their claims free.
    /// They probably crashed: at most one message per connection of theirs
    /// is in doubt, and may be sent again.
    pub took_over: Vec<String>,
}

/// What one relay did for one edition, over every run and host that sent
/// it, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayTally {
    /// The relay's name (`delivery.smtp[].name`, or its host and port).
    pub relay: String,
    pub sent: u64,
    pub deferred: u64,
    pub failed: u64,
    pub in_doubt: u64,
    /// Sessions it refused or dropped before one was open.
    pub connect_failures: u64,
}

/// A batch of recipients claimed for one sender: see
/// [`Ledger::claim_batch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claimed {
    /// By address.
    pub deliveries: Vec<Delivery>,
    pub took_over: Vec<String>,
}

string_enum! {
    /// Why an address must not be mailed.
    SuppressionReason {
        /// RFC 8058 one-click (a POST from the mailbox provider).
        OneClick => "one-click",
        /// The unsubscribe page's button, or the preferences page.
        Link => "link",
        /// A message to the per-recipient unsubscribe address.
        Mailto => "mailto",
        /// The address or its domain does not exist.
        HardBounce => "hard-bounce",
        /// Repeated soft bounces across editions (see `delivery.bounces`).
        SoftBounce => "soft-bounce",
        /// The recipient reported the newsletter as spam.
        Complaint => "complaint",
        /// Someone who runs the list (`briefing suppress`).
        Manual => "manual",
        /// The `delivery.suppressions` file.
        File => "file",
    }
}

impl SuppressionReason {
    /// Whether the recipient asked for it themselves (or a person did for
    /// them): such an entry may be lifted by `unsuppress`. Bounces and
    /// complaints need `--force`.
    /// Asked for by the reader themselves (one-click, a page's button, a
    /// mailed unsubscribe): what they may undo themselves, on the pages or
    /// by signing up again.
    pub fn is_the_readers_own(self) -> bool {
        matches!(
            self,
            SuppressionReason::OneClick | SuppressionReason::Link | SuppressionReason::Mailto
        )
    }

    pub fn is_a_request(self) -> bool {
        matches!(
            self,
            SuppressionReason::OneClick
                | SuppressionReason::Link
                | SuppressionReason::Mailto
                | SuppressionReason::Manual
        )
    }
}

/// Who is suppressed for what: one newsletter, or all of them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub enum SuppressionScope {
    All,
    Newsletter(String),
}

impl SuppressionScope {
    /// As stored: `*` or the newsletter id.
    pub fn as_str(&self) -> &str {
        match self {
            SuppressionScope::All => "*",
            SuppressionScope::Newsletter(id) => id,
        }
    }

    pub fn parse(s: &str) -> SuppressionScope {
        match s {
            "*" => SuppressionScope::All,
            id => SuppressionScope::Newsletter(id.to_owned()),
        }
    }

    /// Whether it covers newsletter `id`.
    pub fn covers(&self, id: &str) -> bool {
        match self {
            SuppressionScope::All => true,
            SuppressionScope::Newsletter(n) => n == id,
        }
    }
}

impl From<SuppressionScope> for String {
    fn from(s: SuppressionScope) -> String {
        s.as_str().to_owned()
    }
}

impl std::fmt::Display for SuppressionScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SuppressionScope::All => f.write_str("all newsletters"),
            SuppressionScope::Newsletter(id) => f.write_str(id),
        }
    }
}

/// One entry of the suppression list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suppression {
    /// Normalised and lower-cased, as subscriber rows are compared.
    pub address: String,
    pub scope: SuppressionScope,
    pub reason: SuppressionReason,
    pub created_at: DateTime<Utc>,
    /// What it rests on: the DSN's status and diagnostic, the complaint's
    /// feedback type, the request's time and user agent, a person's note.
    pub evidence: serde_json::Value,
}

string_enum! {
    /// What came back about one recipient, as recorded for `status` and for
    /// the soft-bounce rule.
    ReturnKind {
        Unsubscribe => "unsubscribe",
        HardBounce => "hard-bounce",
        SoftBounce => "soft-bounce",
        Complaint => "complaint",
        /// A refusal for the relay's or the content's reputation (5.7.x,
        /// blocklists): never the subscriber's fault.
        PolicyBlock => "policy-block",
        /// Lifted by `unsuppress`, or re-subscribed through the pages.
        Resubscribe => "resubscribe",
    }
}

/// One event heard back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnEvent {
    pub address: String,
    pub newsletter: Option<String>,
    pub edition_id: Option<String>,
    pub kind: ReturnKind,
    pub at: DateTime<Utc>,
    pub evidence: serde_json::Value,
}

/// What came back about one edition (or one newsletter), for `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReturnCounts {
    pub unsubscribes: u64,
    pub hard_bounces: u64,
    pub soft_bounces: u64,
    pub complaints: u64,
    pub policy_blocks: u64,
}

/// The sections a subscriber chose on the preferences page, for one
/// newsletter. They override the list's columns for that address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {
    /// Region ids; empty means every region.
    pub regions: Vec<String>,
    /// Topic ids; empty means every topic.
    pub topics: Vec<String>,
}

/// A subscriber who signed up (and confirmed) or was imported as having
/// consented: the ledger's own list, merged with a newsletter's CSV list
/// when an edition is planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredSubscriber {
    /// As normalised by the lists' rules; compared lower-cased.
    pub email: String,
    pub newsletter: String,
    pub name: Option<String>,
    /// When they consented (confirmed, or the import's claim).
    pub consent_at: DateTime<Utc>,
    /// `signup page`, or `import <file>`.
    pub source: String,
    /// What the consent rests on: the confirming request's time and user
    /// agent, the link's issue time; for an import, the file and who ran it.
    pub evidence: serde_json::Value,
}

/// A stored preference choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreferenceRecord {
    pub address: String,
    pub newsletter: String,
    pub preferences: Preferences,
    pub updated_at: DateTime<Utc>,
}
