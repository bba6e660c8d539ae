//! `briefing send`: one newsletter's edition (`--newsletter`), or every
//! edition that is due (`--due`, what cron runs). `--dry-run` shows the
//! plan, `--to` sends test copies.

use anyhow::{Result, anyhow};

use super::{Ctx, at_arg, newsletter, parse_at};
use crate::cli::SendArgs;
use crate::content::Scope;
use crate::delivery::due::run_due;
use crate::delivery::{Options, send};
use crate::edition::slot_for;
use crate::exit::{Exit, usage};
use crate::pipeline::Pipeline;

pub fn run(ctx: &Ctx, args: &SendArgs) -> Result<Exit> {
    let newsroom = ctx.newsroom()?;
    let cfg = &newsroom.config;
    let now = parse_at("--now", args.now.as_deref(), cfg)?;
    let opts = Options {
        dry_run: args.dry_run,
        to: args.to.clone(),
        limit: args.limit,
        stop: None,
        verbose: ctx.console.verbose || ctx.console.is_json(),
    };
    if args.due {
        if args.newsletter.is_some() || args.at.is_some() || !args.to.is_empty() {
            return Err(usage(
                "--due sends every newsletter that is due; it does not combine with --newsletter, --at or --to",
            ));
        }
        let report = run_due(&newsroom, now, &opts);
        ctx.console.show(report.messages());
        return Ok(report.exit());
    }
    let Some(id) = &args.newsletter else {
        return Err(usage(
            "say which newsletter to send with --newsletter ID, or send every due edition with --due",
        ));
    };
    let n = newsletter(cfg, id)?.clone();
    let at = match &args.at {
        Some(_) => parse_at("--at", args.at.as_deref(), cfg)?,
        None => now,
    };
    let slot = slot_for(&n, at).ok_or_else(|| {
        let at = at_arg(at, cfg);
        anyhow!(
            "newsletter `{}`: its schedule never fired before {at}",
            n.id
        )
    })?;
    let scope = Scope::Windows(vec![(slot.start, slot.at)]);
    let pipeline = Pipeline::open(newsroom, &scope);
    let run = send(&pipeline, &n, slot, now, &opts)?;
    ctx.console.show(run.messages());
    Ok(run.outcome.exit())
}
