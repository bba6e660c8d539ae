//! `briefing schedule`: the coming slots of every newsletter, in local time
//! and UTC, with what each edition would hold right now.

use anyhow::Result;
use chrono::Duration;

use super::{Ctx, parse_at};
use crate::cli::ScheduleArgs;
use crate::content::Scope;
use crate::edition;
use crate::exit::Exit;
use crate::ledger::Ledger;
use crate::messages::plural;
use crate::pipeline::Pipeline;

pub fn run(ctx: &Ctx, args: &ScheduleArgs) -> Result<Exit> {
    let newsroom = ctx.newsroom()?;
    let now = parse_at("--now", args.now.as_deref(), &newsroom.config)?;
    let until = now + Duration::days(i64::from(args.days));
    // Every slot of every newsletter in the period, to load only the items they need.
    let slots_of = |n: &crate::config::Newsletter| {
        (n.schedule.as_ref()).map(|s| s.slots_between(n.timezone, now, until))
    };
    let windows = (newsroom.config.newsletters.iter())
        .flat_map(|n| {
            let slots = slots_of(n).unwrap_or_default();
            slots
                .into_iter()
                .map(|at| (edition::window_start(n, at), at))
        })
        .collect();
    let pipeline = Pipeline::open(newsroom, &Scope::Windows(windows));
    let cfg = pipeline.config();
    let plans: Vec<_> = cfg.newsletters.iter().map(|n| (n, slots_of(n))).collect();
    // The ledger is read only if it exists: `schedule` never creates it.
    let ledger = Ledger::open_existing(&cfg.ledger)?;

    let mut out = Vec::new();
    for (n, slots) in &plans {
        let Some(schedule) = &n.schedule else {
            out.push(format!(
                "{} ({}): no schedule; sent only with `briefing send --newsletter {}`",
                n.id, n.name, n.id
            ));
            out.push(String::new());
            continue;
        };
        out.push(format!(
            "{} ({}): \"{}\" in {}",
            n.id,
            n.name,
            schedule,
            n.timezone.name()
        ));
        let slots = slots.as_deref().unwrap_or_default();
        if schedule.next_slot(n.timezone, now).is_none() {
            out.push("  warning: this schedule never fires".into());
        } else if slots.is_empty() {
            let next = schedule
                .next_slot(n.timezone, now)
                .map(|t| {
                    t.with_timezone(&n.timezone)
                        .format("%a %Y-%m-%d %H:%M %Z")
                        .to_string()
                })
                .unwrap_or_default();
            out.push(format!(
                "  no slot in the next {}; the next one is {next}",
                plural(args.days as usize, "day")
            ));
        }
        if slots.windows(2).any(|w| w[1] - w[0] < Duration::minutes(1)) {
            out.push("  warning: this schedule fires more than once a minute".into());
        }
        let last = match &ledger {
            Some(l) => l
                .editions(Some(&n.id))?
                .into_iter()
                .max_by_key(|e| e.slot_utc),
            None => None,
        };
        match last {
            Some(e) => out.push(format!(
                "  last edition: {} {} (sent {}, pending {}, deferred {}, failed {})",
                e.id, e.state, e.counts.sent, e.counts.pending, e.counts.deferred, e.counts.failed
            )),
            None => out.push("  last edition: none in the ledger yet".into()),
        }
        for at in slots {
            let slot = edition::Slot {
                at: *at,
                start: edition::window_start(n, *at),
            };
            let ed = pipeline.edition_at(n, slot);
            let count = ed.item_count();
            let note = if ed.is_sendable() {
                String::new()
            } else {
                format!(" (below min_items {}: would be skipped)", n.min_items)
            };
            out.push(format!(
                "  {}   {}   {}{note}",
                at.with_timezone(&n.timezone).format("%a %Y-%m-%d %H:%M %Z"),
                at.format("%Y-%m-%d %H:%M UTC"),
                plural(count, "item"),
            ));
        }
        out.push(String::new());
    }
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    for l in &out {
        ctx.console.summary(l);
    }
    ctx.console.diagnostics(&pipeline.diagnostics());
    Ok(Exit::Ok)
}
