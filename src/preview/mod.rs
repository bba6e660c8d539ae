//! `briefing preview`: the newsroom kept in memory and rebuilt piece by piece
//! as files change (this file), the debounced watcher that says which piece
//! (`watch`), and the local web server that shows the editions (`server`,
//! with its pages in `pages`).

pub mod pages;
pub mod server;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rayon::prelude::*;

use crate::config::{Config, Newsletter, Newsroom};
use crate::content::{self, Item, Library, ParseCtx};
use crate::diag::{Diagnostic, Diagnostics, display_path};
use crate::edition::{Edition, Slot};
use crate::messages::plural;
use crate::pipeline::Pipeline;
use crate::render::{Rendered, SubscriberCtx};
use crate::time::parse_when;
use tokio::sync::mpsc::UnboundedReceiver;
use watch::{Batch, Change, Layout, Watcher};

/// What the preview knows about one item file.
#[derive(Debug, Clone)]
enum FileState {
    /// It parsed: its id, and the line of its `title:` for links back.
    Item { id: String, title_line: usize },
    /// It did not: why.
    Bad(Vec<Diagnostic>),
}

/// Whom an edition is rendered for: a subscriber (only the sample one until
/// delivery brings subscriber lists) and optional preferences on top.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Audience {
    /// A [`Choice`] key; empty or unknown means the sample subscriber.
    pub subscriber: String,
    pub region: Option<String>,
    pub topic: Option<String>,
}

impl Audience {
    pub fn is_everyone(&self) -> bool {
        self.region.is_none() && self.topic.is_none()
    }
}

/// One entry of the subscriber picker.
#[derive(Debug, Clone)]
pub struct Choice {
    pub key: String,
    pub label: String,
    /// The `subscriber` templates see.
    pub subscriber: SubscriberCtx,
    /// The subscriber's own preferences.
    pub regions: Vec<String>,
    pub topics: Vec<String>,
}

/// How many subscribers of a list the picker offers (the first ones).
pub const PICKER_LIMIT: usize = 200;

/// The subscribers the picker offers: the sample subscriber, then the first
/// subscribers of the newsletter's list (suppressed ones left out), each with
/// their own preferences. A missing or broken list just leaves the sample.
pub fn choices(config: &Config, newsletter: &Newsletter) -> Vec<Choice> {
    let mut out = vec![Choice {
        key: "sample".into(),
        label: "Sample subscriber (reader@example.com)".into(),
        subscriber: SubscriberCtx::sample_for(config, newsletter),
        regions: Vec::new(),
        topics: Vec::new(),
    }];
    let Some(path) = &newsletter.subscribers else {
        return out;
    };
    let Ok(mut list) = crate::audience::load_subscribers(path) else {
        return out;
    };
    if let Some(sup) = config
        .delivery
        .suppressions
        .as_ref()
        .and_then(|p| crate::audience::load_suppressions(p).ok())
    {
        list.remove_suppressed(&sup);
    }
    // The preview never sends: links use the configured secret when it is
    // set, else the development one, only so the page shows their shape.
    let secret = std::env::var(&config.delivery.unsubscribe.secret_env)
        .map(String::into_bytes)
        .unwrap_or_else(|_| crate::mail::token::DEV_SECRET.to_vec());
    for s in list.subscribers.into_iter().take(PICKER_LIMIT) {
        let url = crate::mail::token::unsubscribe_url(
            &config.delivery.unsubscribe.url,
            &newsletter.id,
            &s.email,
            &secret,
        )
        .unwrap_or_default();
        let prefs_url = crate::mail::token::preferences_url(
            &config.delivery.preferences.url,
            &newsletter.id,
            &s.email,
            &secret,
        )
        .unwrap_or_default();
        let prefs: Vec<String> = s.regions.iter().chain(&s.topics).cloned().collect();
        let label = match (&s.name, prefs.is_empty()) {
            (Some(n), true) => format!("{n} <{}>", s.email),
            (Some(n), false) => format!("{n} <{}> ({})", s.email, prefs.join(", ")),
            (None, true) => s.email.clone(),
            (None, false) => format!("{} ({})", s.email, prefs.join(", ")),
        };
        out.push(Choice {
            key: s.email.clone(),
            label,
            subscriber: SubscriberCtx::of(&s, url, prefs_url),
            regions: s.regions,
            topics: s.topics,
        });
    }
    out
}

