//! `briefing status`: what the send ledger knows, edition by edition, and
//! what came back, newsletter by newsletter.

use anyhow::{Context as _, Result};

use super::Ctx;
use crate::cli::StatusArgs;
use crate::delivery::status::{Query, report};
use crate::diag::did_you_mean;
use crate::exit::{Exit, usage};
use crate::ledger::Ledger;

pub fn run(ctx: &Ctx, args: &StatusArgs) -> Result<Exit> {
    let newsroom = ctx.newsroom()?;
    let path = &newsroom.config.ledger;
    let Some(ledger) =
        Ledger::open_existing(path).with_context(|| format!("cannot open the ledger {path}"))?
    else {
        let shown = path.shown(&newsroom.root);
        ctx.console
            .summary(&format!("no ledger yet at {shown}: nothing has been sent"));
        return Ok(Exit::Ok);
    };
    let mut editions = ledger.editions(args.newsletter.as_deref())?;
    if let Some(id) = &args.edition {
        let hint = did_you_mean(id, editions.iter().map(|e| e.id.as_str()))
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        editions.retain(|e| &e.id == id);
        if editions.is_empty() {
            return Err(usage(format!(
                "no edition `{id}` in the ledger{hint}; `briefing status` lists them"
            )));
        }
    }
    let q = Query {
        newsletter: args.newsletter.as_deref(),
        edition: args.edition.as_deref(),
        failed: args.failed,
    };
    ctx.console.show(report(&ledger, &editions, &q)?);
    Ok(Exit::Ok)
}
