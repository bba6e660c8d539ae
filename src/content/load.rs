//! Loading a newsroom's items: walk `content/`, read files in parallel, and
//! parse only what the caller needs. `Scope::All` validates every item
//! (`check`); `Scope::Windows` reads each file's `date:` line first and fully
//! parses only the items that can fall in one of the editions' windows, so a
//! build over years of archive costs little more than reading the files.

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
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
    /// The files that failed, with the date their `date:` line gives when it
    /// can be read: an edition whose window holds that date (or any edition,
    /// when the date is unknown) may be missing a story.
    pub broken: Vec<Broken>,
    /// How many item files were found.
    pub files: usize,
    /// How many were parsed in full.
    pub parsed: usize,
}

/// An item file that did not load.
#[derive(Debug, Clone)]
pub struct Broken {
    /// As diagnostics show it.
    pub path: PathBuf,
    pub date: Option<DateTime<Utc>>,
}

impl Library {
    /// The broken items that could belong in the window (start, end]: their
    /// date falls in it, or cannot be read.
    pub fn broken_in(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<&Broken> {
        self.broken
            .iter()
            .filter(|b| b.date.is_none_or(|d| d > start && d <= end))
            .collect()
    }
}

/// Item files under `dir`: `*.md` at any depth, skipping hidden files and
/// folders (editor swap files, `.git`) and anything that is not a regular
/// file (symlinks are not followed, so nothing outside the folder is read).
/// In path order; unreadable folders are skipped.
pub fn item_files(dir: &Path) -> Vec<PathBuf> {
    // The top-level folders (regions, desks) are walked in parallel: listing
    // a folder is a syscall per few dozen entries, serial otherwise.
    let parts: Vec<Vec<PathBuf>> = list(dir)
        .par_iter()
        .map(|e| {
            let path = dir.join(&e.name);
            if e.is_dir {
                let mut files = Vec::new();
                walk(path, &mut files);
                files
            } else {
                vec![path]
            }
        })
        .collect();
    let files: Vec<PathBuf> = parts.into_iter().flatten().collect();
    debug_assert!(files.is_sorted(), "a walk in name order is in path order");
    files
}

struct Entry {
    name: OsString,
    is_dir: bool,
}

/// The folder's item files and subfolders, sorted by name. Sorting owned
/// names is cheap; walkdir's `sort_by_file_name` re-parses both paths at
/// every comparison (6.5% of the CPU samples of a 100,000-item build).
fn list(dir: &Path) -> Vec<Entry> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut entries: Vec<Entry> = rd
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            if name.as_encoded_bytes().starts_with(b".") {
                return None;
            }
            // The entry's own type: a symlink is neither a dir nor a file here.
            let t = e.file_type().ok()?;
            let is_md = || {
                Path::new(&name)
                    .extension()
                    .is_some_and(|x| x.eq_ignore_ascii_case("md"))
            };
            (t.is_dir() || (t.is_file() && is_md())).then(|| Entry {
                is_dir: t.is_dir(),
                name,
            })
        })
        .collect();
    entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    entries
}