/// A rendering is cached under the newsletter, the slot and the resolved
/// audience (a known subscriber, known region and topic ids).
type RenderKey = (String, DateTime<Utc>, Audience);
type RenderResult = Arc<Result<Rendered, Diagnostic>>;

/// How many renderings the preview keeps (the least recently used go
/// first): enough for every newsletter and a few subscribers, and bounded
/// however many different URLs a page, or any web page open in the
/// editor's browser, asks for.
pub const RENDER_CACHE: usize = 48;

/// A small least-recently-used map.
struct Lru<K, V> {
    map: HashMap<K, (u64, V)>,
    tick: u64,
    capacity: usize,
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> Lru<K, V> {
    fn new(capacity: usize) -> Self {
        Lru {
            map: HashMap::new(),
            tick: 0,
            capacity,
        }
    }

    fn get(&mut self, k: &K) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(k).map(|(t, v)| {
            *t = tick;
            v.clone()
        })
    }

    fn insert(&mut self, k: K, v: V) {
        self.tick += 1;
        self.map.insert(k, (self.tick, v));
        while self.map.len() > self.capacity {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.map.remove(&k),
                None => break,
            };
        }
    }

    fn clear(&mut self) {
        self.map.clear();
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// What a newsletter's subscriber list (and the suppression list) looked
/// like on disk when the picker's choices were read from it.
type ListStamp = Vec<Option<(std::time::SystemTime, u64)>>;

/// The picker's choices per newsletter id, with the stamp they were read at.
type ChoiceCache = HashMap<String, (ListStamp, Arc<Vec<Choice>>)>;

fn list_stamp(config: &Config, n: &Newsletter) -> ListStamp {
    [
        n.subscribers.as_ref(),
        config.delivery.suppressions.as_ref(),
    ]
    .into_iter()
    .map(|p| {
        let m = std::fs::metadata(p?).ok()?;
        Some((m.modified().ok()?, m.len()))
    })
    .collect()
}

/// What one rebuild did, for the log and the benchmark.
#[derive(Debug, Clone)]
pub struct Rebuild {
    pub what: &'static str,
    /// Item files read and parsed again.
    pub reparsed: usize,
    /// Whether anything the pages show may have changed.
    pub changed: bool,
    pub elapsed: Duration,
}

/// The newsroom as the preview holds it between changes.
pub struct Project {
    config_path: PathBuf,
    /// `--at` as given; read in the site's zone of the config of the moment.
    at_arg: Option<String>,
    /// The newsroom as of the last config that loaded, with its items and
    /// templates. Kept while config.yaml is broken, so the pages keep
    /// showing editions next to the error.
    pipeline: Option<Pipeline>,
    files: BTreeMap<PathBuf, FileState>,
    duplicates: HashMap<PathBuf, PathBuf>,
    config_diags: Vec<Diagnostic>,
    /// What rendering every newsletter at the default time reported.
    check_diags: Vec<Diagnostic>,
    /// Rendered editions for this version, by newsletter, slot and audience.
    cache: Mutex<Lru<RenderKey, RenderResult>>,
    /// The subscriber picker's choices per newsletter, read again only when
    /// the list files change (a 50,000-row list takes a while to read).
    choices: Mutex<ChoiceCache>,
    pub version: u64,
}

impl Project {
    /// Loads everything. `config_path` should be absolute so that paths
    /// match what the watcher reports.
    pub fn open(config_path: &Path, at_arg: Option<String>) -> (Project, Rebuild) {
        let mut p = Project {
            config_path: config_path.to_path_buf(),
            at_arg,
            pipeline: None,
            files: BTreeMap::new(),
            duplicates: HashMap::new(),
            config_diags: Vec::new(),
            check_diags: Vec::new(),
            cache: Mutex::new(Lru::new(RENDER_CACHE)),
            choices: Mutex::new(HashMap::new()),
            version: 0,
        };
        let r = p.apply(&Change::Config);
        (p, r)
    }

    pub fn newsroom(&self) -> Option<&Newsroom> {
        self.pipeline.as_ref().map(Pipeline::newsroom)
    }

    pub fn items(&self) -> &[Item] {
        self.pipeline.as_ref().map_or(&[], Pipeline::items)
    }

    pub fn pipeline(&self) -> Option<&Pipeline> {
        self.pipeline.as_ref()
    }

    /// Where the watcher should look (from the last config that loaded).
    pub fn layout(&self) -> Layout {
        let root = self.config_path.parent().unwrap_or(Path::new("."));
        match self.newsroom() {
            Some(n) => Layout {
                config: self.config_path.clone(),
                content: n.content_dir.clone(),
                templates: n.templates_dir.clone(),
            },
            None => Layout {
                config: self.config_path.clone(),
                content: root.join("content"),
                templates: root.join("templates"),
            },
        }
    }

    /// Brings the project up to date with the files on disk.
    pub fn apply(&mut self, change: &Change) -> Rebuild {
        let start = Instant::now();
        let (what, reparsed, changed) = match change {
            Change::Ignore => ("nothing", 0, false),
            Change::Config => {
                let n = self.reload_all();
                ("everything", n, true)
            }
            Change::Templates => {
                if let Some(p) = &mut self.pipeline {
                    p.reload_templates();
                }
                ("templates", 0, true)
            }
            Change::Content(paths) => {
                let (n, changed) = self.update_content(paths);
                ("content", n, changed)
            }
        };
        if changed {
            self.cache_clear();
            self.recheck();
            self.version += 1;
        }
        Rebuild {
            what,
            reparsed,
            changed,
            elapsed: start.elapsed(),
        }
    }

    fn reload_all(&mut self) -> usize {
        let newsroom = match Newsroom::load(&self.config_path) {
            Ok(n) => n,
            Err(ds) => {
                // Keep showing what the last good config gave.
                self.config_diags = ds.0;
                return 0;
            }
        };
        self.config_diags.clear();
        let files: Vec<PathBuf> = if newsroom.content_dir.is_dir() {
            content::item_files(&newsroom.content_dir)
        } else {
            self.config_diags.push(Diagnostic::error(
                display_path(&newsroom.root, &newsroom.content_dir),
                "the content folder does not exist",
            ));
            Vec::new()
        };
        self.duplicates = content::duplicate_ids(&newsroom.content_dir, &files);
        let ctx = content::parse_ctx(&newsroom.config);
        let loaded: Vec<(PathBuf, FileState, Option<Item>)> = files
            .into_par_iter()
            .map(|f| {
                let (state, item) = load_file(&newsroom, &ctx, &self.duplicates, &f);
                (f, state, item)
            })
            .collect();
        let n = loaded.len();
        self.files.clear();
        let mut items = Vec::new();
        for (f, state, item) in loaded {
            self.files.insert(f, state);
            items.extend(item);
        }
        items.sort_by(|a, b| a.id.cmp(&b.id));
        let library = Library {
            items,
            files: n,
            parsed: n,
            ..Library::default()
        };
        self.pipeline = Some(Pipeline::new(newsroom, library));
        n
    }

    /// Re-reads the changed item files (and folders); returns how many
    /// files were parsed again and whether any file came or went.
    fn update_content(&mut self, paths: &[PathBuf]) -> (usize, bool) {
        let Some(pipeline) = &mut self.pipeline else {
            return (0, false);
        };
        // Cloned (a few KB) so that items can change while reading it.
        let newsroom = &pipeline.newsroom().clone();
        let is_md = |p: &Path| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("md"));
        let mut touched: BTreeSet<PathBuf> = BTreeSet::new();
        let mut set_changed = false;
        for p in paths {
            let meta = std::fs::symlink_metadata(p).ok();
            if is_md(p) && !meta.as_ref().is_some_and(|m| m.is_dir()) {
                // Symlinks are not followed, as in `content::item_files`.
                if meta.is_some_and(|m| m.is_file()) {
                    set_changed |= !self.files.contains_key(p);
                    self.files
                        .entry(p.clone())
                        .or_insert(FileState::Bad(Vec::new()));
                } else {
                    set_changed |= self.files.contains_key(p);
                }
                touched.insert(p.clone());
            } else {
                // A folder (or something that was one): forget what was
                // under it and read what is there now.
                let under: Vec<PathBuf> = self
                    .files
                    .range(p.clone()..)
                    .take_while(|(f, _)| f.starts_with(p))
                    .map(|(f, _)| f.clone())
                    .collect();
                let now: Vec<PathBuf> = if meta.is_some_and(|m| m.is_dir()) {
                    content::item_files(p)
                } else {
                    Vec::new()
                };
                for f in under.iter().filter(|f| !now.contains(f)) {
                    set_changed = true;
                    touched.insert(f.clone());
                }
                for f in now {
                    if !self.files.contains_key(&f) {
                        set_changed = true;
                        self.files.insert(f.clone(), FileState::Bad(Vec::new()));
                        touched.insert(f);
                    }
                }
            }
        }
        // Whether a file exists now decides: touched files that do not are gone.
        for f in &touched {
            let exists = std::fs::symlink_metadata(f).is_ok_and(|m| m.is_file());
            if !exists {
                if let Some(FileState::Item { id, .. }) = self.files.remove(f) {
                    pipeline.remove_item(&id);
                }
            }
        }
        if set_changed {
            // Files appeared or went away: which of two case-colliding ids
            // wins may have changed too.
            let all: Vec<PathBuf> = self.files.keys().cloned().collect();
            let dups = content::duplicate_ids(&newsroom.content_dir, &all);
            for f in dups.keys().chain(self.duplicates.keys()) {
                if dups.get(f) != self.duplicates.get(f) && self.files.contains_key(f) {
                    touched.insert(f.clone());
                }
            }
            self.duplicates = dups;
        }
        let todo: Vec<&PathBuf> = touched
            .iter()
            .filter(|f| self.files.contains_key(*f))
            .collect();
        let ctx = content::parse_ctx(&newsroom.config);
        let loaded: Vec<(PathBuf, FileState, Option<Item>)> = todo
            .par_iter()
            .map(|f| {
                let (state, item) = load_file(newsroom, &ctx, &self.duplicates, f);
                ((*f).clone(), state, item)
            })
            .collect();
        let reparsed = loaded.len();
        for (f, state, item) in loaded {
            if let Some(FileState::Item { id, .. }) = self.files.insert(f, state) {
                pipeline.remove_item(&id);
            }
            if let Some(item) = item {
                pipeline.upsert_item(item);
            }
        }
        pipeline.set_files(self.files.len());
        (reparsed, !touched.is_empty())
    }

    /// Renders every newsletter's edition at the default time, as `check`
    /// does, so render errors and size warnings show on every page. The
    /// results stay in the cache for the pages.
    fn recheck(&mut self) {
        let at = self.default_at();
        self.check_diags = match &self.pipeline {
            Some(p) => p.check(at).diagnostics.0,
            None => Vec::new(),
        };
    }

    fn cache_clear(&self) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.choices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// How many renderings are cached now.
    pub fn cached_renderings(&self) -> usize {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether a page may ask for `audience`: the sample or a subscriber the
    /// picker offers, and regions and topics the config has.
    pub fn offers(&self, n: &Newsletter, audience: &Audience) -> bool {
        let Some(cfg) = self.newsroom().map(|nr| &nr.config) else {
            return false;
        };
        let known_sub = matches!(audience.subscriber.as_str(), "" | "sample")
            || self.choices(n).iter().any(|c| c.key == audience.subscriber);
        known_sub
            && audience
                .region
                .as_deref()
                .is_none_or(|r| cfg.region(r).is_some())
            && audience
                .topic
                .as_deref()
                .is_none_or(|t| cfg.topic(t).is_some())
    }

    /// The picker's choices for `n`: read from the lists once, again when
    /// a list file changes.
    pub fn choices(&self, n: &Newsletter) -> Arc<Vec<Choice>> {
        let Some(cfg) = self.newsroom().map(|nr| &nr.config) else {
            return Arc::new(Vec::new());
        };
        let stamp = list_stamp(cfg, n);
        let mut all = self.choices.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, c)) = all.get(&n.id) {
            if *s == stamp {
                return c.clone();
            }
        }
        let fresh = Arc::new(choices(cfg, n));
        all.insert(n.id.clone(), (stamp, fresh.clone()));
        fresh
    }

    /// Every current problem, sorted as `check` prints them.
    pub fn diagnostics(&self) -> Diagnostics {
        let mut ds = Diagnostics::default();
        ds.extend(self.config_diags.iter().cloned());
        for state in self.files.values() {
            if let FileState::Bad(d) = state {
                ds.extend(d.iter().cloned());
            }
        }
        for d in &self.check_diags {
            if !ds.0.contains(d) {
                ds.push(d.clone());
            }
        }
        ds.sort();
        ds
    }

    /// The config on disk is broken: pages show the last one that loaded.
    pub fn config_stale(&self) -> bool {
        !self.config_diags.is_empty() && self.pipeline.is_some()
    }

    /// The templates on disk do not compile: editions use the last ones that did.
    pub fn templates_stale(&self) -> bool {
        self.pipeline
            .as_ref()
            .is_some_and(|p| !p.templates_ok() && p.renderer().is_some())
    }

    /// The time pages show when they do not ask for one: `--at`, else now.
    pub fn default_at(&self) -> DateTime<Utc> {
        match (&self.at_arg, self.newsroom()) {
            (Some(s), Some(n)) => {
                parse_when(s, n.config.site.timezone).unwrap_or_else(|_| Utc::now())
            }
            _ => Utc::now(),
        }
    }

    /// Reads a page's `at`, in the site's zone.
    pub fn parse_at(&self, s: &str) -> Result<DateTime<Utc>, String> {
        let tz = self
            .newsroom()
            .map_or(chrono_tz::UTC, |n| n.config.site.timezone);
        parse_when(s, tz)
    }

    /// The line of an item's `title:`, for links back to its file.
    pub fn title_line(&self, item: &Item) -> usize {
        let Some(n) = self.newsroom() else { return 1 };
        match self.files.get(&n.root.join(&item.source)) {
            Some(FileState::Item { title_line, .. }) => *title_line,
            _ => 1,
        }
    }

    /// Newsletter `n`'s edition at `at` for `audience`, rendered when it has
    /// items and the templates compiled.
    pub fn edition<'a>(
        &'a self,
        n: &'a Newsletter,
        at: DateTime<Utc>,
        audience: &Audience,
    ) -> Option<EditionView<'a>> {
        let pipeline = self.pipeline.as_ref()?;
        let cfg = pipeline.config();
        let full = pipeline.edition(n, at)?;
        let slot = full.slot;
        // Only what the page can offer: a known subscriber (or the sample),
        // known regions and topics. Anything else is not rendered, so the
        // cache cannot be filled with made-up keys.
        let offered = self.choices(n);
        let choice = match audience.subscriber.as_str() {
            "" | "sample" => offered.first().cloned(),
            key => Some(offered.iter().find(|c| c.key == key)?.clone()),
        };
        if audience
            .region
            .as_deref()
            .is_some_and(|r| cfg.region(r).is_none())
            || audience
                .topic
                .as_deref()
                .is_some_and(|t| cfg.topic(t).is_none())
        {
            return None;
        }
        let audience = &Audience {
            subscriber: choice.as_ref().map(|c| c.key.clone()).unwrap_or_default(),
            ..audience.clone()
        };
        let (mut regions, mut topics, mut subscriber) = match choice {
            Some(c) => (c.regions, c.topics, c.subscriber),
            None => (Vec::new(), Vec::new(), SubscriberCtx::sample_for(cfg, n)),
        };
        regions.extend(audience.region.iter().cloned());
        topics.extend(audience.topic.iter().cloned());
        let personal = if regions.is_empty() && topics.is_empty() {
            None
        } else {
            subscriber.regions = regions.clone();
            subscriber.topics = topics.clone();
            Some(full.personalise(cfg, &regions, &topics))
        };
        let shown = personal.as_ref().unwrap_or(&full);
        let rendered = match (pipeline.renderer(), shown.item_count()) {
            (Some(_), 1..) => {
                let key = (n.id.clone(), slot.at, audience.clone());
                let cached = self
                    .cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&key);
                Some(cached.unwrap_or_else(|| {
                    let out = Arc::new(pipeline.render(shown, &subscriber));
                    self.cache
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key, out.clone());
                    out
                }))
            }
            _ => None,
        };
        Some(EditionView {
            slot,
            full,
            personal,
            subscriber,
            rendered,
        })
    }
}

