//! `briefing status`: what the send ledger knows, edition by edition.

use anyhow::{Context as _, Result};
use chrono_tz::Tz;

use super::Ctx;
use crate::cli::StatusArgs;
use crate::delivery::PlanStats;
use crate::diag::did_you_mean;
use crate::exit::{Exit, usage};
use crate::ledger::{DeliveryState, Ledger};

pub fn run(ctx: &Ctx, args: &StatusArgs) -> Result<Exit> {
    let newsroom = ctx.newsroom()?;
    let state = &newsroom.config.ledger;
    if !state.exists() {
        ctx.console.summary(&format!(
            "no ledger yet at {}: nothing has been sent",
            state.display()
        ));
        return Ok(Exit::Ok);
    }
    let ledger = Ledger::open(state)
        .with_context(|| format!("cannot open the ledger {}", state.display()))?;
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
    if editions.is_empty() {
        ctx.console.summary("no editions in the ledger");
    } else {
        ctx.console.summary(&format!(
            "{:<26} {:<9} {:<22} {:>6} {:>8} {:>8} {:>6}  subject / reason",
            "edition", "state", "slot", "sent", "pending", "deferred", "failed"
        ));
    }
    for e in &editions {
        let tz: Tz = e.zone.parse().unwrap_or(Tz::UTC);
        let c = e.counts;
        let note = e.subject.as_deref().or(e.reason.as_deref()).unwrap_or("");
        ctx.console.summary(&format!(
            "{:<26} {:<9} {:<22} {:>6} {:>8} {:>8} {:>6}  {note}",
            e.id,
            e.state.to_string(),
            e.slot_utc
                .with_timezone(&tz)
                .format("%Y-%m-%d %H:%M %Z")
                .to_string(),
            c.sent,
            c.pending,
            c.deferred,
            c.failed
        ));
        if args.edition.is_some() {
            if let Some(stats) = ledger.stats(&e.id)? {
                let s = PlanStats::from_json(&stats);
                ctx.console.summary(&format!("  planned: {} recipients of {} listed; {} suppressed, {} invalid rows, {} with nothing in this edition, {} renderings", s.recipients, s.listed, s.suppressed, s.invalid, s.empty, s.variants));
            }
            if let Some(done) = e.completed_at {
                ctx.console.summary(&format!(
                    "  completed {}",
                    done.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z")
                ));
            }
        }
        if args.failed && c.failed + c.deferred == 0 {
            ctx.console.summary("  no failed or deferred recipients");
        } else if args.failed {
            // Deferred ones too: why they wait is what an operator asks next.
            for (state, n) in [
                (DeliveryState::Failed, c.failed),
                (DeliveryState::Deferred, c.deferred),
            ] {
                if n == 0 {
                    continue;
                }
                for (email, reply) in ledger.replies(&e.id, state)? {
                    ctx.console.summary(&format!("  {state}: {email}: {reply}"));
                }
            }
        }
    }
    Ok(Exit::Ok)
}
