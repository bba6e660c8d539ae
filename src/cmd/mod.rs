//! One file per subcommand; each wires the pipeline stages together and
//! decides its exit code. Shared here: the context every command gets and
//! how diagnostics reach the terminal or the JSON log.

pub mod build;
pub mod check;
pub mod due;
pub mod preview;
pub mod schedule;
pub mod send;
pub mod status;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::cli::LogFormat;
use crate::config::{Config, Newsroom};
use crate::diag::{Diagnostic, Diagnostics, Severity};
use crate::time::parse_when;

/// Everything went as asked.
pub const EXIT_OK: u8 = 0;
/// Something failed: bad config, a broken template, an I/O error.
pub const EXIT_ERROR: u8 = 1;
/// Bad command-line usage (clap uses it too).
pub const EXIT_USAGE: u8 = 2;

/// What every command gets from the global flags.
pub struct Ctx {
    pub config: PathBuf,
    pub log_format: LogFormat,
    pub quiet: bool,
}

impl Ctx {
    /// Loads config.yaml, printing its diagnostics when it is invalid.
    pub fn newsroom(&self) -> Result<Newsroom, u8> {
        Newsroom::load(&self.config).map_err(|ds| {
            self.report(&ds);
            self.summary(&format!(
                "{}: {} in the config file",
                self.config.display(),
                plural(ds.errors(), "error")
            ));
            EXIT_ERROR
        })
    }

    /// Prints diagnostics: human-readable on stderr, or one JSON object per
    /// line through the log when `--log-format json`.
    pub fn report(&self, ds: &Diagnostics) {
        for d in ds.iter() {
            self.report_one(d);
        }
    }

    pub fn report_one(&self, d: &Diagnostic) {
        if self.quiet && d.severity == Severity::Warning {
            return;
        }
        match self.log_format {
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
                let mut err = std::io::stderr().lock();
                let text = d.to_string();
                let text = if std::io::stderr().is_terminal() {
                    colour(d, &text)
                } else {
                    text
                };
                let _ = writeln!(err, "{text}");
            }
        }
    }

    /// A command's one-line result: stdout for text, the log for JSON.
    pub fn summary(&self, line: &str) {
        match self.log_format {
            LogFormat::Json => tracing::info!("{line}"),
            LogFormat::Text => println!("{line}"),
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

pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Reads `--at`/`--now` in the site's zone; now when absent.
pub fn parse_at(at: Option<&str>, config: &Config) -> Result<DateTime<Utc>> {
    match at {
        None => Ok(Utc::now()),
        Some(s) => parse_when(s, config.site.timezone)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("invalid --at `{s}`")),
    }
}

/// `2026-11-30T08:00` in the site's zone: how to suggest a `--at`.
pub fn at_arg(t: DateTime<Utc>, config: &Config) -> String {
    t.with_timezone(&config.site.timezone)
        .format("%Y-%m-%dT%H:%M")
        .to_string()
}

/// The subscriber templates see during `check` and `build`.
pub fn sample_subscriber(config: &Config) -> Value {
    json!({
        "email": "reader@example.com",
        "name": "Sample Reader",
        "regions": [],
        "topics": [],
        "unsubscribe_url": format!("{}/unsubscribe?sample=1", config.site.base_url),
    })
}
