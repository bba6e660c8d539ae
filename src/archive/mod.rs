//! The public web archive and its Atom feeds, built from the ledger's sent
//! editions only (what was actually sent, never drafts or unsent builds):
//! one page per edition at a stable URL, an index per newsletter, the list
//! of newsletters, a feed per newsletter. Each page is the anonymous web
//! rendering frozen with its edition. `layout` says where everything
//! lives, for the writer, the links in every email and a server alike.

mod feed;
pub mod layout;
mod pages;
mod write;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow};
use chrono_tz::Tz;

use crate::config::Newsroom;
use crate::ledger::{EditionState, Ledger, MAIN_RENDERING, WebRendering};
use crate::mail::variant::{Fields, fill};
use crate::messages::{Message, plural};
use feed::FeedEntry;
use layout::Page;
pub use layout::{Resolved, resolve};
use pages::{Listed, Shelf};
pub use write::Written;

/// What became of one newsletter in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shelved {
    /// Its sent editions are in the archive; `url` is its index.
    Editions { count: usize, url: String },
    /// `archive: false`: nothing of it is written (and what an earlier
    /// build wrote is removed).
    NotArchived,
    /// Archived, but nothing sent yet.
    Empty,
}

/// What `briefing archive` (or a send's refresh) did.
#[derive(Debug)]
pub struct ArchiveReport {
    pub out: PathBuf,
    /// Each newsletter, in config order.
    pub newsletters: Vec<(String, Shelved)>,
    pub files: Written,
    /// Editions frozen without a web copy (before briefing kept one, or
    /// when the templates could not render it): their pages are the main
    /// rendering with every subscriber field left empty.
    pub from_main: usize,
    /// Editions left out, and why.
    pub warnings: Vec<String>,
}

impl ArchiveReport {
    /// One line: the folder and what changed in it.
    pub fn summary(&self) -> String {
        let f = &self.files;
        let out = self.out.strip_prefix(".").unwrap_or(&self.out);
        format!(
            "archive {}: {} written, {} unchanged, {} removed",
            out.display(),
            plural(f.written, "file"),
            f.unchanged,
            f.removed
        )
    }

    /// A line per newsletter, the warnings, then [`ArchiveReport::summary`].
    pub fn messages(&self) -> Vec<Message<'_>> {
        let mut out: Vec<Message> = (self.warnings.iter())
            .map(|w| Message::Warning(w.clone()))
            .collect();
        if self.from_main > 0 {
            let what = match self.from_main {
                1 => "1 edition has".to_string(),
                k => format!("{k} editions have"),
            };
            out.push(Message::Warning(format!(
                "{what} no web copy (frozen before briefing kept one, or the templates could not render it): shown as the email was sent, with every subscriber field left empty"
            )));
        }
        for (id, s) in &self.newsletters {
            let line = match s {
                Shelved::Editions { count, url } => {
                    format!("{id:<12} {:<12} {url}", plural(*count, "edition"))
                }
                Shelved::NotArchived => format!("{id:<12} not archived (archive: false)"),
                Shelved::Empty => format!("{id:<12} nothing sent yet"),
            };
            out.push(Message::Summary(line));
        }
        out.push(Message::Summary(self.summary()));
        out
    }
}

