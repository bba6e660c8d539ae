//! Console output from one place: diagnostics, a command's result lines,
//! errors and warnings. With `--log-format json` every one of them is a JSON
//! line of the log (stderr) and nothing else is printed, so cron and log
//! collectors read one format. Also the small wording helpers every command
//! shares (`plural`, `human`, `kb`).

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cli::LogFormat;
use crate::diag::{Diagnostic, Diagnostics, Severity};
use crate::mail::sender::Progress;

/// What a stage has to tell the newsroom, for a command to print.
#[derive(Debug)]
pub enum Message<'a> {
    Diagnostics(&'a Diagnostics),
    Diagnostic(&'a Diagnostic),
    /// A result line.
    Summary(String),
    /// Something that failed.
    Error(String),
    /// Something to act on.
    Warning(String),
}

/// Where a command's messages go.
#[derive(Debug)]
pub struct Console {
    pub format: LogFormat,
    /// `-q`: errors only.
    pub quiet: bool,
    /// `-v` given at least once.
    pub verbose: bool,
    /// Warnings already shown in this run (each is shown once).
    shown: Mutex<HashSet<String>>,
}

impl Console {
    pub fn new(format: LogFormat, quiet: bool, verbose: bool) -> Console {
        Console {
            format,
            quiet,
            verbose,
            shown: Mutex::new(HashSet::new()),
        }
    }

    /// Text, not quiet: what tests and scripts that build a `Console` use.
    pub fn plain() -> Console {
        Console::new(LogFormat::Text, false, false)
    }

    pub fn is_json(&self) -> bool {
        self.format == LogFormat::Json
    }

    /// Prints what a stage reported, in order.
    pub fn show<'a>(&self, messages: impl IntoIterator<Item = Message<'a>>) {
        for m in messages {
            match m {
                Message::Diagnostics(ds) => self.diagnostics(ds),
                Message::Diagnostic(d) => self.diagnostic(d),
                Message::Summary(line) => self.summary(&line),
                Message::Error(e) => self.error(&e),
                Message::Warning(w) => self.warn(&w),
            }
        }
    }

    /// Diagnostics: `path:line:col: error: …` with the line and a caret on
    /// stderr, or one JSON object each.
    pub fn diagnostics(&self, ds: &Diagnostics) {
        for d in ds.iter() {
            self.diagnostic(d);
        }
    }

    pub fn diagnostic(&self, d: &Diagnostic) {
        if d.severity == Severity::Warning && (self.quiet || !self.first_time(&d.to_string())) {
            return;
        }
        match self.format {
            LogFormat::Json => {
                let path = d.path.display().to_string();
                match d.severity {
                    Severity::Error => tracing::error!(
                        path,
                        line = d.line,
                        col = d.col,
                        help = d.help,
                        "{}",
                        d.message
                    ),
                    Severity::Warning => tracing::warn!(
                        path,
                        line = d.line,
                        col = d.col,
                        help = d.help,
                        "{}",
                        d.message
                    ),
                }
            }
            LogFormat::Text => {
                let text = d.to_string();
                let text = if std::io::stderr().is_terminal() {
                    colour(d, &text)
                } else {
                    text
                };
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }
        }
    }

    /// A result line of the command: stdout for text, the log for JSON.
    /// Quiet mode keeps them: they are what was asked for.
    pub fn summary(&self, line: &str) {
        match self.format {
            LogFormat::Json => tracing::info!("{line}"),
            LogFormat::Text => {
                let mut out = std::io::stdout().lock();
                // A closed pipe (`| head`) ends the output, not the command.
                let _ = writeln!(out, "{line}");
            }
        }
    }

    /// Data the command exists to print (an export, `inbound --json`):
    /// always on stdout, whatever the log format, for the program reading it.
    pub fn data(&self, line: &str) {
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }

    /// An error that ends the command (or one newsletter of it).
    pub fn error(&self, message: &str) {
        match self.format {
            LogFormat::Json => tracing::error!("{message}"),
            LogFormat::Text => {
                let _ = writeln!(std::io::stderr().lock(), "error: {message}");
            }
        }
    }

    /// A warning, shown once per run however often it is raised.
    pub fn warn(&self, message: &str) {
        if self.quiet || !self.first_time(message) {
            return;
        }
        match self.format {
            LogFormat::Json => tracing::warn!("{message}"),
            LogFormat::Text => {
                let _ = writeln!(std::io::stderr().lock(), "warning: {message}");
            }
        }
    }

    /// Progress worth showing a person watching, not a cron mail: on a
    /// terminal, with `-v`, or in the JSON log.
    pub fn progress(&self, message: &str) {
        if self.quiet {
            return;
        }
        match self.format {
            LogFormat::Json => tracing::info!("{message}"),
            LogFormat::Text if self.verbose || std::io::stderr().is_terminal() => {
                let _ = writeln!(std::io::stderr().lock(), "{message}");
            }
            LogFormat::Text => {}
        }
    }

    fn first_time(&self, key: &str) -> bool {
        self.shown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned())
    }
}

