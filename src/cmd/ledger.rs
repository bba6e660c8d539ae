//! `briefing ledger migrate`: the configured ledger's schema brought to
//! this build's version; `briefing ledger copy`: a newsroom's history from
//! one ledger into another (docs/scaling.md).

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use super::Ctx;
use crate::cli::{CopyArgs, LedgerAction, LedgerArgs};
use crate::exit::{Exit, usage};
use crate::ledger::{Ledger, Location, PgTarget, copy};

pub fn run(ctx: &Ctx, args: &LedgerArgs) -> Result<Exit> {
    match &args.action {
        LedgerAction::Migrate => migrate(ctx),
        LedgerAction::Copy(a) => copy_ledger(ctx, a),
    }
}

fn migrate(ctx: &Ctx) -> Result<Exit> {
    let newsroom = ctx.newsroom()?;
    let at = &newsroom.config.ledger;
    let shown = at.shown(&newsroom.root);
    let (before, newest) =
        Ledger::schema_version(at).with_context(|| format!("cannot read the ledger {shown}"))?;
    Ledger::open(at).with_context(|| format!("cannot migrate the ledger {shown}"))?;
    ctx.console.summary(&match before {
        None => format!("ledger {shown}: created at schema version {newest}"),
        Some(v) if v == newest => format!("ledger {shown}: at schema version {newest} already"),
        Some(v) => format!("ledger {shown}: upgraded from schema version {v} to {newest}"),
    });
    Ok(Exit::Ok)
}

/// `sqlite:PATH` or a `postgres://` URL.
fn location(flag: &str, s: &str, password_env: Option<&String>) -> Result<Location> {
    if Location::is_postgres_url(s) {
        let target = PgTarget {
            url: s.to_owned(),
            password_env: password_env.cloned(),
        };
        target.check().map_err(|e| usage(format!("{flag}: {e}")))?;
        return Ok(Location::Postgres(target));
    }
    match s.strip_prefix("sqlite:") {
        Some(path) if !path.is_empty() => Ok(Location::Sqlite(PathBuf::from(path))),
        _ => Err(usage(format!(
            "{flag} `{s}`: expected sqlite:PATH or postgres://user@host/database"
        ))),
    }
}

fn copy_ledger(ctx: &Ctx, a: &CopyArgs) -> Result<Exit> {
    let from = location("--from", &a.from, a.password_env.as_ref())?;
    let to = location("--to", &a.to, a.password_env.as_ref())?;
    let copied = copy(&from, &to).with_context(|| format!("cannot copy {from} to {to}"))?;
    let counts: Vec<String> = (copied.tables.iter())
        .map(|(table, n)| format!("{table} {n}"))
        .collect();
    ctx.console
        .summary(&format!("copied {from} to {to}: {}", counts.join(", ")));
    Ok(Exit::Ok)
}
