//! `briefing subscribers import`: a CSV list's rows stored in the ledger as
//! subscribers who consented elsewhere (a form of the newsroom's own, an
//! older tool), read with the lists' own rules and recorded with the file
//! as their source.

use std::path::Path;

use anyhow::{Context as _, Result};
use chrono::Utc;
use serde_json::json;

use crate::audience::{self, Rejected};
use crate::config::Newsroom;
use crate::diag::display_path;
use crate::ledger::{Ledger, Preferences, SignedUp, StoredSubscriber};

/// What an import found and did.
#[derive(Debug, Default)]
pub struct Imported {
    /// Rows that are not valid subscribers (bad address, duplicate…).
    pub rejected: Vec<Rejected>,
    /// `None`: nothing was stored, because rows were rejected and the
    /// import was not told to skip them.
    pub stored: Option<SignedUp>,
    /// Stored rows whose address is suppressed for the newsletter: they
    /// stay unmailed.
    pub suppressed: usize,
}

/// Reads `file` whole (a file that cannot be read imports nothing) and
/// stores its rows for `newsletter` in one transaction. Region and topic
/// columns become the subscriber's sections, unless they chose their own
/// on the preferences page; a row already in the ledger is left as it is.
pub fn import(
    newsroom: &Newsroom,
    file: &Path,
    newsletter: &str,
    skip_invalid: bool,
) -> Result<Imported> {
    let cfg = &newsroom.config;
    let list = audience::load_subscribers(file)?;
    let mut out = Imported {
        rejected: list.rejected,
        ..Imported::default()
    };
    // A section the newsroom does not have is the file's mistake, as a bad
    // address is.
    let known = |ids: &[String], terms: &[crate::config::Term]| {
        ids.iter()
            .find(|id| !terms.iter().any(|t| &t.id == *id))
            .cloned()
    };
    let mut valid = Vec::with_capacity(list.subscribers.len());
    for s in list.subscribers {
        let unknown = (known(&s.regions, &cfg.regions).map(|id| format!("unknown region `{id}`")))
            .or_else(|| known(&s.topics, &cfg.topics).map(|id| format!("unknown topic `{id}`")));
        match unknown {
            Some(reason) => out.rejected.push(Rejected {
                path: file.to_owned(),
                line: s.line,
                email: s.email,
                reason,
            }),
            None => valid.push(s),
        }
    }
    out.rejected.sort_by_key(|r| r.line);
    if !out.rejected.is_empty() && !skip_invalid {
        return Ok(out);
    }
    let shown = display_path(&newsroom.root, file).display().to_string();
    let source = format!("import {shown}");
    let now = Utc::now();
    let by = std::env::var("USER").ok();
    let rows: Vec<(StoredSubscriber, Option<Preferences>)> = (valid.iter())
        .map(|s| {
            let row = StoredSubscriber {
                email: s.email.clone(),
                newsletter: newsletter.to_owned(),
                name: s.name.clone(),
                consent_at: now,
                source: source.clone(),
                evidence: json!({ "file": shown, "line": s.line, "imported_at": now.to_rfc3339(), "by": by }),
            };
            let chosen = !(s.regions.is_empty() && s.topics.is_empty());
            let p = chosen.then(|| Preferences {
                regions: s.regions.clone(),
                topics: s.topics.clone(),
            });
            (row, p)
        })
        .collect();
    let mut ledger = Ledger::open(&cfg.ledger)
        .with_context(|| format!("cannot open the ledger {}", cfg.ledger))?;
    out.stored = Some(ledger.import_subscribers(&rows)?);
    let suppressed = ledger.suppressed_for(newsletter)?;
    out.suppressed = (valid.iter())
        .filter(|s| suppressed.contains(&s.email.to_ascii_lowercase()))
        .count();
    Ok(out)
}
