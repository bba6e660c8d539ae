//! Watching the newsroom's files: a debounced watcher turns editors' bursts of
//! events into batches, and `classify` (pure) decides what a batch means for
//! the preview: re-parse some items, recompile the templates, or reload all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, event::AccessKind, event::AccessMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc::UnboundedSender;

/// How long a file must be quiet before its events are reported. Editors that
/// save by writing a temp file and renaming it emit several events within a
/// few milliseconds; 100 ms merges them and keeps a save-to-refresh well
/// under a second.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// Where the files that matter live. All paths as the watcher reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub config: PathBuf,
    pub content: PathBuf,
    pub templates: PathBuf,
}

impl Layout {
    /// The folder holding config.yaml.
    pub fn root(&self) -> &Path {
        self.config.parent().unwrap_or(Path::new("."))
    }
}

/// What a batch of changed paths asks of the preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing the preview reads (editor swap files, other files in the root).
    Ignore,
    /// Paths under the content folder: item files, or folders whose items
    /// appeared, moved or went away.
    Content(Vec<PathBuf>),
    /// Something under the templates folder.
    Templates,
    /// config.yaml itself, or a batch touching both templates and content
    /// (a `git checkout`): reload everything.
    Config,
}

impl Change {
    /// Two pending batches as one.
    pub fn merge(self, other: Change) -> Change {
        match (self, other) {
            (Change::Ignore, c) | (c, Change::Ignore) => c,
            (Change::Config, _) | (_, Change::Config) => Change::Config,
            (Change::Templates, Change::Templates) => Change::Templates,
            (Change::Templates, Change::Content(_)) | (Change::Content(_), Change::Templates) => {
                Change::Config
            }
            (Change::Content(mut a), Change::Content(b)) => {
                a.extend(b);
                a.sort();
                a.dedup();
                Change::Content(a)
            }
        }
    }
}

/// Files editors write next to the real one while saving or as backups:
/// `.foo.md.swp`, `.foo.md.swx` (vim), `4913` (vim's probe for whether it may
/// write in a folder), `foo.md~` (vim and emacs backups), `.#foo.md` and
/// `#foo.md#` (emacs locks and autosaves), `foo.md___jb_tmp___` (JetBrains),
/// `.goutputstream-XXXX` (gedit), `foo.md.crswap` (Chrome's file API),
/// `foo.md.tmp` and the like.
pub fn is_editor_noise(path: &Path) -> bool {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy()) else {
        return false;
    };
    name.starts_with('.')
        || name.ends_with('~')
        || (name.starts_with('#') && name.ends_with('#'))
        || is_vim_probe(&name)
        || name.ends_with("___jb_tmp___")
        || name.ends_with("___jb_old___")
        || [
            ".swp",
            ".swx",
            ".swo",
            ".tmp",
            ".bak",
            ".crswap",
            ".kate-swp",
        ]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// vim checks whether it may write in a folder by creating `4913` (then
/// `5036`, `5159`... while those exist). Other all-digit names, like a
/// `content/2026/` folder, are real.
fn is_vim_probe(name: &str) -> bool {
    name.len() <= 9
        && name.bytes().all(|b| b.is_ascii_digit())
        && name
            .parse::<u32>()
            .is_ok_and(|n| n >= 4913 && (n - 4913) % 123 == 0)
}

/// `rel` passes through a hidden folder (`.git`, `.obsidian`): nothing in it
/// is an item or a template.
fn hidden(rel: &Path) -> bool {
    rel.components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
}

/// What a batch of changed paths means. Pure: it looks at the paths only, so
/// a path that is gone (deleted, renamed away) classifies like one that exists.
pub fn classify(layout: &Layout, paths: &[PathBuf]) -> Change {
    let mut config = false;
    let mut templates = false;
    let mut content = Vec::new();
    for p in paths {
        if is_editor_noise(p) {
            continue;
        }
        if p == &layout.config {
            config = true;
        } else if let Ok(rel) = p.strip_prefix(&layout.templates) {
            templates |= !hidden(rel);
        } else if let Ok(rel) = p.strip_prefix(&layout.content) {
            if !hidden(rel) {
                content.push(p.clone());
            }
        }
    }
    content.sort();
    content.dedup();
    match (config, templates, content.is_empty()) {
        (true, _, _) | (false, true, false) => Change::Config,
        (false, true, true) => Change::Templates,
        (false, false, false) => Change::Content(content),
        (false, false, true) => Change::Ignore,
    }
}

