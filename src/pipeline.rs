//! The façade every front end calls (as Zola's `Site`, mdBook's `MDBook`):
//! one newsroom's config, its loaded items, the compiled templates and the
//! item bodies rendered so far. `check`, `build`, `send`, `schedule` and the
//! preview ask it for editions and renderings; none of them repeats the
//! load -> select -> bodies -> render -> size-warnings glue.

use std::sync::RwLock;

use chrono::{DateTime, Utc};

use crate::config::{Config, Newsletter, Newsroom};
use crate::content::{self, Item, Library, Scope};
use crate::diag::{Diagnostic, Diagnostics};
use crate::edition::{self, Edition, Slot};
use crate::messages::kb;
use crate::render::{
    Bodies, GMAIL_CLIP_BYTES, HTML_WARN_BYTES, Rendered, Renderer, SubscriberCtx, TEXT_WIDTH,
};

/// One newsroom, loaded.
pub struct Pipeline {
    newsroom: Newsroom,
    library: Library,
    /// The templates that last compiled; `None` when they never did.
    renderer: Option<Renderer>,
    /// Why the templates on disk do not compile (empty when they do).
    template_diags: Vec<Diagnostic>,
    /// Item bodies by id, rendered when an edition first needs them: a
    /// check over years of items renders only the few its editions carry.
    bodies: RwLock<Bodies>,
}

/// What became of one newsletter in [`Pipeline::check`].
#[derive(Debug, Clone)]
pub enum Checked {
    /// Rendered for the sample subscriber.
    Rendered { edition: String, html_bytes: usize },
    /// Too few items to be sent at this time: not rendered.
    TooFew {
        edition: String,
        items: usize,
        min_items: usize,
    },
    /// Its schedule never fired before the time checked.
    NoSlot,
    /// The templates failed on it (the diagnostic is in the report).
    Failed { edition: String },
}

/// What [`Pipeline::check`] found.
pub struct CheckReport {
    pub diagnostics: Diagnostics,
    /// Item files found.
    pub files: usize,
    /// Each newsletter in config order, with what became of it.
    pub newsletters: Vec<(String, Checked)>,
}

impl CheckReport {
    pub fn rendered(&self) -> usize {
        self.newsletters
            .iter()
            .filter(|(_, c)| matches!(c, Checked::Rendered { .. }))
            .count()
    }
}

impl Pipeline {
    /// Loads the items `scope` asks for and compiles the templates.
    pub fn open(newsroom: Newsroom, scope: &Scope) -> Pipeline {
        let library = content::load(&newsroom, scope);
        Pipeline::new(newsroom, library)
    }

    /// A pipeline over items loaded by the caller (the preview keeps its
    /// own per-file state and hands over the items).
    pub fn new(newsroom: Newsroom, library: Library) -> Pipeline {
        let (renderer, template_diags) = match Renderer::new(&newsroom) {
            Ok(r) => (Some(r), Vec::new()),
            Err(ds) => (None, ds),
        };
        Pipeline {
            newsroom,
            library,
            renderer,
            template_diags,
            bodies: RwLock::new(Bodies::new()),
        }
    }

