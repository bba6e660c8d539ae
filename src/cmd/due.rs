//! `briefing send --due` (what cron runs every few minutes) and `briefing
//! run` (the same on a timer, for newsrooms without cron). Each newsletter is
//! handled on its own: one failing never stops the others, and the exit code
//! is the worst outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration as StdDuration;

use anyhow::Result;
use chrono::{DateTime, Duration, Utc};

use super::send::{EXIT_TEMPFAIL, Options, Outcome, human, resume, send_edition};
use super::{Ctx, EXIT_ERROR, EXIT_OK};
use crate::config::{Newsletter, Newsroom};
use crate::edition::{Slot, window_start};
use crate::ledger::{EditionState, EditionStub, Ledger};
use crate::time::slot_stamp;

/// How far back `--due` looks for slots it has not seen, when the ledger
/// knows an earlier edition of the newsletter (cron was down, the machine
/// was off): each of them is recorded as missed.
const CATCH_UP: i64 = 7;

/// The worse of two exit codes: 1 (errors) over 75 (try again) over 0.
fn worst(a: u8, b: u8) -> u8 {
    let rank = |c: u8| match c {
        EXIT_OK => 0,
        EXIT_TEMPFAIL => 1,
        _ => 2,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// Sends everything due at `now`; returns the exit code.
pub fn run_due(ctx: &Ctx, newsroom: &Newsroom, now: DateTime<Utc>, opts: &Options) -> Result<u8> {
    let mut code = EXIT_OK;
    let mut acted = 0;
    for n in &newsroom.config.newsletters {
        if opts.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
            break;
        }
        if n.schedule.is_none() {
            continue;
        }
        match due_one(ctx, newsroom, n, now, opts) {
            Ok(outcomes) => {
                for o in &outcomes {
                    if !matches!(o, Outcome::AlreadyComplete | Outcome::Closed(_)) {
                        acted += 1;
                    }
                    code = worst(code, o.exit_code());
                }
            }
            Err(e) => {
                let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
                tracing::error!(newsletter = %n.id, "{}", chain.join(": "));
                ctx.summary(&format!("{}: error: {}", n.id, chain.join(": ")));
                acted += 1;
                code = worst(code, EXIT_ERROR);
            }
        }
    }
    if acted == 0 {
        ctx.summary(&format!(
            "nothing due at {}: every edition up to now is sent, skipped or missed",
            now.with_timezone(&newsroom.config.site.timezone)
                .format("%Y-%m-%d %H:%M %Z")
        ));
    }
    Ok(code)
}

/// One newsletter: finish what earlier runs left, then the slots due now.
fn due_one(
    ctx: &Ctx,
    newsroom: &Newsroom,
    n: &Newsletter,
    now: DateTime<Utc>,
    opts: &Options,
) -> Result<Vec<Outcome>> {
    let Some(schedule) = &n.schedule else {
        return Ok(Vec::new());
    };
    let state = &newsroom.config.ledger;
    let known = Ledger::open(state)?.editions(Some(&n.id))?;
    let mut outcomes = Vec::new();

    // Editions started earlier with recipients still pending or deferred.
    for e in known
        .iter()
        .filter(|e| matches!(e.state, EditionState::Frozen | EditionState::Sending))
    {
        if opts.dry_run {
            ctx.summary(&format!(
                "{}: {} recipients left from an earlier run would be retried",
                e.id,
                e.counts.unsent()
            ));
            continue;
        }
        outcomes.push(resume(ctx, newsroom, n, &e.id, Ledger::open(state)?, opts)?);
    }

    let Some(latest) = schedule.prev_slot(n.timezone, now) else {
        return Ok(outcomes);
    };
    // Slots since the newest edition the ledger knows (a gap means the
    // sender did not run); on a first run, only the latest slot.
    let mut slots = match known.iter().map(|e| e.slot_utc).max() {
        Some(newest) if newest < latest => {
            schedule.slots_between(n.timezone, newest.max(now - Duration::days(CATCH_UP)), now)
        }
        Some(_) => Vec::new(),
        None => vec![latest],
    };
    slots.retain(|s| !known.iter().any(|e| e.slot_utc == *s));
    for at in slots {
        let slot = Slot {
            at,
            start: window_start(n, at),
        };
        if known.is_empty() && now - at > n.max_delay {
            // The first run for this newsletter: its latest slot passed before
            // briefing ever sent it. Recorded so it is never sent late, but
            // nothing was missed on briefing's watch: not an error.
            let id = format!("{}-{}", n.id, slot_stamp(at, n.timezone));
            let reason = format!(
                "first run for this newsletter; its latest slot was {} ago (max_delay {})",
                human(now - at),
                human(n.max_delay)
            );
            if !opts.dry_run {
                Ledger::open(state)?.record_missed(
                    &EditionStub {
                        id: id.clone(),
                        newsletter: n.id.clone(),
                        slot_utc: at,
                        zone: n.timezone.name().into(),
                    },
                    &reason,
                )?;
            }
            ctx.summary(&format!(
                "{id}: not sent ({reason}); waiting for the next slot"
            ));
            outcomes.push(Outcome::Closed(EditionState::Missed));
            continue;
        }
        outcomes.push(send_edition(ctx, newsroom, n, slot, now, opts)?);
    }
    Ok(outcomes)
}

/// `briefing run`: sleep until the next slot, send what is due, repeat,
/// until SIGTERM or SIGINT.
pub fn run_forever(ctx: &Ctx) -> Result<u8> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    tracing::info!("briefing run: sending editions at their slots; SIGTERM or Ctrl-C to stop");
    while !stop.load(Ordering::SeqCst) {
        // Config and content are read afresh for every round.
        let next = match ctx.newsroom() {
            Ok(newsroom) => {
                let now = Utc::now();
                let opts = Options {
                    stop: Some(Arc::clone(&stop)),
                    ..Options::default()
                };
                if let Err(e) = run_due(ctx, &newsroom, now, &opts) {
                    tracing::error!("{e:#}");
                }
                next_slot(&newsroom, Utc::now())
            }
            Err(_) => {
                tracing::error!("config.yaml is invalid; trying again in a minute");
                Some(Utc::now() + Duration::minutes(1))
            }
        };
        let Some(next) = next else {
            tracing::warn!("no newsletter has a schedule that fires; nothing to wait for");
            break;
        };
        tracing::info!(next = %next.to_rfc3339(), "sleeping until the next slot");
        // Sleep in short steps: a signal or a clock change is noticed quickly.
        while !stop.load(Ordering::SeqCst) && Utc::now() < next {
            std::thread::sleep(StdDuration::from_millis(250));
        }
    }
    tracing::info!("briefing run: stopped");
    Ok(EXIT_OK)
}

fn next_slot(newsroom: &Newsroom, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    newsroom
        .config
        .newsletters
        .iter()
        .filter_map(|n| n.schedule.as_ref()?.next_slot(n.timezone, now))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_exit_code_wins() {
        assert_eq!(worst(EXIT_OK, EXIT_TEMPFAIL), EXIT_TEMPFAIL);
        assert_eq!(worst(EXIT_TEMPFAIL, EXIT_OK), EXIT_TEMPFAIL);
        assert_eq!(worst(EXIT_TEMPFAIL, EXIT_ERROR), EXIT_ERROR);
        assert_eq!(worst(EXIT_ERROR, EXIT_TEMPFAIL), EXIT_ERROR);
        assert_eq!(worst(EXIT_OK, EXIT_OK), EXIT_OK);
    }
}