/// Appends the item files under `dir` in path order: depth first, each
/// folder's entries by name. A loop, not recursion, so any depth is fine.
fn walk(dir: PathBuf, out: &mut Vec<PathBuf>) {
    let entries = list(&dir).into_iter();
    let mut stack = vec![(dir, entries)];
    while let Some((dir, entries)) = stack.last_mut() {
        let Some(e) = entries.next() else {
            stack.pop();
            continue;
        };
        let path = dir.join(&e.name);
        if e.is_dir {
            let entries = list(&path).into_iter();
            stack.push((path, entries));
        } else {
            out.push(path);
        }
    }
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
        lead_ins: &cfg.markdown.lead_ins,
        base_url: &cfg.site.base_url,
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
    let ids: Vec<String> = files
        .par_iter()
        .map(|f| item_id(&newsroom.content_dir, f))
        .collect();

    // Two files whose ids differ only in case would collide on case-insensitive
    // disks and in links back to them: the first (in sorted order) wins.
    let folded: Vec<String> = ids.par_iter().map(|id| id.to_lowercase()).collect();
    let mut first_with: HashMap<&str, usize> = HashMap::with_capacity(files.len());
    let mut duplicate_of: Vec<Option<usize>> = vec![None; files.len()];
    for (i, id) in folded.iter().enumerate() {
        match first_with.entry(id) {
            MapEntry::Occupied(first) => duplicate_of[i] = Some(*first.get()),
            MapEntry::Vacant(v) => {
                v.insert(i);
            }
        }
    }

    enum Loaded {
        Item(Box<Item>),
        Skipped,
        Bad(Vec<Diagnostic>, Option<DateTime<Utc>>),
    }
    let shown = |file: &Path| display_path(&newsroom.root, file);
    let outcomes: Vec<Loaded> = files
        .par_iter()
        .enumerate()
        // Read buffers are reused from file to file: one per rayon job, a
        // handful per thread.
        .map_init(Vec::new, |buf, (i, file)| {
            if let Some(first) = duplicate_of[i] {
                return Loaded::Bad(
                    vec![Diagnostic::error(
                        shown(file),
                        format!(
                            "duplicate item id `{}`: {} already has it (ids ignore case)",
                            ids[i],
                            shown(&files[first]).display()
                        ),
                    )],
                    None,
                );
            }
            if let Err(e) = read_into(file, buf) {
                return Loaded::Bad(
                    vec![Diagnostic::error(shown(file), format!("cannot read: {e}"))],
                    None,
                );
            }
            let text = match std::str::from_utf8(buf) {
                Ok(t) => t,
                Err(e) => {
                    let upto = e.valid_up_to();
                    let valid = std::str::from_utf8(&buf[..upto]).unwrap_or("");
                    let line = valid.matches('\n').count() + 1;
                    let col = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                    return Loaded::Bad(
                        vec![Diagnostic::error(
                            shown(file),
                            format!("not valid UTF-8 at {line}:{col}: save the file as UTF-8"),
                        )],
                        None,
                    );
                }
            };
            let date = prescan_date(text, cfg.site.timezone);
            if let (Scope::Windows(_), Some(d)) = (scope, date) {
                if !scope.wants(d) {
                    return Loaded::Skipped;
                }
            }
            match parse_item(&ids[i], &shown(file), text, &ctx) {
                Ok(item) => Loaded::Item(Box::new(item)),
                Err(ds) => Loaded::Bad(ds, date),
            }
        })
        .collect();

    for (o, file) in outcomes.into_iter().zip(&files) {
        match o {
            Loaded::Item(mut i) => {
                lib.parsed += 1;
                lib.diagnostics.extend(std::mem::take(&mut i.warnings));
                lib.items.push(*i);
            }
            Loaded::Bad(ds, date) => {
                lib.parsed += 1;
                lib.diagnostics.extend(ds);
                lib.broken.push(Broken {
                    path: shown(file),
                    date,
                });
            }
            Loaded::Skipped => {}
        }
    }
    lib.diagnostics.sort();
    lib
}

