//! `briefing send`: send one newsletter's edition, resuming it if it was
//! started before; `--dry-run` shows the plan, `--to` sends test copies.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, Result, anyhow};
use chrono::{DateTime, Utc};

use super::{Ctx, EXIT_ERROR, EXIT_OK, EXIT_USAGE, at_arg, parse_at, plural};
use crate::cli::SendArgs;
use crate::config::{Newsletter, Newsroom};
use crate::content::{self, Scope};
use crate::delivery::{self, PlanStats, RunResult};
use crate::diag::{Diagnostics, did_you_mean};
use crate::edition::{self, Slot};
use crate::ledger::{EditionState, EditionStub, Ledger};
use crate::render::Renderer;
use crate::time::slot_stamp;

/// Some recipients are deferred to the next run, or another sender holds
/// the edition (EX_TEMPFAIL).
pub const EXIT_TEMPFAIL: u8 = 75;

/// What sending one edition came to.
#[derive(Debug)]
pub enum Outcome {
    /// Delivered (some may be deferred or failed).
    Sent {
        run: RunResult,
        stats: PlanStats,
        resumed: bool,
    },
    /// Complete in the ledger already: nothing to do.
    AlreadyComplete,
    /// Its slot is older than `max_delay` and it was never started: recorded
    /// as missed now.
    Missed { late_by: chrono::Duration },
    /// Missed or skipped earlier; nothing to do.
    Closed(EditionState),
    /// Fewer than `min_items` items: recorded as skipped.
    Skipped { items: usize },
    /// Another sender is working on it.
    Busy(String),
    /// `--dry-run`: nothing sent.
    Planned,
    /// `--to`: test copies sent, not recorded.
    Tested { sent: u64, failed: u64 },
}

impl Outcome {
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Sent { run, .. } if run.stopped.is_some() || run.progress.failed > 0 => {
                EXIT_ERROR
            }
            Outcome::Sent { run, .. }
                if run.progress.deferred > 0 || (run.unsent > 0 && !run.limited) =>
            {
                EXIT_TEMPFAIL
            }
            Outcome::Missed { .. } => EXIT_ERROR,
            Outcome::Busy(_) => EXIT_TEMPFAIL,
            Outcome::Tested { failed, .. } if *failed > 0 => EXIT_ERROR,
            _ => EXIT_OK,
        }
    }
}

/// How to send, beyond which edition.
#[derive(Debug, Default, Clone)]
pub struct Options {
    pub dry_run: bool,
    pub to: Vec<String>,
    pub limit: Option<usize>,
    /// Set by a signal handler: finish the messages in flight, then stop.
    pub stop: Option<Arc<AtomicBool>>,
}

pub fn run(ctx: &Ctx, args: &SendArgs) -> Result<u8> {
    let newsroom = match ctx.newsroom() {
        Ok(n) => n,
        Err(code) => return Ok(code),
    };
    let cfg = &newsroom.config;
    if args.due {
        if args.newsletter.is_some() || args.at.is_some() || !args.to.is_empty() {
            eprintln!(
                "error: --due sends every newsletter that is due; it does not combine with --newsletter, --at or --to"
            );
            return Ok(EXIT_USAGE);
        }
        let now = parse_at(args.now.as_deref(), cfg)?;
        let opts = Options {
            dry_run: args.dry_run,
            to: Vec::new(),
            limit: args.limit,
            stop: None,
        };
        return super::due::run_due(ctx, &newsroom, now, &opts);
    }
    let Some(id) = &args.newsletter else {
        eprintln!(
            "error: say which newsletter to send with --newsletter ID, or send every due edition with --due"
        );
        return Ok(EXIT_USAGE);
    };
    let Some(n) = cfg.newsletter(id) else {
        let ids = cfg.newsletters.iter().map(|n| n.id.as_str());
        let hint = did_you_mean(id, ids.clone())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        eprintln!(
            "error: no newsletter `{id}`{hint}; configured: {}",
            ids.collect::<Vec<_>>().join(", ")
        );
        return Ok(EXIT_USAGE);
    };
    let now = parse_at(args.now.as_deref(), cfg)?;
    let at = match &args.at {
        Some(_) => parse_at(args.at.as_deref(), cfg)?,
        None => now,
    };
    let slot = edition::slot_for(n, at).ok_or_else(|| {
        anyhow!(
            "newsletter `{}`: its schedule never fired before {}",
            n.id,
            at_arg(at, cfg)
        )
    })?;
    let opts = Options {
        dry_run: args.dry_run,
        to: args.to.clone(),
        limit: args.limit,
        stop: None,
    };
    let outcome = send_edition(ctx, &newsroom, n, slot, now, &opts)?;
    Ok(outcome.exit_code())
}

