//! `briefing check`: validate everything, render every newsletter's edition,
//! print all diagnostics and a one-line summary.

use anyhow::Result;

use super::{Ctx, parse_at};
use crate::cli::CheckArgs;
use crate::content::Scope;
use crate::delivery::plan::check_audiences;
use crate::exit::Exit;
use crate::messages::plural;
use crate::pipeline::{Checked, Pipeline};

pub fn run(ctx: &Ctx, args: &CheckArgs) -> Result<Exit> {
    let newsroom = ctx.newsroom()?;
    let at = parse_at("--at", args.at.as_deref(), &newsroom.config)?;
    let pipeline = Pipeline::open(newsroom, &Scope::All);
    let mut report = pipeline.check(at);
    // What composing each recipient's message would refuse, found now.
    report.diagnostics.extend(check_audiences(&pipeline, at));
    report.diagnostics.sort_dedup();
    let diags = &report.diagnostics;
    ctx.console.diagnostics(diags);
    for (id, checked) in &report.newsletters {
        let why = match checked {
            Checked::Rendered { .. } | Checked::Failed { .. } => continue,
            Checked::NoSlot => "its schedule never fired before this time".to_string(),
            Checked::TooFew {
                edition,
                items,
                min_items,
            } => format!(
                "{edition} has {} (min_items is {min_items})",
                plural(*items, "item")
            ),
        };
        ctx.console.summary(&format!("not rendered: {id}: {why}"));
    }
    let (errors, warnings) = (diags.errors(), diags.warnings());
    ctx.console.summary(&format!(
        "checked {} and {} ({} rendered): {}, {}",
        plural(report.files, "item"),
        plural(pipeline.config().newsletters.len(), "newsletter"),
        report.rendered(),
        plural(errors, "error"),
        plural(warnings, "warning"),
    ));
    Ok(Exit::failed_if(
        errors > 0 || (args.deny_warnings && warnings > 0),
    ))
}