/// Reads the whole file into `buf`, replacing what it held. Unlike
/// `fs::read`, no `statx` to size a fresh buffer first: item files are small
/// and `buf` is reused, so it usually has room already and one `read` gets
/// the whole file.
fn read_into(path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
    /// A file without `File`'s `read_to_end`, which asks for the size first.
    struct Unsized(File);
    impl Read for Unsized {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            self.0.read(b)
        }
    }
    buf.clear();
    Unsized(File::open(path)?).read_to_end(buf).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "site:\n  name: T\n  base_url: https://news.example.com\n  timezone: America/New_York\nregions:\n  - { id: world, name: World }\ntopics:\n  - { id: trade, name: Trade }\nnewsletters:\n  am:\n    name: AM\n    from: \"AM <am@news.example.com>\"\n";

    fn item(date: &str) -> String {
        format!("---\ntitle: Talks\ndate: {date}\nregion: world\ntopic: trade\n---\nBody\n")
    }

    /// A newsroom in a temporary folder with `files` (path under content/, text).
    fn newsroom(files: &[(&str, &str)]) -> (tempfile::TempDir, Newsroom) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.yaml"), CONFIG).unwrap();
        for (path, text) in files {
            let p = dir.path().join("content").join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let n = Newsroom::load(&dir.path().join("config.yaml")).unwrap();
        (dir, n)
    }

    fn headlines(lib: &Library) -> Vec<String> {
        lib.diagnostics.iter().map(|d| d.headline()).collect()
    }

    #[test]
    fn item_files_are_markdown_in_path_order_without_hidden_ones() {
        let x = item("2026-11-28");
        let (_dir, n) = newsroom(&[
            ("world/b.md", &x),
            ("world/a/z.md", &x),
            ("world/a-b.md", &x),
            ("world/deep/er/still/c.MD", &x),
            ("world/notes.txt", &x),
            ("world/.draft.md", &x),
            ("world/.hidden/d.md", &x),
            (".git/e.md", &x),
            ("A.md", &x),
        ]);
        #[cfg(unix)]
        {
            let c = &n.content_dir;
            std::os::unix::fs::symlink(c.join("world"), c.join("linked")).unwrap();
            std::os::unix::fs::symlink(c.join("world/b.md"), c.join("world/link.md")).unwrap();
        }
        let ids: Vec<String> = item_files(&n.content_dir)
            .iter()
            .map(|f| item_id(&n.content_dir, f))
            .collect();
        // `world/a/z` before `world/a-b`: paths compare by component.
        assert_eq!(
            ids,
            [
                "A",
                "world/a/z",
                "world/a-b",
                "world/b",
                "world/deep/er/still/c"
            ]
        );
    }

    #[test]
    fn the_first_of_two_ids_that_differ_in_case_wins() {
        let x = item("2026-11-28");
        let (_dir, n) = newsroom(&[("world/Talks.md", &x), ("world/talks.md", &x)]);
        let lib = load(&n, &Scope::All);
        assert_eq!(lib.files, 2);
        assert_eq!(lib.items.len(), 1);
        assert_eq!(lib.items[0].id, "world/Talks");
        assert_eq!(
            headlines(&lib),
            [
                "content/world/talks.md: error: duplicate item id `world/talks`: content/world/Talks.md already has it (ids ignore case)"
            ]
        );
    }

    #[test]
    fn invalid_utf8_is_reported_at_its_line_and_column() {
        let (_dir, n) = newsroom(&[("world/bad.md", "---\ntitle: caf\u{e9}\n---\n")]);
        let p = n.content_dir.join("world/bad.md");
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.extend_from_slice(b"ab\xff\n");
        std::fs::write(&p, bytes).unwrap();
        let lib = load(&n, &Scope::Windows(Vec::new()));
        assert_eq!(
            headlines(&lib),
            ["content/world/bad.md: error: not valid UTF-8 at 4:3: save the file as UTF-8"]
        );
    }

    #[test]
    fn windows_parse_only_items_dated_inside_them() {
        let (_dir, n) = newsroom(&[
            ("world/in.md", &item("2026-11-28T05:30:00-05:00")),
            ("world/edge.md", &item("2026-11-27T06:00:00-05:00")),
            ("world/out.md", &item("2026-11-20")),
            ("world/folded.md", &item(">-\n  2026-11-20")),
            (
                "world/broken.md",
                "---\ntitle: T\ndate: 2026-11-20\nregion: wrld\n---\n",
            ),
        ]);
        let at = crate::time::parse_when("2026-11-28T06:00", n.config.site.timezone).unwrap();
        let lib = load(
            &n,
            &Scope::Windows(vec![(at - chrono::Duration::hours(24), at)]),
        );
        assert_eq!(lib.files, 5);
        // `folded`'s date is not on its `date:` line, so it is parsed in full;
        // `broken` lies outside the window and its errors wait for `check`.
        assert_eq!(lib.parsed, 2);
        assert!(lib.diagnostics.is_empty(), "{:?}", headlines(&lib));
        let ids: Vec<&str> = lib.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["world/folded", "world/in"]);
        assert_eq!(load(&n, &Scope::All).parsed, 5);
    }
}
