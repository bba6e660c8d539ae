//! Loading a newsroom's items: walk `content/`, read files in parallel, and
//! parse only what the caller needs. `Scope::All` validates every item
//! (`check`); `Scope::Windows` reads each file's `date:` line first and fully
//! parses only the items that can fall in one of the editions' windows, so a
//! build over years of archive costs little more than reading the files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rayon::prelude::*;

use super::{Item, ParseCtx, parse_item, prescan_date};
use crate::config::{Config, Newsroom};
use crate::diag::{Diagnostic, Diagnostics, display_path};

/// Which items to parse fully.
#[derive(Debug, Clone)]
pub enum Scope {
    All,
    /// Half-open windows (start, end]: items dated outside all of them are skipped.
    Windows(Vec<(DateTime<Utc>, DateTime<Utc>)>),
}

impl Scope {
    fn wants(&self, date: DateTime<Utc>) -> bool {
        match self {
            Scope::All => true,
            Scope::Windows(ws) => ws.iter().any(|(s, e)| date > *s && date <= *e),
        }
    }
}

/// The loaded items and what went wrong with the others.
#[derive(Debug, Default)]
pub struct Library {
    /// Valid items, sorted by id.
    pub items: Vec<Item>,
    pub diagnostics: Diagnostics,
    /// How many item files were found.
    pub files: usize,
    /// How many were parsed in full.
    pub parsed: usize,
}

/// Item files under `dir`: `*.md` at any depth, skipping hidden files and
/// folders (editor swap files, `.git`) and anything that is not a regular
/// file (symlinks are not followed, so nothing outside the folder is read).
pub fn item_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            e.path()
                .extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("md"))
        })
        .map(walkdir::DirEntry::into_path)
        .collect();
    files.sort();
    files
}

/// The id of an item file: its path under `content/` without `.md`, `/`-separated.
pub fn item_id(content_dir: &Path, file: &Path) -> String {
    let rel = file
        .strip_prefix(content_dir)
        .unwrap_or(file)
        .with_extension("");
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// What validating items needs to know about this newsroom's config.
pub fn parse_ctx(cfg: &Config) -> ParseCtx<'_> {
    ParseCtx {
        timezone: cfg.site.timezone,
        regions: &cfg.regions,
        topics: &cfg.topics,
        newsletters: cfg.newsletters.iter().map(|n| n.id.as_str()).collect(),
    }
}

/// Files whose ids collide with an earlier file's, mapped to that file.
/// Two files whose ids differ only in case would collide on case-insensitive
/// disks and in links back to them: the first (in sorted order) wins.
/// `files` must be sorted, as [`item_files`] returns them.
pub fn duplicate_ids(content_dir: &Path, files: &[PathBuf]) -> HashMap<PathBuf, PathBuf> {
    let mut seen: HashMap<String, &Path> = HashMap::new();
    let mut duplicates = HashMap::new();
    for f in files {
        let id = item_id(content_dir, f).to_lowercase();
        if let Some(first) = seen.get(&id) {
            duplicates.insert(f.clone(), first.to_path_buf());
        } else {
            seen.insert(id, f);
        }
    }
    duplicates
}

/// The error for an item file whose id `first` already has.
pub fn duplicate_diag(newsroom: &Newsroom, file: &Path, first: &Path) -> Diagnostic {
    Diagnostic::error(
        display_path(&newsroom.root, file),
        format!(
            "duplicate item id `{}`: {} already has it (ids ignore case)",
            item_id(&newsroom.content_dir, file),
            display_path(&newsroom.root, first).display()
        ),
    )
}

/// Reads an item file as UTF-8; `shown` is how diagnostics name it.
pub fn read_item_text(shown: &Path, file: &Path) -> Result<String, Diagnostic> {
    let bytes =
        std::fs::read(file).map_err(|e| Diagnostic::error(shown, format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let upto = e.utf8_error().valid_up_to();
        let valid = std::str::from_utf8(&e.as_bytes()[..upto]).unwrap_or("");
        let line = valid.matches('\n').count() + 1;
        let col = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Diagnostic::error(
            shown,
            format!("not valid UTF-8 at {line}:{col}: save the file as UTF-8"),
        )
    })
}

pub fn load(newsroom: &Newsroom, scope: &Scope) -> Library {
    let cfg = &newsroom.config;
    let ctx = parse_ctx(cfg);
    let mut lib = Library::default();
    if !newsroom.content_dir.is_dir() {
        lib.diagnostics.push(Diagnostic::error(
            display_path(&newsroom.root, &newsroom.content_dir),
            "the content folder does not exist",
        ));
        return lib;
    }
    let files = item_files(&newsroom.content_dir);
    lib.files = files.len();

    let duplicates = duplicate_ids(&newsroom.content_dir, &files);

    enum Outcome {
        Item(Box<Item>),
        Skipped,
        Bad(Vec<Diagnostic>),
    }
    let outcomes: Vec<Outcome> = files
        .par_iter()
        .map(|file| {
            let shown = display_path(&newsroom.root, file);
            if let Some(first) = duplicates.get(file) {
                return Outcome::Bad(vec![duplicate_diag(newsroom, file, first)]);
            }
            let text = match read_item_text(&shown, file) {
                Ok(t) => t,
                Err(d) => return Outcome::Bad(vec![d]),
            };
            if let Scope::Windows(_) = scope {
                if let Some(d) = prescan_date(&text, cfg.site.timezone) {
                    if !scope.wants(d) {
                        return Outcome::Skipped;
                    }
                }
            }
            let id = item_id(&newsroom.content_dir, file);
            match parse_item(&id, &shown, &text, &ctx) {
                Ok(item) => Outcome::Item(Box::new(item)),
                Err(ds) => Outcome::Bad(ds),
            }
        })
        .collect();

    for o in outcomes {
        match o {
            Outcome::Item(i) => {
                lib.parsed += 1;
                lib.items.push(*i);
            }
            Outcome::Bad(ds) => {
                lib.parsed += 1;
                lib.diagnostics.extend(ds);
            }
            Outcome::Skipped => {}
        }
    }
    lib.diagnostics.sort();
    lib
}
