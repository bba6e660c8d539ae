//! `briefing suppressions` and `briefing preferences`: what the ledger holds
//! about who must not be mailed and which sections people chose, as CSV or
//! JSON lines for the newsroom's CRM.

use anyhow::Result;

use super::{Ctx, csv, newsletter, parse_at};
use crate::cli::{ExportFormat, PreferencesArgs, SuppressionsArgs};
use crate::exit::Exit;
use crate::ledger::Ledger;

pub fn suppressions(ctx: &Ctx, args: &SuppressionsArgs) -> Result<Exit> {
    let newsroom = ctx.newsroom()?;
    let cfg = &newsroom.config;
    if let Some(id) = &args.newsletter {
        newsletter(cfg, id)?;
    }
    let since = match &args.since {
        Some(_) => Some(parse_at("--since", args.since.as_deref(), cfg)?),
        None => None,
    };
    let Some(ledger) = Ledger::open_existing(&cfg.ledger)? else {
        if args.format == ExportFormat::Csv {
            ctx.console.data("address,scope,reason,created_at,evidence");
        }
        return Ok(Exit::Ok);
    };
    let all = ledger.suppressions(since, args.newsletter.as_deref())?;
    if args.format == ExportFormat::Csv {
        ctx.console.data("address,scope,reason,created_at,evidence");
    }
    for s in &all {
        ctx.console.data(&match args.format {
            ExportFormat::Json => serde_json::to_string(s)?,
            ExportFormat::Csv => [
                csv(&s.address),
                csv(s.scope.as_str()),
                s.reason.as_str().to_owned(),
                s.created_at.to_rfc3339(),
                // The raw text of a DSN is for audits, not for a CRM.
                csv(&evidence_summary(&s.evidence)),
            ]
            .join(","),
        });
    }
    Ok(Exit::Ok)
}

/// The evidence without the raw message it may hold.
fn evidence_summary(v: &serde_json::Value) -> String {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("raw");
    }
    v.to_string()
}

pub fn preferences(ctx: &Ctx, args: &PreferencesArgs) -> Result<Exit> {
    let newsroom = ctx.newsroom()?;
    if let Some(id) = &args.newsletter {
        newsletter(&newsroom.config, id)?;
    }
    let records = match Ledger::open_existing(&newsroom.config.ledger)? {
        Some(l) => l.preferences(args.newsletter.as_deref())?,
        None => Vec::new(),
    };
    if args.format == ExportFormat::Csv {
        ctx.console
            .data("address,newsletter,regions,topics,updated_at");
    }
    for r in &records {
        ctx.console.data(&match args.format {
            ExportFormat::Json => serde_json::to_string(r)?,
            ExportFormat::Csv => [
                csv(&r.address),
                csv(&r.newsletter),
                csv(&r.preferences.regions.join(";")),
                csv(&r.preferences.topics.join(";")),
                r.updated_at.to_rfc3339(),
            ]
            .join(","),
        });
    }
    Ok(Exit::Ok)
}
