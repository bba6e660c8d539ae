//! `briefing subscribers`: the ledger's own subscribers (signed up on the
//! page, or imported) as CSV or JSON lines; `subscribers import` stores a
//! CSV list as subscribers who consented.

use anyhow::Result;

use super::{Ctx, csv, newsletter};
use crate::cli::{ExportFormat, ImportArgs, SubscribersAction, SubscribersArgs};
use crate::diag::{Diagnostic, display_path};
use crate::exit::Exit;
use crate::ledger::Ledger;
use crate::messages::plural;
use crate::signup::import::import;

const HEADER: &str = "email,newsletter,name,consent_at,source,regions,topics";

pub fn run(ctx: &Ctx, args: &SubscribersArgs) -> Result<Exit> {
    if let Some(SubscribersAction::Import(a)) = &args.action {
        return import_file(ctx, a);
    }
    let newsroom = ctx.newsroom()?;
    if let Some(id) = &args.newsletter {
        newsletter(&newsroom.config, id)?;
    }
    let (rows, chosen) = match Ledger::open_existing(&newsroom.config.ledger)? {
        Some(l) => (
            l.subscribers(args.newsletter.as_deref())?,
            l.preferences(args.newsletter.as_deref())?,
        ),
        None => (Vec::new(), Vec::new()),
    };
    if args.format == ExportFormat::Csv {
        ctx.console.data(HEADER);
    }
    let chosen: std::collections::HashMap<(&str, String), &crate::ledger::Preferences> = (chosen
        .iter())
    .map(|p| {
        (
            (p.newsletter.as_str(), p.address.to_ascii_lowercase()),
            &p.preferences,
        )
    })
    .collect();
    let everything = crate::ledger::Preferences::default();
    for s in &rows {
        let key = (s.newsletter.as_str(), s.email.to_ascii_lowercase());
        let p = chosen.get(&key).copied().unwrap_or(&everything);
        ctx.console.data(&match args.format {
            ExportFormat::Json => {
                let mut v = serde_json::to_value(s)?;
                v["regions"] = serde_json::to_value(&p.regions)?;
                v["topics"] = serde_json::to_value(&p.topics)?;
                v.to_string()
            }
            ExportFormat::Csv => [
                csv(&s.email),
                csv(&s.newsletter),
                csv(s.name.as_deref().unwrap_or_default()),
                s.consent_at.to_rfc3339(),
                csv(&s.source),
                csv(&p.regions.join(";")),
                csv(&p.topics.join(";")),
            ]
            .join(","),
        });
    }
    Ok(Exit::Ok)
}

fn import_file(ctx: &Ctx, a: &ImportArgs) -> Result<Exit> {
    let newsroom = ctx.newsroom()?;
    newsletter(&newsroom.config, &a.newsletter)?;
    let done = import(&newsroom, &a.file, &a.newsletter, a.skip_invalid)?;
    let shown = display_path(&newsroom.root, &a.file);
    for r in &done.rejected {
        let mut d = match done.stored {
            Some(_) => Diagnostic::warning(shown.clone(), format!("{} (row skipped)", r.reason)),
            None => Diagnostic::error(shown.clone(), r.reason.clone()),
        };
        d.line = r.line as usize;
        ctx.console.diagnostic(&d);
    }
    let Some(stored) = done.stored else {
        ctx.console.error(&format!(
            "{}: {} not valid, nothing imported; fix them, or pass --skip-invalid to import the rest",
            shown.display(),
            plural(done.rejected.len(), "row")
        ));
        return Ok(Exit::Failed);
    };
    let mut line = format!(
        "imported {} into `{}` ({} new, {} already there)",
        plural(stored.added + stored.renewed, "subscriber"),
        a.newsletter,
        stored.added,
        stored.renewed
    );
    if done.suppressed > 0 {
        line.push_str(&format!(
            "; {} of them suppressed, not to be mailed",
            plural(done.suppressed, "subscriber")
        ));
    }
    ctx.console.summary(&line);
    Ok(Exit::Ok)
}
