//! `briefing check`: validate everything, render every newsletter's edition,
//! print all diagnostics and a one-line summary.

use anyhow::Result;
use chrono::{DateTime, Utc};

use super::{Ctx, EXIT_ERROR, EXIT_OK, parse_at, plural, sample_subscriber};
use crate::cli::CheckArgs;
use crate::config::Newsroom;
use crate::content::{self, Scope};
use crate::diag::Diagnostics;
use crate::edition;
use crate::render::Renderer;
use crate::report::size_warnings;

/// What a check found.
pub struct CheckReport {
    pub diagnostics: Diagnostics,
    /// Item files found.
    pub files: usize,
    /// Editions rendered.
    pub rendered: usize,
}

/// Validates every item and template and renders each newsletter's edition
/// for `at` with the sample subscriber. The command and the benchmark share it.
pub fn validate(newsroom: &Newsroom, at: DateTime<Utc>) -> CheckReport {
    let cfg = &newsroom.config;
    let lib = content::load(newsroom, &Scope::All);
    let mut diags = Diagnostics::default();
    diags.extend(newsroom.warnings.iter().cloned());
    diags.extend(lib.diagnostics.0.iter().cloned());
    let mut rendered = 0;
    match Renderer::new(newsroom) {
        Err(ds) => diags.extend(ds),
        Ok(renderer) => {
            let subscriber = sample_subscriber(cfg);
            for n in &cfg.newsletters {
                let Some(slot) = edition::slot_for(n, at) else {
                    diags.push(
                        newsroom
                            .config_diag(
                                &["newsletters", &n.id, "schedule"],
                                "this schedule never fires",
                            )
                            .into_warning(),
                    );
                    continue;
                };
                let ed = edition::select(cfg, n, slot, &lib.items);
                if ed.item_count() == 0 {
                    tracing::debug!(newsletter = %n.id, edition = %ed.id, "no items in this edition; its templates were compiled but not rendered");
                    continue;
                }
                // Bodies never fail to render: only the edition's are needed.
                let bodies = renderer.bodies(ed.items().map(|p| p.item));
                match renderer.render(newsroom, &ed, &bodies, &subscriber) {
                    Ok(r) => {
                        rendered += 1;
                        diags.extend(size_warnings(&renderer, n, &r));
                    }
                    Err(d) => diags.push(d),
                }
            }
        }
    }
    diags.sort();
    CheckReport {
        diagnostics: diags,
        files: lib.files,
        rendered,
    }
}

pub fn run(ctx: &Ctx, args: &CheckArgs) -> Result<u8> {
    let newsroom = match ctx.newsroom() {
        Ok(n) => n,
        Err(code) => return Ok(code),
    };
    let at = parse_at(args.at.as_deref(), &newsroom.config)?;
    let report = validate(&newsroom, at);
    let diags = &report.diagnostics;
    ctx.report(diags);
    let (errors, warnings) = (diags.errors(), diags.warnings());
    ctx.summary(&format!(
        "checked {} and {} ({} rendered): {}, {}",
        plural(report.files, "item"),
        plural(newsroom.config.newsletters.len(), "newsletter"),
        report.rendered,
        plural(errors, "error"),
        plural(warnings, "warning"),
    ));
    Ok(if errors > 0 || (args.deny_warnings && warnings > 0) {
        EXIT_ERROR
    } else {
        EXIT_OK
    })
}
