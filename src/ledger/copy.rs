//! `briefing ledger copy`: a newsroom's whole history from one ledger into
//! another (SQLite to PostgreSQL when it outgrows one machine, or back),
//! in one transaction on the target, so that a copy that fails leaves the
//! target as it was.

use super::sql::{Param, Tx};
use super::{Ledger, LedgerError, Location, Result};

/// Each table, its key (what the rows are read in order of, a page at a
/// time) and its columns. Leases are not copied: they belong to senders
/// running on the old ledger, which must be stopped before a copy.
const TABLES: &[(&str, &[&str], &[&str])] = &[
    (
        "editions",
        &["id"],
        &[
            "id",
            "num",
            "newsletter",
            "slot_utc",
            "zone",
            "state",
            "subject",
            "item_ids",
            "reason",
            "stats",
            "created_at",
            "completed_at",
            "web_subject",
            "web_html",
            "web_text",
        ],
    ),
    (
        "renderings",
        &["edition_num", "idx"],
        &["edition_num", "idx", "subject", "html", "text", "item_ids"],
    ),
    (
        "deliveries",
        &["edition_num", "email"],
        &[
            "edition_num",
            "email",
            "name",
            "rendering",
            "fields",
            "state",
            "attempts",
            "reply",
            "updated",
            "doubts",
        ],
    ),
    (
        "suppressions",
        &["address", "scope"],
        &["address", "scope", "reason", "created_at", "evidence"],
    ),
    (
        "return_events",
        &["id"],
        &[
            "id",
            "address",
            "newsletter",
            "edition_id",
            "kind",
            "at",
            "evidence",
        ],
    ),
    (
        "preferences",
        &["address", "newsletter"],
        &["address", "newsletter", "regions", "topics", "updated_at"],
    ),
    (
        "subscribers",
        &["address", "newsletter"],
        &[
            "address",
            "newsletter",
            "email",
            "name",
            "consent_at",
            "source",
            "evidence",
        ],
    ),
    (
        "confirmations",
        &["hash", "address"],
        &["hash", "address", "sent_at"],
    ),
    (
        "relay_counts",
        &["edition_id", "relay"],
        &[
            "edition_id",
            "relay",
            "sent",
            "deferred",
            "failed",
            "in_doubt",
            "connect_failures",
        ],
    ),
];

/// Rows read from the source at a time.
const PAGE: usize = 2_000;

/// What [`copy`] moved: rows per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    pub tables: Vec<(&'static str, u64)>,
}

impl Copied {
    pub fn rows(&self, table: &str) -> u64 {
        (self.tables.iter())
            .find(|(t, _)| *t == table)
            .map_or(0, |(_, n)| *n)
    }
}

/// Copies every row of the ledger at `from` into the one at `to` (created,
/// or migrated, first), which must hold no history yet.
pub fn copy(from: &Location, to: &Location) -> Result<Copied> {
    if from == to {
        return Err(LedgerError::Copy(
            "the source and the target are the same ledger".into(),
        ));
    }
    let source = Ledger::open_existing(from)?
        .ok_or_else(|| LedgerError::Copy(format!("there is no ledger at {from}")))?;
    // Both are at this build's schema now (opening migrates): the columns
    // below are the same on both.
    let target = Ledger::open(to)?;
    for (table, _, _) in TABLES {
        let n = (target.db)
            .query_opt(&format!("SELECT COUNT(*) FROM {table}"), &[])?
            .map_or(Ok(0), |r| r.count(0))?;
        if n > 0 {
            return Err(LedgerError::Copy(format!(
                "the target already holds {n} row(s) in {table}: copy into an empty ledger"
            )));
        }
    }
    let tx = Tx::begin(target.db.as_ref())?;
    let mut copied = Copied::default();
    for (table, key, columns) in TABLES {
        let n = copy_table(&source, &tx, table, key, columns)?;
        copied.tables.push((table, n));
    }
    if target.dialect() == super::sql::Dialect::Postgres {
        // Events recorded after the copy number on from the copied ones.
        tx.batch(
            "SELECT setval(pg_get_serial_sequence('return_events', 'id'),
                           COALESCE((SELECT MAX(id) FROM return_events), 0) + 1, false)",
        )?;
    }
    tx.commit()?;
    Ok(copied)
}

fn copy_table(
    source: &Ledger,
    target: &Tx<'_>,
    table: &str,
    key: &[&str],
    columns: &[&str],
) -> Result<u64> {
    let list = columns.join(", ");
    let keys = key.join(", ");
    let after: Vec<String> = (1..=key.len()).map(|i| format!("?{i}")).collect();
    let first = format!("SELECT {list} FROM {table} ORDER BY {keys} LIMIT {PAGE}");
    let next = format!(
        "SELECT {list} FROM {table} WHERE ({keys}) > ({}) ORDER BY {keys} LIMIT {PAGE}",
        after.join(", ")
    );
    let slots: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    let insert = format!("INSERT INTO {table} ({list}) VALUES ({})", slots.join(", "));
    let key_at: Vec<usize> = (key.iter())
        .map(|k| columns.iter().position(|c| c == k).unwrap_or(0))
        .collect();
    let mut n = 0;
    let mut last: Option<Vec<super::sql::Value>> = None;
    loop {
        let rows = match &last {
            None => source.db.query(&first, &[])?,
            Some(k) => {
                let params: Vec<Param<'_>> = k.iter().map(Param::from).collect();
                source.db.query(&next, &params)?
            }
        };
        for r in &rows {
            let params: Vec<Param<'_>> = r.0.iter().map(Param::from).collect();
            target.execute(&insert, &params)?;
            n += 1;
        }
        match rows.last() {
            Some(r) if rows.len() == PAGE => {
                last = Some(key_at.iter().map(|&i| r.0[i].clone()).collect());
            }
            _ => return Ok(n),
        }
    }
}
