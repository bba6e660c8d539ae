//! Where returned mail is read from: one message on stdin, message files,
//! or a Maildir's `new/`. A Maildir message that was acted on, or
//! deliberately ignored, moves to `cur/` marked seen; one that was not
//! understood stays in `new/` for a person: nothing is ever deleted.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::inbound::MAX_INPUT;

/// One returned message and where it came from.
pub struct Message {
    /// As reports name it: the file's path, or `-` for stdin.
    pub source: String,
    pub raw: Vec<u8>,
    /// In a Maildir's `new/`: where it moves once handled.
    maildir: Option<(PathBuf, PathBuf)>,
}

impl Message {
    /// Files a handled Maildir message in `cur/` with the Seen flag
    /// (Maildir's `:2,S` info), as a mail client would. Not for messages
    /// that were not understood: those stay in `new/`.
    pub fn file_as_handled(&self) -> Result<()> {
        let Some((from, cur)) = &self.maildir else {
            return Ok(());
        };
        let name = from
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let base = name.split(':').next().unwrap_or(&name);
        let to = cur.join(format!("{base}:2,S"));
        std::fs::rename(from, &to)
            .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))
    }
}

/// The message on stdin.
pub fn stdin() -> Result<Message> {
    let mut raw = Vec::new();
    std::io::stdin()
        .take(MAX_INPUT as u64 + 1)
        .read_to_end(&mut raw)
        .context("cannot read the message on stdin")?;
    Ok(Message {
        source: "-".into(),
        raw,
        maildir: None,
    })
}

/// A message file.
pub fn file(path: &Path) -> Result<Message> {
    let mut raw = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_INPUT as u64 + 1).read_to_end(&mut raw))
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Message {
        source: path.display().to_string(),
        raw,
        maildir: None,
    })
}

/// The messages waiting in a Maildir's `new/`, oldest name first. Names
/// starting with a dot are a delivery agent's temporary files: skipped.
pub fn maildir(dir: &Path) -> Result<Vec<PathBuf>> {
    let new = dir.join("new");
    let cur = dir.join("cur");
    if !new.is_dir() || !cur.is_dir() {
        anyhow::bail!(
            "{} is not a Maildir: it needs new/ and cur/ folders",
            dir.display()
        );
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&new)
        .with_context(|| format!("cannot list {}", new.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    files.sort();
    Ok(files)
}

/// One Maildir message, read.
pub fn maildir_message(dir: &Path, path: &Path) -> Result<Message> {
    let mut m = file(path)?;
    m.maildir = Some((path.to_owned(), dir.join("cur")));
    Ok(m)
}
