//! Diagnostics about a newsroom's own files: `path:line:col: error: message`,
//! the offending line with a caret under the column, and an optional hint.
//! Every stage reports through this type so `check`, `build` and the preview
//! all print the same thing.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem in one file. `line` and `col` are 1-based; 0 means "the whole
/// file" (no position is printed then).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
    /// The text of `line`, shown under the message with a caret.
    pub source_line: Option<String>,
    /// How many characters the caret spans (at least 1).
    pub width: usize,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            path: path.into(),
            line: 0,
            col: 0,
            message: message.into(),
            source_line: None,
            width: 1,
            help: None,
        }
    }

    pub fn warning(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(path, message)
        }
    }

    /// Points the diagnostic at `line:col` of `source` (the whole file's text),
    /// keeping a copy of that line to show.
    pub fn at(mut self, source: &str, line: usize, col: usize) -> Self {
        self.line = line;
        self.col = col.max(1);
        self.source_line = source
            .lines()
            .nth(line.saturating_sub(1))
            .map(|l| l.trim_end_matches('\r').to_string());
        self
    }

    pub fn into_warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    pub fn span(mut self, width: usize) -> Self {
        self.width = width.max(1);
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The `path:line:col` locator an editor can jump to.
    pub fn locator(&self) -> String {
        let path = self.path.display();
        match (self.line, self.col) {
            (0, _) => format!("{path}"),
            (line, 0) => format!("{path}:{line}"),
            (line, col) => format!("{path}:{line}:{col}"),
        }
    }

    /// The first line alone: `path:line:col: error: message`.
    pub fn headline(&self) -> String {
        format!("{}: {}: {}", self.locator(), self.severity, self.message)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.headline())?;
        if let Some(src) = &self.source_line {
            let num = self.line.to_string();
            let pad = " ".repeat(num.len());
            // The caret must line up under the column even when the line has
            // tabs or multi-byte characters before it.
            let lead: String = src
                .chars()
                .take(self.col.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(
                f,
                "\n{pad} |\n{num} | {src}\n{pad} | {lead}{}",
                "^".repeat(self.width)
            )?;
        }
        if let Some(help) = &self.help {
            let pad = match &self.source_line {
                Some(_) => " ".repeat(self.line.to_string().len()),
                None => " ".into(),
            };
            write!(f, "\n{pad} = help: {help}")?;
        }
        Ok(())
    }
}

/// A run's diagnostics, in the order they should be printed.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn extend(&mut self, ds: impl IntoIterator<Item = Diagnostic>) {
        self.0.extend(ds);
    }
    pub fn errors(&self) -> usize {
        self.0.iter().filter(|d| d.is_error()).count()
    }
    pub fn warnings(&self) -> usize {
        self.0.len() - self.errors()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
    /// Sorts by file, then position, so output is stable across parallel loads.
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            (&a.path, a.line, a.col, a.severity).cmp(&(&b.path, b.line, b.col, b.severity))
        });
    }

    /// Sorts and drops exact repeats (two stages finding the same problem).
    pub fn sort_dedup(&mut self) {
        self.sort();
        let mut seen = std::collections::HashSet::new();
        self.0.retain(|d| seen.insert(d.to_string()));
    }
}

/// A diagnostic carried as an error, for a stage whose failure is a problem
/// in one of the newsroom's files: the command prints it as a diagnostic
/// (file, line, the offending line and a caret), not as a bare message.
#[derive(Debug, Clone)]
pub struct DiagnosticError(pub Diagnostic);

impl fmt::Display for DiagnosticError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for DiagnosticError {}

/// The closest of `candidates` to `word`, if any is close enough to be a
/// plausible typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// An error with its causes, `outer: inner: root`, as a command prints it.
pub fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(c) = next {
        out.push_str(": ");
        out.push_str(&c.to_string());
        next = c.source();
    }
    out
}

/// Shows a path relative to the newsroom root when it lies under it.
pub fn display_path(root: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_locator_line_and_caret() {
        let src = "---\ntitle: x\nregion: wrld\n---\n";
        let d = Diagnostic::error("content/a.md", "unknown region `wrld`")
            .at(src, 3, 9)
            .span(4)
            .help("did you mean `world`?");
        assert_eq!(
            d.to_string(),
            "content/a.md:3:9: error: unknown region `wrld`\n  |\n3 | region: wrld\n  |         ^^^^\n  = help: did you mean `world`?"
        );
    }

    #[test]
    fn suggests_close_words_only() {
        let c = ["title", "date", "region", "topics"];
        assert_eq!(did_you_mean("titel", c), Some("title"));
        assert_eq!(did_you_mean("regoin", c), Some("region"));
        assert_eq!(did_you_mean("zzzz", c), None);
    }
}
