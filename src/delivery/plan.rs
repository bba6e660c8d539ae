//! Planning an edition's audience: who gets it (the newsletter's list minus
//! suppressed and invalid rows and subscribers whose preferences leave nothing),
//! and which rendering each recipient gets. An edition is rendered once per
//! *variant* (a preference set plus which fields are filled in), with
//! placeholders where each recipient's values go.

use std::collections::HashMap;

use anyhow::{Context as _, Result, anyhow};
use serde::{Deserialize, Serialize};

use super::compose::Composer;
use crate::audience;
use crate::config::Newsroom;
use crate::diag::{Diagnostic, DiagnosticError, display_path};
use crate::edition::Edition;
use crate::ledger::{FrozenEdition, Ledger, Preferences, Recipient, Rendering, WebRendering};
use crate::mail::variant::Placeholders;
use crate::pipeline::Pipeline;
use crate::render::SubscriberCtx;
use crate::render::context::SAMPLE_EMAIL;

/// What planning an edition counted (stored with the frozen edition).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlanStats {
    /// Valid, unique subscribers on the list.
    pub listed: usize,
    /// Subscribers who get a message.
    pub recipients: usize,
    pub suppressed: usize,
    /// Rows rejected by validation (bad address, duplicate…).
    pub invalid: usize,
    /// Subscribers whose preferences leave nothing in this edition.
    pub empty: usize,
    /// Distinct renderings.
    pub variants: usize,
    /// Subscribers from the ledger's sign-ups who are not on the list.
    pub signed_up: usize,
}

