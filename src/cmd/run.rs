//! `briefing run`: a foreground scheduler for newsrooms without cron. Sleeps
//! until the next slot of any newsletter, does what `send --due` does, and
//! repeats until SIGTERM or SIGINT, when the messages in flight are finished
//! and recorded first.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration as StdDuration;

use anyhow::Result;
use chrono::{Duration, Utc};

use super::Ctx;
use crate::delivery::Options;
use crate::delivery::due::{next_slot, run_due};
use crate::exit::Exit;

pub fn run(ctx: &Ctx) -> Result<Exit> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    tracing::info!("briefing run: sending editions at their slots; SIGTERM or Ctrl-C to stop");
    while !stop.load(Ordering::SeqCst) {
        // Config and content are read afresh for every round.
        let next = match ctx.newsroom() {
            Ok(newsroom) => {
                let opts = Options {
                    stop: Some(Arc::clone(&stop)),
                    verbose: ctx.console.verbose || ctx.console.is_json(),
                    ..Options::default()
                };
                ctx.console
                    .show(run_due(&newsroom, Utc::now(), &opts).messages());
                let next = next_slot(&newsroom, Utc::now());
                if let Some(t) = next {
                    let local = t.with_timezone(&newsroom.config.site.timezone);
                    tracing::info!(next = %t.to_rfc3339(), "sleeping until the next slot, {}", local.format("%Y-%m-%d %H:%M %Z"));
                }
                next
            }
            Err(e) => {
                ctx.console
                    .error(&format!("{e:#}; trying again in a minute"));
                Some(Utc::now() + Duration::minutes(1))
            }
        };
        let Some(next) = next else {
            ctx.console
                .warn("no newsletter has a schedule that fires; nothing to wait for");
            break;
        };
        // Sleep in short steps: a signal or a clock change is noticed quickly.
        while !stop.load(Ordering::SeqCst) && Utc::now() < next {
            std::thread::sleep(StdDuration::from_millis(250));
        }
    }
    tracing::info!("briefing run: stopped");
    Ok(Exit::Ok)
}