/// An edition as a page shows it.
pub struct EditionView<'a> {
    pub slot: Slot,
    /// The edition for everyone.
    pub full: Edition<'a>,
    /// The chosen subscriber's edition, when their preferences narrow it.
    pub personal: Option<Edition<'a>>,
    pub subscriber: SubscriberCtx,
    /// None when the edition has no items or no templates compiled.
    pub rendered: Option<RenderResult>,
}

impl<'a> EditionView<'a> {
    /// The edition the rendered parts show.
    pub fn shown(&self) -> &Edition<'a> {
        self.personal.as_ref().unwrap_or(&self.full)
    }
}

/// Reads and parses one item file as `content::load` would.
fn load_file(
    newsroom: &Newsroom,
    ctx: &ParseCtx,
    duplicates: &HashMap<PathBuf, PathBuf>,
    file: &Path,
) -> (FileState, Option<Item>) {
    if let Some(first) = duplicates.get(file) {
        return (
            FileState::Bad(vec![content::duplicate_diag(newsroom, file, first)]),
            None,
        );
    }
    let shown = display_path(&newsroom.root, file);
    let text = match content::read_item_text(&shown, file) {
        Ok(t) => t,
        Err(d) => return (FileState::Bad(vec![d]), None),
    };
    let id = content::item_id(&newsroom.content_dir, file);
    match content::parse_item(&id, &shown, &text, ctx) {
        Ok(item) => (
            FileState::Item {
                id,
                title_line: title_line(&text),
            },
            Some(item),
        ),
        Err(ds) => (FileState::Bad(ds), None),
    }
}