/// Sends (or plans, or test-sends) the edition of `n` at `slot`, as of `now`.
pub fn send_edition(
    ctx: &Ctx,
    newsroom: &Newsroom,
    n: &Newsletter,
    slot: Slot,
    now: DateTime<Utc>,
    opts: &Options,
) -> Result<Outcome> {
    let cfg = &newsroom.config;
    let edition_id = format!("{}-{}", n.id, slot_stamp(slot.at, n.timezone));
    let local = slot
        .at
        .with_timezone(&n.timezone)
        .format("%Y-%m-%d %H:%M %Z");
    let mut ledger = Ledger::open(&cfg.ledger)
        .with_context(|| format!("cannot open the ledger {}", cfg.ledger.display()))?;
    let stored = ledger.edition(&edition_id)?;

    if opts.to.is_empty() {
        match stored.as_ref().map(|s| s.state) {
            Some(EditionState::Complete) => {
                let c = ledger.counts(&edition_id)?;
                ctx.summary(&format!(
                    "{edition_id}: already complete (sent {}, failed {}); nothing to do",
                    c.sent, c.failed
                ));
                return Ok(Outcome::AlreadyComplete);
            }
            Some(state @ (EditionState::Missed | EditionState::Skipped)) => {
                ctx.summary(&format!("{edition_id}: {state} earlier; nothing to do"));
                return Ok(Outcome::Closed(state));
            }
            Some(_) if opts.dry_run => {
                let c = ledger.counts(&edition_id)?;
                let stats = ledger
                    .stats(&edition_id)?
                    .map(|v| PlanStats::from_json(&v))
                    .unwrap_or_default();
                ctx.summary(&format!("{edition_id}: frozen earlier; {} sent, {} pending, {} deferred, {} failed (suppressed {}, invalid {}, empty {})", c.sent, c.pending, c.deferred, c.failed, stats.suppressed, stats.invalid, stats.empty));
                return Ok(Outcome::Planned);
            }
            Some(_) => {
                delivery::preflight(newsroom, n, slot.at)?;
                return resume(ctx, newsroom, n, &edition_id, ledger, opts);
            }
            None => {}
        }
        let late_by = now - slot.at;
        if late_by > n.max_delay {
            let reason = format!(
                "slot {local} was {} late when the sender ran, max_delay is {}",
                human(late_by),
                human(n.max_delay)
            );
            if !opts.dry_run {
                ledger.record_missed(
                    &EditionStub {
                        id: edition_id.clone(),
                        newsletter: n.id.clone(),
                        slot_utc: slot.at,
                        zone: n.timezone.name().into(),
                    },
                    &reason,
                )?;
            }
            tracing::error!(edition = %edition_id, "missed: {reason}; it will not be sent late");
            ctx.summary(&format!("{edition_id}: missed: {reason}; not sent"));
            return Ok(Outcome::Missed { late_by });
        }
    }

    // Render the edition and plan its audience.
    let lib = content::load(newsroom, &Scope::Windows(vec![(slot.start, slot.at)]));
    let mut diags = Diagnostics::default();
    diags.extend(lib.diagnostics.0.iter().cloned());
    let renderer = Renderer::new(newsroom).map_err(|ds| {
        diags.extend(ds);
        ctx.report(&diags);
        anyhow!("the templates have errors")
    })?;
    let ed = edition::select(cfg, n, slot, &lib.items);
    if !ed.is_sendable() {
        if !opts.dry_run && opts.to.is_empty() {
            ledger.record_skipped(
                &EditionStub {
                    id: edition_id.clone(),
                    newsletter: n.id.clone(),
                    slot_utc: slot.at,
                    zone: n.timezone.name().into(),
                },
                &format!(
                    "{} (min_items {})",
                    plural(ed.item_count(), "item"),
                    n.min_items
                ),
            )?;
        }
        ctx.report(&diags);
        ctx.summary(&format!(
            "{edition_id}: skipped: {} (min_items is {})",
            plural(ed.item_count(), "item"),
            n.min_items
        ));
        return Ok(Outcome::Skipped {
            items: ed.item_count(),
        });
    }
    let bodies = renderer.bodies(ed.items().map(|p| p.item));
    let plan = delivery::plan(newsroom, &renderer, &ed, &bodies)?;
    diags.extend(plan.warnings.iter().cloned());
    ctx.report(&diags);
    let s = &plan.stats;

    if !opts.to.is_empty() {
        let p = delivery::send_test_copies(newsroom, n, &plan, &opts.to)?;
        ctx.summary(&format!(
            "{edition_id}: test copies: {} sent, {} failed (not recorded)",
            p.sent,
            p.failed + p.deferred
        ));
        return Ok(Outcome::Tested {
            sent: p.sent,
            failed: p.failed + p.deferred,
        });
    }
    if opts.dry_run {
        ctx.summary(&format!(
            "{edition_id} ({local}): \"{}\"",
            plan.frozen.subject
        ));
        ctx.summary(&format!(
            "  {} would get it ({} listed, {} suppressed, {} invalid rows, {} with nothing in this edition), {}",
            plural(s.recipients, "recipient"), s.listed, s.suppressed, s.invalid, s.empty, plural(s.variants, "rendering")
        ));
        for sec in &plan.sections {
            ctx.summary(&format!(
                "  {:<28} {:>3} items  {:>6} readers",
                if sec.title.is_empty() {
                    "(all)"
                } else {
                    &sec.title
                },
                sec.items,
                sec.readers
            ));
        }
        return Ok(Outcome::Planned);
    }

    delivery::preflight(newsroom, n, slot.at)?;
    let fresh = ledger.freeze_edition(&plan.frozen, &plan.recipients)?;
    if fresh {
        ledger.set_stats(&edition_id, &s.to_json())?;
        tracing::info!(edition = %edition_id, recipients = s.recipients, variants = s.variants, "edition frozen");
    }
    resume(ctx, newsroom, n, &edition_id, ledger, opts)
}