/// Reports a send's progress: a bar redrawn in place on a terminal; a log
/// line every few seconds when `log_lines` (`-v`, or the JSON log); nothing
/// otherwise
/// (a cron mail wants the one result line per edition, not progress).
pub fn progress_reporter(
    edition_id: &str,
    log_lines: bool,
) -> impl FnMut(Progress) + Send + 'static {
    let tty = std::io::stderr().is_terminal();
    let log = log_lines;
    let id = edition_id.to_string();
    let start = Instant::now();
    let mut last = Instant::now();
    move |p: Progress| {
        let done = p.done();
        if tty {
            let width = 30;
            let filled = if p.total == 0 {
                width
            } else {
                (done as usize * width) / p.total as usize
            };
            let _ = write!(
                std::io::stderr(),
                "\r{id} [{}{}] {done}/{} sent {} deferred {} failed {}   ",
                "#".repeat(filled),
                " ".repeat(width - filled.min(width)),
                p.total,
                p.sent,
                p.deferred,
                p.failed
            );
            if done == p.total {
                let _ = writeln!(std::io::stderr());
            }
        } else if log && (last.elapsed() >= Duration::from_secs(5) || done == p.total) {
            last = Instant::now();
            let rate = done as f64 / start.elapsed().as_secs_f64().max(0.001);
            tracing::info!(edition = %id, done, total = p.total, sent = p.sent, deferred = p.deferred, failed = p.failed, "{done}/{} delivered ({rate:.0}/s)", p.total);
        }
    }
}

fn colour(d: &Diagnostic, text: &str) -> String {
    let code = match d.severity {
        Severity::Error => "\x1b[1;31m",
        Severity::Warning => "\x1b[1;33m",
    };
    let sev = d.severity.to_string();
    text.replacen(&format!(": {sev}: "), &format!(": {code}{sev}\x1b[0m: "), 1)
}

/// `1 item`, `3 items`, `0 items`.
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// `2h 5m`, `45m`, `3d 2h`: a lateness or a delay, to the minute.
pub fn human(d: chrono::Duration) -> String {
    let m = d.num_minutes();
    match (m / 1440, (m % 1440) / 60, m % 60) {
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// `42.1 KB`.
pub fn kb(bytes: usize) -> String {
    format!("{:.1} KB", bytes as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wording() {
        assert_eq!(plural(1, "item"), "1 item");
        assert_eq!(plural(0, "item"), "0 items");
        assert_eq!(human(chrono::Duration::minutes(125)), "2h 5m");
        assert_eq!(human(chrono::Duration::minutes(45)), "45m");
        assert_eq!(human(chrono::Duration::hours(74)), "3d 2h");
        assert_eq!(kb(2048), "2.0 KB");
    }

    #[test]
    fn a_warning_is_shown_once() {
        let c = Console::plain();
        assert!(c.first_time("x"));
        assert!(!c.first_time("x"));
        assert!(c.first_time("y"));
    }
}
