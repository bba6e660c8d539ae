//! The outbox: a directory of `.eml` files, one per message, written
//! atomically. Where development sends and previews go; nothing leaves the
//! machine.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;

#[derive(Debug, Error)]
#[error("cannot create outbox directory {}", path.display())]
pub struct OutboxError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// A directory of `.eml` files, one per message.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Outbox {
    pub fn new(dir: &Path) -> Result<Outbox, OutboxError> {
        std::fs::create_dir_all(dir).map_err(|source| OutboxError {
            path: dir.to_owned(),
            source,
        })?;
        Ok(Outbox {
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `<dir>/<sanitised stem>.eml` atomically (temporary file, fsync,
    /// rename), so a reader never sees half a message and a crash leaves
    /// either the old file or the new one.
    pub fn write(&self, stem: &str, message: &[u8]) -> std::io::Result<PathBuf> {
        let target = self.dir.join(format!("{}.eml", sanitize_file_stem(stem)));
        let temp = self.dir.join(format!(
            ".tmp-{}-{}.eml",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)?;
            file.write_all(message)?;
            file.sync_all()?;
            std::fs::rename(&temp, &target)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result.map(|()| target)
    }
}

/// A file name stem from a Message-ID: angle brackets dropped, anything but
/// ASCII letters, digits, `.`, `-`, `_`, `@`, `+` replaced by `_`, no leading
/// dot (hidden files), at most 150 characters.
pub fn sanitize_file_stem(id: &str) -> String {
    let inner = id.trim().trim_start_matches('<').trim_end_matches('>');
    let mut stem: String = inner
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@' | '+') {
                c
            } else {
                '_'
            }
        })
        .take(150)
        .collect();
    while stem.starts_with('.') {
        stem.replace_range(..1, "_");
    }
    if stem.is_empty() {
        stem.push_str("message");
    }
    stem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_are_safe() {
        assert_eq!(
            sanitize_file_stem("<am-2026.ab12@news.example.com>"),
            "am-2026.ab12@news.example.com"
        );
        assert_eq!(sanitize_file_stem("../../etc/passwd"), "_._.._etc_passwd");
        assert_eq!(sanitize_file_stem("<>"), "message");
    }

    #[test]
    fn outbox_writes_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(&dir.path().join("outbox")).unwrap();
        let path = outbox
            .write("<a.b@c>", b"Subject: x\r\n\r\nhi\r\n")
            .unwrap();
        assert_eq!(path.file_name().unwrap(), "a.b@c.eml");
        assert_eq!(std::fs::read(&path).unwrap(), b"Subject: x\r\n\r\nhi\r\n");
        outbox.write("<a.b@c>", b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(outbox.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temp files left: {names:?}");
    }
}
