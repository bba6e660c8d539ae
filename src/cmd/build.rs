//! `briefing build`: render editions into files, one folder per edition.

use anyhow::{Context as _, Result};

use super::{Ctx, at_arg, newsletter, parse_at};
use crate::cli::BuildArgs;
use crate::config::Newsletter;
use crate::content::{self, Item, Scope};
use crate::edition::nearest_sendable;
use crate::exit::Exit;
use crate::messages::{kb, plural};
use crate::pipeline::Pipeline;
use crate::render::SubscriberCtx;
use crate::render::files::write_edition;
use crate::time::slot_stamp;

pub fn run(ctx: &Ctx, args: &BuildArgs) -> Result<Exit> {
    let newsroom = ctx.newsroom()?;
    let at = parse_at("--at", args.at.as_deref(), &newsroom.config)?;
    let wanted: Vec<Newsletter> = if args.newsletters.is_empty() {
        newsroom.config.newsletters.clone()
    } else {
        let picked: Result<Vec<&Newsletter>> = (args.newsletters.iter())
            .map(|id| newsletter(&newsroom.config, id))
            .collect();
        picked?.into_iter().cloned().collect()
    };
    let pipeline = Pipeline::open(newsroom, &Pipeline::scope_at(&wanted, at));
    let (newsroom, cfg) = (pipeline.newsroom(), pipeline.config());
    let mut diags = pipeline.diagnostics();
    if pipeline.renderer().is_none() {
        ctx.console.diagnostics(&diags);
        return Ok(Exit::Failed);
    }
    // Loaded in full only if some edition comes out short and we look for a better --at.
    let mut everything: Option<Vec<Item>> = None;
    let mut failed = false;
    let mut lines = Vec::new();
    for n in &wanted {
        let Some(ed) = pipeline.edition(n, at) else {
            let schedule = n.schedule.as_ref().map(|s| s.to_string());
            lines.push(format!(
                "{:<12} no slot: its schedule `{}` never fired before {}",
                n.id,
                schedule.unwrap_or_default(),
                at_arg(at, cfg)
            ));
            continue;
        };
        let local = ed.slot.at.with_timezone(&n.timezone);
        let local = local.format("%Y-%m-%d %H:%M %Z");
        if !ed.is_sendable() {
            let all = everything.get_or_insert_with(|| content::load(newsroom, &Scope::All).items);
            let hint = match nearest_sendable(cfg, n, at, all) {
                Some(t) => format!("; nearest edition with items: --at {}", at_arg(t, cfg)),
                None => "; no item in content/ qualifies for this newsletter".into(),
            };
            lines.push(format!(
                "{:<12} {local}  {} (min_items is {}): no edition{hint}",
                n.id,
                plural(ed.item_count(), "item"),
                n.min_items
            ));
            continue;
        }
        match pipeline.render(&ed, &SubscriberCtx::sample_for(cfg, n)) {
            Ok(r) => {
                diags.extend(pipeline.size_warnings(n, &r));
                let dir = args
                    .out
                    .join(&n.id)
                    .join(slot_stamp(ed.slot.at, n.timezone));
                write_edition(&dir, newsroom, &ed, &r)
                    .with_context(|| format!("cannot write {}", dir.display()))?;
                lines.push(format!(
                    "{:<12} {local}  {:>8}  {:>8}  {:>4} words  {}/",
                    n.id,
                    plural(ed.item_count(), "item"),
                    kb(r.html.len()),
                    r.word_count,
                    dir.display()
                ));
            }
            Err(d) => {
                failed = true;
                diags.push(d);
            }
        }
    }
    diags.sort();
    ctx.console.diagnostics(&diags);
    for l in &lines {
        ctx.console.summary(l);
    }
    Ok(Exit::failed_if(failed || diags.errors() > 0))
}