/// Whether an event kind can mean a file's content changed. Opening or
/// reading a file (the preview's own reads included) does not; closing a
/// file written to does, as does `touch` (a metadata change).
pub fn relevant(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// What the watcher sends the rebuild loop.
#[derive(Debug)]
pub enum Batch {
    Paths(Vec<PathBuf>),
    /// The OS dropped events (queue overflow): reload everything.
    Rescan,
}

/// A running watcher; dropping it stops watching.
pub struct Watcher {
    debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
    watched: Vec<PathBuf>,
}

impl Watcher {
    pub fn start(tx: UnboundedSender<Batch>) -> notify::Result<Watcher> {
        let debouncer = new_debouncer(DEBOUNCE, None, move |res: DebounceEventResult| {
            let batch = match res {
                Ok(events) => {
                    if events.iter().any(|e| e.need_rescan()) {
                        Batch::Rescan
                    } else {
                        let paths: Vec<PathBuf> = events
                            .iter()
                            .filter(|e| relevant(&e.kind))
                            .flat_map(|e| e.paths.iter().cloned())
                            .collect();
                        if paths.is_empty() {
                            return;
                        }
                        Batch::Paths(paths)
                    }
                }
                Err(errors) => {
                    for e in errors {
                        tracing::warn!("file watcher: {e}");
                    }
                    return;
                }
            };
            // The receiver is gone only when the server is shutting down.
            let _ = tx.send(batch);
        })?;
        Ok(Watcher {
            debouncer,
            watched: Vec::new(),
        })
    }

    /// Watches what `layout` names, adding folders that appeared since the
    /// last call (a `templates/` created while the preview runs) and dropping
    /// those a config change moved away from. The root is watched alone, not
    /// recursively: it may hold `target/` or `out/`, which churn.
    pub fn follow(&mut self, layout: &Layout) {
        let wanted: Vec<(PathBuf, RecursiveMode)> = [
            (layout.root().to_path_buf(), RecursiveMode::NonRecursive),
            (layout.content.clone(), RecursiveMode::Recursive),
            (layout.templates.clone(), RecursiveMode::Recursive),
        ]
        .into_iter()
        .filter(|(p, _)| p.is_dir())
        .collect();
        for old in std::mem::take(&mut self.watched) {
            if wanted.iter().any(|(p, _)| p == &old) && old.is_dir() {
                self.watched.push(old);
            } else {
                let _ = self.debouncer.unwatch(&old);
            }
        }
        for (p, mode) in wanted {
            if self.watched.contains(&p) {
                continue;
            }
            match self.debouncer.watch(&p, mode) {
                Ok(()) => self.watched.push(p),
                Err(e) => tracing::warn!("cannot watch {}: {e}", p.display()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            config: "/n/config.yaml".into(),
            content: "/n/content".into(),
            templates: "/n/templates".into(),
        }
    }

    fn classify_strs(paths: &[&str]) -> Change {
        let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
        classify(&layout(), &paths)
    }

    #[test]
    fn an_item_save_re_parses_that_item() {
        assert_eq!(
            classify_strs(&["/n/content/world/trade.md"]),
            Change::Content(vec!["/n/content/world/trade.md".into()])
        );
    }

    #[test]
    fn editor_temp_and_swap_files_are_ignored() {
        for p in [
            "/n/content/world/.trade.md.swp",
            "/n/content/world/.trade.md.swx",
            "/n/content/world/trade.md~",
            "/n/content/world/4913",
            "/n/content/world/.#trade.md",
            "/n/content/world/#trade.md#",
            "/n/content/world/trade.md___jb_tmp___",
            "/n/content/world/.goutputstream-ABC123",
            "/n/content/.git/index",
            "/n/templates/.digest.html.swp",
            "/n/.config.yaml.swp",
            "/n/config.yaml~",
        ] {
            assert_eq!(classify_strs(&[p]), Change::Ignore, "{p}");
        }
    }

    #[test]
    fn year_folders_are_not_vim_probes() {
        assert_eq!(
            classify_strs(&["/n/content/2026"]),
            Change::Content(vec!["/n/content/2026".into()])
        );
        assert_eq!(classify_strs(&["/n/content/2026/5036"]), Change::Ignore);
    }

    #[test]
    fn vim_style_save_reports_only_the_real_file() {
        // vim with `backupcopy=no`: rename to a backup, probe, write, delete.
        assert_eq!(
            classify_strs(&[
                "/n/content/world/trade.md",
                "/n/content/world/trade.md~",
                "/n/content/world/4913",
                "/n/content/world/trade.md",
            ]),
            Change::Content(vec!["/n/content/world/trade.md".into()])
        );
    }

    #[test]
    fn folders_under_content_count_so_moves_are_seen() {
        assert_eq!(
            classify_strs(&["/n/content/world", "/n/content/intl"]),
            Change::Content(vec!["/n/content/intl".into(), "/n/content/world".into()])
        );
    }

    #[test]
    fn templates_config_and_mixed_batches() {
        assert_eq!(
            classify_strs(&["/n/templates/digest.html"]),
            Change::Templates
        );
        assert_eq!(classify_strs(&["/n/templates"]), Change::Templates);
        assert_eq!(classify_strs(&["/n/config.yaml"]), Change::Config);
        assert_eq!(
            classify_strs(&["/n/content/a.md", "/n/config.yaml"]),
            Change::Config
        );
        assert_eq!(
            classify_strs(&["/n/content/a.md", "/n/templates/digest.txt"]),
            Change::Config
        );
    }

    #[test]
    fn files_outside_the_newsroom_parts_are_ignored() {
        assert_eq!(
            classify_strs(&["/n/Cargo.lock", "/n/out/am/email.html", "/elsewhere/x.md"]),
            Change::Ignore
        );
        // A sibling whose name merely starts like the content folder.
        assert_eq!(classify_strs(&["/n/content-old/a.md"]), Change::Ignore);
    }

    #[test]
    fn merging_batches() {
        let c = |p: &str| Change::Content(vec![p.into()]);
        assert_eq!(
            c("/n/content/b.md").merge(c("/n/content/a.md")),
            Change::Content(vec!["/n/content/a.md".into(), "/n/content/b.md".into()])
        );
        assert_eq!(Change::Ignore.merge(Change::Templates), Change::Templates);
        assert_eq!(
            c("/n/content/a.md").merge(Change::Templates),
            Change::Config
        );
        assert_eq!(Change::Templates.merge(Change::Config), Change::Config);
    }

    #[test]
    fn reads_do_not_count_as_changes() {
        use notify::event::{CreateKind, MetadataKind, ModifyKind};
        assert!(!relevant(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!relevant(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(relevant(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(relevant(&EventKind::Create(CreateKind::File)));
        assert!(relevant(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::Any
        ))));
    }
}
