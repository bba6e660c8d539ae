//! `briefing build`: render editions into files, one folder per edition.

use std::fs;
use std::path::Path;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Ctx, EXIT_ERROR, EXIT_OK, EXIT_USAGE, at_arg, parse_at, sample_subscriber};
use crate::cli::BuildArgs;
use crate::config::{Config, Newsletter, Newsroom};
use crate::content::{self, Item, Scope};
use crate::diag::{Diagnostics, did_you_mean};
use crate::edition::{self, Edition, Slot};
use crate::render::{Rendered, Renderer};
use crate::report::{kb, size_warnings};
use crate::time::slot_stamp;

pub fn run(ctx: &Ctx, args: &BuildArgs) -> Result<u8> {
    let newsroom = match ctx.newsroom() {
        Ok(n) => n,
        Err(code) => return Ok(code),
    };
    let cfg = &newsroom.config;
    let at = parse_at(args.at.as_deref(), cfg)?;
    let wanted: Vec<&Newsletter> = if args.newsletters.is_empty() {
        cfg.newsletters.iter().collect()
    } else {
        let mut v = Vec::new();
        for id in &args.newsletters {
            match cfg.newsletter(id) {
                Some(n) => v.push(n),
                None => {
                    let ids = cfg.newsletters.iter().map(|n| n.id.as_str());
                    let hint = did_you_mean(id, ids.clone())
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    eprintln!(
                        "error: no newsletter `{id}` in {}{hint}; configured: {}",
                        ctx.config.display(),
                        ids.collect::<Vec<_>>().join(", ")
                    );
                    return Ok(EXIT_USAGE);
                }
            }
        }
        v
    };

    let slots: Vec<(&Newsletter, Option<Slot>)> = wanted
        .iter()
        .map(|n| (*n, edition::slot_for(n, at)))
        .collect();
    let scope = Scope::Windows(
        slots
            .iter()
            .filter_map(|(_, s)| s.map(|s| (s.start, s.at)))
            .collect(),
    );
    let lib = content::load(&newsroom, &scope);
    tracing::debug!(files = lib.files, parsed = lib.parsed, "loaded items");
    let mut diags = Diagnostics::default();
    diags.extend(lib.diagnostics.0.iter().cloned());
    let renderer = match Renderer::new(&newsroom) {
        Ok(r) => r,
        Err(ds) => {
            diags.extend(ds);
            ctx.report(&diags);
            return Ok(EXIT_ERROR);
        }
    };
    let editions: Vec<(&Newsletter, Option<Edition>)> = slots
        .iter()
        .map(|(n, s)| (*n, s.map(|s| edition::select(cfg, n, s, &lib.items))))
        .collect();
    let bodies = renderer.bodies(
        editions
            .iter()
            .filter_map(|(_, e)| e.as_ref())
            .flat_map(|e| e.items().map(|p| p.item)),
    );
    let subscriber = sample_subscriber(cfg);

    // Loaded in full only if some edition comes out short and we look for a better --at.
    let mut everything: Option<Vec<Item>> = None;
    let mut failed = false;
    let mut lines = Vec::new();
    for (n, ed) in &editions {
        let Some(ed) = ed else {
            lines.push(format!(
                "{:<12} no slot: its schedule `{}` never fired before {}",
                n.id,
                n.schedule
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                at_arg(at, cfg)
            ));
            continue;
        };
        let local = ed
            .slot
            .at
            .with_timezone(&n.timezone)
            .format("%Y-%m-%d %H:%M %Z");
        if !ed.is_sendable() {
            let all = everything.get_or_insert_with(|| content::load(&newsroom, &Scope::All).items);
            let hint = match nearest_at(cfg, n, at, all) {
                Some(t) => format!("; nearest edition with items: --at {}", at_arg(t, cfg)),
                None => "; no item in content/ qualifies for this newsletter".into(),
            };
            lines.push(format!(
                "{:<12} {local}  {} (min_items is {}): no edition{hint}",
                n.id,
                super::plural(ed.item_count(), "item"),
                n.min_items
            ));
            continue;
        }
        match renderer.render(&newsroom, ed, &bodies, &subscriber) {
            Ok(r) => {
                diags.extend(size_warnings(&renderer, n, &r));
                let dir = args
                    .out
                    .join(&n.id)
                    .join(slot_stamp(ed.slot.at, n.timezone));
                write_edition(&dir, &newsroom, ed, &r)
                    .with_context(|| format!("cannot write {}", dir.display()))?;
                lines.push(format!(
                    "{:<12} {local}  {:>2} items  {:>8}  {:>4} words  {}/",
                    n.id,
                    ed.item_count(),
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
    ctx.report(&diags);
    for l in &lines {
        ctx.summary(l);
    }
    Ok(if failed || diags.errors() > 0 {
        EXIT_ERROR
    } else {
        EXIT_OK
    })
}

/// The `--at` nearest to `at` whose edition of `n` would carry enough items.
fn nearest_at(
    cfg: &Config,
    n: &Newsletter,
    at: DateTime<Utc>,
    items: &[Item],
) -> Option<DateTime<Utc>> {
    let mut dates: Vec<DateTime<Utc>> = items
        .iter()
        .filter(|i| {
            !i.draft
                && i.newsletters
                    .as_ref()
                    .map_or_else(|| n.carries(&i.regions, &i.topics), |l| l.contains(&n.id))
        })
        .map(|i| i.date)
        .collect();
    dates.sort_by_key(|d| (*d - at).abs());
    dates.into_iter().take(200).find_map(|d| {
        // The slot that carries an item dated `d` is the first one at or after it.
        let t = match &n.schedule {
            Some(s) => s.next_slot(n.timezone, d - Duration::seconds(1))?,
            None => d,
        };
        let slot = edition::slot_for(n, t)?;
        edition::select(cfg, n, slot, items)
            .is_sendable()
            .then_some(t)
    })
}

fn write_edition(dir: &Path, newsroom: &Newsroom, ed: &Edition, r: &Rendered) -> Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join("email.html"), &r.html)?;
    fs::write(dir.join("email.txt"), &r.text)?;
    let mut hash = Sha256::new();
    hash.update(r.html.as_bytes());
    hash.update([0]);
    hash.update(r.text.as_bytes());
    let n = ed.newsletter;
    let meta = json!({
        "newsletter": n.id,
        "edition": ed.id,
        "slot": ed.slot.at.with_timezone(&n.timezone).to_rfc3339(),
        "slot_utc": ed.slot.at.to_rfc3339(),
        "window_start": ed.slot.start.with_timezone(&n.timezone).to_rfc3339(),
        "timezone": n.timezone.name(),
        "subject": r.subject,
        "preheader": r.preheader,
        "items": ed.items().map(|p| p.item.id.as_str()).collect::<Vec<_>>(),
        "sections": ed.sections.iter().map(|s| json!({"id": s.id(), "title": s.title(), "items": s.items.iter().map(|p| p.item.id.as_str()).collect::<Vec<_>>()})).collect::<Vec<_>>(),
        "sizes": {"html_bytes": r.html.len(), "text_bytes": r.text.len()},
        "word_count": r.word_count,
        "reading_minutes": r.reading_minutes,
        "content_hash": format!("sha256:{}", hex::encode(hash.finalize())),
        "config": newsroom.config_path.display().to_string(),
    });
    fs::write(
        dir.join("edition.json"),
        serde_json::to_string_pretty(&meta)? + "\n",
    )?;
    Ok(())
}