/// The 1-based line of the front-matter's top-level `title:` key (1 when
/// there is none: the file's start is the next best place to land).
fn title_line(text: &str) -> usize {
    text.lines()
        .enumerate()
        .skip(1)
        .take_while(|(_, l)| l.trim_end() != "---")
        .find(|(_, l)| l.starts_with("title:"))
        .map_or(1, |(i, _)| i + 1)
}

/// What the pages learn through `/events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Bumped after every rebuild that may change what pages show.
    pub version: u64,
    /// A change was seen and is being rebuilt.
    pub building: bool,
}

/// What the server's handlers and the rebuild loop share.
pub struct Shared {
    project: RwLock<Project>,
    pub status: tokio::sync::watch::Sender<Status>,
    /// How item source links open an editor (`{path}`, `{line}`).
    pub editor_url: String,
    /// Set when listening on loopback: requests must name a loopback host.
    pub loopback_port: Option<u16>,
}

impl Shared {
    pub fn new(project: Project, editor_url: String, loopback_port: Option<u16>) -> Shared {
        let status = tokio::sync::watch::Sender::new(Status {
            version: project.version,
            building: false,
        });
        Shared {
            project: RwLock::new(project),
            status,
            editor_url,
            loopback_port,
        }
    }

    /// A poisoned lock only means a render panicked; the data is still whole.
    pub fn read(&self) -> RwLockReadGuard<'_, Project> {
        self.project.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Project> {
        self.project.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Applies the watcher's batches to the project, one rebuild at a time, and
/// tells open pages. Batches that arrive during a rebuild are merged into
/// the next one.
pub async fn rebuild_loop(
    shared: Arc<Shared>,
    mut rx: UnboundedReceiver<Batch>,
    mut watcher: Watcher,
) {
    let mut layout = shared.read().layout();
    watcher.follow(&layout);
    while let Some(first) = rx.recv().await {
        let to_change = |b: Batch, layout: &Layout| match b {
            Batch::Rescan => Change::Config,
            Batch::Paths(paths) => watch::classify(layout, &paths),
        };
        let mut change = to_change(first, &layout);
        while let Ok(more) = rx.try_recv() {
            change = change.merge(to_change(more, &layout));
        }
        if change == Change::Ignore {
            continue;
        }
        shared.status.send_modify(|s| s.building = true);
        let sh = shared.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut p = sh.write();
            let r = p.apply(&change);
            let errors: Vec<String> = p
                .diagnostics()
                .iter()
                .filter(|d| d.is_error())
                .map(Diagnostic::headline)
                .collect();
            (r, p.version, p.layout(), errors)
        })
        .await;
        let (r, version, new_layout, errors) = match done {
            Ok(x) => x,
            Err(e) => {
                tracing::error!("rebuild failed: {e}");
                shared.status.send_modify(|s| s.building = false);
                continue;
            }
        };
        log_rebuild(&r, &errors);
        // Folders may have appeared (a new `templates/`) or moved (config).
        layout = new_layout;
        watcher.follow(&layout);
        shared.status.send_modify(|s| {
            s.building = false;
            s.version = version;
        });
    }
}

/// One line per rebuild (the benchmark reads the milliseconds), then the
/// errors' headlines.
pub fn log_rebuild(r: &Rebuild, errors: &[String]) {
    if !r.changed {
        tracing::debug!("nothing to rebuild ({} in {:.1} ms)", r.what, ms(r.elapsed));
        return;
    }
    tracing::info!(
        "rebuilt {} in {:.1} ms ({} re-parsed, {})",
        r.what,
        ms(r.elapsed),
        plural(r.reparsed, "file"),
        plural(errors.len(), "error"),
    );
    for e in errors {
        tracing::warn!("{e}");
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests;
