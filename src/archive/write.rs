//! Writing the archive folder so that a rebuild changes only what changed:
//! each file is compared with what is there and written only when it
//! differs (by a rename, so a server never reads half a page), and a
//! manifest of the files the archive owns lets a rebuild remove the ones it
//! no longer makes (a newsletter turned `archive: false`) without touching
//! anything else in the folder.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use super::layout::Page;

/// The list of files the archive wrote, in the archive folder. Never a
/// path [`Page::from_file`] knows, so no request can reach it.
pub const MANIFEST: &str = ".briefing-manifest";

/// What writing the folder did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Files created or changed.
    pub written: usize,
    /// Files that already held exactly this.
    pub unchanged: usize,
    /// Files of an earlier build the archive no longer makes.
    pub removed: usize,
}

/// The archive folder being written.
pub struct Folder {
    root: PathBuf,
    /// What the last build wrote, from its manifest.
    before: BTreeSet<String>,
    now: BTreeSet<String>,
    done: Written,
}

impl Folder {
    /// Opens (creating) the folder at `root` and reads its manifest.
    pub fn open(root: &Path) -> Result<Folder> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("cannot create the archive folder {}", root.display()))?;
        let manifest = root.join(MANIFEST);
        let before = match std::fs::read_to_string(&manifest) {
            Ok(text) => parse_manifest(&text),
            Err(e) if e.kind() == ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", manifest.display()));
            }
        };
        Ok(Folder {
            root: root.to_path_buf(),
            before,
            now: BTreeSet::new(),
            done: Written::default(),
        })
    }

    /// Puts `page` in the folder with `content`, writing only if it differs.
    pub fn put(&mut self, page: &Page, content: &[u8]) -> Result<()> {
        let file = page.file();
        let path = self.path_of(&file);
        match std::fs::read(&path) {
            Ok(old) if old == content => self.done.unchanged += 1,
            _ => {
                replace(&path, content)?;
                self.done.written += 1;
            }
        }
        self.now.insert(file);
        Ok(())
    }

    /// Removes what an earlier build wrote and this one did not, then
    /// records what this one wrote.
    pub fn finish(mut self) -> Result<Written> {
        let stale: Vec<String> = self.before.difference(&self.now).cloned().collect();
        for file in stale {
            let path = self.path_of(&file);
            match std::fs::remove_file(&path) {
                Ok(()) => self.done.removed += 1,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot remove {}", path.display()));
                }
            }
            // Folders left empty go too; a folder holding anything else stays.
            let mut dir = path.parent();
            while let Some(d) = dir.filter(|d| *d != self.root) {
                if std::fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
        }
        let mut text = String::from(
            "# The files `briefing archive` wrote here; it removes those it no longer makes.\n",
        );
        for f in &self.now {
            text.push_str(f);
            text.push('\n');
        }
        let manifest = self.root.join(MANIFEST);
        if std::fs::read(&manifest).ok().as_deref() != Some(text.as_bytes()) {
            replace(&manifest, text.as_bytes())?;
        }
        Ok(self.done)
    }

    fn path_of(&self, file: &str) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(file.split('/'));
        p
    }
}

/// The manifest's files: only paths the archive could have written, so a
/// hand-edited manifest can never make a rebuild delete anything else.
fn parse_manifest(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| Page::from_file(l).is_some())
        .map(str::to_string)
        .collect()
}

/// Writes `path` whole: a temporary file beside it, then a rename. The
/// temporary name is the process's own, so that two builds at once (cron's
/// refresh and a person's) never rename each other's half-written file.
fn replace(path: &Path, content: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, content).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edition(stamp: &str) -> Page {
        Page::Edition {
            newsletter: "am".into(),
            stamp: stamp.into(),
        }
    }

    #[test]
    fn only_changes_are_written_and_stale_files_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("archive");
        let mut f = Folder::open(&root).unwrap();
        f.put(&Page::Site, b"site").unwrap();
        f.put(&edition("2026-11-30-0600"), b"one").unwrap();
        f.put(&edition("2026-12-01-0600"), b"two").unwrap();
        assert_eq!(f.finish().unwrap().written, 3);
        std::fs::write(root.join("am/mine.txt"), "kept").unwrap();

        let mut f = Folder::open(&root).unwrap();
        f.put(&Page::Site, b"site").unwrap();
        f.put(&edition("2026-11-30-0600"), b"one, changed").unwrap();
        let done = f.finish().unwrap();
        assert_eq!(
            done,
            Written {
                written: 1,
                unchanged: 1,
                removed: 1
            }
        );
        assert!(
            !root.join("am/2026-12-01-0600").exists(),
            "its folder went too"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("am/2026-11-30-0600/index.html")).unwrap(),
            "one, changed"
        );
        assert!(root.join("am/mine.txt").exists(), "not the archive's");
    }

    #[test]
    fn a_manifest_cannot_name_files_outside_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("archive");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(dir.path().join("precious"), "x").unwrap();
        std::fs::write(root.join("notes.html"), "x").unwrap();
        std::fs::write(
            root.join(MANIFEST),
            "../precious\nnotes.html\n/etc/hostname\nam/../../precious\n",
        )
        .unwrap();
        let done = Folder::open(&root).unwrap().finish().unwrap();
        assert_eq!(done.removed, 0);
        assert!(dir.path().join("precious").exists());
        assert!(root.join("notes.html").exists());
    }
}