/// Builds the archive into `out` (default: `archive.out` from config),
/// writing only the files that changed.
pub fn build(newsroom: &Newsroom, out: Option<&Path>) -> Result<ArchiveReport> {
    let cfg = &newsroom.config;
    let archive = cfg.archive.as_ref().ok_or_else(|| {
        anyhow!(
            "{} has no `archive:` section: add one with at least `url: https://…`, where the archive will be published (docs/archive.md)",
            newsroom.config_path.display()
        )
    })?;
    let out = out.unwrap_or(&archive.out).to_path_buf();
    let ledger = Ledger::open_existing(&cfg.ledger)
        .with_context(|| format!("cannot open the ledger {}", cfg.ledger))?;
    let mut folder = write::Folder::open(&out)?;
    let mut report = ArchiveReport {
        out: out.clone(),
        newsletters: Vec::new(),
        files: Written::default(),
        from_main: 0,
        warnings: Vec::new(),
    };
    let mut shelves: Vec<(&crate::config::Newsletter, Vec<Listed>)> = Vec::new();
    for n in &cfg.newsletters {
        if !n.archive {
            report
                .newsletters
                .push((n.id.clone(), Shelved::NotArchived));
            continue;
        }
        let Some(l) = &ledger else {
            report.newsletters.push((n.id.clone(), Shelved::Empty));
            continue;
        };
        let mut listed = Vec::new();
        // The newest editions' pages, for the feed.
        let mut newest: Vec<(String, String)> = Vec::new();
        let mut stamps = HashSet::new();
        // Complete or sending: mail went out. Frozen ones may never be sent.
        let sent = (l.editions(Some(&n.id))?.into_iter())
            .filter(|e| matches!(e.state, EditionState::Complete | EditionState::Sending));
        for e in sent {
            let Ok(zone) = e.zone.parse::<Tz>() else {
                report.warnings.push(format!(
                    "{}: the ledger names an unknown time zone `{}`; left out of the archive",
                    e.id, e.zone
                ));
                continue;
            };
            let stamp = layout::stamp(e.slot_utc, zone);
            if !stamps.insert(stamp.clone()) {
                report.warnings.push(format!(
                    "{}: another edition of `{}` has the same local minute {stamp}; left out of the archive",
                    e.id, n.id
                ));
                continue;
            }
            let Some(copy) = web_copy(l, &e.id, &mut report.from_main)? else {
                continue;
            };
            let page = Page::Edition {
                newsletter: n.id.clone(),
                stamp,
            };
            folder.put(&page, copy.html.as_bytes())?;
            if newest.len() < archive.editions {
                newest.push((e.id.clone(), copy.html));
            }
            listed.push(Listed {
                page,
                subject: copy.subject,
                slot: e.slot_utc,
                zone,
            });
        }
        if listed.is_empty() {
            report.newsletters.push((n.id.clone(), Shelved::Empty));
            continue;
        }
        for (page, html) in pages::index_pages(&cfg.site, n, &listed, archive.editions) {
            folder.put(&page, html.as_bytes())?;
        }
        let entries: Vec<FeedEntry> = (listed.iter().zip(&newest))
            .map(|(l, (id, html))| FeedEntry {
                id,
                page: &l.page,
                subject: &l.subject,
                slot: l.slot,
                zone: l.zone,
                html,
            })
            .collect();
        let xml = feed::feed(&cfg.site, archive, n, &entries)?;
        folder.put(
            &Page::Feed {
                newsletter: n.id.clone(),
            },
            &xml,
        )?;
        let index = Page::Index {
            newsletter: n.id.clone(),
            page: None,
        };
        report.newsletters.push((
            n.id.clone(),
            Shelved::Editions {
                count: listed.len(),
                url: layout::url(archive, &index),
            },
        ));
        shelves.push((n, listed));
    }
    let shelves: Vec<Shelf> = (shelves.iter())
        .map(|(n, listed)| Shelf {
            newsletter: n,
            editions: listed,
        })
        .collect();
    folder.put(
        &Page::Site,
        pages::site_html(&cfg.site, &shelves).as_bytes(),
    )?;
    report.files = folder.finish()?;
    Ok(report)
}

/// What the archive shows of edition `id`: the web rendering frozen with
/// it, or, for an edition frozen before there was one, its main rendering
/// with every placeholder emptied (never anyone's values).
fn web_copy(ledger: &Ledger, id: &str, from_main: &mut usize) -> Result<Option<WebRendering>> {
    if let Some(web) = ledger.web_rendering(id)? {
        return Ok(Some(web));
    }
    let Some(main) = ledger.rendering(id, MAIN_RENDERING)? else {
        return Ok(None);
    };
    *from_main += 1;
    let nobody = Fields::default();
    Ok(Some(WebRendering {
        subject: fill(&main.subject, &nobody, false),
        html: fill(&main.html, &nobody, true),
        text: fill(&main.text, &nobody, false),
    }))
}