    /// Only the items the editions of `newsletters` at `at` can carry.
    pub fn scope_at<'a>(
        newsletters: impl IntoIterator<Item = &'a Newsletter>,
        at: DateTime<Utc>,
    ) -> Scope {
        Scope::Windows(
            newsletters
                .into_iter()
                .filter_map(|n| edition::slot_for(n, at))
                .map(|s| (s.start, s.at))
                .collect(),
        )
    }

    pub fn newsroom(&self) -> &Newsroom {
        &self.newsroom
    }

    pub fn config(&self) -> &Config {
        &self.newsroom.config
    }

    pub fn library(&self) -> &Library {
        &self.library
    }

    pub fn items(&self) -> &[Item] {
        &self.library.items
    }

    pub fn renderer(&self) -> Option<&Renderer> {
        self.renderer.as_ref()
    }

    /// Whether the templates on disk compile (when they do not, renderings
    /// use the last ones that did, if any).
    pub fn templates_ok(&self) -> bool {
        self.template_diags.is_empty()
    }

    /// Problems found loading the items and compiling the templates.
    pub fn diagnostics(&self) -> Diagnostics {
        let mut ds = Diagnostics::default();
        ds.extend(self.library.diagnostics.iter().cloned());
        ds.extend(self.template_diags.iter().cloned());
        ds
    }

    /// Newsletter `n`'s edition for time `at`: its latest slot at or before
    /// `at`. `None` when its schedule never fired before.
    pub fn edition<'a>(&'a self, n: &'a Newsletter, at: DateTime<Utc>) -> Option<Edition<'a>> {
        edition::slot_for(n, at).map(|slot| self.edition_at(n, slot))
    }

    /// Newsletter `n`'s edition for a known slot.
    pub fn edition_at<'a>(&'a self, n: &'a Newsletter, slot: Slot) -> Edition<'a> {
        edition::select(&self.newsroom.config, n, slot, &self.library.items)
    }

    /// Renders `edition` for `subscriber` with the current templates.
    pub fn render(
        &self,
        edition: &Edition,
        subscriber: &SubscriberCtx,
    ) -> Result<Rendered, Diagnostic> {
        let Some(renderer) = &self.renderer else {
            // The caller reports `diagnostics()`; this one names what failed.
            let template = &edition.newsletter.template;
            return Err(self.template_diags.first().cloned().unwrap_or_else(|| {
                Diagnostic::error(format!("{template}.html"), "the templates do not compile")
            }));
        };
        self.ensure_bodies(renderer, edition);
        let bodies = self.bodies.read().unwrap_or_else(|e| e.into_inner());
        renderer.render(&self.newsroom, edition, &bodies, subscriber)
    }

    /// Renders the bodies of the edition's items that are not rendered yet.
    fn ensure_bodies(&self, renderer: &Renderer, edition: &Edition) {
        let missing: Vec<&Item> = {
            let bodies = self.bodies.read().unwrap_or_else(|e| e.into_inner());
            edition
                .items()
                .map(|p| p.item)
                .filter(|i| !bodies.contains_key(&i.id))
                .collect()
        };
        if !missing.is_empty() {
            let fresh = renderer.bodies(missing);
            self.bodies
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .extend(fresh);
        }
    }

    /// Validates what loading found and renders each newsletter's edition for
    /// `at` with the sample subscriber, as `check` and the preview's error
    /// panel report it.
    pub fn check(&self, at: DateTime<Utc>) -> CheckReport {
        let mut diags = self.diagnostics();
        diags.extend(self.newsroom.warnings.iter().cloned());
        let mut newsletters = Vec::new();
        for n in &self.config().newsletters {
            let subscriber = SubscriberCtx::sample_for(self.config(), n);
            let Some(ed) = self.edition(n, at) else {
                diags.push(
                    self.newsroom
                        .config_diag(
                            &["newsletters", &n.id, "schedule"],
                            "this schedule never fires",
                        )
                        .into_warning(),
                );
                newsletters.push((n.id.clone(), Checked::NoSlot));
                continue;
            };
            if !ed.is_sendable() {
                newsletters.push((
                    n.id.clone(),
                    Checked::TooFew {
                        edition: ed.id.clone(),
                        items: ed.item_count(),
                        min_items: n.min_items.max(1),
                    },
                ));
                continue;
            }
            if self.renderer.is_none() {
                continue;
            }
            match self.render(&ed, &subscriber) {
                Ok(r) => {
                    diags.extend(self.size_warnings(n, &r));
                    newsletters.push((
                        n.id.clone(),
                        Checked::Rendered {
                            edition: ed.id.clone(),
                            html_bytes: r.html.len(),
                        },
                    ));
                }
                Err(d) => {
                    diags.push(d);
                    newsletters.push((n.id.clone(), Checked::Failed { edition: ed.id }));
                }
            }
        }
        diags.sort();
        CheckReport {
            diagnostics: diags,
            files: self.library.files,
            newsletters,
        }
    }

    /// Warnings about a rendered edition a newsroom should act on before
    /// sending: the HTML against Gmail's clipping limit, over-long text lines.
    pub fn size_warnings(&self, n: &Newsletter, r: &Rendered) -> Vec<Diagnostic> {
        let Some(renderer) = &self.renderer else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let html_path = renderer.template_path(&format!("{}.html", n.template));
        let size = r.html.len();
        if size > GMAIL_CLIP_BYTES {
            out.push(Diagnostic::warning(&html_path, format!("newsletter `{}`: the HTML part is {}, over Gmail's ~102 KB limit: Gmail will clip it and hide the rest (and the unsubscribe link) behind \"View entire message\"", n.id, kb(size))));
        } else if size > HTML_WARN_BYTES {
            out.push(Diagnostic::warning(
                &html_path,
                format!(
                    "newsletter `{}`: the HTML part is {}, close to Gmail's ~102 KB clipping limit",
                    n.id,
                    kb(size)
                ),
            ));
        }
        let long = r
            .text
            .lines()
            .filter(|l| l.chars().count() > TEXT_WIDTH)
            .count();
        if long > 0 {
            let txt_path = renderer.template_path(&format!("{}.txt", n.template));
            out.push(Diagnostic::warning(txt_path, format!("newsletter `{}`: {long} line(s) of the text part are longer than {TEXT_WIDTH} characters", n.id)));
        }
        out
    }

    // What the preview changes as files are saved.

    /// Compiles the templates on disk again. On failure the last ones that
    /// compiled stay in use and the diagnostics say why.
    pub fn reload_templates(&mut self) {
        match Renderer::new(&self.newsroom) {
            Ok(r) => {
                // Bodies depend on the Markdown options (config) only.
                self.renderer = Some(r);
                self.template_diags.clear();
            }
            Err(ds) => self.template_diags = ds,
        }
    }

    /// Adds or replaces an item (kept sorted by id).
    pub fn upsert_item(&mut self, item: Item) {
        self.remove_item(&item.id.clone());
        let items = &mut self.library.items;
        let at = items
            .binary_search_by(|i| i.id.cmp(&item.id))
            .unwrap_or_else(|i| i);
        items.insert(at, item);
    }

    /// Forgets an item and its rendered body.
    pub fn remove_item(&mut self, id: &str) {
        let items = &mut self.library.items;
        if let Ok(k) = items.binary_search_by(|i| i.id.as_str().cmp(id)) {
            items.remove(k);
        }
        self.bodies
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// The ids of the items whose bodies are rendered (kept so far).
    pub fn body_ids(&self) -> Vec<String> {
        let bodies = self.bodies.read().unwrap_or_else(|e| e.into_inner());
        bodies.keys().cloned().collect()
    }

    /// The number of item files the preview knows about.
    pub fn set_files(&mut self, files: usize) {
        self.library.files = files;
    }
}