/// Delivers what is pending of a frozen edition, under its lease.
pub fn resume(
    ctx: &Ctx,
    newsroom: &Newsroom,
    n: &Newsletter,
    edition_id: &str,
    mut ledger: Ledger,
    opts: &Options,
) -> Result<Outcome> {
    let holder = delivery::holder();
    if let Err(other) = delivery::lease(&mut ledger, edition_id, &holder)? {
        let msg = format!(
            "{edition_id}: another sender is working on this edition: {other}; not sending"
        );
        tracing::warn!("{msg}");
        ctx.summary(&msg);
        return Ok(Outcome::Busy(other));
    }
    let stored = ledger
        .edition(edition_id)?
        .ok_or_else(|| anyhow!("edition {edition_id} vanished from the ledger"))?;
    let resumed = stored.state != EditionState::Frozen;
    let stats = ledger
        .stats(edition_id)?
        .map(|v| PlanStats::from_json(&v))
        .unwrap_or_default();
    ledger.mark_sending(edition_id)?;
    let result = delivery::deliver_frozen(
        newsroom,
        n,
        stored,
        ledger,
        &holder,
        opts.limit,
        opts.stop.clone(),
    );
    // Whatever happened, let the next sender in.
    if let Ok(mut l) = Ledger::open(&newsroom.config.ledger) {
        let _ = l.release_lease(edition_id, &holder);
    }
    let run = result?;
    let p = &run.progress;
    let secs = run.elapsed.as_secs_f64();
    let mut line = format!(
        "{edition_id}: sent {}, deferred {}, failed {}, suppressed {}, invalid {}, empty {} in {:.1} s ({:.0} msg/s)",
        p.sent,
        p.deferred,
        p.failed,
        stats.suppressed,
        stats.invalid,
        stats.empty,
        secs,
        p.done() as f64 / secs.max(0.001)
    );
    if resumed {
        line.push_str(" [resumed]");
    }
    if run.limited {
        line.push_str(&format!("; {} left pending (--limit)", run.unsent));
    } else if run.unsent > 0 {
        line.push_str(&format!("; {} deferred to the next run", run.unsent));
    }
    ctx.summary(&line);
    if let Some(why) = &run.stopped {
        tracing::error!(edition = %edition_id, "sending stopped: {why}");
        ctx.summary(&format!("{edition_id}: sending stopped: {why}"));
    }
    Ok(Outcome::Sent {
        run,
        stats,
        resumed,
    })
}

/// `2h 5m`, `45m`, `3d 2h`.
pub fn human(d: chrono::Duration) -> String {
    let m = d.num_minutes();
    match (m / 1440, (m % 1440) / 60, m % 60) {
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}