impl PlanStats {
    /// "120 listed", or "120 listed (3 from sign-ups)".
    pub fn listed_text(&self) -> String {
        match self.signed_up {
            0 => format!("{} listed", self.listed),
            n => format!("{} listed ({n} from sign-ups)", self.listed),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Counts stored by any version of briefing (missing ones are 0).
    pub fn from_json(v: &serde_json::Value) -> PlanStats {
        serde_json::from_value(v.clone()).unwrap_or_default()
    }
}

/// A section of the edition and how many recipients get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionPlan {
    pub id: String,
    pub title: String,
    pub items: usize,
    pub recipients: usize,
}

/// An edition ready to freeze: its renderings and its audience.
pub struct Plan {
    pub frozen: FrozenEdition,
    pub recipients: Vec<Recipient>,
    pub stats: PlanStats,
    pub sections: Vec<SectionPlan>,
    /// Rejected subscriber rows and suppression lines, as warnings.
    pub warnings: Vec<Diagnostic>,
}

fn rejected_diag(newsroom: &Newsroom, r: &audience::Rejected) -> Diagnostic {
    let mut d = Diagnostic::warning(
        display_path(&newsroom.root, &r.path),
        format!("{} (row skipped)", r.reason),
    );
    d.line = r.line as usize;
    d
}

/// Loads the newsletter's audience and renders one variant per distinct
/// preference set (and set of filled-in fields).
pub fn plan(pipeline: &Pipeline, edition: &Edition) -> Result<Plan> {
    let newsroom = pipeline.newsroom();
    let cfg = &newsroom.config;
    let n = edition.newsletter;
    let ledger = Ledger::open_existing(&cfg.ledger)?;
    let mut list = match &n.subscribers {
        Some(path) => audience::load_subscribers(path)
            .with_context(|| format!("cannot load the subscribers of `{}`", n.id))?,
        None => audience::AudienceList::default(),
    };
    // Where list problems are reported: the list, else the config naming
    // the newsletter.
    let list_path = n.subscribers.as_deref().unwrap_or(&newsroom.config_path);
    let mut warnings: Vec<Diagnostic> = Vec::new();
    let mut stats = PlanStats {
        invalid: list.rejected.len(),
        ..PlanStats::default()
    };
    // Those who signed up on the page (or were imported), after the list's
    // rows: a reader on both is the list's row, once.
    if let Some(l) = &ledger {
        let mut signed_up = l.subscribers(Some(&n.id))?;
        // Confirmed through a link the published development secret signed
        // (the outbox's fallback): anyone could have made it. Real mail
        // never goes to such a row.
        if cfg.delivery.transport == crate::config::TransportKind::Smtp {
            let before = signed_up.len();
            signed_up.retain(|s| s.evidence["development_secret"] != true);
            let left_out = before - signed_up.len();
            if left_out > 0 {
                warnings.push(Diagnostic::warning(
                    cfg.ledger.shown(&newsroom.root),
                    format!(
                        "newsletter `{}`: {left_out} sign-up(s) confirmed while the development secret signed links are left out (anyone could have forged them); they may sign up again",
                        n.id
                    ),
                ));
            }
        }
        stats.signed_up = list.add_signed_up(signed_up.into_iter().map(|s| audience::Subscriber {
            email: s.email,
            name: s.name,
            ..audience::Subscriber::default()
        }));
    }
    if list.subscribers.is_empty() && !n.allow_empty {
        let why = match (&n.subscribers, list.rejected.len()) {
            (None, _) => {
                return Err(anyhow!(
                    "newsletter `{}` has no `subscribers:` list in {} and nobody has signed up for it yet; name a list, or set `allow_empty: true` on the newsletter to send to its sign-ups alone",
                    n.id,
                    newsroom.config_path.display()
                ));
            }
            (Some(_), 0) => "it has no rows".to_string(),
            (Some(_), k) => format!("none of its {k} rows is a valid subscriber"),
        };
        return Err(anyhow!(
            "newsletter `{}`: the list {} yields nobody to send to ({why}); fix the export, or set `allow_empty: true` on the newsletter if an empty list is expected",
            n.id,
            display_path(&newsroom.root, list_path).display()
        ));
    }
    // Who must not get it: the ledger's suppressions (unsubscribes,
    // bounces, complaints) and the suppression file; and the sections
    // subscribers chose on the preferences page, over the list's columns.
    let mut sup = match &cfg.delivery.suppressions {
        Some(path) => audience::load_suppressions(path)
            .with_context(|| format!("cannot load the suppression list {}", path.display()))?,
        None => audience::Suppressions::default(),
    };
    if let Some(l) = &ledger {
        for address in l.suppressed_for(&n.id)? {
            sup.insert(&address);
        }
    }
    stats.suppressed = list.remove_suppressed(&sup);
    warnings.extend(list.rejected.iter().map(|r| rejected_diag(newsroom, r)));
    stats.listed = list.subscribers.len() + stats.suppressed;
    if let Some(l) = &ledger {
        let chosen: HashMap<String, Preferences> = (l.preferences(Some(&n.id))?.into_iter())
            .map(|r| (r.address, r.preferences))
            .collect();
        for s in &mut list.subscribers {
            if let Some(p) = chosen.get(&s.email.to_ascii_lowercase()) {
                s.regions = p.regions.clone();
                s.topics = p.topics.clone();
            }
        }
    }

    // Unknown preference ids are a list problem, not a reason to drop the
    // subscriber: they are reported and ignored.
    for s in &mut list.subscribers {
        for (ids, known, what) in [
            (&mut s.regions, &cfg.regions, "region"),
            (&mut s.topics, &cfg.topics, "topic"),
        ] {
            ids.retain(|id| {
                let ok = known.iter().any(|t| &t.id == id);
                if !ok {
                    warnings.push(Diagnostic::warning(
                        display_path(&newsroom.root, list_path),
                        format!("{}: unknown {what} `{id}` in preferences, ignored", s.email),
                    ));
                }
                ok
            });
        }
    }

    // Content cannot know these marks, so it cannot forge a placeholder.
    let marks = Placeholders::new();
    let seal = |r: crate::render::Rendered, ed: &Edition| Rendering {
        subject: marks.seal(&r.subject, false),
        html: marks.seal(&r.html, true),
        text: marks.seal(&r.text, false),
        item_ids: ed.items().map(|p| p.item.id.clone()).collect(),
    };
    // The main rendering: the whole edition with every field filled in, the
    // copy `status` and test copies show. What no recipient's message could
    // carry (a subject over the header limit, say) stops the edition here.
    let everyone = SubscriberCtx {
        email: "-".into(),
        name: "-".into(),
        unsubscribe_url: "-".into(),
        preferences_url: "-".into(),
        fields: (n.subscribers.iter())
            .flat_map(|path| audience::list_columns(path))
            .map(|c| (c, "-".to_string()))
            .collect(),
        ..SubscriberCtx::default()
    };
    let main = pipeline
        .render(edition, &everyone.placeholders(|k| marks.mark(k)))
        .map_err(DiagnosticError)?;
    let main = seal(main, edition);
    // The archive's copy, made now from what is frozen, so that the archive
    // shows what was sent: rendered for nobody, it holds no placeholder,
    // and sealing only neutralises placeholder characters from content.
    // A template that cannot render it must not hold the mail back: the
    // archive then falls back to the main rendering, emptied.
    let web = match n.archive {
        true => match pipeline.render(edition, &SubscriberCtx::web_for(n)) {
            Ok(r) => Some(WebRendering {
                subject: marks.seal(&r.subject, false),
                html: marks.seal(&r.html, true),
                text: marks.seal(&r.text, false),
            }),
            Err(d) => {
                let mut d = d.into_warning();
                d.message = format!(
                    "the web copy for the archive (`subscriber.web`): {}; the archive will show the email with every subscriber field left empty",
                    d.message
                );
                warnings.push(d);
                None
            }
        },
        false => None,
    };
    // The secret only changes the token's value, not its form: checks run
    // without it, so that `check` and `--dry-run` need none.
    let composer = Composer::new(newsroom, n, &edition.id, b"plan".to_vec())?;
    composer
        .check(
            &edition.id,
            &main.subject,
            SAMPLE_EMAIL,
            None,
            &everyone.values(),
        )
        .map_err(|m| {
            anyhow!(
                "newsletter `{}`: no message of this edition can be composed: {m}",
                n.id
            )
        })?;
    // What a rendering depends on: the preference set, and which of the
    // fields the templates test are filled in. Fields only printed are a
    // placeholder in every rendering.
    let tested = pipeline.renderer().and_then(|r| r.tested_fields(n));
    let is_tested = |k: &str| tested.as_ref().is_none_or(|t| t.contains(k));
    let mut renderings = vec![main];
    let mut by_content: HashMap<(String, String, String), u32> = HashMap::new();
    by_content.insert(content_key(&renderings[0]), 0);
    let mut by_key: HashMap<String, Option<u32>> = HashMap::new();
    let mut recipients = Vec::with_capacity(list.subscribers.len());
    let mut section_recipients: HashMap<String, usize> = HashMap::new();
    // The list is consumed: each recipient takes its row's strings instead
    // of a copy, so the plan holds the audience once.
    for s in std::mem::take(&mut list.subscribers) {
        let pref = s.preference_key();
        // The unsubscribe link depends on the secret: it is filled in per
        // message. "-" marks it present for the variant.
        let subscriber = SubscriberCtx::of(&s, "-".into(), "-".into());
        let values = subscriber.values();
        let present: Vec<&str> = (values.iter())
            .filter(|(k, v)| !v.is_empty() && is_tested(k))
            .map(|(k, _)| k.as_str())
            .collect();
        let key = format!("{pref};fields={}", present.join(","));
        let slot = match by_key.get(&key) {
            Some(v) => *v,
            None => {
                let ed = edition.personalise(cfg, &pref.regions, &pref.topics);
                let v = if ed.item_count() == 0 {
                    None
                } else {
                    let mark = |k: &str| match values.get(k).is_some_and(|v| !v.is_empty())
                        || !is_tested(k)
                    {
                        true => marks.mark(k),
                        false => String::new(),
                    };
                    let ctx = SubscriberCtx {
                        regions: pref.regions.clone(),
                        topics: pref.topics.clone(),
                        ..subscriber.placeholders_with(mark)
                    };
                    let r = pipeline.render(&ed, &ctx).map_err(DiagnosticError)?;
                    let r = seal(r, &ed);
                    // Two keys that render the same (preferences that
                    // select the same items) share one stored rendering.
                    let idx = *by_content.entry(content_key(&r)).or_insert_with(|| {
                        renderings.push(r);
                        (renderings.len() - 1) as u32
                    });
                    Some(idx)
                };
                by_key.insert(key, v);
                v
            }
        };
        let Some(i) = slot else {
            stats.empty += 1;
            continue;
        };
        let rendering = &renderings[i as usize];
        // One row the message cannot be made for is skipped and reported,
        // never a failure in the middle of sending.
        if let Err(m) = composer.check(
            &edition.id,
            &rendering.subject,
            &s.email,
            s.name.as_deref(),
            &values,
        ) {
            stats.invalid += 1;
            stats.listed -= 1;
            let mut d = Diagnostic::warning(
                display_path(&newsroom.root, list_path),
                format!("{}: cannot compose a message: {m} (row skipped)", s.email),
            );
            d.line = s.line as usize;
            warnings.push(d);
            continue;
        }
        for sec in &edition.sections {
            if sec
                .items
                .iter()
                .any(|p| rendering.item_ids.contains(&p.item.id))
            {
                *section_recipients.entry(sec.id()).or_default() += 1;
            }
        }
        // Only what a placeholder needs: the columns, when not empty.
        // Address, name and link are stored or made per message.
        let mut fields = s.fields;
        fields.retain(|(_, v)| !v.is_empty());
        recipients.push(Recipient {
            email: s.email,
            name: s.name,
            rendering: i,
            fields,
        });
    }
    stats.recipients = recipients.len();
    stats.variants = by_key
        .values()
        .flatten()
        .collect::<std::collections::BTreeSet<_>>()
        .len();

    let sections = edition
        .sections
        .iter()
        .map(|s| SectionPlan {
            id: s.id(),
            title: s.title(),
            items: s.items.len(),
            recipients: section_recipients.get(&s.id()).copied().unwrap_or(0),
        })
        .collect();
    Ok(Plan {
        frozen: FrozenEdition {
            id: edition.id.clone(),
            newsletter: n.id.clone(),
            slot_utc: edition.slot.at,
            zone: n.timezone.name().to_string(),
            renderings,
            web,
        },
        recipients,
        stats,
        sections,
        warnings,
    })
}

fn content_key(r: &Rendering) -> (String, String, String) {
    (r.subject.clone(), r.html.clone(), r.text.clone())
}

/// What `check` learns by planning each newsletter's edition at `at` as a
/// send would: subscriber rows that would be skipped (warnings), and what
/// would stop the send before freezing (errors): an unreadable list or
/// suppression list, a message no recipient could get.
pub fn check_audiences(pipeline: &Pipeline, at: chrono::DateTime<chrono::Utc>) -> Vec<Diagnostic> {
    let newsroom = pipeline.newsroom();
    let mut out = Vec::new();
    for n in &newsroom.config.newsletters {
        if n.subscribers.is_none() {
            continue;
        }
        let Some(ed) = pipeline.edition(n, at).filter(|e| e.is_sendable()) else {
            continue;
        };
        match plan(pipeline, &ed) {
            Ok(p) => out.extend(p.warnings),
            Err(e) => out.push(plan_error(newsroom, n, &e)),
        }
    }
    out
}

/// A planning error as a diagnostic: at the suppression list's line when
/// that is what failed, else at the newsletter's `subscribers:` key.
fn plan_error(newsroom: &Newsroom, n: &crate::config::Newsletter, e: &anyhow::Error) -> Diagnostic {
    if let Some(DiagnosticError(d)) = e.chain().find_map(|c| c.downcast_ref::<DiagnosticError>()) {
        return d.clone();
    }
    if let Some(audience::AudienceError::Suppression { path, line, .. }) = e
        .chain()
        .find_map(|c| c.downcast_ref::<audience::AudienceError>())
    {
        let mut d = Diagnostic::error(display_path(&newsroom.root, path), format!("{e:#}"));
        d.line = *line as usize;
        return d;
    }
    newsroom.config_diag(&["newsletters", &n.id, "subscribers"], format!("{e:#}"))
}
